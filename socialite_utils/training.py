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
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import is_peft_model
from datasets import Dataset
from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
from peft import LoraConfig, PeftModel
from tqdm.auto import tqdm
from transformers import AutoTokenizer, ProgressCallback, TrainerCallback, set_seed
from transformers.trainer_pt_utils import BatchRebalanceSampler
from transformers.utils import logging as hf_logging
from trl import SFTConfig, SFTTrainer

from . import distributed, models
from .checkpoints import adapter_problem, describe_skipped, find_resume_checkpoint, whole_run_train_loss
from .offline import check_model_available
from .prompts import prompt_text
from .runs import (
    RunWriter,
    check_run_name,
    new_run_dir,
    provenance,
    read_json,
    read_jsonl,
    resolve_run_dir,
    write_json,
)
from .runs import write_jsonl as _write_jsonl

# The paper's LoRA recipe (Dey et al. 2024, following Alpaca-LoRA).
PAPER_TARGET_MODULES = ("q_proj", "v_proj")
# Presets built in-process (random weights, tokenizer trained on the run's texts): their base model
# cannot be re-created from a name, so a run saves it next to the adapter.
IN_PROCESS_PRESETS = ("tiny-random",)


# ---------------------------------------------------------------- parameters


@dataclass
class TrainParams:
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
    max_length: int = 512
    seed: int = 0
    resume: bool = False
    max_train_examples: int | None = None  # a seeded random subset (None = all rows)
    logging_steps: int | None = None  # None: about 50 log points over the run
    save_steps: int | None = None  # None: about 10 checkpoints over the run
    save_total_limit: int = 2
    gradient_checkpointing: bool | None = None  # None: on for CUDA (memory), off on CPU (speed)
    sort_by_length: bool = True  # sort each optimizer step's examples by length (less padding)
    compact_lm_head: bool = True  # CPU: run the LM head on supervised positions only
    torch_threads: int | None = None  # None: torch's default; 1 helps on a busy shared CPU
    overwrite: bool = False  # replace an existing finished run of the same name

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> TrainParams:
        """Build from a mapping (e.g. a notebook's ``globals()``), taking only the keys that are fields."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def validate(self) -> TrainParams:
        """Raise ValueError naming the first bad field; return self."""
        check_run_name(self.run_name)
        checks = {
            "lora_r": self.lora_r >= 1,
            "lora_alpha": self.lora_alpha > 0,
            "lora_dropout": 0 <= self.lora_dropout < 1,
            "learning_rate": self.learning_rate > 0,
            "warmup_ratio": 0 <= self.warmup_ratio < 1,
            "per_device_train_batch_size": self.per_device_train_batch_size >= 1,
            "gradient_accumulation_steps": self.gradient_accumulation_steps >= 1,
            "max_length": self.max_length >= 2,
            "save_total_limit": self.save_total_limit >= 1,
            "max_train_examples": self.max_train_examples is None or self.max_train_examples >= 1,
            "torch_threads": self.torch_threads is None or self.torch_threads >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"TrainParams.{name} = {getattr(self, name)!r} is out of range")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ValueError("set num_train_epochs > 0 or max_steps > 0")
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
            max_length=min(self.max_length, 256),
            save_steps=15,  # two checkpoints, not ten: saving dominates a 30-step run
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (written to params.json)."""
        return asdict(self)


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
_RESUME_FREE_FIELDS = {"resume", "overwrite", "logging_steps", "torch_threads"}


# ---------------------------------------------------------------- data


def load_training_rows(data_run: str | os.PathLike) -> list[dict]:
    """The train rows of a data run written by notebook 01 (``<run>/data/train.jsonl``).

    Errors before any training: a missing run, a missing/empty train split, rows without a
    prompt/completion (the message names the file and line).
    """
    run_dir = resolve_run_dir(data_run)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"data run {run_dir} does not exist (run notebook 01 first, or fix data_run)")
    path = run_dir / "data" / "train.jsonl"
    if not path.exists():
        raise ValueError(f"data run {run_dir} has no train examples: {path} is missing")
    rows = read_jsonl(path)
    if not rows:
        raise ValueError(
            f"data run {run_dir} has no train examples: {path} is empty "
            "(were all tasks 'related', i.e. held out? train needs at least one 'seen' task)"
        )
    validate_rows(rows, source=str(path))
    return rows


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, dict) and "role" in m and "content" in m for m in value
    )


