"""The plan check behind ``python -m socialite_utils.pipeline --profile P --check``: will this profile run?

For every step a profile declares, :func:`check_plan` builds the parameters its notebook would build, runs the
checks the step itself runs first (``DataParams.of`` + ``check_data_options``, ``TrainParams.validate``,
``EvalParams.validate``, ``MixingStudyParams.validate`` and its cells' ``TrainParams``, the writing study's
``TrainParams`` and mixture), counts what the data must hold (rows per task and split, generalist rows per cell
against the bundle's pool after the held-out slice, which tasks are on disk and which only on the Hub) and
estimates time and memory per step from :data:`RATES`. No model is loaded and nothing is written or downloaded.

A plan that cannot work raises :class:`PlanError` naming the profile, the step and the parameter.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from .data.assembly import check_data_options
from .data.loaders import load_task_split
from .data.mixing import MixtureSpec, general_rows_wanted, mixture_from_params, split_general
from .data.types import DataParams
from .data.writing_sources import load_general_instructions, load_writing_split
from .evaluation.plan import EvalParams
from .models import check_model_available, resolve_model
from .registry import Task, load_registry, select_tasks
from .studies.mixing import MixingStudyParams, _train_params, build_grid
from .training.lora import TrainParams, planned_steps

# Rates per device, in examples per second, and peak memory in GB. CPU rates are measured on the kit's 2-core VM
# (each row says where); GPU rates are UNMEASURED estimates from FLOP counts (6 x parameters x ~300 tokens per
# trained example, 2 x for a scored one, at ~40 % of an A100's bf16 peak; a T4 at about a sixth of that) until
# benchmarks/gpu_check.py has run on a GPU. Rates for models of other sizes scale with 1 / parameters.
RATES: dict[str, dict[str, Any]] = {
    "cpu": {
        "measured": True,
        "tiny-random": {
            "train": 40.0,
            "score": 60.0,
            "generate": 20.0,
            "writing_generate": 5.0,
            "memory_gb": 1.5,
            "basis": "smoke profile: notebooks 01-05 in about 1 minute (README)",
        },
        "smollm2-135m": {
            # cpu-demo (README): 2,000 example-passes in 13.9 min; 2 x 1,500 scored examples in 6.1 min; peak
            # 6.0 GB in training. generate: benchmarks/scoring.md, answers forced to 20 tokens. writing_generate:
            # notebook 07's base model, one batch of 16 rewrites in 37 s (cpu-writing's sizing note).
            "train": 2.4,
            "score": 8.2,
            "generate": 1.9,
            "writing_generate": 0.43,
            "memory_gb": 6.0,
            "basis": "cpu-demo (README), benchmarks/scoring.md",
        },
    },
    "a100": {"measured": False, "per_billion": {"train": 42.0, "score": 210.0, "generate": 28.0}},
    "t4": {"measured": False, "per_billion": {"train": 7.0, "score": 35.0, "generate": 5.0}},
}
SMOLLM2_PARAMS = 134_515_008
# Encoder baselines (notebook 05): cpu-demo's minilm-l6 took 3.5 min (README); the others are estimates.
BASELINE_MINUTES = {"tiny": 0.2, "minilm-l6": 3.5, "deberta-v3-base": 15.0}
HUB_SOURCES = ("socialite_instructions", "socket")


class PlanError(ValueError):
    """A profile whose plan cannot work: the message names the profile, the step and the parameter."""


@dataclass
class StepPlan:
    step: str
    lines: list[str] = field(default_factory=list)  # what the data must hold, what will run
    estimate: str = ""  # time and memory
    warnings: list[str] = field(default_factory=list)


@dataclass
class Plan:
    profile: str
    device: str
    steps: list[StepPlan]

    def format(self) -> str:
        out = [f"plan for profile '{self.profile}' (device: {self.device}): every check passed"]
        for sp in self.steps:
            out.append(f"[{sp.step}] {sp.estimate}")
            out += [f"    {line}" for line in sp.lines]
            out += [f"    warning: {w}" for w in sp.warnings]
        if not RATES.get(self.device, {}).get("measured", False):
            out.append(
                f"note: the {self.device} rates are UNMEASURED estimates (socialite_utils/plancheck.py)"
            )
        return "\n".join(out)


def _fail(
    profile: str, step: str, params: dict[str, Any], err: Exception | str, param: str | None = None
) -> PlanError:
    """A PlanError naming the parameter: ``param``, else the step's parameter the underlying message mentions."""
    msg = err.args[0] if isinstance(err, Exception) and err.args else str(err)
    names = sorted(params, key=len, reverse=True)
    found = param or next((n for n in names if re.search(rf"\b{re.escape(n)}\b", str(msg))), None)
    return PlanError(f"profile '{profile}', step '{step}', parameter '{found or '?'}': {msg}")


