"""The main study over several training seeds, judged as one result.

A pipeline run with ``seeds`` (``python -m socialite_utils.pipeline --profile cpu-confirm``) runs the profile's
steps once per seed into ``runs/<name>/seed-<s>/``. Each seed draws its own train rows (data ``seed``) and trains
with its own seed; every seed is scored on the same test rows (data ``eval_seed``), and the base model is scored
once (the first seed's; the others reuse it through ``eval.base_from``).

How the seeds are combined (:func:`build_seed_claims`): for every comparison (tuned vs base, vs each floor, vs the
multi-task encoder; seen and related tasks) each seed gets a paired bootstrap over its test examples, stratified by
task (:func:`socialite_utils.reporting.bootstrap_vs_tuned`), all with the same bootstrap seed, so replicate b
resamples the same rows in every seed. :func:`socialite_utils.claims.combine_seeds` then averages the seeds and
draws them with replacement in every replicate: the interval covers both the seed-to-seed variation and the
sampling of test examples. The verdict is the one rule of :mod:`socialite_utils.claims`. A system's own mean
macro-F1 gets the same two-level interval (its bootstrap against zero).

Outputs (``runs/<name>/seeds/``): ``claims.json`` / ``claims.csv`` (every verdict line names its comparison, n and
interval), ``systems.csv`` (each system's mean macro-F1 per seed, the mean over seeds and its interval),
``figures/seed_points.png|pdf`` (each seed's point beside the mean) and ``summary.txt``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from .. import claims as C
from ..plotting import model_color, plot_style, save_figure
from ..reporting import (
    ENCODER,
    FLOORS,
    PRIOR_FLOORS,
    bootstrap_vs_tuned,
    claim_entry,
    unjudged_entry,
)
from ..runs import RunWriter, read_jsonl, write_json
from ..schema import read_eval_metrics

GROUPS = ("seen", "related")
SYSTEMS = ("base", *FLOORS, ENCODER)  # what the tuned model is compared with, in the figure's order


@dataclass
class SeedRun:
    """One seed's pipeline run: its evaluation metrics and predictions, and its baselines' predictions."""

    seed_dir: Path
    metrics: dict
    predictions: list[dict]
    baseline_predictions: list[dict]


def load_seed_run(seed_dir: str | os.PathLike) -> SeedRun:
    """``<seed_dir>/eval`` and ``<seed_dir>/baselines`` (the latter optional) of one seed's pipeline run."""
    seed_dir = Path(seed_dir)
    metrics = read_eval_metrics(seed_dir / "eval" / "metrics.json")
    predictions = read_jsonl(seed_dir / "eval" / "predictions.jsonl")
    baselines = seed_dir / "baselines" / "predictions.jsonl"
    return SeedRun(seed_dir, metrics, predictions, read_jsonl(baselines) if baselines.exists() else [])


def _rows(run: SeedRun, system: str, tasks: Sequence[str]) -> dict[tuple[str, str], dict]:
    source = run.predictions if system in ("base", "tuned") else run.baseline_predictions
    return {(r["task"], r["id"]): r for r in source if r["model"] == system and r["task"] in tasks}


def _tasks(run: SeedRun, group: str) -> list[str]:
    return [n for n, t in run.metrics["tasks"].items() if t["group"] == group and t.get("labels")]


def compare_over_seeds(
    runs: Sequence[SeedRun], system: str, group: str, *, B: int = 1000, seed: int = 0
) -> C.BootstrapResult | None:
    """tuned - ``system`` (mean macro-F1 over the group's tasks), each seed paired on its test rows, combined over
    the seeds (two-level interval); None when some seed has no ``system`` predictions on every task. The stratified
    floor is scored by its expected macro-F1 over its draws, as in a single run."""
    per_seed = []
    for run in runs:
        tasks = _tasks(run, group)
        tuned = {k: r["parsed"] for k, r in _rows(run, "tuned", tasks).items()}
        other = _rows(run, system, tasks)
        if not tasks or not tuned or not other:
            return None
        res = bootstrap_vs_tuned(
            run.metrics, tuned, other, system, tasks, bootstrap_samples=B, seed=seed,
            expected_floor=system == "stratified",
        )  # fmt: skip
        if res is None:
            return None
        per_seed.append(res)
    return C.combine_seeds(per_seed, seed=seed)


