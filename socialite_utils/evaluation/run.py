"""Evaluation: a base model and its tuned LoRA adapter on a data run's test (or validation) split.

Pipeline (``evaluate_run`` does all of it; each step is a public function):

1. ``build_eval_plan(params)`` checks every input before any model is loaded (data run, train run,
   adapter, base model name, run name) and builds one :class:`EvalItem` per example: the prompt
   (re-rendered when ``few_shot_k`` or a prompt ``variant`` differs from what the data run rendered)
   and the answer words the model chooses between;
2. ``load_eval_model(plan)`` loads the base model ONCE and puts the adapter on it (PEFT); the base model is
   scored inside ``model.disable_adapter()``. tests/test_evaluation.py checks that this gives the same
   log-probabilities as a freshly loaded base model, ``modules_to_save`` (trained embeddings/head) included;
3. ``score_examples`` runs one model in one mode and returns prediction rows (eval schema):
   ``generate`` is the paper's protocol (greedy, <= 20 new tokens, first line must equal a label;
   invalid answers are kept with their raw text and counted wrong), ``score`` ranks the label words
   by log-probability and keeps the per-label probabilities (calibration, P(high) for regression);
4. ``build_metrics`` turns prediction rows into metrics.json: per task and model macro-F1 over the task's
   full label list, accuracy, invalid rate (+ Pearson r for regression tasks), seeded bootstrap CIs,
   a paired macro-F1 bootstrap of tuned vs base per task and per group (McNemar kept as ``mcnemar_accuracy``,
   a test of accuracy), aggregates per category / group / overall (:func:`socialite_utils.metrics.aggregate`)
   and the paper claims, each judged by the rule of :mod:`socialite_utils.claims` (:mod:`socialite_utils.reporting`);
5. the run ``runs/<run_name>/`` is written atomically (``RunWriter``): ``predictions.jsonl``,
   ``metrics.json``, ``paper_comparison.csv``, ``figures/*.png|pdf``, ``params.json``, ``provenance.json``.

Everything in metrics.json is recomputable from predictions.jsonl (``build_metrics``), and every figure and
table from metrics.json (:mod:`socialite_utils.reporting`), without rerunning a model.

Where the steps live: planning (1) in :mod:`socialite_utils.evaluation.plan`, scoring and metrics (3, 4) in
:mod:`socialite_utils.evaluation.predictions`; the stage's public names are in :mod:`socialite_utils.evaluation`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import models
from ..plotting import plot_all
from ..reporting import report_paper_comparison
from ..runs import (
    RunWriter,
    provenance,
    read_json,
    resolve_run_dir,
    run_ref,
    write_json,
)
from ..schema import (
    PREDICTION_ROW_FIELDS,
    PREDICTION_ROW_KEYS,
    SchemaError,
    read_eval_metrics,
    read_prediction_rows,
    write_eval_metrics,
    write_prediction_rows,
)
from ..training.lora import load_adapter_and_tokenizer
from .backends import backend_info, load_vllm_model
from .contextual_calibration import build_calibrated_metrics, score_item_priors
from .plan import (
    BASE,
    EvalItem,
    EvalParams,
    EvalPlan,
    build_eval_plan,
)
from .predictions import (
    build_metrics,
    score_examples,
)
from .truncation import fit_eval_items, model_context_length

# ---------------------------------------------------------------- models


def load_eval_model(plan: EvalPlan, *, precision: Any | None = None) -> tuple[Any, Any]:
    """(model, tokenizer): the base model with the train run's adapter, or the bare base model.

    With an adapter, the BASE model is the same object inside ``model.disable_adapter()`` (one load, one copy
    of the weights). The tokenizer is the one the run trained with (its pad token may be one the kit added).
    """

    if precision is None:
        precision = models.choose_precision(model_params=models.resolve_model(plan.base_model).params)
    if plan.train_run_dir is None:
        return models.load_model(plan.base_model, precision=precision, seed=plan.params.seed)

    model, tokenizer = load_adapter_and_tokenizer(plan.train_run_dir, plan.base_model, precision=precision)
    return model.eval(), tokenizer


# ---------------------------------------------------------------- the whole run


@dataclass
class EvalResult:
    """What an evaluation run produced."""

    run_dir: Path
    metrics: dict
    predictions: list[dict] = field(repr=False)
    seconds: dict[str, float]
    figures: list[Path]
    calibrated_metrics: dict | None = field(default=None, repr=False)  # calibration="contextual": beside

    def timing(self) -> str:
        """Seconds per model and per example."""
        n = max(1, len({r["id"] for r in self.predictions}))
        return "  ".join(f"{m}: {s:.1f} s ({1000 * s / n:.0f} ms/example)" for m, s in self.seconds.items())


def _settings(plan: EvalPlan) -> dict:
    p = plan.params
    ks = sorted({it.few_shot_k for it in plan.items})
    return {
        "mode": p.mode,
        "few_shot_k": ks[0] if len(ks) == 1 else ks,
        "base_model": plan.base_model,
        # relative to the shared runs directory: same profile + seed -> identical metrics.json wherever it runs
        # a Hub adapter is named by its id (hub:owner/name), not by this machine's cache folder
        "train_run": plan.train_ref
        or (run_ref(plan.train_run_dir, plan.run_dir.parent) if plan.train_run_dir else None),
        "data_run": run_ref(plan.data_run_dir, plan.run_dir.parent),
        "suite": plan.suite,
        "split": p.split,
        "normalize": p.normalize,
        "bootstrap_samples": p.bootstrap_samples,
        "seed": p.seed,
        "max_eval_per_task": p.max_eval_per_task,
        "prompt_format": plan.prompt_format,
        "lenient": p.lenient,
        "score_eos": p.score_eos,
        "max_new_tokens": p.max_new_tokens,
        "variant": p.variant,
        "backend": backend_info(p.backend),
    }


def _fit_items(plan: EvalPlan, model: Any, tokenizer: Any, *, say: Any) -> tuple[list[EvalItem], int]:
    """The plan's items with their texts cut to fit the model's max_length; and that max_length."""

    p = plan.params
    max_length = p.max_length or model_context_length(model, tokenizer)
    items = fit_eval_items(
        plan.items, tokenizer, max_length, mode=p.mode, max_new_tokens=p.max_new_tokens, score_eos=p.score_eos
    )
    if n_cut := sum(1 for it in items if it.truncated_tokens):
        say(f"{n_cut} of {len(items)} example texts cut to fit max_length {max_length} tokens")
    return items, max_length


def items_digest(items: list[EvalItem]) -> str:
    """A hash of what the models are asked: every item's task, id, prompt and label words (after fitting)."""
    payload = [
        [it.row["task"], it.row["id"], it.prompt, it.answers, it.to_label, it.truncated_tokens, it.variant]
        for it in sorted(items, key=lambda it: (it.row["task"], it.row["id"]))
    ]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


