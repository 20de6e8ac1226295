"""Tables and paper claims for evaluation runs, computed from a metrics dict alone (figures: :mod:`.plotting`).

Everything here takes the ``metrics.json`` dict written by :mod:`socialite_utils.evaluation` (or read back
with ``evaluation.load_eval_run``), so tables can be redrawn without running a model.
Scale: macro-F1 and accuracy in percent (0-100), invalid rates and p-values as fractions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from . import metrics as M
from .registry import CATEGORIES

SIGNIFICANCE = 0.05

# Socialite-Llama's macro-F1 on three SocialiteInstructions test sets (Dey et al., EACL 2024), and the tasks of
# our suites that stand in for them. The `local` counterpart is a DIFFERENT data set (TweetEval emotion, 4 labels,
# a small sample), so the comparison places numbers side by side; it does not claim they measure the same thing.
PAPER_RESULTS: dict[str, dict[str, Any]] = {
    "EMOTION": {
        "socialite_llama_macro_f1": 81.08,
        "counterparts": {
            "EMOTION": "same task (SocialiteInstructions EMOTION); our test rows may be a capped subset",
            "tweet_emotion": "different data: local TweetEval emotion sample (4 labels), not the paper's test set",
        },
    },
    "BIASEDIMPLICATION": {
        "socialite_llama_macro_f1": 85.72,
        "counterparts": {
            "BIASEDIMPLICATION": "same task (SocialiteInstructions); our test rows may be a capped subset",
        },
    },
    "SUBJECTIVEBIAS": {
        "socialite_llama_macro_f1": 87.13,
        "counterparts": {
            "SUBJECTIVEBIAS": "same task (SocialiteInstructions); our test rows may be a capped subset",
        },
    },
}
PAPER_MODEL = "Socialite-Llama (Llama-2-7B + LoRA instruction tuning)"
# The paper reports that instruction tuning improved 5 of its 6 related (held-out) tasks.
PAPER_RELATED_IMPROVED = (5, 6)


# ---------------------------------------------------------------- small helpers


# the baselines of notebook 05, in the order tables and figures show them
BASELINE_SYSTEMS = ("majority", "stratified", "tfidf_lr", "multitask_encoder")


def system_order(systems) -> list[str]:
    """The distinct ``systems`` in display order: the baselines of BASELINE_SYSTEMS first, then the others."""
    systems = list(dict.fromkeys(systems))
    known = [s for s in BASELINE_SYSTEMS if s in systems]
    return known + [s for s in systems if s not in known]


def as_float(x: Any) -> float:
    """A metrics value as float; None (nan written as null) -> nan."""
    return math.nan if x is None else float(x)


def fmt_value(x: Any, digits: int = 1) -> str:
    """A metrics value with ``digits`` decimals; "n/a" for None or nan."""
    v = as_float(x)
    return "n/a" if math.isnan(v) else f"{v:.{digits}f}"


def fmt_ci(ci: Sequence[Any] | None, digits: int = 1) -> str:
    """A CI as "[lo, hi]"; "n/a" when there is none."""
    if not ci:
        return "n/a"
    return f"[{fmt_value(ci[0], digits)}, {fmt_value(ci[1], digits)}]"


def n_tasks_label(block: dict) -> str:
    """ "1 task" / "3 tasks" for an aggregate block."""
    return f"{block['n_tasks']} task" + ("s" if block["n_tasks"] != 1 else "")


def example_ci(block: dict) -> Sequence[Any] | None:
    """An aggregate's 95% CI over test examples (tasks fixed), falling back to the t-CI over tasks for runs
    written before metrics.json had it."""
    ci = block.get("macro_over_tasks_example_ci")
    return ci if ci is not None else block.get("macro_over_tasks_ci")


def compared_tasks(metrics: dict, group: str | None = None) -> list[tuple[str, dict]]:
    """(name, task) of the tasks with a base-vs-tuned comparison, optionally of one group."""
    return [
        (name, t)
        for name, t in metrics["tasks"].items()
        if "comparison" in t and (group is None or t["group"] == group)
    ]


def _mean_delta(deltas: list[float]) -> tuple[float, tuple[float, float]]:
    """Mean of per-task deltas with a t-based 95% CI over tasks (nan CI for one task)."""
    mean, _, ci = M.t_interval(deltas)
    return mean, ci


# ---------------------------------------------------------------- claims


def build_claims(metrics: dict) -> list[dict]:
    """The paper's two headline claims, judged on this run: ``[{"claim", "supported", "evidence", "details"}]``.

    1. "tuned > base on seen tasks": supported when the mean macro-F1 over seen tasks is higher for the tuned
       model; the evidence also gives the per-task count and how many differences are significant
       (paired bootstrap, p < 0.05).
    2. "tuned > base on 5 of 6 related tasks": supported when the share of related (held-out) tasks on which the
       tuned model's macro-F1 is higher is at least the paper's 5/6.
    ``supported`` is None when the run cannot judge a claim (no tuned model, no task of that group).
    """
    claims = []
    for group, claim in (
        ("seen", "Instruction tuning improves macro-F1 over the base model on seen (trained) tasks"),
        ("related", "Instruction tuning improves the base model on 5 of 6 related (held-out) tasks"),
    ):
        tasks = compared_tasks(metrics, group)
        if "tuned" not in metrics.get("models", []) or not tasks:
            why = (
                "no tuned model in this run"
                if "tuned" not in metrics.get("models", [])
                else f"no {group} tasks"
            )
            claims.append({"claim": claim, "supported": None, "evidence": why, "details": {}})
            continue
        deltas = [as_float(t["comparison"]["delta_macro_f1"]) for _, t in tasks]
        improved = [n for (n, _), d in zip(tasks, deltas, strict=True) if d > 0]
        sig_up = [
            n for n, t in tasks if as_float(t["comparison"]["delta_macro_f1"]) > 0 and is_significant(t)
        ]
        sig_down = [
            n for n, t in tasks if as_float(t["comparison"]["delta_macro_f1"]) < 0 and is_significant(t)
        ]
        mean, ci = _mean_delta(deltas)
        k = len(tasks)
        details = {
            "n_tasks": k,
            "n_improved": len(improved),
            "improved": improved,
            "significantly_better": sig_up,
            "significantly_worse": sig_down,
            "mean_delta": mean,
            "mean_delta_ci": [None if math.isnan(c) else c for c in ci],
        }
        count = (
            f"tuned higher on {len(improved)} of {k} {group} task(s) ({len(sig_up)} significantly, "
            f"{len(sig_down)} significantly lower; paired bootstrap p < {SIGNIFICANCE})"
        )
        if group == "seen":
            base_mean = sum(as_float(t["models"]["base"]["macro_f1"]) for _, t in tasks) / k
            tuned_mean = sum(as_float(t["models"]["tuned"]["macro_f1"]) for _, t in tasks) / k
            paired = (metrics.get("group_comparisons") or {}).get("seen")
            if paired:  # the evidence that counts: a paired CI over the same test examples that excludes 0
                supported = as_float(paired["ci"][0]) > 0
                spread = f"paired 95% CI over test examples {fmt_ci(paired['ci'])}, over tasks {fmt_ci(ci)}"
                details["paired_example_ci"] = paired["ci"]
            else:  # metrics written before paired group comparisons existed
                supported = mean > 0
                spread = f"95% CI over tasks {fmt_ci(ci)}"
            collapsed = collapsed_tasks(metrics, "tuned", group)
            details["tuned_collapsed"] = collapsed
            evidence = (
                f"mean macro-F1 over {k} seen task(s): tuned {tuned_mean:.1f} vs base {base_mean:.1f} "
                f"(delta {mean:+.1f}, {spread}); {count}"
                + (f"; {_collapse_note(collapsed, k)}" if collapsed else "")
            )
        else:
            need, of = PAPER_RELATED_IMPROVED
            supported = len(improved) / k >= need / of
            evidence = f"{count}; the paper: {need} of {of}; supported means a share >= {need}/{of}"
        claims.append(
            {"claim": claim, "supported": bool(supported), "evidence": evidence, "details": details}
        )
    return claims


def collapsed_tasks(metrics: dict, model: str, group: str | None = None) -> list[str]:
    """Tasks (of ``group``) on which ``model`` gives one answer to more than 90% of the examples although the
    gold set has two or more labels (``collapsed`` in metrics.json)."""
    return [
        name
        for name, t in metrics["tasks"].items()
        if (group is None or t["group"] == group) and (t["models"].get(model) or {}).get("collapsed")
    ]


def _collapse_note(collapsed: list[str], k: int) -> str:
    return (
        f"on {len(collapsed)} of {k} task(s) the tuned model gives one answer to more than 90% of the examples "
        f"(collapsed onto a label prior: {', '.join(collapsed)})"
    )


def report_collapse(metrics: dict) -> pd.DataFrame:
    """Per task and model: the most frequent answer, its share of the examples and the ``collapsed`` flag."""
    rows = []
    for name, t in metrics["tasks"].items():
        for model, block in t["models"].items():
            if "top_prediction_share" not in block:
                continue
            rows.append(
                {
                    "task": name,
                    "group": t["group"],
                    "model": model,
                    "top_prediction": block["top_prediction"],
                    "top_share_%": round(100 * block["top_prediction_share"], 1),
                    "gold_labels": block["n_gold_labels"],
                    "collapsed": block["collapsed"],
                }
            )
    return pd.DataFrame(rows)


FLOORS = ("majority", "stratified", "tfidf_lr")
PRIOR_FLOORS = ("majority", "stratified")  # what a model that learned only the label distribution can reach


def build_floor_claim(
    metrics: dict,
    predictions: Sequence[dict],
    baseline_predictions: Sequence[dict],
    *,
    bootstrap_samples: int = 1000,
    seed: int = 0,
) -> dict:
    """ "The tuned model beats the simple baselines on seen tasks", judged on the same test examples.

    The floors are majority, stratified and TF-IDF + LR (notebook 05). The best floor is the one with the highest
    mean macro-F1 over the seen tasks; the claim is supported when the tuned model's mean is higher with a paired
    95% bootstrap CI over test examples that excludes 0. When the tuned model does not beat the best label-prior
    floor (majority or stratified), the evidence says plainly that it learned no more than label priors.
    """
    claim = "The tuned model beats the simple baselines (majority, stratified, TF-IDF + LR) on seen tasks"
    seen = [n for n, t in metrics["tasks"].items() if t["group"] == "seen"]
    tuned = {(r["task"], r["id"]): r["parsed"] for r in predictions if r["model"] == "tuned"}
    floors: dict[str, dict] = {}
    for r in baseline_predictions:
        if r["model"] in FLOORS and r["task"] in seen:
            floors.setdefault(r["model"], {})[(r["task"], r["id"])] = (r["gold"], r["parsed"])
    if not tuned or not seen or not floors:
        why = "no tuned model" if not tuned else "no seen tasks" if not seen else "no floor predictions"
        return {"claim": claim, "supported": None, "evidence": why, "details": {}}
    results = {}
    for floor, preds in floors.items():
        entries = []
        for task in seen:
            keys = [k for k in preds if k[0] == task]
            missing = [k[1] for k in keys if k not in tuned]
            if missing or len(keys) != sum(1 for k in tuned if k[0] == task):
                raise ValueError(
                    f"floor {floor!r} and the tuned model cover different test examples of {task!r} "
                    f"(e.g. {missing[:3]}): were notebooks 03 and 05 run on the same data run?"
                )
            labels = list(metrics["tasks"][task]["labels"])
            entries.append(
                {
                    "task": task,
                    "metric_fn": lambda g, p, labels=labels: M.macro_f1(g, p, labels),
                    "gold": [preds[k][0] for k in keys],
                    "pred_a": [tuned[k] for k in keys],
                    "pred_b": [preds[k][1] for k in keys],
                    "seed": M.task_seed(seed, task),
                }
            )
        results[floor] = M.paired_bootstrap_task_mean(entries, n_resamples=bootstrap_samples)
    best = max(results, key=lambda f: results[f]["metric_b"])
    res = results[best]
    supported = as_float(res["ci"][0]) > 0
    k = res["n_tasks"]
    evidence = (
        f"mean macro-F1 over {k} seen task(s): tuned {res['metric_a']:.1f} vs best floor {best} "
        f"{res['metric_b']:.1f} (delta {res['delta']:+.1f}, paired 95% CI over test examples "
        f"{fmt_ci(res['ci'])}); "
        + ", ".join(f"{f} {results[f]['metric_b']:.1f}" for f in FLOORS if f in results)
    )
    prior = [f for f in PRIOR_FLOORS if f in results]
    beats_priors = all(as_float(results[f]["ci"][0]) > 0 for f in prior)
    collapsed = collapsed_tasks(metrics, "tuned", "seen")
    if collapsed:
        evidence += f"; {_collapse_note(collapsed, len(seen))}"
    if not beats_priors:
        evidence += (
            "; the tuned model is not significantly better than guessing from the label distribution "
            f"({' / '.join(prior)}): at this scale it learned the label priors and the answer format, not the tasks"
        )
    details = {
        "best_floor": best,
        "per_floor": {f: {k: v for k, v in r.items() if k != "per_task"} for f, r in results.items()},
        "beats_label_priors": beats_priors,
        "tuned_collapsed": collapsed,
    }
    return {"claim": claim, "supported": bool(supported), "evidence": evidence, "details": details}


def is_significant(task: dict) -> bool:
    """Whether a compared task's paired-bootstrap p-value is below SIGNIFICANCE."""
    p = task["comparison"].get("p_value")
    return p is not None and p < SIGNIFICANCE


