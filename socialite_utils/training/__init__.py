"""Training: LoRA supervised fine-tuning with TRL's SFTTrainer (notebook 02, ``python -m socialite_utils.training``).

Steps, each a module: ``rows`` (a data run's train rows, tokenized exactly as TRL does) -> ``lora`` (the recipe:
``TrainParams``, ``LoraConfig``, ``SFTConfig``, ``train_lora`` and its steps) -> ``trainer`` (the kit's SFTTrainer) ->
``checkpoints`` (resume), ``targets`` (the LoRA targets against the model) and ``distributed`` (several
processes); ``cli`` is the command line."""

from ..plotting import (
    loss_points,
)
from ..tokens import (
    tokenize_like_trl,
)
from .lora import (
    IN_PROCESS_PRESETS,
    PAPER_TARGET_MODULES,
    TrainingPlan,
    TrainingSetup,
    TrainParams,
    TrainResult,
    build_lora_config,
    build_sft_config,
    build_trainer,
    check_base_model_name,
    keep_trainable_rows,
    load_adapter,
    load_adapter_and_tokenizer,
    load_run_tokenizer,
    load_training_model,
    lora_config_for,
    partial_dir_for,
    plan_training,
    planned_steps,
    start_partial_run,
    train_lora,
    train_trainer,
    write_training_run,
)
from .rows import (
    build_sft_dataset,
    check_supervised_tokens,
    load_training_rows,
    sample_rows,
    show_label_mask,
    supervised_token_count,
    validate_rows,
)
from .targets import (
    check_target_modules,
    linear_layer_names,
)
from .trainer import (
    KitProgressCallback,
    KitSFTTrainer,
    format_log_line,
)

__all__ = [
    "build_lora_config",
    "build_sft_config",
    "build_sft_dataset",
    "build_trainer",
    "check_base_model_name",
    "check_supervised_tokens",
    "check_target_modules",
    "format_log_line",
    "IN_PROCESS_PRESETS",
    "keep_trainable_rows",
    "KitProgressCallback",
    "KitSFTTrainer",
    "linear_layer_names",
    "load_adapter",
    "load_adapter_and_tokenizer",
    "load_run_tokenizer",
    "load_training_model",
    "load_training_rows",
    "lora_config_for",
    "loss_points",
    "PAPER_TARGET_MODULES",
    "partial_dir_for",
    "plan_training",
    "planned_steps",
    "sample_rows",
    "show_label_mask",
    "start_partial_run",
    "supervised_token_count",
    "tokenize_like_trl",
    "train_lora",
    "train_trainer",
    "TrainingPlan",
    "TrainingSetup",
    "TrainParams",
    "TrainResult",
    "validate_rows",
    "write_training_run",
]
