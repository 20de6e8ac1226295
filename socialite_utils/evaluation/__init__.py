"""Evaluation: score a base model and its tuned adapter on a data run's test rows (notebook 03).

Steps, each a module: ``plan`` (parameters and what to score) -> ``scoring`` (label log-probabilities or generated
answers) -> ``predictions`` (prediction rows and metrics) -> ``run`` (``evaluate_run`` writes the run,
``load_eval_run`` reads it back); ``backends`` (vLLM), ``truncation``, ``contextual_calibration`` and ``lmeval``
(export to lm-evaluation-harness) beside them."""

from .lmeval import (
    export_lmeval,
)
from .plan import (
    EvalItem,
    EvalParams,
    EvalPlan,
    build_eval_items,
    build_eval_plan,
)
from .predictions import (
    build_metrics,
    compute_comparison,
    compute_group_comparisons,
    compute_task_metrics,
    score_examples,
)
from .run import (
    EvalResult,
    EvalRun,
    EvalRunError,
    evaluate_run,
    load_eval_model,
    load_eval_run,
)

__all__ = [
    "build_eval_items",
    "build_eval_plan",
    "build_metrics",
    "compute_comparison",
    "compute_group_comparisons",
    "compute_task_metrics",
    "EvalItem",
    "EvalParams",
    "EvalPlan",
    "EvalResult",
    "EvalRun",
    "EvalRunError",
    "evaluate_run",
    "export_lmeval",
    "load_eval_model",
    "load_eval_run",
    "score_examples",
]