# Settings that must agree for another run's base predictions to stand for this run's.
_BASE_REUSE_SETTINGS = ("mode", "few_shot_k", "base_model", "normalize", "lenient", "score_eos", "max_new_tokens",
                        "variant", "prompt_format", "max_length")  # fmt: skip


def load_reused_base(base_from: str, plan: EvalPlan, items: list[EvalItem], settings: dict) -> list[dict]:
    """The base-model prediction rows of the finished evaluation run ``base_from``, checked to be what scoring the
    base model here would give: the same settings and the same items (prompts, label words, truncation)."""
    earlier = load_eval_run(resolve_run_dir(base_from))
    where = f"base_from={base_from!r} ({earlier.run_dir})"
    diffs = [
        f"{k}: {earlier.settings.get(k)!r} there, {settings.get(k)!r} here"
        for k in _BASE_REUSE_SETTINGS
        if earlier.settings.get(k) != settings.get(k)
    ]
    if diffs:
        raise ValueError(f"{where}: its base model was scored differently ({'; '.join(diffs)})")
    digest = read_json(earlier.run_dir / "provenance.json").get("items_digest")
    if digest != items_digest(items):
        raise ValueError(
            f"{where}: its items differ from this run's (digest {digest} there, {items_digest(items)} here): "
            "another data run, other test rows or other prompts; score the base model here instead"
        )
    # as written (the reader's bookkeeping, such as the line number, stays out of this run's file)
    rows = [
        {k: v for k, v in r.items() if k in PREDICTION_ROW_KEYS}
        for r in earlier.predictions
        if r["model"] == BASE
    ]
    if len(rows) != len(items):
        raise ValueError(f"{where}: {len(rows)} base predictions for {len(items)} items")
    return rows


