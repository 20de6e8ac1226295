"""Training rows: load and check a data run's train split, tokenize them exactly as TRL 1.16 does.

Used by ``train_lora``'s steps 1-3 (:mod:`socialite_utils.training.lora`):
``load_training_rows`` reads notebook 01's ``data/train.jsonl``; ``check_supervised_tokens`` drops (and
counts) the rows truncation to ``max_length`` would leave without a trained token; ``build_sft_dataset``
builds TRL's prompt-completion dataset; ``show_label_mask`` prints what is trained.
"""

from __future__ import annotations

import math
import os
import random
from collections import Counter
from typing import Any

from datasets import Dataset

from ..runs import resolve_run_dir
from ..schema import check_data_row, read_data_rows, row_where
from ..tokens import tokenize_like_trl  # TRL's tokenization, one home

# What training reads of a data row (train_lora also takes rows built in memory: only these are required).
TRAIN_ROW_FIELDS = ("prompt", "completion")


def load_training_rows(data_run: str | os.PathLike, split: str = "train") -> list[dict]:
    """The rows of one split of a data run written by notebook 01 (``<run>/data/<split>.jsonl``).

    Errors before any training: a missing run, a missing/empty split, a bad row
    (:func:`socialite_utils.schema.read_data_rows`; the message names the file, line and field).
    """
    run_dir = resolve_run_dir(data_run)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"data run {run_dir} does not exist (run notebook 01 first, or fix data_run)")
    path = run_dir / "data" / f"{split}.jsonl"
    if not path.exists():
        raise ValueError(f"data run {run_dir} has no {split} examples: {path} is missing")
    rows = read_data_rows(path, fields=TRAIN_ROW_FIELDS)
    if not rows:
        raise ValueError(
            f"data run {run_dir} has no {split} examples: {path} is empty "
            "(were all tasks 'related', i.e. held out? training needs at least one 'seen' task)"
        )
    validate_rows(rows, source=str(path))
    return rows


def validate_rows(rows: list[dict], *, source: str = "rows") -> str:
    """Check every row has a prompt and completion of one format (:func:`socialite_utils.schema.check_data_row`
    with :data:`TRAIN_ROW_FIELDS`); return "paper" (strings) or "chat"."""
    if not rows:
        raise ValueError(f"{source}: no train examples")
    kinds = Counter()
    for i, row in enumerate(rows, start=1):
        check_data_row(row, row_where(source, i, row), fields=TRAIN_ROW_FIELDS)
        kinds["paper" if isinstance(row["prompt"], str) else "chat"] += 1
    if len(kinds) > 1:
        raise ValueError(f"{source}: rows mix string and chat prompts ({dict(kinds)}); use one prompt_format")
    return next(iter(kinds))


def sample_rows(rows: list[dict], n: int | None, seed: int) -> list[dict]:
    """A seeded random subset of ``n`` rows in their original order (all rows when n is None)."""
    if n is None or n >= len(rows):
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in keep]


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


def token_lengths(rows: list[dict], tokenizer: Any) -> dict[str, int]:
    """The rows' full token lengths (prompt + completion + EOS, as TRL tokenizes them): median, p99 and maximum."""
    lengths = sorted(len(tokenize_like_trl(tokenizer, r["prompt"], r["completion"])[0]) for r in rows)
    if not lengths:
        raise ValueError("no rows to measure token lengths on")

    def quantile(q: float) -> int:  # nearest rank: a length some row really has
        return lengths[min(len(lengths) - 1, math.ceil(q * len(lengths)) - 1)]

    return {"n": len(lengths), "p50": quantile(0.5), "p99": quantile(0.99), "max": lengths[-1]}


def fit_max_length(lengths: dict[str, int], multiple: int = 64) -> int:
    """The smallest multiple of ``multiple`` that holds the longest row: nothing is truncated, little is padded."""
    return multiple * math.ceil(lengths["max"] / multiple)


def sample_per_task(rows: list[dict], n: int, seed: int) -> list[dict]:
    """Up to ``n`` rows of each task, a seeded random choice, in their original order."""
    by_task: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_task.setdefault(str(row.get("task", "?")), []).append(i)
    rng = random.Random(seed)
    keep = sorted(i for idx in by_task.values() for i in (idx if len(idx) <= n else rng.sample(idx, n)))
    return [rows[i] for i in keep]


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


__all__ = [
    "build_sft_dataset",
    "check_supervised_tokens",
    "load_training_rows",
    "sample_rows",
    "show_label_mask",
    "supervised_token_count",
    "tokenize_like_trl",
    "validate_rows",
]