# ---------------------------------------------------------------- rates


def rates_for(device: str, model: str) -> tuple[dict[str, float], str]:
    """(rates: train / score / generate examples per second and memory_gb, where they come from)."""
    table = RATES[device]
    if model in table:
        return table[model], table[model]["basis"]
    try:
        n = resolve_model(model).params
    except ValueError:
        n = None
    if device == "cpu":
        ref = table["smollm2-135m"]
        scale = SMOLLM2_PARAMS / n if n else 1.0
        rates = {k: ref[k] * scale for k in ("train", "score", "generate", "writing_generate")}
        rates["memory_gb"] = 2.0 + 4 * 4 * (n or SMOLLM2_PARAMS) / 1e9  # fp32 weights, gradients, activations
        return rates, f"scaled from smollm2-135m by parameters ({n or 'unknown'}): an estimate"
    billions = (n or 7e9) / 1e9
    rates = {k: v / billions for k, v in table["per_billion"].items()}
    rates["writing_generate"] = rates["generate"] / 5  # rewrites run ~100 new tokens, labels ~20
    four_bit = device == "t4" and billions >= 3
    rates["memory_gb"] = (
        billions * (0.6 if four_bit else 2.2) + 4.0
    )  # weights (+LoRA, optimizer) + activations
    return rates, f"UNMEASURED estimate for {billions:.1f}B parameters on {device}"


# GPU memory of one device, GB: a plan that needs more says so (the device names of profiles.yaml)
DEVICE_MEMORY_GB = {"a100": 80, "t4": 15}


def _training_memory(tp: TrainParams, rates: dict[str, float], device: str, sp: StepPlan) -> float:
    """GB for training ``tp``: the rates' LoRA figure, or for full fine-tuning (``peft="none"``) ~16 bytes per
    parameter (bf16 weights and gradients, fp32 master weights and AdamW's two moments) plus activations."""
    if tp.peft != "none":
        return rates["memory_gb"]
    try:
        n = resolve_model(tp.base_model).params or 7e9
    except ValueError:
        n = 7e9
    gb = 16 * n / 1e9 + 4.0
    limit = DEVICE_MEMORY_GB.get(device)
    if limit and gb > limit:
        sp.warnings.append(
            f"full fine-tuning needs ~{gb:.0f} GB, more than one {device} holds ({limit} GB): use a larger GPU "
            "(an H200 holds 141 GB) or shard the training over several GPUs with the training command under "
            "accelerate's fsdp config (docs/scaling-up.md)"
        )
    return gb


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------- data


def _count_rows(
    tasks: list[Task], source: str, data_dir: Any
) -> tuple[dict[str, dict[str, int]], list[str], list[str]]:
    """(task -> split -> rows on disk, tasks only on the Hub, problems). A Hub source without a local copy is not
    downloaded: its tasks are listed as Hub-only. Counts are rows before empty texts and duplicates are dropped."""
    if source in HUB_SOURCES and not data_dir:
        return {}, [t.name for t in tasks], []
    counts: dict[str, dict[str, int]] = {}
    problems = []
    for task in tasks:
        splits = ("train", "validation", "test") if task.group == "seen" else ("train", "test")
        counts[task.name] = {}
        for split in splits:
            try:
                counts[task.name][split] = len(load_task_split(task, split, source=source, data_dir=data_dir))
            except (OSError, ValueError, KeyError) as e:
                counts[task.name][split] = 0
                if split == "test" or (split == "train" and task.group == "seen"):
                    problems.append(f"task '{task.name}' {split}: {e.args[0] if e.args else e}")
        for split in ("test",) + (("train",) if task.group == "seen" else ()):
            if counts[task.name].get(split) == 0 and not any(
                p.startswith(f"task '{task.name}' {split}") for p in problems
            ):
                problems.append(f"task '{task.name}' has no {split} rows in {data_dir or 'the bundle'}")
    return counts, [], problems


def _capped(
    counts: dict[str, dict[str, int]], tasks: list[Task], split: str, cap: int | None, groups=None
) -> int:
    return sum(
        min(counts.get(t.name, {}).get(split, 0), cap if cap is not None else 10**12)
        for t in tasks
        if groups is None or t.group in groups
    )


def _general_pool(spec: MixtureSpec) -> int:
    records = load_general_instructions(
        spec.data_dir, licence=spec.general_licence, sources=spec.general_sources
    )
    pool, _ = split_general(records, spec.general_heldout, spec.heldout_seed)
    return len(pool)


