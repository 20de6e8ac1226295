"""The kit's run documents: one schema version, one reader and one writer each, one row check.

``SCHEMA_VERSION`` is the version of every versioned run document the kit writes (``metrics.json``,
``baselines_metrics.json``, ``analysis.json``, a writing run's ``metrics.json``); the readers here refuse any other.

- data rows, ``data/<split>.jsonl`` of a data run (notebook 01, :mod:`socialite_utils.data.assembly`):
  :func:`read_data_rows` / :func:`write_data_rows`, each row checked by :func:`check_data_row`;
- prediction rows, ``predictions.jsonl`` of an evaluation or baselines run (one row per example x model):
  :func:`read_prediction_rows` / :func:`write_prediction_rows`;
- ``metrics.json`` of an evaluation run (notebook 03, :mod:`socialite_utils.evaluation`): :func:`read_eval_metrics`
  / :func:`write_eval_metrics`;
- ``baselines_metrics.json`` of a baselines run (notebook 05): :func:`read_baselines_metrics` /
  :func:`write_baselines_metrics`;
- ``analysis.json`` of an analysis run (notebook 04) and a writing run's ``metrics.json`` (notebook 07) carry
  ``schema_version`` but no module reads them back, so they have no reader here (their writers:
  :func:`socialite_utils.analysis.write.write_analysis_run`, :func:`socialite_utils.studies.writing.write_writing_report`);
- task documents (the task YAML files): :mod:`socialite_utils.registry` is their one home (``load_registry``
  checks every field and level, :class:`~socialite_utils.registry.RegistryError` names the file, task and field);
  nothing here repeats it.

Every reader checks ``schema_version`` and the fields its callers need, and raises :class:`SchemaError` (a
``ValueError``) naming the file, the line for row files, and the field; a missing file is a ``FileNotFoundError``
naming the run. Every writer checks the same fields before writing anything (a writer cannot produce a document its
reader refuses) and writes atomically (:func:`socialite_utils.runs.write_json_atomic`,
:func:`socialite_utils.runs.write_jsonl_atomic`); the bytes are those of :func:`socialite_utils.runs.write_json` /
:func:`socialite_utils.runs.write_jsonl`. The modules that read runs (``assembly.load_data_run``,
``training.load_training_rows``, ``evaluation.load_eval_run``, ``analysis.load_eval_run``,
``baselines.load_eval_metrics``, the mixing study) are thin wrappers around these readers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .runs import iter_jsonl, read_json, write_json_atomic, write_jsonl_atomic

SCHEMA_VERSION = 1  # every versioned run document: metrics.json, baselines_metrics.json, analysis.json

# Fields every data row carries (data.assembly, data.writing_rows and data.mixing write all of them; rows may hold more).
DATA_ROW_FIELDS = (
    "id",
    "task",
    "category",
    "task_type",
    "group",
    "split",
    "text",
    "text_b",
    "label",
    "score",
    "labels",
    "prompt",
    "completion",
    "prompt_format",
    "few_shot_k",
)
# Data-row fields that may be null: no second text, no rating, no label (generalist rows answer in free text).
NULLABLE_ROW_FIELDS = ("text_b", "score", "label")
# Task types whose rows answer with one of ``labels`` (regression rows: a binned rating, plus its ``score``).
LABELLED_TYPES = ("classification", "regression")

# Fields every prediction row carries (the analysis needs them; the full row has more).
PREDICTION_ROW_FIELDS = ("id", "task", "model", "mode", "gold", "parsed", "correct", "text")
# Every key of a prediction row, in order (evaluation.predictions.build_prediction_row builds them; a key that does not apply,
# e.g. a baseline's prompt-only fields, is None).
PREDICTION_ROW_KEYS = (
    "id", "task", "category", "group", "task_type", "model", "mode", "few_shot_k", "variant", "label_words",
    "text", "text_b", "truncated_tokens", "gold", "gold_score", "raw_output", "parsed", "logprobs", "probs",
    "expected_score", "score_kind", "correct",
)  # fmt: skip

# What a metrics.json holds: at the top level, per task, per task and model (regression tasks: also pearson_r).
EVAL_METRICS_FIELDS = ("settings", "models", "tasks")
EVAL_TASK_FIELDS = ("category", "group", "type", "n", "labels", "models")
EVAL_MODEL_FIELDS = ("macro_f1", "macro_f1_ci", "accuracy")
EVAL_REGRESSION_FIELDS = ("pearson_r",)
BASELINES_METRICS_FIELDS = ("systems", "tasks")
# why a generated answer was invalid (analysis.json "invalid_summary"), in display order
INVALID_KINDS = ("empty", "several_labels", "echo", "label_with_extra_text", "out_of_label_set")

_EVAL_WRITER = "evaluation (notebook 03)"
_BASELINES_WRITER = "baselines run (notebook 05)"


class SchemaError(ValueError):
    """A run document is from another schema or lacks a field; the message names the file and the field."""


# ---------------------------------------------------------------- checks shared by readers and writers


def check_schema_version(
    doc: dict,
    path: str | os.PathLike,
    expected: int = SCHEMA_VERSION,
    *,
    writer: str,
    error: type[Exception] = SchemaError,
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


def _document(path: Path, what: str, *, error: type[Exception]) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path.parent} is incomplete: {path} is missing")
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise error(f"{path}: expected a JSON object at the top level")
    return doc


def _doc_path(path: str | os.PathLike, name: str) -> Path:
    path = Path(path)
    return path / name if path.is_dir() or path.suffix != ".json" else path


def _refuse_to_write(e: Exception) -> SchemaError:
    return SchemaError(f"{e} (nothing written: the kit's reader would refuse this document)")


# ---------------------------------------------------------------- data rows


def row_where(source: str | os.PathLike, lineno: int, row: dict) -> str:
    """``<file>: line N (id X)``: where a row is, for error messages."""
    return f"{source}: line {lineno} (id {row.get('id', '?')})"


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, dict) and "role" in m and "content" in m for m in value
    )


def check_data_row(
    row: dict, where: str, *, fields: Sequence[str] = DATA_ROW_FIELDS, error: type[Exception] = SchemaError
) -> None:
    """Raise ``error`` starting with ``where`` (see :func:`row_where`) and naming the field when a data row is bad.

    Checked: every field of ``fields`` is present and, except the :data:`NULLABLE_ROW_FIELDS`, not null; a
    classification or regression row's ``label`` is one of its ``labels`` and a regression row has a numeric
    ``score``; ``prompt`` and ``completion`` (when both are present) are both strings, the completion not empty, or
    both lists of chat messages."""
    missing = [k for k in fields if row.get(k) is None and (k not in row or k not in NULLABLE_ROW_FIELDS)]
    if missing:
        raise error(f"{where}: missing field(s) {missing}")
    kind = row.get("task_type")
    if kind in LABELLED_TYPES and "label" in row and "labels" in row and row["label"] not in row["labels"]:
        raise error(f"{where}: field 'label' {row['label']!r} is not in {row['labels']}")
    score = row.get("score")
    if kind == "regression" and (isinstance(score, bool) or not isinstance(score, int | float)):
        raise error(f"{where}: regression row needs a numeric 'score', got {score!r}")
    if "prompt" in row and "completion" in row:
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, str) and isinstance(completion, str):
            if not completion.strip():
                raise error(f"{where}: empty 'completion'")
        elif not (_is_messages(prompt) and _is_messages(completion)):
            raise error(
                f"{where}: 'prompt' and 'completion' must both be strings or both be lists of chat messages, "
                f"got {type(prompt).__name__} and {type(completion).__name__}"
            )


def read_data_rows(
    path: str | os.PathLike,
    *,
    fields: Sequence[str] = DATA_ROW_FIELDS,
    what: str = "data run",
    error: type[Exception] = SchemaError,
) -> list[dict[str, Any]]:
    """The rows of a data run's ``data/<split>.jsonl``, each checked by :func:`check_data_row` (``fields``: the
    fields the caller needs); a malformed line or bad row raises ``error`` naming the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path.parent.parent} is incomplete: {path} is missing")
    rows = []
    for lineno, row in iter_jsonl(path, error):
        check_data_row(row, row_where(path, lineno, row), fields=fields, error=error)
        rows.append(row)
    return rows


