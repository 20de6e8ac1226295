"""Notebook 06's experiment: specialist or generalist? (Shi et al., EMNLP 2023, on the social tasks).

A grid of task rows per seen task x generalist ratio x seed. Every cell is three ordinary runs made by the same
functions as notebooks 01-03 (``assembly.build_data`` with a :class:`mixing.MixtureSpec`, ``training.train_lora``,
``evaluation.evaluate_run``) plus the response NLL of the base model and the adapter on the held-out generalist
slice (:func:`~socialite_utils.evaluation.scoring.score_response_nll`). Runs live in ``runs/<run_name>/cells/`` (``data-<cell>``,
``train-<cell>``, ``eval-<cell>``, ``retention-<cell>.json``); a cell whose runs exist is reused, so an interrupted
grid continues where it stopped.

Design choices (stated in the outputs):
* the social-task rows and the test rows come from one data seed (``data_seed``) in every cell, so every cell is
  scored on the same test examples and cells can be compared with paired tests;
* a cell's seed sets the training seed (LoRA init, order) and the generalist draw; the held-out slice has its
  own fixed seed, so every cell scores the same held-out rows.

:func:`evaluate_findings` turns the per-example predictions into the paper's four findings, each judged by the one
rule of :mod:`socialite_utils.claims` (SUPPORTED / CONTRADICTED / INCONCLUSIVE from the 95% interval of the claimed
effect) on a paired bootstrap of the mean macro-F1 over tasks, stratified by task, the same test examples on both
sides (:func:`socialite_utils.claims.paired_bootstrap_mean_over_tasks`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import claims as C
from .. import metrics as M
from ..claims import Verdict, format_claim
from ..data.assembly import build_data, write_data_run
from ..data.mixing import MixtureSpec, load_general_heldout
from ..evaluation.run import EvalParams, evaluate_run
from ..evaluation.scoring import score_response_nll
from ..params import ParamError, Rule, check_params
from ..plotting import plot_mixing_curves, plot_mixing_gain, plot_specialisation_vs_retention, save_figure
from ..registry import load_registry, select_tasks
from ..runs import (
    RunExistsError,
    check_run_name,
    read_json,
    resolve_run_dir,
    run_dir_for,
    runs_root_at,
    write_json,
)
from ..schema import read_data_rows, read_eval_metrics, read_prediction_rows
from ..training.checkpoints import continue_or_clear_partial
from ..training.lora import TrainParams, load_adapter, load_run_tokenizer, partial_dir_for, train_lora

SUPPORTED, CONTRADICTED, INCONCLUSIVE = Verdict.SUPPORTED, Verdict.CONTRADICTED, Verdict.INCONCLUSIVE
# Categories read as needing understanding and reasoning (irony/sarcasm need pragmatic inference; empathy and stance
# need reading a writer's perspective) and as factual knowledge (trustworthiness: clickbait, rumours, hoaxes).
REASONING_CATEGORIES = ("humor_sarcasm", "other_social_factors")
FACTUAL_CATEGORIES = ("trustworthiness",)
ALPHA = 0.05
# What every cell of one study must share (a rerun with other values would mix two experiments in one table).
FIXED_PER_STUDY = (
    "suite", "tasks", "data_dir", "general_licence", "general_heldout", "max_eval_per_task", "prompt_format",
    "data_seed", "base_model", "train", "eval_mode", "smoke",
)  # fmt: skip


# Ranges and choices of MixingStudyParams (checked with the declared types by params.check_params).
STUDY_RULES = {
    "task_rows": Rule(ge=1),
    "general_ratios": Rule(ge=0, le=1000),
    "seeds": Rule(ge=0),
    "general_licence": Rule(choices=("any", "commercial")),
    "general_heldout": Rule(ge=1),  # the retained-ability NLL needs held-out rows
    "max_eval_per_task": Rule(ge=1),
    "data_seed": Rule(ge=0),
    "eval_mode": Rule(choices=("score", "generate")),
    "eval_batch_size": Rule(ge=1),
    "bootstrap_samples": Rule(ge=1),
    "nll_max_length": Rule(ge=2),
    "suite": Rule(nonempty=True),
    "base_model": Rule(nonempty=True),
}
# Significant digits of a ratio in a cell name: two ratios that agree to this many digits are refused.
RATIO_DIGITS = 6


@dataclass
class MixingStudyParams:
    """Every knob of notebook 06 (its parameters cell maps 1:1 onto these fields)."""

    run_name: str = "mixing-demo"
    suite: str = "local"
    tasks: list[str] | None = (
        None  # None: every task of the suite (seen ones are trained, related ones tested)
    )
    data_dir: str | None = None
    task_rows: list[int] = field(default_factory=lambda: [16, 48, 144])
    general_ratios: list[float] = field(default_factory=lambda: [0, 1, 3])
    seeds: list[int] = field(default_factory=lambda: [0])
    general_licence: str = "any"
    general_heldout: int = 200
    max_eval_per_task: int | None = 60
    prompt_format: str = "paper"
    data_seed: int = 0
    base_model: str = "smollm2-135m"
    train: dict[str, Any] = field(
        default_factory=dict
    )  # more TrainParams fields (learning_rate, max_steps, ...)
    eval_mode: str = "score"
    eval_batch_size: int = 16
    bootstrap_samples: int = 1000
    nll_max_length: int = 512
    reasoning_categories: list[str] = field(default_factory=lambda: list(REASONING_CATEGORIES))
    factual_categories: list[str] = field(default_factory=lambda: list(FACTUAL_CATEGORIES))
    smoke: bool = False
    resume: bool = True  # continue an existing study of this name (False: an existing one is refused)

    def validate(self) -> MixingStudyParams:
        """Raise ValueError naming the bad parameter; return self. Every value is checked here, before anything is
        written: the study's own fields (declared types and ranges), the grid, and the training and evaluation
        settings every cell will use."""
        check_run_name(self.run_name)
        check_params(self, STUDY_RULES)
        for name in ("task_rows", "general_ratios", "seeds"):
            value = getattr(self, name)
            if not value:
                raise ParamError(f"MixingStudyParams.{name} must be a non-empty list, got {value!r}")
            if len(set(value)) != len(value):
                raise ParamError(f"MixingStudyParams.{name} has duplicates: {value}")
        names = [cell_name(0, r, 0) for r in self.general_ratios]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise ParamError(
                f"MixingStudyParams.general_ratios {self.general_ratios}: ratios that differ only beyond "
                f"{RATIO_DIGITS} significant digits share a cell name ({', '.join(clash)}); use clearly different ratios"
            )
        if 0 not in self.general_ratios:
            raise ValueError(
                f"general_ratios {self.general_ratios} needs 0: the specialist every gain is measured against"
            )

        known = {f for f in TrainParams.__dataclass_fields__} - {"run_name", "data_run", "base_model", "seed"}
        unknown = sorted(set(self.train) - known)
        if unknown:
            raise ParamError(f"train has unknown TrainParams field(s) {unknown}; known: {sorted(known)}")
        # the settings every cell trains and evaluates with, checked now (coerced values kept)
        try:  # an unknown suite or task is named now, not after the first cell ran
            select_tasks(load_registry(self.suite), self.tasks)
        except KeyError as e:
            raise ParamError(e.args[0] if e.args else str(e)) from None
        tp = TrainParams(run_name="cell", base_model=self.base_model, **self.train).validate()
        self.train = {k: getattr(tp, k) for k in self.train}
        EvalParams(run_name="cell", train_run="cell", mode=self.eval_mode, batch_size=self.eval_batch_size,
                   max_eval_per_task=self.max_eval_per_task, bootstrap_samples=self.bootstrap_samples).validate()  # fmt: skip
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> MixingStudyParams:
        """From notebook 06's parameters (e.g. its ``globals()``): the study's own fields, ``seed`` as ``data_seed``,
        and every TrainParams field given (learning_rate, max_steps, ...) into ``train``. In smoke mode only
        ``max_steps`` is passed on: the rest comes from ``TrainParams.for_smoke``."""

        own = {k: values[k] for k in cls.__dataclass_fields__ if k in values and k != "train"}
        if "seed" in values:
            own["data_seed"] = values["seed"]
        train_fields = set(TrainParams.__dataclass_fields__) - {
            "run_name",
            "data_run",
            "base_model",
            "seed",
            "overwrite",
            "resume",  # the study's own: each cell's training resumes when it has a checkpoint
        }
        train = {k: values[k] for k in sorted(train_fields) if k in values}
        if own.get("smoke"):
            train = {k: v for k, v in train.items() if k == "max_steps"}
        return cls(**own, train=train)


def cell_name(task_rows: int, ratio: float, seed: int) -> str:
    """``n48-r1-s0``: task rows per task, generalist ratio (to :data:`RATIO_DIGITS` significant digits), seed."""
    return f"n{task_rows}-r{ratio:.{RATIO_DIGITS}g}-s{seed}"


def build_grid(params: MixingStudyParams) -> list[dict[str, Any]]:
    """The grid's cells in run order (seed, then task rows, then ratio), each ``{cell, task_rows, general_ratio, seed}``."""
    return [
        {"cell": cell_name(n, r, s), "task_rows": n, "general_ratio": r, "seed": s}
        for s in params.seeds
        for n in params.task_rows
        for r in params.general_ratios
    ]