def system_over_seeds(
    runs: Sequence[SeedRun], system: str, group: str, *, B: int = 1000, seed: int = 0
) -> C.BootstrapResult | None:
    """``system``'s own mean macro-F1 over the group's tasks: per seed a bootstrap over its test rows (the same
    resamples as the comparisons), combined over the seeds; None without predictions."""
    per_seed = []
    for run in runs:
        tasks = _tasks(run, group)
        rows = _rows(run, system, tasks)
        if not tasks or {t for t, _ in rows} != set(tasks):
            return None
        a, b, metric, zero = {}, {}, {}, {}
        for task in tasks:
            keys = sorted(k for k in rows if k[0] == task)
            gold = [rows[k]["gold"] for k in keys]
            labels = list(run.metrics["tasks"][task]["labels"])
            a[task] = (gold, [rows[k]["parsed"] for k in keys])
            b[task] = (gold, gold)
            prior = rows[keys[0]].get("probs")
            metric[task] = (
                C.ExpectedStratifiedMacroF1(labels, prior)
                if system == "stratified" and prior
                else C.MacroF1(labels)
            )
            zero[task] = _zero
        per_seed.append(C.paired_bootstrap_mean_over_tasks(a, b, metric, B=B, seed=seed, metric_b=zero))
    return C.combine_seeds(per_seed, seed=seed)


def _zero(gold: Any, pred: Any) -> float:
    return 0.0


def _label(system: str) -> str:
    return {"base": "the base model", ENCODER: "the multi-task encoder"}.get(system, system)


def _judged(name: str, comparison: str, res: C.BootstrapResult, extra: str = "") -> dict:
    claim = C.judge(name, comparison, res, metric="macro-F1")
    per_seed = ", ".join(f"{e:+.1f}" for e in res.per_seed_effects)
    parts = [
        f"mean macro-F1 tuned {res.metric_a:.1f} vs {res.metric_b:.1f}, mean over {res.n_seeds} "
        f"seed{'s' if res.n_seeds != 1 else ''} "
        f"(each seed's difference: {per_seed})"
    ]
    if claim.task_count is not None:
        parts.append(claim.task_count.describe())
    if extra:
        parts.append(extra)
    return claim_entry(claim, "; ".join(parts), {"per_seed_effects": list(res.per_seed_effects)})


def build_seed_claims(runs: Sequence[SeedRun], *, B: int = 1000, seed: int = 0) -> list[dict]:
    """The study's claims over the seeds: tuned vs base, vs the best floor (chosen by its mean over seeds, with
    every floor's result in the details) and vs the multi-task encoder, on seen and on related tasks."""
    out: list[dict] = []
    n = len(runs)
    for group in GROUPS:
        where = f"{group} tasks, mean over {n} seed(s)"
        name = f"Instruction tuning improves macro-F1 over the base model on {group} tasks"
        res = compare_over_seeds(runs, "base", group, B=B, seed=seed)
        out.append(
            _judged(name, f"tuned vs base, {where}", res)
            if res
            else unjudged_entry(name, f"no {group} tasks")
        )

        name = (
            f"The tuned model beats the simple baselines (majority, stratified, TF-IDF + LR) on {group} tasks"
        )
        floors = {f: r for f in FLOORS if (r := compare_over_seeds(runs, f, group, B=B, seed=seed))}
        if not floors:
            out.append(unjudged_entry(name, f"no floor predictions on every {group} task"))
        else:
            best = max(floors, key=lambda f: floors[f].metric_b)
            verdicts = {f: C.judge(name, f, r).verdict for f, r in floors.items()}
            priors = [f for f in PRIOR_FLOORS if f in verdicts]
            extra = "floors: " + ", ".join(f"{f} {r.metric_b:.1f} ({verdicts[f]})" for f, r in floors.items())
            if not all(verdicts[f] == C.Verdict.SUPPORTED for f in priors):
                extra += (
                    "; the tuned model is not significantly better than guessing from the label distribution "
                    f"({' / '.join(priors)}): it learned the label priors and the answer format, not the tasks"
                )
            entry = _judged(name, f"tuned vs best floor {best}, {where}", floors[best], extra)
            entry["details"]["per_floor"] = {
                f: {"delta": r.effect, "ci": list(r.ci), "metric_b": r.metric_b, "verdict": verdicts[f]}
                for f, r in floors.items()
            }
            out.append(entry)

        name = f"The tuned model beats the multi-task encoder on {group} tasks"
        res = compare_over_seeds(runs, ENCODER, group, B=B, seed=seed)
        out.append(
            _judged(name, f"tuned vs {ENCODER}, {where}", res)
            if res
            else unjudged_entry(name, f"no {ENCODER} predictions on every {group} task")
        )
    return out


