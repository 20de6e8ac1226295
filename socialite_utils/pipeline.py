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
import sys
import time
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from .data.types import DataParams
from .evaluation.plan import EVAL_RULES, EvalParams
from .params import as_bool, coerce_field
from .plancheck import Plan, PlanError, check_plan
from .reporting import (
    example_ci,
    fmt_ci,
    fmt_value,
    format_headline,
    report_aggregate_table,
    report_claims,
    report_task_table,
)
from .runs import (
    RunExistsError,
    check_run_name,
    load_yaml_strict,
    provenance,
    read_json,
    repo_root,
    runs_root,
    safe_write_path,
    write_json_atomic,
)
from .schema import read_baselines_metrics, read_eval_metrics
from .studies.mixing import STUDY_RULES, MixingStudyParams
from .studies.writing import WRITING_RULES, WritingStudyParams
from .training.lora import TRAIN_RULES, TrainParams

PROFILES_FILE = Path(__file__).parent / "profiles.yaml"
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

# (step, notebook, run directory it writes, how it receives the earlier runs)
STEPS: list[tuple[str, str, str, dict[str, str]]] = [
    ("data", "01_data_assembly.ipynb", "data", {}),
    ("train", "02_instruction_tuning.ipynb", "train", {"data_run": "data"}),
    ("eval", "03_evaluation.ipynb", "eval", {"data_run": "data", "train_run": "train"}),
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
    return check_plan(profile, params, declared, device or prof.get("device", "cpu"))


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


def _write_step_records(pipe_dir: Path, results: list[StepResult]) -> None:
    """``pipeline_steps.json``: the latest result of each step (a rerun replaces only the steps it ran)."""
    steps_file = pipe_dir / "pipeline_steps.json"
    records = {r["step"]: r for r in read_json(steps_file)} if steps_file.exists() else {}
    records |= {r.step: r.__dict__ for r in results}
    order = [s[0] for s in STEPS]
    write_json_atomic(steps_file, sorted(records.values(), key=lambda r: order.index(r["step"])))


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
        raise RunExistsError(
            f"{pipe_dir} already exists; choose another --run-name (or --only to rerun steps)"
        )
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
    steps = [s for s in STEPS if s[0] in declared and (not only or s[0] in only)]
    (pipe_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    invocation = {"command": shlex.join(sys.argv), "profile": profile, "run_name": run_name, "only": only,
                  "overrides": overrides or {}, "params": params, "provenance": provenance({"stage": "pipeline"})}  # fmt: skip
    history = PipelineHistory(pipe_dir, invocation)
    # Every notebook resolves run names under SOCIALITE_RUNS_DIR: point it at this pipeline's directory.
    previous = os.environ.get("SOCIALITE_RUNS_DIR")
    os.environ["SOCIALITE_RUNS_DIR"] = str(pipe_dir)
    results: list[StepResult] = []
    try:
        for step, notebook, out_run, links in steps:
            # An earlier run is passed on only when the profile declares its step and neither the profile nor --set
            # names the run: a base-only evaluation (train_run: null, no train step) keeps its None.
            linked = {k: run for k, run in links.items() if run in declared and k not in params[step]}
            nb_params = {**params[step], "run_name": out_run, **linked}
            if only:
                # --only asks to run these steps again: their previous runs are replaced, atomically, only once the
                # new run is complete (a failing rerun leaves the old one in place).
                nb_params["overwrite"] = True
            out_nb = pipe_dir / "notebooks" / notebook
            log(f"[{step}] {notebook} -> {pipe_dir / out_run}")
            history.step(step, notebook, "started")
            t0 = time.time()
            try:
                pm.execute_notebook(
                    str(notebooks_dir() / notebook),
                    str(out_nb),
                    parameters=nb_params,
                    cwd=str(notebooks_dir()),
                    kernel_name="python3",
                    progress_bar=False,
                    log_output=False,
                    extra_arguments=KERNEL_QUIET,
                )
            except pm.PapermillExecutionError as e:
                results.append(StepResult(step, notebook, time.time() - t0, False, f"{e.ename}: {e.evalue}"))
                history.step(step, notebook, "failed", seconds=results[-1].seconds, error=results[-1].error)
                log(
                    f"[{step}] FAILED in cell {e.exec_count}: {e.ename}: {e.evalue}\n  executed notebook: {out_nb}"
                )
                break
            except BaseException as e:  # interrupted (Ctrl-C) or the kernel died: record it, then stop
                status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
                history.step(
                    step, notebook, status, seconds=time.time() - t0, error=f"{type(e).__name__}: {e}"
                )
                history.finish(status)
                raise
            results.append(StepResult(step, notebook, time.time() - t0, True))
            history.step(step, notebook, "succeeded", seconds=results[-1].seconds)
            _write_step_records(pipe_dir, results)
            log(f"[{step}] done in {results[-1].seconds:.0f}s")
    finally:
        if previous is None:
            os.environ.pop("SOCIALITE_RUNS_DIR", None)
        else:
            os.environ["SOCIALITE_RUNS_DIR"] = previous
    _write_step_records(pipe_dir, results)
    history.finish("succeeded" if all(r.ok for r in results) else "failed")
    return results


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


# Figures worth showing, copied by --publish together with the numbers behind them.
PUBLISHED_FIGURES = {
    "eval/figures/category_bars": "category_bars",
    "eval/figures/task_deltas": "task_deltas",
    "eval/figures/seen_related": "seen_related",
    "baselines/figures/comparison": "baselines_comparison",
    "analysis/figures/sensitivity": "prompt_sensitivity",
    "analysis/figures/reliability": "reliability",
    "data/figures/composition": "data_composition",
    "train/loss_curve": "loss_curve",
    "mixing/figures/mixing_curves": "mixing_curves",
    "mixing/figures/mixing_gain": "mixing_gain",
    "mixing/figures/specialisation_vs_retention": "specialisation_vs_retention",
}


def publish_figures(pipe_dir: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Copy a finished run's headline figures (PNG + PDF) to ``dest`` with its numbers beside them."""
    import shutil

    pipe_dir, dest = Path(pipe_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    # notebook 07 draws one figure per metric: published as writing_<metric>
    writing = {
        f"writing/figures/{p.stem}": f"writing_{p.stem}" for p in pipe_dir.glob("writing/figures/*.png")
    }
    for src, name in {**PUBLISHED_FIGURES, **writing}.items():
        for ext in (".png", ".pdf"):
            path = pipe_dir / (src + ext)
            if path.exists():
                copied.append(Path(shutil.copyfile(path, dest / (name + ext))))
    if (pipe_dir / "eval" / "metrics.json").exists():
        metrics = read_eval_metrics(pipe_dir / "eval" / "metrics.json")
        metrics["claims"] = all_claims(pipe_dir, metrics)
        report_task_table(metrics).to_csv(dest / "eval_tasks.csv", index=False)
        report_aggregate_table(metrics).to_csv(dest / "eval_aggregates.csv", index=False)
        report_claims(metrics).to_csv(dest / "eval_claims.csv", index=False)
    mixing = [f"mixing/{n}" for n in ("results.csv", "aggregates.csv", "gains.csv", "findings.txt")]
    writing = {f"writing/{n}": f"writing_{n}" for n in ("table.csv", "claims.csv", "examples.html")}
    extras = {
        e: Path(e).name for e in ("baselines/comparison.csv", "summary.txt", "pipeline_steps.json", *mixing)
    }
    for extra, name in {**extras, **writing}.items():
        if (pipe_dir / extra).exists():
            shutil.copyfile(pipe_dir / extra, dest / name)
    return copied


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
        check_pipeline(args.profile, args.run_name, overrides=overrides, only=only, runs_dir=args.runs_dir)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    t0 = time.time()
    results = run_pipeline(
        args.profile, args.run_name, overrides=overrides, only=only, runs_dir=args.runs_dir
    )
    pipe_dir = (Path(args.runs_dir).resolve() if args.runs_dir else runs_root()) / args.run_name
    print(f"\n=== {args.profile} pipeline '{args.run_name}': {time.time() - t0:.0f}s ===")
    for r in results:
        print(f"  {r.step:<10}{'ok' if r.ok else 'FAILED':<8}{r.seconds:>6.0f}s  {r.notebook}")
    if not all(r.ok for r in results):
        print(f"stopped at the failing step; executed notebooks are in {pipe_dir / 'notebooks'}")
        return 1
    summary = format_summary(pipe_dir)
    (pipe_dir / "summary.txt").write_text(summary + "\n")
    print(summary)
    if args.publish:
        copied = publish_figures(pipe_dir, args.publish)
        print(f"published {len(copied)} figure files and their numbers to {args.publish}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