# ---------------------------------------------------------------- tables


def report_task_table(metrics: dict) -> pd.DataFrame:
    """One row per task: n, macro-F1 with CI and invalid rate per model, tuned - base with CI and p-values."""
    records = []
    for name, t in metrics["tasks"].items():
        rec: dict[str, Any] = {"task": name, "category": t["category"], "group": t["group"], "n": t["n"]}
        for m in metrics["models"]:
            mm = t["models"][m]
            rec[f"{m} F1"] = round(as_float(mm["macro_f1"]), 1)
            rec[f"{m} CI"] = fmt_ci(mm["macro_f1_ci"])
            rec[f"{m} invalid"] = round(as_float(mm["invalid_rate"]), 3)
            if t["type"] == "regression":
                rec[f"{m} r"] = round(as_float(mm.get("pearson_r")), 3)
        if "comparison" in t:
            c = t["comparison"]
            rec["delta F1"] = round(as_float(c["delta_macro_f1"]), 1)
            rec["delta CI"] = fmt_ci(c["delta_ci"])
            rec["p bootstrap"] = round(as_float(c["p_value"]), 4)
            rec["p McNemar"] = round(as_float(c["mcnemar"]["p_value"]), 4)
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    order = {c: i for i, c in enumerate(CATEGORIES)}
    df["_cat"] = df["category"].map(order)
    return (
        df.sort_values(["group", "_cat", "task"], ascending=[False, True, True])
        .drop(columns="_cat")
        .reset_index(drop=True)
    )