# ---------------------------------------------------------------- one cell


def cell_mixture(params: MixingStudyParams, cell: dict) -> MixtureSpec:
    """The mixture a grid cell's data run is built with: the cell's ratio and seed (the generalist draw), the
    study's licence filter and held-out size (the same held-out rows in every cell)."""
    return MixtureSpec(
        general_ratio=cell["general_ratio"],
        general_licence=params.general_licence,
        general_heldout=params.general_heldout,
        draw_seed=cell["seed"],
    ).validate()


def _build_cell_data(params: MixingStudyParams, cell: dict, name: str) -> None:

    mixture = cell_mixture(params, cell)
    data = build_data(
        select_tasks(load_registry(params.suite), params.tasks),
        data_dir=params.data_dir,
        max_train_per_task=cell["task_rows"],
        max_eval_per_task=params.max_eval_per_task,
        prompt_format=params.prompt_format,
        seed=params.data_seed,
        mixture=mixture,
    )
    write_data_run(name, data, params={"suite": params.suite, "mixing_cell": cell})


def _train_params(params: MixingStudyParams, cell: dict) -> Any:

    tp = TrainParams(
        run_name=f"train-{cell['cell']}", data_run=f"data-{cell['cell']}", base_model=params.base_model
    )
    if params.smoke:
        tp = tp.for_smoke()
    return replace(tp, seed=cell["seed"], **params.train).validate()


