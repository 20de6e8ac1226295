"""Every figure of the kit: one style, one colour-blind-safe palette, one colour per model, one ``save_figure``.

The palette is Okabe & Ito's (2008) eight colours, safe for the common colour-vision deficiencies and for greyscale
printing of the light/dark pairs. :data:`MODEL_COLORS` is the one model/system -> colour map of every figure
(base and tuned LLM, the baselines, the writing systems); categories, seen/related groups and mixing ratios take
their colours from the same palette. Each ``plot_*`` function draws inside :func:`plot_style` (seaborn's
"whitegrid" axes with the palette as colour cycle) and returns the matplotlib Figure; :func:`save_figure` writes it
as PNG (at :data:`DPI`) and PDF. Nothing here computes a metric: every input is a dict or table that the analysis,
evaluation, baselines or study modules wrote.

Figures by notebook: 01 :func:`plot_composition`; 02 :func:`plot_loss_curve`; 03 :func:`plot_category_bars`,
:func:`plot_task_deltas`, :func:`plot_seen_related` (:func:`plot_all` draws and saves them); 04
:func:`plot_confusion_matrices`, :func:`plot_invalid_kinds`, :func:`plot_slices`, :func:`plot_reliability`,
:func:`plot_sensitivity`; 05 :func:`plot_encoder_history`, :func:`plot_comparison`; 06 :func:`plot_mixing_curves`,
:func:`plot_mixing_gain`, :func:`plot_specialisation_vs_retention`; 07 :func:`plot_generation_metric`.
"""

from __future__ import annotations

import functools
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import pyplot as plt

from .prompts import MAIN
from .registry import CATEGORIES, GENERATION_CATEGORIES
from .reporting import (
    SIGNIFICANCE,
    as_float,
    compared_tasks,
    example_ci,
    is_significant,
    n_tasks_label,
    system_order,
)
from .schema import INVALID_KINDS

# ---------------------------------------------------------------- style, palette, saving


def _seaborn() -> Any:
    """seaborn, imported on first use: it pulls in scipy.stats (about 1.5 s here), which the commands that only
    read or fetch data (``python -m socialite_utils.data fetch``) never need."""
    import seaborn

    return seaborn


# Okabe-Ito: black, orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple; plus a neutral grey.
OKABE_ITO = ("#000000", "#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7")
GREY = "#999999"
PALETTE = (*OKABE_ITO[1:], OKABE_ITO[0])  # colour cycle for anything without a fixed colour (black last)
DPI = 130  # PNG resolution of every saved figure
FORMATS = ("png", "pdf")

# The one model/system -> colour map. The LLM is blue (light: base, dark: tuned) in every figure; the floors are
# grey and purple, TF-IDF orange, the encoder green; notebook 07's systems reuse the same hues.
MODEL_COLORS = {
    "base": "#56b4e9",
    "tuned": "#0072b2",
    "majority": GREY,
    "stratified": "#cc79a7",
    "tfidf_lr": "#e69f00",
    "multitask_encoder": "#009e73",
    "copy": GREY,
    "writing": "#0072b2",
    "writing+general": "#009e73",
    "general": "#e69f00",
}
ALL_CATEGORIES = (*CATEGORIES, *GENERATION_CATEGORIES, "general")  # "general": generalist instruction rows
CATEGORY_COLORS = dict(
    zip(ALL_CATEGORIES, ["#e69f00", "#d55e00", "#0072b2", "#009e73", "#cc79a7", "#56b4e9", GREY], strict=True)
)
GROUP_COLORS = {"seen": "#0072b2", "related": "#e69f00"}
RATIO_COLORS = (
    "#000000",
    "#0072b2",
    "#d55e00",
    "#009e73",
    "#cc79a7",
    "#e69f00",
)  # generalist ratios, ascending
CONFUSION_CMAP = "Blues"  # sequential, colour-blind-safe


def model_color(name: str, index: int = 0) -> str:
    """The colour of a model or system: :data:`MODEL_COLORS` (``llm_base`` / ``llm_tuned`` as base / tuned), else
    the ``index``-th palette colour."""
    name = name.removeprefix("llm_")
    return MODEL_COLORS.get(name, PALETTE[index % len(PALETTE)])


def ratio_color(ratios: Sequence[float], r: float) -> str:
    """The colour of generalist ratio ``r`` among ``ratios`` (ascending order)."""
    return RATIO_COLORS[sorted(ratios).index(r) % len(RATIO_COLORS)]


@contextmanager
def plot_style():
    """The kit's style: seaborn's white grid, the Okabe-Ito colour cycle; restores the caller's rcParams after."""
    rc = {**_seaborn().axes_style("whitegrid"), "axes.prop_cycle": plt.cycler(color=list(PALETTE))}
    with plt.rc_context(rc):
        yield