def _score_models(
    plan: EvalPlan,
    model: Any,
    tokenizer: Any,
    items: list[EvalItem],
    *,
    verbose: bool,
    say: Any,
    reused_base: list[dict] | None = None,
) -> tuple[list[dict], dict[str, float]]:
    """Prediction rows of every model of the plan (the base model inside ``disable_adapter()``, or the rows
    ``reused_base`` of an earlier run), and seconds."""
    p = plan.params
    kwargs = {
        "mode": p.mode,
        "batch_size": p.batch_size,
        "max_new_tokens": p.max_new_tokens,
        "lenient": p.lenient,
        "normalize": p.normalize,
        "score_eos": p.score_eos,
        "progress": verbose,
    }
    predictions: list[dict] = []
    seconds: dict[str, float] = {}
    for name in plan.models:
        start = time.perf_counter()
        if name == BASE and reused_base is not None:
            predictions += reused_base
            seconds[name] = 0.0
            say(f"{name}: {len(reused_base)} predictions reused from {p.base_from}")
            continue
        if name == BASE and plan.train_run_dir is not None:
            with model.disable_adapter():  # same weights as a fresh base model (tested)
                predictions += score_examples(model, tokenizer, items, model_name=name, **kwargs)
        else:
            predictions += score_examples(model, tokenizer, items, model_name=name, **kwargs)
        seconds[name] = time.perf_counter() - start
        say(f"{name}: {len(plan.items)} examples in {seconds[name]:.1f} s")
    return predictions, seconds


def _calibrate(
    plan: EvalPlan, model: Any, tokenizer: Any, metrics: dict, predictions: list[dict]
) -> tuple[dict, list[dict]] | None:
    """``calibration="contextual"``: (metrics, predictions) recomputed with content-free priors; else None."""
    p = plan.params
    if p.calibration != "contextual":
        return None

    priors = score_item_priors(
        model,
        tokenizer,
        plan.items,
        plan.models,
        normalize=p.normalize,
        score_eos=p.score_eos,
        batch_size=p.batch_size,
    )
    return build_calibrated_metrics(metrics, predictions, priors)


def _write_eval_run(
    plan: EvalPlan,
    metrics: dict,
    predictions: list[dict],
    seconds: dict[str, float],
    calibrated: tuple[dict, list[dict]] | None,
    items: list[EvalItem],
) -> list[Path]:
    """Write ``runs/<run_name>/`` atomically; return the figures' final paths."""

    p = plan.params
    with RunWriter(plan.run_dir, overwrite=p.overwrite) as tmp:
        write_prediction_rows(tmp / "predictions.jsonl", predictions)
        write_eval_metrics(tmp / "metrics.json", metrics)
        if calibrated is not None:  # beside the uncalibrated run, never instead of it
            write_prediction_rows(tmp / "calibrated" / "predictions.jsonl", calibrated[1])
            write_eval_metrics(tmp / "calibrated" / "metrics.json", calibrated[0])
        write_json(tmp / "params.json", p.to_dict())
        report_paper_comparison(metrics).to_csv(tmp / "paper_comparison.csv", index=False)
        figures = plot_all(metrics, tmp / "figures")
        extra = {
            "stage": "evaluation",
            "seconds": seconds,
            "n_examples": len(plan.items),
            "notes": plan.notes,
            "data_run": str(plan.data_run_dir),
            "train_run": str(plan.train_run_dir) if plan.train_run_dir else None,
            "items_digest": items_digest(items),
            "base_from": p.base_from,
            "train_ref": plan.train_ref,
        }
        write_json(tmp / "provenance.json", provenance(extra))
    return [plan.run_dir / "figures" / f.name for f in figures]


def evaluate_run(
    params: EvalParams,
    *,
    plan: EvalPlan | None = None,
    model_and_tokenizer: tuple[Any, Any] | None = None,
    verbose: bool = True,
) -> EvalResult:
    """Evaluate base (and tuned) on the plan's examples and write ``runs/<run_name>/`` atomically.

    ``plan`` defaults to :func:`build_eval_plan` (all input checks happen there, before any model is loaded);
    ``model_and_tokenizer`` lets a caller reuse an already loaded model (it must carry the adapter when the
    plan has a train run). The steps: load the model, fit the items to its context (:func:`_fit_items`),
    score every model (:func:`_score_models`), :func:`build_metrics`, the optional contextual calibration
    (:func:`_calibrate`), and write the run (:func:`_write_eval_run`).
    """
    say = print if verbose else (lambda *a, **k: None)
    plan = plan or build_eval_plan(params)
    p = plan.params
    load = load_vllm_model if p.backend == "vllm" else load_eval_model
    model, tokenizer = model_and_tokenizer or load(plan)
    items, max_length = _fit_items(plan, model, tokenizer, say=say)
    settings = {**_settings(plan), "max_length": max_length}
    reused = load_reused_base(p.base_from, plan, items, settings) if p.base_from else None
    predictions, seconds = _score_models(
        plan, model, tokenizer, items, verbose=verbose, say=say, reused_base=reused
    )
    metrics = build_metrics(
        predictions,
        plan.tasks,
        settings=settings,
        run_name=p.run_name,
        bootstrap_samples=p.bootstrap_samples,
        seed=p.seed,
    )
    calibrated = _calibrate(plan, model, tokenizer, metrics, predictions)
    figures = _write_eval_run(plan, metrics, predictions, seconds, calibrated, items)
    return EvalResult(
        plan.run_dir,
        metrics,
        predictions,
        seconds,
        figures,
        calibrated[0] if calibrated is not None else None,
    )


