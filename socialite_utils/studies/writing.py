"""Notebook 07's steps (writing assistance, Writing-Alpaca): one resumable run directory.

``runs/<run_name>/`` holds ``params.json``, ``data/`` (a data run, written once by assembly.write_data_run),
``train-writing/``, ``train-writing-general/``, ``train-general/`` (training runs of notebook 02's ``train_lora``),
``predictions/<system>.jsonl`` (one file per system, written when that system has generated),
``predictions.jsonl`` (all systems), ``metrics.json``, ``table.csv``, ``claims.csv``, ``examples.html`` and
``figures/<metric>.png|pdf`` (a metric that is 0 for every system has none: ``figures/no_figure.txt`` says which).
Each step reuses what an earlier, interrupted execution finished with the same parameters, so rerunning the
notebook continues; different parameters under the same name are refused.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..data.assembly import build_data, load_data_run, write_data_run
from ..data.writing_rows import select_mixture
from ..params import FromMapping, ParamError, Rule, as_bool, check_params
from ..plotting import plot_generation_metric, save_figure
from ..registry import load_registry, select_tasks
from ..runs import (
    check_run_name,
    provenance,
    read_json,
    run_dir_for,
    runs_root_at,
    write_json,
    write_text_atomic,
)
from ..schema import read_prediction_rows, write_prediction_rows
from ..training.lora import TrainParams
from .writing_eval import (
    copy_predictions,
    format_diff_html,
    load_generation_model,
    report_generation_table,
    report_writing_claims,
    score_generations,
    train_or_reuse,
)

# system name -> (train mixture of data.writing_rows.select_mixture, train run directory)
TUNED_SYSTEMS = {
    "writing": ("tasks", "train-writing"),
    "writing+general": ("tasks+general", "train-writing-general"),
    "general": ("general", "train-general"),
}
STAGE = "writing_assistance"

# Ranges and choices of WritingStudyParams (checked with the declared types by params.check_params).
WRITING_RULES = {
    "suite": Rule(nonempty=True),
    "prompt_format": Rule(choices=("alpaca", "paper", "chat")),
    "max_train_per_task": Rule(ge=1),
    "max_eval_per_task": Rule(ge=1),
    "general_train_rows": Rule(ge=0),
    "general_licence": Rule(choices=("any", "commercial")),
    "systems": Rule(choices=tuple(TUNED_SYSTEMS), nonempty=True),
    "base_model": Rule(nonempty=True),
    "batch_size": Rule(ge=1),
    "max_new_tokens_factor": Rule(gt=0, le=100),
    "max_new_tokens_cap": Rule(ge=1),
    "bootstrap_samples": Rule(ge=1),
    "seed": Rule(ge=0),
}


@dataclass
class WritingStudyParams(FromMapping):
    """Every knob of notebook 07 (its parameters cell maps 1:1 onto these fields); :meth:`validate` checks them all
    before anything is written."""

    run_name: str = "writing-demo"
    suite: str = "writing"
    tasks: list[str] | None = None
    task_dirs: list[str] = field(default_factory=list)
    writing_dir: str | None = None
    prompt_format: str = "alpaca"
    max_train_per_task: int | None = 48
    max_eval_per_task: int | None = 25
    general_train_rows: int = 192
    general_licence: str = "any"
    systems: list[str] = field(default_factory=lambda: list(TUNED_SYSTEMS))
    base_model: str = "smollm2-135m"
    learning_rate: float = 0.0005
    num_train_epochs: float = 1.0
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 2
    max_length: int = 384
    lora_r: int = 8
    lora_alpha: int = 16
    peft: str = "lora"  # "none": every weight trained, Writing-Alpaca's full fine-tuning (GPU memory for 7B)
    batch_size: int = 16
    max_new_tokens_factor: float = 1.5
    max_new_tokens_cap: int = 128
    bootstrap_samples: int = 1000
    torch_threads: int | None = None
    seed: int = 0
    overwrite: bool = False
    resume: bool = True  # continue an existing run of this name (False: an existing one is refused)
    smoke: bool = False

    def validate(self) -> WritingStudyParams:
        """Raise ValueError naming the bad parameter; return self (values coerced to their declared types)."""
        check_run_name(self.run_name)
        check_params(self, WRITING_RULES)
        try:  # an unknown suite or task is named now, not after the first cell ran
            select_tasks(load_registry(self.suite, self.task_dirs), self.tasks)
        except KeyError as e:
            raise ParamError(e.args[0] if e.args else str(e)) from None
        TrainParams(
            run_name="template", base_model=self.base_model, learning_rate=self.learning_rate,
            num_train_epochs=self.num_train_epochs, per_device_train_batch_size=self.per_device_train_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps, max_length=self.max_length,
            lora_r=self.lora_r, lora_alpha=self.lora_alpha, peft=self.peft, seed=self.seed,
            torch_threads=self.torch_threads,
        ).validate()  # fmt: skip
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prepare_writing_run(
    run_name: str, params: dict[str, Any], *, overwrite: bool = False, resume: bool = True
) -> Path:
    """The run directory, with ``params.json``. An existing run with the same params is continued (with
    ``resume=False`` it is refused); with other params it is refused. ``overwrite`` removes it and starts again
    (only if it is a run this module wrote)."""
    run_dir = run_dir_for(run_name)
    overwrite = as_bool(overwrite, param="overwrite")
    resume = as_bool(resume, param="resume")
    params = {k: v for k, v in params.items() if k not in ("overwrite", "resume")}
    path = run_dir / "params.json"
    if run_dir.exists():
        old = read_json(path) if path.exists() else None
        if old is None or old.get("stage") != STAGE:
            raise FileExistsError(
                f"{run_dir} exists and is not a writing-assistance run; choose another run_name"
            )
        if overwrite:
            shutil.rmtree(run_dir)
        elif not resume:
            raise FileExistsError(
                f"{run_dir} exists; set resume=True to continue it (finished steps are reused) or overwrite=True "
                "to start it again, or choose another run_name"
            )
        elif old["params"] != params:
            diff = sorted(
                k for k in set(old["params"]) | set(params) if old["params"].get(k) != params.get(k)
            )
            raise ValueError(
                f"{run_dir} was started with other parameters ({', '.join(diff)}); choose another run_name or set "
                "overwrite=True to start it again"
            )
        else:
            print(f"continuing {run_dir}")
            return run_dir
    run_dir.mkdir(parents=True)
    write_json(path, {"stage": STAGE, "params": params})
    write_json(run_dir / "provenance.json", provenance({"stage": STAGE}))
    return run_dir


def build_or_load_data(run_dir: Path, tasks: list, **build_kwargs: Any) -> dict[str, list[dict]]:
    """``run_dir/data``: built with assembly.build_data(tasks, **build_kwargs) and written once, then read back."""

    data_dir = run_dir / "data"
    if not data_dir.is_dir():
        with runs_root_at(run_dir):
            write_data_run("data", build_data(tasks, **build_kwargs))
    return load_data_run(data_dir)


def train_systems(
    run_dir: Path, train_rows: list[dict], base_params: Any, systems: list[str]
) -> dict[str, Path]:
    """Train (or reuse) one LoRA run per tuned system on its mixture; ``base_params``: a TrainParams template."""

    out = {}
    for name in systems:
        if name not in TUNED_SYSTEMS:
            raise ValueError(f"unknown system {name!r}; tuned systems: {list(TUNED_SYSTEMS)}")
        mixture, train_name = TUNED_SYSTEMS[name]
        rows = select_mixture(train_rows, mixture)
        print(f"[{name}] {len(rows)} train rows ({mixture})")
        params = replace(base_params, run_name=train_name)
        out[name] = train_or_reuse(params, rows, where=run_dir)
    return out


def generate_systems(
    run_dir: Path,
    test_rows: list[dict],
    base_model: str,
    train_runs: dict[str, Path],
    *,
    seed: int = 0,
    **generate_kwargs: Any,
) -> list[dict]:
    """Predictions of the copy baseline, the base model and every tuned system, each cached as
    ``predictions/<system>.jsonl`` (a finished system is not generated again)."""

    preds = copy_predictions(test_rows)
    for name, train_run in {"base": None, **train_runs}.items():
        path = run_dir / "predictions" / f"{name.replace('+', '_')}.jsonl"
        if path.exists():
            preds += read_prediction_rows(path)
            continue
        model, tokenizer = load_generation_model(base_model, train_run, seed=seed)
        rows = score_generations(model, tokenizer, test_rows, model_name=name, **generate_kwargs)
        write_prediction_rows(path, rows)  # atomic: a killed run leaves no half-written cache
        preds += rows
        del model
    return preds


def write_writing_report(
    run_dir: Path, predictions: list[dict], metrics: dict, *, view_model: str
) -> list[Path]:
    """predictions.jsonl, metrics.json, table.csv, claims.csv, examples.html and one figure per metric, except a
    metric that is 0 for every system: no figure, named with the reason in ``figures/no_figure.txt`` (and printed)."""

    paths = [
        write_prediction_rows(run_dir / "predictions.jsonl", predictions),
        write_json(run_dir / "metrics.json", metrics),
    ]
    report_generation_table(metrics).to_csv(run_dir / "table.csv", index=False)
    report_writing_claims(metrics).to_csv(run_dir / "claims.csv", index=False)
    paths += [run_dir / "table.csv", run_dir / "claims.csv"]
    tasks = [n for n, t in metrics["tasks"].items() if t["status"] == "ok"]
    (run_dir / "examples.html").write_text(format_diff_html(predictions, tasks, view_model), encoding="utf-8")
    paths.append(run_dir / "examples.html")
    names = sorted({m for t in metrics["tasks"].values() if t["status"] == "ok" for m in t["metrics"]})
    skipped = figure_skips(metrics)
    for metric in names:
        if metric in skipped:
            for stale in (run_dir / "figures").glob(f"{metric}.*"):  # an earlier execution's figure of it
                stale.unlink()
            continue
        paths += save_figure(plot_generation_metric(metrics, metric), run_dir / "figures" / metric)
    note = run_dir / "figures" / NO_FIGURE_NOTE
    if skipped:
        text = "".join(f"{m}: no figure, {why}\n" for m, why in skipped.items())
        print(text, end="")
        note.parent.mkdir(parents=True, exist_ok=True)
        paths.append(write_text_atomic(note, text))
    else:
        note.unlink(missing_ok=True)
    return paths


NO_FIGURE_NOTE = (
    "no_figure.txt"  # figures/<this>: the metrics drawn as no figure, one line each with the reason
)


def figure_skips(metrics: dict) -> dict[str, str]:
    """metric -> why it gets no figure: a metric that is 0 for every system on every task with data would be an
    empty bar chart (e.g. exact match when no output equals a reference)."""
    values: dict[str, list[float]] = {}
    for t in metrics["tasks"].values():
        if t["status"] != "ok":
            continue
        for metric in t["metrics"]:
            values.setdefault(metric, []).extend(s[metric]["value"] for s in t["systems"].values())
    return {
        m: f"0 for every system ({', '.join(metrics['models'])}) on every task with data"
        for m, vs in sorted(values.items())
        if vs and all(v == 0 for v in vs)
    }
