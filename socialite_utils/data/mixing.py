"""Mixing generalist instruction data into a data run (Shi et al. 2023, "Specialist or Generalist?").

A mixture is data: :class:`MixtureSpec` says how many generalist rows join the social-task train rows (a ratio to
the task rows, or a count), from which licences, and how large the held-out generalist slice is. The mixture is
seeded and deterministic; :func:`apply_mixture` (called by ``assembly.build_data(..., mixture=...)``) adds the rows
to the data run's ``train.jsonl``, keeps the held-out slice apart (``data/general_heldout.jsonl``; never trained
on) and writes a mixture table (rows per source and task) into the data card.

Generalist rows (``load_general_instructions``: ``{instruction, input, output, source}``) are rendered by the one
renderer (:func:`prompts.render_instruction_prompt` + :func:`prompts.render_completion`), so training treats them
exactly as social-task rows: loss on the response (+ EOS) only. :func:`~socialite_utils.evaluation.scoring.score_response_nll` measures how well a
model (base or adapter) still answers the held-out slice: the per-token negative log-likelihood of the responses.

The held-out slice is drawn with its own seed (``heldout_seed``), independent of the training seed, so every cell
of a grid that varies the seed scores the same held-out rows.
"""

from __future__ import annotations

import math
import os
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..prompts import FORMATS, render_completion, render_instruction_prompt
from ..runs import resolve_run_dir
from ..schema import read_data_rows
from .types import AssembledData
from .writing_sources import LICENCE_FILTERS, general_source_licences, load_general_instructions

GENERAL_TASK = "general_instructions"  # the task name generalist rows carry in a data run
GENERAL_CATEGORY = "general"
GENERAL_GROUP = "general"
GENERAL_TYPE = "instruction"


