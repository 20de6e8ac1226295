"""Loading the writing-assistance bundles: rewriting tasks and generalist instruction data.

* ``writing_tasks``: ``<dir>/<task>/{train,validation,test}.jsonl`` rows ``{source, target, references}``
  (Writing-Alpaca's tasks; see the bundle's README and MANIFEST.json). Default location: ``$SOCIALITE_WRITING_DIR``,
  else the project's ``data/writing_tasks``.
* ``general_instructions``: ``<dir>/train.jsonl`` rows ``{instruction, input, output, source}`` (Alpaca-style
  generalist data). Default: ``$SOCIALITE_GENERAL_DIR``, else the project's ``data/general_instructions``.

A file the project fetches rather than ships and that is not fetched yet is named with what to run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from ..registry import Task
from ..runs import iter_jsonl
from .fetch import not_fetched
from .loaders import FETCH_HINT, DataError, project_data_dir, read_manifest

WRITING_DIR_ENV = "SOCIALITE_WRITING_DIR"
GENERAL_DIR_ENV = "SOCIALITE_GENERAL_DIR"


def _bundle_dir(env: str, name: str) -> Path:
    value = os.environ.get(env)
    return Path(value).expanduser() if value else project_data_dir() / name


def default_writing_dir() -> Path:
    """``$SOCIALITE_WRITING_DIR``, else the project's ``data/writing_tasks``."""
    return _bundle_dir(WRITING_DIR_ENV, "writing_tasks")


def default_general_dir() -> Path:
    """``$SOCIALITE_GENERAL_DIR``, else the project's ``data/general_instructions``."""
    return _bundle_dir(GENERAL_DIR_ENV, "general_instructions")


# --------------------------------------------------------------------------------------------------------
# Writing tasks
# --------------------------------------------------------------------------------------------------------

WRITING_FIELDS = ("source", "target", "references")


def _check_fetched(root: Path, rel: str, what: str) -> None:
    """A file the project fetches rather than ships, not fetched yet: say so and what to run."""
    if rel in not_fetched(root):
        raise FileNotFoundError(
            f"{what}: {root / rel} is fetched, not shipped, and not fetched yet: {FETCH_HINT}"
        )


def _resolve(path: str | os.PathLike | None, default: Path, env: str, layout: str) -> Path:
    root = Path(path).expanduser() if path else default
    if not root.is_dir():
        raise FileNotFoundError(
            f"data directory {root} does not exist: {FETCH_HINT}, pass data_dir=... or set ${env} to {layout}"
        )
    return root.resolve()


def unfetched_writing_tasks(data_dir: str | os.PathLike | None = None) -> list[str]:
    """The writing tasks whose data the project fetches rather than ships and that are not fetched yet."""
    root = _resolve(data_dir, default_writing_dir(), WRITING_DIR_ENV, "<dir>/<task>/<split>.jsonl")
    return sorted({rel.split("/")[0] for rel in not_fetched(root)})