def _styled(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with plot_style():
            return fn(*args, **kwargs)

    return wrapper


def figure_title(fig: Any) -> str:
    """The figure's title: its suptitle, else its axes' titles joined with "; " ("" when it has none)."""
    sup = " ".join(fig.get_suptitle().split())
    if sup:
        return sup
    titles = [" ".join(ax.get_title().split()) for ax in fig.axes]
    return "; ".join(t for t in titles if t)


def save_figure(
    fig: Any, path_stem: str | os.PathLike, *, formats: Sequence[str] = FORMATS, close: bool = True
) -> list[Path]:
    """Save ``fig`` as ``<path_stem>.png`` (at :data:`DPI`) and ``.pdf`` (or ``formats``), creating the folder;
    close it unless ``close`` is False; return the paths."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(f"{stem.name}.{fmt}") for fmt in formats]
    title = figure_title(fig)
    for path in paths:
        # the title in the file's own metadata: the course site's alt text for the figure (course.build)
        meta = {"Title": title} if title and path.suffix in (".png", ".pdf", ".svg") else None
        fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata=meta)
    if close:
        plt.close(fig)
    return paths


def save_figures(figures: dict[str, Any], directory: str | os.PathLike) -> list[Path]:
    """Every ``name -> Figure`` of ``figures`` as ``<directory>/<name>.png|pdf`` (the run writers' figures/)."""
    paths = []
    for name, fig in figures.items():
        paths += save_figure(fig, Path(directory) / name)
    return paths


def _grid(n: int, ncols: int = 4) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return math.ceil(n / ncols), ncols


# ---------------------------------------------------------------- notebook 01: data composition


def composition_numbers(data: Any) -> dict[str, Any]:
    """What :func:`plot_composition` draws, as JSON-ready numbers: the tasks in drawing order (task, category,
    group), examples per split and task, and the test split's label counts per task (classification rows only:
    generation rows have a free-text target, not a label). ``data``: anything with ``splits`` (an AssembledData)."""
    meta = {}
    for rows in data.splits.values():
        for r in rows:
            meta[r["task"]] = (r["category"], r["group"])
    order = sorted(
        ((t, c, g) for t, (c, g) in meta.items()), key=lambda x: (ALL_CATEGORIES.index(x[1]), x[2], x[0])
    )
    counts = {
        split: dict(Counter(r["task"] for r in data.splits.get(split, [])))
        for split in ("train", "validation", "test")
    }
    labels: dict[str, dict[str, int]] = {}
    for r in data.splits.get("test", []):
        if r["task_type"] != "generation":
            task_labels = labels.setdefault(r["task"], {})
            task_labels[r["label"]] = task_labels.get(r["label"], 0) + 1
    return {"tasks": [list(x) for x in order], "counts": counts, "test_labels": labels}


@_styled
def plot_composition(data: Any):
    """Two panels: examples per task and split, grouped by category; label shares per task (test split).
    ``data``: an :class:`~socialite_utils.data.assembly.AssembledData` (anything with ``splits``) or its
    :func:`composition_numbers`."""
    numbers = data if isinstance(data, dict) else composition_numbers(data)
    order = [tuple(x) for x in numbers["tasks"]]
    names = [f"{t}{' *' if g == 'related' else ''}" for t, _, g in order]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.38 * len(order) + 1.8), sharey=True)
    left = [0] * len(order)
    for split, hatch in (("train", ""), ("validation", "//"), ("test", "..")):
        vals = [numbers["counts"][split].get(t, 0) for t, _, _ in order]
        colors = [CATEGORY_COLORS[c] for _, c, _ in order]
        ax1.barh(names, vals, left=left, color=colors, hatch=hatch, edgecolor="white", label=split)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax1.invert_yaxis()
    ax1.set_xlabel("examples (train | validation // | test ..)")
    ax1.set_title("Examples per task, colored by category (* = related, held out)")
    shown = [*CATEGORIES, *(c for c in ALL_CATEGORIES[len(CATEGORIES) :] if any(c == x[1] for x in order))]
    handles = [plt.Rectangle((0, 0), 1, 1, color=CATEGORY_COLORS[c]) for c in shown]
    ax1.legend(handles, shown, loc="upper left", bbox_to_anchor=(0, -0.12), ncol=3, fontsize=8)
    shares = _seaborn().color_palette("colorblind", 10)  # label shares: any distinct colours, cycled
    for i, (task, _, _) in enumerate(order):
        labels = numbers["test_labels"].get(task, {})
        total = sum(labels.values()) or 1
        start = 0.0
        for j, (lab, n) in enumerate(sorted(labels.items())):
            ax2.barh(i, n / total, left=start, color=shares[j % len(shares)], edgecolor="white")
            if n / total > 0.12:
                ax2.text(start + n / total / 2, i, lab[:14], ha="center", va="center", fontsize=7)
            start += n / total
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("label share in the test split")
    ax2.set_title("Label distribution")
    for ax in (ax1, ax2):
        ax.grid(False, axis="y")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- notebook 02: training


def loss_points(log_history: list[dict]) -> list[tuple[int, float]]:
    """(step, loss) for every training log entry."""
    return [(int(h["step"]), float(h["loss"])) for h in log_history if "loss" in h and "step" in h]


