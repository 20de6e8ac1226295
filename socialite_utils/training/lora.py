"""LoRA instruction tuning with TRL's SFTTrainer: prompt/completion rows in, an adapter run out.

Pipeline (``train_lora`` does all of it; each step is a public function you can call alone):

1. ``load_training_rows(data_run)`` reads notebook 01's ``data/train.jsonl``;
2. ``check_supervised_tokens`` tokenizes every row exactly as TRL will and drops (and counts) the
   rows that truncation to ``max_length`` would leave without a single trained token;
3. ``build_sft_dataset`` -> a prompt-completion ``datasets.Dataset``; TRL appends EOS to each
   completion and trains on the completion (+ EOS) only (``completion_only_loss=True``);
4. ``build_lora_config`` / ``build_sft_config`` hold the paper's defaults (r=8, alpha=16, dropout
   0.05 on q_proj/v_proj, lr 1e-4, warmup 10 %, 5 epochs, effective batch 64);
5. ``KitSFTTrainer`` trains; ``show_label_mask`` prints what is trained for two examples;
6. the run directory ``runs/<run_name>/`` is written atomically (``RunWriter``): ``adapter/``
   (LoRA weights + the tokenizer used), ``params.json``, ``provenance.json``, ``train_log.jsonl``,
   ``train_summary.json`` and ``loss_curve.png``.

Checkpoints and resuming: the finished run directory only appears when training succeeded, so
checkpoints cannot live inside it. They go to the sibling ``runs/<run_name>.partial/checkpoints/``,
which survives a crash; ``resume=True`` continues from its newest checkpoint (same params
required), and the ``.partial`` directory is deleted once the run is complete.

Speed on CPU (see benchmarks/training.md): TRL's defaults are tuned for GPUs. The kit turns off
gradient checkpointing on CPU, sorts each optimizer step's examples by length before cutting them
into micro-batches (``batch_rebalance``: same examples per step, less padding) and, on CPU, projects
only the supervised positions through the LM head (TRL's fused head does this on CUDA only).

Where the steps live: rows and TRL-style tokenization (1-3, ``show_label_mask``) in
:mod:`socialite_utils.training.rows`, the trainer and its progress display in
:mod:`socialite_utils.training.trainer`; the stage's public names are in :mod:`socialite_utils.training`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel
from transformers import AutoTokenizer, TrainerCallback, TrainerState, set_seed
from trl import SFTConfig

from .. import models
from ..models import check_model_available
from ..params import FromMapping, ParamError, Rule, check_params
from ..plotting import loss_points, plot_loss_curve, save_figure
from ..runs import (
    RunWriter,
    check_run_name,
    new_run_dir,
    provenance,
    read_json,
    resolve_run_dir,
    write_json,
)
from ..runs import write_jsonl as _write_jsonl
from .checkpoints import (
    adapter_problem,
    checkpoint_is_final,
    describe_skipped,
    find_resume_checkpoint,
    whole_run_train_loss,
)
from .distributed import (
    batch_layout,
    is_main_process,
    wait_for_everyone,
    world_gradient_accumulation,
    world_size,
)
from .hub import adapter_dir_of
from .rows import (
    build_sft_dataset,
    check_supervised_tokens,
    fit_max_length,
    load_training_rows,
    sample_per_task,
    sample_rows,
    show_label_mask,
    supervised_token_count,
    token_lengths,
    validate_rows,
)
from .targets import check_target_modules
from .trainer import (
    KitSFTTrainer,
    _quiet_progress,
    _use_kit_progress,
)

# The paper's LoRA recipe (Dey et al. 2024, following Alpaca-LoRA).
PAPER_TARGET_MODULES = ("q_proj", "v_proj")
# Trackers SFTConfig.report_to accepts that the kit documents ("all": every installed one).
REPORT_TO = ("none", "tensorboard", "wandb", "mlflow", "trackio", "all")
# Presets built in-process (random weights): a run saves the base model next to the adapter, so an evaluation
# loads exactly the weights it trained from.
IN_PROCESS_PRESETS = ("tiny-random",)
# "lora": a LoRA adapter (the papers' Socialite-Llama recipe); "none": every weight trained (Writing-Alpaca's full
# fine-tuning), the run then holds the whole model in model/ instead of adapter/.
PEFT_METHODS = ("lora", "none")
# "last": keep the final weights; "validation": score the validation loss at every checkpoint (or epoch) and keep
# the checkpoint where it was lowest. The test rows are never seen by either.
SELECT_ON = ("last", "validation")
# max_length="fit": the longest training row's token length rounded up to this multiple (no row truncated).
FIT_MULTIPLE = 64
# Where a finished run keeps its trained weights, per peft method.
WEIGHTS_DIR = {"lora": "adapter", "none": "model"}


# ---------------------------------------------------------------- parameters


# Ranges of TrainParams (checked with the declared types by params.check_params before anything is written).
TRAIN_RULES = {
    "lora_r": Rule(ge=1),
    "lora_alpha": Rule(gt=0),
    "lora_dropout": Rule(ge=0, lt=1),
    "learning_rate": Rule(gt=0, le=1),  # LoRA uses about 1e-5 .. 1e-2; a value above 1 is a typo (1e9, 5e4)
    "warmup_ratio": Rule(ge=0, lt=1),
    "num_train_epochs": Rule(ge=0),
    "max_steps": Rule(ge=-1),
    "per_device_train_batch_size": Rule(ge=1),
    "gradient_accumulation_steps": Rule(ge=1),
    "max_length": Rule(ge=2),
    "seed": Rule(ge=0),
    "max_train_examples": Rule(ge=1),
    "logging_steps": Rule(ge=1),
    "save_steps": Rule(ge=1),
    "save_total_limit": Rule(ge=1),
    "torch_threads": Rule(ge=1),
    "peft": Rule(choices=PEFT_METHODS),
    "select_on": Rule(choices=SELECT_ON),
    "validation_per_task": Rule(ge=1),
    "run_name": Rule(nonempty=True),
    "data_run": Rule(nonempty=True),
    "base_model": Rule(nonempty=True),
}


@dataclass
class TrainParams(FromMapping):
    """Every knob of a training run (notebook 02's parameters map 1:1 onto these fields)."""

    run_name: str
    data_run: str = "data-demo"  # notebook 01's output: a run name under runs/ or a path
    base_model: str = "tiny-random"  # a preset of socialite_utils.models, a hub id or a local dir
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: str | list[str] = field(default_factory=lambda: list(PAPER_TARGET_MODULES))
    modules_to_save: str | list[str] | None = "auto"  # "auto": models.recommended_lora_kwargs(base_model)
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.1
    num_train_epochs: float = 5.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 8  # 8 x 8 = the paper's effective batch of 64
    max_length: int | str = (
        512  # tokens; "fit": the longest row's length rounded up to 64 (p99 and max reported)
    )
    seed: int = 0
    resume: bool = False
    max_train_examples: int | None = None  # a seeded random subset (None = all rows)
    logging_steps: int | None = None  # None: about 50 log points over the run
    save_steps: int | None = None  # None: about 10 checkpoints over the run
    save_total_limit: int = 2
    gradient_checkpointing: bool | None = None  # None: on for CUDA (memory), off on CPU (speed)
    sort_by_length: bool = True  # sort each optimizer step's examples by length (less padding)
    group_by_length: bool = False  # micro-batches of similar length in random order: least padding (replaces
    # sort_by_length; which examples share a step changes; trainer.LengthBucketSampler)
    compact_lm_head: bool = True  # CPU: run the LM head on supervised positions only
    torch_threads: int | None = None  # None: torch's default; 1 helps on a busy shared CPU
    # Experiment trackers the trainer logs to (SFTConfig.report_to): "none" keeps an offline run offline;
    # "tensorboard" writes event files into the run's tensorboard/ folder; "wandb", "mlflow", "trackio" need their
    # packages and accounts; a list for several.
    report_to: str | list[str] = "none"
    peft: str = "lora"  # "lora" or "none" (full fine-tuning: every weight trained; GPU memory for 7B models)
    # Checkpoint choice on validation rows, never on test rows: "validation" evaluates the loss of the gold
    # completions of up to validation_per_task rows of each trained task (the data run's validation split) every
    # eval_every steps (None: at each checkpoint; "epoch": after each epoch) and keeps the lowest.
    select_on: str = "last"
    eval_every: int | str | None = None
    validation_per_task: int = 25
    overwrite: bool = False  # replace an existing finished run of the same name

    def validate(self) -> TrainParams:
        """Raise ValueError naming the first bad field; return self."""
        check_run_name(self.run_name)
        check_params(self, TRAIN_RULES)  # declared types, ranges; papermill strings coerced where unambiguous
        self.max_length = _int_or_word(self.max_length, "max_length", "fit", minimum=2)
        if self.eval_every is not None:
            self.eval_every = _int_or_word(self.eval_every, "eval_every", "epoch", minimum=1)
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ValueError("set num_train_epochs > 0 or max_steps > 0")
        trackers = [self.report_to] if isinstance(self.report_to, str) else list(self.report_to)
        unknown = [t for t in trackers if t not in REPORT_TO]
        if unknown or not trackers:
            raise ValueError(
                f"TrainParams.report_to = {self.report_to!r}; expected one or more of {REPORT_TO}"
            )
        if not target_modules_list(self.lora_target_modules):
            raise ValueError("lora_target_modules is empty; use e.g. 'q_proj,v_proj' or 'all-linear'")
        return self

    @property
    def effective_batch_size(self) -> int:
        """Examples per optimizer step (single device)."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    def for_smoke(self) -> TrainParams:
        """A copy that finishes in seconds on a CPU: tiny-random, 64 examples, 30 steps, a higher lr. The given
        parameters are validated first, so a bad value is reported rather than replaced by a smoke setting."""
        self.validate()
        return replace(
            self,
            base_model="tiny-random",
            max_train_examples=64,
            max_steps=30,
            per_device_train_batch_size=8,
            gradient_accumulation_steps=1,
            learning_rate=3e-3,  # a random 2-layer model needs a large step to move in 30 steps
            max_length=self.max_length if self.max_length == "fit" else min(self.max_length, 256),
            save_steps=15,  # two checkpoints, not ten: saving dominates a 30-step run
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (written to params.json)."""
        return asdict(self)


def _int_or_word(value: int | str, name: str, word: str, *, minimum: int) -> int | str:
    """``value`` as an int >= ``minimum`` or the one ``word`` it may also be (papermill passes "512" as a string)."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == word:
            return word
        if text.lstrip("+").isdigit():
            value = int(text)
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    raise ParamError(f"TrainParams.{name} = {value!r}: expected an integer >= {minimum} or {word!r}")


def target_modules_list(value: str | list[str] | tuple[str, ...] | None) -> list[str] | str:
    """``"q_proj,v_proj"`` / list -> list of names; ``"all-linear"`` stays a string (PEFT's keyword)."""
    if value is None:
        return []
    if isinstance(value, str):
        if value.strip() == "all-linear":
            return "all-linear"
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


# Fields that may differ between a crashed run and its resumption.
_RESUME_FREE_FIELDS = {"resume", "overwrite", "logging_steps", "torch_threads", "report_to"}


# ---------------------------------------------------------------- configs


def build_lora_config(
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.05,
    target_modules: str | list[str] | tuple[str, ...] = PAPER_TARGET_MODULES,
    modules_to_save: list[str] | None = None,
) -> LoraConfig:
    """The paper's LoRA (r=8, alpha=16, dropout 0.05, q_proj/v_proj); ``target_modules="all-linear"`` for all."""
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules_list(target_modules),
        modules_to_save=list(modules_to_save) if modules_to_save else None,
        bias="none",
        task_type="CAUSAL_LM",
    )


def lora_config_for(params: TrainParams) -> LoraConfig | None:
    """The run's LoraConfig, with ``modules_to_save="auto"`` resolved for its base model (None: ``peft="none"``)."""
    if params.peft == "none":
        return None
    modules_to_save = params.modules_to_save
    if modules_to_save == "auto":
        modules_to_save = models.recommended_lora_kwargs(params.base_model).get("modules_to_save")
    elif isinstance(modules_to_save, str):
        modules_to_save = target_modules_list(modules_to_save)
    return build_lora_config(
        params.lora_r, params.lora_alpha, params.lora_dropout, params.lora_target_modules, modules_to_save
    )


def _device_type(precision: Any | None) -> str:
    if precision is not None:
        return precision.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def planned_steps(params: TrainParams, n_examples: int) -> int:
    """Optimizer steps the run will take for ``n_examples`` training rows (single device)."""
    if params.max_steps > 0:
        return params.max_steps
    per_epoch = max(1, math.ceil(n_examples / params.effective_batch_size))
    return max(1, math.ceil(params.num_train_epochs * per_epoch))


def build_sft_config(
    params: TrainParams,
    output_dir: str | os.PathLike,
    *,
    precision: Any | None = None,
    n_examples: int | None = None,
    max_length: int | None = None,
) -> SFTConfig:
    """SFTConfig for ``params``: completion-only loss, the precision's bf16/fp16 (both False on CPU), seeds, and
    with ``select_on="validation"`` an evaluation at every checkpoint that keeps the best one.

    ``max_length``: the resolved length when ``params.max_length`` is "fit" (:func:`keep_trainable_rows`)."""
    device = _device_type(precision)
    total = planned_steps(params, n_examples or params.effective_batch_size)
    gradient_checkpointing = params.gradient_checkpointing
    if gradient_checkpointing is None:
        # Recomputing activations saves GPU memory for 7B models; on a CPU it only costs ~30 % time.
        gradient_checkpointing = device == "cuda"
    if max_length is None:
        if params.max_length == "fit":
            raise ValueError(
                "max_length='fit' is resolved from the rows: pass max_length= (keep_trainable_rows)"
            )
        max_length = params.max_length
    save_steps = params.save_steps or max(1, math.ceil(total / 10))
    per_epoch = params.eval_every == "epoch"
    if isinstance(params.eval_every, int):
        save_steps = params.eval_every  # every evaluation needs a checkpoint to return to
    selection: dict[str, Any] = {}
    if params.select_on == "validation":
        selection = {
            "eval_strategy": "epoch" if per_epoch else "steps",
            "eval_steps": None if per_epoch else save_steps,
            "load_best_model_at_end": True,  # the trainer keeps the best checkpoint beside the newest ones
            "metric_for_best_model": "eval_loss",
            "greater_is_better": False,
            "per_device_eval_batch_size": params.per_device_train_batch_size,
        }
    return SFTConfig(
        output_dir=str(output_dir),
        completion_only_loss=True,
        max_length=max_length,
        learning_rate=params.learning_rate,
        warmup_steps=params.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        num_train_epochs=params.num_train_epochs,
        max_steps=params.max_steps,
        per_device_train_batch_size=params.per_device_train_batch_size,
        # Per rank: the same effective batch on any number of processes (see socialite_utils.training.distributed).
        gradient_accumulation_steps=world_gradient_accumulation(
            params.per_device_train_batch_size, params.gradient_accumulation_steps, world_size()
        ),
        bf16=bool(precision.bf16) if precision is not None else False,
        fp16=bool(precision.fp16) if precision is not None else False,
        use_cpu=device == "cpu",
        activation_checkpointing=gradient_checkpointing,  # transformers 5's name for gradient checkpointing
        # batch_rebalance: the same examples per optimizer step as the default random sampler, sorted inside the
        # step. group_by_length: the kit's LengthBucketSampler (training/trainer.py).
        train_sampling_strategy=(
            "group_by_length"
            if params.group_by_length
            else "batch_rebalance"
            if params.sort_by_length
            else "random"
        ),
        seed=params.seed,
        data_seed=params.seed,
        logging_steps=params.logging_steps or max(1, round(total / 50)),
        logging_first_step=True,
        save_strategy="epoch" if per_epoch and selection else "steps",
        save_steps=save_steps,
        save_total_limit=params.save_total_limit,
        **selection,
        report_to=params.report_to,
        disable_tqdm=False,
        dataloader_num_workers=0,  # tokenized up front; workers only add process overhead here
    )


# ---------------------------------------------------------------- checks before training


def check_base_model_name(name: str) -> None:
    """A preset, a hub id (``org/name``) or a local model directory; else ValueError naming the presets."""
    try:
        models.resolve_model(name)
    except ValueError as e:
        raise ValueError(f"base_model: {e}") from None
    check_model_available(name)  # a hub id while offline: say so now, not after a minute of retries


def partial_dir_for(run_dir: Path) -> Path:
    """Where a run keeps its checkpoints until it is complete: ``runs/<run_name>.partial``."""
    return run_dir.parent / f"{run_dir.name}.partial"


def data_fingerprint(rows: list[dict]) -> str:
    """A short hash of the rows' prompts and completions (to tell a resumed run its data changed)."""
    payload = json.dumps([[r["prompt"], r["completion"]] for r in rows], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def _kit_partial(partial_dir: Path) -> bool:
    """A ``<run>.partial`` directory :func:`start_partial_run` wrote (a real directory holding its params.json)."""
    return (
        partial_dir.name.endswith(".partial")
        and partial_dir.is_dir()
        and not partial_dir.is_symlink()
        and (partial_dir / "params.json").is_file()
    )


def resolve_resume(
    params: TrainParams, partial_dir: Path, fingerprint: str | None = None, *, say: Any = print
) -> str | None:
    """The checkpoint to resume from (None for a fresh start); errors for every inconsistent case.

    Resuming needs a complete checkpoint, the same params (except the ``_RESUME_FREE_FIELDS``) and, when
    ``fingerprint`` is given, the same training rows. A newer checkpoint left incomplete by a kill during
    its save is skipped, and ``say`` names it with the missing or truncated file.
    """
    checkpoint_dir = partial_dir / "checkpoints"
    found, skipped = find_resume_checkpoint(checkpoint_dir)
    last = str(found) if found else None
    if last is None and _kit_partial(partial_dir):
        # killed before its first complete checkpoint: nothing to continue, with or without resume=True
        what = f"incomplete {describe_skipped(skipped)}" if skipped else "no checkpoint"
        say(f"{partial_dir} was left before its first complete checkpoint ({what}): starting the run again")
        if is_main_process():
            shutil.rmtree(partial_dir, ignore_errors=True)
        return None
    if params.resume:
        if last is None:
            what = f"no checkpoint in {checkpoint_dir}"
            if skipped:
                what = f"no complete checkpoint in {checkpoint_dir}: incomplete {describe_skipped(skipped)}"
            raise ValueError(
                f"resume=True but there is {what} (nothing to resume "
                f"for run '{params.run_name}'); set resume=False to start a fresh run"
            )
        saved = partial_dir / "params.json"
        if saved.exists():
            before = read_json(saved)
            now = params.to_dict()
            changed = sorted(
                k
                for k in now
                if k not in _RESUME_FREE_FIELDS and k in before and before[k] != _jsonable(now[k])
            )
            if changed:
                diffs = ", ".join(f"{k}: {before[k]!r} -> {now[k]!r}" for k in changed)
                raise ValueError(f"resume=True with different params than the interrupted run ({diffs})")
        saved_fp = partial_dir / "data_fingerprint.txt"
        if fingerprint and saved_fp.exists() and saved_fp.read_text().strip() != fingerprint:
            raise ValueError(
                "resume=True but the training rows differ from the interrupted run's (was the data run rebuilt?); "
                "set resume=False and delete the .partial directory to start over"
            )
        if skipped:
            say(
                f"skipping incomplete {describe_skipped(skipped)}: the run was stopped while saving it; "
                f"resuming from {found.name}, the newest complete checkpoint"
            )
        return last
    if partial_dir.exists():
        n_saved = len(list(checkpoint_dir.glob("checkpoint-*")))
        hint = f"{n_saved} checkpoint(s)" if n_saved else "no checkpoint"
        raise FileExistsError(
            f"an interrupted run left {partial_dir} ({hint}); set resume=True to continue it, "
            "or delete that directory to start over"
        )
    return None


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ---------------------------------------------------------------- training


@dataclass
class TrainResult:
    """What a finished run produced and measured."""

    run_dir: Path
    adapter_dir: Path
    global_step: int
    n_train: int
    n_dropped: int
    first_loss: float | None
    last_loss: float | None
    train_loss: float | None  # mean loss per optimizer step over the whole run (resumed runs included)
    trainable_params: int
    total_params: int
    peak_memory_mb: float
    train_seconds: float
    supervised_tokens_per_epoch: int
    resumed_from: str | None
    # select_on="validation": the chosen step and the validation loss at every evaluation ({} for "last")
    selection: dict[str, Any] = field(default_factory=dict)
    log_history: list[dict] = field(repr=False, default_factory=list)
    model: Any = field(repr=False, default=None)  # the trained PeftModel (in memory, train mode off)
    tokenizer: Any = field(repr=False, default=None)

    def summary(self) -> str:
        """A few human-readable lines for the notebook."""
        fl = "n/a" if self.first_loss is None else f"{self.first_loss:.4f}"
        ll = "n/a" if self.last_loss is None else f"{self.last_loss:.4f}"
        return "\n".join(
            [
                f"run: {self.run_dir}",
                f"examples trained on: {self.n_train} ({self.n_dropped} dropped: no trained token after truncation)",
                f"steps: {self.global_step}  loss: first {fl} -> last {ll}"
                + ("" if self.train_loss is None else f" (mean over the run {self.train_loss:.4f})"),
                f"trainable params: {self.trainable_params:,} of {self.total_params:,} "
                f"({100 * self.trainable_params / max(1, self.total_params):.2f} %)",
                f"time: {self.train_seconds:.1f} s  peak memory: {self.peak_memory_mb:.0f} MB",
                f"resumed from: {self.resumed_from or '-'}",
            ]
            + (
                [
                    f"kept the checkpoint of step {self.selection['selected_step']} of {self.global_step}: lowest "
                    f"validation loss {self.selection['best_validation_loss']:.4f} "
                    f"({self.selection['n_validation']} validation rows, {len(self.selection['evaluations'])} evaluations)"
                ]
                if self.selection
                else []
            )
        )


@dataclass
class TrainingPlan:
    """What :func:`plan_training` checked and decided before anything is loaded or written."""

    params: TrainParams
    run_dir: Path
    partial: Path  # runs/<run_name>.partial: checkpoints, params and the saved base model while training
    data_source: str
    rows: list[dict]  # the (sampled) rows to train on
    fingerprint: str
    resume_from: str | None
    layout: dict[str, Any]  # batch layout over processes
    validation_rows: list[dict] = field(default_factory=list)  # select_on="validation": the rows that choose
    validation_source: str | None = None


@dataclass
class TrainingSetup:
    """The loaded model and the rows kept for training (:func:`load_training_model`, :func:`keep_trainable_rows`)."""

    model: Any
    tokenizer: Any
    precision: Any
    kept: list[dict] = field(default_factory=list)
    dropped: int = 0
    supervised_tokens: int = 0
    by_task: Counter = field(default_factory=Counter)
    max_length: int = 0  # params.max_length, or what "fit" resolved to
    token_lengths: dict[str, int] = field(default_factory=dict)  # of the training rows: n, p50, p99, max
    validation_kept: list[dict] = field(default_factory=list)


def _sayer(verbose: bool):
    return print if verbose and is_main_process() else (lambda *a, **k: None)


def validation_rows_for(
    params: TrainParams, train_rows: list[dict], validation_rows: list[dict] | None = None
) -> tuple[list[dict], str | None]:
    """The rows that choose the checkpoint (``select_on="validation"``): the data run's validation split (or the
    rows given), restricted to the tasks trained on, up to ``validation_per_task`` of each; ([], None) otherwise."""
    if params.select_on != "validation":
        return [], None
    if validation_rows is None:
        source = str(resolve_run_dir(params.data_run) / "data" / "validation.jsonl")
        validation_rows = load_training_rows(params.data_run, split="validation")
    else:
        source = "validation rows passed to train_lora"
        if validation_rows:
            validate_rows(validation_rows, source=source)
    trained = {r.get("task") for r in train_rows}
    rows = [r for r in validation_rows if r.get("task") in trained]
    if not rows:
        raise ValueError(
            f"select_on='validation' but {source} holds no row of the trained tasks "
            f"({', '.join(sorted(map(str, trained)))}); use select_on='last' or a data run with a validation split"
        )
    return sample_per_task(rows, params.validation_per_task, params.seed), source


def plan_training(
    params: TrainParams,
    data_rows: list[dict] | None = None,
    *,
    validation_rows: list[dict] | None = None,
    verbose: bool = True,
) -> TrainingPlan:
    """Step 1: check every input (params, run name, data, resume, base model name); nothing is loaded or written."""
    params.validate()
    layout = batch_layout(params.per_device_train_batch_size, params.gradient_accumulation_steps)
    run_dir = new_run_dir(params.run_name, overwrite=params.overwrite)
    partial = partial_dir_for(run_dir)
    data_source = (
        "rows passed to train_lora" if data_rows is not None else str(resolve_run_dir(params.data_run))
    )
    if data_rows is None:
        data_rows = load_training_rows(params.data_run)
    elif not data_rows:
        raise ValueError("no train examples were given (data_rows is empty)")
    else:
        validate_rows(data_rows)
    rows = sample_rows(data_rows, params.max_train_examples, params.seed)
    chooser, chooser_source = validation_rows_for(params, rows, validation_rows)
    fingerprint = data_fingerprint(rows + chooser)
    resume_from = resolve_resume(params, partial, fingerprint, say=_sayer(verbose))
    check_base_model_name(params.base_model)
    return TrainingPlan(
        params, run_dir, partial, data_source, rows, fingerprint, resume_from, layout, chooser, chooser_source
    )


def load_training_model(plan: TrainingPlan, *, verbose: bool = True) -> TrainingSetup:
    """Step 2: set threads, precision and seed; load the base model and its tokenizer."""
    params = plan.params
    if params.torch_threads:
        # Process-wide. On a CPU shared with other jobs, fewer threads avoid OpenMP threads spinning while
        # their peer is descheduled (1 thread was ~3x faster than 2 on an oversubscribed 2-core box;
        # OMP_WAIT_POLICY=PASSIVE in the environment, set before torch loads, also helps).
        torch.set_num_threads(params.torch_threads)
    precision = models.choose_precision()
    _sayer(verbose)(f"precision: {precision.describe()}")
    set_seed(params.seed)
    model, tokenizer = models.load_model(params.base_model, precision=precision, seed=params.seed)
    return TrainingSetup(model=model, tokenizer=tokenizer, precision=precision)


def keep_trainable_rows(plan: TrainingPlan, setup: TrainingSetup, *, verbose: bool = True) -> TrainingSetup:
    """Step 3: drop (and count) the rows truncation would leave without a trained token; count trained tokens."""
    say = _sayer(verbose)
    setup.token_lengths = token_lengths(plan.rows, setup.tokenizer)
    max_length = plan.params.max_length
    if max_length == "fit":
        max_length = fit_max_length(setup.token_lengths, FIT_MULTIPLE)
        lengths = setup.token_lengths
        say(
            f"max_length fitted to the data: {max_length} tokens (rows: median {lengths['p50']}, "
            f"p99 {lengths['p99']}, longest {lengths['max']})"
        )
    setup.max_length = max_length
    setup.kept, setup.dropped = check_supervised_tokens(plan.rows, setup.tokenizer, max_length)
    if setup.dropped:
        say(
            f"dropped {setup.dropped} of {len(plan.rows)} examples: "
            f"no trained token left after truncation to {max_length}"
        )
    setup.supervised_tokens = supervised_token_count(setup.kept, setup.tokenizer, max_length)
    setup.by_task = Counter(r.get("task", "?") for r in setup.kept)
    say(
        f"training on {len(setup.kept)} examples from {len(setup.by_task)} task(s); "
        f"{setup.supervised_tokens} trained tokens per epoch"
    )
    if plan.validation_rows:
        setup.validation_kept, _ = check_supervised_tokens(plan.validation_rows, setup.tokenizer, max_length)
        say(f"choosing the checkpoint on the validation loss of {len(setup.validation_kept)} rows")
    return setup


def start_partial_run(plan: TrainingPlan, setup: TrainingSetup) -> None:
    """Step 4: all checks passed; write params, data fingerprint (and an in-process base model) to ``.partial``."""
    params, partial = plan.params, plan.partial
    wait_for_everyone()  # every rank has checked .partial before the main process writes it
    if is_main_process():
        partial.mkdir(parents=True, exist_ok=True)
        write_json(partial / "params.json", params.to_dict())
        (partial / "data_fingerprint.txt").write_text(plan.fingerprint + "\n")
        if params.base_model in IN_PROCESS_PRESETS and not (partial / "base_model").exists():
            with _quiet_progress():
                setup.model.save_pretrained(partial / "base_model")
                setup.tokenizer.save_pretrained(partial / "base_model")
    wait_for_everyone()


def build_trainer(
    plan: TrainingPlan,
    setup: TrainingSetup,
    lora_config: LoraConfig,
    *,
    callbacks: list[TrainerCallback] | None = None,
    verbose: bool = True,
) -> KitSFTTrainer:
    """Step 5: the SFT config and the trainer (LoRA applied); prints the label mask of two examples."""
    say = _sayer(verbose)
    params, kept, tokenizer = plan.params, setup.kept, setup.tokenizer
    sft_config = build_sft_config(
        params,
        plan.partial / "checkpoints",
        precision=setup.precision,
        n_examples=len(kept),
        max_length=setup.max_length or None,
    )
    eval_dataset = build_sft_dataset(setup.validation_kept) if setup.validation_kept else None
    # TRL's five preparation passes would each draw a progress bar; peft's wrap warns of a deprecated property
    with _quiet_progress(), models.peft_wrap_warnings_silenced():
        trainer = KitSFTTrainer(
            model=setup.model,
            args=sft_config,
            train_dataset=build_sft_dataset(kept),
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            peft_config=lora_config,
            callbacks=callbacks,
            compact_lm_head=params.compact_lm_head,
        )
    if len(trainer.train_dataset) != len(kept):  # our check and TRL's preparation must agree
        raise RuntimeError(f"TRL kept {len(trainer.train_dataset)} examples, the kit's check {len(kept)}")
    _use_kit_progress(trainer)
    for i in range(min(2, len(trainer.train_dataset))):
        ex = trainer.train_dataset[i]
        say(f"\nlabel mask, example {i + 1} ({kept[i].get('id', i)}):")
        say(show_label_mask(tokenizer, ex["input_ids"], ex["labels"]))
    return trainer


def train_trainer(
    plan: TrainingPlan, setup: TrainingSetup, trainer: KitSFTTrainer, *, verbose: bool = True
) -> TrainResult:
    """Step 6: train (resuming where asked); the result holds what was measured and the trained model."""
    say = _sayer(verbose)
    trainable, total = models.count_parameters(trainer.model)
    say(f"\ntrainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f} %)")
    if plan.resume_from:
        say(f"resuming from {plan.resume_from}")
    start = time.time()
    if plan.resume_from and checkpoint_is_final(plan.resume_from):
        # stopped after its last step (while the run was written): train() would take a step more
        say(f"{Path(plan.resume_from).name} is the run's last step: training had finished; writing the run")
        trainer.state = TrainerState.load_from_json(str(Path(plan.resume_from) / "trainer_state.json"))
        best = trainer.state.best_model_checkpoint if plan.params.select_on == "validation" else None
        trainer._load_from_checkpoint(best if best and Path(best).is_dir() else plan.resume_from)
    else:
        trainer.train(resume_from_checkpoint=plan.resume_from)
    seconds = time.time() - start
    peak = models.peak_memory_mb()
    say(f"peak memory: {peak:.0f} MB; training took {seconds:.1f} s")
    history = list(trainer.state.log_history)
    losses = loss_points(history)
    selection = _selection(trainer, len(setup.validation_kept)) if setup.validation_kept else {}
    if selection:
        say(
            f"kept step {selection['selected_step']}: lowest validation loss {selection['best_validation_loss']:.4f}"
        )
    return TrainResult(
        run_dir=plan.run_dir,
        adapter_dir=plan.run_dir / "adapter",
        global_step=trainer.state.global_step,
        n_train=len(setup.kept),
        n_dropped=setup.dropped,
        first_loss=losses[0][1] if losses else None,
        last_loss=losses[-1][1] if losses else None,
        train_loss=next(
            (h["train_loss"] for h in reversed(history) if "train_loss" in h), whole_run_train_loss(history)
        ),
        trainable_params=trainable,
        total_params=total,
        peak_memory_mb=peak,
        train_seconds=seconds,
        supervised_tokens_per_epoch=setup.supervised_tokens,
        resumed_from=plan.resume_from,
        selection=selection,
        log_history=history,
        model=trainer.model.eval(),
        tokenizer=setup.tokenizer,
    )


def _selection(trainer: KitSFTTrainer, n_validation: int) -> dict[str, Any]:
    """Which checkpoint the validation loss chose (the trainer has loaded it) and every evaluation's loss."""
    state = trainer.state
    evaluations = [
        {"step": h["step"], "epoch": h.get("epoch"), "validation_loss": h["eval_loss"]}
        for h in state.log_history
        if "eval_loss" in h
    ]
    if not evaluations:
        raise RuntimeError("select_on='validation' but the trainer never evaluated (no eval_loss in its log)")
    best = min(evaluations, key=lambda e: (e["validation_loss"], e["step"]))
    chosen = state.best_model_checkpoint
    if chosen and not chosen.endswith(f"checkpoint-{best['step']}"):
        raise RuntimeError(
            f"the trainer kept {chosen}, but the lowest validation loss was at step {best['step']}"
        )
    return {
        "select_on": "validation",
        "metric": "validation loss (mean NLL of the gold completion + EOS per token)",
        "n_validation": n_validation,
        "selected_step": best["step"],
        "best_validation_loss": best["validation_loss"],
        "evaluations": evaluations,
    }


def _train_summary(
    plan: TrainingPlan,
    setup: TrainingSetup,
    result: TrainResult,
    trainer: KitSFTTrainer,
    lora_config: LoraConfig | None,
) -> dict[str, Any]:
    params, sft_config = plan.params, trainer.args
    summary = {
        f.name: getattr(result, f.name)
        for f in fields(result)
        if f.name not in ("log_history", "model", "tokenizer")
    }
    summary["examples_by_task"] = dict(sorted(setup.by_task.items()))
    summary["data_fingerprint"] = plan.fingerprint
    summary["resolved"] = {  # what "auto"/None settings became on this machine
        "peft": params.peft,
        "target_modules": lora_config.target_modules if lora_config else None,
        "modules_to_save": lora_config.modules_to_save if lora_config else None,
        "max_length": setup.max_length,
        "token_lengths": setup.token_lengths,
        "effective_batch_size": params.effective_batch_size,
        **plan.layout,
        "logging_steps": sft_config.logging_steps,
        "save_steps": sft_config.save_steps,
        "gradient_checkpointing": bool(sft_config.gradient_checkpointing),
        "sampler": sft_config.train_sampling_strategy,
        "compact_lm_head": trainer.use_compact_lm_head,
        "torch_threads": torch.get_num_threads(),
    }
    return summary


def write_training_run(
    plan: TrainingPlan,
    setup: TrainingSetup,
    trainer: KitSFTTrainer,
    result: TrainResult,
    lora_config: LoraConfig | None,
) -> None:
    """Step 7: write ``runs/<run_name>/`` atomically (adapter or, for ``peft="none"``, model; params, provenance,
    log, summary, loss curve)."""
    params, partial = plan.params, plan.partial
    weights = WEIGHTS_DIR[params.peft]
    if world_size() > 1:  # every rank takes part: DeepSpeed/FSDP gather the adapter's weights
        trainer.save_model(str(partial / weights))
    if not is_main_process():
        wait_for_everyone()  # the main process writes the run; return once it is complete
        return
    with RunWriter(plan.run_dir, overwrite=params.overwrite) as tmp, _quiet_progress():
        if world_size() > 1:
            shutil.copytree(
                partial / weights, tmp / weights, ignore=shutil.ignore_patterns("training_args.bin")
            )
        else:
            trainer.model.save_pretrained(tmp / weights)
        setup.tokenizer.save_pretrained(tmp / weights)
        if (partial / "base_model").exists():
            shutil.copytree(partial / "base_model", tmp / "base_model")
        events = (
            partial / "checkpoints" / "runs"
        )  # TensorBoard's default folder under the trainer's output_dir
        if events.is_dir():  # the checkpoints go when the run is complete; the event files stay with the run
            shutil.copytree(events, tmp / "tensorboard")
        write_json(tmp / "params.json", params.to_dict())
        extra = {
            "stage": "training",
            "data": plan.data_source,
            "precision": setup.precision.describe(),
            "device_detail": models.describe_device(),
            "resumed_from": plan.resume_from,
            "batch": plan.layout,
            "checkpoint_choice": (
                {
                    "select_on": "validation",
                    "rows": plan.validation_source,
                    "selected_step": result.selection["selected_step"],
                    "of_steps": result.global_step,
                }
                if result.selection
                else {"select_on": "last", "selected_step": result.global_step}
            ),
        }
        write_json(tmp / "provenance.json", provenance(extra))
        _write_jsonl(tmp / "train_log.jsonl", result.log_history)
        write_json(tmp / "train_summary.json", _train_summary(plan, setup, result, trainer, lora_config))

        fig = plot_loss_curve(result.log_history, title=f"{params.run_name}: {params.base_model}")
        save_figure(fig, tmp / "loss_curve", formats=("png",))
    shutil.rmtree(partial, ignore_errors=True)
    wait_for_everyone()


def train_lora(
    params: TrainParams,
    data_rows: list[dict] | None = None,
    *,
    validation_rows: list[dict] | None = None,
    callbacks: list[TrainerCallback] | None = None,
    verbose: bool = True,
) -> TrainResult:
    """Train a LoRA adapter on ``data_rows`` (default: ``params.data_run``'s train split); write the run.

    Everything that can be wrong with the input is checked before training starts, and nothing is
    written until it has been: the data (present, well-formed), the run name (no finished run of
    that name unless ``overwrite``), ``resume`` (a checkpoint exists, same params), the base model
    name, and ``max_length`` (every kept example keeps a trained token). The steps, each callable
    alone: :func:`plan_training` -> :func:`load_training_model` -> :func:`keep_trainable_rows` ->
    :func:`lora_config_for` -> :func:`start_partial_run` -> :func:`build_trainer` -> :func:`train_trainer`
    -> :func:`write_training_run`.
    """
    plan = plan_training(params, data_rows, validation_rows=validation_rows, verbose=verbose)
    setup = load_training_model(plan, verbose=verbose)
    keep_trainable_rows(plan, setup, verbose=verbose)
    lora_config = lora_config_for(params)
    if lora_config is not None:  # an unknown target is named now, before .partial exists
        check_target_modules(setup.model, lora_config.target_modules)
    start_partial_run(plan, setup)  # all checks passed: from here on files are written (in .partial)
    trainer = build_trainer(plan, setup, lora_config, callbacks=callbacks, verbose=verbose)
    result = train_trainer(plan, setup, trainer, verbose=verbose)
    write_training_run(plan, setup, trainer, result, lora_config)
    return result


# ---------------------------------------------------------------- loading a trained run


def run_weights_dir(run_dir: str | os.PathLike) -> Path:
    """A training run's trained weights: ``model/`` (``peft="none"``), else its adapter folder (``adapter/``, or a
    downloaded Hub adapter repo itself, :func:`~socialite_utils.training.hub.adapter_dir_of`)."""
    run_dir = resolve_run_dir(run_dir)
    if (run_dir / WEIGHTS_DIR["none"]).is_dir():
        return run_dir / WEIGHTS_DIR["none"]
    return adapter_dir_of(run_dir)


def load_run_tokenizer(run_dir: str | os.PathLike) -> Any:
    """The tokenizer a run trained with (saved beside its weights; its pad token may be one the kit added). A
    downloaded Hub adapter repo (:mod:`socialite_utils.training.hub`) keeps it beside the adapter, or in its saved
    ``base_model/``; one published without any needs its base model's (:func:`load_adapter_and_tokenizer`)."""
    run_dir = resolve_run_dir(run_dir)
    weights = run_weights_dir(run_dir)
    for folder in (weights, run_dir / "base_model"):
        if (folder / "tokenizer.json").is_file():
            return AutoTokenizer.from_pretrained(folder)
    raise FileNotFoundError(
        f"{weights / 'tokenizer.json'} is missing: the adapter was saved without its tokenizer; load it with "
        "load_adapter_and_tokenizer(run, base_model), which uses the base model's"
    )


class FullFineTunedModel:
    """A ``peft="none"`` run's model with PeftModel's ``disable_adapter()``: inside it, calls go to the base model
    the run started from (loaded on first use, then kept), so the kit's base-vs-tuned code serves LoRA and fully
    fine-tuned runs alike. Everything else is the tuned model's."""

    def __init__(self, tuned: Any, load_base: Any):
        object.__setattr__(self, "_tuned", tuned)
        object.__setattr__(self, "_load_base", load_base)
        object.__setattr__(self, "_base", None)
        object.__setattr__(self, "_active", tuned)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._active, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._active(*args, **kwargs)

    def eval(self) -> FullFineTunedModel:  # noqa: D102
        self._tuned.eval()
        if self._base is not None:
            self._base.eval()
        return self

    @contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """The base model, as a LoRA model's ``disable_adapter()`` gives it."""
        if self._base is None:
            object.__setattr__(self, "_base", self._load_base().eval())
        object.__setattr__(self, "_active", self._base)
        try:
            yield
        finally:
            object.__setattr__(self, "_active", self._tuned)


def _load_base_model(run_dir: Path, name: str, precision: Any | None) -> tuple[Any, Any]:
    """(base model, its tokenizer or the folder holding it): in-process presets from the run's ``base_model/``."""
    if name in IN_PROCESS_PRESETS:
        saved = run_dir / "base_model"
        if not saved.is_dir():
            raise FileNotFoundError(f"{saved} is missing: a '{name}' run needs the base model it saved")
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(saved)  # fp32, as trained
        return (base.to(precision.device) if precision is not None else base), saved
    return models.load_model(name, precision=precision)


def load_adapter_and_tokenizer(
    run_dir: str | os.PathLike, base_model: str | None = None, *, precision: Any | None = None
) -> tuple[Any, Any]:
    """(the base model with the run's LoRA adapter, in eval mode; the tokenizer the adapter trained with).

    ``base_model`` defaults to the one in the run's params.json. In-process presets
    (``tiny-random``) are loaded from the run's saved ``base_model/``. ``run_dir`` may also be a downloaded Hub
    adapter repo (the adapter files at its top, see :mod:`socialite_utils.training.hub`); when it was published
    without a tokenizer, the base model's is used. A ``peft="none"`` run gives its whole model
    (:class:`FullFineTunedModel`, whose ``disable_adapter()`` is the base model it started from).
    """
    run_dir = resolve_run_dir(run_dir)
    params = read_json(run_dir / "params.json") if (run_dir / "params.json").exists() else {}
    weights = run_weights_dir(run_dir)
    if weights.name == WEIGHTS_DIR["none"] and weights.parent == run_dir:
        if base_model and base_model != params.get("base_model"):
            raise ValueError(
                f"{run_dir} holds a fully fine-tuned {params.get('base_model')!r} (model/), not {base_model!r}"
            )
        tuned, tokenizer = models.load_model(str(weights), precision=precision)
        trained_from = str(params.get("base_model"))
        model = FullFineTunedModel(tuned, lambda: _load_base_model(run_dir, trained_from, precision)[0])
        return model.eval(), tokenizer
    adapter_dir = weights
    if not adapter_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} has no adapter/ (is it a training run from notebook 02?)")
    own_tokenizer = adapter_dir != run_dir  # a run's adapter/ always holds its tokenizer; a Hub repo may not
    if problem := adapter_problem(adapter_dir, tokenizer=own_tokenizer):
        raise FileNotFoundError(f"{run_dir} has an incomplete LoRA adapter: {problem}")
    name = base_model or params.get("base_model")
    if not name:
        raise ValueError(f"{run_dir}/params.json names no base_model; pass base_model=")
    base, base_tokenizer = _load_base_model(run_dir, name, precision)
    with models.peft_wrap_warnings_silenced():
        model = PeftModel.from_pretrained(base, adapter_dir).eval()
    if (adapter_dir / "tokenizer.json").is_file():
        return model, AutoTokenizer.from_pretrained(adapter_dir)
    if isinstance(base_tokenizer, Path):
        base_tokenizer = AutoTokenizer.from_pretrained(base_tokenizer)
    return model, base_tokenizer


def load_adapter(
    run_dir: str | os.PathLike, base_model: str | None = None, *, precision: Any | None = None
) -> Any:
    """The base model with the run's LoRA adapter, in eval mode (:func:`load_adapter_and_tokenizer`'s model)."""
    return load_adapter_and_tokenizer(run_dir, base_model, precision=precision)[0]
