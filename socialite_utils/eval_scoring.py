"""Evaluation scoring and metrics: prediction rows from a model, metrics.json from prediction rows.

``score_examples`` runs one model in one mode (generate or score) and returns prediction rows (eval
schema); ``build_metrics`` turns them into metrics.json (per task and model, tuned vs base comparisons,
aggregates, claims). Used by :func:`socialite_utils.evaluation.evaluate_run` and re-exported there.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from . import metrics as M
from .backends import VLLMModel
from .eval_plan import BASE, MODES, TUNED, EvalItem
from .schema import SCHEMA_VERSION


def _argmax_label(probs: dict[str, float]) -> str:
    # Ties go to the first label in the task's canonical order (max returns the first maximum).
    return max(probs, key=probs.__getitem__)


def score_examples(
    model: Any,
    tokenizer: Any,
    items: Sequence[EvalItem],
    *,
    model_name: str,
    mode: str = "generate",
    batch_size: int = 8,
    max_new_tokens: int = 20,
    lenient: bool = False,
    normalize: str = "sum",
    score_eos: bool = False,
    variant: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """Run one model on ``items`` and return one prediction row per item (the eval schema).

    Invalid generations (nothing parseable, including an empty string) get ``parsed=None`` and
    ``correct=False`` and keep their raw text. In score mode a prompt whose label log-probabilities cannot be
    normalised (all -inf) is treated the same way instead of stopping the run.
    """
    from .scoring import generate_answers, label_probabilities, parse_answer, score_label_logprobs

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    prompts = [it.prompt for it in items]
    out: list[dict] = []
    if mode == "generate":
        generate = (
            model.generate_answers if isinstance(model, VLLMModel) else partial(generate_answers, model)
        )
        raws = generate(
            tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress
        )
        for it, raw in zip(items, raws, strict=True):
            word = parse_answer(raw or "", it.answers, lenient=lenient)
            parsed = it.to_label[word] if word is not None else None
            out.append(_prediction_row(it, model_name, mode, variant, parsed, raw=raw))
        return out
    logprob_sets = score_label_logprobs(
        model,
        tokenizer,
        prompts,
        [it.answers for it in items],
        batch_size=batch_size,
        normalize=normalize,
        eos=score_eos,
        progress=progress,
    )
    for it, by_word in zip(items, logprob_sets, strict=True):
        logprobs = {it.to_label[w]: lp for w, lp in by_word.items()}
        try:
            probs = label_probabilities(logprobs)
        except ValueError:
            probs = None  # every label at -inf: no answer, counted wrong like an invalid generation
        parsed = _argmax_label(probs) if probs else None
        out.append(_prediction_row(it, model_name, mode, variant, parsed, logprobs=logprobs, probs=probs))
    return out


def _prediction_row(
    it: EvalItem,
    model_name: str,
    mode: str,
    variant: int | None,
    parsed: str | None,
    *,
    raw: str | None = None,
    logprobs: dict | None = None,
    probs: dict | None = None,
) -> dict:
    r = it.row
    expected = None
    if r["task_type"] == "regression":
        if probs is not None:
            expected = probs.get("high")
        elif parsed is not None:
            expected = 1.0 if parsed == "high" else 0.0
    return {
        "id": r["id"],
        "task": r["task"],
        "category": r["category"],
        "group": r["group"],
        "task_type": r["task_type"],
        "model": model_name,
        "mode": mode,
        "few_shot_k": it.few_shot_k,
        "variant": variant,
        "text": r["text"],
        "text_b": r.get("text_b"),
        "truncated_tokens": it.truncated_tokens,
        "gold": r["label"],
        "gold_score": r.get("score"),
        "raw_output": raw if mode == "generate" else None,
        "parsed": parsed,
        "logprobs": logprobs,
        "probs": probs,
        "expected_score": expected,
        "correct": parsed is not None and parsed == r["label"],
    }


# ---------------------------------------------------------------- metrics


def _collect_warnings(fn: Any, *args: Any, flags: list[str], **kwargs: Any) -> Any:
    """Call ``fn``; MetricWarnings become entries of ``flags`` instead of console noise."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", M.MetricWarning)
        result = fn(*args, **kwargs)
    flags.extend(str(w.message) for w in caught if issubclass(w.category, M.MetricWarning))
    return result