def validate_rows(rows: list[dict], *, source: str = "rows") -> str:
    """Check every row has a prompt and completion of one format; return "paper" (strings) or "chat"."""
    if not rows:
        raise ValueError(f"{source}: no train examples")
    kinds = Counter()
    for i, row in enumerate(rows, start=1):
        where = f"{source}: line {i} (id {row.get('id', '?')})"
        for key in ("prompt", "completion"):
            if key not in row:
                raise ValueError(f"{where}: missing field '{key}'")
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, str) and isinstance(completion, str):
            kind = "paper"
        elif _is_messages(prompt) and _is_messages(completion):
            kind = "chat"
        else:
            raise ValueError(
                f"{where}: 'prompt' and 'completion' must both be strings or both be lists of chat messages, "
                f"got {type(prompt).__name__} and {type(completion).__name__}"
            )
        if kind == "paper" and not completion.strip():
            raise ValueError(f"{where}: empty 'completion'")
        kinds[kind] += 1
    if len(kinds) > 1:
        raise ValueError(f"{source}: rows mix string and chat prompts ({dict(kinds)}); use one prompt_format")
    return next(iter(kinds))


def sample_rows(rows: list[dict], n: int | None, seed: int) -> list[dict]:
    """A seeded random subset of ``n`` rows in their original order (all rows when n is None)."""
    if n is None or n >= len(rows):
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in keep]


def tokenize_like_trl(
    tokenizer: Any, prompt: str | list[dict], completion: str | list[dict]
) -> tuple[list[int], int]:
    """Token ids of prompt+completion(+EOS) and the prompt length, exactly as TRL 1.16's SFTTrainer builds them.

    Plain strings: TRL appends ``tokenizer.eos_token`` to the completion, tokenizes prompt and
    prompt+completion separately, and supervises everything after their common prefix. Chat
    messages: the chat template renders both (the prompt with the generation prompt); the
    template's end-of-turn token is the EOS.
    """
    if isinstance(prompt, str):
        if not completion.endswith(tokenizer.eos_token):
            completion = completion + tokenizer.eos_token
        prompt_ids = tokenizer(text=prompt)["input_ids"]
        full_ids = tokenizer(text=prompt + completion)["input_ids"]
    else:
        prompt_ids = tokenizer.apply_chat_template(
            prompt, tokenize=True, return_dict=True, add_generation_prompt=True
        )["input_ids"]
        full_ids = tokenizer.apply_chat_template(prompt + completion, tokenize=True, return_dict=True)[
            "input_ids"
        ]
    n_prompt = 0
    for a, b in zip(prompt_ids, full_ids, strict=False):
        if a != b:
            break
        n_prompt += 1
    return list(full_ids), n_prompt


def check_supervised_tokens(rows: list[dict], tokenizer: Any, max_length: int) -> tuple[list[dict], int]:
    """Drop the rows whose completion is cut away entirely by truncation to ``max_length``.

    Returns ``(kept_rows, dropped_count)``. TRL would drop such rows silently; the kit counts them
    so the caller can report it. If every row would be dropped, raises ValueError
    ("max_length N is shorter than every prompt").
    """
    kept = []
    shortest_prompt = None
    for row in rows:
        ids, n_prompt = tokenize_like_trl(tokenizer, row["prompt"], row["completion"])
        shortest_prompt = n_prompt if shortest_prompt is None else min(shortest_prompt, n_prompt)
        if min(len(ids), max_length) - n_prompt > 0:
            kept.append(row)
    if rows and not kept:
        raise ValueError(
            f"max_length {max_length} is shorter than every prompt: no example keeps a trained token "
            f"(the shortest prompt is {shortest_prompt} tokens); raise max_length"
        )
    return kept, len(rows) - len(kept)


