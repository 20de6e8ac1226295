"""Specialist baselines beside the LLM: two floors, TF-IDF + logistic regression, a multi-task encoder.

This module scores the systems, builds the comparison with the LLM and writes the run; the pieces, one job per
module: :mod:`.views` (task views, system outputs), :mod:`.classic` (floors, TF-IDF), :mod:`.encoder` (the
multi-task encoder); the figures are in :mod:`socialite_utils.plotting`.

Socialite-Llama compares its instruction-tuned LLM with a multi-task fine-tuned DeBERTa (the SocKET recipe). This
module trains those specialists on a data run (notebook 01), scores them with the same metric code as the
evaluation (notebook 03: :mod:`socialite_utils.metrics`, the task's full label list, bootstrap CIs) and merges them
with the LLM's numbers from an evaluation run's ``metrics.json`` into one comparison table.

Systems and the decisions behind them:

* ``majority``: the most frequent training label (ties: the earlier label in the task's canonical order).
* ``stratified``: a label drawn at random from the training label distribution; seeded per task, so reruns match.
  When notebook 01 balanced the train rows (``balance_train``), both floors take the label shares of the train
  split before balancing (the data card's ``label_distribution.train_before_balancing``), so they stay the floors
  of a guesser that knows the natural label prior rather than becoming uniform guesses.
* ``tfidf_lr``: word 1-2-gram TF-IDF (pair tasks: a second vectorizer for ``text_b``, features stacked) and
  class-balanced logistic regression (the target metric is macro-F1). Seen tasks pick C from ``TFIDF_C_GRID`` on
  their validation split; related tasks have none and use C = 1.
* ``multitask_encoder``: SocKET's recipe, one shared encoder -> pooled [CLS] or mean -> one head per task
  (Linear to n_labels with cross-entropy, or Linear to 1 with MSE on the z-scored raw rating), trained on every
  seen task together with batches mixed across tasks; fixed number of epochs, no checkpoint selection.

Regression tasks (ratings binarized low/high at the train median by notebook 01): macro-F1 is on the bins for every
system. Pearson r is against the raw gold rating: the classifiers use P(high) as their score (the same quantity
notebook 03 uses for the LLM in score mode; the stratified floor's score is its sampled bin, 1/0); the encoder's
regression head predicts the rating itself and is binarized at the data run's threshold.

Related (held-out) tasks have no train rows in a data run. The floors and TF-IDF are trained on the task's
``fewshot_pool`` rows (up to 64, drawn from its train split) and marked ``train_source = "fewshot_pool"``: the LLM
never saw those tasks, so these numbers are an upper reference, not a like-for-like comparison. The multi-task
encoder is trained on seen tasks only and has no head for a related task: ``"not trainable: held out"``.

Aggregates: per category over **seen tasks only** (where every system, tuned LLM included, trained on the task's
train split), and per group (seen / related), with :func:`socialite_utils.metrics.aggregate` (mean over tasks, t-based
CI over tasks). ``n_tasks`` is in every aggregate row because a system without a number for a task (the encoder on
related tasks) is averaged over fewer tasks.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import metrics as M
from ..evaluation.predictions import build_prediction_row, compute_task_metrics
from ..evaluation.run import load_eval_run
from ..plotting import save_figures
from ..reporting import ENCODER, build_floor_claim, build_system_claim, system_order
from ..runs import RunWriter, new_run_dir, provenance, resolve_run_dir, write_json
from ..schema import (
    EVAL_MODEL_FIELDS,
    EVAL_REGRESSION_FIELDS,
    EVAL_TASK_FIELDS,
    SCHEMA_VERSION,
    read_eval_metrics,
    write_baselines_metrics,
    write_prediction_rows,
)
from .encoder import (
    TrainedEncoder,
)
from .views import SystemOutput, TaskData

# --------------------------------------------------------------------------------------------------------
# Scoring: the metrics.json "models" entry shape of notebook 03
# --------------------------------------------------------------------------------------------------------


@dataclass
class BaselineResults:
    """Everything a baselines run computed: views, raw outputs and per-task scores."""

    views: dict[str, TaskData]
    outputs: dict[str, dict[str, SystemOutput | str]]  # system -> task -> output | status
    scores: dict[str, dict[str, dict]]  # task -> system -> metrics entry | {"status": ...}
    settings: dict[str, Any] = field(default_factory=dict)
    encoder: dict[str, Any] | None = None


def system_rows(system: str, view: TaskData, output: SystemOutput) -> list[dict]:
    """One prediction row per test example of ``view`` (:func:`socialite_utils.evaluation.predictions.build_prediction_row`,
    ``mode = "baseline"``): no prompt, so few_shot_k, variant, label_words, truncated_tokens, raw_output and
    logprobs are None. For regression tasks ``expected_score`` is what Pearson r uses; ``score_kind`` says which
    quantity it is."""
    if len(output.pred) != len(view.test):
        raise ValueError(
            f"{system} on {view.name}: {len(output.pred)} predictions for {len(view.test)} test rows"
        )
    return [
        build_prediction_row(
            r,
            model=system,
            mode="baseline",
            parsed=output.pred[i],
            probs=output.probs[i] if output.probs else None,
            expected_score=output.expected_score[i] if output.expected_score else None,
            score_kind=output.score_kind,
        )
        for i, r in enumerate(view.test)
    ]


def compute_system_metrics(
    view: TaskData,
    output: SystemOutput,
    *,
    bootstrap_samples: int = 1000,
    seed: int = 0,
    system: str = "baseline",
) -> dict:
    """Metrics of one system on one task: the evaluation's per-task block
    (:func:`socialite_utils.evaluation.predictions.compute_task_metrics` on :func:`system_rows`, the same ``seed`` for every
    task), without its ``n_invalid`` and ``pearson_n`` (baselines_metrics.json has never had them).

    Adds ``score_kind`` (regression), ``train_n``, ``train_source``, ``info`` and ``correct`` (per-example
    booleans, for aggregation; not written to JSON); a system's ``info["flag"]`` is appended to ``flags``.
    """
    rows = system_rows(system, view, output)
    entry = compute_task_metrics(rows, view.labels, view.type, bootstrap_samples=bootstrap_samples, seed=seed)
    del entry["n_invalid"]
    entry.pop("pearson_n", None)
    if view.is_regression:
        entry["score_kind"] = output.score_kind
    if output.info.get("flag"):
        entry["flags"].append(output.info["flag"])
    if "expected_macro_f1" in output.info:  # a random floor: its expectation over draws beside the one draw
        entry["expected_macro_f1"] = output.info["expected_macro_f1"]
    entry.update(train_n=output.train_n, train_source=output.train_source, info=output.info)
    entry["correct"] = M.compute_correctness([r["gold"] for r in rows], [r["parsed"] for r in rows])
    return entry


def compute_baselines_metrics(
    views: dict[str, TaskData],
    outputs: dict[str, dict[str, SystemOutput | str]],
    *,
    bootstrap_samples: int = 1000,
    seed: int = 0,
    settings: dict | None = None,
    encoder: TrainedEncoder | None = None,
) -> BaselineResults:
    """Score every (system, task) output; status strings are carried through as ``{"status": ...}``."""
    scores: dict[str, dict[str, dict]] = {}
    for name, view in views.items():
        scores[name] = {}
        for system, per_task in outputs.items():
            out = per_task.get(name, "not run")
            if isinstance(out, str):
                scores[name][system] = {"status": out}
                continue
            scores[name][system] = compute_system_metrics(
                view, out, bootstrap_samples=bootstrap_samples, seed=seed, system=system
            )
    enc_info = None
    if encoder is not None:
        enc_info = {
            "preset": asdict(encoder.preset),
            "train_seconds": encoder.seconds,
            "n_params": encoder.n_params,
            "device": encoder.device,
            "tasks": sorted(encoder.tasks),
            "final_train_loss": next((h["loss"] for h in reversed(encoder.history) if "loss" in h), None),
            "validation_loss": [h["validation_loss"] for h in encoder.history if "validation_loss" in h],
        }
    return BaselineResults(
        views=views, outputs=outputs, scores=scores, settings=dict(settings or {}), encoder=enc_info
    )


def prediction_rows(results: BaselineResults) -> list[dict]:
    """Every system's prediction rows (:func:`system_rows`), in the evaluation's row schema."""
    return [
        row
        for system, per_task in results.outputs.items()
        for name, out in per_task.items()
        if not isinstance(out, str)
        for row in system_rows(system, results.views[name], out)
    ]


def build_floor_claims(
    eval_run: str | os.PathLike, results: BaselineResults, *, bootstrap_samples: int = 1000, seed: int = 0
) -> list[dict]:
    """The tuned model against the baselines, judged on the evaluation run's predictions and these baselines'
    predictions of the same test examples, each by the one verdict rule: the best floor on seen tasks and on
    related tasks (:func:`socialite_utils.reporting.build_floor_claim`; the stratified floor by its expected
    macro-F1), and the multi-task encoder on seen tasks when this run trained it
    (:func:`socialite_utils.reporting.build_system_claim`)."""

    ev = load_eval_run(eval_run)
    metrics, predictions = ev.metrics, ev.predictions
    if "tuned" not in metrics["models"]:
        return []
    rows = prediction_rows(results)
    kw = {"bootstrap_samples": bootstrap_samples, "seed": seed}
    claims = [build_floor_claim(metrics, predictions, rows, group=g, **kw) for g in ("seen", "related")]
    if any(r["model"] == ENCODER for r in rows):
        claims.append(build_system_claim(metrics, predictions, rows, system=ENCODER, group="seen", **kw))
    return claims


def _aggregates(task_results: list[dict]) -> dict[str, dict]:
    """Category (seen tasks only) and group aggregates of per-task results."""
    out: dict[str, dict] = {"categories": {}, "groups": {}}
    seen = [t for t in task_results if t["group"] == "seen"]
    if seen:
        out["categories"] = M.aggregate(seen, by="category")
    if task_results:
        out["groups"] = M.aggregate(task_results, by="group")
    return out


def baselines_metrics(
    results: BaselineResults, run_name: str | None = None, claims: list[dict] | None = None
) -> dict:
    """The ``baselines_metrics.json`` document (schema_version 1), aggregates included; ``claims`` are the
    tuned-vs-floors claims (:func:`socialite_utils.reporting.build_floor_claim`), [] without an eval run."""
    tasks = {}
    per_system: dict[str, list[dict]] = {}
    for name, view in results.views.items():
        entries = {}
        for system, entry in results.scores[name].items():
            entries[system] = {k: v for k, v in entry.items() if k != "correct"}
            if "macro_f1" in entry:
                per_system.setdefault(system, []).append(
                    {"task": name, "n": entry["n"], "macro_f1": entry["macro_f1"], "correct": entry["correct"],
                     "category": view.category, "group": view.group}
                )  # fmt: skip
        tasks[name] = {
            "category": view.category,
            "group": view.group,
            "type": view.type,
            "n": len(view.test),
            "labels": view.labels,
            "train_source": view.train_source,
            "systems": entries,
        }
    aggs = {s: _aggregates(trs) for s, trs in per_system.items()}
    return {
        "schema_version": SCHEMA_VERSION,
        "run_name": run_name,
        "settings": results.settings,
        "systems": list(results.outputs),
        "tasks": tasks,
        "categories": {s: a["categories"] for s, a in aggs.items()},
        "groups": {s: a["groups"] for s, a in aggs.items()},
        "encoder": results.encoder,
        "claims": list(claims or []),
        "notes": [
            "macro_f1/accuracy in percent (0-100); CIs are percentile bootstraps over test examples",
            "related tasks: floors and tfidf_lr train on the fewshot_pool rows (an upper reference: the LLM never "
            "saw these tasks); the multi-task encoder has no head for them",
            "regression: macro-F1 on low/high bins; Pearson on P(high) (classifiers) or the predicted rating (encoder)",
            "categories aggregate seen tasks only; groups aggregate seen and related separately",
        ],
    }


# --------------------------------------------------------------------------------------------------------
# The evaluation run's metrics and the comparison table
# --------------------------------------------------------------------------------------------------------


def load_eval_metrics(eval_run: str | os.PathLike) -> dict:
    """Read and check an evaluation run's ``metrics.json`` (notebook 03); errors name what is missing."""
    run_dir = resolve_run_dir(eval_run)
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"evaluation run {run_dir} does not exist (run notebook 03 first, or eval_run=None)"
        )
    return read_eval_metrics(
        run_dir / "metrics.json",
        task_fields=EVAL_TASK_FIELDS,
        model_fields=EVAL_MODEL_FIELDS,
        regression_fields=EVAL_REGRESSION_FIELDS,
    )


