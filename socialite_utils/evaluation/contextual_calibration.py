"""Contextual calibration of score-mode predictions (Zhao et al. 2021, "Calibrate Before Use").

A model that answers by label likelihood carries a prior over the label words: a small model, or one tuned on a
few dozen examples per task, may give one label to almost every input. Contextual calibration measures that prior
with *content-free* inputs: the task's own prompt with the example's text replaced by "N/A", "[MASK]" and "" (the
three fillers of the paper), averaged. Each example's label probabilities are then divided by the prior and
renormalised (the paper's W = diag(p_cf)^-1, b = 0), so a label wins only where the example moves the model
towards it more than a content-free input does.

The kit keeps both: a calibrated evaluation stores the uncalibrated answer and probabilities of every
prediction row under ``uncalibrated`` and the priors in ``metrics.json``, and notebook 03 prints both tables. It
never replaces uncalibrated numbers silently.

    priors = score_content_free_priors(model, tokenizer, rows_by_task)   # {task: {label: prob}}
    rows = calibrate_predictions(prediction_rows, {"tuned": priors})     # new rows, uncalibrated kept
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from ..prompts import normalize_text
from .predictions import _argmax_label, build_metrics
from .scoring import label_probabilities, score_label_logprobs

CONTENT_FREE_FILLERS = ("N/A", "[MASK]", "")  # Zhao et al. 2021, section 5


def _replace_last(text: str, old: str, new: str) -> str | None:
    at = text.rfind(old)
    return None if at < 0 or not old else text[:at] + new + text[at + len(old) :]


def _fill(prompt_text: str, row: dict, filler: str) -> str | None:
    """The prompt text with the example's own text (and second text) replaced by ``filler``; None if not found.

    The example comes last in a prompt (after the instruction and any shots), so the LAST occurrence is replaced.
    """

    for mode in ("none", "collapse_whitespace"):  # the data run may have normalised whitespace
        out = prompt_text
        text_b = row.get("text_b")
        if text_b:
            out = _replace_last(out, normalize_text(text_b, mode), filler)
            if out is None:
                continue
            cut = out.rfind(filler) if filler else len(out)
            head = _replace_last(out[:cut], normalize_text(row["text"], mode), filler)
            out = None if head is None else head + out[cut:]
        else:
            out = _replace_last(out, normalize_text(row["text"], mode), filler)
        if out is not None:
            return out
    return None


def content_free_prompt(row: dict, filler: str) -> str | list[dict]:
    """``row``'s prompt (a data-run row: ``prompt``, ``text``, optional ``text_b``) with its content replaced.

    Chat prompts keep their messages; the example is replaced in the last user message.
    """
    prompt = row["prompt"]
    if isinstance(prompt, list):
        messages = copy.deepcopy(prompt)
        users = [m for m in messages if m.get("role") == "user"]
        filled = _fill(users[-1]["content"], row, filler) if users else None
        if filled is not None:
            users[-1]["content"] = filled
            return messages
    else:
        filled = _fill(prompt, row, filler)
        if filled is not None:
            return filled
    raise ValueError(
        f"row {row.get('id')!r} (task {row.get('task')!r}): its text does not appear in its prompt, so no "
        "content-free prompt can be made for contextual calibration"
    )


def score_content_free_priors(
    model: Any,
    tokenizer: Any,
    rows_by_task: dict[str, Sequence[dict]],
    *,
    normalize: str = "sum",
    score_eos: bool = False,
    batch_size: int = 16,
) -> dict[str, dict[str, float]]:
    """{task: {label: prior probability}}: the mean label distribution over the content-free fillers.

    Each task's first row gives the prompt (instruction, shots and answer cue are shared by its rows).
    """

    prompts, labels, owners = [], [], []
    for task, rows in rows_by_task.items():
        first = rows[0]
        for filler in CONTENT_FREE_FILLERS:
            prompts.append(content_free_prompt(first, filler))
            labels.append(list(first["labels"]))
            owners.append(task)
    logprobs = score_label_logprobs(
        model,
        tokenizer,
        prompts,
        labels,
        batch_size=batch_size,
        normalize=normalize,
        eos=score_eos,
        progress=False,
    )
    priors: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for task, lps in zip(owners, logprobs, strict=True):
        probs = label_probabilities(lps)
        acc = priors.setdefault(task, dict.fromkeys(probs, 0.0))
        for lab, p in probs.items():
            acc[lab] += p
        counts[task] = counts.get(task, 0) + 1
    return {t: {lab: p / counts[t] for lab, p in dist.items()} for t, dist in priors.items()}


def calibrate_probs(probs: dict[str, float], prior: dict[str, float]) -> dict[str, float]:
    """p(label) / prior(label), renormalised over the labels (same keys and order as ``probs``)."""
    if set(probs) != set(prior):
        raise ValueError(f"labels {sorted(probs)} and prior labels {sorted(prior)} differ")
    floor = 1e-12  # a prior of exactly 0 would divide by zero; it only arises from underflow
    weights = {lab: p / max(prior[lab], floor) for lab, p in probs.items()}
    total = sum(weights.values())
    return {lab: w / total for lab, w in weights.items()}


def calibrate_predictions(rows: Sequence[dict], priors: dict[str, dict[str, dict[str, float]]]) -> list[dict]:
    """New prediction rows whose answer is the argmax of the calibrated probabilities.

    ``priors`` is {model: {task: {label: prior}}}. Rows of other models, and rows without probabilities (no
    answer), are copied unchanged. Every changed row keeps ``uncalibrated``: its former parsed answer, probs,
    expected score and correctness.
    """

    out = []
    for r in rows:
        prior = priors.get(r["model"], {}).get(r["task"])
        if prior is None or not r.get("probs"):
            out.append(dict(r))
            continue
        probs = calibrate_probs(r["probs"], prior)
        parsed = _argmax_label(probs)  # the uncalibrated rule, ties included
        new = dict(r)
        new["uncalibrated"] = {k: r.get(k) for k in ("parsed", "probs", "expected_score", "correct")}
        new.update(probs=probs, parsed=parsed, correct=parsed == r["gold"], calibration="contextual")
        if r["task_type"] == "regression":
            new["expected_score"] = probs.get("high")
        out.append(new)
    return out


def score_model_priors(
    model: Any,
    tokenizer: Any,
    rows_by_task: dict[str, Sequence[dict]],
    models: Sequence[str],
    **kwargs: Any,
) -> dict[str, dict[str, dict[str, float]]]:
    """{model: {task: prior}} for ``"base"`` and/or ``"tuned"``: the tuned model is ``model`` (with its adapter),
    the base model the same object inside ``model.disable_adapter()`` (as :func:`evaluation.evaluate_run` does)."""
    out = {}
    for name in models:
        if name == "base" and hasattr(model, "disable_adapter") and "tuned" in models:
            with model.disable_adapter():
                out[name] = score_content_free_priors(model, tokenizer, rows_by_task, **kwargs)
        else:
            out[name] = score_content_free_priors(model, tokenizer, rows_by_task, **kwargs)
    return out


def build_calibrated_metrics(
    metrics: dict,
    predictions: Sequence[dict],
    priors: dict[str, dict[str, dict[str, float]]],
    *,
    bootstrap_samples: int | None = None,
    seed: int | None = None,
) -> tuple[dict, list[dict]]:
    """(metrics, prediction rows) of an evaluation run after contextual calibration, in the same schema.

    ``metrics`` and ``predictions`` are the uncalibrated run's (:func:`evaluation.load_eval_run`); the result
    records the method and the priors under ``calibration`` and ``settings["calibration"]``.
    """

    settings = dict(metrics["settings"])
    rows = calibrate_predictions(predictions, priors)
    tasks = {
        t: {k: meta[k] for k in ("category", "group", "type", "labels")}
        for t, meta in metrics["tasks"].items()
    }
    out = build_metrics(
        rows,
        tasks,
        settings={**settings, "calibration": "contextual"},
        run_name=metrics["run_name"],
        bootstrap_samples=bootstrap_samples or settings.get("bootstrap_samples", 1000),
        seed=settings.get("seed", 0) if seed is None else seed,
    )
    out["calibration"] = {"method": "contextual", "fillers": list(CONTENT_FREE_FILLERS), "priors": priors}
    return out, rows


def score_item_priors(
    model: Any, tokenizer: Any, items: Sequence[Any], models: Sequence[str], **kwargs: Any
) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`score_model_priors` for an evaluation plan's items (``EvalItem``): each task's first item gives the
    prompt (as the model sees it, variant and shots included); priors are keyed by the task's canonical labels."""
    firsts: dict[str, Any] = {}
    for it in items:
        firsts.setdefault(it.row["task"], it)
    rows = {t: [{**it.row, "prompt": it.prompt, "labels": list(it.answers)}] for t, it in firsts.items()}
    by_word = score_model_priors(model, tokenizer, rows, models, **kwargs)
    return {
        m: {t: {firsts[t].to_label[w]: p for w, p in dist.items()} for t, dist in tasks.items()}
        for m, tasks in by_word.items()
    }