@dataclass
class MixtureSpec:
    """How generalist rows join the task rows of a data run (task rows per task: ``build_data``'s
    ``max_train_per_task``).

    Give at most one of ``general_ratio`` (generalist rows = ratio x task train rows, rounded half up) and
    ``general_count``; neither (or a ratio of 0) adds none but still holds the slice out, so every cell of a
    grid scores the same held-out rows.
    """

    general_ratio: float | None = None  # generalist rows per task-specific train row
    general_count: int | None = None  # or: a fixed number of generalist rows
    general_licence: str = "any"  # "any" or "commercial" (drops sources whose licence is non-commercial)
    general_sources: list[str] | None = None  # only these source tags / components (None: all)
    general_heldout: int = 200  # generalist rows held out for measuring retained general ability
    heldout_seed: int = 0  # seed of the held-out draw (independent of the training seed)
    draw_seed: int | None = None  # seed of the generalist train draw (None: the data run's seed)
    data_dir: str | None = (
        None  # the general_instructions bundle (None: $SOCIALITE_GENERAL_DIR or the default)
    )

    def __post_init__(self) -> None:
        if isinstance(self.general_sources, str):  # "alpaca" or "alpaca,dolly": names, never letters
            self.general_sources = [s.strip() for s in self.general_sources.split(",") if s.strip()]

    def validate(self) -> MixtureSpec:
        """Raise ValueError naming the bad parameter; return self."""
        sources = self.general_sources
        if sources is not None and (
            not isinstance(sources, list | tuple)
            or not sources
            or not all(isinstance(s, str) and s for s in sources)
        ):
            raise ValueError(
                f"general_sources must be a list of source names (or None for all), got {sources!r}"
            )
        if self.general_ratio is not None and self.general_count is not None:
            raise ValueError(
                f"give general_ratio or general_count, not both (got general_ratio={self.general_ratio}, "
                f"general_count={self.general_count})"
            )
        ratio = self.general_ratio
        if ratio is not None and (
            isinstance(ratio, bool)
            or not isinstance(ratio, int | float)
            or not math.isfinite(ratio)
            or ratio < 0
        ):
            raise ValueError(f"general_ratio must be a number >= 0, got {ratio!r}")
        for name in ("general_count", "general_heldout", "heldout_seed", "draw_seed"):
            value = getattr(self, name)
            if name in ("general_count", "draw_seed") and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if self.general_licence not in LICENCE_FILTERS:
            raise ValueError(
                f"general_licence must be one of {LICENCE_FILTERS}, got {self.general_licence!r}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def general_row(row: dict, *, split: str, fmt: str = "paper") -> dict:
    """A generalist record (from ``load_general_instructions``) as a data-run row: prompt + completion rendered by
    the one renderer; ``label`` is None (the answer is free text: ``output``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown prompt_format '{fmt}'; expected one of {FORMATS}")
    return {
        "id": f"{GENERAL_TASK}:{row['source']}:{row['line']}",
        "task": GENERAL_TASK,
        "category": GENERAL_CATEGORY,
        "task_type": GENERAL_TYPE,
        "group": GENERAL_GROUP,
        "split": split,
        "text": row["input"],
        "text_b": None,
        "instruction": row["instruction"],
        "output": row["output"],
        "label": None,
        "score": None,
        "labels": [],
        "source": row["source"],
        "licence": row["licence"],
        "prompt": render_instruction_prompt(row["instruction"], row["input"], fmt=fmt),
        "completion": render_completion(row["output"], fmt),
        "prompt_format": fmt,
        "few_shot_k": 0,
    }


def _key(row: dict) -> str:
    return " ".join(row["instruction"].lower().split()) + "\x1f" + " ".join(row["input"].lower().split())


def split_general(rows: Sequence[dict], heldout: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(trainable pool, held-out slice): ``heldout`` rows drawn with ``seed``; pool rows whose normalised
    instruction + input equals a held-out row's are dropped too. Both keep the file's order."""
    if heldout > len(rows):
        raise ValueError(f"general_heldout={heldout} but only {len(rows)} generalist rows are available")
    picked = set(random.Random(f"{seed}|general|heldout").sample(range(len(rows)), heldout))
    held = [r for i, r in enumerate(rows) if i in picked]
    held_keys = {_key(r) for r in held}
    pool = [r for i, r in enumerate(rows) if i not in picked and _key(r) not in held_keys]
    return pool, held


def general_rows_wanted(spec: MixtureSpec, n_task_rows: int) -> int:
    """How many generalist rows the spec asks for next to ``n_task_rows`` task train rows (ratio: rounded half up)."""
    if spec.general_count is not None:
        return spec.general_count
    if not spec.general_ratio:
        return 0
    return math.floor(spec.general_ratio * n_task_rows + 0.5)


def _describe_source(spec: MixtureSpec) -> str:
    parts = [f"general_licence={spec.general_licence!r}"]
    if spec.general_sources:
        parts.append(f"general_sources={spec.general_sources}")
    return ", ".join(parts)


def build_mixture_rows(
    spec: MixtureSpec, n_task_rows: int, *, seed: int = 0, fmt: str = "paper"
) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """(generalist train rows, held-out rows, info) for a spec next to ``n_task_rows`` task rows.

    The train draw uses ``seed`` (the data run's); asking for more rows than the pool holds raises ValueError
    naming the parameter and the numbers.
    """
    spec.validate()
    records = load_general_instructions(
        spec.data_dir, licence=spec.general_licence, sources=spec.general_sources
    )
    pool, held = split_general(records, spec.general_heldout, spec.heldout_seed)
    wanted = general_rows_wanted(spec, n_task_rows)
    if wanted > len(pool):
        asked = (
            f"general_count={spec.general_count}"
            if spec.general_count is not None
            else f"general_ratio={spec.general_ratio} x {n_task_rows} task rows"
        )
        raise ValueError(
            f"{asked} asks for {wanted} generalist rows, but only {len(pool)} are available "
            f"({len(records)} rows with {_describe_source(spec)}, minus general_heldout={spec.general_heldout} held "
            "out); lower the ratio/count or the held-out slice"
        )
    rng = random.Random(f"{seed if spec.draw_seed is None else spec.draw_seed}|general|train")
    picked = sorted(rng.sample(range(len(pool)), wanted))
    train = [general_row(pool[i], split="train", fmt=fmt) for i in picked]
    heldout = [general_row(r, split="heldout", fmt=fmt) for r in held]
    licences = general_source_licences(spec.data_dir)
    info = {
        "spec": spec.to_dict(),
        "task_train_rows": n_task_rows,
        "general_rows": wanted,
        "available_after_filters": len(records),
        "pool_after_heldout": len(pool),
        "heldout_rows": len(heldout),
        "sources_used": dict(sorted(Counter(r["source"] for r in train).items())),
        "licences": {name: c["licence"] for name, c in licences.items()},
    }
    return train, heldout, info


def mixture_rows_table(train_rows: Sequence[dict]) -> list[dict]:
    """Rows per (source, task) of a train split: social tasks under "social_tasks", generalist rows per source."""
    counts = Counter(
        (r.get("source") or "social_tasks", r["task"])
        if r["task"] == GENERAL_TASK
        else ("social_tasks", r["task"])
        for r in train_rows
    )
    total = sum(counts.values()) or 1
    return [
        {"source": src, "task": task, "rows": n, "share": round(n / total, 4)}
        for (src, task), n in sorted(counts.items())
    ]


def apply_mixture(data: AssembledData, spec: MixtureSpec, *, seed: int, fmt: str) -> AssembledData:
    """Add the spec's generalist rows to ``data``'s train split (in place; returned), keep the held-out slice in
    ``data.general_heldout`` and record the mixture in the data card (``card["mixture"]``) and params."""
    n_task = len(data.splits["train"])
    train, heldout, info = build_mixture_rows(spec, n_task, seed=seed, fmt=fmt)
    data.splits["train"] = data.splits["train"] + train
    data.general_heldout = heldout
    info["table"] = mixture_rows_table(data.splits["train"])
    data.card["mixture"] = info
    data.card["totals"] = {s: len(rs) for s, rs in data.splits.items()}
    data.card["totals"]["general_heldout"] = len(heldout)
    data.card.setdefault("notes", []).append(
        "generalist rows (task 'general_instructions') are train rows only; data/general_heldout.jsonl is never "
        "trained on (it measures retained general ability)"
    )
    data.params["mixture"] = spec.to_dict()
    return data


def load_general_heldout(data_run: str | os.PathLike) -> list[dict]:
    """The held-out generalist rows of a data run (``data/general_heldout.jsonl``); errors say what is missing."""
    path = resolve_run_dir(data_run) / "data" / "general_heldout.jsonl"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: build the data run with a mixture (build_data(..., mixture=MixtureSpec(...)))"
        )
    return read_data_rows(path)


