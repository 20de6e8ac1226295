"""Evaluating generation (rewriting) tasks: generate, score with text_metrics, compare systems, state claims.

* :func:`score_generations` runs one model on a data run's generation rows through the kit's one generation loop
  (:func:`socialite_utils.evaluation.scoring.generate_answers`, greedy). Each example's budget is
  :func:`max_new_tokens_for` its source (``ceil(tokens * 1.5) + 16``, capped); examples are batched by budget and
  a batch generates up to its largest budget. The output is the first non-empty line of the generation
  (sources are single lines; a base model tends to run on into a new "### Instruction:").
* :func:`copy_predictions`: the copy baseline (output = source) in the same schema.
* :func:`build_generation_metrics`: per task and metric (the registry's ``metrics``, the first is primary) a
  bootstrap CI per system and paired bootstrap tests (every system vs the copy baseline; the comparisons in
  ``pairs``, e.g. writing-tuned vs base), all from :mod:`socialite_utils.text_metrics`. Tasks declared without
  data are listed with ``status: "no data"`` and their reason.
* :func:`report_generation_table`, :func:`report_writing_claims` (verdicts by the one rule of
  :mod:`socialite_utils.claims`) and :func:`format_diff_html` read that dict.

Prediction rows follow evaluation.py's schema (``id, task, category, group, task_type, model, mode, few_shot_k,
variant, text, text_b, gold, gold_score, raw_output, parsed, logprobs, probs, expected_score, correct``) with
``references`` and ``max_new_tokens`` added; ``parsed`` is the output text scored, ``correct`` its exact match.
"""

from __future__ import annotations

import difflib
import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .. import claims as C
from .. import models
from .. import text_metrics as TM
from ..claims import Verdict, format_p
from ..evaluation.predictions import build_prediction_row
from ..evaluation.scoring import generate_answers
from ..metrics import task_seed
from ..registry import Task
from ..runs import runs_root_at
from ..schema import SCHEMA_VERSION
from ..training.checkpoints import continue_or_clear_partial
from ..training.lora import load_adapter, load_run_tokenizer, partial_dir_for, train_lora

COPY = "copy"
NO_DATA = "no data"


# ---------------------------------------------------------------- generating


def max_new_tokens_for(
    tokenizer: Any, source: str, *, factor: float = 1.5, extra: int = 16, cap: int = 256
) -> int:
    """The generation budget for one source: ``min(cap, ceil(n_tokens(source) * factor) + extra)``."""
    if factor <= 0 or extra < 0 or cap < 1:
        raise ValueError(f"factor > 0, extra >= 0 and cap >= 1 are required, got {factor}, {extra}, {cap}")
    n = len(tokenizer(source, add_special_tokens=False)["input_ids"])
    return min(cap, math.ceil(n * factor) + extra)


