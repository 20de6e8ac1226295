"""Reading an evaluation run for the error analysis (notebook 04) and writing the analysis run.

Reads what :mod:`socialite_utils.evaluation` wrote (``runs/<eval_run>/metrics.json`` with ``schema_version`` 1 and
``predictions.jsonl``) into an :class:`EvalRun`; writes ``runs/<run_name>/`` with ``analysis.json``,
``sensitivity.jsonl`` and ``figures/``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .runs import (
    RunWriter,
    new_run_dir,
    provenance,
    read_json,
    resolve_run_dir,
    write_json,
    write_jsonl,
)
from .schema import PREDICTION_ROW_FIELDS, SchemaError, read_eval_metrics, read_prediction_rows

_REQUIRED_METRICS_FIELDS = ("settings", "models", "tasks")


class EvalRunError(SchemaError):
    """An evaluation run is missing, incomplete or from another schema; the message says what and where."""


# ----------------------------------------------------------------------------------------------------------------
# Loading an evaluation run
# ----------------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------------
# Writing the analysis run
# ----------------------------------------------------------------------------------------------------------------


def _json_safe(obj: Any) -> Any:
    """nan/inf -> None and tuples -> lists, recursively, so analysis.json is strict JSON."""
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_analysis_run(
    run_name: str,
    analysis: dict,
    *,
    sensitivity_rows: Sequence[dict] = (),
    figures: dict[str, Any] | None = None,
    params: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``analysis.json``, ``sensitivity.jsonl``, ``params.json``, ``provenance.json`` and ``figures/<name>.png|pdf``
    atomically (nothing appears at ``runs/<run_name>`` unless everything was written)."""
    from .plotting import save_figures

    run_dir = new_run_dir(run_name, overwrite=overwrite)
    with RunWriter(run_dir, overwrite=overwrite) as tmp:
        write_json(tmp / "analysis.json", _json_safe(analysis))
        write_jsonl(tmp / "sensitivity.jsonl", [_json_safe(r) for r in sensitivity_rows])
        write_json(tmp / "params.json", _json_safe(params or {}))
        write_json(
            tmp / "provenance.json",
            provenance({"stage": "error_analysis", "eval_run": analysis.get("eval_run")}),
        )
        (tmp / "figures").mkdir()
        save_figures(figures or {}, tmp / "figures")
    return run_dir


__all__ = ["EvalRun", "EvalRunError", "load_eval_run", "write_analysis_run"]