def supervised_token_count(rows: list[dict], tokenizer: Any, max_length: int) -> int:
    """How many tokens one pass over ``rows`` trains on (completion + EOS, after truncation)."""
    total = 0
    for row in rows:
        ids, n_prompt = tokenize_like_trl(tokenizer, row["prompt"], row["completion"])
        total += max(0, min(len(ids), max_length) - n_prompt)
    return total


def build_sft_dataset(rows: list[dict]) -> Dataset:
    """A TRL prompt-completion dataset (columns ``prompt``, ``completion``, ``id``) from data-run rows."""
    validate_rows(rows)
    return Dataset.from_dict(
        {
            "prompt": [r["prompt"] for r in rows],
            "completion": [r["completion"] for r in rows],
            "id": [str(r.get("id", i)) for i, r in enumerate(rows)],
        }
    )


def show_label_mask(tokenizer: Any, input_ids: list[int], labels: list[int], *, context: int = 6) -> str:
    """A token-by-token view of one training sequence: which tokens are trained (label != -100).

    Prompt tokens are summarised except the last ``context`` ones, so the view stays short.
    """
    tokens = tokenizer.convert_ids_to_tokens(list(input_ids))
    trained = [i for i, lab in enumerate(labels) if lab != -100]
    first = trained[0] if trained else len(tokens)
    lines = [
        f"{len(tokens)} tokens, {len(trained)} trained (label != -100), {first} prompt tokens not trained"
    ]
    lines.append(f"{'pos':>5}  {'token':<24}{'id':>8}  label")
    start = max(0, first - context)
    if start > 0:
        lines.append(f"{'':>5}  ... {start} earlier prompt tokens, all -100 ...")
    for i in range(start, len(tokens)):
        lab = labels[i]
        mark = "-100" if lab == -100 else f"{lab}  <- trained"
        if i == len(tokens) - 1 and lab == tokenizer.eos_token_id:
            mark += " (EOS)"
        lines.append(f"{i:>5}  {tokens[i]!r:<24}{input_ids[i]:>8}  {mark}")
    return "\n".join(lines)


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


def lora_config_for(params: TrainParams) -> LoraConfig:
    """The run's LoraConfig, with ``modules_to_save="auto"`` resolved for its base model."""
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
) -> SFTConfig:
    """SFTConfig for ``params``: completion-only loss, the precision's bf16/fp16 (both False on CPU), seeds."""
    device = _device_type(precision)
    total = planned_steps(params, n_examples or params.effective_batch_size)
    gradient_checkpointing = params.gradient_checkpointing
    if gradient_checkpointing is None:
        # Recomputing activations saves GPU memory for 7B models; on a CPU it only costs ~30 % time.
        gradient_checkpointing = device == "cuda"
    return SFTConfig(
        output_dir=str(output_dir),
        completion_only_loss=True,
        max_length=params.max_length,
        learning_rate=params.learning_rate,
        warmup_steps=params.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        num_train_epochs=params.num_train_epochs,
        max_steps=params.max_steps,
        per_device_train_batch_size=params.per_device_train_batch_size,
        # Per rank: the same effective batch on any number of processes (see socialite_utils.distributed).
        gradient_accumulation_steps=distributed.world_gradient_accumulation(
            params.per_device_train_batch_size, params.gradient_accumulation_steps, distributed.world_size()
        ),
        bf16=bool(precision.bf16) if precision is not None else False,
        fp16=bool(precision.fp16) if precision is not None else False,
        use_cpu=device == "cpu",
        activation_checkpointing=gradient_checkpointing,  # transformers 5's name for gradient checkpointing
        # Same examples per optimizer step as the default random sampler; sorted inside the step.
        train_sampling_strategy="batch_rebalance" if params.sort_by_length else "random",
        seed=params.seed,
        data_seed=params.seed,
        logging_steps=params.logging_steps or max(1, round(total / 50)),
        logging_first_step=True,
        save_strategy="steps",
        save_steps=params.save_steps or max(1, math.ceil(total / 10)),
        save_total_limit=params.save_total_limit,
        report_to="none",
        disable_tqdm=False,
        dataloader_num_workers=0,  # tokenized up front; workers only add process overhead here
    )


