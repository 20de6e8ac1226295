"""Baselines (notebook 05): the label-prior floors and TF-IDF + logistic regression (``classic``), a multi-task
encoder (``encoder``), on the same task views (``views``), compared with the language model (``compare``)."""

from ..reporting import (
    BASELINE_SYSTEMS,
    system_order,
)
from .classic import (
    TFIDF_C_GRID,
    fit_predict_floors,
    fit_predict_tfidf,
)
from .compare import (
    BaselineResults,
    baselines_metrics,
    build_comparison,
    build_floor_claims,
    comparison_pivot,
    compute_baselines_metrics,
    compute_system_metrics,
    load_eval_metrics,
    prediction_rows,
    system_rows,
    write_baselines_run,
)
from .encoder import (
    ENCODER_PRESETS,
    MINILM_PACKAGE,
    MINILM_REQUIREMENT,
    EncoderPreset,
    MultiTaskModel,
    TrainedEncoder,
    build_tiny_encoder,
    load_encoder,
    multitask_loss,
    predict_multitask_encoder,
    resolve_preset,
    train_multitask_encoder,
)
from .views import (
    HELD_OUT,
    SystemOutput,
    TaskData,
    build_task_views,
    task_overview,
)

__all__ = [
    "BASELINE_SYSTEMS",
    "BaselineResults",
    "baselines_metrics",
    "build_comparison",
    "build_floor_claims",
    "build_task_views",
    "build_tiny_encoder",
    "comparison_pivot",
    "compute_baselines_metrics",
    "compute_system_metrics",
    "ENCODER_PRESETS",
    "EncoderPreset",
    "fit_predict_floors",
    "fit_predict_tfidf",
    "HELD_OUT",
    "load_encoder",
    "load_eval_metrics",
    "MINILM_PACKAGE",
    "MINILM_REQUIREMENT",
    "multitask_loss",
    "MultiTaskModel",
    "predict_multitask_encoder",
    "prediction_rows",
    "resolve_preset",
    "system_order",
    "system_rows",
    "SystemOutput",
    "task_overview",
    "TaskData",
    "TFIDF_C_GRID",
    "train_multitask_encoder",
    "TrainedEncoder",
    "write_baselines_run",
]