def _nan_pair(x) -> tuple[float, float]:
    if not x:
        return math.nan, math.nan
    lo, hi = x
    return (math.nan if lo is None else float(lo)), (math.nan if hi is None else float(hi))


def _num(x) -> float:
    return math.nan if x is None else float(x)


def _task_row(system: str, name: str, meta: dict, entry: dict, n: int) -> dict:
    row = {
        "level": "task",
        "name": name,
        "category": meta["category"],
        "group": meta["group"],
        "type": meta["type"],
    }
    row.update(system=system, n=n, n_tasks=1)
    if "macro_f1" not in entry:
        return {**row, "macro_f1": math.nan, "macro_f1_lo": math.nan, "macro_f1_hi": math.nan,
                "accuracy": math.nan, "pearson_r": math.nan, "pearson_lo": math.nan, "pearson_hi": math.nan,
                "train_source": None, "status": entry.get("status", "missing"), "flags": "",
                "macro_f1_expected": math.nan}  # fmt: skip
    f_lo, f_hi = _nan_pair(entry.get("macro_f1_ci"))
    p_lo, p_hi = _nan_pair(entry.get("pearson_r_ci"))
    return {
        **row,
        "n": entry.get("n", n),
        "macro_f1": _num(entry["macro_f1"]),
        "macro_f1_lo": f_lo,
        "macro_f1_hi": f_hi,
        "accuracy": _num(entry.get("accuracy")),
        "pearson_r": _num(entry.get("pearson_r")),
        "pearson_lo": p_lo,
        "pearson_hi": p_hi,
        "train_source": entry.get("train_source"),
        "status": "ok",
        "flags": "; ".join(entry.get("flags") or []),
        "macro_f1_expected": _num(entry.get("expected_macro_f1")),
    }