def clean_output(raw: str) -> str:
    """The scored output: the first non-empty line of the generation, stripped ("" if there is none)."""
    for line in (raw or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def prediction_row(row: dict, model_name: str, raw: str | None, output: str, budget: int | None) -> dict:
    """One prediction row (:func:`socialite_utils.evaluation.predictions.build_prediction_row`; ``variant`` is the row's
    ``wording``) for a data-run row, correct when ``output`` matches a reference exactly, plus ``references`` and
    ``max_new_tokens``."""
    out = build_prediction_row(
        row,
        model=model_name,
        mode="generate",
        parsed=output,
        few_shot_k=row.get("few_shot_k", 0),
        variant=row.get("wording"),
        raw_output=raw,
    )
    out["correct"] = bool(TM.exact_match([output], [row["references"]]) == 100.0)
    return {**out, "references": row["references"], "max_new_tokens": budget}


def copy_predictions(rows: Sequence[dict]) -> list[dict]:
    """The copy baseline: every output is its source, unchanged."""
    return [prediction_row(r, COPY, None, r["text"], None) for r in rows]


def score_generations(
    model: Any,
    tokenizer: Any,
    rows: Sequence[dict],
    *,
    model_name: str,
    batch_size: int = 8,
    factor: float = 1.5,
    extra: int = 16,
    cap: int = 256,
    progress: bool = True,
) -> list[dict]:
    """Greedy outputs of one model for generation ``rows`` (data-run test rows), as prediction rows."""

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    budgets = [max_new_tokens_for(tokenizer, r["text"], factor=factor, extra=extra, cap=cap) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: budgets[i])
    raws: dict[int, str] = {}
    used: dict[int, int] = {}
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        budget = max(budgets[i] for i in idx)
        outs = generate_answers(
            model, tokenizer, [rows[i]["prompt"] for i in idx], max_new_tokens=budget,
            batch_size=batch_size, progress=False,
        )  # fmt: skip
        for i, raw in zip(idx, outs, strict=True):
            raws[i], used[i] = raw, budget
        if progress:
            print(f"\r{model_name}: generated {min(start + batch_size, len(order))}/{len(order)}", end="")
    if progress and rows:
        print()
    return [
        prediction_row(r, model_name, raws[i], clean_output(raws[i]), used[i]) for i, r in enumerate(rows)
    ]


def load_generation_model(
    base_model: str, train_run: str | os.PathLike | None = None, *, seed: int = 0
) -> tuple[Any, Any]:
    """(model, tokenizer): the base model, or the base model with a train run's adapter and its tokenizer."""

    precision = models.choose_precision(model_params=models.resolve_model(base_model).params)
    if train_run is None:
        return models.load_model(base_model, precision=precision, seed=seed)

    model = load_adapter(train_run, base_model, precision=precision)
    return model.eval(), load_run_tokenizer(train_run)


def train_or_reuse(params: Any, rows: list[dict], *, where: str | os.PathLike, verbose: bool = True) -> Path:
    """Train ``params`` (a TrainParams) on ``rows`` into ``<where>/<params.run_name>`` with notebook 02's
    :func:`~socialite_utils.training.train_lora`, or reuse that run if it is already finished (an interrupted
    notebook continues; an unfinished ``.partial`` run resumes from its newest complete checkpoint, and one killed
    before its first checkpoint starts again)."""
    from dataclasses import replace

    with runs_root_at(where) as root:
        run_dir = root.resolve() / params.run_name
        if run_dir.is_dir() and not params.overwrite:
            if verbose:
                print(f"reusing the finished train run {run_dir}")
            return run_dir
        # continue from the newest complete checkpoint; a run killed before its first one starts again
        resume = continue_or_clear_partial(
            partial_dir_for(run_dir), log=print if verbose else lambda *_: None
        )
        train_lora(replace(params, resume=resume), rows, verbose=verbose)
    return run_dir


# ---------------------------------------------------------------- metrics


def _task_inputs(preds: Sequence[dict], task: str, models: Sequence[str]) -> tuple[list, list, dict]:
    by_model: dict[str, dict[str, dict]] = {m: {} for m in models}
    for p in preds:
        if p["task"] == task and p["model"] in by_model:
            by_model[p["model"]][p["id"]] = p
    ids = sorted(by_model[models[0]])
    for m in models:
        if sorted(by_model[m]) != ids:
            raise ValueError(
                f"task '{task}': model '{m}' has predictions for other examples than '{models[0]}'"
            )
    first = by_model[models[0]]
    sources = [first[i]["text"] for i in ids]
    references = [first[i]["references"] for i in ids]
    outputs = {m: [by_model[m][i]["parsed"] or "" for i in ids] for m in models}
    return sources, references, outputs


def build_generation_metrics(
    predictions: Sequence[dict],
    tasks: Sequence[Task],
    *,
    pairs: Sequence[tuple[str, str]] = (),
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict:
    """Per task: status, n, metrics, ``systems[model][metric] = {value, ci}``, ``vs_copy[model][metric]`` and
    ``pairs["a vs b"][metric]`` (paired bootstrap of a - b). A task without data: ``{"status": "no data",
    "reason"}``. Every model must have predictions for the same examples of a task (the copy baseline included)."""
    models = list(dict.fromkeys(p["model"] for p in predictions))
    if COPY not in models:
        raise ValueError(f"no '{COPY}' predictions: add copy_predictions(test_rows) to compare against it")
    for a, b in pairs:
        for m in (a, b):
            if m not in models:
                raise ValueError(f"pair ({a!r}, {b!r}): no predictions of model {m!r}; models: {models}")
    out: dict[str, Any] = {}
    for task in tasks:
        if task.no_data:
            out[task.name] = {"status": NO_DATA, "reason": task.no_data, "metrics": task.metrics}
            continue
        if not any(p["task"] == task.name for p in predictions):
            out[task.name] = {"status": NO_DATA, "reason": "no test predictions", "metrics": task.metrics}
            continue
        sources, refs, outputs = _task_inputs(
            predictions, task.name, [COPY] + [m for m in models if m != COPY]
        )
        tseed = task_seed(seed, task.name)
        entry = {"status": "ok", "n": len(sources), "metrics": task.metrics, "primary": task.metrics[0]}
        entry |= {"systems": {m: {} for m in outputs}, "vs_copy": {m: {} for m in outputs if m != COPY}}
        entry["pairs"] = {f"{a} vs {b}": {} for a, b in pairs}
        kw = {"n_resamples": n_resamples, "alpha": alpha, "seed": tseed}
        for metric in task.metrics:
            # CIs per system and every system vs the copy baseline: text_metrics.compare_systems
            res = TM.compare_systems(metric, sources, refs, outputs, baseline=COPY, **kw)
            for m, cell in res["systems"].items():
                entry["systems"][m][metric] = cell
            for m, test in res["vs_baseline"].items():
                entry["vs_copy"][m][metric] = _test(test)
            fns = {
                m: TM.build_corpus_metric(metric, sources, outputs[m], refs)
                for m in {x for p in pairs for x in p}
            }
            for a, b in pairs:
                test = TM.paired_corpus_test(fns[a], fns[b], len(sources), **kw)
                entry["pairs"][f"{a} vs {b}"][metric] = _test(test)
        out[task.name] = entry
    return {
        "schema_version": SCHEMA_VERSION,
        "models": models,
        "pairs": [list(p) for p in pairs],
        "alpha": alpha,
        "n_resamples": n_resamples,
        "seed": seed,
        "tasks": out,
    }


def _test(res: dict) -> dict:
    return {k: res[k] for k in ("delta", "ci", "p_value")}


def report_generation_table(metrics: dict) -> pd.DataFrame:
    """One row per task and system: every metric as ``value [lo, hi]``; tasks without data say "no data"."""
    records = []
    for task, t in metrics["tasks"].items():
        if t["status"] != "ok":
            records.append({"task": task, "status": f"{NO_DATA}: {t['reason']}", "system": "-", "n": 0})
            continue
        for m, by_metric in t["systems"].items():
            row = {"task": task, "status": "ok", "system": m, "n": t["n"]}
            for metric, v in by_metric.items():
                digits = 3 if metric == "gleu" else 1
                row[metric] = f"{v['value']:.{digits}f} [{v['ci'][0]:.{digits}f}, {v['ci'][1]:.{digits}f}]"
            records.append(row)
    return pd.DataFrame.from_records(records).fillna("")


def _evidence(tests: dict[str, dict], metric_of: dict[str, str], n_of: dict[str, int], B: int | None) -> str:
    """Per task: the primary metric's difference, its interval, p (never 0: :func:`~socialite_utils.claims.format_p`),
    the Holm-adjusted p over the tasks and n. A bootstrap p of 0 only bounds p by the resolution 2/B, so Holm is
    applied to that bound and the adjusted value printed as an upper bound."""
    if not tests:
        return ""
    floor = C.p_floor(B) if B else 0.0
    raw = [t["p_value"] for t in tests.values()]
    adjusted = C.holm([max(p, floor) for p in raw])

    def holm_text(p: float, adj: float) -> str:
        return f"Holm p<={adj:.3g}" if p < floor else f"Holm {format_p(adj).replace(' ', '')}"

    return "; ".join(
        f"{task}: d{metric_of[task]}={t['delta']:+.3g} [{t['ci'][0]:+.3g}, {t['ci'][1]:+.3g}] "
        f"{format_p(t['p_value'], B).replace(' ', '')}, {holm_text(p, adj)}, n={n_of[task]}"
        for (task, t), p, adj in zip(tests.items(), raw, adjusted, strict=True)
    )


def writing_claim_specs(tuned: str = "writing", mixed: str = "writing+general", general: str = "general"):
    """(claim, comparison, pick) of the writing study's claims; ``pick(task entry)`` returns the task's test of the
    comparison (metric -> test) or None when a compared system is missing."""
    return [
        (f"{tuned}-tuned beats base on every writing task", f"{tuned} vs base",
         lambda t: t["pairs"].get(f"{tuned} vs base")),
        (f"{mixed} beats {general} only on every writing task (the paper's contrast)", f"{mixed} vs {general}",
         lambda t: t["pairs"].get(f"{mixed} vs {general}")),
        (f"{mixed} beats {tuned} only on every writing task", f"{mixed} vs {tuned}",
         lambda t: t["pairs"].get(f"{mixed} vs {tuned}")),
        (f"{tuned}-tuned beats the copy baseline on every writing task", f"{tuned} vs copy",
         lambda t: t["vs_copy"].get(tuned)),
    ]  # fmt: skip


def report_writing_claims(
    metrics: dict, *, tuned: str = "writing", mixed: str = "writing+general", general: str = "general"
) -> pd.DataFrame:
    """The paper's claims, judged on each task's primary metric (the registry's first metric) by the per-task
    paired bootstrap tests: tuned > base, writing + generalist > generalist only (the paper's contrast), writing +
    generalist > writing only, tuned > copy, each "on every writing task".

    Why "every task" (:func:`socialite_utils.claims.verdict_every_task`) and not the mean over tasks: each task has
    its own primary metric (GLEU as a fraction, SARI, iBLEU in points), so a mean over tasks would add unlike units.
    The conjunction is an intersection-union test: SUPPORTED when every task's interval excludes 0 above (no
    multiplicity correction needed, a wrong SUPPORTED needs a wrong per-task one); CONTRADICTED when some task is
    significantly worse after Holm's correction over the tasks; INCONCLUSIVE otherwise, and when a compared system
    is missing on a task. Tasks without data are not tested (``note``)."""
    alpha = metrics["alpha"]
    B = metrics.get("n_resamples")
    ok = {n: t for n, t in metrics["tasks"].items() if t["status"] == "ok"}
    metric_of = {n: t["primary"] for n, t in ok.items()}
    n_of = {n: t.get("n", 0) for n, t in ok.items()}
    no_data = sorted(n for n, t in metrics["tasks"].items() if t["status"] != "ok")
    rows = []
    for claim, comparison, pick in writing_claim_specs(tuned, mixed, general):
        tests = {n: pick(t)[metric_of[n]] for n, t in ok.items() if pick(t)}
        complete = bool(tests) and len(tests) == len(ok)
        verdict = C.verdict_every_task(tests, alpha) if complete else Verdict.INCONCLUSIVE
        note = f"tasks without data, not tested: {', '.join(no_data)}" if no_data else ""
        if len(tests) < len(ok):
            note = (note + "; " if note else "") + "a compared system is missing"
        rows.append(
            {
                "claim": claim,
                "comparison": f"{comparison}, each task's primary metric",
                "verdict": verdict,
                "n_tasks": len(tests),
                "evidence": _evidence(tests, metric_of, n_of, B),
                "note": note,
            }
        )
    columns = ["claim", "comparison", "verdict", "n_tasks", "evidence", "note"]
    return pd.DataFrame.from_records(rows, columns=columns)


# ---------------------------------------------------------------- source -> output -> reference view


def word_diff_html(before: str, after: str) -> str:
    """``after`` as HTML with words inserted relative to ``before`` in <ins> and deleted ones in <del>."""
    a, b = before.split(), after.split()
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op in ("delete", "replace"):
            parts.append(f"<del>{html.escape(' '.join(a[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            parts.append(f"<ins>{html.escape(' '.join(b[j1:j2]))}</ins>")
        if op == "equal":
            parts.append(html.escape(" ".join(a[i1:i2])))
    return " ".join(parts)


def pick_examples(predictions: Sequence[dict], task: str, model: str, n: int = 2) -> dict[str, list[dict]]:
    """The ``n`` best and ``n`` worst predictions of ``model`` on ``task`` by sentence-level SARI (EASSE)."""
    preds = [p for p in predictions if p["task"] == task and p["model"] == model]
    if not preds:
        return {"best": [], "worst": []}
    scores = TM.sari(
        [p["text"] for p in preds], [p["parsed"] or "" for p in preds], [p["references"] for p in preds]
    )
    ranked = sorted(
        zip(scores["per_example"]["sari"], range(len(preds)), strict=True), key=lambda x: (-x[0], x[1])
    )
    scored = [{**preds[i], "sari": s} for s, i in ranked]
    return {"best": scored[:n], "worst": scored[::-1][:n]}


def format_diff_html(predictions: Sequence[dict], tasks: Sequence[str], model: str, n: int = 2) -> str:
    """An HTML page: per task, the best and worst examples of ``model`` by SARI as source -> output -> reference,
    with the words the output and the first reference insert (green) or delete (red) relative to the source."""
    style = "ins{background:#c8f7c5;text-decoration:none}del{background:#f7c5c5}td{padding:3px 8px;vertical-align:top}"
    out = [f"<html><head><meta charset='utf-8'><style>{style}</style></head><body>"]
    out.append(f"<h2>Model '{html.escape(model)}': best and worst examples per task by SARI</h2>")
    for task in tasks:
        picked = pick_examples(predictions, task, model, n)
        if not picked["best"]:
            continue
        out.append(f"<h3>{html.escape(task)}</h3><table border='1' style='border-collapse:collapse'>")
        out.append("<tr><th>which</th><th>SARI</th><th>source</th><th>output</th><th>reference</th></tr>")
        for which in ("best", "worst"):
            for p in picked[which]:
                cells = [
                    which,
                    f"{p['sari']:.1f}",
                    html.escape(p["text"]),
                    word_diff_html(p["text"], p["parsed"] or ""),
                    word_diff_html(p["text"], p["references"][0]),
                ]
                out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)
