"""Training on several processes (``accelerate launch``): who writes, how the batch splits, which config.

One process (``python -m socialite_utils.training`` or a notebook) is the world of size 1 and every
function here is a no-op. Under ``accelerate launch --num_processes N`` (DDP, DeepSpeed ZeRO-2 or
FSDP) there are N ranks:

* the **effective batch** (examples per optimizer step) stays what the parameters say on one device,
  ``per_device_train_batch_size x gradient_accumulation_steps`` (the paper's 8 x 8 = 64); the
  accumulation each rank does is derived from it and the world size
  (:func:`world_gradient_accumulation`), and an effective batch that does not split evenly is an error
  naming the three numbers;
* only the **main process** writes the run directory, the ``.partial`` directory and the logs; the
  other ranks wait at a barrier (:func:`wait_for_everyone`), so the run appears once, complete.

``params.json`` keeps the parameters as asked (not the per-rank accumulation), so a run interrupted on
two processes resumes on one (or four) with the same effective batch and the same examples per step.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

# Shipped `accelerate launch --config_file` configs (package data); "deepspeed" is the default: see README.
ACCELERATE_CONFIGS = {
    "ddp": "ddp.yaml",
    "deepspeed": "deepspeed_zero2.yaml",
    "fsdp": "fsdp.yaml",
}
DEEPSPEED_JSON = "ds_zero2.json"


def world_size() -> int:
    """Number of processes of this launch (1 outside ``accelerate launch`` / ``torchrun``)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def process_state() -> Any | None:
    """accelerate's shared ``PartialState`` under a multi-process launch (initialises the process group and,
    on GPUs, makes ``cuda`` mean this rank's GPU, so the model loads there); None for one process."""
    if world_size() == 1:
        return None
    import torch
    from accelerate import PartialState

    if torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return PartialState()


def is_main_process() -> bool:
    """True on rank 0 (and for a single process): the one process that writes runs."""
    state = process_state()
    return state is None or state.is_main_process


def wait_for_everyone() -> None:
    """A barrier across ranks; nothing for a single process."""
    state = process_state()
    if state is not None:
        state.wait_for_everyone()


def world_gradient_accumulation(
    per_device_batch: int, gradient_accumulation_steps: int, n_processes: int
) -> int:
    """Accumulation steps per rank that keep the single-device effective batch on ``n_processes`` ranks.

    The effective batch is ``per_device_batch x gradient_accumulation_steps`` (as on one device); each
    optimizer step on N ranks sees ``per_device_batch x N x result`` examples, the same number.
    """
    effective = per_device_batch * gradient_accumulation_steps
    per_step_per_accumulation = per_device_batch * n_processes
    if effective % per_step_per_accumulation:
        raise ValueError(
            f"the effective batch per_device_train_batch_size x gradient_accumulation_steps = "
            f"{per_device_batch} x {gradient_accumulation_steps} = {effective} does not split over "
            f"{n_processes} processes x per_device_train_batch_size {per_device_batch} "
            f"(= {per_step_per_accumulation} examples per accumulation step); choose a per-device batch or "
            f"a process count that divides {effective}"
        )
    return effective // per_step_per_accumulation


def batch_layout(per_device_batch: int, gradient_accumulation_steps: int) -> dict[str, int]:
    """What a run records: world size, per-device batch, per-rank accumulation and the effective batch."""
    n = world_size()
    accumulation = world_gradient_accumulation(per_device_batch, gradient_accumulation_steps, n)
    return {
        "world_size": n,
        "per_device_train_batch_size": per_device_batch,
        "gradient_accumulation_steps_per_process": accumulation,
        "effective_batch_size": per_device_batch * accumulation * n,
    }


def accelerate_config_path(name: str = "deepspeed") -> Path:
    """The shipped accelerate config ``ddp`` | ``deepspeed`` (ZeRO-2, the default) | ``fsdp`` as a file path."""
    if name not in ACCELERATE_CONFIGS:
        raise ValueError(f"unknown accelerate config {name!r}; choose one of {sorted(ACCELERATE_CONFIGS)}")
    return Path(str(resources.files("socialite_utils") / "accelerate_configs" / ACCELERATE_CONFIGS[name]))


def launch_args(name: str = "deepspeed") -> list[str]:
    """``accelerate launch`` arguments for a shipped config (DeepSpeed: its JSON by absolute path, since
    accelerate reads a relative ``deepspeed_config_file`` from the current directory)."""
    path = accelerate_config_path(name)
    args = ["--config_file", str(path)]
    if name == "deepspeed":
        args += ["--deepspeed_config_file", str(path.parent / DEEPSPEED_JSON)]
    return args


__all__ = [
    "ACCELERATE_CONFIGS",
    "accelerate_config_path",
    "batch_layout",
    "is_main_process",
    "launch_args",
    "process_state",
    "wait_for_everyone",
    "world_gradient_accumulation",
    "world_size",
]