def _eval_params(params: MixingStudyParams, cell: dict) -> Any:

    ep = EvalParams(
        run_name=f"eval-{cell['cell']}",
        data_run=f"data-{cell['cell']}",
        train_run=f"train-{cell['cell']}",
        mode=params.eval_mode,
        batch_size=params.eval_batch_size,
        max_eval_per_task=params.max_eval_per_task,
        bootstrap_samples=params.bootstrap_samples,
        seed=0,  # the same evaluated examples in every cell
    )
    return ep.for_smoke() if params.smoke else ep


def _heldout_digest(rows: list[dict], max_length: int) -> str:
    payload = json.dumps(
        [[r["id"], r["prompt"], r["completion"]] for r in rows] + [max_length], sort_keys=True
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def score_retention(
    model: Any, tokenizer: Any, data_run: str, *, max_length: int, base: dict | None = None
) -> dict[str, Any]:
    """Response NLL per token on the data run's held-out generalist slice: the base model (adapter disabled) and
    the adapter. ``base``: an earlier cell's retention record; its base-model NLL is reused when it was scored on
    the same held-out rows (``heldout_digest``), since the base model does not change between cells."""

    rows = load_general_heldout(data_run)
    digest = _heldout_digest(rows, max_length)
    out = {"n_rows": len(rows), "heldout_digest": digest}
    if base is not None and base.get("heldout_digest") == digest:
        out["base"] = dict(base["base"])
    else:
        with model.disable_adapter():
            out["base"] = score_response_nll(model, tokenizer, rows, max_length=max_length)
        out["base"].pop("per_row")
    out["tuned"] = score_response_nll(model, tokenizer, rows, max_length=max_length)
    out["tuned"].pop("per_row")
    return out


def _earlier_cell(cells_dir: Path, name: str) -> str | None:
    """A finished cell other than ``name`` (its evaluation and retention written), to reuse the base model's scores."""
    for metrics in sorted(cells_dir.glob("eval-*/metrics.json")):
        other = metrics.parent.name.removeprefix("eval-")
        if other != name and (cells_dir / f"retention-{other}.json").is_file():
            return other
    return None


def _evaluate_cell(ep: Any, cells_dir: Path, earlier: str | None, model_tok: Any) -> None:
    """The cell's evaluation, its base-model predictions reused from ``earlier`` (every cell is scored on the same
    test rows); when the earlier run's settings or items differ (``load_reused_base``'s ValueError), the base model
    is scored here."""
    if earlier is not None:
        try:
            evaluate_run(replace(ep, base_from=str(cells_dir / f"eval-{earlier}")), model_and_tokenizer=model_tok,
                         verbose=False)  # fmt: skip
            return
        except ValueError as e:
            if not str(e).startswith("base_from="):
                raise
    evaluate_run(ep, model_and_tokenizer=model_tok, verbose=False)


def run_cell(params: MixingStudyParams, cell: dict, cells_dir: Path, *, log=print) -> dict[str, Any]:
    """Data, adapter, evaluation and retention for one cell under ``cells_dir``; each existing run is reused, an
    interrupted training run continues from its newest complete checkpoint (or starts again when it was killed
    before its first one)."""

    name = cell["cell"]
    done = {"data": False, "train": False, "eval": False, "retention": False}
    retention_path = cells_dir / f"retention-{name}.json"
    with runs_root_at(cells_dir):
        if not (cells_dir / f"data-{name}").is_dir():
            _build_cell_data(params, cell, f"data-{name}")
            done["data"] = True
        model_tok = None
        if not (cells_dir / f"train-{name}").is_dir():
            tp = _train_params(params, cell)
            # an interrupted cell continues from its newest checkpoint (the kit's resume checks the params and rows)
            resume = continue_or_clear_partial(partial_dir_for(cells_dir / tp.run_name), log=log)
            res = train_lora(replace(tp, resume=resume), verbose=False)
            model_tok = (res.model, res.tokenizer)
            done["train"] = True
        earlier = _earlier_cell(cells_dir, name)  # the base model is scored once per study, not once per cell
        if not (cells_dir / f"eval-{name}" / "metrics.json").is_file():
            _evaluate_cell(_eval_params(params, cell), cells_dir, earlier, model_tok)
            done["eval"] = True
        if not retention_path.is_file():
            if model_tok is None:
                model_tok = (load_adapter(f"train-{name}"), load_run_tokenizer(f"train-{name}"))
            base = read_json(cells_dir / f"retention-{earlier}.json") if earlier else None
            ret = score_retention(*model_tok, f"data-{name}", max_length=params.nll_max_length, base=base)
            tmp = retention_path.with_suffix(".json.tmp")
            write_json(tmp, {**cell, **ret})
            os.replace(tmp, retention_path)
            done["retention"] = True
    ran = [k for k, v in done.items() if v]
    log(f"[{name}] " + (f"ran: {', '.join(ran)}" if ran else "reused (all runs exist)"))
    return {**cell, "ran": ran}


def run_grid(params: MixingStudyParams, *, log=print) -> list[dict[str, Any]]:
    """Every cell of the grid (existing ones reused); writes ``runs/<run_name>/study_params.json``. With
    ``resume=False`` an existing study of the same name is refused instead of continued."""
    params.validate()
    study_dir = run_dir_for(params.run_name)
    if study_dir.exists() and not params.resume:
        raise RunExistsError(
            f"{study_dir} exists; set resume=True to continue it (finished cells are reused) or choose another "
            "run_name"
        )
    cells_dir = study_dir / "cells"
    saved = study_dir / "study_params.json"
    if saved.is_file():
        before = read_json(saved)
        changed = [k for k in FIXED_PER_STUDY if before.get(k) != params.to_dict()[k]]
        if changed:
            raise ValueError(
                f"{saved} was written with other {changed}: reusing its cells would mix two experiments; "
                "choose another run_name (the grid lists may grow: new cells are added)"
            )
    cells_dir.mkdir(parents=True, exist_ok=True)
    write_json(saved, params.to_dict())
    return [run_cell(params, cell, cells_dir, log=log) for cell in build_grid(params)]


# ---------------------------------------------------------------- results


def _label_prior(data_dir: Path) -> dict[str, str]:
    """task -> the most frequent train label (related tasks: in the few-shot pool); ties: canonical order."""
    prior = {}
    for split in ("train", "fewshot_pool"):
        by_task: dict[str, Counter] = {}
        labels: dict[str, list[str]] = {}
        for r in read_data_rows(data_dir / "data" / f"{split}.jsonl"):
            if r.get("label") is not None and r["task"] not in prior:
                by_task.setdefault(r["task"], Counter())[r["label"]] += 1
                labels[r["task"]] = r["labels"]
        for task, counts in by_task.items():
            prior[task] = max(labels[task], key=lambda lab, c=counts: c.get(lab, 0))
    return prior


def collect_results(params: MixingStudyParams) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(results, aggregates, predictions) of every finished cell.

    results: one row per cell x task (macro-F1 of the adapter with its CI, n, the base model's, the label-prior
    baseline's, and the cell's held-out NLLs); aggregates: cell x scope (seen, related, each category) mean
    macro-F1 over tasks with its test-example CI and the mean label-prior (majority) floor over the scope's tasks
    (``majority_macro_f1``); predictions: the adapter's per-example predictions.
    """
    cells_dir = resolve_run_dir(params.run_name) / "cells"
    res_rows, agg_rows, pred_rows = [], [], []
    for cell in build_grid(params):
        name = cell["cell"]
        eval_dir, ret_path = cells_dir / f"eval-{name}", cells_dir / f"retention-{name}.json"
        if not (eval_dir / "metrics.json").is_file() or not ret_path.is_file():
            continue
        metrics = read_eval_metrics(
            eval_dir,
            fields=("models", "tasks", "groups", "categories"),
            task_fields=("category", "group", "labels", "models"),
            model_fields=("n", "macro_f1", "macro_f1_ci"),
        )
        ret = read_json(ret_path)
        nll = {"nll_base": ret["base"]["nll_per_token"], "nll_tuned": ret["tuned"]["nll_per_token"]}
        prior = _label_prior(cells_dir / f"data-{name}")
        preds = read_prediction_rows(
            eval_dir / "predictions.jsonl",
            fields=("model", "task", "category", "group", "id", "gold", "parsed"),
        )
        preds = [p for p in preds if p["model"] == "tuned"]
        by_task: dict[str, list[dict]] = {}
        for p in preds:
            by_task.setdefault(p["task"], []).append(p)
            fields = ("task", "category", "group", "id", "gold", "parsed")
            pred_rows.append(
                {**cell, **{k: p[k] for k in fields}, "labels": metrics["tasks"][p["task"]]["labels"]}
            )
        floors = {}  # task -> the majority floor: macro-F1 of always answering the task's most frequent label
        for task, t in metrics["tasks"].items():
            tuned, base = t["models"]["tuned"], t["models"]["base"]
            gold = [p["gold"] for p in by_task[task]]
            prior_f1 = (
                M.macro_f1(gold, [prior.get(task)] * len(gold), t["labels"]) if task in prior else math.nan
            )
            floors[task] = prior_f1
            res_rows.append(
                {**cell, "task": task, "category": t["category"], "group": t["group"], "n": tuned["n"],
                 "macro_f1": tuned["macro_f1"], "ci_low": tuned["macro_f1_ci"][0], "ci_high": tuned["macro_f1_ci"][1],
                 "base_macro_f1": base["macro_f1"], "label_prior_macro_f1": prior_f1, **nll}
            )  # fmt: skip
        for scope_kind, blocks in (("group", metrics["groups"]), ("category", metrics["categories"])):
            for scope, block in blocks.items():
                b = block["tuned"]
                ci = b.get("macro_over_tasks_example_ci") or [math.nan, math.nan]
                # the majority floor of the scope: mean over its tasks (nan when a task has no train label)
                floor = [floors.get(t, math.nan) for t in b.get("tasks", [])]
                agg_rows.append(
                    {**cell, "scope_kind": scope_kind, "scope": scope, "macro_f1": b["macro_over_tasks"],
                     "ci_low": ci[0], "ci_high": ci[1], "n_tasks": b["n_tasks"],
                     "majority_macro_f1": float(np.mean(floor)) if floor else math.nan, **nll}
                )  # fmt: skip
    return pd.DataFrame(res_rows), pd.DataFrame(agg_rows), pd.DataFrame(pred_rows)


# ---------------------------------------------------------------- findings


_SEP = "\x1f"


def _encode(columns: Sequence[Sequence[Any]]) -> list[str]:
    """One string per test example holding its predictions in every compared configuration (columns)."""
    return [_SEP.join(str(v) for v in row) for row in zip(*columns, strict=True)]


def _decode(encoded: Sequence[str]) -> list[list[Any]]:
    rows = [e.split(_SEP) for e in encoded]
    return [[None if v == "None" else v for v in col] for col in zip(*rows, strict=True)]


def _configs_f1(labels: list[str], halves: bool = False):
    """metric(gold, encoded) of one task = the mean over the encoded configurations of its macro-F1 (over
    ``labels``); with ``halves``, the mean over the first half of the configurations minus the mean over the second
    half (a gain)."""

    def fn(gold, encoded):
        scores = [M.macro_f1(gold, col, labels) for col in _decode(encoded)]
        if not halves:
            return float(np.mean(scores))
        k = len(scores) // 2
        return float(np.mean(scores[:k]) - np.mean(scores[k:]))

    return fn


def _bootstrap(gold, enc_a, enc_b, labels, *, halves=False, n_boot: int, seed: int) -> C.BootstrapResult:
    """Paired bootstrap of the mean over tasks of metric(A) - metric(B), each task's test examples resampled on
    their own (:func:`socialite_utils.claims.paired_bootstrap_mean_over_tasks`); ``gold`` entries are
    ``task\x1flabel``, ``enc_a`` / ``enc_b`` the encoded configurations of each example."""
    a: dict[str, tuple[list, list]] = {}
    b: dict[str, tuple[list, list]] = {}
    for g, x, y in zip(gold, enc_a, enc_b, strict=True):
        task, label = g.split(_SEP, 1)
        a.setdefault(task, ([], []))
        b.setdefault(task, ([], []))
        a[task][0].append(label)
        a[task][1].append(x)
        b[task][0].append(label)
        b[task][1].append(y)
    metric = {t: _configs_f1(labels[t], halves) for t in a}
    return C.paired_bootstrap_mean_over_tasks(a, b, metric, B=n_boot, seed=seed)


def _result_fields(res: C.BootstrapResult, claim: C.Claim) -> dict:
    """The numbers of a finding: ``delta``, ``ci``, ``p_value``, ``metric_a``, ``metric_b``, sizes, per task."""
    return {
        "delta": res.effect,
        "ci": list(res.ci),
        "p_value": res.p_value,
        "metric_a": res.metric_a,
        "metric_b": res.metric_b,
        "B": res.B,
        "n_examples": res.n_examples,
        "n_tasks": res.n_tasks,
        "comparison": claim.comparison,
        "line": format_claim(claim),
        "per_task": claim.to_dict()["per_task"],
        "task_count": claim.to_dict()["task_count"],
    }


def _paired_sets(preds: pd.DataFrame, tasks: set[str], sizes: Sequence[int] | None = None):
    """(gold, mixed, specialist, configurations): one entry per test example of ``tasks``; ``mixed`` holds its
    predictions in every (task rows, ratio > 0, seed) cell, ``specialist`` in the matching (task rows, 0, seed)
    cell, column by column (see :func:`_encode`). Resampling these entries resamples test examples, so the
    comparisons of one example move together (no pseudo-replication across ratios and seeds)."""
    p = preds[preds["task"].isin(tasks)]
    if sizes is not None:
        p = p[p["task_rows"].isin(sizes)]
    parsed = {(n, r, s, i): v for n, r, s, i, v in p[["task_rows", "general_ratio", "seed", "id", "parsed"]].itertuples(index=False)}  # fmt: skip
    cells = set(zip(p["task_rows"], p["general_ratio"], p["seed"], strict=True))
    configs = sorted((n, r, s) for n, r, s in cells if r > 0 and (n, 0, s) in cells)
    examples = p.drop_duplicates("id")[["task", "id", "gold"]]
    keep = [
        (t, i, g)
        for t, i, g in examples.itertuples(index=False)
        if all((n, r, s, i) in parsed and (n, 0, s, i) in parsed for n, r, s in configs)
    ]
    if not configs or not keep:
        return [], [], [], []
    gold = [f"{t}{_SEP}{g}" for t, _, g in keep]
    mixed = [[parsed[(n, r, s, i)] for _, i, _ in keep] for n, r, s in configs]
    spec = [[parsed[(n, 0, s, i)] for _, i, _ in keep] for n, r, s in configs]
    return gold, mixed, spec, configs


def _verdict(ci: Sequence[float], expect: int) -> str:
    """The one rule (:func:`socialite_utils.claims.verdict_from_interval`): SUPPORTED when the interval of the
    effect excludes 0 on the expected side, CONTRADICTED when it excludes 0 on the other, INCONCLUSIVE otherwise."""
    return C.verdict_from_interval(ci[0], ci[1], expect)


def _examples_note(n: int, configs: list) -> str:
    return f"{n} paired test examples, each compared in {len(configs)} (task rows, ratio, seed) cell(s)"


def _gain_finding(claim: str, preds, labels, tasks: set[str], expect: int, *, n_boot: int, seed: int) -> dict:
    if not tasks:
        return {"claim": claim, "verdict": INCONCLUSIVE, "evidence": "no evaluated task of this kind"}
    gold, mixed, spec, configs = _paired_sets(preds, tasks)
    if not gold:
        return {
            "claim": claim,
            "verdict": INCONCLUSIVE,
            "evidence": "no cell with generalist data (ratio > 0)",
        }
    res = _bootstrap(gold, _encode(mixed), _encode(spec), labels, n_boot=n_boot, seed=seed)
    judged = C.judge(
        claim, "generalist ratio > 0 vs 0 (same task rows and seed)", res, direction=expect, metric="macro-F1"
    )
    parts = [_examples_note(len(gold), configs), f"tasks {sorted(tasks)}"]
    if judged.task_count is not None:
        parts.append(judged.task_count.describe())
    return {"claim": claim, "verdict": _verdict(res.ci, expect), "evidence": "; ".join(parts),
            **_result_fields(res, judged)}  # fmt: skip


def _scarcity_finding(claim: str, preds, labels, seen: set[str], *, n_boot: int, seed: int) -> dict:
    sizes = sorted(preds["task_rows"].unique())
    if len(sizes) < 2:
        return {"claim": claim, "verdict": INCONCLUSIVE, "evidence": "needs at least two task-data sizes"}
    g_small, m_small, s_small, c_small = _paired_sets(preds, seen, [sizes[0]])
    g_large, m_large, s_large, c_large = _paired_sets(preds, seen, [sizes[-1]])
    if not g_small or g_small != g_large or len(c_small) != len(c_large):
        return {"claim": claim, "verdict": INCONCLUSIVE,
                "evidence": "the smallest and largest task-data sizes were not scored on the same examples "
                            "with the same ratios and seeds"}  # fmt: skip
    res = _bootstrap(
        g_small,
        _encode(m_small + s_small),
        _encode(m_large + s_large),
        labels,
        halves=True,
        n_boot=n_boot,
        seed=seed,
    )
    judged = C.judge(
        claim,
        f"gain of generalist data at {sizes[0]} task rows minus the gain at {sizes[-1]}",
        res,
        metric="macro-F1",
    )
    evidence = (
        f"gains {res.metric_a:+.1f} (at {sizes[0]}) vs {res.metric_b:+.1f} (at {sizes[-1]}); seen tasks, "
        + _examples_note(len(g_small), c_small)
    )
    return {"claim": claim, "verdict": _verdict(res.ci, +1), "evidence": evidence,
            **_result_fields(res, judged)}  # fmt: skip


def evaluate_findings(
    results: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    reasoning_categories: Sequence[str] = REASONING_CATEGORIES,
    factual_categories: Sequence[str] = FACTUAL_CATEGORIES,
    bootstrap_samples: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The paper's four findings, each ``{"claim", "verdict", "evidence", "line", "delta", "ci", "p_value", ...}``
    with a paired bootstrap of the mean macro-F1 over tasks, stratified by task (generalist ratio > 0 against 0 at
    the same task rows and seed, same test examples), and the Holm-corrected per-task count.

    Verdicts by the one rule (:func:`socialite_utils.claims.verdict_from_interval`): SUPPORTED when the 95% interval
    of the effect excludes 0 in the predicted direction, CONTRADICTED when it excludes 0 in the other, INCONCLUSIVE
    when it contains 0. A caveat names the cells in which the adapters do not beat the label-prior baseline
    (predicting every task's most frequent training label), cell by cell.
    """
    if results.empty or predictions.empty:
        raise ValueError("no finished cells: run the grid first")
    labels = _task_labels(predictions)
    meta = results.drop_duplicates("task").set_index("task")
    seen = set(meta.index[meta["group"] == "seen"])
    reasoning = set(meta.index[meta["category"].isin(reasoning_categories)])
    factual = set(meta.index[meta["category"].isin(factual_categories)])
    kw = {"n_boot": bootstrap_samples, "seed": seed}
    findings = [
        _gain_finding("1. generalist data helps when the target coverage is broad (all seen tasks, every "
                      "category)", predictions, labels, seen, +1, **kw),
        _scarcity_finding("2. the gain is largest when task-specific data is scarce", predictions, labels, seen, **kw),
        _gain_finding("3. it helps tasks that need understanding and reasoning "
                      f"({', '.join(reasoning_categories)})", predictions, labels, reasoning, +1, **kw),
        _gain_finding("4. for factual-knowledge tasks it can hurt "
                      f"({', '.join(factual_categories)})", predictions, labels, factual, -1, **kw),
    ]  # fmt: skip
    # judged on each finding's own tasks: the seen tasks' label prior can be close where the related tasks' is not
    for f, tasks in zip(findings, (seen, seen, reasoning, factual), strict=True):
        f["caveat"] = label_prior_caveat(results[results["task"].isin(tasks)])
    return findings


def _task_labels(predictions: pd.DataFrame) -> dict[str, list[str]]:
    """task -> its label set: the predictions' ``labels`` column when present, else the gold labels seen."""
    if "labels" in predictions.columns:
        return {t: list(g["labels"].iloc[0]) for t, g in predictions.groupby("task")}
    return {t: sorted(set(g["gold"])) for t, g in predictions.groupby("task")}


def label_prior_caveat(results: pd.DataFrame, margin: float = 1.0) -> str | None:
    """A warning naming every cell whose adapter's mean macro-F1 over tasks is not above the label-prior
    baseline's by more than ``margin`` points (same test rows), or None. Judged per cell, not on the mean over
    cells: a few good cells would hide cells that learned nothing."""
    r = results.dropna(subset=["label_prior_macro_f1"])
    if r.empty:
        return None
    by_cell = r.groupby("cell", sort=False)[["macro_f1", "label_prior_macro_f1"]].mean()
    weak = by_cell[by_cell["macro_f1"] <= by_cell["label_prior_macro_f1"] + margin]
    if weak.empty:
        return None
    cells = ", ".join(
        f"{cell} ({row.macro_f1:.1f} vs {row.label_prior_macro_f1:.1f})" for cell, row in weak.iterrows()
    )
    return (
        f"in {len(weak)} of {len(by_cell)} cell(s) the adapters do no better than the label-prior baseline "
        f"(mean macro-F1 over tasks vs predicting each task's most frequent training label): {cells}; "
        "differences involving these cells say little about what was learnt"
    )


def format_findings(findings: Sequence[dict]) -> str:
    """The findings as printable lines: the claim line (:func:`socialite_utils.claims.format_claim`: verdict,
    claim, comparison, effect, 95% CI, p, n) or, for a finding that could not be tested, verdict and claim; then the
    evidence and the finding's label-prior caveat, if any."""
    lines = []
    for f in findings:
        lines += [f.get("line") or f"[{f['verdict']}] {f['claim']}", f"    evidence: {f['evidence']}"]
        if f.get("caveat"):
            lines.append(f"    caveat: {f['caveat']}")
    return "\n".join(lines)


def gain_table(
    predictions: pd.DataFrame, *, group: str = "seen", bootstrap_samples: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Per (task rows, ratio > 0): the gain in mean macro-F1 over the group's tasks against ratio 0 at the same task
    rows (pooled over seeds), with its paired-bootstrap CI (stratified by task), p-value (``p``: as printed, never
    0) and the verdict on "the gain is positive" by the one rule."""
    labels = _task_labels(predictions)
    tasks = set(predictions.loc[predictions["group"] == group, "task"])
    rows = []
    for n in sorted(predictions["task_rows"].unique()):
        for r in sorted(predictions["general_ratio"].unique()):
            if r == 0:
                continue
            sub = predictions[(predictions["general_ratio"].isin([0, r])) & (predictions["task_rows"] == n)]
            gold, mixed, spec, _ = _paired_sets(sub, tasks)
            if not gold:
                continue
            res = _bootstrap(gold, _encode(mixed), _encode(spec), labels, n_boot=bootstrap_samples, seed=seed)
            rows.append(
                {"group": group, "task_rows": n, "general_ratio": r, "gain": res.effect, "ci_low": res.ci[0],
                 "ci_high": res.ci[1], "p_value": res.p_value, "p": C.format_p(res.p_value, res.B),
                 "verdict": _verdict(res.ci, +1), "n_paired": len(gold), "n_tasks": res.n_tasks}
            )  # fmt: skip
    return pd.DataFrame(rows)


def mixing_figure_scopes(aggregates: pd.DataFrame) -> list[str]:
    """The panels of the mixing curves, in order: seen, related, then each category that has rows."""
    scopes = [
        "seen",
        "related",
        *sorted(aggregates.loc[aggregates["scope_kind"] == "category", "scope"].unique()),
    ]
    return [s for s in scopes if s in set(aggregates["scope"])]


def write_study_outputs(params: MixingStudyParams) -> dict[str, Any]:
    """Tables, figures and findings of the finished cells into ``runs/<run_name>/``; returns them.

    Files: ``results.csv`` (cell x task), ``aggregates.csv`` (cell x scope), ``gains.csv``, ``findings.json``,
    ``findings.txt`` and ``figures/{mixing_curves,mixing_gain,specialisation_vs_retention}.{png,pdf}``.
    """

    study_dir = run_dir_for(params.run_name)
    results, aggregates, predictions = collect_results(params)
    if results.empty:
        raise ValueError(f"no finished cell under {study_dir / 'cells'}: run the grid first (run_grid)")
    n_boot = params.bootstrap_samples if not params.smoke else min(params.bootstrap_samples, 200)
    gains = gain_table(predictions, bootstrap_samples=n_boot)
    findings = evaluate_findings(
        results,
        predictions,
        reasoning_categories=params.reasoning_categories,
        factual_categories=params.factual_categories,
        bootstrap_samples=n_boot,
    )
    results.to_csv(study_dir / "results.csv", index=False)
    aggregates.to_csv(study_dir / "aggregates.csv", index=False)
    gains.to_csv(study_dir / "gains.csv", index=False)
    write_json(study_dir / "findings.json", findings)
    (study_dir / "findings.txt").write_text(format_findings(findings) + "\n")
    figs = study_dir / "figures"
    paths = save_figure(
        plot_mixing_curves(aggregates, mixing_figure_scopes(aggregates)), figs / "mixing_curves"
    )
    if not gains.empty:
        paths += save_figure(plot_mixing_gain(gains), figs / "mixing_gain")
    paths += save_figure(plot_specialisation_vs_retention(aggregates), figs / "specialisation_vs_retention")
    return {
        "results": results,
        "aggregates": aggregates,
        "gains": gains,
        "findings": findings,
        "figures": paths,
    }