# ---------------------------------------------------------------- steps


def _model_note(model: str) -> str | None:
    spec = resolve_model(model)
    try:
        check_model_available(model)
    except OSError:
        return f"base model {model!r} ({spec.source}) is on the Hub and not cached here: needs internet (and access)"
    return f"base model {model!r} comes from the Hub ({spec.source})" if spec.kind == "hub" else None


def _check_data(profile: str, p: dict[str, Any], device: str) -> tuple[StepPlan, dict[str, Any]]:
    sp = StepPlan("data")
    if p.get("smoke"):  # notebook 01's smoke caps
        p = dict(p)
        p["max_train_per_task"] = (
            8 if p.get("max_train_per_task") is None else min(p["max_train_per_task"], 8)
        )
        p["max_eval_per_task"] = 4 if p.get("max_eval_per_task") is None else min(p["max_eval_per_task"], 4)
    try:
        tasks = select_tasks(load_registry(p.get("suite", "local")), p.get("tasks"))
        options = {k: p[k] for k in DataParams.__dataclass_fields__ if k in p and k != "mixture"}
        general = {
            k: p[k]
            for k in ("general_ratio", "general_count", "general_licence", "general_heldout")
            if k in p
        }
        dp = DataParams.of(**options, mixture=mixture_from_params(**general))
        mixture = check_data_options(tasks, dp)
    except (ValueError, KeyError) as e:
        raise _fail(profile, "data", p, e) from None
    counts, hub_only, problems = _count_rows(tasks, dp.source, dp.data_dir)
    if problems:
        raise _fail(
            profile, "data", p, "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""), "data_dir"
        )
    seen = [t for t in tasks if t.group == "seen"]
    if hub_only:
        sp.warnings.append(
            f"{len(hub_only)} task(s) only on the Hub (source {dp.source!r}, no local copy in data_dir): needs "
            "internet at the data step; rows are counted once downloaded"
        )
        n_train = n_test = None
    else:
        n_train = _capped(counts, tasks, "train", dp.max_train_per_task, ("seen",))
        n_test = _capped(counts, tasks, "test", dp.max_eval_per_task)
        sp.lines.append(
            f"{len(tasks)} tasks ({len(seen)} seen) on disk ({dp.source}): {n_train} train rows, "
            f"{n_test} test rows after caps"
        )
    if mixture is not None:
        wanted = general_rows_wanted(mixture, n_train or 0)
        pool = _general_pool(mixture)
        sp.lines.append(f"generalist rows: {wanted} wanted, {pool} available after the held-out slice")
        if wanted > pool:
            raise _fail(profile, "data", p, f"general_ratio/general_count asks for {wanted} generalist rows, "
                        f"{pool} are available after general_heldout={mixture.general_heldout}")  # fmt: skip
    sp.estimate = "seconds (local files)" if not hub_only else "download time (Hub)"
    return sp, {
        "tasks": tasks,
        "n_train": n_train,
        "n_test": n_test,
        "counts": counts,
        "eval_cap": dp.max_eval_per_task,
    }


def _check_train(profile: str, p: dict[str, Any], device: str, data: dict) -> StepPlan:
    sp = StepPlan("train")
    try:
        tp = TrainParams.from_mapping({**p, "run_name": "train", "data_run": "data"})
        tp = tp.for_smoke() if p.get("smoke") else tp.validate()
        resolve_model(tp.base_model)
    except (ValueError, KeyError) as e:
        raise _fail(profile, "train", p, e) from None
    if note := _model_note(tp.base_model):
        sp.warnings.append(note)
    n = data["n_train"]
    if tp.max_train_examples is not None and n is not None:
        n = min(n, tp.max_train_examples)
    rates, basis = rates_for(device, tp.base_model)
    if n is None:
        sp.estimate = f"unknown until the Hub data is counted; {rates['train']:.2g} examples/s, ~{rates['memory_gb']:.0f} GB ({basis})"
        return sp
    steps = planned_steps(tp, n)
    passes = min(
        steps * tp.effective_batch_size,
        math.ceil(n * max(tp.num_train_epochs, 1)) if tp.max_steps <= 0 else 10**12,
    )
    sp.lines.append(
        f"{n} rows, {steps} optimizer steps of {tp.effective_batch_size}: {passes} example-passes"
    )
    memory = _training_memory(tp, rates, device, sp)
    sp.estimate = f"~{_minutes(passes / rates['train'])}, ~{memory:.0f} GB ({basis})"
    return sp


