"""Prompt sensitivity (notebook 04): the same examples re-scored (score mode) with the main prompt and each of the
task's registry ``variants``; macro-F1 per prompt and its spread (min, max, range, std) per task and model. Loads the
models of an evaluation run again (base, and the training run's adapter for "tuned")."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np

from .. import models as kit_models
from ..data.assembly import load_data_run
from ..evaluation.plan import EvalItem, build_task_items
from ..evaluation.predictions import compute_task_scores, score_examples
from ..evaluation.run import EvalRun, EvalRunError
from ..evaluation.truncation import fit_eval_items, model_context_length
from ..prompts import FORMATS, MAIN, draw_shots
from ..registry import Task, load_all_suites, load_registry
from ..runs import (
    read_json,
    resolve_run_ref,
)
from ..training import lora as training
from ..training.hub import locate_train_run
from ..training.lora import load_run_tokenizer


def load_eval_registry(ev: EvalRun, suite: str | None = None) -> dict[str, Task]:
    """The registry tasks of an evaluation run.

    Suite: ``suite`` if given, else ``suite`` in the eval run's params.json or settings, else in its data run's
    params.json, else the one suite that defines every task of the run. The run's label lists must match the
    registry's (a variant's label remap is keyed by them).
    """
    suites = load_all_suites()
    if suite is None:
        suite = ev.params.get("suite") or ev.settings.get("suite")
    if suite is None and ev.settings.get("data_run"):
        data_params = resolve_run_ref(ev.settings["data_run"], ev.run_dir.parent) / "params.json"
        if data_params.is_file():
            suite = read_json(data_params).get("suite")
    if suite is None:
        matches = [name for name, tasks in suites.items() if set(ev.tasks) <= set(tasks)]
        if len(matches) != 1:
            raise EvalRunError(
                f"cannot tell which task suite {ev.run_dir} used (suites defining all its tasks: {matches}); "
                "pass suite="
            )
        suite = matches[0]
    try:
        registry = load_registry(suite)  # a joined suite ("local+mine") too
    except KeyError:
        raise EvalRunError(
            f"{ev.run_dir} names suite {suite!r}, which the registry does not have ({sorted(suites)})"
        ) from None
    out = {}
    for task in ev.tasks:
        if task not in registry:
            raise EvalRunError(f"{ev.run_dir}: task {task!r} is not in suite {suite!r}")
        if list(registry[task].labels) != ev.labels(task):
            raise EvalRunError(
                f"{ev.run_dir}: task {task!r} was evaluated with labels {ev.labels(task)} but suite {suite!r} has "
                f"{registry[task].labels}"
            )
        out[task] = registry[task]
    return out


def select_sensitivity_examples(ev: EvalRun, max_per_task: int, seed: int = 0) -> dict[str, list[dict]]:
    """Up to ``max_per_task`` evaluated examples per task, the same for every model and prompt variant.

    Drawn per task with a seeded RNG, round-robin over gold labels so small samples still cover several classes.
    Each example: ``{"id", "task", "category", "group", "task_type", "text", "text_b", "gold", "gold_score"}``.
    """
    if max_per_task < 0:
        raise ValueError(f"max_per_task must be >= 0, got {max_per_task}")
    out: dict[str, list[dict]] = {}
    for task in ev.tasks:
        examples: dict[str, dict] = {}
        for r in sorted(ev.main_rows(task), key=lambda r: r["id"]):
            examples.setdefault(
                r["id"],
                {
                    "id": r["id"],
                    "task": task,
                    "category": r.get("category"),
                    "group": r.get("group"),
                    "task_type": r.get("task_type"),
                    "text": r["text"],
                    "text_b": r.get("text_b"),
                    "gold": r["gold"],
                    "gold_score": r.get("gold_score"),
                },
            )
        rng = random.Random(f"{seed}|{task}|sensitivity")
        by_gold: dict[str, list[dict]] = defaultdict(list)
        for ex in examples.values():
            by_gold[ex["gold"]].append(ex)
        order = [lab for lab in ev.labels(task) if by_gold.get(lab)]
        queues = {lab: rng.sample(by_gold[lab], len(by_gold[lab])) for lab in order}
        chosen: list[dict] = []
        while len(chosen) < max_per_task and any(queues.values()):
            for lab in order:
                if queues[lab] and len(chosen) < max_per_task:
                    chosen.append(queues[lab].pop())
        out[task] = chosen
    return out


def _task_shot_counts(ev: EvalRun) -> dict[str, int]:
    """k of each task's evaluated prompts (from its prediction rows; settings.few_shot_k may be a list)."""
    out: dict[str, int] = {}
    setting = ev.settings.get("few_shot_k")
    for task in ev.tasks:
        ks = {int(r.get("few_shot_k") or 0) for r in ev.main_rows(task)}
        if not ks and isinstance(setting, int):
            ks = {setting}
        if len(ks) > 1:
            raise EvalRunError(
                f"{ev.run_dir}: task {task!r} was evaluated with several few-shot k {sorted(ks)}"
            )
        out[task] = ks.pop() if ks else 0
    return out