@_styled
def plot_loss_curve(log_history: list[dict], *, title: str | None = None):
    """Training loss (and learning rate, right axis) against the optimizer step; returns the Figure."""
    points = loss_points(log_history)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if points:
        ax.plot(
            [s for s, _ in points],
            [v for _, v in points],
            marker="o",
            ms=3,
            color=MODEL_COLORS["tuned"],
            label="loss",
        )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (completion tokens)")
    lrs = [
        (int(h["step"]), float(h["learning_rate"]))
        for h in log_history
        if "learning_rate" in h and "step" in h
    ]
    if lrs:
        ax2 = ax.twinx()
        ax2.grid(False)
        ax2.plot([s for s, _ in lrs], [v for _, v in lrs], color=GREY, lw=1, ls="--", label="learning rate")
        ax2.set_ylabel("learning rate", color=GREY)
    ax.set_title(title or "LoRA instruction tuning")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- notebook 03: evaluation


def _yerr(value: Any, ci: Sequence[Any] | None) -> tuple[float, float]:
    """Asymmetric error bar lengths; nan (no whisker) where the CI is undefined (e.g. one task in a group)."""
    v = as_float(value)
    if not ci or ci[0] is None or ci[1] is None or math.isnan(v):
        return math.nan, math.nan  # matplotlib draws no whisker for nan
    return max(0.0, v - float(ci[0])), max(0.0, float(ci[1]) - v)


def _bar_x(i: float, j: int, n_series: int) -> float:
    """The centre of series ``j``'s bar in group ``i`` when ``n_series`` bars share a group 0.8 wide."""
    return i + (j - (n_series - 1) / 2) * (0.8 / n_series)


def _grouped_bars(ax: Any, n_groups: int, series: dict[str, tuple[list, list, list]]) -> float:
    """Grouped bars, the one layout of the kit's bar charts: per group, one bar per series (``{name: (values,
    whisker below, whisker above)}``) side by side in the series' model colour, whiskers capped, grid lines on
    the value axis only. Returns the bar width."""
    width = 0.8 / len(series)
    for j, (name, (vals, lo, hi)) in enumerate(series.items()):
        xs = [_bar_x(i, j, len(series)) for i in range(n_groups)]
        ax.bar(xs, vals, width, yerr=[lo, hi], capsize=3, color=model_color(name, j), label=name)
    ax.set_xticks(range(n_groups))
    ax.grid(False, axis="x")
    return width


def _bars(ax: Any, names: list[str], blocks: list[dict], models: list[str]) -> float:
    """Grouped bars of macro_over_tasks with whiskers from :func:`example_ci`, one bar per model per name;
    returns the bar width."""
    series = {}
    for m in models:
        errs = [_yerr(b[m]["macro_over_tasks"], example_ci(b[m])) for b in blocks]
        vals = [as_float(b[m]["macro_over_tasks"]) for b in blocks]
        series[m] = (vals, [e[0] for e in errs], [e[1] for e in errs])
    width = _grouped_bars(ax, len(names), series)
    ax.set_ylim(0, 100)
    ax.set_ylabel("mean macro-F1 over tasks (%)")
    return width