def _check_eval(
    profile: str, p: dict[str, Any], device: str, data: dict, train_model: str | None
) -> StepPlan:
    sp = StepPlan("eval")
    fields = set(EvalParams.__dataclass_fields__)
    try:
        ep = EvalParams(**{k: v for k, v in p.items() if k in fields and k != "run_name"}, run_name="eval")
        ep = ep.for_smoke() if p.get("smoke") else ep.validate()
        model = ep.base_model or train_model
        if not ep.train_run:
            resolve_model(model)
    except (ValueError, KeyError, TypeError) as e:
        raise _fail(profile, "eval", p, e) from None
    models = 2 if ep.train_run else 1
    if model and (note := _model_note(model)) and not ep.train_run:
        sp.warnings.append(note)
    rates, basis = rates_for(device, model or "tiny-random")
    n = data.get("n_test")
    if n is not None and ep.max_eval_per_task is not None:
        cap = min(ep.max_eval_per_task, data["eval_cap"] or ep.max_eval_per_task)
        n = _capped(data["counts"], data["tasks"], "test", cap)
    if n is None:
        sp.estimate = f"{models} model(s); {rates[ep.mode]:.2g} examples/s in {ep.mode} mode ({basis})"
        return sp
    sp.lines.append(
        f"{n} test rows x {models} model(s) ({'base + tuned' if models == 2 else 'base model alone'})"
    )
    sp.estimate = f"~{_minutes(n * models / rates[ep.mode])}, ~{rates['memory_gb']:.0f} GB ({basis})"
    return sp


def _check_mixing(profile: str, p: dict[str, Any], device: str) -> StepPlan:
    sp = StepPlan("mixing")
    try:
        study = MixingStudyParams.from_mapping(p).validate()
        grid = build_grid(study)
        cell_train = [_train_params(study, cell) for cell in grid]  # each cell's TrainParams, validated
        tasks = select_tasks(load_registry(study.suite), study.tasks)
    except (ValueError, KeyError) as e:
        raise _fail(profile, "mixing", p, e) from None
    counts, _, problems = _count_rows(tasks, "local", study.data_dir)
    if problems:
        raise _fail(profile, "mixing", p, "; ".join(problems[:5]))
    spec = MixtureSpec(general_licence=study.general_licence, general_heldout=study.general_heldout)
    try:
        pool = _general_pool(spec)
    except ValueError as e:
        raise _fail(profile, "mixing", p, e) from None
    short = []
    for n in study.task_rows:
        n_task = _capped(counts, tasks, "train", n, ("seen",))
        for r in study.general_ratios:
            wanted = general_rows_wanted(replace(spec, general_ratio=r), n_task)
            if wanted > pool:
                short.append(f"({n}, {r:g}) needs {wanted}")
    sp.lines.append(f"{len(grid)} cells; generalist pool after the held-out slice: {pool} rows")
    if short:
        raise _fail(profile, "mixing", p, (
            f"task_rows x general_ratios cells {', '.join(short)} generalist rows; the bundle has {pool} after "
            f"general_heldout={study.general_heldout}: drop those cells or lower the ratios"), "task_rows x general_ratios")  # fmt: skip
    rates, basis = rates_for(device, cell_train[0].base_model)
    n_test = _capped(counts, tasks, "test", study.max_eval_per_task)
    seconds = 0.0
    for cell, tp in zip(grid, cell_train, strict=True):
        n_task = _capped(counts, tasks, "train", cell["task_rows"], ("seen",))
        n = n_task + general_rows_wanted(replace(spec, general_ratio=cell["general_ratio"]), n_task)
        n = min(n, tp.max_train_examples or n)
        seconds += planned_steps(tp, n) * tp.effective_batch_size / rates["train"]
        seconds += (2 * n_test + 2 * study.general_heldout) / rates[study.eval_mode]
    sp.estimate = f"~{_minutes(seconds)}, ~{rates['memory_gb']:.0f} GB ({basis})"
    return sp