def _llm_source(model: str, group: str, settings: dict) -> str:
    shots = settings.get("few_shot_k")
    how = f"{settings.get('mode', '?')} mode, k={shots if shots is not None else '?'}"
    if model == "base" or group == "related":
        return f"none ({how})"
    return f"instruction-tuned on train ({how})"


def build_comparison(results: BaselineResults, eval_metrics: dict | None = None):
    """One long table (pandas DataFrame): every system per task, per category (seen tasks) and per group.

    Columns: level (task | category | group), name, category, group, type, system, n, n_tasks, macro_f1 with CI
    (``macro_f1_lo``/``_hi``), accuracy, pearson_r with CI, train_source, status, flags, and
    ``macro_f1_expected`` (the stratified floor's expected macro-F1 over its draws; nan for other systems). LLM rows (``llm_<model>``)
    come from the evaluation run's metrics.json; their CIs are notebook 03's. A test-set size that differs between
    the eval run and the baselines is flagged on the LLM row.
    """
    import pandas as pd

    rows = []
    metas = {n: {"category": v.category, "group": v.group, "type": v.type} for n, v in results.views.items()}
    for name, view in results.views.items():
        for system, entry in results.scores[name].items():
            rows.append(_task_row(system, name, metas[name], entry, len(view.test)))
    if eval_metrics is not None:
        settings = eval_metrics.get("settings") or {}
        ours, theirs = results.settings.get("data_run"), settings.get("data_run")
        if ours and theirs and Path(str(ours)).name != Path(str(theirs)).name:
            warnings.warn(
                f"the evaluation run scored data run {theirs!r}, the baselines {ours!r}: test examples may differ",
                UserWarning,
                stacklevel=2,
            )
        for model in eval_metrics["models"]:
            for name, t in eval_metrics["tasks"].items():
                meta = metas.get(name) or {k: t[k] for k in ("category", "group", "type")}
                row = _task_row(f"llm_{model}", name, meta, t["models"][model], t["n"])
                row["train_source"] = _llm_source(model, meta["group"], settings)
                if name in results.views and t["n"] != len(results.views[name].test):
                    note = f"different test set size: eval n={t['n']}, baselines n={len(results.views[name].test)}"
                    row["flags"] = "; ".join(x for x in (row["flags"], note) if x)
                rows.append(row)
        for name in results.views:
            if name not in eval_metrics["tasks"]:
                for model in eval_metrics["models"]:
                    rows.append(
                        _task_row(f"llm_{model}", name, metas[name], {"status": "not in eval run"}, 0)
                    )
    table = pd.DataFrame(rows)
    return pd.concat([table, _aggregate_rows(table)], ignore_index=True)