def report_aggregate_table(metrics: dict) -> pd.DataFrame:
    """Per category, per group (seen/related) and overall: mean macro-F1 over tasks with its SE over tasks and its
    95% bootstrap CI over test examples, pooled accuracy, n."""
    levels = [("category", k, v) for k, v in metrics["categories"].items()]
    levels += [("group", k, v) for k, v in metrics["groups"].items()]
    levels.append(("overall", "all", metrics["overall"]))
    records = []
    for level, name, by_model in levels:
        first = by_model[metrics["models"][0]]
        rec: dict[str, Any] = {
            "level": level,
            "name": name,
            "n_tasks": first["n_tasks"],
            "n_examples": first["n_examples"],
        }
        for m in metrics["models"]:
            a = by_model[m]
            rec[f"{m} mean F1"] = round(as_float(a["macro_over_tasks"]), 1)
            rec[f"{m} SE"] = round(as_float(a["macro_over_tasks_se"]), 1)
            rec[f"{m} 95% CI (examples)"] = fmt_ci(example_ci(a))
            rec[f"{m} pooled acc"] = round(as_float(a["pooled_accuracy"]), 1)
        if len(metrics["models"]) == 2:
            rec["delta mean F1"] = round(rec["tuned mean F1"] - rec["base mean F1"], 1)
        records.append(rec)
    return pd.DataFrame.from_records(records)


