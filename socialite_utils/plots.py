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


# ---------------------------------------------------------------- notebook 06: specialist or generalist?

RATIO_COLORS = [
    "#000000",
    "#0072b2",
    "#d55e00",
    "#009e73",
    "#cc79a7",
    "#e69f00",
]  # colour-blind-safe (Okabe-Ito)


def _ratio_color(ratios: list[float], r: float) -> str:
    return RATIO_COLORS[sorted(ratios).index(r) % len(RATIO_COLORS)]


def plot_mixing_curves(aggregates, scopes: list[str] | None = None):
    """Mean macro-F1 over tasks against task rows per task, one panel per scope (seen, related, each category), one
    line per generalist ratio; bands: the test-example 95% CI (averaged over seeds)."""
    scopes = scopes or list(dict.fromkeys(aggregates["scope"]))
    ratios = sorted(aggregates["general_ratio"].unique())
    ncol = min(4, len(scopes))
    nrow = -(-len(scopes) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), squeeze=False, sharex=True)
    for ax, scope in zip(axes.flat, scopes, strict=False):
        sub = aggregates[aggregates["scope"] == scope]
        for r in ratios:
            line = (
                sub[sub["general_ratio"] == r].groupby("task_rows")[["macro_f1", "ci_low", "ci_high"]].mean()
            )
            color = _ratio_color(ratios, r)
            ax.plot(line.index, line["macro_f1"], marker="o", ms=3, color=color, label=f"ratio {r:g}")
            ax.fill_between(line.index, line["ci_low"], line["ci_high"], color=color, alpha=0.15, lw=0)
        n_tasks = int(sub["n_tasks"].max()) if len(sub) else 0
        ax.set_title(f"{scope} ({n_tasks} task{'s' if n_tasks != 1 else ''})", fontsize=9)
        ax.set_xscale("log")
        ax.set_xticks(sorted(aggregates["task_rows"].unique()))
        ax.get_xaxis().set_major_formatter(plt.ScalarFormatter())
        ax.get_xaxis().set_minor_formatter(plt.NullFormatter())
    for ax in axes.flat[len(scopes) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("task rows per seen task")
    for ax in axes[:, 0]:
        ax.set_ylabel("macro-F1 (mean over tasks)")
    axes.flat[0].legend(fontsize=7, title="generalist : task rows", title_fontsize=7)
    fig.tight_layout()
    return fig


def plot_mixing_gain(gains):
    """The gain from generalist data (ratio r minus ratio 0, seen tasks, paired on the same test examples) against
    task rows, one line per ratio, with its paired-bootstrap 95% CI: the paper's central plot."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ratios = sorted({0.0, *gains["general_ratio"].unique()})
    for r, g in gains.groupby("general_ratio"):
        g = g.sort_values("task_rows")
        color = _ratio_color(ratios, r)
        ax.plot(g["task_rows"], g["gain"], marker="o", color=color, label=f"ratio {r:g}")
        ax.fill_between(g["task_rows"], g["ci_low"], g["ci_high"], color=color, alpha=0.15, lw=0)
    ax.axhline(0, color="#777777", lw=1, ls="--")
    ax.set_xscale("log")
    ax.set_xticks(sorted(gains["task_rows"].unique()))
    ax.get_xaxis().set_major_formatter(plt.ScalarFormatter())
    ax.get_xaxis().set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("task rows per seen task")
    ax.set_ylabel("gain in mean macro-F1 (seen tasks)")
    ax.set_title("What generalist data adds, by task-data size")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_specialisation_vs_retention(aggregates):
    """Seen-task macro-F1 (specialisation gained) against the response NLL per token on held-out generalist rows
    (general ability kept: lower is better), one point per cell; the base model's NLL as a dashed line."""
    seen = aggregates[aggregates["scope"] == "seen"]
    ratios = sorted(seen["general_ratio"].unique())
    sizes = sorted(seen["task_rows"].unique())
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for _, row in seen.iterrows():
        ax.scatter(
            row["nll_tuned"],
            row["macro_f1"],
            color=_ratio_color(ratios, row["general_ratio"]),
            s=20 + 60 * sizes.index(row["task_rows"]),
            alpha=0.8,
            edgecolor="white",
        )
    for nll in sorted(seen["nll_base"].round(4).unique()):
        ax.axvline(nll, color="#777777", ls="--", lw=1)
    handles = [plt.Line2D([], [], marker="o", ls="", color=_ratio_color(ratios, r)) for r in ratios]
    ax.legend(
        handles, [f"ratio {r:g}" for r in ratios], fontsize=8, title="size: task rows", title_fontsize=7
    )
    ax.set_xlabel("held-out generalist response NLL per token (dashed: base model)")
    ax.set_ylabel("seen tasks: macro-F1 (mean over tasks)")
    ax.set_title("Specialisation vs retained general ability")
    fig.tight_layout()
    return fig