def _aggregate_rows(table):
    import pandas as pd

    out = []
    ok = table[(table["level"] == "task") & table["macro_f1"].notna()]
    for system, sub in ok.groupby("system", sort=False):
        trs = [
            {"task": r.name, "n": int(r.n), "macro_f1": r.macro_f1, "category": r.category, "group": r.group}
            for r in sub.itertuples(index=False)
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.MetricWarning)
            aggs = _aggregates(trs)
        for level, key in (("category", "categories"), ("group", "groups")):
            for value, a in aggs[key].items():
                lo, hi = a["macro_over_tasks_ci"]
                flags = [f for f in a["flags"] if not f.startswith("no_pooled")]
                out.append(
                    {
                        "level": level,
                        "name": value,
                        "category": value if level == "category" else None,
                        "group": "seen" if level == "category" else value,
                        "type": None,
                        "system": system,
                        "n": a["n_examples"],
                        "n_tasks": a["n_tasks"],
                        "macro_f1": a["macro_over_tasks"],
                        "macro_f1_lo": lo,
                        "macro_f1_hi": hi,
                        "accuracy": math.nan,
                        "pearson_r": math.nan,
                        "pearson_lo": math.nan,
                        "pearson_hi": math.nan,
                        "train_source": None,
                        "status": "ok",
                        "flags": "; ".join(flags + [f"tasks: {', '.join(a['tasks'])}"]),
                        "macro_f1_expected": math.nan,
                    }
                )
    return pd.DataFrame(out)