# ---------------------------------------------------------------- reading a finished run

_REQUIRED_METRICS_FIELDS = ("settings", "models", "tasks")


class EvalRunError(SchemaError):
    """An evaluation run is missing, incomplete or from another schema; the message says what and where."""


@dataclass
class EvalRun:
    """An evaluation run on disk: its metrics.json, params.json and prediction rows."""

    run_dir: Path
    metrics: dict[str, Any]
    params: dict[str, Any]
    predictions: list[dict[str, Any]] = field(repr=False)

    @property
    def settings(self) -> dict[str, Any]:
        return self.metrics["settings"]

    @property
    def models(self) -> list[str]:
        return list(self.metrics["models"])

    @property
    def mode(self) -> str:
        """The run's scoring mode (settings.mode, else the mode of its first prediction row)."""
        return self.settings.get("mode") or self.predictions[0]["mode"]

    @property
    def tasks(self) -> list[str]:
        return list(self.metrics["tasks"])

    def labels(self, task: str) -> list[str]:
        """The task's answer space as the evaluation scored it."""
        return list(self.metrics["tasks"][task]["labels"])

    @property
    def variant(self) -> int | None:
        """The prompt the run evaluated: None = the registry's main prompt, i = ``task.variants[i]``."""
        return self.settings.get("variant")

    def main_rows(self, task: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        """Prediction rows of the run's own prompt (``settings.variant``, normally the main prompt) in the run's
        mode, optionally of one task / model."""
        mode, variant = self.mode, self.variant
        return [
            r
            for r in self.predictions
            if r.get("variant") == variant
            and r["mode"] == mode
            and (task is None or r["task"] == task)
            and (model is None or r["model"] == model)
        ]


def load_eval_run(run: str | os.PathLike) -> EvalRun:
    """Load and check an evaluation run (name under runs/ or path).

    Raises :class:`EvalRunError` (or FileNotFoundError for a missing directory/file) naming what is wrong: no
    directory, no metrics.json / predictions.jsonl, a metrics.json without ``schema_version`` (written before the
    schema was versioned) or with another version, missing top-level fields, prediction rows without required
    fields, tasks or models that metrics.json does not declare, or duplicated prediction rows.
    """
    run_dir = resolve_run_dir(run)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"evaluation run {run_dir} does not exist (run notebook 03 first)")
    doc = read_eval_metrics(
        run_dir / "metrics.json", fields=_REQUIRED_METRICS_FIELDS, task_fields=("labels",), error=EvalRunError
    )
    pred_path = run_dir / "predictions.jsonl"
    rows = read_prediction_rows(
        pred_path, fields=PREDICTION_ROW_FIELDS, line_field="_line", what="evaluation run", error=EvalRunError
    )
    if not rows:
        raise EvalRunError(f"{pred_path}: no prediction rows")
    seen: dict[tuple, int] = {}
    for r in rows:
        where = f"{pred_path}: line {r['_line']}"
        if r["task"] not in doc["tasks"]:
            raise EvalRunError(
                f"{where}: task {r['task']!r} is not in metrics.json tasks {list(doc['tasks'])}"
            )
        if r["model"] not in doc["models"]:
            raise EvalRunError(f"{where}: model {r['model']!r} is not in metrics.json models {doc['models']}")
        key = (r["id"], r["model"], r["mode"], r.get("variant"), r.get("few_shot_k"))
        if key in seen:
            raise EvalRunError(
                f"{where}: duplicates the prediction on line {seen[key]} (same id/model/mode/variant)"
            )
        seen[key] = r["_line"]
    params_path = run_dir / "params.json"
    params = read_json(params_path) if params_path.is_file() else {}
    return EvalRun(run_dir=run_dir, metrics=doc, params=params, predictions=rows)