@_styled
def plot_category_bars(metrics: dict):
    """Mean macro-F1 per category (and overall), base vs tuned, with 95% bootstrap CIs over test examples
    (see :func:`metrics.aggregate`: a category of 2-3 tasks has no useful CI over tasks); returns the Figure."""
    cats = [c for c in CATEGORIES if c in metrics["categories"]] + [
        c for c in metrics["categories"] if c not in CATEGORIES
    ]
    blocks = [metrics["categories"][c] for c in cats] + [metrics["overall"]]
    names = cats + ["overall"]
    models = metrics["models"]
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 4))
    _bars(ax, names, blocks, models)
    first = [b[models[0]] for b in blocks]
    ax.set_xticklabels(
        [
            f"{n.replace('_', ' ')}\n{n_tasks_label(b)}, n={b['n_examples']}"
            for n, b in zip(names, first, strict=True)
        ],
        fontsize=8,
    )
    for tick, name in zip(ax.get_xticklabels(), names, strict=True):
        tick.set_color(CATEGORY_COLORS.get(name, "black"))
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(
        f"{metrics['run_name']}: macro-F1 by category (whiskers: 95% bootstrap CI over test examples)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


@_styled
def plot_task_deltas(metrics: dict):
    """Per-task change in macro-F1 (tuned - base), sorted, with paired-bootstrap 95% CIs; returns the Figure."""
    tasks = compared_tasks(metrics)
    if not tasks:
        raise ValueError("plot_task_deltas needs a run with both a base and a tuned model")
    tasks.sort(key=lambda x: as_float(x[1]["comparison"]["delta_macro_f1"]))
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(tasks) + 1.5))
    for i, (_, t) in enumerate(tasks):
        c = t["comparison"]
        lo, hi = _yerr(c["delta_macro_f1"], c["delta_ci"])
        ax.barh(i, as_float(c["delta_macro_f1"]), color=GROUP_COLORS.get(t["group"], GREY))
        ax.errorbar(as_float(c["delta_macro_f1"]), i, xerr=[[lo], [hi]], color="black", capsize=3, lw=1)
    right = ax.get_xlim()[1]  # after every bar is drawn, so the stars sit at the final right edge
    significant = {}  # Holm within each group, as the claims count
    for group in dict.fromkeys(t["group"] for _, t in tasks):
        significant.update(is_significant(metrics, group))
    for i, (name, _) in enumerate(tasks):
        if significant[name]:
            ax.text(right, i, " *", va="center", fontsize=9)
    ax.set_yticks(range(len(tasks)))
    ax.set_yticklabels([f"{n} (n={t['n']})" for n, t in tasks], fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("macro-F1 change, tuned - base (points)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in GROUP_COLORS.values()]
    ax.legend(handles, list(GROUP_COLORS), loc="lower right", fontsize=8)
    ax.set_title(
        f"Per-task change (95% paired-bootstrap CI; * Holm-adjusted p < {SIGNIFICANCE} within the group)",
        fontsize=10,
    )
    ax.grid(False, axis="y")
    fig.tight_layout()
    return fig


@_styled
def plot_seen_related(metrics: dict):
    """Seen vs related tasks side by side: mean macro-F1 per model with CIs, each task as a dot; returns the Figure."""
    groups = [g for g in ("seen", "related") if g in metrics["groups"]]
    models = metrics["models"]
    fig, ax = plt.subplots(figsize=(2.2 * len(groups) + 2.5, 4))
    width = _bars(ax, groups, [metrics["groups"][g] for g in groups], models)
    for i, g in enumerate(groups):
        members = [t for t in metrics["tasks"].values() if t["group"] == g]
        for j, m in enumerate(models):
            x = _bar_x(i, j, len(models))
            ys = [as_float(t["models"][m]["macro_f1"]) for t in members]
            ax.scatter([x] * len(ys), ys, s=12, color="black", zorder=3)
        if len(models) == 2:  # one line per task joins its base and tuned scores
            x0, x1 = i - width / 2, i + width / 2
            for t in members:
                ax.plot(
                    [x0, x1],
                    [as_float(t["models"]["base"]["macro_f1"]), as_float(t["models"]["tuned"]["macro_f1"])],
                    color="black",
                    lw=0.5,
                    alpha=0.5,
                )
    first = [metrics["groups"][g][models[0]] for g in groups]
    ax.set_xticklabels(
        [f"{g}\n{n_tasks_label(b)}, n={b['n_examples']}" for g, b in zip(groups, first, strict=True)]
    )
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(
        "Seen (trained) vs related (held-out) tasks\n(whiskers: 95% bootstrap CI over test examples)"
    )
    fig.tight_layout()
    return fig


def plot_all(metrics: dict, directory: str | os.PathLike) -> list[Path]:
    """Every evaluation figure as PNG + PDF in ``directory``; the per-task change only when both models exist."""
    directory = Path(directory)
    paths = save_figure(plot_category_bars(metrics), directory / "category_bars")
    if compared_tasks(metrics):
        paths += save_figure(plot_task_deltas(metrics), directory / "task_deltas")
    paths += save_figure(plot_seen_related(metrics), directory / "seen_related")
    return paths


# ---------------------------------------------------------------- notebook 04: error analysis


def _confusion_annotations(mat: np.ndarray) -> np.ndarray:
    """Cell texts: the share with 2 decimals where it is above 0, empty elsewhere (and for empty gold rows)."""
    return np.array([[f"{v:.2f}" if not np.isnan(v) and v > 0 else "" for v in row] for row in mat])


@_styled
def plot_confusion_matrices(analysis: dict, model: str):
    """Row-normalised confusion matrix of every task for one model (gold rows, predicted columns), as seaborn
    heatmaps; the shares are written in the cells of tasks with up to 8 labels."""
    tasks = [t for t, v in analysis["tasks"].items() if model in v["models"]]
    if not tasks:
        raise ValueError(f"no task has predictions for model {model!r}")
    nrows, ncols = _grid(len(tasks), 3)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 4.2 * nrows), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        cm = analysis["tasks"][task]["models"][model]["confusion"]
        mat = np.array(
            [[np.nan if v is None else v for v in row] for row in cm["row_normalized"]], dtype=float
        )
        short = [c if len(c) <= 14 else c[:13] + "…" for c in cm["columns"]]
        annotate = len(cm["labels"]) <= 8
        _seaborn().heatmap(
            mat,
            vmin=0,
            vmax=1,
            cmap=CONFUSION_CMAP,
            cbar=False,
            square=False,
            annot=_confusion_annotations(mat) if annotate else False,
            fmt="",
            annot_kws={"fontsize": 7},
            xticklabels=short,
            yticklabels=short[:-1],
            ax=ax,
        )
        ax.set_xticklabels(ax.get_xticklabels(), rotation=60, ha="right", fontsize=7)
        ax.set_yticklabels(ax.get_yticklabels(), rotation=0, fontsize=7)
        ax.grid(False)
        ax.set_title(f"{task} (n={sum(cm['support'])})", fontsize=9)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("gold", fontsize=8)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.suptitle(f"Confusion matrices, {model} model (rows sum to 1; empty rows: no gold example)", y=1.01)
    return fig


@_styled
def plot_reliability(analysis: dict):
    """Reliability diagram per category (score mode): accuracy against mean confidence per bin, per model, with
    the number of examples in each bin written at its point."""
    cal = analysis.get("calibration")
    if not cal:
        raise ValueError("no calibration data: the evaluation run has no score-mode probabilities")
    panels = [*cal["by_category"].items(), ("overall", cal["overall"])]
    nrows, ncols = _grid(len(panels), 3)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3.8 * nrows), squeeze=False)
    for ax, (cat, per_model) in zip(axes.flat, panels, strict=False):
        ax.plot([0, 1], [0, 1], ls="--", color="#cccccc", lw=1)
        for j, (model, c) in enumerate(per_model.items()):
            pts = [(b["mean_confidence"], b["accuracy"], b["count"]) for b in c["bins"] if b["count"]]
            color = model_color(model, j)
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker="o",
                color=color,
                label=f"{model}: ECE {c['ece']:.3f} (n={c['n']})",
            )
            for x, y, count in pts:  # examples in the bin: first model above its point, the next below, ...
                above = j % 2 == 0
                ax.annotate(str(count), (x, y), xytext=(0, 5 if above else -5), textcoords="offset points",
                            ha="center", va="bottom" if above else "top", fontsize=6, color=color)  # fmt: skip
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("mean confidence in bin")
        ax.set_ylabel("accuracy in bin")
        ax.set_title(cat, fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.suptitle(
        f"Reliability diagrams ({cal['n_bins']} equal-width bins, the number at a point = examples in the bin; "
        "diagonal = perfectly calibrated)",
        y=1.01,
    )
    return fig


@_styled
def plot_sensitivity(summary: dict):
    """Per-task range bars: min-max macro-F1 over prompts, main prompt marked, base and tuned side by side; the
    number of examples scored per task (``n``) in the title and the task labels."""
    tasks = sorted(summary)
    if not tasks:
        raise ValueError("empty sensitivity summary")
    models = sorted({m for t in tasks for m in summary[t]}, key=lambda m: (m != "base", m))
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(tasks) * max(1, len(models)) + 1.5))
    step = 0.8 / max(1, len(models))
    for j, model in enumerate(models):
        color = model_color(model, j)
        for i, task in enumerate(tasks):
            s = summary[task].get(model)
            if s is None:
                continue
            y = i + (j - (len(models) - 1) / 2) * step
            ax.plot([s["min"], s["max"]], [y, y], color=color, lw=4, alpha=0.6, solid_capstyle="butt",
                    label=model if i == 0 else None)  # fmt: skip
            others = [v for k, v in s["macro_f1"].items() if k != MAIN]
            ax.plot(others, [y] * len(others), "|", color=color, ms=10)
            if MAIN in s["macro_f1"]:
                ax.plot(s["macro_f1"][MAIN], y, "D", color=color, ms=5, markeredgecolor="black")
    ns = {t: sorted({s["n"] for s in summary[t].values()}) for t in tasks}
    ax.set_yticks(range(len(tasks)), [f"{t} (n={'/'.join(map(str, ns[t]))})" for t in tasks])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("macro-F1 (%) over prompt wordings; ◆ main prompt, | variants, bar = min-max")
    every = sorted({n for v in ns.values() for n in v})
    n_text = f"n = {every[0]}" if len(every) == 1 else f"n = {every[0]}-{every[-1]}"
    ax.set_title(f"Prompt sensitivity (score mode, {n_text} examples per task, the same for every prompt)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(False, axis="y")
    fig.tight_layout()
    return fig


@_styled
def plot_invalid_kinds(analysis: dict):
    """Stacked bars of invalid-answer kinds per task, one panel per model (generate mode)."""
    kinds = [*INVALID_KINDS, "parser_mismatch"]
    if analysis.get("invalid_summary") is None:
        raise ValueError("no invalid-answer data: the evaluation run is not in generate mode")
    models = analysis["models"]
    tasks = list(analysis["tasks"])
    fig, axes = plt.subplots(
        1, len(models), figsize=(6 * len(models), 0.35 * len(tasks) + 1.8), squeeze=False, sharey=True
    )
    for ax, model in zip(axes.flat, models, strict=True):
        left = np.zeros(len(tasks))
        for kind, color in zip(kinds, PALETTE, strict=False):
            vals = []
            for t in tasks:
                entry = analysis["tasks"][t]["models"].get(model)
                inv = entry["invalid"] if entry else None
                vals.append(100.0 * inv["counts"].get(kind, 0) / inv["n"] if inv and inv["n"] else 0.0)
            if any(vals):
                ax.barh(tasks, vals, left=left, color=color, label=kind)
            left += np.array(vals)
        ax.invert_yaxis()
        ax.grid(False, axis="y")
        ax.set_xlabel("% of answers that are invalid")
        ax.set_title(f"{model}: invalid answers by kind")
        if ax.get_legend_handles_labels()[0]:  # a model without invalid answers has no bars to name
            ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


@_styled
def plot_slices(analysis: dict):
    """Pooled accuracy by length bin and by gold-label frequency, per model, with Wilson 95% intervals."""
    sl = analysis["slices"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    models = list(sl["length"])
    width = 0.8 / max(1, len(models))
    for j, model in enumerate(models):
        color = model_color(model, j)
        for ax, items in (
            (ax1, [(f"bin {b['bin'] + 1}", b) for b in sl["length"][model]]),
            (ax2, list(sl["frequency"][model].items())),
        ):
            xs = np.arange(len(items)) + (j - (len(models) - 1) / 2) * width
            acc = [s["accuracy"] if s["accuracy"] is not None else 0 for _, s in items]
            err = np.array(
                [
                    [a - s["accuracy_ci"][0], s["accuracy_ci"][1] - a] if s["accuracy_ci"] else [0, 0]
                    for a, (_, s) in zip(acc, items, strict=True)
                ]
            ).T
            ax.bar(xs, acc, width, yerr=err if len(items) else None, color=color, label=model, capsize=3)
            ax.set_xticks(np.arange(len(items)), [name for name, _ in items])
    ax1.set_title(
        f"Accuracy by input length ({analysis.get('length_unit', 'words')})\nper-task quantile bins, short → long",
        fontsize=10,
    )
    ax2.set_title("Accuracy by gold-label frequency\nrare: share of the task's examples < 1/K", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=8)
        ax.grid(False, axis="x")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- notebook 05: baselines


@_styled
def plot_encoder_history(trained: Any):
    """Training loss per step (and validation loss per epoch) of the multi-task encoder (a ``TrainedEncoder``)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    color = MODEL_COLORS["multitask_encoder"]
    steps = [h for h in trained.history if "loss" in h]
    ax.plot([h["step"] for h in steps], [h["loss"] for h in steps], lw=1, color=color, label="train (batch)")
    val = [h for h in trained.history if "validation_loss" in h]
    if val:
        ax.plot([h["step"] for h in val], [h["validation_loss"] for h in val], "o-", color="black",
                label="validation")  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("loss (CE / MSE on z-scores)")
    ax.set_title(f"Multi-task encoder ({trained.preset.name})")
    ax.legend()
    fig.tight_layout()
    return fig


# an aggregate over fewer tasks shows its tasks as dots: a t-based CI over 2-4 tasks can span 0-100
MIN_TASKS_FOR_CI = 5


def _comparison_points(table, system: str, keys: list, level: str | None) -> tuple[list, list, list, list]:
    """(y index, macro-F1, lower and upper whisker) of one system's rows; task rows when ``level`` is None,
    else (level, name) keys. Whiskers are clipped to the axis; an aggregate over fewer than
    :data:`MIN_TASKS_FOR_CI` tasks has none (nan): its tasks are drawn instead (:func:`_member_tasks`)."""
    ys, xs, lo, hi = [], [], [], []
    for i, key in enumerate(keys):
        lvl, name = ("task", key) if level is None else key
        sel = table[(table["level"] == lvl) & (table["name"] == name) & (table["system"] == system)]
        if sel.empty or np.isnan(sel["macro_f1"].iloc[0]):
            continue
        r = sel.iloc[0]
        ys.append(i)
        xs.append(r["macro_f1"])
        if level is not None and len(_member_tasks(table, system, key)) < MIN_TASKS_FOR_CI:
            lo.append(math.nan)
            hi.append(math.nan)
            continue
        lo.append(r["macro_f1"] - max(r["macro_f1_lo"], 0.0) if not np.isnan(r["macro_f1_lo"]) else 0.0)
        hi.append(min(r["macro_f1_hi"], 100.0) - r["macro_f1"] if not np.isnan(r["macro_f1_hi"]) else 0.0)
    return ys, xs, lo, hi


def _member_tasks(table, system: str, key: tuple[str, str]) -> list[float]:
    """The task macro-F1s of ``system`` that the aggregate row ``key`` = (level, name) averages: a category's
    seen tasks, or a group's tasks (tasks without a number are not in the aggregate)."""
    level, name = key
    sel = table[(table["level"] == "task") & (table["system"] == system) & table["macro_f1"].notna()]
    if level == "category":
        sel = sel[(sel["category"] == name) & (sel["group"] == "seen")]
    else:
        sel = sel[sel["group"] == name]
    return sel["macro_f1"].tolist()


@_styled
def plot_comparison(table):
    """Two panels: macro-F1 per task (related tasks marked *), and per category (seen tasks) and group, with CIs;
    an aggregate over fewer than :data:`MIN_TASKS_FOR_CI` tasks shows each task as a small dot instead of a CI.
    ``table``: :func:`socialite_utils.baselines.build_comparison`."""
    systems = system_order(table["system"])
    tasks = table[table["level"] == "task"].drop_duplicates("name")
    tasks = tasks.assign(
        _c=tasks["category"].map(lambda c: CATEGORIES.index(c) if c in CATEGORIES else 99)
    ).sort_values(["_c", "group", "name"], ascending=[True, False, True])
    task_names = tasks["name"].tolist()
    labels = [
        f"{n}{' *' if g == 'related' else ''}" for n, g in zip(tasks["name"], tasks["group"], strict=True)
    ]
    aggs = table[table["level"].isin(["category", "group"])].drop_duplicates(["level", "name"])
    agg_keys = list(zip(aggs["level"], aggs["name"], strict=True))
    agg_labels = [f"{n} (seen)" if lvl == "category" else f"all {n}" for lvl, n in agg_keys]

    height = 0.42 * max(len(task_names), len(agg_keys)) + 2
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, height), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / max(len(systems), 1)
    few = False  # some aggregate shows its tasks as dots
    for j, system in enumerate(systems):
        color = model_color(system, j)
        for ax, keys, level in ((ax1, task_names, None), (ax2, agg_keys, "agg")):
            ys, xs, lo, hi = _comparison_points(table, system, keys, level)
            ys = [i - 0.4 + width * (j + 0.5) for i in ys]
            ax.errorbar(xs, ys, xerr=[lo, hi], fmt="o", ms=4, color=color, ecolor=color, elinewidth=1,
                        capsize=2, label=system if ax is ax1 else None)  # fmt: skip
        for i, key in enumerate(agg_keys):
            members = _member_tasks(table, system, key)
            if 0 < len(members) < MIN_TASKS_FOR_CI:
                few = True
                y = i - 0.4 + width * (j + 0.5)
                ax2.scatter(members, [y] * len(members), s=9, marker="D", facecolor="white", edgecolor=color,
                            linewidth=0.8, zorder=3)  # fmt: skip
    ax1.set_yticks(range(len(task_names)), labels)
    ax2.set_yticks(range(len(agg_keys)), agg_labels)
    agg_title = "Mean macro-F1 over tasks (95% CI over tasks)"
    if few:
        agg_title += f"\nfewer than {MIN_TASKS_FOR_CI} tasks: no CI, each task as a ◇"
    for ax, title in ((ax1, "Macro-F1 per task (95% bootstrap CI); * = related, held out"),
                      (ax2, agg_title)):  # fmt: skip
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("macro-F1 (%)")
        ax.set_title(title, fontsize=10)
        ax.grid(False, axis="y")
    if few:
        ax2.legend(
            [plt.Line2D([], [], marker="D", ls="", ms=4, markerfacecolor="white", markeredgecolor="black")],
            [f"one task (category or group of < {MIN_TASKS_FOR_CI} tasks)"],
            fontsize=7,
            loc="lower right",
        )
    fig.legend(loc="lower center", ncol=len(systems), fontsize=8, bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


# ---------------------------------------------------------------- notebook 06: specialist or generalist?


def _log_task_rows_axis(ax: Any, task_rows: Sequence) -> None:
    ax.set_xscale("log")
    ax.set_xticks(sorted(task_rows))
    ax.get_xaxis().set_major_formatter(plt.ScalarFormatter())
    ax.get_xaxis().set_minor_formatter(plt.NullFormatter())


@_styled
def plot_mixing_curves(aggregates, scopes: list[str] | None = None):
    """Mean macro-F1 over tasks against task rows per task, one facet per scope (seen, related, each category),
    one line per generalist ratio; bands: the test-example 95% CI (averaged over seeds). Every facet has the same
    y-range; where ``aggregates`` has a ``majority_macro_f1`` column, the scope's majority floor (always answering
    each task's most frequent train label) is a dashed grey line."""
    scopes = scopes or list(dict.fromkeys(aggregates["scope"]))
    ratios = sorted(aggregates["general_ratio"].unique())
    ncol = min(4, len(scopes))
    nrow = -(-len(scopes) // ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), squeeze=False, sharex=True, sharey=True
    )
    for ax, scope in zip(axes.flat, scopes, strict=False):
        sub = aggregates[aggregates["scope"] == scope]
        for r in ratios:
            line = (
                sub[sub["general_ratio"] == r].groupby("task_rows")[["macro_f1", "ci_low", "ci_high"]].mean()
            )
            color = ratio_color(ratios, r)
            ax.plot(line.index, line["macro_f1"], marker="o", ms=3, color=color, label=f"ratio {r:g}")
            ax.fill_between(line.index, line["ci_low"], line["ci_high"], color=color, alpha=0.15, lw=0)
        if "majority_macro_f1" in sub and sub["majority_macro_f1"].notna().any():
            # the floor depends on each cell's train rows only through the majority label: one value per size
            floor = sub.groupby("task_rows")["majority_macro_f1"].mean().dropna()
            ax.plot(floor.index, floor.values, ls="--", lw=1.2, color=GREY, label="majority floor", zorder=1)
        n_tasks = int(sub["n_tasks"].max()) if len(sub) else 0
        ax.set_title(f"{scope} ({n_tasks} task{'s' if n_tasks != 1 else ''})", fontsize=9)
        _log_task_rows_axis(ax, aggregates["task_rows"].unique())
    for ax in axes.flat[len(scopes) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("task rows per seen task")
    for ax in axes[:, 0]:
        ax.set_ylabel("macro-F1 (mean over tasks)")
    axes.flat[0].legend(fontsize=7, title="generalist : task rows", title_fontsize=7)
    fig.tight_layout()
    return fig


@_styled
def plot_mixing_gain(gains):
    """The gain from generalist data (ratio r minus ratio 0, seen tasks, paired on the same test examples) against
    task rows, one line per ratio, with its paired-bootstrap 95% CI as a shaded band (named in the legend) and a
    labelled zero line (no gain): the paper's central plot."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ratios = sorted({0.0, *gains["general_ratio"].unique()})
    for r, g in gains.groupby("general_ratio"):
        g = g.sort_values("task_rows")
        color = ratio_color(ratios, r)
        ax.plot(g["task_rows"], g["gain"], marker="o", color=color, label=f"ratio {r:g}")
        ax.fill_between(g["task_rows"], g["ci_low"], g["ci_high"], color=color, alpha=0.15, lw=0)
    ax.axhline(0, color=GREY, lw=1, ls="--", label="no gain (0)")
    _log_task_rows_axis(ax, gains["task_rows"].unique())
    ax.set_xlabel("task rows per seen task")
    ax.set_ylabel("gain in mean macro-F1 (seen tasks)")
    ax.set_title("What generalist data adds, by task-data size")
    handles, labels = ax.get_legend_handles_labels()
    band = plt.Rectangle((0, 0), 1, 1, color=GREY, alpha=0.3, lw=0)
    ax.legend([*handles, band], [*labels, "shaded: 95% CI (paired bootstrap)"], fontsize=8)
    fig.tight_layout()
    return fig


@_styled
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
            color=ratio_color(ratios, row["general_ratio"]),
            s=20 + 60 * sizes.index(row["task_rows"]),
            alpha=0.8,
            edgecolor="white",
        )
    for nll in sorted(seen["nll_base"].round(4).unique()):
        ax.axvline(nll, color=GREY, ls="--", lw=1)
    handles = [plt.Line2D([], [], marker="o", ls="", color=ratio_color(ratios, r)) for r in ratios]
    ax.legend(
        handles, [f"ratio {r:g}" for r in ratios], fontsize=8, title="size: task rows", title_fontsize=7
    )
    ax.set_xlabel("held-out generalist response NLL per token (dashed: base model)")
    ax.set_ylabel("seen tasks: macro-F1 (mean over tasks)")
    ax.set_title("Specialisation vs retained general ability")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- notebook 07: writing assistance


@_styled
def plot_generation_metric(metrics: dict, metric: str):
    """Grouped bars: ``metric`` per writing task (tasks that report it), one bar per system with its bootstrap CI
    as a whisker; tasks without data are named under the axis. ``metrics``: writing_eval.build_generation_metrics."""
    # tasks in name order: metrics.json is written with sorted keys, so the figure drawn from it again is the same
    items = sorted(metrics["tasks"].items())
    tasks = [n for n, t in items if t["status"] == "ok" and metric in t["metrics"]]
    missing = [n for n, t in items if t["status"] != "ok" and metric in t["metrics"]]
    systems = metrics["models"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * max(1, len(tasks)), 3.6))
    series = {}
    for m in systems:
        cells = [metrics["tasks"][t]["systems"][m][metric] for t in tasks]
        lo = [max(0.0, c["value"] - c["ci"][0]) for c in cells]
        hi = [max(0.0, c["ci"][1] - c["value"]) for c in cells]
        series[m] = ([c["value"] for c in cells], lo, hi)
    _grouped_bars(ax, len(tasks), series)
    ax.set_xticklabels(tasks)
    ax.set_ylabel(metric + (" (0-1)" if metric == "gleu" else " (0-100)"))
    title = f"{metric} per writing task, 95% bootstrap CI"
    if missing:
        title += f"\nno data: {', '.join(missing)}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


__all__ = [
    "CATEGORY_COLORS",
    "DPI",
    "GROUP_COLORS",
    "MODEL_COLORS",
    "OKABE_ITO",
    "PALETTE",
    "model_color",
    "plot_all",
    "plot_category_bars",
    "plot_comparison",
    "plot_composition",
    "plot_confusion_matrices",
    "plot_encoder_history",
    "plot_generation_metric",
    "plot_invalid_kinds",
    "plot_loss_curve",
    "plot_mixing_curves",
    "plot_mixing_gain",
    "plot_reliability",
    "plot_seen_related",
    "plot_sensitivity",
    "plot_slices",
    "plot_specialisation_vs_retention",
    "plot_style",
    "plot_task_deltas",
    "ratio_color",
    "save_figure",
    "save_figures",
]