def compute_task_metrics(
    rows: Sequence[dict],
    labels: Sequence[str],
    task_type: str,
    *,
    bootstrap_samples: int = 1000,
    seed: int = 0,
    keep_bootstrap: bool = False,
) -> dict:
    """One task, one model: macro-F1 (over ``labels``), accuracy, invalid rate, CIs; Pearson r for regression.

    ``rows`` are prediction rows of a single task and model. Returns the per-model block of metrics.json;
    ``keep_bootstrap=True`` adds ``macro_f1_boot``, the bootstrap values behind ``macro_f1_ci`` (an array, for
    :func:`metrics.aggregate`; not JSON).
    """
    if not rows:
        raise ValueError("compute_task_metrics: no prediction rows")
    labels = list(labels)
    gold = [r["gold"] for r in rows]
    pred = [r["parsed"] for r in rows]
    flags: list[str] = []
    if task_type == "regression":
        gold_scores = [r["gold_score"] for r in rows]
        expected = [r["expected_score"] for r in rows]
        res = _collect_warnings(
            M.compute_regression, gold_scores, expected, gold, pred, labels=labels, flags=flags
        )
        flags = list(res["flags"]) + flags
        pairs = [(g, e) for g, e in zip(gold_scores, expected, strict=True) if e is not None]
        if len(pairs) >= 3:
            xs, ys = zip(*pairs, strict=True)
            r_ci = _collect_warnings(
                M.bootstrap_ci,
                M.pearson_r,
                list(xs),
                list(ys),
                n_resamples=bootstrap_samples,
                seed=seed,
                flags=flags,
            )
        else:
            r_ci = (math.nan, math.nan)
            flags.append(f"pearson_r_ci: only {len(pairs)} scored pair(s); CI undefined")
    else:
        res = M.compute_classification(gold, pred, labels=labels)
        flags = list(res["flags"])
    f1_boot = _collect_warnings(
        M.bootstrap_values,
        lambda g, p: M.macro_f1(g, p, labels),
        gold,
        pred,
        n_resamples=bootstrap_samples,
        seed=seed,
        flags=flags,
    )
    f1_ci = _collect_warnings(M.percentile_ci, f1_boot, what="bootstrap_ci", flags=flags)
    correct = np.array([bool(r["correct"]) for r in rows])
    acc_ci = M.bootstrap_ci(
        lambda c: 100.0 * c.mean(axis=1), correct, n_resamples=bootstrap_samples, seed=seed, vectorized=True
    )
    out = {
        "n": res["n"],
        "macro_f1": res["macro_f1"],
        "macro_f1_ci": list(f1_ci),
        "accuracy": res["accuracy"],
        "accuracy_ci": list(acc_ci),
        "invalid_rate": res["invalid_rate"],
        "n_invalid": res["n_invalid"],
        "per_label": res["per_label"],
        **M.prediction_concentration(gold, pred),
        "flags": flags,
    }
    if task_type == "regression":
        out.update(pearson_r=res["pearson_r"], pearson_r_ci=list(r_ci), pearson_n=res["pearson_n"])
    if keep_bootstrap:
        out["macro_f1_boot"] = f1_boot
    return out


def compute_comparison(
    tuned_rows: Sequence[dict],
    base_rows: Sequence[dict],
    labels: Sequence[str],
    *,
    bootstrap_samples: int,
    seed: int,
) -> dict:
    """Tuned vs base on the same examples: paired bootstrap of the macro-F1 difference and McNemar."""
    base_by_id = {r["id"]: r for r in base_rows}
    missing = [r["id"] for r in tuned_rows if r["id"] not in base_by_id]
    if missing or len(base_rows) != len(tuned_rows):
        raise ValueError(f"tuned and base predictions cover different examples (e.g. {missing[:3]})")
    base_rows = [base_by_id[r["id"]] for r in tuned_rows]
    gold = [r["gold"] for r in tuned_rows]
    labels = list(labels)
    pb = M.paired_bootstrap(
        lambda g, p: M.macro_f1(g, p, labels),
        gold,
        [r["parsed"] for r in tuned_rows],
        [r["parsed"] for r in base_rows],
        n_resamples=bootstrap_samples,
        seed=seed,
    )
    mc = M.mcnemar([r["correct"] for r in tuned_rows], [r["correct"] for r in base_rows])
    return {
        "delta_macro_f1": pb["delta"],
        "delta_ci": list(pb["ci"]),
        "p_value": pb["p_value"],
        "mcnemar": {k: mc[k] for k in ("b", "c", "statistic", "p_value", "method")},
    }


