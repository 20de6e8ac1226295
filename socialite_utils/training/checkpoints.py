"""Checkpoint integrity for interrupted training runs, and the whole run's training loss after a resume.

A process killed while transformers writes ``checkpoint-N`` leaves that directory empty or partial: the
Trainer writes the adapter (``adapter_model.safetensors``), the optimizer, scheduler and RNG states and, last,
``trainer_state.json``. ``find_resume_checkpoint`` returns the newest COMPLETE checkpoint and names the ones
it skipped with the file that is missing or truncated. ``check_weights_file`` is the same test for one
safetensors file (used by the evaluation plan for an adapter directory).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import zipfile
from pathlib import Path
from typing import Any

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# Written by Trainer._save_checkpoint, in this order; trainer_state.json comes last.
WEIGHT_FILES = ("adapter_model.safetensors", "model.safetensors")
TORCH_FILES = ("optimizer.pt", "scheduler.pt")
STATE_FILE = "trainer_state.json"


def safetensors_problem(path: Path) -> str | None:
    """None if ``path`` is a complete safetensors file; else what is wrong (missing, truncated, not safetensors)."""
    if not path.is_file():
        return f"{path.name} is missing"
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size:
                raise ValueError
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError):
        return f"{path.name} is truncated or not a safetensors file ({size} bytes)"
    if 8 + n + end != size:
        return f"{path.name} is truncated ({size} of {8 + n + end} bytes)"
    return None


def _torch_file_problem(path: Path) -> str | None:
    if not path.is_file():
        return f"{path.name} is missing"
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; its directory sits at the very end
        return f"{path.name} is truncated ({path.stat().st_size} bytes, no complete archive)"
    return None


def checkpoint_problem(checkpoint: Path) -> str | None:
    """None for a complete checkpoint directory; else the first missing or truncated file, in writing order."""
    if not any(checkpoint.iterdir()):
        return "the directory is empty"
    weights = next((checkpoint / n for n in WEIGHT_FILES if (checkpoint / n).exists()), None)
    problem = safetensors_problem(weights) if weights else f"{WEIGHT_FILES[0]} is missing"
    for name in TORCH_FILES:
        problem = problem or _torch_file_problem(checkpoint / name)
    rng = sorted(checkpoint.glob("rng_state*.pth"))
    problem = problem or (_torch_file_problem(rng[0]) if rng else "rng_state.pth is missing")
    if problem:
        return problem
    state = checkpoint / STATE_FILE
    if not state.is_file():
        return f"{STATE_FILE} is missing"
    try:
        json.loads(state.read_text())["global_step"]
    except (ValueError, KeyError, TypeError):
        return f"{STATE_FILE} is truncated"
    return None


def find_resume_checkpoint(checkpoint_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """(newest complete checkpoint or None, [(newer incomplete checkpoint, why), ...] newest first)."""
    if not checkpoint_dir.is_dir():
        return None, []
    found = [(int(m.group(1)), p) for p in checkpoint_dir.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    skipped: list[tuple[Path, str]] = []
    for _, path in sorted((s, p) for s, p in found if p.is_dir())[::-1]:
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        skipped.append((path, problem))
    return None, skipped


def continue_or_clear_partial(partial: Path, *, log: Any = print) -> bool:
    """For callers that continue interrupted runs on their own (notebooks 06 and 07): True when the run's
    ``<run>.partial/`` holds a complete checkpoint, so ``resume=True`` continues from it. A ``.partial`` left by a run
    killed before its first complete checkpoint holds nothing to continue: it is deleted (named through ``log``) and
    the run starts clean; False."""
    found, skipped = find_resume_checkpoint(partial / "checkpoints")
    if found is not None:
        return True
    if partial.is_dir() and not partial.is_symlink() and partial.name.endswith(".partial"):
        what = f"incomplete {describe_skipped(skipped)}" if skipped else "no checkpoint"
        log(f"{partial} was left before its first complete checkpoint ({what}): starting that run again")
        shutil.rmtree(partial)
    return False


def adapter_problem(adapter_dir: Path, *, tokenizer: bool = True) -> str | None:
    """None for a loadable run adapter directory; else which file is missing or truncated.

    A kit run saves the LoRA adapter (``adapter_config.json``, ``adapter_model.safetensors``) and the tokenizer
    it trained with (``tokenizer.json``) in ``adapter/``; PEFT and tokenizers fail obscurely without them.
    ``tokenizer=False``: an adapter published without its tokenizer (its base model's is used).
    """
    if not adapter_dir.is_dir():
        return f"{adapter_dir} is missing"
    for name in ("adapter_config.json", "tokenizer.json")[: 2 if tokenizer else 1]:
        if not (adapter_dir / name).is_file():
            return f"{adapter_dir / name} is missing"
    if (adapter_dir / "adapter_model.bin").is_file() and not (adapter_dir / WEIGHT_FILES[0]).exists():
        return None  # older PEFT weights format
    problem = safetensors_problem(adapter_dir / WEIGHT_FILES[0])
    return f"{adapter_dir}/{problem}" if problem else None


def describe_skipped(skipped: list[tuple[Path, str]]) -> str:
    """One clause per skipped checkpoint: ``checkpoint-6 (optimizer.pt is missing)``."""
    return "; ".join(f"{p.name} ({why})" for p, why in skipped)


def checkpoint_is_final(checkpoint: str | Path) -> bool:
    """Whether ``checkpoint`` was saved after the run's last optimizer step (its ``trainer_state.json``:
    ``global_step`` reached ``max_steps``): resuming from it has nothing left to train."""
    path = Path(checkpoint) / "trainer_state.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    steps, total = state.get("global_step"), state.get("max_steps")
    return isinstance(steps, int) and isinstance(total, int) and total > 0 and steps >= total


def whole_run_train_loss(log_history: list[dict]) -> float | None:
    """Mean training loss per optimizer step over the whole run, from the logged losses.

    Each logged ``loss`` is the mean over the steps since the previous log, so it is weighted by that span.
    After a resume the history holds the interrupted part (up to the checkpoint) and the resumed part; the kit
    logs at every checkpoint step, so together they cover every step once.
    """
    total, covered, last = 0.0, 0, 0
    for entry in log_history:
        if "loss" in entry and "step" in entry and int(entry["step"]) > last:
            step = int(entry["step"])
            total += float(entry["loss"]) * (step - last)
            covered += step - last
            last = step
    return total / covered if covered else None
