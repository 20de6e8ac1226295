"""Loading raw task data from the three sources, with errors that name file, line and field.

Every loader returns *raw records*: ``{"text", "text_b", "label", "file", "line", "instruction"}``
where ``label`` is the source's own label (mapped to verbalizers and validated later by
:mod:`socialite_utils.data.assembly`). Sources:

* ``local``: a bundle directory ``<dir>/<task>/{train,validation,test}.jsonl`` + ``MANIFEST.json``
  (the offline demo reads ``../shared/data/social_tasks``);
* ``socialite_instructions``: the paper's released data ``hlab/SocialiteInstructions`` on the hub;
* ``socket``: the SocKET benchmark's raw files ``Blablablab/SOCKET`` on the hub.
The two hub sources live in :mod:`socialite_utils.data.sources`; pass ``data_dir`` to read a local copy
in the same layout instead of downloading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..registry import Task
from ..runs import iter_jsonl
from .fetch import not_fetched, project_data_dir
from .sample import SAMPLE_DIR, on_colab, print_notice_once
from .sources import (
    SOCIALITE_REPO,
    SOCKET_REPO,
    _socialite_patterns,
    load_source,
    normalize_split,
    socket_filenames,
)

SPLITS = ("train", "validation", "test")
DATA_DIR_ENV = "SOCIALITE_DATA_DIR"
SOURCES = ("local", "socialite_instructions", "socket")


class DataError(ValueError):
    """Bad input data; the message names the file, line and field."""


class DataWarning(UserWarning):
    """Suspicious but usable input data (e.g. an empty validation file); also written to the data card."""


FETCH_HINT = "run `make data` (= python -m socialite_utils.data fetch; --from DIR installs a copy you have)"


def default_data_dir() -> Path:
    """``$SOCIALITE_DATA_DIR``, else the project's ``data/social_tasks``.

    On Colab without a checkout (the package installed alone), the small sample shipped with the package, with a
    printed notice.
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    path = project_data_dir() / "social_tasks"
    if not path.is_dir() and on_colab():  # the package alone has no bundle: the sample shipped with it
        print_notice_once()
        return SAMPLE_DIR
    return path


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The bundle directory to read: the argument, else ``$SOCIALITE_DATA_DIR``, else the project's
    ``data/social_tasks``. Must exist."""
    path = Path(data_dir).expanduser() if data_dir else default_data_dir()
    if not path.is_dir():
        raise FileNotFoundError(
            f"data directory {path} does not exist: {FETCH_HINT}, pass data_dir=... or set ${DATA_DIR_ENV} "
            "to a bundle laid out as <dir>/<task>/{train,validation,test}.jsonl"
        )
    return path.resolve()


def local_task_dir(task: Task) -> str:
    """The task's folder inside a bundle (``sources.local.dir``, default the task's name)."""
    return (task.sources.get("local") or {}).get("dir", task.name)


def unfetched_tasks(tasks: Sequence[Task], data_dir: str | os.PathLike | None = None) -> list[str]:
    """The tasks among ``tasks`` whose data the project fetches rather than ships and that are not fetched yet."""
    missing = {rel.split("/")[0] for rel in not_fetched(resolve_data_dir(data_dir))}
    return [t.name for t in tasks if local_task_dir(t) in missing]


def load_manifest(data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The social bundle's MANIFEST.json (``{}`` if the bundle has none)."""
    return read_manifest(resolve_data_dir(data_dir))


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """``root/MANIFEST.json`` of any data bundle (``{}`` if it has none); invalid JSON names file and line."""
    path = Path(root) / "MANIFEST.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None


def _describe_json(value: Any) -> str:
    """A parsed JSON value as its JSON type and (shortened) value: ``null``, ``a number (42)``, ``a list ([1])``."""
    if value is None:
        return "null"
    kind = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}
    shown = json.dumps(value, ensure_ascii=False)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"{kind.get(type(value), type(value).__name__)} ({shown})"


def _local_split_path(task: Task, split: str, data_dir: str | os.PathLike | None) -> Path:
    sub = local_task_dir(task)
    return resolve_data_dir(data_dir) / sub / f"{split}.jsonl"


def split_location(
    task: Task, split: str, *, source: str = "local", data_dir: str | os.PathLike | None = None
) -> str:
    """Where one task split is read from, for messages: the file (local bundle, SocKET) or the parquet pattern."""
    if source == "local":
        return str(_local_split_path(task, split, data_dir))

    spec = task.sources.get(source) or {}
    if source == "socket":
        name = socket_filenames(spec.get("config", "?"), split)["text"]
        return str(Path(data_dir) / name) if data_dir else f"{spec.get('repo_id', SOCKET_REPO)}/{name}"
    where = str(data_dir) if data_dir else spec.get("repo_id", SOCIALITE_REPO)
    files = " or ".join(f"{where}/{p}" for p in _socialite_patterns(normalize_split(split)))
    return f"{files} (task_type {spec.get('task_type')})"


def load_local_split(task: Task, split: str, data_dir: str | os.PathLike | None = None) -> list[dict]:
    """Raw records of one task split from a local bundle directory."""
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}'; expected one of {SPLITS}")
    path = _local_split_path(task, split, data_dir)
    sub = local_task_dir(task)
    if not path.exists() and task.name in unfetched_tasks([task], data_dir):
        raise FileNotFoundError(
            f"task '{task.name}': {path} is fetched, not shipped, and not fetched yet: {FETCH_HINT}"
        )
    if not path.exists():
        raise FileNotFoundError(
            f"task '{task.name}': split file {path} not found "
            f"(a bundle needs <dir>/{sub}/{{train,validation,test}}.jsonl)"
        )
    records = []
    for lineno, obj in iter_jsonl(path, DataError):
        for key in ("text", "label") + (("text_b",) if task.pair else ()):
            if key not in obj:
                raise DataError(f"{path}: line {lineno}: missing field '{key}'")
        if not task.pair and obj.get("text_b") is not None:  # a second text would vanish from the prompt
            raise DataError(
                f"{path}: line {lineno}: field 'text_b' is set, but task '{task.name}' is not a pair task; add "
                "`pair: true` (and `text_b_name`) to its YAML so the prompt shows it, or remove the field"
            )
        for key in ("text", "text_b") if task.pair else ("text",):
            if not isinstance(obj[key], str):
                raise DataError(
                    f"{path}: line {lineno}: field '{key}' must be a string, got {_describe_json(obj[key])}"
                )
        records.append(
            {
                "text": obj["text"],
                "text_b": obj.get("text_b"),
                "label": obj["label"],
                "file": str(path),
                "line": lineno,
                "instruction": None,
            }
        )
    return records


def load_task_split(
    task: Task, split: str, *, source: str = "local", data_dir: str | os.PathLike | None = None
) -> list[dict]:
    """Raw records of one task split from the chosen source.

    ``data_dir`` is the bundle directory for ``local``; for the hub sources it is an optional
    local copy in the upstream layout that replaces the download (the offline tests use this).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source '{source}'; expected one of {SOURCES}")
    if source == "local":
        return load_local_split(task, split, data_dir)
    spec = task.sources.get(source)
    if not spec:
        raise KeyError(
            f"task '{task.name}' has no '{source}' source in {task.defined_in}; "
            f"it declares: {sorted(task.sources) or 'none'}"
        )

    # every field of the YAML entry (task_type/config, pair_sep, revision, ...) reaches the loader
    return load_source(source, spec, split, local_dir=data_dir)