def load_sensitivity_shots(ev: EvalRun, tasks: dict[str, Task]) -> dict[str, list[dict]]:
    """Few-shot examples per task for the tasks the run evaluated few-shot (empty lists for zero-shot).

    Drawn as the evaluation draws them whenever it re-renders prompts: ``draw_shots`` over the task's rows of the
    data run's ``fewshot_pool`` with the evaluation seed. Every prompt of the sensitivity step (main included)
    uses these same shots, so only the wording differs between prompts.
    """
    ks = _task_shot_counts(ev)
    if not any(ks.get(t) for t in tasks):
        return {t: [] for t in tasks}

    data_run = ev.settings.get("data_run")
    if not data_run:
        raise EvalRunError(
            f"{ev.run_dir}: the run is few-shot but its settings name no data_run to draw from"
        )
    pool = load_data_run(resolve_run_ref(data_run, ev.run_dir.parent))["fewshot_pool"]
    seed = int(ev.settings.get("seed") or 0)
    return {
        name: draw_shots(
            [r for r in pool if r["task"] == name],
            ks.get(name, 0),
            seed=seed,
            task_name=name,
            labels=task.labels,
        )
        for name, task in tasks.items()
    }


class EvalModels:
    """The evaluation's models, loaded once: the tuned adapter on the base model, base = adapter disabled."""

    def __init__(self, model: Any, tokenizer: Any, has_adapter: bool):
        self.model = model
        self.tokenizer = tokenizer
        self.has_adapter = has_adapter

    @contextmanager
    def use(self, name: str) -> Iterator[Any]:
        """Yield the model that plays ``name`` ("base" or "tuned")."""
        if name == "tuned":
            if not self.has_adapter:
                raise ValueError(
                    "no adapter loaded: the evaluation run has no train_run, so there is no tuned model"
                )
            yield self.model
        elif name == "base":
            # PEFT's disable_adapter also bypasses modules_to_save copies, so this is the untouched base model
            # (checked against a freshly loaded base in tests/test_analysis.py).
            with self.model.disable_adapter() if self.has_adapter else nullcontext():
                yield self.model
        else:
            raise ValueError(f"unknown model {name!r}; expected 'base' or 'tuned'")


def load_eval_models(ev: EvalRun, precision: Any | None = None) -> EvalModels:
    """Load the models an evaluation run scored, as evaluation does: the training run's adapter (``train_run``)
    on its base model, or the base model alone when the run has no train_run."""

    train_run = ev.settings.get("train_run")
    base_model = ev.settings.get("base_model")
    if train_run:
        run_dir = locate_train_run(train_run, ev.run_dir.parent)  # a run, or a Hub adapter's cached copy
        if not run_dir.is_dir():
            raise FileNotFoundError(
                f"training run {run_dir} named by {ev.run_dir}/metrics.json does not exist"
            )
        model, tokenizer = training.load_adapter_and_tokenizer(run_dir, base_model, precision=precision)
        return EvalModels(model, tokenizer, has_adapter=True)
    if not base_model:
        raise EvalRunError(f"{ev.run_dir}/metrics.json settings name neither train_run nor base_model")
    # tiny-random rebuilds its weights from the run's seed (its tokenizer is the committed one), exactly as
    # evaluation.load_eval_model does, so the base model is the one that was evaluated
    model, tokenizer = kit_models.load_model(
        base_model, precision=precision, seed=int(ev.settings.get("seed") or 0)
    )
    return EvalModels(model, tokenizer, has_adapter=False)