def writing_task_status(data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Every task the writing bundle's MANIFEST names, with its status: ``"ok"`` or why there is no data.

    Grammaticality, clarity and coherence are listed with the reason they are missing, so tables can say
    "no data" for them instead of dropping them. Without a MANIFEST: the task folders, each ``"ok"``.
    """
    root = _resolve(data_dir, default_writing_dir(), WRITING_DIR_ENV, "<dir>/<task>/<split>.jsonl")
    manifest = read_manifest(root)
    if not manifest:
        return {p.name: "ok" for p in sorted(root.iterdir()) if p.is_dir()}
    out = {}
    for i, entry in enumerate(manifest.get("tasks", [])):
        if "task" not in entry or "status" not in entry:
            raise DataError(f"{root / 'MANIFEST.json'}: tasks[{i}] lacks 'task' or 'status'")
        status = entry["status"]
        out[entry["task"]] = "ok" if status == "ok" else f"no data: {entry.get('reason', status)}"
    return out


def _check_writing_row(obj: dict, path: Path, lineno: int) -> None:
    for key in WRITING_FIELDS:
        if key not in obj:
            raise DataError(f"{path}: line {lineno}: missing field '{key}'")
    unknown = sorted(set(obj) - set(WRITING_FIELDS))
    if unknown:
        raise DataError(f"{path}: line {lineno}: unknown field(s) {unknown}; expected {list(WRITING_FIELDS)}")
    for key in ("source", "target"):
        if not isinstance(obj[key], str) or not obj[key].strip():
            raise DataError(
                f"{path}: line {lineno}: field '{key}' must be a non-empty string, got {obj[key]!r}"
            )
    refs = obj["references"]
    if not isinstance(refs, list) or not refs:
        raise DataError(f"{path}: line {lineno}: field 'references' must be a non-empty list, got {refs!r}")
    for k, ref in enumerate(refs):
        if not isinstance(ref, str) or not ref.strip():
            raise DataError(
                f"{path}: line {lineno}: field 'references[{k}]' must be a non-empty string, got {ref!r}"
            )
    if obj["target"] != refs[0]:
        raise DataError(
            f"{path}: line {lineno}: field 'target' differs from references[0] (the bundle's format)"
        )


def load_writing_split(task: str, split: str, data_dir: str | os.PathLike | None = None) -> list[dict]:
    """Rows of ``<dir>/<task>/<split>.jsonl``: ``{"source", "target", "references", "file", "line"}``.

    Texts are kept as stored (GLEU and exact match compare them as given; strip them yourself where a reference
    script does). ``split`` is any file of the task (train, validation, test; simplification also has
    ``test_turkcorpus``). A task the MANIFEST lists without data raises ``DataError`` with the MANIFEST's reason;
    a bad row raises ``DataError`` naming the file, line and field.
    """
    root = _resolve(data_dir, default_writing_dir(), WRITING_DIR_ENV, "<dir>/<task>/<split>.jsonl")
    task_dir = root / task
    _check_fetched(root, f"{task}/{split}.jsonl", f"writing task '{task}'")
    if not task_dir.is_dir():
        status = writing_task_status(root)
        if task in status and status[task] != "ok":
            raise DataError(f"writing task '{task}': {status[task]}")
        have = sorted(t for t, s in status.items() if s == "ok")
        raise FileNotFoundError(f"writing task '{task}' not found in {root}; tasks with data: {have}")
    path = task_dir / f"{split}.jsonl"
    if not path.exists():
        have = sorted(p.stem for p in task_dir.glob("*.jsonl"))
        raise FileNotFoundError(f"writing task '{task}': no split '{split}' ({path}); splits here: {have}")
    rows = []
    for lineno, obj in iter_jsonl(path, DataError):
        _check_writing_row(obj, path, lineno)
        rows.append({**{k: obj[k] for k in WRITING_FIELDS}, "file": str(path), "line": lineno})
    return rows


# --------------------------------------------------------------------------------------------------------
# Generalist instructions
# --------------------------------------------------------------------------------------------------------

GENERAL_FIELDS = ("instruction", "input", "output", "source")
LICENCE_FILTERS = ("any", "commercial")
_NON_COMMERCIAL = re.compile(r"non-?commercial|\bBY-NC\b|\bNC\b", re.IGNORECASE)


def general_source_licences(data_dir: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """Per MANIFEST component: ``{name: {"licence": <as stated>, "non_commercial": bool, "size": int}}``.

    ``non_commercial`` is read from the stated licence text ("non-commercial", "BY-NC", "NC"): the
    LLaMA-Factory demo file is stated to be treated as non-commercial (it looks like Alpaca-GPT4, CC BY-NC 4.0).
    A row's ``source`` tag belongs to the component whose name it starts with (``alpaca_libre_v2`` ->
    ``alpaca_libre``).
    """
    root = _resolve(data_dir, default_general_dir(), GENERAL_DIR_ENV, "<dir>/train.jsonl")
    manifest = read_manifest(root)
    out = {}
    for i, comp in enumerate(manifest.get("components", [])):
        try:
            name, licence = comp["name"], comp["source"]["license"]["as_stated"]
        except (KeyError, TypeError):
            raise DataError(
                f"{root / 'MANIFEST.json'}: components[{i}] lacks name or source.license.as_stated"
            ) from None
        out[name] = {
            "licence": licence,
            "non_commercial": bool(_NON_COMMERCIAL.search(licence)),
            "size": comp.get("rows_kept"),
        }
    if not out:
        raise DataError(
            f"{root / 'MANIFEST.json'}: no 'components' with licences; the licence filter needs them"
        )
    return out


def _component_of(tag: str, components: dict[str, dict]) -> str | None:
    matches = [name for name in components if tag == name or tag.startswith(name + "_")]
    return max(matches, key=len) if matches else None


def load_general_instructions(
    data_dir: str | os.PathLike | None = None,
    *,
    licence: str = "any",
    sources: Collection[str] | None = None,
) -> list[dict]:
    """Rows of the generalist data: ``{"instruction", "input", "output", "source", "licence", "file", "line"}``.

    ``licence="commercial"`` keeps only rows whose component's stated licence (MANIFEST) is not non-commercial
    (see :func:`general_source_licences`); ``"any"`` keeps all. ``sources`` keeps only those source tags
    (``alpaca_libre_v1``, ...) or component names (``alpaca_libre``); an unknown one raises. Row order is the
    file's (already shuffled with a fixed seed, so a prefix is a mixed subsample). A row with a missing, empty,
    non-string or unknown field, or a source tag no MANIFEST component owns, raises ``DataError`` naming the
    file, line and field.
    """
    if licence not in LICENCE_FILTERS:
        raise ValueError(f"unknown licence filter {licence!r}; expected one of {LICENCE_FILTERS}")
    root = _resolve(data_dir, default_general_dir(), GENERAL_DIR_ENV, "<dir>/train.jsonl")
    components = general_source_licences(root)
    path = root / "train.jsonl"
    _check_fetched(root, "train.jsonl", "the generalist instructions")
    rows, seen_tags = [], set()
    for lineno, obj in iter_jsonl(path, DataError):
        for key in GENERAL_FIELDS:
            if key not in obj:
                raise DataError(f"{path}: line {lineno}: missing field '{key}'")
            if not isinstance(obj[key], str) or (key != "input" and not obj[key].strip()):
                raise DataError(
                    f"{path}: line {lineno}: field '{key}' must be a non-empty string, got {obj[key]!r}"
                )
        unknown = sorted(set(obj) - set(GENERAL_FIELDS))
        if unknown:
            raise DataError(
                f"{path}: line {lineno}: unknown field(s) {unknown}; expected {list(GENERAL_FIELDS)}"
            )
        comp = _component_of(obj["source"], components)
        if comp is None:
            raise DataError(
                f"{path}: line {lineno}: field 'source' {obj['source']!r} matches no MANIFEST component "
                f"{sorted(components)}"
            )
        seen_tags.update((obj["source"], comp))
        if licence == "commercial" and components[comp]["non_commercial"]:
            continue
        if sources is not None and obj["source"] not in sources and comp not in sources:
            continue
        row = {k: obj[k] for k in GENERAL_FIELDS}
        rows.append({**row, "licence": components[comp]["licence"], "file": str(path), "line": lineno})
    if sources is not None:
        missing = sorted(set(sources) - seen_tags)
        if missing:
            raise ValueError(f"sources {missing} not in {path}; tags there: {sorted(seen_tags)}")
    return rows


def load_generation_split(task: Task, split: str, data_dir: str | os.PathLike | None = None) -> list[dict]:
    """Rows of a registry ``generation`` task (:func:`load_writing_split` on its ``writing_tasks`` folder).

    A task declared with ``no_data`` raises ``DataError`` with its reason, so a caller reports "no data" for it.
    """
    if not task.is_generation:
        raise ValueError(
            f"task '{task.name}' is a {task.type} task; load_generation_split reads generation tasks"
        )
    if task.no_data:
        raise DataError(f"task '{task.name}' ({task.defined_in}): no data: {task.no_data}")
    spec = task.sources.get("writing_tasks")
    if not spec:
        raise KeyError(f"task '{task.name}' has no 'writing_tasks' source in {task.defined_in}")
    return load_writing_split(spec.get("dir", task.name), split, data_dir)
