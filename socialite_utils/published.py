"""Published figures: every committed figure drawn from the numbers committed beside it.

``publish_run(run_dir, dest)`` writes, for each headline figure of a finished pipeline run, the numbers it is drawn
from (a CSV or JSON file in ``dest``) and then draws the figure from those files, never from the run's own PNGs.
``draw_published(dest, name)`` draws one again from the same files, so a test can check that every PNG under
``figures/`` is exactly what today's code draws from the numbers beside it (tests/test_published_figures.py).

    python -m socialite_utils.published figures/confirm   # redraw every figure of a published folder in place

Figure name -> (the numbers files it reads, how it is drawn) is :data:`FIGURES`.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import plotting
from .reporting import compared_tasks
from .runs import read_json, read_jsonl, write_json
from .studies.mixing import mixing_figure_scopes
from .studies.seeds import plot_seed_points
from .studies.writing import figure_skips


@dataclass(frozen=True)
class Figure:
    """One published figure: the numbers files it is drawn from (names in the published folder), how it is drawn
    from them, and its formats."""

    numbers: tuple[str, ...]
    draw: Callable[..., Any]
    formats: tuple[str, ...] = ("png", "pdf")


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def _loss(numbers: dict) -> Any:
    return plotting.plot_loss_curve(numbers["log_history"], title=numbers["title"])


FIGURES: dict[str, Figure] = {
    "data_composition": Figure(("data_composition.json",), lambda n: plotting.plot_composition(read_json(n))),
    "loss_curve": Figure(("loss_curve.json",), lambda n: _loss(read_json(n)), ("png",)),
    "category_bars": Figure(("eval_metrics.json",), lambda n: plotting.plot_category_bars(read_json(n))),
    "task_deltas": Figure(("eval_metrics.json",), lambda n: plotting.plot_task_deltas(read_json(n))),
    "seen_related": Figure(("eval_metrics.json",), lambda n: plotting.plot_seen_related(read_json(n))),
    "prompt_sensitivity": Figure(
        ("analysis_figures.json",), lambda n: plotting.plot_sensitivity(read_json(n)["sensitivity"])
    ),
    "reliability": Figure(("analysis_figures.json",), lambda n: plotting.plot_reliability(read_json(n))),
    "baselines_comparison": Figure(("comparison.csv",), lambda n: plotting.plot_comparison(_csv(n))),
    "mixing_curves": Figure(
        ("aggregates.csv",), lambda n: plotting.plot_mixing_curves(_csv(n), mixing_figure_scopes(_csv(n)))
    ),
    "mixing_gain": Figure(("gains.csv",), lambda n: plotting.plot_mixing_gain(_csv(n))),
    "specialisation_vs_retention": Figure(
        ("aggregates.csv",), lambda n: plotting.plot_specialisation_vs_retention(_csv(n))
    ),
    "seed_points": Figure(("systems.csv",), lambda n: plot_seed_points(_csv(n))),
}
WRITING_PREFIX = "writing_"  # notebook 07: one figure per metric, writing_<metric>, from writing_metrics.json


def figure_spec(name: str) -> Figure:
    """The spec of a published figure name (``writing_<metric>`` for notebook 07's per-metric figures)."""
    if name in FIGURES:
        return FIGURES[name]
    if name.startswith(WRITING_PREFIX):
        metric = name[len(WRITING_PREFIX) :]
        return Figure(
            ("writing_metrics.json",), lambda n: plotting.plot_generation_metric(read_json(n), metric)
        )
    raise KeyError(
        f"{name!r} is not a published figure; known: {', '.join(FIGURES)}, {WRITING_PREFIX}<metric>"
    )


def draw_published(
    folder: str | os.PathLike, name: str, dest_stem: str | os.PathLike | None = None
) -> list[Path]:
    """Draw figure ``name`` from the numbers in ``folder`` and save it as ``dest_stem``.png/pdf (default: in
    ``folder``, beside its numbers); returns the paths."""
    folder = Path(folder)
    spec = figure_spec(name)
    missing = [n for n in spec.numbers if not (folder / n).exists()]
    if missing:
        raise FileNotFoundError(f"{folder}: figure {name!r} is drawn from {missing}, which are not there")
    fig = spec.draw(*(folder / n for n in spec.numbers))
    return plotting.save_figure(fig, dest_stem or folder / name, formats=spec.formats)


def published_names(folder: str | os.PathLike) -> list[str]:
    """The figures of a published folder: every PNG's name."""
    return sorted(p.stem for p in Path(folder).glob("*.png"))


# ---------------------------------------------------------------- what a run's steps publish


def _eval_numbers(run: Path, dest: Path) -> list[str]:
    metrics = run / "eval" / "metrics.json"
    if not metrics.exists():
        return []
    shutil.copyfile(metrics, dest / "eval_metrics.json")
    numbers = read_json(metrics)
    names = ["category_bars", "seen_related"]
    if compared_tasks(numbers):
        names.append("task_deltas")
    return names


def _data_numbers(run: Path, dest: Path) -> list[str]:
    data_dir = run / "data" / "data"
    if not data_dir.is_dir():
        return []

    class _Splits:  # what composition_numbers reads: rows per split
        splits = {
            s: read_jsonl(data_dir / f"{s}.jsonl") if (data_dir / f"{s}.jsonl").exists() else []
            for s in ("train", "validation", "test")
        }

    write_json(dest / "data_composition.json", plotting.composition_numbers(_Splits()))
    return ["data_composition"]


def _train_numbers(run: Path, dest: Path) -> list[str]:
    log = run / "train" / "train_log.jsonl"
    if not log.exists():
        return []
    params = read_json(run / "train" / "params.json")
    title = f"{params['run_name']}: {params['base_model']}"  # as the training run drew it
    write_json(dest / "loss_curve.json", {"title": title, "log_history": read_jsonl(log)})
    return ["loss_curve"]


def _analysis_numbers(run: Path, dest: Path) -> list[str]:
    path = run / "analysis" / "analysis.json"
    if not path.exists():
        return []
    analysis = read_json(path)
    sensitivity = (analysis.get("sensitivity") or {}).get("tasks") or {}  # task -> model -> prompt scores
    write_json(
        dest / "analysis_figures.json",
        {"calibration": analysis.get("calibration"), "sensitivity": sensitivity},
    )
    names = []
    if sensitivity:
        names.append("prompt_sensitivity")
    if analysis.get("calibration"):
        names.append("reliability")
    return names


def _copy(src: Path, dest: Path) -> bool:
    if src.exists():
        shutil.copyfile(src, dest)
    return src.exists()


def _baselines_numbers(run: Path, dest: Path) -> list[str]:
    return (
        ["baselines_comparison"]
        if _copy(run / "baselines" / "comparison.csv", dest / "comparison.csv")
        else []
    )


def _mixing_numbers(run: Path, dest: Path) -> list[str]:
    names = []
    if _copy(run / "mixing" / "aggregates.csv", dest / "aggregates.csv"):
        names += ["mixing_curves", "specialisation_vs_retention"]
    if _copy(run / "mixing" / "gains.csv", dest / "gains.csv") and not _csv(dest / "gains.csv").empty:
        names.append("mixing_gain")
    return names


def _writing_numbers(run: Path, dest: Path) -> list[str]:
    path = run / "writing" / "metrics.json"
    if not path.exists():
        return []
    shutil.copyfile(path, dest / "writing_metrics.json")
    metrics = read_json(path)
    skipped = figure_skips(metrics)  # a metric that is 0 everywhere gets a note, not an empty chart
    names = sorted({m for t in metrics["tasks"].values() if t["status"] == "ok" for m in t["metrics"]})
    return [f"{WRITING_PREFIX}{m}" for m in names if m not in skipped]


def _seeds_numbers(run: Path, dest: Path) -> list[str]:
    return ["seed_points"] if _copy(run / "seeds" / "systems.csv", dest / "systems.csv") else []


STEP_NUMBERS = (
    _data_numbers,
    _train_numbers,
    _eval_numbers,
    _analysis_numbers,
    _baselines_numbers,
    _mixing_numbers,
    _writing_numbers,
    _seeds_numbers,
)


def publish_run(run_dir: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Write the numbers of every headline figure of ``run_dir`` into ``dest`` and draw each figure from them."""
    run, dest = Path(run_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for step in STEP_NUMBERS:
        for name in step(run, dest):
            paths += draw_published(dest, name)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Redraw every figure of a published folder from its numbers.")
    ap.add_argument("folder", help="a published folder, e.g. figures/ or figures/mixing")
    args = ap.parse_args(argv)
    for name in published_names(args.folder):
        for path in draw_published(args.folder, name):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
