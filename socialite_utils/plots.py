"""Figures for data runs (composition). Evaluation figures live in :mod:`socialite_utils.reporting`."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from matplotlib import pyplot as plt

from .registry import CATEGORIES

if TYPE_CHECKING:
    from .assembly import AssembledData

CATEGORY_COLORS = dict(zip(CATEGORIES, ["#e69f00", "#d55e00", "#0072b2", "#009e73", "#cc79a7"], strict=True))
CATEGORY_COLORS["general"] = "#999999"  # generalist instruction rows mixed into train (mixing.py)
_CATEGORY_ORDER = (*CATEGORIES, "general")


def _task_order(data: AssembledData) -> list[tuple[str, str, str]]:
    meta = {}
    for rows in data.splits.values():
        for r in rows:
            meta[r["task"]] = (r["category"], r["group"])
    return sorted(
        ((t, c, g) for t, (c, g) in meta.items()), key=lambda x: (_CATEGORY_ORDER.index(x[1]), x[2], x[0])
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
    handles = [plt.Rectangle((0, 0), 1, 1, color=CATEGORY_COLORS[c]) for c in CATEGORIES]
    ax1.legend(handles, CATEGORIES, loc="upper left", bbox_to_anchor=(0, -0.12), ncol=3, fontsize=8)
    cmap = plt.get_cmap("tab20")
    for i, (task, _, _) in enumerate(order):
        labels = Counter(r["label"] for r in data.splits["test"] if r["task"] == task)
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