def _json_safe(obj: Any) -> Any:
    """nan/inf -> None and tuples -> lists, so metrics.json is strict JSON any tool can read."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def build_metrics(
    predictions: Sequence[dict],
    tasks: dict[str, dict],
    *,
    settings: dict,
    run_name: str,
    bootstrap_samples: int = 1000,
    seed: int = 0,
) -> dict:
    """metrics.json (schema_version 1) from prediction rows: per task and model, comparisons, aggregates, claims.

    ``tasks`` maps task -> {"category", "group", "type", "labels"} (``EvalPlan.tasks``). nan values
    (e.g. a CI over a single task) are written as null.
    """
    from .reporting import build_claims

    grouped, model_names = _group_predictions(predictions, tasks)
    per_model_results: dict[str, list[dict]] = {m: [] for m in model_names}
    out_tasks = {
        task: _task_entry(task, meta, grouped, model_names, per_model_results, bootstrap_samples, seed)
        for task, meta in tasks.items()
    }

    def agg(by: str) -> dict:
        res: dict[str, dict] = defaultdict(dict)
        for m in model_names:
            for key, value in M.aggregate(per_model_results[m], by).items():
                res[key][m] = value
        return dict(res)

    metrics = {
        "schema_version": SCHEMA_VERSION,
        "run_name": run_name,
        "settings": settings,
        "models": model_names,
        "tasks": out_tasks,
        "categories": agg("category"),
        "groups": agg("group"),
        "overall": agg("all")["all"],
    }
    if TUNED in model_names and BASE in model_names:
        metrics["group_comparisons"] = compute_group_comparisons(grouped, tasks, bootstrap_samples, seed)
    metrics = _json_safe(metrics)
    metrics["claims"] = build_claims(metrics)
    return metrics


def _group_predictions(
    predictions: Sequence[dict], tasks: dict[str, dict]
) -> tuple[dict[tuple[str, str], list[dict]], list[str]]:
    """Prediction rows per (task, model), and the models present (base first)."""
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in predictions:
        if r["task"] not in tasks:
            raise ValueError(f"prediction {r['id']} is for task {r['task']!r}, which is not in tasks")
        grouped[(r["task"], r["model"])].append(r)
    return grouped, [m for m in (BASE, TUNED) if any(k[1] == m for k in grouped)]


def _task_entry(
    task: str,
    meta: dict,
    grouped: dict[tuple[str, str], list[dict]],
    model_names: list[str],
    per_model_results: dict[str, list[dict]],
    bootstrap_samples: int,
    seed: int,
) -> dict:
    """metrics.json's ``tasks.<task>``; appends each model's task result (bootstrap kept) to ``per_model_results``."""
    entry = {k: meta[k] for k in ("category", "group", "type", "labels")}
    entry["models"] = {}
    for m in model_names:
        rows = grouped.get((task, m))
        if not rows:
            raise ValueError(f"no {m} predictions for task {task!r}")
        block = compute_task_metrics(
            rows,
            meta["labels"],
            meta["type"],
            bootstrap_samples=bootstrap_samples,
            seed=M.task_seed(seed, task),
            keep_bootstrap=True,
        )
        boot = block.pop("macro_f1_boot")  # 1000s of numbers: for the aggregates, not for metrics.json
        entry["models"][m] = block
        per_model_results[m].append(
            {
                "task": task,
                "n": len(rows),
                "macro_f1": block["macro_f1"],
                "macro_f1_boot": boot,
                "category": meta["category"],
                "group": meta["group"],
                "correct": [bool(r["correct"]) for r in rows],
            }
        )
    entry["n"] = entry["models"][model_names[0]]["n"]
    entry["n_truncated"] = sum(1 for r in grouped[(task, model_names[0])] if r.get("truncated_tokens"))
    if TUNED in model_names and BASE in model_names:
        entry["comparison"] = compute_comparison(
            grouped[(task, TUNED)],
            grouped[(task, BASE)],
            meta["labels"],
            bootstrap_samples=bootstrap_samples,
            seed=M.task_seed(seed, task),
        )
    return entry


def compute_group_comparisons(
    grouped: dict[tuple[str, str], list[dict]], tasks: dict[str, dict], bootstrap_samples: int, seed: int
) -> dict:
    """Tuned vs base per group (seen / related): the mean over tasks of the macro-F1 difference, with a paired
    bootstrap CI over test examples (each task resampled with its own seed, the tasks fixed) and a p-value."""
    out = {}
    for group in dict.fromkeys(meta["group"] for meta in tasks.values()):
        entries = []
        for task, meta in tasks.items():
            if meta["group"] != group:
                continue
            tuned = grouped[(task, TUNED)]
            base_by_id = {r["id"]: r for r in grouped[(task, BASE)]}
            labels = list(meta["labels"])
            entries.append(
                {
                    "task": task,
                    "metric_fn": lambda g, p, labels=labels: M.macro_f1(g, p, labels),
                    "gold": [r["gold"] for r in tuned],
                    "pred_a": [r["parsed"] for r in tuned],
                    "pred_b": [base_by_id[r["id"]]["parsed"] for r in tuned],
                    "seed": M.task_seed(seed, task),
                }
            )
        res = M.paired_bootstrap_task_mean(entries, n_resamples=bootstrap_samples)
        out[group] = {"a": TUNED, "b": BASE, **{k: res[k] for k in ("delta", "ci", "p_value", "n_tasks")}}
    return out