def mixture_from_params(
    general_ratio: float | None = None,
    general_count: int | None = None,
    general_licence: str = "any",
    general_heldout: int = 200,
    **more: Any,
) -> MixtureSpec | None:
    """Notebook 01's parameters as a validated :class:`MixtureSpec`, or None when neither a ratio nor a count is
    given (no mixing: the data run is exactly as before)."""
    if general_ratio is None and general_count is None:
        return None
    return MixtureSpec(
        general_ratio, general_count, general_licence, **more, general_heldout=general_heldout
    ).validate()


def format_mixture(data: AssembledData | dict) -> str:
    """Which generalist rows a data run uses (``AssembledData`` or a data card): rows per source and task, held-out
    size, the sources' licences."""
    info = (data if isinstance(data, dict) else data.card).get("mixture")
    if not info:
        return "no generalist rows (no mixture)"
    lines = [
        f"generalist rows: {info['general_rows']} next to {info['task_train_rows']} task rows "
        f"(licence filter {info['spec']['general_licence']!r}; held out: {info['heldout_rows']})",
        *(f"  {t['source']:<28} {t['task']:<22} {t['rows']:>6}  {t['share']:.1%}" for t in info["table"]),
        "licences as stated: " + "; ".join(f"{k}: {v}" for k, v in info["licences"].items()),
    ]
    return "\n".join(lines)
