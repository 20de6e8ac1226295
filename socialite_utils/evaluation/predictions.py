"""The evaluation core: prediction rows from a model, per-task metrics and metrics.json from prediction rows.

``build_prediction_row`` is the one constructor of a prediction row (evaluation, prompt sensitivity, baselines and
the writing evaluation all use it; :data:`PREDICTION_ROW_KEYS`). ``score_examples`` runs one model (or adapter) in
one mode (generate or score) over evaluation items (:mod:`socialite_utils.evaluation.plan`) and returns rows;
``compute_task_scores`` / ``compute_task_metrics`` turn one task's rows into the per-task block (baselines reuse it);
``build_metrics`` turns all rows into metrics.json (per task and model, tuned vs base comparisons, aggregates,
claims). Used by :func:`socialite_utils.evaluation.evaluate_run`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from .. import claims as C
from .. import metrics as M
from ..reporting import build_claims
from ..runs import json_safe
from ..schema import SCHEMA_VERSION
from .backends import VLLMModel
from .plan import BASE, MODES, TUNED, EvalItem
from .scoring import generate_answers, label_probabilities, parse_answer, score_label_logprobs


def _argmax_label(probs: dict[str, float]) -> str:
    # Ties go to the first label in the task's canonical order (max returns the first maximum).
    return max(probs, key=probs.__getitem__)


# The keys of every prediction row, in order (evaluation, prompt sensitivity and baselines alike). A field that
# does not apply to a row is None, never missing: a baseline has no prompt (few_shot_k, variant, label_words,
# truncated_tokens, raw_output, logprobs are None); only generate mode has raw_output; only score mode and
# probabilistic baselines have probs; score_kind says what expected_score is (regression tasks only).


def build_prediction_row(
    example: dict,
    *,
    model: str,
    mode: str,
    parsed: str | None,
    few_shot_k: int | None = None,
    variant: int | None = None,
    label_words: dict[str, str] | None = None,
    truncated_tokens: int | None = None,
    raw_output: str | None = None,
    logprobs: dict[str, float] | None = None,
    probs: dict[str, float] | None = None,
    expected_score: float | None = None,
    score_kind: str | None = None,
) -> dict:
    """One prediction row (:data:`PREDICTION_ROW_KEYS`) for ``example``, a data-run row (``id``, ``task``,
    ``category``, ``group``, ``task_type``, ``text``, ``text_b``, ``label``, ``score``).

    ``mode``: "generate" / "score" (a language model) or "baseline"; ``parsed`` is the canonical label predicted
    (None: invalid, counted wrong); ``label_words`` maps each canonical label to the word the prompt showed;
    ``expected_score`` is the score Pearson r uses on a regression task (:func:`llm_expected_score` for a model).
    """
    return {
        "id": example["id"],
        "task": example["task"],
        "category": example["category"],
        "group": example["group"],
        "task_type": example["task_type"],
        "model": model,
        "mode": mode,
        "few_shot_k": few_shot_k,
        "variant": variant,
        "label_words": label_words,
        "text": example["text"],
        "text_b": example.get("text_b"),
        "truncated_tokens": truncated_tokens,
        "gold": example["label"],
        "gold_score": example.get("score"),
        "raw_output": raw_output,
        "parsed": parsed,
        "logprobs": logprobs,
        "probs": probs,
        "expected_score": expected_score,
        "score_kind": score_kind,
        "correct": parsed is not None and parsed == example["label"],
    }


def llm_expected_score(
    task_type: str, parsed: str | None, probs: dict | None
) -> tuple[float | None, str | None]:
    """(expected_score, score_kind) of a language model's answer: on a regression task P(high) in score mode
    (``"p_high"``), else 1/0 for a "high"/"low" answer (``"parsed_bin"``; None when invalid); (None, None) on a
    classification task."""
    if task_type != "regression":
        return None, None
    if probs is not None:
        return probs.get("high"), "p_high"
    return (None if parsed is None else 1.0 if parsed == "high" else 0.0), "parsed_bin"


def _item_row(
    it: EvalItem,
    model_name: str,
    mode: str,
    parsed: str | None,
    *,
    raw: str | None = None,
    logprobs: dict | None = None,
    probs: dict | None = None,
) -> dict:
    expected, kind = llm_expected_score(it.row["task_type"], parsed, probs)
    return build_prediction_row(
        it.row,
        model=model_name,
        mode=mode,
        parsed=parsed,
        few_shot_k=it.few_shot_k,
        variant=it.variant,
        label_words={lab: word for word, lab in it.to_label.items()},
        truncated_tokens=it.truncated_tokens,
        raw_output=raw,
        logprobs=logprobs,
        probs=probs,
        expected_score=expected,
        score_kind=kind,
    )


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
    progress: bool = True,
) -> list[dict]:
    """Run one model (a model, a PEFT-wrapped adapter, or a vLLM engine) on ``items`` and return one prediction row
    per item (:func:`build_prediction_row`; the row's ``variant`` is the item's).

    Invalid generations (nothing parseable, including an empty string) get ``parsed=None`` and
    ``correct=False`` and keep their raw text. In score mode a prompt whose label log-probabilities cannot be
    normalised (all -inf) is treated the same way instead of stopping the run.
    """

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not items:
        return []
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
            out.append(_item_row(it, model_name, mode, parsed, raw=raw))
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
        out.append(_item_row(it, model_name, mode, parsed, logprobs=logprobs, probs=probs))
    return out


# ---------------------------------------------------------------- metrics


def compute_task_scores(rows: Sequence[dict], labels: Sequence[str], task_type: str) -> dict:
    """One task, one model, no resampling: macro-F1 (over ``labels``), accuracy, invalid rate, per-label scores,
    prediction concentration and flags; Pearson r (``pearson_r``, ``pearson_n``) on a regression task.

    ``rows`` are prediction rows (:func:`build_prediction_row`) of a single task and model. The point estimates
    of :func:`compute_task_metrics`, and what prompt sensitivity compares across prompts.
    """
    if not rows:
        raise ValueError("compute_task_scores: no prediction rows")
    labels = list(labels)
    gold = [r["gold"] for r in rows]
    pred = [r["parsed"] for r in rows]
    flags: list[str] = []
    if task_type == "regression":
        res = M.collect_warnings(
            M.compute_regression,
            [r["gold_score"] for r in rows],
            [r["expected_score"] for r in rows],
            gold,
            pred,
            labels=labels,
            flags=flags,
        )
    else:
        res = M.compute_classification(gold, pred, labels=labels)
    out = {k: res[k] for k in ("n", "macro_f1", "accuracy", "invalid_rate", "n_invalid", "per_label")}
    out.update(M.prediction_concentration(gold, pred), flags=list(res["flags"]) + flags)
    if task_type == "regression":
        out.update(pearson_r=res["pearson_r"], pearson_n=res["pearson_n"])
    return out


def _pearson_ci(
    rows: Sequence[dict], r: float, *, bootstrap_samples: int, seed: int, flags: list[str]
) -> list:
    """Bootstrap CI of Pearson r over the rows with an expected score; [nan, nan] when r itself is undefined (its
    flag says why) or fewer than 3 rows are scored (flagged)."""
    pairs = [(x["gold_score"], x["expected_score"]) for x in rows if x["expected_score"] is not None]
    if len(pairs) < 3:
        flags.append(f"pearson_r_ci: only {len(pairs)} scored pair(s); CI undefined")
        return [math.nan, math.nan]
    if math.isnan(r):
        return [math.nan, math.nan]
    xs, ys = zip(*pairs, strict=True)
    ci = M.collect_warnings(
        M.bootstrap_ci, M.pearson_r, list(xs), list(ys), n_resamples=bootstrap_samples, seed=seed, flags=flags
    )
    return list(ci)


def compute_task_metrics(
    rows: Sequence[dict],
    labels: Sequence[str],
    task_type: str,
    *,
    bootstrap_samples: int = 1000,
    seed: int = 0,
    keep_bootstrap: bool = False,
) -> dict:
    """One task, one model: :func:`compute_task_scores` plus percentile bootstrap CIs over the examples
    (``macro_f1_ci``, ``accuracy_ci``; ``pearson_r_ci`` on a regression task), every resample drawn with ``seed``.

    ``rows`` are prediction rows of a single task and model (an LLM's or a baseline system's). Returns the
    per-model block of metrics.json; ``keep_bootstrap=True`` adds ``macro_f1_boot``, the bootstrap values behind
    ``macro_f1_ci`` (an array, for :func:`metrics.aggregate`; not JSON).
    """
    out = compute_task_scores(rows, labels, task_type)
    flags = out["flags"]
    labels = list(labels)
    gold = [r["gold"] for r in rows]
    pred = [r["parsed"] for r in rows]
    boot = {"n_resamples": bootstrap_samples, "seed": seed, "flags": flags}
    f1_boot = M.collect_warnings(
        M.bootstrap_values, lambda g, p: M.macro_f1(g, p, labels), gold, pred, **boot
    )
    out["macro_f1_ci"] = list(M.collect_warnings(M.percentile_ci, f1_boot, what="bootstrap_ci", flags=flags))
    correct = np.array([bool(r["correct"]) for r in rows])
    acc_ci = M.collect_warnings(
        M.bootstrap_ci, lambda c: 100.0 * c.mean(axis=1), correct, vectorized=True, **boot
    )
    out["accuracy_ci"] = list(acc_ci)
    if task_type == "regression":
        out["pearson_r_ci"] = _pearson_ci(
            rows, out["pearson_r"], bootstrap_samples=bootstrap_samples, seed=seed, flags=flags
        )
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
    task: str = "task",
) -> dict:
    """Tuned vs base on the same examples of one task.

    The test of the macro-F1 difference is the paired bootstrap (:func:`socialite_utils.claims.paired_macro_f1_test`,
    its rows drawn from ``claims.task_seed(seed, task)``, so the result equals this task's part of the group
    comparison): ``delta_macro_f1``, ``delta_ci``, ``p_value``, ``n``, ``B``. McNemar's test compares per-example
    correctness, i.e. ACCURACY, and is kept only as ``mcnemar_accuracy``: a model can win it by answering the
    majority label more often while its macro-F1 falls."""
    base_by_id = {r["id"]: r for r in base_rows}
    missing = [r["id"] for r in tuned_rows if r["id"] not in base_by_id]
    if missing or len(base_rows) != len(tuned_rows):
        raise ValueError(f"tuned and base predictions cover different examples (e.g. {missing[:3]})")
    base_rows = [base_by_id[r["id"]] for r in tuned_rows]
    res = C.paired_macro_f1_test(
        [r["gold"] for r in tuned_rows],
        [r["parsed"] for r in tuned_rows],
        [r["parsed"] for r in base_rows],
        list(labels),
        B=bootstrap_samples,
        seed=seed,
        task=task,
    )
    mc = M.mcnemar([r["correct"] for r in tuned_rows], [r["correct"] for r in base_rows])
    return {
        "delta_macro_f1": res.effect,
        "delta_ci": list(res.ci),
        "p_value": res.p_value,
        "n": res.n,
        "B": bootstrap_samples,
        "mcnemar_accuracy": {k: mc[k] for k in ("b", "c", "statistic", "p_value", "method")},
    }


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
    metrics = json_safe(metrics)
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
            seed=seed,
            task=task,
        )
    return entry


def compute_group_comparisons(
    grouped: dict[tuple[str, str], list[dict]], tasks: dict[str, dict], bootstrap_samples: int, seed: int
) -> dict:
    """Tuned vs base per group (seen / related): the mean over tasks of the macro-F1 difference, with a paired
    bootstrap over test examples stratified by task (:func:`socialite_utils.claims.paired_bootstrap_mean_over_tasks`,
    each task its own label list and seed, the tasks fixed).

    Per group: ``a``, ``b``, ``delta``, ``ci``, ``p_value``, ``n_tasks``, ``n_examples``, ``B``, ``alpha`` and
    ``per_task`` (task -> ``effect``, ``ci``, ``p_value``, ``n``: the same numbers as the task's ``comparison``)."""
    out = {}
    for group in dict.fromkeys(meta["group"] for meta in tasks.values()):
        a, b, metric = {}, {}, {}
        for task, meta in tasks.items():
            if meta["group"] != group:
                continue
            tuned = grouped[(task, TUNED)]
            base_by_id = {r["id"]: r for r in grouped[(task, BASE)]}
            gold = [r["gold"] for r in tuned]
            a[task] = (gold, [r["parsed"] for r in tuned])
            b[task] = (gold, [base_by_id[r["id"]]["parsed"] for r in tuned])
            metric[task] = C.MacroF1(meta["labels"])
        res = C.paired_bootstrap_mean_over_tasks(a, b, metric, B=bootstrap_samples, seed=seed)
        out[group] = {
            "a": TUNED,
            "b": BASE,
            "delta": res.effect,
            "ci": list(res.ci),
            "p_value": res.p_value,
            "n_tasks": res.n_tasks,
            "n_examples": res.n_examples,
            "B": res.B,
            "alpha": res.alpha,
            "per_task": {
                t: {"effect": r.effect, "ci": list(r.ci), "p_value": r.p_value, "n": r.n}
                for t, r in res.per_task.items()
            },
        }
    return out
