"""Run the numbered notebooks headless, in order, with one profile's parameters.

    python -m socialite_utils.pipeline --profile cpu-demo --run-name demo

Each notebook is executed with papermill into ``runs/<run-name>/notebooks/`` and writes its own
run directory under ``runs/<run-name>/`` (``data``, ``train``, ``eval``, ``analysis``,
``baselines``); the next notebook is passed the previous one's run. A failing notebook stops
the chain with the failing cell's error; whatever already ran stays on disk. Profiles are
declared in ``socialite_utils/profiles.yaml``.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from .data.types import DataParams
from .evaluation.plan import EVAL_RULES, EvalParams
from .params import as_bool, coerce_field
from .plancheck import Plan, PlanError, StepPlan, check_plan
from .published import publish_run
from .reporting import (
    example_ci,
    fmt_ci,
    fmt_value,
    format_headline,
    report_aggregate_table,
    report_claims,
    report_paper_comparison,
    report_task_table,
)
from .runs import (
    RunExistsError,
    check_run_name,
    load_yaml_strict,
    process_alive,
    provenance,
    read_json,
    repo_root,
    runs_root,
    safe_write_path,
    temp_file_name,
    this_process,
    write_json,
    write_json_atomic,
)
from .schema import read_baselines_metrics, read_eval_metrics
from .studies.mixing import STUDY_RULES, MixingStudyParams
from .studies.seeds import write_seed_report
from .studies.writing import WRITING_RULES, WritingStudyParams
from .training.lora import TRAIN_RULES, TrainParams

PROFILES_FILE = Path(__file__).parent / "profiles.yaml"
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

# (step, notebook, run directory it writes, how it receives the earlier runs)
STEPS: list[tuple[str, str, str, dict[str, str]]] = [
    ("data", "01_data_assembly.ipynb", "data", {}),
    ("train", "02_instruction_tuning.ipynb", "train", {"data_run": "data"}),
    ("eval", "03_evaluation.ipynb", "eval", {"data_run": "data", "train_run": "train"}),
    # the same evaluation with k examples in each prompt (few_shot_k), for profiles that report both, as the
    # Socialite-Llama paper does (zero- and few-shot)
    ("fewshot", "03_evaluation.ipynb", "eval-fewshot", {"data_run": "data", "train_run": "train"}),
    ("analysis", "04_error_analysis.ipynb", "analysis", {"eval_run": "eval"}),
    ("baselines", "05_baselines.ipynb", "baselines", {"data_run": "data", "eval_run": "eval"}),
    ("mixing", "06_generalist_mixing.ipynb", "mixing", {}),  # only for profiles that declare it (*-mixing)
    ("writing", "07_writing_assistance.ipynb", "writing", {}),  # runs only in profiles that declare it
    ("inside", "00_inside_the_pipeline.ipynb", "inside", {}),  # notebook 00, for the course site (*-inside)
]


# The kernel's own log (its stderr, shared with the pipeline's terminal) says "Kernel is running over TCP without
# encryption" at every start and "KeyboardInterrupt caught in kernel" on Ctrl-C; neither is about the notebook, whose
# errors reach the executed notebook and the pipeline's FAILED line anyway.
KERNEL_QUIET = ["--IPKernelApp.log_level=CRITICAL"]


@dataclass
class StepResult:
    step: str
    notebook: str
    seconds: float
    ok: bool
    error: str | None = None


def load_profiles(path: str | os.PathLike = PROFILES_FILE) -> dict[str, dict[str, Any]]:
    """All profiles: name -> {"description", "needs", "steps": {step: {param: value}}}."""
    doc = load_yaml_strict(path)  # duplicate keys and aliases refused, with the line
    if not isinstance(doc, dict) or not isinstance(doc.get("profiles"), dict):
        raise ValueError(f"{path}: needs a top-level mapping 'profiles'")
    return doc["profiles"]


def _did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def resolve_profile(
    name: str, overrides: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """The parameters of every step of profile ``name``, after ``overrides`` (step -> param -> value)."""
    profiles = load_profiles()
    if name not in profiles:
        raise KeyError(
            f"unknown profile '{name}'{_did_you_mean(name, profiles)}; available: {', '.join(profiles)}"
        )
    prof = profiles[name]
    params = {step: dict(prof.get("common", {}), **(prof["steps"].get(step) or {})) for step, *_ in STEPS}
    for step, kv in (overrides or {}).items():
        if step not in params:
            raise KeyError(
                f"unknown step '{step}' in override{_did_you_mean(step, params)}; steps: {', '.join(params)}"
            )
        params[step].update(kv)
    return params


def parse_override(text: str) -> tuple[str, str, Any]:
    """``step.param=value`` -> (step, param, value), the value read as YAML exactly like profiles.yaml: ``[a, b]`` a
    list, ``null`` None, ``true`` True, ``0.001`` a float, anything else a string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ValueError(f"override '{text}' must look like step.param=value, e.g. train.max_steps=20")
    key, raw = text.split("=", 1)
    step, param = key.split(".", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise ValueError(f"override '{text}': the value is not valid YAML ({e})") from None
    if isinstance(value, str) and _SCIENTIFIC.fullmatch(value):
        value = float(value)  # PyYAML reads 1e-4 (no dot) as a string; a learning rate means the number
    if value == "None":
        # Python's spelling of a missing value is a plain string in YAML: stored, it would be a task or run
        # named "None"; say what to write instead.
        raise ValueError(f"override '{text}': write {key}=null (values are YAML, where None is a string)")
    return step, param, value


def notebooks_dir() -> Path:
    root = repo_root()
    if root is None:
        raise FileNotFoundError(
            "the pipeline needs the socialite checkout (notebooks/ is not installed with the package)"
        )
    return root / "notebooks"


def notebook_parameters(path: str | os.PathLike) -> list[str]:
    """The names a notebook accepts: the variables assigned in its cell tagged ``parameters``."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return [
                t.id
                for node in tree.body
                if isinstance(node, ast.Assign)
                for t in node.targets
                if hasattr(t, "id")
            ]
    raise ValueError(f"{path} has no cell tagged 'parameters'")


def check_steps(params: dict[str, dict[str, Any]], only: list[str] | None) -> None:
    """Refuse, before anything runs, an unknown step name in ``only`` or a parameter that the step's notebook does
    not declare in its parameters cell (a typo would otherwise only get papermill's warning)."""
    names = [s for s, *_ in STEPS]
    for step in only or []:
        if step not in names:
            raise ValueError(
                f"unknown step '{step}' in --only{_did_you_mean(step, names)}; steps: {', '.join(names)}"
            )
    for step, notebook, *_ in STEPS:
        valid = notebook_parameters(notebooks_dir() / notebook)
        for param in params[step]:
            if param not in valid:
                raise ValueError(
                    f"unknown parameter '{step}.{param}'{_did_you_mean(param, valid)}: {notebook} has no parameter "
                    f"'{param}'; its parameters: {', '.join(valid)}"
                )


# The parameter dataclasses whose declared types and ranges check each step's values (a notebook parameter that is
# none of their fields, like ``smoke``, is checked by the notebook itself; booleans below are coerced here).
STEP_PARAMS: dict[str, tuple[tuple[type, dict], ...]] = {
    "data": ((DataParams, {}),),
    "train": ((TrainParams, TRAIN_RULES),),
    "eval": ((EvalParams, EVAL_RULES),),
    "fewshot": ((EvalParams, EVAL_RULES),),
    "mixing": ((MixingStudyParams, STUDY_RULES), (TrainParams, TRAIN_RULES)),
    "writing": ((WritingStudyParams, WRITING_RULES),),
}
NOTEBOOK_FLAGS = ("overwrite", "smoke", "resume")


def typed_step_params(step: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` of ``step`` coerced and checked by the step's parameter dataclasses (:mod:`socialite_utils.params`):
    ``--set train.overwrite=false`` reaches the notebook as False, ``train.lora_r=2.5`` is refused here."""
    out = dict(values)
    for key, value in values.items():
        if key in NOTEBOOK_FLAGS:
            out[key] = as_bool(value, param=f"{step}.{key}")
            continue
        for cls, rules in STEP_PARAMS.get(step, ()):
            if key in {f.name for f in fields(cls)}:
                out[key] = coerce_field(cls, key, value, rules.get(key), owner=f"{step}.{cls.__name__}")
                break
    return out


def plan_profile(
    profile: str, overrides: dict[str, dict[str, Any]] | None = None, device: str | None = None
) -> Plan:
    """``--check``: every declared step's parameters built and validated, the data counted, time and memory
    estimated (socialite_utils.plancheck); PlanError when the plan cannot work. Nothing is loaded or written."""
    params = resolve_profile(profile, overrides)
    check_steps(params, None)
    prof = load_profiles()[profile]
    declared = [s for s, *_ in STEPS if s in prof["steps"]]
    plan = check_plan(profile, params, declared, device or prof.get("device", "cpu"))
    if seeds := profile_seeds(profile):
        plan.steps.append(
            StepPlan(
                "seeds",
                [
                    f"{len(seeds)} training seeds {seeds}: the steps above run once per seed on the same test rows"
                ],
                estimate=f"about {len(seeds)} x the above (the base model scored once), then judged together",
            )
        )
    return plan


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class PipelineHistory:
    """``pipeline.json``: every invocation of the pipeline on one run directory (command line, parameters, each
    step's status: started / succeeded / failed / interrupted), appended across invocations and rewritten
    atomically whenever a step starts or finishes, so an interrupted pipeline still leaves its record."""

    def __init__(self, pipe_dir: Path, entry: dict[str, Any]):
        self.path = pipe_dir / "pipeline.json"
        doc = read_json(self.path) if self.path.exists() else {"invocations": []}
        if "invocations" not in doc:
            doc = {"invocations": [doc]}  # a record written before the history existed: its first entry
        self.doc = doc
        self.entry = {**entry, "started_utc": _now(), "status": "running", "steps": []}
        doc["invocations"].append(self.entry)
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.doc)

    def step(self, step: str, notebook: str, status: str, **info: Any) -> None:
        steps = self.entry["steps"]
        if status == "started":
            steps.append({"step": step, "notebook": notebook, "status": status, "started_utc": _now()})
        else:
            steps[-1].update(status=status, finished_utc=_now(), **info)
        self.save()

    def finish(self, status: str) -> None:
        self.entry.update(status=status, finished_utc=_now())
        self.save()

    def stop(self, status: str, error: str) -> None:
        """The pipeline stopped early (``status`` interrupted or failed): the step that was running says so, with
        ``error``, and so does the invocation."""
        steps = self.entry["steps"]
        if steps and steps[-1]["status"] == "started":
            started = datetime.fromisoformat(steps[-1]["started_utc"])
            seconds = (datetime.now(timezone.utc) - started).total_seconds()
            steps[-1].update(status=status, finished_utc=_now(), seconds=seconds, error=error)
        self.finish(status)


class PipelineTerminated(BaseException):
    """SIGTERM reached the pipeline (a scheduler's time limit, ``kill <pid>``): handled like Ctrl-C, so the records
    say which step was interrupted instead of "running"."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`PipelineTerminated` (only where Python can handle signals: the main
    thread); the previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum: int, frame: Any) -> None:
        raise PipelineTerminated(f"stopped by {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _write_step_records(pipe_dir: Path, results: list[StepResult]) -> None:
    """``pipeline_steps.json``: the latest result of each step (a rerun replaces only the steps it ran)."""
    steps_file = pipe_dir / "pipeline_steps.json"
    records = {r["step"]: r for r in read_json(steps_file)} if steps_file.exists() else {}
    records |= {r.step: r.__dict__ for r in results}
    order = [s[0] for s in STEPS]
    write_json_atomic(steps_file, sorted(records.values(), key=lambda r: order.index(r["step"])))


def _step_records(pipe_dir: Path) -> dict[str, dict[str, Any]]:
    steps_file = pipe_dir / "pipeline_steps.json"
    return {r["step"]: r for r in read_json(steps_file)} if steps_file.exists() else {}


def _comparable(params: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Parameters as pipeline.json stores them, without the flags a continued run may change."""
    plain = json.loads(json.dumps(params, sort_keys=True, default=str))
    return {
        step: {k: v for k, v in values.items() if k not in ("resume", "overwrite")}
        for step, values in plain.items()
    }


def unfinished_steps(pipe_dir: Path, profile: str, params: dict[str, dict[str, Any]]) -> list[str]:
    """The steps a rerun of the same command runs on an existing pipeline run ``pipe_dir``: the profile's steps from
    the first one without a successful result on (the steps before it are kept). Raises :class:`RunExistsError`
    saying what to type when the run cannot be continued: a finished run, one started with another profile or other
    parameters, one still running, or a directory that is not a pipeline run."""
    record = pipe_dir / "pipeline.json"
    if not record.is_file():
        raise RunExistsError(
            f"{pipe_dir} already exists and is not a pipeline run; choose another --run-name"
        )
    invocations = read_json(record).get("invocations") or []
    if not invocations:
        raise RunExistsError(
            f"{pipe_dir} already exists and records no pipeline run; choose another --run-name"
        )
    last = invocations[-1]
    if last.get("status") == "running" and process_alive(last.get("pid"), last.get("host")):
        raise RunExistsError(
            f"{pipe_dir} is being written by process {last.get('pid')} on {last.get('host')} "
            f"(started {last.get('started_utc')}); wait for it, or choose another --run-name"
        )
    whole = [i for i in invocations if not i.get("only")]  # the invocations that ran the whole profile
    base = whole[-1] if whole else invocations[0]  # a run started by --only: its first invocation
    declared = [s for s, *_ in STEPS if s in load_profiles()[profile]["steps"]]
    records = _step_records(pipe_dir)
    todo = next((i for i, s in enumerate(declared) if not records.get(s, {}).get("ok")), None)
    if todo is None:
        raise RunExistsError(
            f"{pipe_dir} already exists and every step of it succeeded; choose another --run-name "
            "(or --only to rerun steps)"
        )
    command = base.get("command") or "the command that started it"
    if base.get("profile") != profile:
        raise RunExistsError(
            f"{pipe_dir} is an unfinished run of profile '{base.get('profile')}', not '{profile}'; to continue it "
            f"run the same command again ({command}), or choose another --run-name"
        )
    before, now = _comparable(base.get("params") or {}), _comparable(params)
    changed = sorted(
        f"{step}.{k}" for step in set(before) | set(now)
        for k in set(before.get(step, {})) | set(now.get(step, {}))
        if before.get(step, {}).get(k) != now.get(step, {}).get(k)
    )  # fmt: skip
    if changed:
        raise RunExistsError(
            f"{pipe_dir} is an unfinished run started with other parameters ({', '.join(changed)}); to continue it "
            f"run the same command again ({command}); to rerun steps with new parameters use --only "
            f"{','.join(declared[todo:])}; or choose another --run-name"
        )
    return declared[todo:]


def check_pipeline(
    profile: str,
    run_name: str,
    *,
    overrides: dict[str, dict[str, Any]] | None = None,
    only: list[str] | None = None,
    runs_dir: str | os.PathLike | None = None,
) -> tuple[dict[str, dict[str, Any]], Path]:
    """Everything a pipeline run checks before it starts -> (parameters per step, pipeline directory): the run
    name, the profile, step names, every parameter against its notebook's parameters cell, an existing run."""
    check_run_name(run_name, param="run_name (--run-name)")
    params = resolve_profile(profile, overrides)
    check_steps(params, only)
    if only is not None:
        if not only:
            raise ValueError("--only names no step; give steps such as eval,analysis")
        declared = load_profiles()[profile]["steps"]
        missing = [s for s in only if s not in declared]
        if missing:
            raise ValueError(
                f"profile '{profile}' has no step {', '.join(missing)}; its steps: {', '.join(declared)}"
            )
    params = {step: typed_step_params(step, values) for step, values in params.items()}
    pipe_dir = safe_write_path(
        Path(runs_dir).resolve() if runs_dir else runs_root(), run_name, param="--run-name"
    )
    if not only and pipe_dir.exists():
        unfinished_steps(
            pipe_dir, profile, params
        )  # a finished run, or other parameters: refused, saying why
    return params, pipe_dir


def run_pipeline(
    profile: str,
    run_name: str,
    *,
    overrides: dict[str, dict[str, Any]] | None = None,
    only: list[str] | None = None,
    runs_dir: str | os.PathLike | None = None,
    log=print,
) -> list[StepResult]:
    """Execute the profile's notebooks in order; returns one result per step that ran. Everything is checked
    (run name, step names, every parameter against its notebook's parameters cell) before anything runs."""
    import papermill as pm

    params, pipe_dir = check_pipeline(profile, run_name, overrides=overrides, only=only, runs_dir=runs_dir)
    declared = load_profiles()[profile]["steps"]  # a profile runs the steps it declares
    todo = only
    if not only and pipe_dir.exists():  # the same command again on an unfinished run: continue it
        todo = unfinished_steps(pipe_dir, profile, params)
        kept = [s for s, *_ in STEPS if s in declared and s not in todo]
        log(f"continuing {pipe_dir} from step '{todo[0]}'" + (f" ({', '.join(kept)} kept)" if kept else ""))
    steps = [s for s in STEPS if s[0] in declared and (not todo or s[0] in todo)]
    (pipe_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    invocation = {"command": shlex.join(sys.argv), "profile": profile, "run_name": run_name, "only": only,
                  "continued": todo if todo and not only else None, "overrides": overrides or {}, "params": params,
                  **this_process(), "provenance": provenance({"stage": "pipeline"})}  # fmt: skip
    history = PipelineHistory(pipe_dir, invocation)
    # Every notebook resolves run names under SOCIALITE_RUNS_DIR: point it at this pipeline's directory.
    previous = os.environ.get("SOCIALITE_RUNS_DIR")
    os.environ["SOCIALITE_RUNS_DIR"] = str(pipe_dir)
    results: list[StepResult] = []
    running: tuple[Path, Path, str] | None = None  # (temporary executed notebook, its final path, step)
    try:
        with sigterm_as_interrupt():
            for step, notebook, out_run, links in steps:
                # An earlier run is passed on only when the profile declares its step and neither the profile nor
                # --set names the run: a base-only evaluation (train_run: null, no train step) keeps its None.
                linked = {k: run for k, run in links.items() if run in declared and k not in params[step]}
                nb_params = {**params[step], "run_name": out_run, **linked}
                if only:
                    # --only asks to run these steps again: their previous runs are replaced, atomically, only once
                    # the new run is complete (a failing rerun leaves the old one in place).
                    nb_params["overwrite"] = True
                out_nb = pipe_dir / "notebooks" / notebook
                # executed under a temporary name, moved into place only when it succeeded: a failing rerun never
                # replaces the executed notebook of a step that succeeded before
                tmp_nb = safe_write_path(out_nb.parent, temp_file_name(notebook), param="notebook")
                log(f"[{step}] {notebook} -> {pipe_dir / out_run}")
                history.step(step, notebook, "started")
                running = (tmp_nb, out_nb, step)
                t0 = time.time()
                try:
                    pm.execute_notebook(
                        str(notebooks_dir() / notebook),
                        str(tmp_nb),
                        parameters=nb_params,
                        cwd=str(notebooks_dir()),
                        kernel_name="python3",
                        progress_bar=False,
                        log_output=False,
                        extra_arguments=KERNEL_QUIET,
                    )
                except pm.PapermillExecutionError as e:
                    kept_nb = _keep_failed_notebook(*running)
                    running = None
                    results.append(
                        StepResult(step, notebook, time.time() - t0, False, f"{e.ename}: {e.evalue}")
                    )
                    history.step(
                        step, notebook, "failed", seconds=results[-1].seconds, error=results[-1].error
                    )
                    log(
                        f"[{step}] FAILED in cell {e.exec_count}: {e.ename}: {e.evalue}\n  executed notebook: {kept_nb}"
                    )
                    break
                if tmp_nb.exists():
                    os.replace(tmp_nb, out_nb)
                running = None
                _drop_failed_notebook(out_nb)
                results.append(StepResult(step, notebook, time.time() - t0, True))
                history.step(step, notebook, "succeeded", seconds=results[-1].seconds)
                _write_step_records(pipe_dir, results)
                log(f"[{step}] done in {results[-1].seconds:.0f}s")
    except BaseException as e:  # Ctrl-C, SIGTERM, the kernel died: record which step stopped, then stop
        status = "interrupted" if isinstance(e, KeyboardInterrupt | PipelineTerminated) else "failed"
        if running is not None:
            _keep_failed_notebook(*running)
        history.stop(status, f"{type(e).__name__}: {e}")
        _write_step_records(pipe_dir, results)
        raise
    finally:
        if previous is None:
            os.environ.pop("SOCIALITE_RUNS_DIR", None)
        else:
            os.environ["SOCIALITE_RUNS_DIR"] = previous
    _write_step_records(pipe_dir, results)
    history.finish("succeeded" if all(r.ok for r in results) else "failed")
    return results


# ---------------------------------------------------------------- several seeds

# The steps whose draws a training seed sets: the train rows (data), the adapter (train), the floors and encoder.
SEEDED_STEPS = ("data", "train", "baselines")


def profile_seeds(profile: str, seeds: list[int] | None = None) -> list[int] | None:
    """The training seeds of a run: ``seeds`` (the command line's ``--seeds``), else the profile's ``seeds:``;
    None for a single run. Distinct integers >= 0, else ValueError."""
    profiles = load_profiles()
    if profile not in profiles:
        resolve_profile(profile)  # the KeyError that names the profiles (and the closest one)
    if seeds is None:
        seeds = profiles[profile].get("seeds")
    if seeds is None:
        return None
    if (
        not isinstance(seeds, list)
        or not seeds
        or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise ValueError(f"seeds = {seeds!r}: expected distinct integers >= 0, e.g. 0,1,2")
    return list(seeds)


def seed_overrides(
    overrides: dict[str, dict[str, Any]] | None,
    seed: int,
    first: int,
    pipe_dir: Path,
    declared: list[str],
    eval_seed: int,
) -> dict[str, dict[str, Any]]:
    """One seed's overrides: the seed for the train-row draw, training and the baselines; the one ``eval_seed``
    for the test rows, so every seed meets the same rows; and after the first seed the base model's predictions
    reused from the first seed's evaluation (``eval.base_from``), so the base model is scored once."""
    out = {step: dict(kv) for step, kv in (overrides or {}).items()}
    for step in SEEDED_STEPS:
        if step in declared:
            out.setdefault(step, {})["seed"] = seed
    if "data" in declared:
        out["data"]["eval_seed"] = eval_seed
    if seed != first and "eval" in declared and "train" in declared:
        out.setdefault("eval", {})["base_from"] = str(pipe_dir / f"seed-{first}" / "eval")
    return out


def _finished_steps(seed_dir: Path) -> set[str]:
    records = seed_dir / "pipeline_steps.json"
    return {r["step"] for r in read_json(records) if r.get("ok")} if records.exists() else set()


def check_seeded_pipeline(
    profile: str,
    run_name: str,
    seeds: list[int],
    *,
    overrides: dict[str, dict[str, Any]] | None = None,
    runs_dir: str | os.PathLike | None = None,
) -> tuple[Path, list[str], dict[int, dict[str, dict[str, Any]]]]:
    """Everything a seeds run checks before it starts -> (pipeline directory, its steps, every seed's overrides)."""
    check_run_name(run_name, param="run_name (--run-name)")
    pipe_dir = safe_write_path(
        Path(runs_dir).resolve() if runs_dir else runs_root(), run_name, param="--run-name"
    )
    declared = [s for s, *_ in STEPS if s in load_profiles()[profile]["steps"]]
    if "eval" not in declared or "train" not in declared:
        raise ValueError(f"profile '{profile}': seeds need a train and an eval step; its steps: {declared}")
    base = resolve_profile(profile, overrides)
    eval_seed = base["data"].get("eval_seed", base["data"].get("seed", 0))
    plans = {s: seed_overrides(overrides, s, seeds[0], pipe_dir, declared, eval_seed) for s in seeds}
    for over in plans.values():  # every seed's parameters, before anything runs
        typed = resolve_profile(profile, over)
        check_steps(typed, None)
        for step, values in typed.items():
            typed_step_params(step, values)
    return pipe_dir, declared, plans


def run_seeded_pipeline(
    profile: str,
    run_name: str,
    seeds: list[int],
    *,
    overrides: dict[str, dict[str, Any]] | None = None,
    runs_dir: str | os.PathLike | None = None,
    log=print,
) -> list[StepResult]:
    """The profile's steps once per seed, into ``runs/<run_name>/seed-<s>/``, then the seeds judged together
    (:func:`socialite_utils.studies.seeds.write_seed_report` -> ``runs/<run_name>/seeds/``). Every seed's
    parameters are checked before the first step runs. Rerunning the same command continues: finished seeds are
    kept, a seed's finished steps are not run again."""
    pipe_dir, declared, plans = check_seeded_pipeline(
        profile, run_name, seeds, overrides=overrides, runs_dir=runs_dir
    )
    results: list[StepResult] = []
    for s in seeds:
        seed_dir = pipe_dir / f"seed-{s}"
        done = _finished_steps(seed_dir)
        todo = [step for step in declared if step not in done]
        if not todo:
            log(f"[seed {s}] finished earlier: {seed_dir}")
            continue
        log(f"[seed {s}] {', '.join(todo)} -> {seed_dir}")
        ran = run_pipeline(
            profile, seed_dir.name, overrides=plans[s], only=todo if seed_dir.exists() else None,
            runs_dir=pipe_dir, log=log,
        )  # fmt: skip
        results += [StepResult(f"seed-{s}/{r.step}", r.notebook, r.seconds, r.ok, r.error) for r in ran]
        if not all(r.ok for r in ran):
            return results
    t0 = time.time()
    eval_params = resolve_profile(profile, overrides)["eval"]
    write_seed_report(
        pipe_dir,
        [pipe_dir / f"seed-{s}" for s in seeds],
        B=int(eval_params.get("bootstrap_samples", 1000)),
        seed=int(eval_params.get("seed", 0)),
    )
    results.append(StepResult("seeds", "socialite_utils.studies.seeds", time.time() - t0, True))
    log(f"[seeds] {len(seeds)} seeds judged together -> {pipe_dir / 'seeds'}")
    return results


def _failed_notebook_path(out_nb: Path) -> Path:
    """``notebooks/failed/<notebook>``: out of the numbered notebooks that the course site renders."""
    return out_nb.parent / "failed" / out_nb.name


def _drop_failed_notebook(out_nb: Path) -> None:
    """The step succeeded: the notebook of its earlier failure goes (and ``failed/`` when it is left empty)."""
    failed = _failed_notebook_path(out_nb)
    failed.unlink(missing_ok=True)
    if failed.parent.is_dir() and not any(failed.parent.iterdir()):
        failed.parent.rmdir()


def _keep_failed_notebook(tmp_nb: Path, out_nb: Path, step: str) -> Path:
    """Where the executed notebook of a failed or interrupted step is kept: its usual path, unless that holds the
    notebook of a run of the step that succeeded (then ``notebooks/failed/<notebook>``)."""
    ok_before = _step_records(out_nb.parent.parent).get(step, {}).get("ok") and out_nb.exists()
    target = _failed_notebook_path(out_nb) if ok_before else out_nb
    if tmp_nb.exists():
        target.parent.mkdir(exist_ok=True)
        os.replace(tmp_nb, target)
    return target


def format_summary(pipe_dir: str | os.PathLike) -> str:
    """Base vs tuned per category and group (mean macro-F1 over tasks, 95% CI over test examples), claims, and the
    figures."""

    pipe_dir = Path(pipe_dir)
    metrics_path = pipe_dir / "eval" / "metrics.json"
    if not metrics_path.exists() and (pipe_dir / "writing" / "claims.csv").exists():
        import pandas as pd

        claims = pd.read_csv(pipe_dir / "writing" / "claims.csv").fillna("")
        lines = [
            f"[{c.verdict}] {c.claim}: {getattr(c, 'comparison', '')}\n{'':<4}{c.evidence}"
            for c in claims.itertuples()
        ]
        return "writing assistance (notebook 07):\n" + "\n".join(lines) + f"\nrun: {pipe_dir / 'writing'}"
    inside = pipe_dir / "inside" / "inside.json"
    if not metrics_path.exists() and inside.exists():
        got = read_json(inside)
        return (
            f"inside the pipeline (notebook 00): {got['model']} on {got['task']}; log P({got['label']!r}) by hand "
            f"{got['logprob_by_hand']:.4f}, score mode {got['logprob_kit']:.4f}; macro-F1 by hand "
            f"{got['macro_f1_by_hand']:.1f}, scikit-learn {got['macro_f1_sklearn']:.1f}\nrun: {pipe_dir / 'inside'}"
        )
    findings = pipe_dir / "mixing" / "findings.txt"
    if not metrics_path.exists():
        return findings.read_text() if findings.exists() else f"no evaluation metrics at {metrics_path}"
    m = read_eval_metrics(metrics_path)
    m["claims"] = all_claims(pipe_dir, m)
    models = m["models"]
    lines = [
        format_headline(m),
        "",
        "mean macro-F1 over tasks [95% bootstrap CI over test examples] per category and group:",
    ]
    lines.append(f"{'':<22}{'tasks':>6}" + "".join(f"{name:>24}" for name in models))
    for section in ("categories", "groups"):
        for name, by_model in m[section].items():
            cells = [
                f"{fmt_value(by_model[k]['macro_over_tasks'])} {fmt_ci(example_ci(by_model[k]))}"
                for k in models
            ]
            lines.append(
                f"{name:<22}{by_model[models[0]]['n_tasks']:>6}" + "".join(f"{c:>24}" for c in cells)
            )
    figs = sorted(str(p.relative_to(pipe_dir)) for p in pipe_dir.glob("*/figures/*.png"))
    lines.append(f"figures ({pipe_dir}): " + (", ".join(figs) if figs else "none"))
    return "\n".join(lines)


def all_claims(pipe_dir: Path, metrics: dict) -> list[dict]:
    """The evaluation's claims (tuned vs base) followed by the baselines' (tuned vs the floors), when run."""
    path = pipe_dir / "baselines" / "baselines_metrics.json"
    floor = read_baselines_metrics(path).get("claims", []) if path.exists() else []
    return list(metrics["claims"]) + floor


def publish_figures(pipe_dir: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Write a finished run's headline numbers to ``dest`` and draw its figures (PNG + PDF) from them
    (:func:`socialite_utils.published.publish_run`), with the tables and summaries beside them."""
    import shutil

    pipe_dir, dest = Path(pipe_dir), Path(dest)
    copied = publish_run(pipe_dir, dest)
    if (pipe_dir / "eval" / "metrics.json").exists():
        metrics = read_eval_metrics(pipe_dir / "eval" / "metrics.json")
        metrics["claims"] = all_claims(pipe_dir, metrics)
        report_task_table(metrics).to_csv(dest / "eval_tasks.csv", index=False)
        report_aggregate_table(metrics).to_csv(dest / "eval_aggregates.csv", index=False)
        report_claims(metrics).to_csv(dest / "eval_claims.csv", index=False)
        # the paper's published macro-F1 beside ours, where a task stands in for one it reports
        report_paper_comparison(metrics).to_csv(dest / "papers.csv", index=False)
    mixing = [f"mixing/{n}" for n in ("results.csv", "aggregates.csv", "gains.csv", "findings.txt")]
    writing = {
        f"writing/{n}": f"writing_{Path(n).name}"
        for n in ("table.csv", "claims.csv", "examples.html", "figures/no_figure.txt")
    }
    extras = {
        e: Path(e).name for e in ("baselines/comparison.csv", "summary.txt", "pipeline_steps.json", *mixing)
    }
    for extra, name in {**extras, **writing}.items():
        if (pipe_dir / extra).exists():
            shutil.copyfile(pipe_dir / extra, dest / name)
    seeds = pipe_dir / "seeds"  # a seeds run: the seeds judged together, and each seed's step times
    if seeds.is_dir():
        for path in [
            *seeds.glob("*.csv"),
            *seeds.glob("*.json"),
            *seeds.glob("*.txt"),
        ]:  # the figure: drawn above
            copied.append(Path(shutil.copyfile(path, dest / path.name)))
        steps = {d.name: read_json(d / "pipeline_steps.json") for d in sorted(pipe_dir.glob("seed-*"))}
        write_json(dest / "seed_steps.json", steps)
    return copied


def _int_list(text: str, param: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{param} {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--profile", default="smoke", help="profile from profiles.yaml (smoke, cpu-demo, colab-t4, paper)"
    )
    ap.add_argument("--run-name", help="directory under runs/ for this pipeline run (required unless --list)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="STEP.PARAM=VALUE",
        help="override a parameter; the value is YAML as in profiles.yaml ([a, b] a list, null None)",
    )
    ap.add_argument("--only", help="comma-separated steps to (re)run, e.g. eval,analysis")
    ap.add_argument(
        "--seeds", help="comma-separated training seeds, e.g. 0,1,2: the steps once per seed, judged together"
    )
    ap.add_argument("--runs-dir", help="root for runs (default: $SOCIALITE_RUNS_DIR or <repo>/runs)")
    ap.add_argument("--list", action="store_true", help="list profiles and exit")
    ap.add_argument(
        "--check",
        action="store_true",
        help="check the plan (parameters, data, time and memory per step) without running anything",
    )
    ap.add_argument(
        "--device", help="--check: device whose rates to use (cpu, t4, a100; default: the profile's)"
    )
    ap.add_argument(
        "--publish", metavar="DIR", help="after a successful run, copy its headline figures + numbers to DIR"
    )
    args = ap.parse_args(argv)
    if args.list:
        for name, prof in load_profiles().items():
            print(f"{name:<10} {prof['description']}\n{'':<10} needs: {prof.get('needs', '-')}")
        return 0
    if args.check:
        try:
            overrides = {}
            for text in args.set:
                step, param, value = parse_override(text)
                overrides.setdefault(step, {})[param] = value
            print(plan_profile(args.profile, overrides, args.device).format())
        except PlanError as e:
            print(f"plan error: {e}", file=sys.stderr)
            return 1
        except (ValueError, KeyError, FileNotFoundError) as e:
            print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
            return 2
        return 0
    if not args.run_name:
        ap.error("the following arguments are required: --run-name")  # exit 2, as argparse's own check did
    overrides: dict[str, dict[str, Any]] = {}
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    try:  # a mistake in the command line: one clear line, no traceback, nothing run or written
        for text in args.set:
            step, param, value = parse_override(text)
            overrides.setdefault(step, {})[param] = value
        seeds = profile_seeds(args.profile, _int_list(args.seeds, "--seeds") if args.seeds else None)
        if seeds is None:
            check_pipeline(
                args.profile, args.run_name, overrides=overrides, only=only, runs_dir=args.runs_dir
            )
        elif only:
            raise ValueError(
                "--only and seeds: rerun the same command instead (finished seeds and steps are kept)"
            )
        else:
            check_seeded_pipeline(
                args.profile, args.run_name, seeds, overrides=overrides, runs_dir=args.runs_dir
            )
    except (ValueError, KeyError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    t0 = time.time()
    pipe_dir = (Path(args.runs_dir).resolve() if args.runs_dir else runs_root()) / args.run_name
    try:
        if seeds is not None:
            results = run_seeded_pipeline(
                args.profile, args.run_name, seeds, overrides=overrides, runs_dir=args.runs_dir
            )
        else:
            results = run_pipeline(
                args.profile, args.run_name, overrides=overrides, only=only, runs_dir=args.runs_dir
            )
    except PipelineTerminated as e:
        print(
            f"\n{e}: the step that was running is recorded as interrupted in {pipe_dir / 'pipeline.json'}; "
            "run the same command again to continue from it",
            file=sys.stderr,
        )
        return 128 + signal.SIGTERM
    print(f"\n=== {args.profile} pipeline '{args.run_name}': {time.time() - t0:.0f}s ===")
    for r in results:
        print(f"  {r.step:<10}{'ok' if r.ok else 'FAILED':<8}{r.seconds:>6.0f}s  {r.notebook}")
    if not all(r.ok for r in results):
        print(
            f"stopped at the failing step; executed notebooks are in {pipe_dir / 'notebooks'}; once it is fixed, "
            "run the same command again to continue from that step"
        )
        return 1
    summary = (
        (pipe_dir / "seeds" / "summary.txt").read_text().rstrip()
        if seeds is not None
        else format_summary(pipe_dir)
    )
    (pipe_dir / "summary.txt").write_text(summary + "\n")
    print(summary)
    if args.publish:
        copied = publish_figures(pipe_dir, args.publish)
        print(f"published {len(copied)} figure files and their numbers to {args.publish}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