def comparison_pivot(table, level: str = "task", value: str = "macro_f1"):
    """A wide view for display: rows = task/category/group, columns = systems, cells = ``value``."""
    sub = table[table["level"] == level]
    wide = sub.pivot(index="name", columns="system", values=value)
    return wide.reindex(index=list(dict.fromkeys(sub["name"])), columns=system_order(sub["system"])).round(3)


# --------------------------------------------------------------------------------------------------------
# Writing the run
# --------------------------------------------------------------------------------------------------------


def write_baselines_run(
    run_name: str,
    results: BaselineResults,
    table,
    figures: dict[str, Any],
    *,
    params: dict | None = None,
    claims: list[dict] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``comparison.csv``, ``baselines_metrics.json`` (with ``claims``), ``predictions.jsonl``, figures
    (PNG + PDF), ``params.json`` and ``provenance.json`` atomically to ``runs/<run_name>/``."""

    run_dir = new_run_dir(run_name, overwrite=overwrite)
    with RunWriter(run_dir, overwrite=overwrite) as tmp:
        table.to_csv(tmp / "comparison.csv", index=False)
        write_baselines_metrics(
            tmp / "baselines_metrics.json", baselines_metrics(results, run_dir.name, claims)
        )
        write_prediction_rows(tmp / "predictions.jsonl", prediction_rows(results))
        write_json(tmp / "params.json", {**results.settings, **(params or {})})
        write_json(tmp / "provenance.json", provenance({"stage": "baselines"}))
        (tmp / "figures").mkdir()
        save_figures(figures, tmp / "figures")
    return run_dir
