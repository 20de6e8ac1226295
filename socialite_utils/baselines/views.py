"""The rows a specialist baseline trains and is tested on (notebook 05): one :class:`TaskData` view per task of a
data run, and :class:`SystemOutput`, what every baseline system returns per task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..schema import LABELLED_TYPES, check_data_row, row_where

HELD_OUT = "not trainable: held out"


# --------------------------------------------------------------------------------------------------------
# Task views: the rows a baseline trains and is tested on
# --------------------------------------------------------------------------------------------------------


@dataclass
class TaskData:
    """One task's rows as the baselines see them (``train`` is the pool for related tasks)."""

    name: str
    category: str
    group: str
    type: str
    labels: list[str]
    pair: bool
    train: list[dict]
    train_source: str | None  # "train" | "fewshot_pool" | None (nothing to train on)
    validation: list[dict]
    test: list[dict]
    threshold: float | None = None  # regression: "high if score > threshold"
    # label counts of the train split before label-balanced sampling (data card), when notebook 01 balanced it:
    # the majority / stratified floors learn their prior from these natural shares
    natural_label_counts: dict[str, int] | None = None

    @property
    def is_regression(self) -> bool:
        return self.type == "regression"


# What a baseline reads of a data row (rows built in memory need only these).
_ROW_FIELDS = ("id", "task", "category", "group", "task_type", "text", "label", "labels")


def _check_row(row: dict, where: str) -> None:
    """:func:`socialite_utils.schema.check_data_row`, and a task type the baselines can score."""
    check_data_row(row, where, fields=_ROW_FIELDS)
    if row["task_type"] not in LABELLED_TYPES:
        raise ValueError(
            f"{where}: task {row['task']!r} is a {row['task_type']!r} task; the baselines score "
            f"{' and '.join(LABELLED_TYPES)} tasks only"
        )


def _infer_threshold(rows: list[dict]) -> float | None:
    """The largest 'low' score reproduces 'high if score > threshold' on ``rows`` exactly."""
    lows = [r["score"] for r in rows if r["label"] == "low"]
    highs = [r["score"] for r in rows if r["label"] == "high"]
    if lows:
        return float(max(lows))
    return float(min(highs)) - 1e-9 if highs else None


def build_task_views(data: dict[str, list[dict]], card: dict | None = None) -> dict[str, TaskData]:
    """Group a data run's rows (:func:`assembly.load_data_run`) by task, in first-seen order.

    Every task with test rows gets a view; a task with rows but no test rows cannot be scored and raises.
    Regression thresholds come from the data card (``tasks.<t>.binarization.threshold``) when given, else from
    the training rows. Rows are checked (:func:`socialite_utils.schema.check_data_row`): a missing field or a label
    outside ``labels`` raises, naming the row as ``data/<split>.jsonl: line N (id X)`` (the line in the data run's
    file when ``data`` is :func:`~socialite_utils.data.assembly.load_data_run`'s).
    """
    if "test" not in data:
        raise ValueError(f"data has no 'test' split; got {sorted(data)}")
    by_task: dict[str, dict[str, list[dict]]] = {}
    for split in ("test", "train", "validation", "fewshot_pool"):
        for i, row in enumerate(data.get(split, [])):
            _check_row(row, row_where(f"data/{split}.jsonl", i + 1, row))
            by_task.setdefault(row["task"], {}).setdefault(split, []).append(row)
    untestable = sorted(t for t, s in by_task.items() if not s.get("test"))
    if untestable and any(by_task[t].get("train") for t in untestable):
        raise ValueError(
            f"task(s) {untestable} have training rows but no test rows; nothing to score them on"
        )
    views = {}
    for name, splits in by_task.items():
        if not splits.get("test"):
            continue  # pool-only task (not in the test split): not part of this comparison
        first = splits["test"][0]
        if first["group"] == "seen":
            train, source = splits.get("train", []), "train"
        else:
            train, source = splits.get("fewshot_pool", []), "fewshot_pool"
        threshold = None
        task_card = (card or {}).get("tasks", {}).get(name) or {}
        natural = (task_card.get("label_distribution") or {}).get("train_before_balancing")
        if first["task_type"] == "regression":
            binar = task_card.get("binarization") or {}
            threshold = binar.get("threshold")
            if threshold is None:
                threshold = _infer_threshold(train)
        views[name] = TaskData(
            name=name,
            category=first["category"],
            group=first["group"],
            type=first["task_type"],
            labels=list(first["labels"]),
            pair=any(r.get("text_b") for r in splits["test"]),
            train=train,
            train_source=source if train else None,
            validation=splits.get("validation", []) if first["group"] == "seen" else [],
            test=splits["test"],
            threshold=threshold,
            natural_label_counts=natural if source == "train" and natural else None,
        )
    return views


def task_overview(views: dict[str, TaskData]):
    """One row per task: what each baseline trains on and is tested on (a pandas DataFrame)."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "task": v.name,
                "category": v.category,
                "group": v.group,
                "type": v.type,
                "n_labels": len(v.labels),
                "train_source": v.train_source or "none",
                "n_train": len(v.train),
                "n_validation": len(v.validation),
                "n_test": len(v.test),
                "encoder": "trained" if v.group == "seen" and v.train else HELD_OUT,
            }
            for v in views.values()
        ]
    )


@dataclass
class SystemOutput:
    """One system's predictions on one task's test rows, in test-row order."""

    pred: list[str]
    probs: list[dict[str, float]] | None
    expected_score: list[float] | None  # regression: the score Pearson r is computed on
    score_kind: str | None  # "p_high" | "sampled_bin" | "predicted_score"
    train_n: int
    train_source: str
    info: dict[str, Any] = field(default_factory=dict)


__all__ = ["HELD_OUT", "SystemOutput", "TaskData", "build_task_views", "task_overview"]