def load_eval_tokenizer(ev: EvalRun) -> Any:
    """The tokenizer the evaluation used (the training run's, else the base model's), for token lengths."""
    if ev.settings.get("train_run"):
        return load_run_tokenizer(locate_train_run(ev.settings["train_run"], ev.run_dir.parent))
    return load_eval_models(ev).tokenizer


def _example_row(ex: dict, task: Task, fmt: str) -> dict:
    """A sensitivity example (:func:`select_sensitivity_examples`) as the data-run row an :class:`EvalItem` holds."""
    fields = ("id", "task", "category", "group", "task_type", "text", "text_b")
    return {
        **{k: ex.get(k) for k in fields},
        "label": ex["gold"],
        "score": ex.get("gold_score"),
        "labels": list(task.labels),
        "prompt_format": fmt,
    }


def build_sensitivity_items(
    examples: dict[str, list[dict]],
    tasks: dict[str, Task],
    *,
    variants: Sequence[int] | None = None,
    fmt: str = "paper",
    shots: dict[str, list[dict]] | None = None,
) -> list[EvalItem]:
    """Evaluation items for every example x prompt (the main prompt, then each variant of ``variants``; None: all
    of the task's), built by the evaluation's item builder (:func:`socialite_utils.evaluation.plan.build_task_items`)
    with the same ``shots`` for every prompt of a task, so only the wording differs."""
    items: list[EvalItem] = []
    for name, exs in examples.items():
        task = tasks[name]
        rows = [_example_row(ex, task, fmt) for ex in exs]
        indices = list(range(len(task.variants))) if variants is None else list(variants)
        for v in [None, *indices]:
            items += build_task_items(task, rows, variant=v, shots=(shots or {}).get(name) or [])
    return items


def score_prompt_variants(
    model: Any,
    tokenizer: Any,
    examples: dict[str, list[dict]],
    tasks: dict[str, Task],
    *,
    model_name: str,
    variants: Sequence[int] | None = None,
    fmt: str = "paper",
    shots: dict[str, list[dict]] | None = None,
    batch_size: int = 16,
    normalize: str = "sum",
    eos: bool = False,
    max_length: int | None = None,
    progress: bool = False,
) -> list[dict]:
    """Score every example with the main prompt and each variant (score mode); rows in the predictions schema.

    The evaluation's own steps: items from :func:`build_sensitivity_items`, fitted into ``max_length`` tokens
    (None: the model's context length) by cutting the example's own text
    (:func:`socialite_utils.evaluation.truncation.fit_eval_items`), scored by
    :func:`socialite_utils.evaluation.predictions.score_examples`. So a row is the row the evaluation would write for that
    example, model and ``variant``.

    ``variants``: indices into each task's ``variants`` (None: all of them). A variant that renames labels is
    scored on its own words, mapped back to the canonical labels (``parsed``/``gold``/``probs`` are canonical);
    ``label_words`` records canonical label -> word shown in the prompt.
    """

    items = build_sensitivity_items(examples, tasks, variants=variants, fmt=fmt, shots=shots)
    max_length = max_length or model_context_length(model, tokenizer)
    items = fit_eval_items(items, tokenizer, max_length, mode="score", score_eos=eos)
    return score_examples(
        model,
        tokenizer,
        items,
        model_name=model_name,
        mode="score",
        batch_size=batch_size,
        normalize=normalize,
        score_eos=eos,
        progress=progress,
    )


def compute_sensitivity(rows: Sequence[dict], tasks: dict[str, Task]) -> dict[str, Any]:
    """Macro-F1 (percent, over the task's labels) per prompt and its spread, per task and model.

    Per task and model: ``{"n", "macro_f1": {"main": x, "variant 0": y, ...}, "min", "max", "range", "std",
    "mean", "flags"}``; ``std`` is the population std (ddof=0) over the prompts, main prompt included. Each
    prompt's macro-F1 is the evaluation's (:func:`socialite_utils.evaluation.predictions.compute_task_scores`).
    """

    groups: dict[tuple[str, str], dict[Any, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        groups[(r["task"], r["model"])][r["variant"]].append(r)
    out: dict[str, dict] = defaultdict(dict)
    for (task, model), by_variant in sorted(groups.items(), key=lambda kv: kv[0]):
        labels = tasks[task].labels
        scores, flags = {}, []
        for v in sorted(by_variant, key=lambda x: -1 if x is None else x):
            rep = compute_task_scores(by_variant[v], labels, tasks[task].type)
            scores[MAIN if v is None else f"variant {v}"] = rep["macro_f1"]
            flags += [f for f in rep["flags"] if f.startswith("single_class_gold") and f not in flags]
        values = np.array(list(scores.values()))
        out[task][model] = {
            "n": len(by_variant[None]) if None in by_variant else len(next(iter(by_variant.values()))),
            "macro_f1": scores,
            "min": float(values.min()),
            "max": float(values.max()),
            "range": float(values.max() - values.min()),
            "std": float(values.std()),
            "mean": float(values.mean()),
            "flags": flags,
        }
    return dict(out)


def score_sensitivity(
    ev: EvalRun,
    *,
    max_per_task: int,
    variants: Sequence[int] | None = None,
    batch_size: int = 16,
    seed: int = 0,
    suite: str | None = None,
    precision: Any | None = None,
    progress: bool = True,
) -> tuple[list[dict], dict[str, Any]]:
    """The whole prompt-sensitivity step: pick examples, load the run's models once, score every prompt variant
    with every model, summarise. Returns ``(rows, summary)``; ``max_per_task=0`` skips it (nothing is loaded).

    Prompt format, normalisation and few-shot k follow the evaluation's settings so the main-prompt scores are
    comparable with the evaluation run (in score mode they reproduce its predictions on these examples).
    """
    if max_per_task == 0:
        return [], {}
    fmt = ev.settings.get("prompt_format") or "paper"
    if fmt not in FORMATS:
        raise EvalRunError(
            f"{ev.run_dir}: prompt_format {fmt!r} cannot be re-rendered; expected one of {FORMATS}"
        )
    tasks = load_eval_registry(ev, suite)
    examples = select_sensitivity_examples(ev, max_per_task, seed=seed)
    shots = load_sensitivity_shots(ev, tasks)
    loaded = load_eval_models(ev, precision=precision)
    rows: list[dict] = []
    for name in ev.models:
        with loaded.use(name) as model:
            rows += score_prompt_variants(
                model,
                loaded.tokenizer,
                examples,
                tasks,
                model_name=name,
                variants=variants,
                fmt=fmt,
                shots=shots,
                batch_size=batch_size,
                normalize=ev.settings.get("normalize") or "sum",
                eos=bool(ev.settings.get("score_eos", ev.settings.get("eos", False))),
                max_length=ev.settings.get("max_length"),  # the evaluation's: same prompts, same cuts
                progress=progress,
            )
    return rows, compute_sensitivity(rows, tasks)


def sensitivity_table(summary: dict):
    """One row per task x model: macro-F1 per prompt and the spread."""
    import pandas as pd

    records = []
    for task, per_model in summary.items():
        for model, s in per_model.items():
            records.append(
                {
                    "task": task,
                    "model": model,
                    "n": s["n"],
                    **s["macro_f1"],
                    "min": s["min"],
                    "max": s["max"],
                    "range": s["range"],
                    "std": s["std"],
                }
            )
    return pd.DataFrame.from_records(records)


__all__ = [
    "MAIN",
    "build_sensitivity_items",
    "EvalModels",
    "load_eval_models",
    "load_eval_registry",
    "load_eval_tokenizer",
    "load_sensitivity_shots",
    "compute_sensitivity",
    "score_prompt_variants",
    "score_sensitivity",
    "select_sensitivity_examples",
    "sensitivity_table",
]
