"""One figures module: every plot_* and every savefig lives in socialite_utils/plotting.py, one colour per model in
every figure, a saved figure is PNG (at plotting.DPI) + PDF, and a figure draws the numbers it is given."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import pyplot as plt
from matplotlib.colors import to_hex
from PIL import Image

from socialite_utils import plotting
from socialite_utils.analysis import build_confusion_matrix

PACKAGE = Path(plotting.__file__).resolve().parent
HEX = re.compile(r"""["']#[0-9a-fA-F]{6}["']""")


def _other_modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.glob("*.py")) if p.name != "plotting.py"]


def test_no_other_module_draws_saves_or_picks_colours():
    """plot_* functions, savefig calls, hex colours, colour maps and pyplot imports live in plotting.py only."""
    offenders = []
    for path in _other_modules():
        source = path.read_text()
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("plot_"):
                offenders.append(f"{path.name}: def {node.name}")
            if isinstance(node, ast.Attribute) and node.attr in ("savefig", "get_cmap", "subplots"):
                offenders.append(f"{path.name}: .{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("matplotlib", "seaborn")):
                offenders.append(f"{path.name}: from {node.module} import")
        offenders += [f"{path.name}: colour {m}" for m in HEX.findall(source)]
    assert offenders == []


def test_plotting_module_draws_every_figure_of_the_kit():
    names = {n for n in dir(plotting) if n.startswith("plot_") and callable(getattr(plotting, n))}
    assert {
        "plot_composition", "plot_loss_curve", "plot_category_bars", "plot_task_deltas", "plot_seen_related",
        "plot_confusion_matrices", "plot_invalid_kinds", "plot_slices", "plot_reliability", "plot_sensitivity",
        "plot_encoder_history", "plot_comparison", "plot_mixing_curves", "plot_mixing_gain",
        "plot_specialisation_vs_retention", "plot_generation_metric",
    } <= names  # fmt: skip


def test_palette_is_okabe_ito_and_one_colour_per_model():
    assert set(plotting.MODEL_COLORS.values()) <= {*plotting.OKABE_ITO, plotting.GREY}
    assert set(plotting.CATEGORY_COLORS.values()) <= {*plotting.OKABE_ITO, plotting.GREY}
    # the baselines table names the LLM llm_base / llm_tuned: the same colours as base / tuned in notebook 03
    assert (
        plotting.model_color("llm_tuned") == plotting.model_color("tuned") == plotting.MODEL_COLORS["tuned"]
    )
    assert plotting.model_color("llm_base") == plotting.MODEL_COLORS["base"]
    assert plotting.model_color("someone_else", 2) == plotting.PALETTE[2]


def _bar_metrics() -> dict:
    block = {
        "base": {"macro_over_tasks": 40.0, "macro_over_tasks_example_ci": [30.0, 50.0], "n_tasks": 2,
                 "n_examples": 20},
        "tuned": {"macro_over_tasks": 60.0, "macro_over_tasks_example_ci": [55.0, 70.0], "n_tasks": 2,
                  "n_examples": 20},
    }  # fmt: skip
    return {
        "run_name": "hand",
        "models": ["base", "tuned"],
        "categories": {"offensive": block},
        "overall": block,
    }


def test_category_bars_draw_the_given_means_in_the_model_colours():
    fig = plotting.plot_category_bars(_bar_metrics())
    bars = fig.axes[0].patches
    # two names (offensive, overall) x two models, base bars first
    assert [b.get_height() for b in bars] == [40.0, 40.0, 60.0, 60.0]
    assert [to_hex(b.get_facecolor()) for b in bars] == [plotting.MODEL_COLORS["base"]] * 2 + [
        plotting.MODEL_COLORS["tuned"]
    ] * 2
    plt.close(fig)


def test_confusion_heatmap_shows_the_row_normalised_matrix_worked_by_hand():
    # gold a, a, a, b; predicted a, b, None, b. Row a: 1/3 a, 1/3 b, 1/3 invalid; row b: 0, 1, 0.
    cm = build_confusion_matrix(["a", "a", "a", "b"], ["a", "b", None, "b"], ["a", "b"])
    analysis = {"tasks": {"t": {"models": {"tuned": {"confusion": cm}}}}}
    fig = plotting.plot_confusion_matrices(analysis, "tuned")
    ax = fig.axes[0]
    mesh = ax.collections[0]
    shown = np.asarray(mesh.get_array()).reshape(2, 3)
    np.testing.assert_allclose(shown, [[1 / 3, 1 / 3, 1 / 3], [0.0, 1.0, 0.0]])
    # cell texts: shares above 0 with two decimals, nothing in the empty cells
    assert sorted(t.get_text() for t in ax.texts if t.get_text()) == ["0.33", "0.33", "0.33", "1.00"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "(invalid)"]
    assert ax.get_title() == "t (n=4)"
    plt.close(fig)


def test_comparison_uses_the_model_colours_for_llm_and_baselines():
    rows = []
    for system, f1 in (("majority", 20.0), ("llm_tuned", 50.0)):
        rows.append({"level": "task", "name": "t1", "category": "offensive", "group": "seen", "system": system,
                     "macro_f1": f1, "macro_f1_lo": f1 - 5, "macro_f1_hi": f1 + 5})  # fmt: skip
        rows.append({"level": "group", "name": "seen", "category": None, "group": "seen", "system": system,
                     "macro_f1": f1, "macro_f1_lo": np.nan, "macro_f1_hi": np.nan})  # fmt: skip
    fig = plotting.plot_comparison(pd.DataFrame(rows))
    lines = {c.get_label(): c.lines[0] for c in fig.axes[0].containers}  # errorbar: (data line, caps, bars)
    assert to_hex(lines["majority"].get_color()) == plotting.MODEL_COLORS["majority"]
    assert to_hex(lines["llm_tuned"].get_color()) == plotting.MODEL_COLORS["tuned"]
    assert list(lines["llm_tuned"].get_xdata()) == [50.0]
    plt.close(fig)


def test_save_figure_writes_png_at_the_one_dpi_and_pdf(tmp_path):
    fig, _ = plt.subplots()
    paths = plotting.save_figure(fig, tmp_path / "deep" / "fig")
    assert paths == [tmp_path / "deep" / "fig.png", tmp_path / "deep" / "fig.pdf"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert Image.open(paths[0]).info["dpi"] == pytest.approx((plotting.DPI, plotting.DPI), abs=0.1)
    assert not plt.fignum_exists(fig.number)  # closed


def test_style_is_scoped_to_the_kits_figures():
    before = (plt.rcParams["axes.prop_cycle"], plt.rcParams["axes.grid"])
    with plotting.plot_style():
        assert plt.rcParams["axes.grid"] is True
        assert [c["color"] for c in plt.rcParams["axes.prop_cycle"]] == list(plotting.PALETTE)
    plt.close(plotting.plot_category_bars(_bar_metrics()))
    assert (
        plt.rcParams["axes.prop_cycle"],
        plt.rcParams["axes.grid"],
    ) == before  # the caller's style is kept


def _comparison_table(n_offensive: int, n_sentiment: int) -> pd.DataFrame:
    """Task rows of one system and the category rows over them; the category CI spans 0-100 as a t-CI over 2-3
    tasks does."""
    rows = []
    for cat, n in (("offensive", n_offensive), ("sentiment_emotion", n_sentiment)):
        f1s = [10.0 * (k + 1) for k in range(n)]
        for k, f1 in enumerate(f1s):
            rows.append({"level": "task", "name": f"{cat}{k}", "category": cat, "group": "seen",
                         "system": "majority", "macro_f1": f1, "macro_f1_lo": f1 - 5, "macro_f1_hi": f1 + 5})  # fmt: skip
        mean = sum(f1s) / n
        rows.append({"level": "category", "name": cat, "category": cat, "group": "seen", "system": "majority",
                     "n_tasks": n, "macro_f1": mean, "macro_f1_lo": mean - 60, "macro_f1_hi": mean + 60})  # fmt: skip
    return pd.DataFrame(rows)


def test_comparison_shows_the_tasks_of_a_small_category_instead_of_a_ci():
    fig = plotting.plot_comparison(_comparison_table(n_offensive=3, n_sentiment=5))
    ax = fig.axes[1]
    (bars,) = ax.containers[0].lines[2]  # the whiskers of the category rows
    spans = [np.asarray(seg).reshape(-1, 2)[:, 0].tolist() for seg in bars.get_segments()]
    # offensive (3 tasks, mean 20): no whisker; sentiment (5 tasks, mean 30, CI -30..90): the CI, clipped at 0
    assert spans == [[], [0.0, 90.0]]
    dots = sorted(x for c in ax.collections if c is not bars for x, _ in c.get_offsets())
    assert dots == [10.0, 20.0, 30.0]  # the small category's three tasks, each drawn
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["one task (category or group of < 5 tasks)"]
    assert "fewer than 5 tasks: no CI" in ax.get_title()
    plt.close(fig)


def test_comparison_keeps_the_ci_when_every_category_has_five_tasks():
    fig = plotting.plot_comparison(_comparison_table(n_offensive=5, n_sentiment=6))
    ax = fig.axes[1]
    (bars,) = ax.containers[0].lines[2]
    assert [seg[:, 0].tolist() for seg in bars.get_segments()] == [[0.0, 90.0], [0.0, 95.0]]
    assert ax.get_legend() is None and "no CI" not in ax.get_title()
    plt.close(fig)


def _mixing_aggregates(with_floor: bool = True) -> pd.DataFrame:
    """Two scopes on different scales (seen near 30, offensive near 70), two ratios, two sizes; the seen floor
    is 25 at 8 rows and 27 at 24 rows (the majority label changed with the train rows), offensive's 60."""
    rows = []
    for scope, level, floors in (
        ("seen", 30.0, {8: 25.0, 24: 27.0}),
        ("offensive", 70.0, {8: 60.0, 24: 60.0}),
    ):
        for r in (0, 1):
            for n in (8, 24):
                f1 = level + 2 * r + (n == 24)
                row = {"scope": scope, "general_ratio": r, "task_rows": n, "macro_f1": f1, "ci_low": f1 - 1,
                       "ci_high": f1 + 1, "n_tasks": 2}  # fmt: skip
                if with_floor:
                    row["majority_macro_f1"] = floors[n]
                rows.append(row)
    return pd.DataFrame(rows)


def test_mixing_curves_share_the_y_range_and_draw_the_majority_floor():
    fig = plotting.plot_mixing_curves(_mixing_aggregates())
    seen, offensive = fig.axes[:2]
    assert seen.get_ylim() == offensive.get_ylim()
    lo, hi = seen.get_ylim()
    assert lo <= 25.0 and hi >= 73.0  # both scopes' lines and floors are inside the one range
    floors = {
        ax.get_title(): [ln for ln in ax.lines if ln.get_label() == "majority floor"]
        for ax in (seen, offensive)
    }
    (seen_floor,) = floors["seen (2 tasks)"]
    assert list(seen_floor.get_xdata()) == [8, 24] and list(seen_floor.get_ydata()) == [25.0, 27.0]
    assert seen_floor.get_linestyle() == "--"
    (off_floor,) = floors["offensive (2 tasks)"]
    assert list(off_floor.get_ydata()) == [60.0, 60.0]
    assert "majority floor" in [t.get_text() for t in seen.get_legend().get_texts()]
    plt.close(fig)


def test_mixing_curves_without_a_floor_column_draw_no_floor():
    fig = plotting.plot_mixing_curves(_mixing_aggregates(with_floor=False))
    assert not [ln for ax in fig.axes for ln in ax.lines if ln.get_label() == "majority floor"]
    plt.close(fig)


def test_mixing_gain_names_its_band_and_its_zero_line():
    gains = pd.DataFrame(
        {"task_rows": [8, 24], "general_ratio": [1.0, 1.0], "gain": [3.0, 4.0], "ci_low": [-1.0, -0.5],
         "ci_high": [7.0, 9.0]}
    )  # fmt: skip
    fig = plotting.plot_mixing_gain(gains)
    ax = fig.axes[0]
    (zero,) = [ln for ln in ax.lines if ln.get_label() == "no gain (0)"]
    assert list(zero.get_ydata()) == [0, 0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["ratio 1", "no gain (0)", "shaded: 95% CI (paired bootstrap)"]
    plt.close(fig)


def test_sensitivity_names_the_examples_per_task():
    s = {"n": 5, "macro_f1": {"main": 60.0, "variant 0": 40.0}, "min": 40.0, "max": 60.0}
    fig = plotting.plot_sensitivity({"t1": {"base": s, "tuned": {**s, "n": 5}}, "t2": {"base": s}})
    ax = fig.axes[0]
    assert "n = 5 examples per task" in ax.get_title()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["t1 (n=5)", "t2 (n=5)"]
    plt.close(fig)
    fig = plotting.plot_sensitivity({"t1": {"base": s}, "t2": {"base": {**s, "n": 3}}})
    assert "n = 3-5 examples per task" in fig.axes[0].get_title()
    plt.close(fig)


def test_reliability_writes_the_examples_in_each_bin():
    from socialite_utils.analysis.calibration import compute_calibration

    # base: 0.55, 0.58 in bin [0.5, 0.6), 0.95 in [0.9, 1.0]; tuned: four answers at 0.75 in [0.7, 0.8)
    base = compute_calibration([0.55, 0.58, 0.95], [True, False, True])
    tuned = compute_calibration([0.75] * 4, [True, True, True, False])
    per_model = {"base": base, "tuned": tuned}
    fig = plotting.plot_reliability(
        {"calibration": {"n_bins": 10, "by_category": {"offensive": per_model}, "overall": per_model}}
    )
    ax = fig.axes[0]
    counts = sorted((t.get_text(), to_hex(t.get_color())) for t in ax.texts)
    assert counts == sorted(
        [("2", plotting.MODEL_COLORS["base"]), ("1", plotting.MODEL_COLORS["base"]),
         ("4", plotting.MODEL_COLORS["tuned"])]
    )  # fmt: skip
    two = next(t for t in ax.texts if t.get_text() == "2")
    assert two.xy == pytest.approx((0.565, 0.5))  # at the bin's point: mean confidence, accuracy
    assert "examples in the bin" in fig.get_suptitle()
    plt.close(fig)
