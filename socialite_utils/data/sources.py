"""Hub data sources: the released SocialiteInstructions parquet files and the SocKET raw text files.

Both loaders return raw example records, the same shape every loader in the kit returns::

    {"text": str, "text_b": str | None, "label": <raw source label>, "file": str, "line": int (1-based),
     "instruction": str | None}

``label`` is the label exactly as the source gives it (SocialiteInstructions: the ``Output`` string, e.g.
"High Valence"; SocKET: the class name from ``label_list.txt``, or a float for regression tasks). Mapping to
the task's verbalizers happens later, in the assembly code, with validation.

Hub layouts (checked against the hub file listings; see tests/fixtures_hub.py for the same layouts in small):

* ``hlab/SocialiteInstructions`` (dataset): ``data/{train,validation,test}-0000i-of-0000n-<hash>.parquet``,
  columns ``task_type, Instruction, Input, Output, Model Input``. train/validation hold the 20 seen tasks;
  test holds all 26. Two-text tasks (SAMESIDESTANCE, SUBJECTIVEBIAS) join their texts with ``[SEP]``.
* ``Blablablab/SOCKET`` (dataset): ``SOCKET_DATA/<config>/{train,val,test}_{text,labels}.txt`` and
  ``label_list.txt`` (one class name per line; a single name means a regression task). Config names may
  contain ``#`` (``hahackathon#is_humor``). ``huggingface_hub`` URL-quotes the filename itself
  (``hf_hub_url`` calls ``urllib.parse.quote``), so the literal name is passed; pre-encoding ``%23`` would
  be double-encoded to ``%2523``. Span tasks (``*-span``) have no ``label_list.txt`` and are not supported.

``local_dir=`` replaces only the download step: the directory must have the repository's own layout (what
:func:`fetch_socialite_instructions` / :func:`fetch_socket` write). Everything after it is the same code.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import huggingface_hub
from huggingface_hub import errors as hub_errors

from ..runs import invalid_utf8_message

SOCIALITE_REPO = "hlab/SocialiteInstructions"
SOCKET_REPO = "Blablablab/SOCKET"
SOCKET_ROOT = "SOCKET_DATA"
PAIR_SEP = "[SEP]"
SOCIALITE_COLUMNS = ("task_type", "Instruction", "Input", "Output")

# Accepted spellings of each split. The first spelling of each is the canonical name.
SPLIT_ALIASES = {
    "train": ("train",),
    "validation": ("validation", "val", "valid", "dev"),
    "test": ("test",),
}
# How each repository names the split in its file names.
_SOCIALITE_FILE_PREFIXES = {
    "train": ("train",),
    "validation": ("validation", "valid", "val"),
    "test": ("test",),
}
_SOCKET_FILE_PREFIX = {"train": "train", "validation": "val", "test": "test"}


# What a hub download can raise: HTTP errors (repo/revision/file not found, gated; all OSError subclasses),
# missing cache entries when offline (LocalEntryNotFoundError, an OSError), connection errors, bad repo ids.
# Anything else is a bug and propagates unchanged.
_HUB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    hub_errors.EntryNotFoundError,
    hub_errors.HFValidationError,
    getattr(hub_errors, "HTTPError", OSError),
)


class SourceError(ValueError):
    """Source data is missing or malformed; the message names the file, line and field."""


class HubAccessError(RuntimeError):
    """A hub download failed; the message names the repo, the file and what to do about it."""


def normalize_split(split: str) -> str:
    """Map a split spelling (train/val/valid/dev/validation/test) to train, validation or test."""
    key = str(split).strip().lower()
    for canonical, aliases in SPLIT_ALIASES.items():
        if key in aliases:
            return canonical
    known = sorted(a for aliases in SPLIT_ALIASES.values() for a in aliases)
    raise ValueError(f"unknown split '{split}'; use one of {known}")


# ---------------------------------------------------------------------------------------------------------
# Hub access: one wrapper so every failure reads the same way and says what to do.
# ---------------------------------------------------------------------------------------------------------


def _hub_failure(exc: Exception, repo_id: str, filename: str, revision: str | None) -> HubAccessError:
    where = f"'{filename}' from dataset repo '{repo_id}'" + (f" at revision '{revision}'" if revision else "")
    offline_fix = (
        "Run the matching fetch_* helper once on a machine with internet and pass local_dir= to the loader, "
        "or use the offline bundle source ('local'). If the files are already in your HF cache, set "
        "HF_HUB_OFFLINE=1 so no network look-up is attempted."
    )
    # Order matters: GatedRepoError subclasses RepositoryNotFoundError.
    if isinstance(exc, hub_errors.GatedRepoError):
        why = "the repo is gated"
        fix = "Accept its terms on the hub page, then log in (`hf auth login` or set HF_TOKEN)."
    elif isinstance(exc, hub_errors.RepositoryNotFoundError):
        why = "the repo does not exist or is private"
        fix = "Check the repo id; if it is private, log in (`hf auth login` or set HF_TOKEN)."
    elif isinstance(exc, hub_errors.RevisionNotFoundError):
        why = "the revision does not exist"
        fix = "Check the revision (branch, tag or commit sha) or pass revision=None for 'main'."
    elif isinstance(exc, hub_errors.RemoteEntryNotFoundError):
        why = "the file does not exist in the repo"
        fix = "Check the task/config name and split; SocKET config names are case-sensitive and may contain '#'."
    elif isinstance(
        exc, hub_errors.LocalEntryNotFoundError | hub_errors.OfflineModeIsEnabled | ConnectionError
    ):
        why = (
            "the hub is unreachable (no network, or HF_HUB_OFFLINE=1) and the file is not in the local cache"
        )
        fix = offline_fix
    else:
        why = f"{type(exc).__name__}: {exc}"
        fix = offline_fix
    return HubAccessError(f"could not download {where}: {why}. {fix}")


def _hub_file(repo_id: str, filename: str, *, revision: str | None, cache_dir: str | Path | None) -> Path:
    """Download one file of a dataset repo (or take it from the HF cache) and return its local path."""
    try:
        # Looked up on the module at call time so tests can monkeypatch huggingface_hub.hf_hub_download.
        path = huggingface_hub.hf_hub_download(
            repo_id, filename, repo_type="dataset", revision=revision, cache_dir=cache_dir
        )
    except _HUB_ERRORS as exc:
        raise _hub_failure(exc, repo_id, filename, revision) from exc
    return Path(path)


def _hub_snapshot(
    repo_id: str, patterns: list[str], *, revision: str | None, cache_dir: str | Path | None
) -> Path:
    """Download the files of a dataset repo matching ``patterns`` and return the snapshot folder."""
    try:
        path = huggingface_hub.snapshot_download(
            repo_id, repo_type="dataset", revision=revision, cache_dir=cache_dir, allow_patterns=patterns
        )
    except _HUB_ERRORS as exc:
        raise _hub_failure(exc, repo_id, " or ".join(patterns), revision) from exc
    return Path(path)


def _split_pair(text: str, pair_sep: str, file: str, line: int) -> tuple[str, str]:
    if pair_sep not in text:
        raise SourceError(
            f"{file}:{line}: expected two texts joined by {pair_sep!r} (pair task) but found no separator"
        )
    first, second = text.split(pair_sep, 1)
    return first.strip(), second.strip()


# ---------------------------------------------------------------------------------------------------------
# Source 1: hlab/SocialiteInstructions (parquet)
# ---------------------------------------------------------------------------------------------------------


def _socialite_patterns(split: str) -> list[str]:
    return [f"data/{prefix}-*.parquet" for prefix in _SOCIALITE_FILE_PREFIXES[split]]


def _socialite_split_files(root: Path, split: str, repo_id: str) -> list[Path]:
    files = sorted({p for pat in _socialite_patterns(split) for p in root.glob(pat)})
    if not files:
        raise SourceError(
            f"no parquet file for split '{split}' of {repo_id} under {root} (looked for "
            f"{', '.join(_socialite_patterns(split))}). A local_dir must mirror the repo layout "
            "(data/<split>-00000-of-00001-<hash>.parquet); fetch_socialite_instructions(dest) writes it."
        )
    return files


@functools.lru_cache(maxsize=8)
def _read_socialite_parquet(path: str, mtime_ns: int, size: int) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """Columns of one split file plus row indices per task_type; cached because all 26 tasks read it."""
    import pyarrow.parquet as pq

    del mtime_ns, size  # part of the cache key only: a rewritten file is read again
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise SourceError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in SOCIALITE_COLUMNS if c not in table.column_names]
    if missing:
        raise SourceError(f"{path}: missing column(s) {missing}; found {table.column_names}")
    columns = {c: tuple(table.column(c).to_pylist()) for c in SOCIALITE_COLUMNS}
    rows_by_task: dict[str, list[int]] = {}
    for i, task_type in enumerate(columns["task_type"]):
        rows_by_task.setdefault(str(task_type), []).append(i)
    return columns, {k: tuple(v) for k, v in rows_by_task.items()}


def _socialite_columns(path: Path) -> tuple[dict[str, tuple], dict[str, tuple]]:
    st = path.stat()
    return _read_socialite_parquet(str(path.resolve()), st.st_mtime_ns, st.st_size)


def _socialite_files(
    split: str,
    *,
    repo_id: str,
    revision: str | None,
    local_dir: str | Path | None,
    cache_dir: str | Path | None,
) -> list[Path]:
    split = normalize_split(split)
    if local_dir is None:
        root = _hub_snapshot(repo_id, _socialite_patterns(split), revision=revision, cache_dir=cache_dir)
    else:
        root = Path(local_dir)
        if not root.is_dir():
            raise SourceError(
                f"local_dir {root} does not exist (expected a copy of {repo_id} with data/*.parquet)"
            )
    return _socialite_split_files(root, split, repo_id)


def socialite_task_types(
    split: str,
    *,
    repo_id: str = SOCIALITE_REPO,
    revision: str | None = None,
    local_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, int]:
    """Row count per ``task_type`` in one split of SocialiteInstructions."""
    counts: dict[str, int] = {}
    for path in _socialite_files(
        split, repo_id=repo_id, revision=revision, local_dir=local_dir, cache_dir=cache_dir
    ):
        for task_type, rows in _socialite_columns(path)[1].items():
            counts[task_type] = counts.get(task_type, 0) + len(rows)
    return dict(sorted(counts.items()))


def load_socialite_instructions(
    task_type: str,
    split: str,
    *,
    repo_id: str = SOCIALITE_REPO,
    revision: str | None = None,
    local_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    pair_sep: str | None = None,
) -> list[dict[str, Any]]:
    """Raw records of one task (``task_type``, e.g. "HUMOR") and split from SocialiteInstructions.

    ``text`` = Input, ``label`` = Output (raw, e.g. "High Valence"), ``instruction`` = Instruction,
    ``line`` = row index + 1 in ``file`` (the parquet path). With ``pair_sep`` (e.g. "[SEP]") the Input is
    split at its first separator into ``text`` and ``text_b``; a row without it is an error.
    """
    split = normalize_split(split)
    files = _socialite_files(
        split, repo_id=repo_id, revision=revision, local_dir=local_dir, cache_dir=cache_dir
    )
    records: list[dict[str, Any]] = []
    available: dict[str, int] = {}
    for path in files:
        columns, rows_by_task = _socialite_columns(path)
        for name, rows in rows_by_task.items():
            available[name] = available.get(name, 0) + len(rows)
        for i in rows_by_task.get(task_type, ()):
            file, line = str(path), i + 1
            text, output = columns["Input"][i], columns["Output"][i]
            for field, value in (("Input", text), ("Output", output)):
                if value is None or not str(value).strip():
                    raise SourceError(f"{file}:{line} (task_type {task_type}): field '{field}' is empty")
            text_b = None
            if pair_sep is not None:
                text, text_b = _split_pair(str(text), pair_sep, file, line)
            instruction = columns["Instruction"][i]
            records.append(
                {
                    "text": str(text),
                    "text_b": text_b,
                    "label": str(output),
                    "file": file,
                    "line": line,
                    "instruction": None if instruction is None else str(instruction),
                }
            )
    if not records:
        raise SourceError(
            f"task_type '{task_type}' has no rows in split '{split}' of {repo_id} "
            f"({', '.join(str(f) for f in files)}). Task types in this split: "
            f"{', '.join(f'{k} ({v})' for k, v in sorted(available.items()))}. "
            "Related (held-out) tasks are only in the test split."
        )
    return records


def fetch_socialite_instructions(
    dest: str | Path, *, repo_id: str = SOCIALITE_REPO, revision: str | None = None
) -> Path:
    """Download every split of SocialiteInstructions into ``dest`` (run once with internet); returns ``dest``.

    Afterwards pass ``local_dir=dest`` to :func:`load_socialite_instructions`.
    """
    dest = Path(dest)
    patterns = ["README.md"] + [p for split in _SOCIALITE_FILE_PREFIXES for p in _socialite_patterns(split)]
    try:
        huggingface_hub.snapshot_download(
            repo_id, repo_type="dataset", revision=revision, local_dir=dest, allow_patterns=patterns
        )
    except _HUB_ERRORS as exc:
        raise _hub_failure(exc, repo_id, " or ".join(patterns), revision) from exc
    return dest


# ---------------------------------------------------------------------------------------------------------
# Source 2: Blablablab/SOCKET (raw text files)
# ---------------------------------------------------------------------------------------------------------


def socket_filenames(config: str, split: str) -> dict[str, str]:
    """Repo-relative paths of the three files one SocKET config/split needs (literal '#', not '%23')."""
    prefix = _SOCKET_FILE_PREFIX[normalize_split(split)]
    base = f"{SOCKET_ROOT}/{config}"
    return {
        "text": f"{base}/{prefix}_text.txt",
        "labels": f"{base}/{prefix}_labels.txt",
        "label_list": f"{base}/label_list.txt",
    }


def _read_lines(path: Path) -> list[str]:
    # Universal-newline readlines(), as SocKET's own loading script read these files; only the line end
    # is removed here, surrounding whitespace is stripped per field below (also as the script did).
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        start = raw.rfind(b"\n", 0, e.start) + 1
        line = raw[:start].replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1
        end = raw.find(b"\n", e.start)
        line_bytes = raw[start : len(raw) if end < 0 else end]
        moved = UnicodeDecodeError("utf-8", line_bytes, e.start - start, e.end - start, e.reason)
        raise SourceError(invalid_utf8_message(path, line, line_bytes, moved)) from None
    return [ln.rstrip("\n") for ln in io.StringIO(text, newline=None).readlines()]


def _parse_socket_label(raw: str, names: list[str], file: str, line: int) -> str | float:
    value = raw.strip()
    if not value:
        raise SourceError(f"{file}:{line}: empty label")
    try:
        number = float(value)
    except ValueError:
        raise SourceError(f"{file}:{line}: label {value!r} is not a number") from None
    if math.isnan(number) or math.isinf(number):
        raise SourceError(f"{file}:{line}: label {value!r} is not a finite number")
    if len(names) == 1:  # regression: label_list.txt holds just the score's name
        return number
    if number != int(number) or not 0 <= int(number) < len(names):
        raise SourceError(
            f"{file}:{line}: label {value!r} is not a class index 0..{len(names) - 1} into label_list.txt {names}"
        )
    return names[int(number)]


def load_socket(
    config: str,
    split: str,
    *,
    repo_id: str = SOCKET_REPO,
    revision: str | None = None,
    local_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    pair_sep: str | None = None,
) -> list[dict[str, Any]]:
    """Raw records of one SocKET config (e.g. "hahackathon#is_humor") and split, built from the raw files.

    Classification labels (indices in ``<split>_labels.txt``) become class names from ``label_list.txt``;
    regression labels (``label_list.txt`` with one name) become floats. ``line`` is the 1-based line in the
    text file. SocKET stores its two-text tasks (``*-pairs``) in one line; pass ``pair_sep`` to split them.
    """
    names = socket_filenames(config, split)
    if local_dir is None:
        paths = {k: _hub_file(repo_id, v, revision=revision, cache_dir=cache_dir) for k, v in names.items()}
    else:
        paths = {k: Path(local_dir) / v for k, v in names.items()}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise SourceError(
                f"SocKET config '{config}' is incomplete under local_dir {local_dir}: missing {missing}. "
                f"local_dir must mirror the repo layout ({SOCKET_ROOT}/<config>/...); fetch_socket writes it."
            )
    label_names = [ln.strip() for ln in _read_lines(paths["label_list"])]
    while label_names and not label_names[-1]:
        label_names.pop()
    if not label_names or any(not n for n in label_names):
        raise SourceError(
            f"{paths['label_list']}: expected one non-empty label name per line, got {label_names}"
        )
    texts = _read_lines(paths["text"])
    labels = _read_lines(paths["labels"])
    if len(texts) != len(labels):
        raise SourceError(
            f"line counts differ: {paths['text']} has {len(texts)} lines but {paths['labels']} has {len(labels)}"
        )
    text_file, labels_file = str(paths["text"]), str(paths["labels"])
    records: list[dict[str, Any]] = []
    for i, (text, raw_label) in enumerate(zip(texts, labels, strict=True)):
        line = i + 1
        text, text_b = text.strip(), None
        if pair_sep is not None:
            text, text_b = _split_pair(text, pair_sep, text_file, line)
        records.append(
            {
                "text": text,
                "text_b": text_b,
                "label": _parse_socket_label(raw_label, label_names, labels_file, line),
                "file": text_file,
                "line": line,
                "instruction": None,
            }
        )
    return records


def fetch_socket(
    configs: Iterable[str],
    dest: str | Path,
    *,
    splits: Iterable[str] = ("train", "validation", "test"),
    repo_id: str = SOCKET_REPO,
    revision: str | None = None,
) -> list[Path]:
    """Download the raw files of SocKET ``configs`` into ``dest`` (run once with internet).

    Afterwards pass ``local_dir=dest`` to :func:`load_socket`. Returns the local paths written.
    """
    wanted: list[str] = []
    for config in configs:
        for split in splits:
            wanted += [f for f in socket_filenames(config, split).values() if f not in wanted]
    out = []
    for filename in wanted:
        try:
            path = huggingface_hub.hf_hub_download(
                repo_id, filename, repo_type="dataset", revision=revision, local_dir=dest
            )
        except _HUB_ERRORS as exc:
            raise _hub_failure(exc, repo_id, filename, revision) from exc
        out.append(Path(path))
    return out


def load_source(kind: str, spec: dict[str, Any], split: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Dispatch a registry ``sources`` entry (``socialite_instructions`` or ``socket``) to its loader.

    ``spec`` is the YAML mapping, e.g. ``{"task_type": "HUMOR"}`` or ``{"config": "same-side-pairs",
    "pair_sep": "[SEP]"}``; ``kwargs`` (local_dir, revision, cache_dir, ...) override it.
    """
    args = {**spec, **kwargs}
    key = {"socialite_instructions": "task_type", "socket": "config"}.get(kind)
    if key is not None and key not in args:
        raise SourceError(f"source '{kind}' needs a '{key}' field; got {spec}")
    if kind == "socialite_instructions":
        return load_socialite_instructions(args.pop("task_type"), split, **args)
    if kind == "socket":
        return load_socket(args.pop("config"), split, **args)
    raise ValueError(f"source kind '{kind}' is not a hub source; hub sources: socialite_instructions, socket")


__all__ = [
    "PAIR_SEP",
    "SOCIALITE_REPO",
    "SOCKET_REPO",
    "HubAccessError",
    "SourceError",
    "fetch_socialite_instructions",
    "fetch_socket",
    "load_socialite_instructions",
    "load_socket",
    "load_source",
    "normalize_split",
    "socialite_task_types",
    "socket_filenames",
]