# ---------------------------------------------------------------- trainer


class KitSFTTrainer(SFTTrainer):
    """SFTTrainer with two CPU speed-ups that leave the optimisation unchanged.

    * ``compact_lm_head``: on devices without Triton (CPU, MPS), TRL's fused LM head scores every position
      (prompt and padding included) through the vocabulary projection. Here only the positions
      with a label are projected: the same loss, a fraction of the work for short completions.
    * the ``batch_rebalance`` sampler gets the run's seed (transformers builds it with its own
      default seed, 42, whatever ``args.seed`` says).

    Resuming: the loss is logged at every checkpoint step (so a checkpoint's log covers every step
    before it), and the final ``train_loss`` is the whole run's mean, not only the resumed steps'.
    """

    def __init__(self, *args: Any, compact_lm_head: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        text_config = self.model.config.get_text_config()
        plain_head = not any(
            getattr(text_config, name, None)
            for name in ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier")
        ) and getattr(text_config, "logits_scaling", None) in (None, 1, 1.0)
        self.use_compact_lm_head = (
            compact_lm_head
            and plain_head
            and self.args.device.type not in ("cuda", "xpu")  # where TRL's Triton head is not compact
            and self.args.loss_type == "nll"
            and self.label_smoother is None
            and self.compute_loss_func is None
            and not self.aux_loss_enabled
            and not self.padding_free
            and self.accelerator.num_processes == 1  # the compact path bypasses the DDP/DeepSpeed wrapper
        )
        self.add_callback(_LogAtSaveCallback())

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:  # noqa: D102
        if "train_loss" in logs and getattr(self, "_initial_global_step", 0) > 0:
            # transformers averages over the steps of this call only; the history holds every step's loss
            whole = whole_run_train_loss(self.state.log_history)
            if whole is not None:
                logs = {**logs, "train_loss": whole}
        super().log(logs, start_time)

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, BatchRebalanceSampler):
            sampler.seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return sampler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: D102
        if not self.use_compact_lm_head or return_outputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        labels = inputs["labels"]
        forward_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        forward_inputs["use_cache"] = False
        causal_lm = model.get_base_model() if is_peft_model(model) else model
        hidden = causal_lm.base_model(**forward_inputs).last_hidden_state
        # Next-token prediction: position t predicts label t+1; keep only supervised positions.
        shifted = labels[:, 1:]
        mask = shifted != -100
        targets = shifted[mask]
        logits = causal_lm.get_output_embeddings()(hidden[:, :-1][mask]).float()
        log_probs = torch.log_softmax(logits, dim=-1)
        token_log_probs = log_probs.gather(1, targets[:, None]).squeeze(1)
        num_tokens = mask.sum() if num_items_in_batch is None else num_items_in_batch
        loss = -token_log_probs.sum() / torch.as_tensor(num_tokens).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())

        # The same metrics TRL logs (entropy, token accuracy, tokens seen), now cheap: few positions.
        with torch.no_grad():
            n_valid = int(mask.sum())
            entropy = -(log_probs.exp() * log_probs).sum(-1).sum().item()
            correct = (logits.argmax(-1) == targets).sum().item()
        self._metrics[mode]["entropy"].append(entropy / n_valid if n_valid else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append(correct / n_valid if n_valid else 0.0)
        if mode == "train":
            self._total_train_tokens += int(inputs["attention_mask"].sum()) // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return loss


class _LogAtSaveCallback(TrainerCallback):
    """Log the loss on every step that saves a checkpoint, so the checkpoint's history covers all its steps."""

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save:
            control.should_log = True


def _interactive_progress() -> bool:
    """True for a terminal or a Jupyter widget bar; False for logs (papermill, CI, redirected output)."""
    return tqdm.__module__.startswith("tqdm.notebook") or sys.stderr.isatty()


def _progress_mininterval() -> float:
    """Seconds between progress-bar redraws: smooth on a terminal or widget, sparse in logs.

    A papermill log records every redraw of a text bar; 15 s keeps a 15-minute run to ~60 bar
    lines. ``TQDM_MININTERVAL`` in the environment wins.
    """
    if "TQDM_MININTERVAL" in os.environ:
        return float(os.environ["TQDM_MININTERVAL"])
    return 0.5 if _interactive_progress() else 15.0


def format_log_line(logs: dict[str, Any], state: Any) -> str:
    """One short line per logging step (instead of a printed dict)."""
    if "loss" not in logs:
        keep = {
            k: v for k, v in logs.items() if k in ("train_runtime", "train_samples_per_second", "train_loss")
        }
        return "done: " + "  ".join(f"{k} {v:.4g}" for k, v in keep.items())
    parts = [f"step {state.global_step}/{state.max_steps}", f"loss {logs['loss']:.4f}"]
    if "learning_rate" in logs:
        parts.append(f"lr {logs['learning_rate']:.2e}")
    if "mean_token_accuracy" in logs:
        parts.append(f"token_acc {logs['mean_token_accuracy']:.3f}")
    if "grad_norm" in logs:
        parts.append(f"grad_norm {float(logs['grad_norm']):.3g}")
    return "  ".join(parts)


class KitProgressCallback(TrainerCallback):
    """A tqdm.auto bar (widget in Jupyter, text elsewhere) with log-friendly redraws, one line per log."""

    def __init__(self) -> None:
        self.bar = None
        self.last_step = 0
        self.interactive = _interactive_progress()

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.last_step = state.global_step
            self.bar = tqdm(
                total=state.max_steps,
                initial=state.global_step,
                desc="training",
                unit="step",
                mininterval=_progress_mininterval(),
                dynamic_ncols=True,
            )

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.last_step)
            self.last_step = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs:
            line = format_log_line(logs, state)
            if self.interactive:
                self.bar.write(line)  # clears and redraws the bar around the line
            else:
                print(line, flush=True)  # a log: no redraw, the bar keeps its own sparse schedule

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _use_kit_progress(trainer: SFTTrainer) -> None:
    """Replace transformers' progress callbacks (text or HTML-table) with KitProgressCallback."""
    trainer.remove_callback(ProgressCallback)
    try:
        from transformers.utils.notebook import NotebookProgressCallback

        trainer.remove_callback(NotebookProgressCallback)
    except ImportError:  # notebook helpers need IPython; without it there is nothing to remove
        pass
    trainer.add_callback(KitProgressCallback())


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


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """Silence datasets' per-map and transformers' file-writing progress bars inside the block."""
    datasets_were_off = are_progress_bars_disabled()
    transformers_were_on = hf_logging.is_progress_bar_enabled()
    disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not datasets_were_off:
            enable_progress_bars()
        if transformers_were_on:
            hf_logging.enable_progress_bar()


