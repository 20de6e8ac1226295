"""Generation (rewriting) tasks in a data run: the part of :func:`socialite_utils.data.assembly.build_data` that
differs from classification, and the generalist-data mixing of the Writing-Alpaca recipe.

A generation row has the classification row's fields (``id``, ``task``, ``category``, ``task_type``, ``group``,
``split``, ``text`` = the source, ``prompt``, ``completion``, ``prompt_format``, ...) with ``label`` = the
training target and ``references`` = every reference (kept in the evaluation rows for scoring), plus the
instruction wording used: ``wording`` (``None`` = the task's main instruction, else the index into its
``variants``) and ``instruction`` (its text).

Wordings: in TRAINING one is drawn per example from the main instruction and the variants with a seeded stream
(``seed|task|train``), so a different seed gives a different draw; in EVALUATION each example's wording is a
function of the task and the example id only (not of the seed), so every model and every run is scored on the
same prompt for the same example.

Mixing: ``build_data(..., mixture=...)`` appends generalist instruction rows to the train split as task
``general_instructions`` (the one mechanism, :mod:`socialite_utils.data.mixing`, shared with notebook 06);
:func:`select_mixture` then picks what one model trains on ("tasks", "tasks+general", "general").
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from ..prompts import render_completion, render_prompt
from ..registry import Task
from .loaders import SPLITS
from .types import DataParams
from .writing_sources import load_generation_split

GENERAL_TASK = Task(
    name="general_instructions",
    suite="general",
    category="general",
    type="generation",
    group="seen",
    labels=[],
    instruction="",
    metrics=[],
)
MIXTURES = ("tasks", "tasks+general", "general")


def wordings(task: Task) -> list[tuple[int | None, str]]:
    """``[(None, main instruction), (0, variants[0]), ...]``: every wording of a generation task."""
    return [(None, task.instruction)] + [
        (i, " ".join(v["instruction"].split())) for i, v in enumerate(task.variants)
    ]


def eval_wording(task: Task, example_id: str) -> tuple[int | None, str]:
    """The wording FIXED for one evaluation example: a hash of (task, id), independent of any seed."""
    options = wordings(task)
    digest = hashlib.sha256(f"{task.name}|{example_id}".encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


def _generation_row(task: Task, rec: dict, split: str, wording: tuple[int | None, str], fmt: str) -> dict:
    index, instruction = wording
    return {
        "id": f"{task.name}:{split}:{rec['line']}",
        "task": task.name,
        "category": task.category,
        "task_type": task.type,
        "group": task.group,
        "split": split,
        "text": rec["source"],
        "text_b": None,
        "label": rec["target"],
        "score": None,
        "labels": [],
        "references": list(rec["references"]),
        "wording": index,
        "instruction": instruction,
        "prompt": render_prompt(task, rec["source"], fmt=fmt, instruction=instruction),
        "completion": render_completion(rec["target"], fmt),
        "prompt_format": fmt,
        "few_shot_k": 0,
    }


def build_generation_rows(task: Task, params: DataParams) -> tuple[dict[str, list[dict]], dict[str, Any]]:
    """One generation task's rows per split and its data-card entry, with :func:`assembly.build_data`'s options
    (``prompt_format``, ``seed``, the caps, ``writing_dir``; ``few_shot_k`` only warns: prompts are zero-shot).

    A task declared ``no_data`` gives no rows and a card entry ``{"no_data": reason}``. Records with an empty
    source are impossible (the loader rejects them); sources repeated across or within splits are dropped
    (evaluation splits win) and counted; caps are seeded random samples kept in file order.
    """
    card: dict[str, Any] = {"category": task.category, "type": task.type, "group": task.group}
    if task.no_data:
        return {s: [] for s in SPLITS}, {**card, "no_data": task.no_data}

    wanted = SPLITS if task.group == "seen" else ("test",)
    fmt, seed = params.prompt_format, params.seed
    raw = {s: load_generation_split(task, s, params.writing_dir) for s in wanted}
    counts: dict[str, dict[str, int]] = {}
    seen_keys: set[str] = set()
    for split in ("test", "validation", "train"):
        if split not in raw:
            continue
        kept = []
        for rec in raw[split]:
            key = " ".join(rec["source"].lower().split())
            if key not in seen_keys:
                seen_keys.add(key)
                kept.append(rec)
        counts[split] = {"loaded": len(raw[split]), "duplicates_dropped": len(raw[split]) - len(kept)}
        cap = params.max_train_per_task if split == "train" else params.max_eval_per_task
        if cap is not None and len(kept) > cap:
            rng = random.Random(f"{seed}|{task.name}|{split}")
            kept = sorted(rng.sample(kept, cap), key=lambda r: r["line"])
        counts[split].update(
            capped_away=counts[split]["loaded"] - counts[split]["duplicates_dropped"] - len(kept)
        )
        counts[split]["kept"] = len(kept)
        raw[split] = kept
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    train_rng = random.Random(f"{seed}|{task.name}|train|wording")
    options = wordings(task)
    for split, recs in raw.items():
        for rec in recs:
            rid = f"{task.name}:{split}:{rec['line']}"
            wording = (
                options[train_rng.randrange(len(options))] if split == "train" else eval_wording(task, rid)
            )
            out[split].append(_generation_row(task, rec, split, wording, fmt))
    files = {s: recs[0]["file"] for s, recs in raw.items() if recs}
    warnings = (
        ["few_shot_k is ignored for generation tasks (their prompts are zero-shot)"]
        if params.few_shot_k
        else []
    )
    return out, {
        **card,
        "metrics": task.metrics,
        "instruction": task.instruction,
        "wordings": [w for _, w in options],
        "files": files,
        "counts": counts,
        "warnings": warnings,
    }


def select_mixture(train_rows: list[dict], mixture: str) -> list[dict]:
    """What one model trains on: ``"tasks"`` (no generalist rows), ``"tasks+general"`` (all), ``"general"``."""
    if mixture not in MIXTURES:
        raise ValueError(f"unknown mixture {mixture!r}; expected one of {MIXTURES}")
    is_general = [r["task"] == GENERAL_TASK.name for r in train_rows]
    if mixture == "tasks+general":
        rows = list(train_rows)
    else:
        want = mixture == "general"
        rows = [r for r, g in zip(train_rows, is_general, strict=True) if g == want]
    if not rows:
        raise ValueError(
            f"mixture {mixture!r} selects no train rows (generalist rows: {sum(is_general)} of {len(train_rows)};"
            " set general_train_rows > 0 (notebook 07) for the generalist mixtures)"
        )
    return rows