def _check_writing(profile: str, p: dict[str, Any], device: str) -> StepPlan:
    sp = StepPlan("writing")
    p = dict(p)
    if p.get("smoke"):  # notebook 07's smoke settings
        p.update(base_model="tiny-random", max_train_per_task=8, max_eval_per_task=4, general_train_rows=8)
    defaults = {"max_train_per_task": 48, "max_eval_per_task": 25, "general_train_rows": 192, "systems":
                ["writing", "writing+general", "general"], "base_model": "smollm2-135m"}  # fmt: skip
    p = {**defaults, **p}
    try:
        tasks = select_tasks(
            load_registry(p.get("suite", "writing"), p.get("task_dirs") or []), p.get("tasks")
        )
        tp = TrainParams.from_mapping({**p, "run_name": "template"})
        tp = replace(tp.for_smoke(), max_steps=6) if p.get("smoke") else tp.validate()
        spec = MixtureSpec(general_count=p["general_train_rows"], general_licence=p.get("general_licence", "any"),
                           general_heldout=0)  # fmt: skip
        options = {
            k: p[k] for k in ("max_train_per_task", "max_eval_per_task", "prompt_format", "seed") if k in p
        }
        check_data_options(tasks, DataParams.of(**options, writing_dir=p.get("writing_dir"), mixture=spec))
        pool = _general_pool(spec.validate())
    except (ValueError, KeyError, FileNotFoundError) as e:
        raise _fail(profile, "writing", p, e) from None
    if p["general_train_rows"] > pool:
        raise _fail(
            profile,
            "writing",
            p,
            f"general_train_rows={p['general_train_rows']} but the bundle has {pool} generalist rows",
        )
    n_train = n_test = 0
    for t in tasks:
        if t.no_data:
            continue
        try:
            n_train += min(
                len(load_writing_split(t.name, "train", p.get("writing_dir"))),
                p["max_train_per_task"] or 10**9,
            )
            n_test += min(
                len(load_writing_split(t.name, "test", p.get("writing_dir"))), p["max_eval_per_task"] or 10**9
            )
        except (OSError, ValueError) as e:
            raise _fail(profile, "writing", p, e) from None
    rows = {
        "writing": n_train,
        "writing+general": n_train + p["general_train_rows"],
        "general": p["general_train_rows"],
    }
    rates, basis = rates_for(device, tp.base_model)
    seconds = (
        sum(planned_steps(tp, rows.get(s, n_train)) * tp.effective_batch_size for s in p["systems"])
        / rates["train"]
    )
    seconds += (1 + len(p["systems"])) * n_test / rates["writing_generate"]
    sp.lines.append(
        f"{n_train} writing train rows, {n_test} test rows, {p['general_train_rows']} generalist rows of {pool}"
    )
    memory = _training_memory(tp, rates, device, sp)
    sp.estimate = f"~{_minutes(seconds)}, ~{memory:.0f} GB ({basis})"
    return sp


def check_plan(profile: str, params: dict[str, dict[str, Any]], declared: list[str], device: str) -> Plan:
    """The plan of ``profile`` (``params``: every step's parameters after --set; ``declared``: the steps it runs)."""
    if device not in RATES:
        raise PlanError(
            f"profile '{profile}': unknown device {device!r}; devices with rates: {sorted(RATES)}"
        )
    steps: list[StepPlan] = []
    data: dict[str, Any] = {"n_train": None, "n_test": None}
    train_model = None
    if "inside" in declared:
        smoke = params["inside"].get("smoke")
        steps.append(
            StepPlan("inside", estimate="~15 s (tiny-random)" if smoke else "~1 min (SmolLM2-135M, 8 steps)")
        )
    if "data" in declared:
        sp, data = _check_data(profile, params["data"], device)
        steps.append(sp)
    if "train" in declared:
        steps.append(_check_train(profile, params["train"], device, data))
        train_model = "tiny-random" if params["train"].get("smoke") else params["train"].get("base_model")
    if "eval" in declared:
        ev = dict(params["eval"])
        if "train" in declared:
            ev.setdefault("train_run", "train")
        steps.append(_check_eval(profile, ev, device, data, train_model))
    if "fewshot" in declared:
        ev = dict(params["fewshot"])
        if "train" in declared:
            ev.setdefault("train_run", "train")
        if not ev.get("few_shot_k"):
            raise _fail(profile, "fewshot", ev, ValueError("the fewshot step needs few_shot_k >= 1"))
        few = _check_eval(profile, ev, device, data, train_model)
        few.step = "fewshot"
        steps.append(few)
    if "analysis" in declared:
        cap = params["analysis"].get("sensitivity_max_per_task", 30)
        steps.append(StepPlan("analysis", estimate=f"a few minutes (prompt variants on {cap} rows per task)"))
    if "baselines" in declared:
        enc = "tiny" if params["baselines"].get("smoke") else params["baselines"].get("encoder", "minilm-l6")
        mins = BASELINE_MINUTES.get(enc)
        steps.append(
            StepPlan("baselines", estimate=f"~{mins} min (encoder {enc})" if mins else f"encoder {enc}")
        )
    if "mixing" in declared:
        steps.append(_check_mixing(profile, params["mixing"], device))
    if "writing" in declared:
        steps.append(_check_writing(profile, params["writing"], device))
    return Plan(profile, device, steps)
