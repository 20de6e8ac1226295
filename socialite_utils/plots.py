"""Figures for data runs (composition). Evaluation figures live in :mod:`socialite_utils.reporting`."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from matplotlib import pyplot as plt

from .registry import CATEGORIES, GENERATION_CATEGORIES

if TYPE_CHECKING:
    from .assembly import AssembledData

ALL_CATEGORIES = (*CATEGORIES, *GENERATION_CATEGORIES, "general")  # "general": generalist instruction rows
CATEGORY_COLORS = dict(
    zip(
        ALL_CATEGORIES,
        ["#e69f00", "#d55e00", "#0072b2", "#009e73", "#cc79a7", "#56b4e9", "#999999"],
        strict=True,
    )
)


def _task_order(data: AssembledData) -> list[tuple[str, str, str]]:
    meta = {}
    for rows in data.splits.values():
        for r in rows:
            meta[r["task"]] = (r["category"], r["group"])
    return sorted(
        ((t, c, g) for t, (c, g) in meta.items()), key=lambda x: (ALL_CATEGORIES.index(x[1]), x[2], x[0])
    )


def plot_composition(data: AssembledData):
    """Two panels: examples per task and split, grouped by category; label shares per task (test split)."""
    order = _task_order(data)
    names = [f"{t}{' *' if g == 'related' else ''}" for t, _, g in order]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.38 * len(order) + 1.8), sharey=True)
    left = [0] * len(order)
    for split, hatch in (("train", ""), ("validation", "//"), ("test", "..")):
        counts = Counter(r["task"] for r in data.splits[split])
        vals = [counts.get(t, 0) for t, _, _ in order]
        colors = [CATEGORY_COLORS[c] for _, c, _ in order]
        ax1.barh(names, vals, left=left, color=colors, hatch=hatch, edgecolor="white", label=split)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax1.invert_yaxis()
    ax1.set_xlabel("examples (train | validation // | test ..)")
    ax1.set_title("Examples per task, colored by category (* = related, held out)")
    shown = [*CATEGORIES, *(c for c in ALL_CATEGORIES[len(CATEGORIES) :] if any(c == x[1] for x in order))]
    handles = [plt.Rectangle((0, 0), 1, 1, color=CATEGORY_COLORS[c]) for c in shown]
    ax1.legend(handles, shown, loc="upper left", bbox_to_anchor=(0, -0.12), ncol=3, fontsize=8)
    cmap = plt.get_cmap("tab20")
    for i, (task, _, _) in enumerate(order):
        # generation rows have a free-text target, not a label: no label shares for them
        labels = Counter(
            r["label"] for r in data.splits["test"] if r["task"] == task and r["task_type"] != "generation"
        )
        total = sum(labels.values()) or 1
        start = 0.0
        for j, (lab, n) in enumerate(sorted(labels.items())):
            ax2.barh(i, n / total, left=start, color=cmap(j % 20), edgecolor="white")
            if n / total > 0.12:
                ax2.text(start + n / total / 2, i, lab[:14], ha="center", va="center", fontsize=7)
            start += n / total
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("label share in the test split")
    ax2.set_title("Label distribution")
    fig.tight_layout()
    return fig


# Generation (writing) systems: the copy baseline, the base model and the tuned variants of notebook 07.
SYSTEM_COLORS = {
    "copy": "#cccccc",
    "base": "#999999",
    "writing": "#0072b2",
    "writing+general": "#009e73",
    "general": "#e69f00",
}


def plot_generation_metric(metrics: dict, metric: str):
    """Grouped bars: ``metric`` per writing task (tasks that report it), one bar per system with its bootstrap CI
    as a whisker; tasks without data are named under the axis. ``metrics``: writing_eval.build_generation_metrics."""
    tasks = [n for n, t in metrics["tasks"].items() if t["status"] == "ok" and metric in t["metrics"]]
    missing = [n for n, t in metrics["tasks"].items() if t["status"] != "ok" and metric in t["metrics"]]
    systems = metrics["models"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * max(1, len(tasks)), 3.6))
    width = 0.8 / len(systems)
    for j, m in enumerate(systems):
        xs = [i + (j - (len(systems) - 1) / 2) * width for i in range(len(tasks))]
        cells = [metrics["tasks"][t]["systems"][m][metric] for t in tasks]
        vals = [c["value"] for c in cells]
        lo = [max(0.0, c["value"] - c["ci"][0]) for c in cells]
        hi = [max(0.0, c["ci"][1] - c["value"]) for c in cells]
        ax.bar(xs, vals, width, yerr=[lo, hi], capsize=3, color=SYSTEM_COLORS.get(m, "#555555"), label=m)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks)
    ax.set_ylabel(metric + (" (0-1)" if metric == "gleu" else " (0-100)"))
    title = f"{metric} per writing task, 95% bootstrap CI"
    if missing:
        title += f"\nno data: {', '.join(missing)}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig
