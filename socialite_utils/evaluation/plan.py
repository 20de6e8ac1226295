"""Evaluation planning: every input checked and every example's prompt built before a model is loaded.

``build_eval_plan(params)`` (step 1 of :func:`socialite_utils.evaluation.evaluate_run`) checks the data run,
train run, adapter, base model name and run name, and builds one :class:`EvalItem` per example. Re-exported
by :mod:`socialite_utils.evaluation`.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..data.assembly import load_data_run
from ..models import check_model_available, resolve_model
from ..params import FromMapping, Rule, check_params
from ..prompts import draw_shots, prompt_text, render_variant_prompt, variant_label_words
from ..registry import Task, load_all_suites, load_registry, task_names
from ..runs import (
    check_run_name,
    new_run_dir,
    read_json,
    resolve_run_dir,
)
from ..training.checkpoints import adapter_problem
from ..training.hub import download_hub_adapter, hub_base_model, is_hub_ref
from ..training.lora import IN_PROCESS_PRESETS
from .backends import check_backend

MODES = ("score", "generate")
EVAL_SPLITS = ("test", "validation")
NORMALIZATIONS = ("sum", "mean")
CALIBRATIONS = ("none", "contextual")  # contextual: Zhao et al. 2021, content-free priors divided out
BASE, TUNED = "base", "tuned"


# Ranges and choices of EvalParams (checked with the declared types by params.check_params).
EVAL_RULES = {
    "mode": Rule(choices=MODES),
    "split": Rule(choices=EVAL_SPLITS),
    "normalize": Rule(choices=NORMALIZATIONS),
    "calibration": Rule(choices=CALIBRATIONS),
    "few_shot_k": Rule(ge=0),
    "max_eval_per_task": Rule(ge=1),
    "batch_size": Rule(ge=1),
    "max_new_tokens": Rule(ge=1),
    "max_length": Rule(ge=2),
    "bootstrap_samples": Rule(ge=1),
    "variant": Rule(ge=0),
    "seed": Rule(ge=0),
}


@dataclass
class EvalParams(FromMapping):
    """Every knob of an evaluation run (notebook 03's parameters map 1:1 onto these fields)."""

    run_name: str
    data_run: str = "data-demo"  # notebook 01's output: a run name under runs/ or a path
    train_run: str | None = "train-demo"  # notebook 02's output, or hub:owner/name; None: the base model only
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
    # An earlier evaluation run of the same base model on the same prompts (its items digest must match) whose base
    # predictions are reused instead of scoring the base model again: a study scores its base model once.
    base_from: str | None = None
    overwrite: bool = False  # replace an existing evaluation run of the same name

    def __post_init__(self) -> None:
        self.tasks = task_names(self.tasks)  # "a" or "a,b" -> a list, never iterated letter by letter

    def validate(self) -> EvalParams:
        """Raise ValueError naming the first bad field; return self."""
        check_run_name(self.run_name)
        check_params(self, EVAL_RULES)  # declared types, ranges and choices; papermill strings coerced
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
    variant: int | None = None  # the prompt: None the registry's main prompt, i its variants[i]


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
    # hub:owner/name when the adapter came from the Hub (train_run_dir is then its copy in the kit's cache)
    train_ref: str | None = None

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
            f"train run: {self.train_ref + ' -> ' if self.train_ref else ''}"
            f"{self.train_run_dir or '- (base model only)'}",
            f"base model: {self.base_model}; models evaluated: {', '.join(self.models)}",
            f"mode: {self.params.mode}; few-shot k: {ks}; variant: {self.params.variant}",
            f"{len(self.items)} examples x {len(self.models)} model(s) from {len(per_task)} task(s): "
            + ", ".join(f"{t} {n}" for t, n in per_task.items()),
        ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def show_prompts(self, n_per_task: int = 1) -> str:
        """The first prompt(s) of every task exactly as the models will see them, with the gold answer."""

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

    if not params.train_run:
        name = str(params.base_model)
        _check_model_name(name, resolve_model)
        return None, name
    if is_hub_ref(params.train_run):
        return _check_hub_adapter(params.train_run, params.base_model)
    train_dir = resolve_run_dir(params.train_run)
    if not train_dir.is_dir():
        raise FileNotFoundError(
            f"train run {train_dir} does not exist (run notebook 02 first, fix train_run, write "
            "hub:owner/name for an adapter on the Hugging Face Hub, or set train_run=None and base_model=... "
            "to evaluate a base model only)"
        )
    adapter = train_dir / "adapter"
    full_model = (train_dir / "model" / "config.json").is_file()  # a peft="none" run: every weight trained
    if not full_model and not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(
            f"train run {train_dir} has no LoRA adapter: {adapter / 'adapter_config.json'} is missing "
            "(an interrupted training run? its checkpoints are in <run>.partial/)"
        )
    if not full_model and (problem := adapter_problem(adapter)):
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

    if trained_on in IN_PROCESS_PRESETS and not (train_dir / "base_model" / "config.json").is_file():
        raise FileNotFoundError(
            f"{train_dir / 'base_model'} is missing: a {trained_on!r} run must keep the base model it trained"
        )
    _check_model_name(trained_on, resolve_model)
    return train_dir, trained_on


def _check_hub_adapter(ref: str, base_model: str | None) -> tuple[Path, str]:
    """A Hub adapter (``hub:owner/name``) downloaded into the kit's cache, and its base model: ``base_model`` when
    given, else the one the repo names (:func:`socialite_utils.training.hub.hub_base_model`)."""
    repo_dir = download_hub_adapter(ref)
    name = base_model or hub_base_model(repo_dir, ref)
    if name in IN_PROCESS_PRESETS and not (repo_dir / "base_model" / "config.json").is_file():
        raise FileNotFoundError(
            f"train_run={ref!r}: the adapter was trained on {name!r} (random weights built in-process) and the "
            "repo has no base_model/ with those weights"
        )
    _check_model_name(name, resolve_model)
    return repo_dir, name


def _check_model_name(name: str, resolve_model: Any) -> None:

    try:
        resolve_model(name)
    except ValueError as e:
        raise ValueError(f"base_model: {e}") from None
    check_model_available(name)  # a hub id while offline and not cached: say so before anything loads


def _select_rows(rows: list[dict], params: EvalParams, source: Path) -> dict[str, list[dict]]:
    """Rows per task (data-run order), filtered to ``params.tasks`` and capped by a seeded subset. The rows are
    :func:`load_data_run`'s, each already checked by :func:`socialite_utils.schema.check_data_row`."""
    by_task: dict[str, list[dict]] = defaultdict(list)
    for lineno, row in enumerate(rows, start=1):
        if (
            row["task_type"] == "generation"
        ):  # rewriting tasks are scored by socialite_utils.studies.writing_eval
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
    for r in rows:  # each row's label and score: checked by the data-run reader (schema.check_data_row)
        if list(r["labels"]) != meta["labels"] or r["group"] != meta["group"]:
            raise ValueError(f"{source}: rows of task {task!r} disagree on labels/group (see id {r['id']})")
    return meta


def build_task_items(
    task: Task, rows: Sequence[dict], *, variant: int | None, shots: Sequence[dict], fmt: str | None = None
) -> list[EvalItem]:
    """One :class:`EvalItem` per row of one task, its prompt rendered from the registry: ``task``'s main prompt
    (``variant=None``) or ``task.variants[variant]``, with ``shots`` (already drawn) shown in the variant's words.

    ``rows`` are data-run rows (``text``, ``text_b``, ``labels``; ``prompt_format`` unless ``fmt`` names the
    format). Any variant, any number of shots: the evaluation (``EvalParams.variant``) and prompt sensitivity
    (:mod:`socialite_utils.analysis.sensitivity`) both build their items here.
    """
    labels = list(rows[0]["labels"]) if rows else list(task.labels)
    by_label = variant_label_words(task, variant)  # validates the variant first
    words = {lab: by_label.get(lab, lab) for lab in labels}
    to_label = {w: lab for lab, w in words.items()}
    items = []
    for r in rows:
        row_fmt = fmt or r.get("prompt_format") or ("chat" if isinstance(r.get("prompt"), list) else "paper")
        # Shots show the answer words the model is asked for (a variant may rename the labels).
        prompt = render_variant_prompt(
            task, r["text"], r.get("text_b"), variant=variant, fmt=row_fmt, shots=list(shots)
        )
        items.append(EvalItem(r, prompt, list(words.values()), to_label, len(shots), variant=variant))
    return items


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
    ``variant`` is asked for; then the prompt is rendered again (:func:`build_task_items`) with shots drawn
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
        variant_label_words(registry[task_name], variant)  # a bad variant is named before shots are drawn
        k = few_shot_k if few_shot_k is not None else int(rows[0].get("few_shot_k", 0))
        shots = draw_shots(pool_by_task[task_name], k, seed=seed, task_name=task_name, labels=labels)
        if k and len(shots) < k:
            notes.append(
                f"{task_name}: asked for {k} shots, the few-shot pool gave {len(shots)} "
                f"(pool has {len(pool_by_task[task_name])} rows)"
            )
        items += build_task_items(registry[task_name], rows, variant=variant, shots=shots)
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
        train_ref=params.train_run if is_hub_ref(params.train_run) else None,
    )
