"""Studies that reuse the stages below: generalist mixing (notebook 06, ``mixing``) and writing assistance
(notebook 07, ``writing`` with ``writing_eval``)."""

from .mixing import (
    MixingStudyParams,
    build_grid,
    collect_results,
    evaluate_findings,
    format_findings,
    gain_table,
    run_grid,
    write_study_outputs,
)
from .writing import (
    build_or_load_data,
    generate_systems,
    prepare_writing_run,
    train_systems,
    write_writing_report,
)

__all__ = [
    "build_grid",
    "build_or_load_data",
    "collect_results",
    "evaluate_findings",
    "format_findings",
    "gain_table",
    "generate_systems",
    "MixingStudyParams",
    "prepare_writing_run",
    "run_grid",
    "train_systems",
    "write_study_outputs",
    "write_writing_report",
]
