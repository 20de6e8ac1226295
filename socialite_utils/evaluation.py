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
   a paired bootstrap and McNemar test tuned vs base, aggregates per category / group / overall
   (:func:`socialite_utils.metrics.aggregate`) and the paper claims (:mod:`socialite_utils.reporting`);
5. the run ``runs/<run_name>/`` is written atomically (``RunWriter``): ``predictions.jsonl``,
   ``metrics.json``, ``paper_comparison.csv``, ``figures/*.png|pdf``, ``params.json``, ``provenance.json``.

Everything in metrics.json is recomputable from predictions.jsonl (``build_metrics``), and every figure and
table from metrics.json (:mod:`socialite_utils.reporting`), without rerunning a model.
"""

from __future__ import annotations

import math
import os
import random
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as M
from .assembly import load_data_run
from .backends import VLLMModel, backend_info, check_backend, load_vllm_model
from .checkpoints import adapter_problem
from .contextual_calibration import CALIBRATIONS
from .prompts import draw_shots, render_variant_prompt, variant_label_words
from .registry import Task, load_all_suites, load_registry, task_names
from .runs import (
    RunWriter,
    check_run_name,
    new_run_dir,
    provenance,
    read_json,
    resolve_run_dir,
    run_ref,
    write_json,
)
from .runs import write_jsonl as _write_jsonl
from .schema import EVAL_METRICS_SCHEMA_VERSION, read_eval_metrics, read_prediction_rows

MODES = ("score", "generate")
EVAL_SPLITS = ("test", "validation")
NORMALIZATIONS = ("sum", "mean")
BASE, TUNED = "base", "tuned"
METRICS_SCHEMA_VERSION = EVAL_METRICS_SCHEMA_VERSION


# ---------------------------------------------------------------- parameters


@dataclass
class EvalParams:
    """Every knob of an evaluation run (notebook 03's parameters map 1:1 onto these fields)."""

    run_name: str
    data_run: str = "data-demo"  # notebook 01's output: a run name under runs/ or a path
    train_run: str | None = "train-demo"  # notebook 02's output; None evaluates the base model only
    base_model: str | None = None  # None: the train run's base model (required when train_run is None)
    mode: str = "generate"  # "generate" (the paper's protocol) or "score" (label likelihood)
    few_shot_k: int | None = None  # None: prompts as the data run rendered them; else re-render with k shots
    split: str = "test"  # "test" or "validation" (related tasks have test rows only)
    tasks: list[str] | None = None  # evaluate only these tasks (None: every task of the split)
    max_eval_per_task: int | None = None  # a seeded random subset per task (None: all rows of the split)
    batch_size: int = 8
    max_new_tokens: int = 20  # generate mode: the paper's limit
    max_length: int | None = None  # prompt + answer tokens; longer texts are cut (None: the model's context)
    lenient: bool = False  # generate mode: also accept an answer that STARTS with a label word
    normalize: str = "sum"  # score mode: label log-prob summed ("sum") or averaged ("mean") over tokens
    score_eos: bool = False  # score mode: also score the end marker after the label (see scoring.py)
    variant: int | None = None  # None: the registry's main prompt; i: task.variants[i] (notebook 04)
    calibration: str = (
        "none"  # score mode: "contextual" also writes calibrated/ beside (see contextual_calibration.py)
    )
    backend: str = "hf"  # generate mode: "hf" (transformers) or "vllm" (optional; see backends.py)
    bootstrap_samples: int = 1000  # resamples for every CI and the paired bootstrap
    seed: int = 0  # subsampling, few-shot draws, bootstrap
    overwrite: bool = False  # replace an existing evaluation run of the same name

    def __post_init__(self) -> None:
        self.tasks = task_names(self.tasks)  # "a" or "a,b" -> a list, never iterated letter by letter

    def validate(self) -> EvalParams:
        """Raise ValueError naming the first bad field; return self."""
        check_run_name(self.run_name)
        choices = {
            "mode": MODES,
            "split": EVAL_SPLITS,
            "normalize": NORMALIZATIONS,
            "calibration": CALIBRATIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"EvalParams.{name} = {getattr(self, name)!r}; expected one of {allowed}")
        checks = {
            "few_shot_k": self.few_shot_k is None or self.few_shot_k >= 0,
            "max_eval_per_task": self.max_eval_per_task is None or self.max_eval_per_task >= 1,
            "batch_size": self.batch_size >= 1,
            "max_new_tokens": self.max_new_tokens >= 1,
            "max_length": self.max_length is None or self.max_length >= 2,
            "bootstrap_samples": self.bootstrap_samples >= 1,
            "variant": self.variant is None or self.variant >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"EvalParams.{name} = {getattr(self, name)!r} is out of range")
        check_backend(self.backend, self.mode)
        if self.calibration != "none" and self.mode != "score":
            raise ValueError(
                f"EvalParams.calibration = {self.calibration!r} needs mode='score' (label probabilities)"
            )
        if not self.data_run:
            raise ValueError("EvalParams.data_run is empty: name the data run written by notebook 01")
        if not self.train_run and not self.base_model:
            raise ValueError("give a train_run (base model + adapter) or, for a base-only run, a base_model")
        return self

    def for_smoke(self) -> EvalParams:
        """A copy that finishes in seconds on a CPU: 4 examples per task, 200 bootstrap resamples (after validating
        the given parameters, so a bad value is reported rather than replaced)."""
        self.validate()
        cap = 4 if self.max_eval_per_task is None else min(self.max_eval_per_task, 4)
        return replace(self, max_eval_per_task=cap, bootstrap_samples=min(self.bootstrap_samples, 200))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (written to params.json)."""
        return asdict(self)


# ---------------------------------------------------------------- planning (no model loaded)


@dataclass
class EvalItem:
    """One example ready for a model: its data-run row, the prompt and the words it may answer with."""

    row: dict
    prompt: str | list[dict]
    answers: list[str]  # the words offered to the model (a variant may rename labels)
    to_label: dict[str, str]  # answer word -> the task's canonical label
    few_shot_k: int
    truncated_tokens: int = 0  # tokens cut from the example's own text to fit max_length


@dataclass
class EvalPlan:
    """Everything an evaluation needs, checked, before a model is loaded."""

    params: EvalParams
    run_dir: Path
    data_run_dir: Path
    train_run_dir: Path | None
    base_model: str
    prompt_format: str
    suite: str | None  # the registry suite of the data run's tasks (from its params.json)
    tasks: dict[str, dict]  # task -> {"category", "group", "type", "labels"}
    items: list[EvalItem]
    notes: list[str] = field(default_factory=list)

    @property
    def models(self) -> list[str]:
        """The models this run evaluates, in order."""
        return [BASE, TUNED] if self.train_run_dir is not None else [BASE]

    def summary(self) -> str:
        """A few lines for the notebook: what will be evaluated on what."""
        per_task = Counter(it.row["task"] for it in self.items)
        ks = sorted({it.few_shot_k for it in self.items})
        lines = [
            f"data run: {self.data_run_dir} (split {self.params.split}, format {self.prompt_format})",
            f"train run: {self.train_run_dir or '- (base model only)'}",
            f"base model: {self.base_model}; models evaluated: {', '.join(self.models)}",
            f"mode: {self.params.mode}; few-shot k: {ks}; variant: {self.params.variant}",
            f"{len(self.items)} examples x {len(self.models)} model(s) from {len(per_task)} task(s): "
            + ", ".join(f"{t} {n}" for t, n in per_task.items()),
        ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def show_prompts(self, n_per_task: int = 1) -> str:
        """The first prompt(s) of every task exactly as the models will see them, with the gold answer."""
        from .prompts import prompt_text

        shown: Counter = Counter()
        blocks = []
        for it in self.items:
            if shown[it.row["task"]] < n_per_task:
                shown[it.row["task"]] += 1
                blocks.append(
                    f"--- {it.row['id']} (gold: {it.row['label']!r}; answers: {', '.join(it.answers)})\n"
                    + prompt_text(it.prompt)
                )
        return "\n".join(blocks)


def _find_suite(task_names: Sequence[str]) -> dict[str, Task]:
    """The registry suite that defines every task of a data run whose params.json names no suite."""
    matches = [s for s, reg in load_all_suites().items() if all(t in reg for t in task_names)]
    if len(matches) != 1:
        raise ValueError(
            f"the data run's params.json names no 'suite' and {len(matches)} suites define all of its tasks "
            f'{list(task_names)} ({matches}); add "suite" to params.json'
        )
    return load_registry(matches[0])


def _check_train_run(params: EvalParams) -> tuple[Path | None, str]:
    """The train run directory (or None) and the base model name; errors before anything is loaded."""
    from .models import resolve_model

    if not params.train_run:
        name = str(params.base_model)
        _check_model_name(name, resolve_model)
        return None, name
    train_dir = resolve_run_dir(params.train_run)
    if not train_dir.is_dir():
        raise FileNotFoundError(
            f"train run {train_dir} does not exist (run notebook 02 first, fix train_run, or set "
            "train_run=None and base_model=... to evaluate a base model only)"
        )
    adapter = train_dir / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(
            f"train run {train_dir} has no LoRA adapter: {adapter / 'adapter_config.json'} is missing "
            "(an interrupted training run? its checkpoints are in <run>.partial/)"
        )
    if problem := adapter_problem(adapter):
        raise FileNotFoundError(f"train run {train_dir} has an incomplete LoRA adapter: {problem}")
    params_path = train_dir / "params.json"
    if not params_path.is_file():
        raise FileNotFoundError(f"train run {train_dir} has no params.json (it names the base model)")
    trained_on = read_json(params_path).get("base_model")
    if not trained_on:
        raise ValueError(f"{params_path}: field 'base_model' is missing or empty")
    if params.base_model and params.base_model != trained_on:
        raise ValueError(
            f"base_model={params.base_model!r} but the adapter in {train_dir} was trained on {trained_on!r}; "
            "leave base_model=None to use the train run's"
        )
    from .training import IN_PROCESS_PRESETS

    if trained_on in IN_PROCESS_PRESETS and not (train_dir / "base_model" / "config.json").is_file():
        raise FileNotFoundError(
            f"{train_dir / 'base_model'} is missing: a {trained_on!r} run must keep the base model it trained"
        )
    _check_model_name(trained_on, resolve_model)
    return train_dir, trained_on


def _check_model_name(name: str, resolve_model: Any) -> None:
    from .offline import check_model_available

    try:
        resolve_model(name)
    except ValueError as e:
        raise ValueError(f"base_model: {e}") from None
    check_model_available(name)  # a hub id while offline and not cached: say so before anything loads


def _select_rows(rows: list[dict], params: EvalParams, source: Path) -> dict[str, list[dict]]:
    """Rows per task (data-run order), filtered to ``params.tasks`` and capped by a seeded subset."""
    by_task: dict[str, list[dict]] = defaultdict(list)
    for lineno, row in enumerate(rows, start=1):
        missing = [
            k
            for k in ("id", "task", "label", "labels", "prompt", "task_type", "category", "group")
            if k not in row
        ]
        if missing:
            raise ValueError(f"{source}: line {lineno} (id {row.get('id', '?')}): missing field(s) {missing}")
        if row["task_type"] == "generation":  # rewriting tasks are scored by socialite_utils.writing_eval
            raise ValueError(
                f"{source}: line {lineno}: task '{row['task']}' is a generation task; use notebook 07"
            )
        by_task[row["task"]].append(row)
    if params.tasks:
        unknown = [t for t in params.tasks if t not in by_task]
        if unknown:
            raise ValueError(
                f"task(s) {unknown} have no rows in {source}; tasks in this split: {sorted(by_task)}"
            )
        by_task = {t: by_task[t] for t in params.tasks}
    cap = params.max_eval_per_task
    if cap is not None:
        for task, task_rows in by_task.items():
            if len(task_rows) > cap:
                keep = sorted(random.Random(f"{params.seed}|{task}|eval").sample(range(len(task_rows)), cap))
                by_task[task] = [task_rows[i] for i in keep]
    return dict(by_task)


def _task_meta(task: str, rows: list[dict], source: Path) -> dict:
    first = rows[0]
    meta = {
        "category": first["category"],
        "group": first["group"],
        "type": first["task_type"],
        "labels": list(first["labels"]),
    }
    for r in rows:
        if list(r["labels"]) != meta["labels"] or r["group"] != meta["group"]:
            raise ValueError(f"{source}: rows of task {task!r} disagree on labels/group (see id {r['id']})")
        if r["label"] not in meta["labels"]:
            raise ValueError(
                f"{source}: id {r['id']}: field 'label' {r['label']!r} is not in {meta['labels']}"
            )
        if meta["type"] == "regression" and not isinstance(r.get("score"), int | float):
            raise ValueError(f"{source}: id {r['id']}: regression row without a numeric 'score'")
    return meta


def build_eval_items(
    rows_by_task: dict[str, list[dict]],
    registry: dict[str, Task] | None,
    pool: list[dict],
    *,
    few_shot_k: int | None,
    variant: int | None,
    seed: int,
) -> tuple[list[EvalItem], list[str]]:
    """One :class:`EvalItem` per row, plus notes on every prompt that was re-rendered or fell back.

    A row keeps its data-run prompt unless ``few_shot_k`` differs from the row's ``few_shot_k`` or a
    ``variant`` is asked for; then the prompt is rendered again with ``prompts.render_variant_prompt`` and shots drawn
    by ``prompts.draw_shots`` from the task's rows in the data run's few-shot pool (seeded by ``seed``).
    """
    pool_by_task: dict[str, list[dict]] = defaultdict(list)
    for r in pool:
        pool_by_task[r["task"]].append(r)
    items: list[EvalItem] = []
    notes: list[str] = []
    for task_name, rows in rows_by_task.items():
        labels = list(rows[0]["labels"])
        needs_render = variant is not None or any(
            few_shot_k is not None and few_shot_k != r.get("few_shot_k", 0) for r in rows
        )
        if not needs_render:
            items += [
                EvalItem(r, r["prompt"], labels, {lab: lab for lab in labels}, int(r.get("few_shot_k", 0)))
                for r in rows
            ]
            continue
        if registry is None or task_name not in registry:
            raise ValueError(f"re-rendering prompts needs task {task_name!r} in the registry suite")
        task = registry[task_name]
        by_label = variant_label_words(task, variant)  # validates the variant first
        words = {lab: by_label.get(lab, lab) for lab in labels}
        k = few_shot_k if few_shot_k is not None else int(rows[0].get("few_shot_k", 0))
        shots = draw_shots(pool_by_task[task_name], k, seed=seed, task_name=task_name, labels=labels)
        if k and len(shots) < k:
            notes.append(
                f"{task_name}: asked for {k} shots, the few-shot pool gave {len(shots)} "
                f"(pool has {len(pool_by_task[task_name])} rows)"
            )
        to_label = {w: lab for lab, w in words.items()}
        for r in rows:
            fmt = r.get("prompt_format") or ("chat" if isinstance(r["prompt"], list) else "paper")
            # Shots show the answer words the model is asked for (a variant may rename the labels).
            prompt = render_variant_prompt(
                task, r["text"], r.get("text_b"), variant=variant, fmt=fmt, shots=shots
            )
            items.append(EvalItem(r, prompt, list(words.values()), to_label, len(shots)))
    return items, notes


def build_eval_plan(params: EvalParams) -> EvalPlan:
    """Check every input and build the prompts; raises before any model is loaded or anything written."""
    params.validate()
    run_dir = new_run_dir(params.run_name, overwrite=params.overwrite)
    data_dir = resolve_run_dir(params.data_run)
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"data run {data_dir} does not exist (run notebook 01 first, or fix data_run)"
        )
    train_dir, base_model = _check_train_run(params)
    data = load_data_run(data_dir)
    source = data_dir / "data" / f"{params.split}.jsonl"
    if not data[params.split]:
        raise ValueError(f"{source} is empty: nothing to evaluate")
    rows_by_task = _select_rows(data[params.split], params, source)
    tasks = {t: _task_meta(t, rows, source) for t, rows in rows_by_task.items()}

    data_params = read_json(data_dir / "params.json") if (data_dir / "params.json").exists() else {}
    registry = None
    if params.variant is not None or params.few_shot_k is not None:
        suite = data_params.get("suite")
        registry = load_registry(suite) if suite else _find_suite(list(rows_by_task))
    items, notes = build_eval_items(
        rows_by_task,
        registry,
        data["fewshot_pool"],
        few_shot_k=params.few_shot_k,
        variant=params.variant,
        seed=params.seed,
    )
    rerendered = any(it.prompt is not it.row["prompt"] for it in items)
    if rerendered and data_params.get("instruction_from") == "source":
        notes.append(
            "prompts were re-rendered with the registry's instructions (the data run used the source's)"
        )
    all_tasks = data_params.get("tasks") or []
    absent = [t for t in all_tasks if t not in tasks and not params.tasks]
    if absent:
        notes.append(f"task(s) without {params.split} rows, not evaluated: {absent}")
    formats = {it.row.get("prompt_format", "paper") for it in items}
    return EvalPlan(
        params=params,
        run_dir=run_dir,
        data_run_dir=data_dir,
        train_run_dir=train_dir,
        base_model=base_model,
        prompt_format="/".join(sorted(formats)),
        suite=data_params.get("suite") or (next(iter(registry.values())).suite if registry else None),
        tasks=tasks,
        items=items,
        notes=notes,
    )


# ---------------------------------------------------------------- models


def load_eval_model(plan: EvalPlan, *, precision: Any | None = None) -> tuple[Any, Any]:
    """(model, tokenizer): the base model with the train run's adapter, or the bare base model.

    With an adapter, the BASE model is the same object inside ``model.disable_adapter()`` (one load, one copy
    of the weights). The tokenizer is the one the run trained with (its pad token may be one the kit added).
    """
    from . import models

    if precision is None:
        precision = models.choose_precision(model_params=models.resolve_model(plan.base_model).params)
    if plan.train_run_dir is None:
        texts = [it.row["text"] for it in plan.items]  # tiny-random learns its tokenizer from these
        return models.load_model(
            plan.base_model, precision=precision, train_texts=texts, seed=plan.params.seed
        )
    from .training import load_adapter, load_run_tokenizer

    model = load_adapter(plan.train_run_dir, plan.base_model, precision=precision)
    return model.eval(), load_run_tokenizer(plan.train_run_dir)


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


def score_task_metrics(
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
        raise ValueError("score_task_metrics: no prediction rows")
    labels = list(labels)
    gold = [r["gold"] for r in rows]
    pred = [r["parsed"] for r in rows]
    flags: list[str] = []
    if task_type == "regression":
        gold_scores = [r["gold_score"] for r in rows]
        expected = [r["expected_score"] for r in rows]
        res = _collect_warnings(
            M.score_regression, gold_scores, expected, gold, pred, labels=labels, flags=flags
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
        res = M.score_classification(gold, pred, labels=labels)
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


def score_comparison(
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
        "schema_version": METRICS_SCHEMA_VERSION,
        "run_name": run_name,
        "settings": settings,
        "models": model_names,
        "tasks": out_tasks,
        "categories": agg("category"),
        "groups": agg("group"),
        "overall": agg("all")["all"],
    }
    if TUNED in model_names and BASE in model_names:
        metrics["group_comparisons"] = score_group_comparisons(grouped, tasks, bootstrap_samples, seed)
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
        block = score_task_metrics(
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
        entry["comparison"] = score_comparison(
            grouped[(task, TUNED)],
            grouped[(task, BASE)],
            meta["labels"],
            bootstrap_samples=bootstrap_samples,
            seed=M.task_seed(seed, task),
        )
    return entry


def score_group_comparisons(
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
        "train_run": run_ref(plan.train_run_dir, plan.run_dir.parent) if plan.train_run_dir else None,
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
    plan has a train run).
    """
    from .plotting import plot_all
    from .reporting import report_paper_comparison

    say = print if verbose else (lambda *a, **k: None)
    plan = plan or build_eval_plan(params)
    p = plan.params
    load = load_vllm_model if p.backend == "vllm" else load_eval_model
    model, tokenizer = model_and_tokenizer or load(plan)
    from .truncation import fit_eval_items, model_context_length

    max_length = p.max_length or model_context_length(model, tokenizer)
    items = fit_eval_items(
        plan.items, tokenizer, max_length, mode=p.mode, max_new_tokens=p.max_new_tokens, score_eos=p.score_eos
    )
    if n_cut := sum(1 for it in items if it.truncated_tokens):
        say(f"{n_cut} of {len(items)} example texts cut to fit max_length {max_length} tokens")
    kwargs = {
        "mode": p.mode,
        "batch_size": p.batch_size,
        "max_new_tokens": p.max_new_tokens,
        "lenient": p.lenient,
        "normalize": p.normalize,
        "score_eos": p.score_eos,
        "variant": p.variant,
        "progress": verbose,
    }
    predictions: list[dict] = []
    seconds: dict[str, float] = {}
    for name in plan.models:
        start = time.perf_counter()
        if name == BASE and plan.train_run_dir is not None:
            with model.disable_adapter():  # same weights as a fresh base model (tested)
                predictions += score_examples(model, tokenizer, items, model_name=name, **kwargs)
        else:
            predictions += score_examples(model, tokenizer, items, model_name=name, **kwargs)
        seconds[name] = time.perf_counter() - start
        say(f"{name}: {len(plan.items)} examples in {seconds[name]:.1f} s")

    metrics = build_metrics(
        predictions,
        plan.tasks,
        settings={**_settings(plan), "max_length": max_length},
        run_name=p.run_name,
        bootstrap_samples=p.bootstrap_samples,
        seed=p.seed,
    )
    calibrated = None
    if p.calibration == "contextual":
        from .contextual_calibration import build_calibrated_metrics, score_item_priors

        priors = score_item_priors(
            model,
            tokenizer,
            plan.items,
            plan.models,
            normalize=p.normalize,
            score_eos=p.score_eos,
            batch_size=p.batch_size,
        )
        calibrated = build_calibrated_metrics(metrics, predictions, priors)
    with RunWriter(plan.run_dir, overwrite=p.overwrite) as tmp:
        _write_jsonl(tmp / "predictions.jsonl", predictions)
        write_json(tmp / "metrics.json", metrics)
        if calibrated is not None:  # beside the uncalibrated run, never instead of it
            _write_jsonl(tmp / "calibrated" / "predictions.jsonl", calibrated[1])
            write_json(tmp / "calibrated" / "metrics.json", calibrated[0])
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
        }
        write_json(tmp / "provenance.json", provenance(extra))
    figures = [plan.run_dir / "figures" / f.name for f in figures]
    return EvalResult(
        plan.run_dir,
        metrics,
        predictions,
        seconds,
        figures,
        calibrated[0] if calibrated is not None else None,
    )


def load_eval_run(run: str | os.PathLike) -> tuple[dict, list[dict]]:
    """(metrics, predictions) of a finished evaluation run, for redrawing figures or error analysis."""
    run_dir = resolve_run_dir(run)
    for name in ("metrics.json", "predictions.jsonl"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"evaluation run {run_dir} is incomplete: {name} is missing")
    return read_eval_metrics(run_dir / "metrics.json"), read_prediction_rows(run_dir / "predictions.jsonl")


__all__ = [
    "EvalItem",
    "EvalParams",
    "EvalPlan",
    "EvalResult",
    "build_eval_items",
    "build_eval_plan",
    "build_metrics",
    "evaluate_run",
    "load_eval_model",
    "load_eval_run",
    "score_comparison",
    "score_examples",
    "score_group_comparisons",
    "score_task_metrics",
]