def write_data_rows(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Check every row (:func:`check_data_row`, all of :data:`DATA_ROW_FIELDS`) and only then write them to
    ``path`` as JSON Lines, atomically."""
    path, rows = Path(path), list(rows)
    for lineno, row in enumerate(rows, start=1):
        check_data_row(row, f"{row_where(path, lineno, row)} (nothing written)")
    return write_jsonl_atomic(path, rows)


# ---------------------------------------------------------------- prediction rows


def _check_prediction_row(row: dict, where: str, fields: Sequence[str], error: type[Exception]) -> None:
    missing = [k for k in fields if k not in row]
    if missing:
        raise error(f"{where}: missing field(s) {missing}")


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
        _check_prediction_row(row, f"{path}: line {lineno}", fields, error)
        if line_field:
            row[line_field] = lineno
        rows.append(row)
    return rows


def write_prediction_rows(
    path: str | os.PathLike, rows: Iterable[dict], *, fields: Sequence[str] = PREDICTION_ROW_FIELDS
) -> Path:
    """Check every row has ``fields`` (default: :data:`PREDICTION_ROW_FIELDS`, what the analysis reads) and only
    then write them to ``path`` as JSON Lines, atomically."""
    path, rows = Path(path), list(rows)
    for lineno, row in enumerate(rows, start=1):
        _check_prediction_row(row, f"{path}: line {lineno} (nothing written)", fields, SchemaError)
    return write_jsonl_atomic(path, rows)


# ---------------------------------------------------------------- metrics.json (evaluation run)


def _check_eval_metrics(
    doc: dict,
    path: Path,
    *,
    fields: Sequence[str],
    task_fields: Sequence[str],
    model_fields: Sequence[str],
    regression_fields: Sequence[str],
    error: type[Exception],
) -> None:
    _check_fields(doc, path, "the top level", fields, error=error)
    if not (task_fields or model_fields or regression_fields):
        return
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
    path = _doc_path(path, "metrics.json")
    doc = _document(path, "evaluation run", error=error)
    if check_version:
        check_schema_version(doc, path, writer=_EVAL_WRITER, error=error)
    _check_eval_metrics(
        doc,
        path,
        fields=fields,
        task_fields=task_fields,
        model_fields=model_fields,
        regression_fields=regression_fields,
        error=error,
    )
    return doc


def write_eval_metrics(path: str | os.PathLike, doc: dict[str, Any]) -> Path:
    """Write an evaluation run's ``metrics.json`` (``path``: the file or the run directory) atomically, after
    checking everything any reader of it asks for (``schema_version`` :data:`SCHEMA_VERSION`,
    :data:`EVAL_METRICS_FIELDS`, :data:`EVAL_TASK_FIELDS`, :data:`EVAL_MODEL_FIELDS`, regression:
    :data:`EVAL_REGRESSION_FIELDS`)."""
    path = _doc_path(path, "metrics.json")
    try:
        check_schema_version(doc, path, writer=_EVAL_WRITER)
        _check_eval_metrics(
            doc,
            path,
            fields=EVAL_METRICS_FIELDS,
            task_fields=EVAL_TASK_FIELDS,
            model_fields=EVAL_MODEL_FIELDS,
            regression_fields=EVAL_REGRESSION_FIELDS,
            error=SchemaError,
        )
    except SchemaError as e:
        raise _refuse_to_write(e) from None
    return write_json_atomic(path, doc)


# ---------------------------------------------------------------- baselines_metrics.json (baselines run)


def read_baselines_metrics(
    path: str | os.PathLike,
    *,
    fields: Sequence[str] = BASELINES_METRICS_FIELDS,
    error: type[Exception] = SchemaError,
) -> dict[str, Any]:
    """A baselines run's ``baselines_metrics.json`` (``path``: the file or the run directory), checked."""
    path = _doc_path(path, "baselines_metrics.json")
    doc = _document(path, "baselines run", error=error)
    check_schema_version(doc, path, writer=_BASELINES_WRITER, error=error)
    _check_fields(doc, path, "the top level", fields, error=error)
    return doc


def write_baselines_metrics(path: str | os.PathLike, doc: dict[str, Any]) -> Path:
    """Write a baselines run's ``baselines_metrics.json`` (``path``: the file or the run directory) atomically,
    after checking ``schema_version`` and :data:`BASELINES_METRICS_FIELDS`."""
    path = _doc_path(path, "baselines_metrics.json")
    try:
        check_schema_version(doc, path, writer=_BASELINES_WRITER)
        _check_fields(doc, path, "the top level", BASELINES_METRICS_FIELDS, error=SchemaError)
    except SchemaError as e:
        raise _refuse_to_write(e) from None
    return write_json_atomic(path, doc)


__all__ = [
    "BASELINES_METRICS_FIELDS",
    "DATA_ROW_FIELDS",
    "EVAL_METRICS_FIELDS",
    "EVAL_MODEL_FIELDS",
    "EVAL_REGRESSION_FIELDS",
    "EVAL_TASK_FIELDS",
    "LABELLED_TYPES",
    "NULLABLE_ROW_FIELDS",
    "PREDICTION_ROW_FIELDS",
    "PREDICTION_ROW_KEYS",
    "SCHEMA_VERSION",
    "SchemaError",
    "check_data_row",
    "check_schema_version",
    "read_baselines_metrics",
    "read_data_rows",
    "read_eval_metrics",
    "read_prediction_rows",
    "row_where",
    "write_baselines_metrics",
    "write_data_rows",
    "write_eval_metrics",
    "write_prediction_rows",
]
