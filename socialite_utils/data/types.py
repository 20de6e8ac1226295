"""The data run's types: the options of :func:`~socialite_utils.data.assembly.build_data` and what it returns.

They live apart from the assembler so that the steps it calls (mixing generalist rows in, building
generation rows) can take and return them without importing the assembler back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..params import FromMapping
from ..registry import Task


@dataclass
class AssembledData:
    """The result of :func:`build_data`: rows per split, the few-shot pool and the data card."""

    splits: dict[str, list[dict]]
    pool: list[dict]
    card: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    general_heldout: list[dict] = field(default_factory=list)  # held-out generalist rows (mixing.py)


@dataclass(frozen=True)
class DataParams(FromMapping):
    """Every option of :func:`build_data` (notebook 01's parameters), the one list of them: the per-task steps,
    the generation-task assembler (writing_rows) and the data card's ``params`` all read it."""

    source: str = "local"
    data_dir: str | os.PathLike | None = None
    max_train_per_task: int | None = None
    max_eval_per_task: int | None = None
    balance_train: bool = False
    few_shot_k: int = 0
    prompt_format: str = "paper"
    seed: int = 0
    # The seed that draws the validation and test rows (None: ``seed``). Fixed while ``seed`` varies, every training
    # seed is scored on the same test rows, so the seeds' results pair row by row.
    eval_seed: int | None = None
    # Test rows an earlier run with these caps (and the same eval seed) drew are left out before capping: a
    # confirmatory run then scores rows that no configuration search has seen (e.g. [60, 100]).
    exclude_test_caps: list[int] | None = None
    instruction_from: str = "registry"
    text_normalization: str = "none"
    writing_dir: str | os.PathLike | None = None
    mixture: Any = None  # a mixing.MixtureSpec or its fields as a dict; recorded by apply_mixture, not here

    @classmethod
    def of(cls, params: DataParams | None = None, **options: Any) -> DataParams:
        """``params`` (default: the defaults) with ``options`` applied; an unknown option is a ValueError."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"unknown data option(s) {unknown}; the options are {known}")
        return replace(params or cls(), **options)

    def card_params(self, tasks: Sequence[Task]) -> dict[str, Any]:
        """The data card's ``params``: every option but the mixture, paths as strings, the task names."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "mixture"}
        for key in ("data_dir", "writing_dir"):
            values[key] = str(values[key]) if values[key] else None
        head = {"source": values.pop("source"), "data_dir": values.pop("data_dir")}
        return {**head, "tasks": [t.name for t in tasks], **values}