def _model_train_texts(rows: list[dict]) -> list[str]:
    return [prompt_text(r["prompt"]) + " " + prompt_text(r["completion"]) for r in rows]


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
        )


def loss_points(log_history: list[dict]) -> list[tuple[int, float]]:
    """(step, loss) for every training log entry."""
    return [(int(h["step"]), float(h["loss"])) for h in log_history if "loss" in h and "step" in h]


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


def _sayer(verbose: bool):
    return print if verbose and distributed.is_main_process() else (lambda *a, **k: None)


def plan_training(
    params: TrainParams, data_rows: list[dict] | None = None, *, verbose: bool = True
) -> TrainingPlan:
    """Step 1: check every input (params, run name, data, resume, base model name); nothing is loaded or written."""
    params.validate()
    layout = distributed.batch_layout(params.per_device_train_batch_size, params.gradient_accumulation_steps)
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
    fingerprint = data_fingerprint(rows)
    resume_from = resolve_resume(params, partial, fingerprint, say=_sayer(verbose))
    check_base_model_name(params.base_model)
    return TrainingPlan(params, run_dir, partial, data_source, rows, fingerprint, resume_from, layout)


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
    model, tokenizer = models.load_model(
        params.base_model, precision=precision, train_texts=_model_train_texts(plan.rows), seed=params.seed
    )
    return TrainingSetup(model=model, tokenizer=tokenizer, precision=precision)


