"""Error analysis of an evaluation run (notebook 04): per-label results, invalid answers, error slices, calibration
and prompt sensitivity, written to an analysis run."""

from ..evaluation.run import (
    EvalRun,
    EvalRunError,
    load_eval_run,
)
from ..prompts import (
    MAIN,
    render_variant_prompt,
    variant_label_words,
)
from ..schema import (
    INVALID_KINDS,
)
from .analyze import (
    LENGTH_UNITS,
    analyze_eval_run,
    calibration_table,
    confident_errors_table,
    format_caveats,
    invalid_table,
    per_label_table,
    slices_table,
)
from .calibration import (
    calibration_from_rows,
    compute_calibration,
)
from .error_slices import (
    INVALID_COLUMN,
    build_confusion_matrix,
    compute_confident_errors,
    compute_frequency_slices,
    compute_length_slices,
    token_length_fn,
    word_length,
)
from .invalid_answers import (
    classify_invalid,
    compute_invalid_answers,
    labels_mentioned,
)
from .sensitivity import (
    EvalModels,
    compute_sensitivity,
    load_eval_models,
    load_eval_registry,
    load_eval_tokenizer,
    load_sensitivity_shots,
    score_prompt_variants,
    score_sensitivity,
    select_sensitivity_examples,
    sensitivity_table,
)
from .write import (
    write_analysis_run,
)

__all__ = [
    "analyze_eval_run",
    "build_confusion_matrix",
    "calibration_from_rows",
    "calibration_table",
    "classify_invalid",
    "compute_calibration",
    "compute_confident_errors",
    "compute_frequency_slices",
    "compute_invalid_answers",
    "compute_length_slices",
    "compute_sensitivity",
    "confident_errors_table",
    "EvalModels",
    "EvalRun",
    "EvalRunError",
    "format_caveats",
    "INVALID_COLUMN",
    "INVALID_KINDS",
    "invalid_table",
    "labels_mentioned",
    "LENGTH_UNITS",
    "load_eval_models",
    "load_eval_registry",
    "load_eval_run",
    "load_eval_tokenizer",
    "load_sensitivity_shots",
    "MAIN",
    "per_label_table",
    "render_variant_prompt",
    "score_prompt_variants",
    "score_sensitivity",
    "select_sensitivity_examples",
    "sensitivity_table",
    "slices_table",
    "token_length_fn",
    "variant_label_words",
    "word_length",
    "write_analysis_run",
]