def report_claims(metrics: dict) -> pd.DataFrame:
    """The paper claims this run supports (or not), as a table."""
    return pd.DataFrame(
        [
            {"claim": c["claim"], "supported": c["supported"], "evidence": c["evidence"]}
            for c in metrics["claims"]
        ]
    )


def report_paper_comparison(metrics: dict) -> pd.DataFrame:
    """Our macro-F1 beside Socialite-Llama's for the tasks the paper reports (``PAPER_RESULTS``).

    A paper task with no counterpart in this run is listed with empty numbers, so the table always shows what is
    missing. The ``note`` column says whether the data are the same; for the local bundle they are not.
    """
    records = []
    for paper_task, info in PAPER_RESULTS.items():
        rec: dict[str, Any] = {
            "paper_task": paper_task,
            "paper_model": PAPER_MODEL,
            "paper_macro_f1": info["socialite_llama_macro_f1"],
            "our_task": None,
            "n": None,
        }
        for m in ("base", "tuned"):
            rec.update({f"our_{m}_macro_f1": None, f"our_{m}_ci_low": None, f"our_{m}_ci_high": None})
        rec["note"] = "no counterpart task in this run"
        ours = next((t for t in info["counterparts"] if t in metrics["tasks"]), None)
        if ours is not None:
            t = metrics["tasks"][ours]
            rec.update(our_task=ours, n=t["n"], note=info["counterparts"][ours])
            for m in metrics["models"]:
                mm = t["models"][m]
                lo, hi = mm["macro_f1_ci"]
                rec.update(
                    {f"our_{m}_macro_f1": mm["macro_f1"], f"our_{m}_ci_low": lo, f"our_{m}_ci_high": hi}
                )
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    df["n"] = df["n"].astype("Int64")  # a count, even where missing
    return df


