"""The kit's run documents: their schema versions and one reader each.

- ``metrics.json`` of an evaluation run (notebook 03, :mod:`socialite_utils.evaluation`): :func:`read_eval_metrics`;
- ``predictions.jsonl`` of an evaluation or baselines run (one row per example x model): :func:`read_prediction_rows`;
- ``baselines_metrics.json`` of a baselines run (notebook 05): :func:`read_baselines_metrics`.

Every reader checks ``schema_version`` and the fields its caller needs, and raises :class:`SchemaError` (a
``ValueError``) naming the file and the field; a missing file is a ``FileNotFoundError`` naming the run.
The modules that read runs (``evaluation.load_eval_run``, ``analysis.load_eval_run``,
``baselines.load_eval_metrics``) are thin wrappers around these readers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .runs import iter_jsonl, read_json

EVAL_METRICS_SCHEMA_VERSION = 1  # metrics.json (evaluation run)
BASELINES_SCHEMA_VERSION = 1  # baselines_metrics.json (baselines run)
ANALYSIS_SCHEMA_VERSION = 1  # analysis.json (analysis run)

# Fields every prediction row carries (the analysis needs them; the full row has more).
PREDICTION_ROW_FIELDS = ("id", "task", "model", "mode", "gold", "parsed", "correct", "text")


class SchemaError(ValueError):
    """A run document is from another schema or lacks a field; the message names the file and the field."""


def _document(path: Path, what: str, *, error: type[Exception]) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path.parent} is incomplete: {path} is missing")
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise error(f"{path}: expected a JSON object at the top level")
    return doc


def check_schema_version(
    doc: dict, path: str | os.PathLike, expected: int, *, writer: str, error: type[Exception] = SchemaError
) -> None:
    """Raise ``error`` naming ``path`` and the field when ``doc['schema_version']`` is missing or not ``expected``;
    ``writer`` is what wrote the document (e.g. ``"evaluation (notebook 03)"``)."""
    if "schema_version" not in doc:
        raise error(
            f"{path}: no 'schema_version' field: this run was written by an older {writer}; "
            f"this kit reads schema_version {expected}. Re-run it to regenerate the run."
        )
    if doc["schema_version"] != expected:
        raise error(
            f"{path}: schema_version {doc['schema_version']!r} is not supported; this kit reads "
            f"schema_version {expected} (an older or newer {writer}? re-run it)"
        )


def _check_fields(doc: dict, path: Path, where: str, fields: Sequence[str], *, error) -> None:
    lack = [k for k in fields if k not in doc]
    if lack:
        raise error(f"{path}: {where} lacks {lack}")


def read_eval_metrics(
    path: str | os.PathLike,
    *,
    fields: Sequence[str] = ("models", "tasks"),
    task_fields: Sequence[str] = (),
    model_fields: Sequence[str] = (),
    regression_fields: Sequence[str] = (),
    check_version: bool = True,
    error: type[Exception] = SchemaError,
) -> dict[str, Any]:
    """An evaluation run's ``metrics.json`` (``path``: the file or the run directory), checked.

    ``fields`` must be at the top level, ``task_fields`` in every ``tasks.<task>``, ``model_fields`` in every
    ``tasks.<task>.models.<model>`` for each model in ``models`` (``regression_fields`` too for regression tasks).
    ``error`` is the exception class raised (a caller's own subclass of ValueError)."""
    path = Path(path)
    if path.is_dir() or path.suffix != ".json":
        path = path / "metrics.json"
    doc = _document(path, "evaluation run", error=error)
    if check_version:
        check_schema_version(
            doc, path, EVAL_METRICS_SCHEMA_VERSION, writer="evaluation (notebook 03)", error=error
        )
    _check_fields(doc, path, "the top level", fields, error=error)
    if not (task_fields or model_fields or regression_fields):
        return doc
    for task, t in doc["tasks"].items():
        _check_fields(t, path, f"tasks.{task}", task_fields, error=error)
        if not (model_fields or regression_fields):
            continue
        for model in doc["models"]:
            m = t["models"].get(model)
            if m is None:
                raise error(f"{path}: tasks.{task}.models lacks model {model!r} (listed in 'models')")
            need = list(model_fields) + (list(regression_fields) if t.get("type") == "regression" else [])
            _check_fields(m, path, f"tasks.{task}.models.{model}", need, error=error)
    return doc


def read_prediction_rows(
    path: str | os.PathLike,
    *,
    fields: Sequence[str] = (),
    line_field: str | None = None,
    what: str = "run",
    error: type[Exception] = SchemaError,
) -> list[dict[str, Any]]:
    """The rows of a ``predictions.jsonl``: a malformed line, or a row without one of ``fields``, raises
    ``error`` naming the file, line and field(s). ``line_field`` (e.g. ``"_line"``) stores each row's line number."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path.parent} is incomplete: {path} is missing")
    rows = []
    for lineno, row in iter_jsonl(path, error):
        missing = [k for k in fields if k not in row]
        if missing:
            raise error(f"{path}: line {lineno}: missing field(s) {missing}")
        if line_field:
            row[line_field] = lineno
        rows.append(row)
    return rows


def read_baselines_metrics(
    path: str | os.PathLike,
    *,
    fields: Sequence[str] = ("systems", "tasks"),
    error: type[Exception] = SchemaError,
) -> dict[str, Any]:
    """A baselines run's ``baselines_metrics.json`` (``path``: the file or the run directory), checked."""
    path = Path(path)
    if path.is_dir() or path.suffix != ".json":
        path = path / "baselines_metrics.json"
    doc = _document(path, "baselines run", error=error)
    check_schema_version(
        doc, path, BASELINES_SCHEMA_VERSION, writer="baselines run (notebook 05)", error=error
    )
    _check_fields(doc, path, "the top level", fields, error=error)
    return doc


__all__ = [
    "ANALYSIS_SCHEMA_VERSION",
    "BASELINES_SCHEMA_VERSION",
    "EVAL_METRICS_SCHEMA_VERSION",
    "PREDICTION_ROW_FIELDS",
    "SchemaError",
    "check_schema_version",
    "read_baselines_metrics",
    "read_eval_metrics",
    "read_prediction_rows",
]
