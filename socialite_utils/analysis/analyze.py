"""Error analysis of an evaluation run (notebook 04): where and how the models fail, and how fragile the prompts are.

Pipeline position: reads what :mod:`socialite_utils.evaluation` wrote (``runs/<eval_run>/metrics.json`` with
``schema_version`` 1 and ``predictions.jsonl``; see the evaluation schema) and writes ``runs/<run_name>/`` with
``analysis.json``, ``sensitivity.jsonl`` and ``figures/``. Nothing is retrained; only the prompt-sensitivity step
loads the models again (base, and the training run's adapter for "tuned").

This module runs the whole analysis (:func:`analyze_eval_run`) and builds the notebook's tables and caveats; the
pieces, one job per module: :mod:`.write` (writing the analysis run), :mod:`.invalid_answers`,
:mod:`.error_slices` (confusion, confident errors, slices), :mod:`.calibration`, :mod:`.sensitivity`; the
evaluation run is read by :func:`socialite_utils.evaluation.load_eval_run`, the figures drawn by
:mod:`socialite_utils.plotting`.

What is computed, per task and model (rows of the registry's main prompt only, ``variant`` null):

* per-label precision / recall / F1 (:func:`socialite_utils.metrics.compute_classification`) and a confusion matrix
  whose rows are gold labels, normalised to sum to 1, with an extra column for invalid answers;
* ``generate`` mode: invalid answers sorted into kinds by :func:`classify_invalid`, with counts and examples;
* ``score`` mode: the most confident errors (highest probability on a wrong label) with their texts, and
  calibration (expected calibration error, reliability bins) per category;
* slices: accuracy by input length (per-task quantile bins of word or token length) and by gold-label frequency
  (labels rarer than a uniform share ``1/K`` of the evaluated examples versus the others);
* prompt sensitivity: the same examples re-scored (score mode) with the main prompt and each of the task's
  registry ``variants``; macro-F1 per prompt and its spread (min, max, range, std) per task and model.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from .. import metrics
from ..evaluation.run import EvalRun
from ..prompts import variant_label_words
from ..schema import SCHEMA_VERSION  # analysis.json's schema_version (socialite_utils.schema)
from .calibration import calibration_from_rows
from .error_slices import (
    build_confusion_matrix,
    compute_confident_errors,
    compute_frequency_slices,
    compute_length_slices,
    wilson_interval,
    word_length,
)
from .invalid_answers import compute_invalid_answers
from .sensitivity import (
    load_eval_registry,
)

LENGTH_UNITS = ("words", "tokens")  # notebook 04's length_unit: input length in words or the model's tokens


# ----------------------------------------------------------------------------------------------------------------
# The whole analysis of one evaluation run
# ----------------------------------------------------------------------------------------------------------------


def _task_flags(task: str, gold: Sequence[str]) -> list[str]:
    flags = []
    present = sorted(set(gold))
    if len(present) == 1:
        flags.append(
            f"single_class_gold: every evaluated {task} example is {present[0]!r}; macro-F1 is that class's F1 "
            "and precision/recall of the other labels are undefined (support 0)"
        )
    return flags


def _analyze_rows(
    rows: list[dict],
    labels: list[str],
    words: list[str],
    recorded_macro_f1: float | None,
    top_k_errors: int,
    *,
    n_length_bins: int,
    length_fn: Callable[[dict], int],
) -> dict[str, Any]:
    """The analysis of one task x model: metrics (flagged when they differ from metrics.json's), confusion,
    slices; invalid-answer kinds (against the answer ``words`` the prompt asked for) in generate mode and the most
    confident errors where rows have probabilities."""
    gold = [r["gold"] for r in rows]
    pred = [r.get("parsed") for r in rows]
    report = metrics.compute_classification(gold, pred, labels=labels)
    flags = list(report["flags"])
    if recorded_macro_f1 is not None and abs(recorded_macro_f1 - report["macro_f1"]) > 1e-6:
        flags.append(
            f"metrics_mismatch: macro-F1 recomputed from predictions is {report['macro_f1']:.4f}, "
            f"metrics.json says {recorded_macro_f1:.4f}"
        )
    generate = any(r["mode"] == "generate" for r in rows)
    return {
        "n": len(rows),
        "macro_f1": report["macro_f1"],
        "accuracy": report["accuracy"],
        "invalid_rate": report["invalid_rate"],
        "per_label": report["per_label"],
        "flags": flags,
        "confusion": build_confusion_matrix(gold, pred, labels),
        "invalid": compute_invalid_answers(rows, words) if generate else None,
        "confident_errors": compute_confident_errors(rows, top_k_errors)
        if any(r.get("probs") for r in rows)
        else None,
        "length_slices": compute_length_slices(rows, n_length_bins, length_fn),
        "frequency_slices": compute_frequency_slices(rows, labels),
    }


def analyze_eval_run(
    ev: EvalRun,
    *,
    top_k_errors: int = 5,
    n_length_bins: int = 3,
    calibration_bins: int = 10,
    length_fn: Callable[[dict], int] = word_length,
    length_unit: str = "words",
) -> dict[str, Any]:
    """Every analysis that needs no model: per task and model, then pooled (see the module docstring).

    Uses the rows of the run's own prompt in the run's mode; other rows are counted under ``skipped_rows``. A recomputed
    macro-F1 that differs from metrics.json is flagged, not corrected.
    """
    if length_unit not in LENGTH_UNITS:
        raise ValueError(f"length_unit = {length_unit!r}; expected one of {LENGTH_UNITS}")
    mode = ev.mode
    main_ids = {id(r) for r in ev.main_rows()}
    skipped = Counter(
        f"variant {r.get('variant')!r} rows" if r.get("variant") != ev.variant else f"mode {r['mode']!r} rows"
        for r in ev.predictions
        if id(r) not in main_ids
    )
    tasks_out: dict[str, Any] = {}
    invalid_totals: dict[str, Counter] = {m: Counter() for m in ev.models}
    # A run evaluated on a prompt variant asked for that variant's words: sort its invalid answers against them.
    registry = load_eval_registry(ev) if ev.variant is not None and mode == "generate" else None
    slicing = {"n_length_bins": n_length_bins, "length_fn": length_fn}
    for task in ev.tasks:
        info = ev.metrics["tasks"][task]
        labels = ev.labels(task)
        words = labels if registry is None else list(variant_label_words(registry[task], ev.variant).values())
        per_model: dict[str, Any] = {}
        task_flags: list[str] = []
        for model in ev.models:
            rows = sorted(ev.main_rows(task, model), key=lambda r: r["id"])
            if not rows:
                continue
            recorded = (info.get("models") or {}).get(model, {}).get("macro_f1")
            entry = _analyze_rows(rows, labels, words, recorded, top_k_errors, **slicing)
            if entry["invalid"] is not None:
                invalid_totals[model].update(entry["invalid"]["counts"])
            task_flags = task_flags or _task_flags(task, [r["gold"] for r in rows])
            per_model[model] = entry
        tasks_out[task] = {
            "category": info.get("category"),
            "group": info.get("group"),
            "type": info.get("type"),
            "labels": labels,
            "flags": task_flags,
            "models": per_model,
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "eval_run": str(ev.run_dir),
        "eval_settings": ev.settings,
        "mode": mode,
        "models": ev.models,
        "length_unit": length_unit,
        "tasks": tasks_out,
        "invalid_summary": {m: dict(c) for m, c in invalid_totals.items()} if mode == "generate" else None,
        "calibration": _calibration_section(ev, calibration_bins),
        "slices": _pooled_slices(ev, tasks_out),
        "skipped_rows": dict(skipped),
        "sensitivity": None,
    }


def _calibration_section(ev: EvalRun, n_bins: int) -> dict | None:
    """Per category and overall, per model; None when no row has probabilities (generate mode)."""
    rows = [r for r in ev.main_rows() if r.get("probs")]
    if not rows:
        return None
    by_category: dict[str, dict] = defaultdict(dict)
    overall = {}
    for model in ev.models:
        mine = [r for r in rows if r["model"] == model]
        if not mine:
            continue
        overall[model] = calibration_from_rows(mine, n_bins)
        for cat in sorted({r.get("category") or "?" for r in mine}):
            by_category[cat][model] = calibration_from_rows(
                [r for r in mine if (r.get("category") or "?") == cat], n_bins
            )
    return {"n_bins": n_bins, "by_category": dict(by_category), "overall": overall}


def _pooled_slices(ev: EvalRun, tasks_out: dict) -> dict[str, Any]:
    """Length bins and frequency slices pooled over tasks (bin i = the i-th length quantile bin of each task)."""
    length: dict[str, list[dict]] = {}
    frequency: dict[str, dict] = {}
    for model in ev.models:
        bins: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        freq: dict[str, list[int]] = {"frequent": [0, 0], "rare": [0, 0]}
        for t in tasks_out.values():
            entry = t["models"].get(model)
            if entry is None:
                continue
            for b in entry["length_slices"]:
                bins[b["bin"]][0] += b["n_correct"]
                bins[b["bin"]][1] += b["n"]
            for name in freq:
                freq[name][0] += entry["frequency_slices"][name]["n_correct"]
                freq[name][1] += entry["frequency_slices"][name]["n"]
        length[model] = [
            {"bin": i, "n": n, "accuracy": 100.0 * k / n if n else None, "accuracy_ci": wilson_interval(k, n)}
            for i, (k, n) in sorted(bins.items())
        ]
        frequency[model] = {
            name: {"n": n, "accuracy": 100.0 * k / n if n else None, "accuracy_ci": wilson_interval(k, n)}
            for name, (k, n) in freq.items()
        }
    return {"length": length, "frequency": frequency}


# ----------------------------------------------------------------------------------------------------------------
# Tables for the notebook
# ----------------------------------------------------------------------------------------------------------------


def per_label_table(analysis: dict):
    """One row per task x model x label: precision, recall, F1 (percent) and support."""
    import pandas as pd

    records = [
        {"task": task, "model": model, "label": lab, **vals}
        for task, t in analysis["tasks"].items()
        for model, entry in t["models"].items()
        for lab, vals in entry["per_label"].items()
    ]
    return pd.DataFrame.from_records(
        records, columns=["task", "model", "label", "precision", "recall", "f1", "support"]
    )


def invalid_table(analysis: dict):
    """One row per task x model: invalid answers by kind (generate mode); empty frame in score mode."""
    import pandas as pd

    records = []
    for task, t in analysis["tasks"].items():
        for model, entry in t["models"].items():
            if entry["invalid"] is not None:
                inv = entry["invalid"]
                records.append(
                    {
                        "task": task,
                        "model": model,
                        "n": inv["n"],
                        "invalid": inv["n_invalid"],
                        **inv["counts"],
                    }
                )
    return pd.DataFrame.from_records(records)


def confident_errors_table(analysis: dict, max_chars: int = 120):
    """The most confident errors of every task and model (score mode), texts shortened to ``max_chars``."""
    import pandas as pd

    records = []
    for task, t in analysis["tasks"].items():
        for model, entry in t["models"].items():
            for e in entry["confident_errors"] or []:
                text = e["text"] if e["text_b"] is None else f"{e['text']} || {e['text_b']}"
                records.append(
                    {
                        "task": task,
                        "model": model,
                        "gold": e["gold"],
                        "predicted": e["predicted"],
                        "confidence": round(e["confidence"], 3),
                        "p_gold": round(e["p_gold"], 3),
                        "text": text if len(text) <= max_chars else text[: max_chars - 1] + "…",
                    }
                )
    return pd.DataFrame.from_records(records)


def slices_table(analysis: dict):
    """Pooled accuracy (percent, Wilson CI) by length bin and by gold-label frequency, per model."""
    import pandas as pd

    unit = analysis.get("length_unit", "words")
    records = []
    for model, bins in analysis["slices"]["length"].items():
        for b in bins:
            records.append(
                {"model": model, "slice": f"length bin {b['bin'] + 1} ({unit}, per-task quantiles)", **b}
            )
    for model, sl in analysis["slices"]["frequency"].items():
        for name, s in sl.items():
            records.append({"model": model, "slice": f"{name} gold labels", **s})
    df = pd.DataFrame.from_records(records)
    return df.drop(columns=["bin"], errors="ignore")


def calibration_table(analysis: dict):
    """ECE, mean confidence and accuracy per category (and overall) per model; empty frame if not score mode."""
    import pandas as pd

    cal = analysis.get("calibration")
    if not cal:
        return pd.DataFrame()
    records = []
    for cat, per_model in [*cal["by_category"].items(), ("overall", cal["overall"])]:
        for model, c in per_model.items():
            records.append(
                {
                    "category": cat,
                    "model": model,
                    "n": c["n"],
                    "ece": c["ece"],
                    "mean_confidence": c["mean_confidence"],
                    "accuracy": c["accuracy"],
                }
            )
    return pd.DataFrame.from_records(records)


def _ci_width(entry: dict) -> float | None:
    ci = entry.get("macro_f1_ci")
    if not ci or ci[0] is None or ci[1] is None or any(isinstance(v, float) and math.isnan(v) for v in ci):
        return None
    return float(ci[1] - ci[0])


def format_caveats(ev: EvalRun, analysis: dict) -> list[str]:
    """Plain-language warnings about THIS run for students: sample sizes and CI widths, class imbalance,
    binarized ratings, invalid answers, prompt fragility and the run's own flags."""
    out = []
    tasks = analysis["tasks"]
    sizes = {t: max((e["n"] for e in v["models"].values()), default=0) for t, v in tasks.items()}
    if sizes:
        lo, hi = min(sizes.values()), max(sizes.values())
        smallest = "" if lo == hi else f" (smallest: {min(sizes, key=sizes.get)})"
        span = f"{lo}" if lo == hi else f"{lo}-{hi}"
        out.append(
            f"Sample size: tasks have {span} evaluated examples{smallest}; with n examples one error moves "
            "accuracy by 100/n points."
        )
    widths = [
        (w, t, m)
        for t, info in ev.metrics["tasks"].items()
        for m, entry in (info.get("models") or {}).items()
        if (w := _ci_width(entry)) is not None
    ]
    if widths and max(widths)[0] > 0:
        w, t, m = max(widths)
        out.append(
            f"Uncertainty: the widest 95% CI of a task macro-F1 is {w:.1f} points ({t}, {m}); differences "
            "smaller than the CIs are not evidence of a difference."
        )
    imbalanced = []
    for t, v in tasks.items():
        entry = next(iter(v["models"].values()), None)
        if entry:
            shares = entry["frequency_slices"]["shares"]
            top = max(shares, key=shares.get)
            if shares[top] >= 0.6:
                imbalanced.append(f"{t} ({top}: {100 * shares[top]:.0f}%)")
    if imbalanced:
        out.append(
            "Class imbalance: " + ", ".join(imbalanced) + ". Always answering the majority label gives high "
            "accuracy but a low macro-F1, which weighs every label equally -- rare labels count as much as "
            "frequent ones."
        )
    regression = [t for t, v in tasks.items() if v.get("type") == "regression"]
    if regression:
        out.append(
            f"Binarized ratings: {', '.join(regression)} are continuous ratings cut at the train median into "
            "low/high; examples near the cut are almost coin flips and the scale's detail is lost (see "
            "pearson_r in metrics.json for the continuous view)."
        )
    if analysis.get("invalid_summary"):
        for m, counts in analysis["invalid_summary"].items():
            n_inv = sum(counts.values())
            if n_inv:
                top = max(counts, key=counts.get)
                out.append(
                    f"Invalid answers ({m}): {n_inv} answers were no label and count as wrong; most are "
                    f"'{top}'. A score reflects following the answer format as well as the task."
                )
    sens = (analysis.get("sensitivity") or {}).get("tasks") or {}
    ranges = [(s["range"], t, m) for t, per in sens.items() for m, s in per.items()]
    if ranges:
        r, t, m = max(ranges)
        out.append(
            f"Prompt fragility: rewording the prompt moved macro-F1 by up to {r:.1f} points ({t}, {m}); "
            "a single prompt's score is one draw from that range."
        )
    flagged = sorted({t for t, v in tasks.items() if v["flags"]})
    if flagged:
        out.append(
            f"Flags: {', '.join(flagged)} have flags (e.g. a single gold class); read them before comparing."
        )
    return out
