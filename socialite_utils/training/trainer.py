"""The kit's SFTTrainer and its progress display (used by :mod:`socialite_utils.training.lora`).

``KitSFTTrainer`` adds CPU speed-ups that leave the optimisation unchanged and logs the loss at every
checkpoint step; ``KitProgressCallback`` replaces transformers' progress bars with one tqdm.auto bar
and one short line per log (``format_log_line``); ``_quiet_progress`` silences datasets' and
transformers' per-step bars while TRL prepares the data and while files are written.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from accelerate.utils import is_peft_model
from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
from torch.utils.data import Sampler
from tqdm.auto import tqdm
from transformers import ProgressCallback, TrainerCallback
from transformers.trainer_pt_utils import BatchRebalanceSampler
from transformers.utils import logging as hf_logging
from trl import SFTTrainer

from .checkpoints import whole_run_train_loss


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
        self.add_callback(_RestoreTokenCount(self))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:  # noqa: D102
        if "train_loss" in logs and getattr(self, "_initial_global_step", 0) > 0:
            # transformers averages over the steps of this call only; the history holds every step's loss
            whole = whole_run_train_loss(self.state.log_history)
            if whole is not None:
                logs = {**logs, "train_loss": whole}
        super().log(logs, start_time)

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy == "group_by_length" and hasattr(dataset, "__len__"):
            lengths = [len(ids) for ids in dataset["input_ids"]]
            return LengthBucketSampler(lengths, batch_size=self.args.per_device_train_batch_size, seed=seed)
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, BatchRebalanceSampler):
            sampler.seed = seed
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


class LengthBucketSampler(Sampler):
    """Micro-batches of similar length, in random order (the ``group_by_length`` training option).

    Each epoch: shuffle all examples, cut them into windows of ``window`` micro-batches, sort each window by
    length, cut it into micro-batches and shuffle the micro-batches of the whole epoch. Padding almost vanishes
    (similar lengths share a micro-batch) and, unlike transformers' ``group_by_length`` (longest to shortest
    within each window), the order of lengths -- and of tasks, whose texts differ in length -- stays random.
    Which examples share an optimizer step changes; ``sort_by_length`` keeps them and saves less.
    Seeded by the run's seed and the epoch (``set_epoch``), so a resumed run sees the same order.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, window: int = 50):
        self.lengths, self.batch_size, self.seed, self.window = list(lengths), batch_size, seed, window
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=g).tolist()
        size = self.window * self.batch_size
        batches = []
        for start in range(0, len(order), size):
            ranked = sorted(order[start : start + size], key=lambda i: self.lengths[i])
            batches += [ranked[i : i + self.batch_size] for i in range(0, len(ranked), self.batch_size)]
        for b in torch.randperm(len(batches), generator=g).tolist():
            yield from batches[b]


class _LogAtSaveCallback(TrainerCallback):
    """Log the loss on every step that saves a checkpoint, so the checkpoint's history covers all its steps."""

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save:
            control.should_log = True


class _RestoreTokenCount(TrainerCallback):
    """TRL counts the tokens trained on from 0 in every ``train()`` call; a resumed run continues the count it had
    at its checkpoint (the ``num_tokens`` logged at that step: the kit logs at every checkpoint step)."""

    def __init__(self, trainer: Any):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step > 0 and getattr(self.trainer, "_total_train_tokens", None) == 0:
            seen = next(
                (
                    h["num_tokens"]
                    for h in reversed(state.log_history)
                    if "num_tokens" in h and h.get("step", 0) <= state.global_step
                ),
                None,
            )
            if seen:
                self.trainer._total_train_tokens = int(seen)


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


__all__ = ["KitProgressCallback", "KitSFTTrainer", "format_log_line"]