def keep_trainable_rows(plan: TrainingPlan, setup: TrainingSetup, *, verbose: bool = True) -> TrainingSetup:
    """Step 3: drop (and count) the rows truncation would leave without a trained token; count trained tokens."""
    say = _sayer(verbose)
    max_length = plan.params.max_length
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
    return setup


def start_partial_run(plan: TrainingPlan, setup: TrainingSetup) -> None:
    """Step 4: all checks passed; write params, data fingerprint (and an in-process base model) to ``.partial``."""
    params, partial = plan.params, plan.partial
    distributed.wait_for_everyone()  # every rank has checked .partial before the main process writes it
    if distributed.is_main_process():
        partial.mkdir(parents=True, exist_ok=True)
        write_json(partial / "params.json", params.to_dict())
        (partial / "data_fingerprint.txt").write_text(plan.fingerprint + "\n")
        if params.base_model in IN_PROCESS_PRESETS and not (partial / "base_model").exists():
            with _quiet_progress():
                setup.model.save_pretrained(partial / "base_model")
                setup.tokenizer.save_pretrained(partial / "base_model")
    distributed.wait_for_everyone()


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
        params, plan.partial / "checkpoints", precision=setup.precision, n_examples=len(kept)
    )
    with _quiet_progress():  # TRL's five preparation passes would each draw a progress bar
        trainer = KitSFTTrainer(
            model=setup.model,
            args=sft_config,
            train_dataset=build_sft_dataset(kept),
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
    trainer.train(resume_from_checkpoint=plan.resume_from)
    seconds = time.time() - start
    peak = models.peak_memory_mb()
    say(f"peak memory: {peak:.0f} MB; training took {seconds:.1f} s")
    history = list(trainer.state.log_history)
    losses = loss_points(history)
    return TrainResult(
        run_dir=plan.run_dir,
        adapter_dir=plan.run_dir / "adapter",
        global_step=trainer.state.global_step,
        n_train=len(setup.kept),
        n_dropped=setup.dropped,
        first_loss=losses[0][1] if losses else None,
        last_loss=losses[-1][1] if losses else None,
        train_loss=next((h["train_loss"] for h in reversed(history) if "train_loss" in h), None),
        trainable_params=trainable,
        total_params=total,
        peak_memory_mb=peak,
        train_seconds=seconds,
        supervised_tokens_per_epoch=setup.supervised_tokens,
        resumed_from=plan.resume_from,
        log_history=history,
        model=trainer.model.eval(),
        tokenizer=setup.tokenizer,
    )


def _train_summary(
    plan: TrainingPlan,
    setup: TrainingSetup,
    result: TrainResult,
    trainer: KitSFTTrainer,
    lora_config: LoraConfig,
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
        "target_modules": lora_config.target_modules,
        "modules_to_save": lora_config.modules_to_save,
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
    lora_config: LoraConfig,
) -> None:
    """Step 7: write ``runs/<run_name>/`` atomically (adapter, params, provenance, log, summary, loss curve)."""
    params, partial = plan.params, plan.partial
    if distributed.world_size() > 1:  # every rank takes part: DeepSpeed/FSDP gather the adapter's weights
        trainer.save_model(str(partial / "adapter"))
    if not distributed.is_main_process():
        distributed.wait_for_everyone()  # the main process writes the run; return once it is complete
        return
    with RunWriter(plan.run_dir, overwrite=params.overwrite) as tmp, _quiet_progress():
        if distributed.world_size() > 1:
            shutil.copytree(
                partial / "adapter", tmp / "adapter", ignore=shutil.ignore_patterns("training_args.bin")
            )
        else:
            trainer.model.save_pretrained(tmp / "adapter")
        setup.tokenizer.save_pretrained(tmp / "adapter")
        if (partial / "base_model").exists():
            shutil.copytree(partial / "base_model", tmp / "base_model")
        write_json(tmp / "params.json", params.to_dict())
        extra = {
            "stage": "training",
            "data": plan.data_source,
            "precision": setup.precision.describe(),
            "device_detail": models.describe_device(),
            "resumed_from": plan.resume_from,
            "batch": plan.layout,
        }
        write_json(tmp / "provenance.json", provenance(extra))
        _write_jsonl(tmp / "train_log.jsonl", result.log_history)
        write_json(tmp / "train_summary.json", _train_summary(plan, setup, result, trainer, lora_config))
        from .plotting import plot_loss_curve, save_figure

        fig = plot_loss_curve(result.log_history, title=f"{params.run_name}: {params.base_model}")
        save_figure(fig, tmp / "loss_curve", formats=("png",))
    shutil.rmtree(partial, ignore_errors=True)
    distributed.wait_for_everyone()


def train_lora(
    params: TrainParams,
    data_rows: list[dict] | None = None,
    *,
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
    plan = plan_training(params, data_rows, verbose=verbose)
    setup = load_training_model(plan, verbose=verbose)
    keep_trainable_rows(plan, setup, verbose=verbose)
    lora_config = lora_config_for(params)
    start_partial_run(plan, setup)  # all checks passed: from here on files are written (in .partial)
    trainer = build_trainer(plan, setup, lora_config, callbacks=callbacks, verbose=verbose)
    result = train_trainer(plan, setup, trainer, verbose=verbose)
    write_training_run(plan, setup, trainer, result, lora_config)
    return result


# ---------------------------------------------------------------- loading a trained run


def load_run_tokenizer(run_dir: str | os.PathLike) -> Any:
    """The tokenizer a run trained with (saved in ``adapter/``; its pad token may be one the kit added)."""
    return AutoTokenizer.from_pretrained(resolve_run_dir(run_dir) / "adapter")


def load_adapter(
    run_dir: str | os.PathLike, base_model: str | None = None, *, precision: Any | None = None
) -> Any:
    """The base model with the run's LoRA adapter, in eval mode.

    ``base_model`` defaults to the one in the run's params.json. In-process presets
    (``tiny-random``) are loaded from the run's saved ``base_model/``.
    """
    run_dir = resolve_run_dir(run_dir)
    adapter_dir = run_dir / "adapter"
    if not adapter_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} has no adapter/ (is it a training run from notebook 02?)")
    if problem := adapter_problem(adapter_dir):
        raise FileNotFoundError(f"{run_dir} has an incomplete LoRA adapter: {problem}")
    params = read_json(run_dir / "params.json") if (run_dir / "params.json").exists() else {}
    name = base_model or params.get("base_model")
    if not name:
        raise ValueError(f"{run_dir}/params.json names no base_model; pass base_model=")
    if name in IN_PROCESS_PRESETS:
        saved = run_dir / "base_model"
        if not saved.is_dir():
            raise FileNotFoundError(f"{saved} is missing: a '{name}' run needs the base model it saved")
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(saved)  # fp32, as trained
        if precision is not None:
            base = base.to(precision.device)
    else:
        base, _ = models.load_model(name, precision=precision)
    model = PeftModel.from_pretrained(base, adapter_dir)
    return model.eval()


__all__ = [
    "PAPER_TARGET_MODULES",
    "KitProgressCallback",
    "KitSFTTrainer",
    "TrainParams",
    "TrainResult",
    "build_lora_config",
    "build_sft_config",
    "build_sft_dataset",
    "check_base_model_name",
    "check_supervised_tokens",
    "load_adapter",
    "load_run_tokenizer",
    "load_training_rows",
    "show_label_mask",
    "supervised_token_count",
    "tokenize_like_trl",
    "train_lora",
    "validate_rows",
]