def report_invalid(predictions: Sequence[dict], n: int = 10) -> pd.DataFrame:
    """Invalid answers (``parsed`` is None) per task and model, with the first ``n`` raw outputs shown."""
    bad = [r for r in predictions if r["parsed"] is None]
    counts: dict[tuple[str, str], int] = {}
    for r in bad:
        counts[(r["task"], r["model"])] = counts.get((r["task"], r["model"]), 0) + 1
    print(
        f"{len(bad)} of {len(predictions)} predictions are invalid (counted wrong): "
        + (", ".join(f"{t}/{m} {c}" for (t, m), c in sorted(counts.items())) or "none")
    )
    cols = ["id", "model", "gold", "raw_output"]
    return pd.DataFrame([{c: r.get(c) for c in cols} for r in bad[:n]], columns=cols)


def format_headline(metrics: dict) -> str:
    """A short text summary: overall and per-group mean macro-F1 per model, then the claims."""
    settings = metrics.get("settings", {})
    lines = [
        f"evaluation run {metrics['run_name']}: mode {settings.get('mode')}, "
        f"few-shot k {settings.get('few_shot_k')}, base model {settings.get('base_model')}"
    ]
    scopes = [("overall", metrics["overall"])] + list(metrics["groups"].items())
    for name, by_model in scopes:
        first = by_model[metrics["models"][0]]
        parts = [
            f"{m} {fmt_value(by_model[m]['macro_over_tasks'])} +- {fmt_value(by_model[m]['macro_over_tasks_se'])}"
            for m in metrics["models"]
        ]
        lines.append(
            f"  {name:<8} ({n_tasks_label(first)}, {first['n_examples']} examples): mean macro-F1 "
            + ", ".join(parts)
        )
    lines += ["  " + line for line in claim_lines(metrics["claims"])]
    return "\n".join(lines)


def claim_lines(claims: Sequence[dict]) -> list[str]:
    """One line per claim: ``[SUPPORTED | NOT supported | cannot judge] claim: evidence``."""
    verdicts = {True: "SUPPORTED", False: "NOT supported", None: "cannot judge"}
    return [f"[{verdicts[c['supported']]}] {c['claim']}: {c['evidence']}" for c in claims]


__all__ = [
    "PAPER_RESULTS",
    "SIGNIFICANCE",
    "as_float",
    "compared_tasks",
    "example_ci",
    "fmt_ci",
    "fmt_value",
    "is_significant",
    "n_tasks_label",
    "build_claims",
    "build_floor_claim",
    "claim_lines",
    "collapsed_tasks",
    "report_aggregate_table",
    "report_claims",
    "report_collapse",
    "format_headline",
    "report_invalid",
    "report_paper_comparison",
    "report_task_table",
]