def build_system_table(runs: Sequence[SeedRun], *, B: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per system and group: mean macro-F1 of every seed, the mean over seeds and its two-level CI."""
    rows = []
    for group in GROUPS:
        for system in ("tuned", *SYSTEMS):
            res = system_over_seeds(runs, system, group, B=B, seed=seed)
            if res is None:
                continue
            row = {
                "group": group,
                "system": system,
                "mean": res.effect,
                "ci_low": res.ci[0],
                "ci_high": res.ci[1],
            }
            row |= {
                f"seed_{run.seed_dir.name.removeprefix('seed-')}": e
                for run, e in zip(runs, res.per_seed_effects, strict=True)
            }
            rows.append(row)
    return pd.DataFrame(rows)


def plot_seed_points(table: pd.DataFrame) -> Any:
    """Per group, each system's mean macro-F1 over seeds with its two-level 95% CI, and every seed's own value as a
    dot beside it (a result that rests on one seed would show a single dot)."""
    seed_cols = [c for c in table.columns if c.startswith("seed_")]
    groups = [g for g in GROUPS if g in set(table["group"])]
    with plot_style():
        fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 3.8), squeeze=False, sharey=True)
        for ax, group in zip(axes[0], groups, strict=True):
            part = table[table["group"] == group].reset_index(drop=True)
            for i, r in part.iterrows():
                color = model_color(r["system"], i)
                # the mean over seeds can sit outside its percentile interval when few seeds disagree: no negative bar
                err = [[max(0.0, r["mean"] - r["ci_low"])], [max(0.0, r["ci_high"] - r["mean"])]]
                ax.errorbar(i, r["mean"], yerr=err, fmt="D", color=color, capsize=4, markersize=7)
                values = [r[c] for c in seed_cols if pd.notna(r[c])]
                ax.scatter([i + 0.18] * len(values), values, color=color, alpha=0.6, s=18, zorder=3)
            ax.set_xticks(range(len(part)), part["system"], rotation=30, ha="right")
            ax.set_title(f"{group} tasks ({len(seed_cols)} seeds)")
            ax.set_ylabel("mean macro-F1 over tasks")
        fig.suptitle("diamond: mean over seeds, 95% CI over seeds and test rows; dots: each seed", fontsize=9)
        fig.tight_layout()
    return fig


def format_seed_summary(claims: Sequence[dict], table: pd.DataFrame) -> str:
    lines = ["claims over the seeds (one rule: SUPPORTED / CONTRADICTED / INCONCLUSIVE from the 95% CI):"]
    for c in claims:
        # a judged claim's line starts with its verdict and names its comparison, n and interval
        lines.append(c.get("line") or f"[not judged] {c['claim']}")
        if c.get("evidence"):
            lines.append(f"    {c['evidence']}")
    lines.append("")
    lines.append("mean macro-F1 over tasks, mean over seeds [95% CI over seeds and test rows]; each seed:")
    seed_cols = [c for c in table.columns if c.startswith("seed_")]
    for r in table.itertuples(index=False):
        r = r._asdict()
        seeds = ", ".join(f"{r[c]:.1f}" for c in seed_cols)
        lines.append(
            f"  {r['group']:<8}{r['system']:<20}{r['mean']:6.1f} [{r['ci_low']:.1f}, {r['ci_high']:.1f}]  ({seeds})"
        )
    return "\n".join(lines)


def write_seed_report(
    pipe_dir: str | os.PathLike, seed_dirs: Sequence[str | os.PathLike], *, B: int = 1000, seed: int = 0
) -> Path:
    """Judge the seeds' runs together and write ``<pipe_dir>/seeds/`` atomically; return that folder."""
    runs = [load_seed_run(d) for d in seed_dirs]
    ids = [sorted((r["task"], r["id"]) for r in run.predictions if r["model"] == "tuned") for run in runs]
    if any(i != ids[0] for i in ids[1:]):
        raise ValueError(
            "the seeds' evaluations cover different test rows: a seeds run draws its test rows with one eval_seed"
        )
    claims = build_seed_claims(runs, B=B, seed=seed)
    table = build_system_table(runs, B=B, seed=seed)
    out = Path(pipe_dir) / "seeds"
    with RunWriter(out, overwrite=True) as tmp:
        write_json(
            tmp / "claims.json", {"seeds": [Path(d).name for d in seed_dirs], "B": B, "claims": claims}
        )
        pd.DataFrame(claims).drop(columns=["details", "per_task"], errors="ignore").to_csv(
            tmp / "claims.csv", index=False
        )
        table.to_csv(tmp / "systems.csv", index=False, float_format="%.2f")
        save_figure(plot_seed_points(table), tmp / "figures" / "seed_points")
        (tmp / "summary.txt").write_text(format_seed_summary(claims, table) + "\n")
    return out


__all__ = [
    "SeedRun",
    "build_seed_claims",
    "build_system_table",
    "compare_over_seeds",
    "format_seed_summary",
    "load_seed_run",
    "plot_seed_points",
    "system_over_seeds",
    "write_seed_report",
]
