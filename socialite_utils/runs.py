"""Run directories: where every notebook writes, atomically, with provenance.

Every stage writes to ``runs/<run_name>/``. A run is first written to a hidden temporary
sibling and renamed into place only when the whole stage succeeded, so a crash never
leaves a half-written run that a later stage would mistake for a finished one.
"""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .params import as_bool

# Packages whose versions decide results; recorded in every provenance.json.
TRACKED_PACKAGES = (
    "socialite-utils",
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "accelerate",
    "huggingface-hub",
    "tokenizers",
    "gguf",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "matplotlib",
    "papermill",
    "bitsandbytes",
)


def repo_root() -> Path | None:
    """The socialite checkout this package lives in, or None when installed elsewhere."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() and (here / "socialite_utils").is_dir() else None


def runs_root() -> Path:
    """Where runs live: ``$SOCIALITE_RUNS_DIR``, else ``<repo>/runs``, else ``./runs``."""
    env = os.environ.get("SOCIALITE_RUNS_DIR")
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    return (root / "runs") if root else Path.cwd() / "runs"


@contextmanager
def runs_root_at(path: str | os.PathLike) -> Iterator[Path]:
    """Within the block, run names resolve under ``path`` (``$SOCIALITE_RUNS_DIR``), as the pipeline does for its
    steps, so a study's sub-runs (data, training, evaluation) live inside its own run directory."""
    previous = os.environ.get("SOCIALITE_RUNS_DIR")
    os.environ["SOCIALITE_RUNS_DIR"] = str(Path(path).resolve())
    try:
        yield Path(path)
    finally:
        if previous is None:
            os.environ.pop("SOCIALITE_RUNS_DIR", None)
        else:
            os.environ["SOCIALITE_RUNS_DIR"] = previous


class UnsafePathError(ValueError):
    """A name or path the kit refuses to write to: a path where a plain name is expected, a name too long for the
    file system, or a target that is (or lies behind) a symbolic link leading out of its root."""


# The file system limits one name to 255 bytes; the kit adds ".<name>.socialite-tmp-<pid>-<host>" around a name
# while it writes, so a name is kept well below that limit.
MAX_NAME_BYTES = 150
# Every temporary or backup entry the kit makes carries this word, its pid and its host in its name, and a marker
# file inside: an entry without all of them is never the kit's to delete.
KIT_MARKER = "socialite"
_MARKER_FILE = f".{KIT_MARKER}-temp"


def check_name(name: Any, *, param: str = "name") -> str:
    """Return ``name`` if it is one plain path component the kit may write (not empty, not ``.``/``..``, no
    separator or NUL, at most :data:`MAX_NAME_BYTES` bytes), else raise :class:`UnsafePathError` naming ``param``."""
    if not isinstance(name, str) or not name:
        raise UnsafePathError(f"{param} must be a non-empty string, got {name!r}")
    if name in (".", "..") or "/" in name or "\\" in name or "\0" in name or os.path.isabs(name):
        raise UnsafePathError(
            f"{param} {name!r} must be a plain name, not a path: '..', '/', '\\' and absolute paths are refused"
        )
    size = len(name.encode("utf-8", errors="surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise UnsafePathError(
            f"{param} is {size} bytes long ({name[:40]!r}...); names are limited to {MAX_NAME_BYTES} bytes "
            "(the file system allows 255 per name and the kit needs room for its temporary names): choose a shorter one"
        )
    return name


def safe_write_path(root: str | os.PathLike, *names: str, param: str = "name") -> Path:
    """The one gate every path the kit writes goes through: ``root/<names...>`` after checking each name
    (:func:`check_name`) and that the target lies inside ``root``: no component below ``root`` may be a symbolic
    link (a link is never followed out, and never written through). Raises :class:`UnsafePathError` naming the
    path; returns ``root`` joined with ``names`` as given."""
    root = Path(root)
    real_root = Path(os.path.realpath(root))
    current = real_root
    for name in names:
        check_name(name, param=param)
        current = current / name
        if os.path.islink(current):
            raise UnsafePathError(
                f"{param}: {current} is a symbolic link (to {os.readlink(current)}); the kit writes only inside "
                f"{real_root} and never through a link: remove the link or choose another {param}"
            )
    if not Path(os.path.realpath(current)).is_relative_to(real_root):
        raise UnsafePathError(f"{param}: {current} lies outside {real_root}; the kit writes only inside it")
    return root.joinpath(*names)


# A run that is written is named by a plain name: it lives at runs_root()/<name>, never elsewhere. Names starting
# with "." are the kit's temporary directories; "<name>.partial" holds a training run's checkpoints.
_RUN_NAME = re.compile(r"[A-Za-z0-9_][\w.-]*")
_RESERVED_SUFFIXES = (".partial",)


def check_run_name(name: Any, *, param: str = "run_name") -> str:
    """Return ``name`` if it is a plain run name (letters, digits, ``_ . -``; not ``.hidden``, not ``*.partial``;
    at most :data:`MAX_NAME_BYTES` bytes), else raise :class:`UnsafePathError` (a ValueError) naming ``param``.
    Paths are refused: every run is written under :func:`runs_root`."""
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name) or name.endswith(_RESERVED_SUFFIXES):
        raise UnsafePathError(
            f"{param} {name!r} must be a plain name (letters, digits, _ . -; not starting with '.', not ending in "
            "'.partial'): every run is written inside the runs directory, so paths like '../x', 'sub/dir' or '/abs' "
            "are refused (choose the runs directory with $SOCIALITE_RUNS_DIR)"
        )
    return check_name(name, param=param)


def run_dir_for(name: Any, *, param: str = "run_name") -> Path:
    """Where run ``name`` is written: ``runs_root()/<name>`` after :func:`check_run_name` and
    :func:`safe_write_path` (never through a symbolic link)."""
    return safe_write_path(runs_root(), check_run_name(name, param=param), param=param)


def new_run_dir(name: Any, *, overwrite: bool = False, param: str = "run_name") -> Path:
    """The directory a new run ``name`` will be written to, checked before any work is done: a plain name
    (:func:`check_run_name`, :func:`safe_write_path`) and, unless ``overwrite``, not an existing run
    (:class:`RunExistsError`)."""
    run_dir = run_dir_for(name, param=param)
    overwrite = as_bool(overwrite, param="overwrite")  # papermill's "false" is a string, and truthy
    if run_dir.exists() and not overwrite:
        raise RunExistsError(
            f"run {run_dir} already exists; choose another {param} or set overwrite=True to replace it"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"{run_dir} exists and is not a run directory; choose another {param}")
    return run_dir


def _is_path(run: str | os.PathLike) -> bool:
    text = os.fspath(run)
    return os.path.isabs(text) or "/" in text or os.sep in text or text.startswith("~") or text in (".", "..")


def resolve_run_dir(run: str | os.PathLike) -> Path:
    """An existing run to READ: a plain name (``demo``) is always ``runs_root()/demo`` (never a folder of the
    current directory); a path (``runs/demo``, ``./demo``, ``/abs/demo``, ``~/demo``) is taken as written."""
    if isinstance(run, Path) or _is_path(run):
        return Path(run).expanduser().resolve()
    return runs_root() / run


# ---------------------------------------------------------------- JSON / JSONL


def _default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` that is strict JSON any tool can read: nan/inf -> None, tuples -> lists, numpy scalars ->
    Python numbers, dictionary keys -> strings, recursively."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted UTF-8 JSON (stable bytes for the same input)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=_default) + "\n")
    return path


def _write_atomic(path: str | os.PathLike, write: Any, content: Any) -> Path:
    """``write(tmp, content)`` to a hidden temporary file beside ``path``, then renamed over ``path``: a reader (or
    a kill) never sees a half-written file; a failed write leaves no temporary file."""
    path = safe_write_path(Path(path).parent, Path(path).name, param="file name")
    tmp = path.parent / f".{path.name}.{KIT_MARKER}-tmp-{_owner()}"
    try:
        write(tmp, content)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if _is_disk_full(e):
            raise _disk_full(e, path, "the file is unchanged") from e
        raise
    os.replace(tmp, path)
    return path


def _is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def _disk_full(e: BaseException, target: Path, kept: str) -> OSError:
    """The operating system's "No space left on device", naming what the kit was writing and what it kept."""
    return OSError(
        e.errno,
        f"no space left on the disk of {target} while writing it ({kept}); free some space and run again",
    )


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (never half-written; a failed write leaves no temporary file)."""
    return _write_atomic(path, lambda p, t: p.write_text(t, encoding="utf-8"), text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """:func:`write_json`, atomically (same bytes, never half-written)."""
    return _write_atomic(path, write_json, obj)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, naming the file in any parse error."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None


class _StrictYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping, and anchors and aliases (which let a
    few kilobytes expand into gigabytes, and which a task or profile file never needs)."""

    def compose_node(self, parent, index):  # noqa: ANN001
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.MarkedYAMLError(
                problem="anchors and aliases (&name, *name) are not accepted: write the value out",
                problem_mark=event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # noqa: ANN001
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                raise yaml.MarkedYAMLError(
                    problem=f"a mapping key must be a plain value, got {type(key).__name__}",
                    problem_mark=key_node.start_mark,
                ) from None
            if first is not None:
                raise yaml.MarkedYAMLError(
                    problem=f"duplicate key {key!r} (first given on line {first})",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


class MarkedDict(dict):
    """A YAML mapping that remembers where it was written: ``line`` (1-based) of the mapping and ``key_lines``, the
    line of each key, so a check of a field's value can name the line of that field."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        """The line of ``key`` (the mapping's own line when the key is absent)."""
        return getattr(self, "key_lines", {}).get(key, self.line)


class _MarkedYamlLoader(_StrictYamlLoader):
    """The strict loader whose mappings are :class:`MarkedDict` (with the line of every key)."""


def _construct_marked_map(loader: _MarkedYamlLoader, node: yaml.MappingNode) -> Iterator[MarkedDict]:
    data = MarkedDict()
    data.line = node.start_mark.line + 1
    yield data
    data.update(loader.construct_mapping(node))
    data.key_lines = {
        loader.construct_object(key_node, deep=True): key_node.start_mark.line + 1
        for key_node, _ in node.value
    }


_MarkedYamlLoader.add_constructor("tag:yaml.org,2002:map", _construct_marked_map)


def load_yaml_strict(
    path: str | os.PathLike, error: type[Exception] = ValueError, *, marks: bool = False
) -> Any:
    """Read a YAML file (UTF-8) with PyYAML's safe loader, refusing duplicate keys and anchors/aliases; any problem
    raises ``error`` naming the file and line. With ``marks``, every mapping is a :class:`MarkedDict` that knows the
    line of each of its keys."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(
            f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); re-save the file as UTF-8"
        ) from None
    try:
        loader = _MarkedYamlLoader if marks else _StrictYamlLoader
        return yaml.load(text, Loader=loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise error(f"{path}: {line}{e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise error(f"{path}: invalid YAML: {e}") from None
    except RecursionError:
        raise error(f"{path}: YAML nested too deeply") from None


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write one JSON object per line (keys in insertion order, UTF-8)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=_default) + "\n")
    return path


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """:func:`write_jsonl`, atomically (same bytes, never half-written)."""
    return _write_atomic(path, write_jsonl, rows)


def invalid_utf8_message(path: str | os.PathLike, line: int, raw: bytes, exc: UnicodeDecodeError) -> str:
    """``<file>: line N: invalid UTF-8 ...`` for a line whose bytes ``raw`` failed to decode with ``exc``."""
    column = len(raw[: exc.start].decode("utf-8", errors="replace")) + 1
    bad = raw[exc.start : exc.end].hex(" ")
    return (
        f"{path}: line {line}: invalid UTF-8 (byte(s) {bad} at column {column}); "
        "the kit reads text files as UTF-8: re-save the file as UTF-8"
    )


class _DuplicateKey(ValueError):
    """A JSON object that gives one key twice (``json`` would silently keep the last value)."""


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


_GZIP_MAGIC = b"\x1f\x8b"


def _not_json_lines(path: Path, lineno: int, line: str) -> str | None:
    """What to say when a file is JSON but not JSON Lines (a pretty-printed array or object), else None."""
    text = line.strip()
    if lineno == 1 and text.startswith("["):
        return (
            f"{path}: line 1: the file is a JSON array; JSON Lines is expected (one object per line, no enclosing "
            "[ ]): write each object on a line of its own"
        )
    if lineno == 1 and text == "{":
        return (
            f"{path}: line 1: an object spread over several lines (pretty-printed JSON); JSON Lines is expected: "
            "each object complete on one line"
        )
    return None


def iter_jsonl(path: str | os.PathLike, error: type[Exception] = ValueError) -> Iterator[tuple[int, dict]]:
    """Yield ``(line number, object)`` per non-blank line.

    A line that is not UTF-8, not JSON or not a JSON object, or an object that gives a key twice, raises ``error``
    naming the file and line; a gzip-compressed file, a JSON array or pretty-printed objects (JSON rather than
    JSON Lines) are named as such. Lines end at ``\\n`` (JSON Lines); a UTF-8 byte-order mark at the start of the
    file is ignored.
    """
    path = Path(path)
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1 and raw.startswith(_GZIP_MAGIC):
                raise error(
                    f"{path}: the file is gzip-compressed: decompress it first (gunzip -k {path.name}, then "
                    "point the kit at the .jsonl it writes)"
                )
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise error(invalid_utf8_message(path, lineno, raw, e)) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line, object_pairs_hook=_refuse_duplicate_keys)
            except _DuplicateKey as e:
                raise error(
                    f"{path}: line {lineno}: duplicate key {e.args[0]!r} in one object (JSON readers keep "
                    "either value): give each key once"
                ) from None
            except json.JSONDecodeError as e:
                hint = _not_json_lines(path, lineno, line)
                raise error(hint or f"{path}: line {lineno}: malformed JSON ({e.msg})") from None
            if isinstance(obj, list):
                raise error(
                    f"{path}: line {lineno}: expected a JSON object, got a JSON array; JSON Lines is expected (one "
                    "object per line, no enclosing [ ]): write each object on a line of its own"
                )
            if not isinstance(obj, dict):
                raise error(f"{path}: line {lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file; a malformed line raises ValueError naming the file and line number."""
    return [obj for _, obj in iter_jsonl(path)]


# ---------------------------------------------------------------- provenance


def git_sha(cwd: Path | None = None) -> str | None:
    """The checkout's HEAD commit (with ``-dirty`` if there are uncommitted changes), or None."""
    cwd = cwd or repo_root() or Path.cwd()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if not sha:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages that decide results (None when absent)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info() -> dict[str, Any]:
    """CPU/GPU description for provenance (imports torch lazily)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info["gpu"] = props.name
            info["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
            info["gpu_capability"] = f"{props.major}.{props.minor}"
    except ImportError:
        info["cuda"] = None
    return info


def provenance(extra: dict | None = None) -> dict[str, Any]:
    """Everything needed to say which code, packages and machine produced a run."""
    prov = {
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "packages": package_versions(),
        "device": device_info(),
        "argv": sys.argv,
    }
    if extra:
        prov.update(extra)
    return prov


def environment_summary() -> str:
    """One short block for a notebook's environment cell."""
    v = package_versions(("torch", "transformers", "trl", "peft", "datasets", "socialite-utils"))
    d = device_info()
    dev = d.get("gpu") or f"CPU ({d['cpu_count']} cores)"
    lines = [f"python {d['python']} on {d['platform']}", f"device: {dev}"]
    lines += [f"{k} {val}" for k, val in v.items()]
    lines.append(f"git: {git_sha() or 'not a git checkout'}")
    return "\n".join(lines)


# ---------------------------------------------------------------- atomic run directories


class RunExistsError(FileExistsError):
    """Raised instead of silently overwriting an existing run."""


# ".<name>.socialite-tmp-<pid>-<host>" (a run being written) and ".<name>.socialite-old-<pid>-<host>" (a run being
# replaced): the host keeps a process on another machine sharing the runs directory (a cluster's network file
# system) from deleting this machine's work in progress; the kit's word keeps a user's ".notes.tmp-1" out of reach.
_TEMP_DIR = re.compile(rf"\.(?P<name>.+)\.{KIT_MARKER}-(?P<kind>tmp|old)-(?P<pid>\d+)-(?P<host>[\w.-]+)")


def _host() -> str:
    return re.sub(r"[^\w.-]", "_", platform.node())[:64] or "localhost"


def _owner() -> str:
    """This process in a temporary name: ``<pid>-<host>``."""
    return f"{os.getpid()}-{_host()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's process) or cannot tell: keep its directory
    return True


def this_process() -> dict[str, Any]:
    """This process as a record names it: ``{"pid": ..., "host": ...}`` (see :func:`process_alive`)."""
    return {"pid": os.getpid(), "host": _host()}


def process_alive(pid: Any, host: Any) -> bool:
    """Whether process ``pid`` of ``host`` may still be running: False only when ``host`` is this machine and the
    process is gone (a process of another machine is assumed alive)."""
    if not isinstance(pid, int) or isinstance(pid, bool):
        return False
    if host != _host():
        return True
    return pid == os.getpid() or _pid_alive(pid)


def temp_file_name(name: str) -> str:
    """The hidden name a file ``name`` is written under before it is moved into place:
    ``.<stem>.socialite-tmp-<pid>-<host><suffix>`` (the suffix kept, so tools that go by it still work)."""
    stem, suffix = os.path.splitext(check_name(name, param="file name"))
    return f".{stem}.{KIT_MARKER}-tmp-{_owner()}{suffix}"


def _mark(path: Path) -> None:
    """Record inside ``path`` that this process made it (what :func:`remove_stale_temp_dirs` checks)."""
    (path / _MARKER_FILE).write_text(_owner() + "\n", encoding="utf-8")


def _is_marked(path: Path, owner: str) -> bool:
    """``path`` is a real directory (not a link) holding the kit's marker written by ``owner``."""
    marker = path / _MARKER_FILE
    if path.is_symlink() or not path.is_dir() or marker.is_symlink() or not marker.is_file():
        return False
    try:
        return marker.read_text(encoding="utf-8").strip() == owner
    except (OSError, UnicodeDecodeError):
        return False


def make_temp_dir(root: str | os.PathLike, name: str, *, param: str = "name") -> Path:
    """A fresh, marked temporary directory ``root/.<name>.socialite-tmp-<pid>-<host>`` for writing ``name``
    (the name checked by :func:`safe_write_path`); one this process left there before is removed first."""
    safe_write_path(root, name, param=param)
    tmp = Path(root) / f".{name}.{KIT_MARKER}-tmp-{_owner()}"
    if _is_marked(tmp, _owner()):
        shutil.rmtree(tmp)
    elif tmp.exists() or tmp.is_symlink():
        raise UnsafePathError(f"{tmp} exists and was not made by the kit; move it away")
    tmp.mkdir(parents=True)
    _mark(tmp)
    return tmp


def swap_into_place(tmp: Path, target: Path) -> None:
    """Move the finished temporary directory ``tmp`` to ``target``; an existing ``target`` is first renamed to a
    marked ``.<name>.socialite-old-<pid>-<host>`` and deleted only once ``tmp`` is in place."""
    (tmp / _MARKER_FILE).unlink(missing_ok=True)
    if target.is_symlink():
        raise UnsafePathError(f"{target} is a symbolic link; the kit never writes through a link: remove it")
    if target.exists():
        old = target.parent / f".{target.name}.{KIT_MARKER}-old-{_owner()}"
        target.rename(old)
        _mark(old)
        tmp.rename(target)
        shutil.rmtree(old)
    else:
        tmp.rename(target)


def discard_temp_dir(tmp: Path) -> None:
    """Delete ``tmp`` if it is this process's marked temporary directory (never anything else)."""
    if _is_marked(tmp, _owner()):
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temp_dirs(runs_dir: str | os.PathLike, log=print) -> list[Path]:
    """Clean up after killed processes: hidden ``.<name>.socialite-tmp-<pid>-<host>`` /
    ``.<name>.socialite-old-<pid>-<host>`` directories in ``runs_dir`` whose process is no longer running on this
    machine. A ``-tmp-`` one (an unfinished run) is deleted; an ``-old-`` one (a previous run being replaced) is
    deleted if ``<name>`` exists (the swap finished), else renamed back to ``<name>``. Only real directories (not
    links, not files) holding the kit's marker written by that process are ever deleted; those of live processes or
    of other machines are never touched. Each action is reported through ``log``; returns the paths acted on."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    touched = []
    for path in sorted(runs_dir.iterdir()):
        m = _TEMP_DIR.fullmatch(path.name)
        if not m or m["host"] != _host() or path.is_symlink() or not path.is_dir():
            continue
        pid = int(m["pid"])
        if pid == os.getpid() or _pid_alive(pid):
            continue
        target = runs_dir / m["name"]
        if m["kind"] == "old" and not target.exists() and not target.is_symlink():
            (path / _MARKER_FILE).unlink(missing_ok=True)
            path.rename(target)
            log(f"restored {target} from {path.name} (left by process {pid}, which is no longer running)")
        elif _is_marked(path, f"{pid}-{m['host']}"):
            shutil.rmtree(path)
            what = "temporary directory" if m["kind"] == "tmp" else "replaced run"
            log(f"removed stale {what} {path} (left by process {pid}, which is no longer running)")
        else:
            continue
        touched.append(path)
    return touched


@contextmanager
def RunWriter(run_dir: str | os.PathLike, *, overwrite: bool = False, log=print) -> Iterator[Path]:  # noqa: N802
    """Yield a temporary directory that becomes ``run_dir`` only if the block succeeds.

    ``run_dir`` passes :func:`safe_write_path` (a plain name inside its parent, never a symbolic link). An existing
    ``run_dir`` raises :class:`RunExistsError` unless ``overwrite=True`` (then the old run is replaced only after
    the new one is complete). On any exception the temporary directory is deleted and nothing at ``run_dir``
    changes. Temporary directories that killed processes left in the same runs directory are cleaned up first
    (:func:`remove_stale_temp_dirs`).
    """
    run_dir = Path(run_dir)
    run_dir = safe_write_path(run_dir.parent, run_dir.name, param="run directory")
    overwrite = as_bool(overwrite, param="overwrite")
    if run_dir.exists() and not overwrite:
        raise RunExistsError(
            f"run directory {run_dir} already exists; choose another run_name or pass overwrite=True"
        )
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_dirs(run_dir.parent, log=log)
    tmp = make_temp_dir(run_dir.parent, run_dir.name, param="run directory")
    try:
        yield tmp
    except BaseException as e:
        discard_temp_dir(tmp)
        if _is_disk_full(e):
            kept = "the earlier run is unchanged" if run_dir.exists() else "nothing of the new run was kept"
            raise _disk_full(e, run_dir, kept) from e
        raise
    swap_into_place(tmp, run_dir)


def run_ref(target: str | os.PathLike, base: str | os.PathLike) -> str:
    """How one run names another in its metrics: relative to ``base`` (the runs directory they share) when
    inside it, so a copied or moved set of runs stays valid and byte-identical; else the absolute path."""
    target, base = Path(target).resolve(), Path(base).resolve()
    return str(target.relative_to(base)) if target.is_relative_to(base) else str(target)


def resolve_run_ref(ref: str | os.PathLike, base: str | os.PathLike) -> Path:
    """Inverse of :func:`run_ref`: a relative reference is looked up next to ``base`` first."""
    p = Path(ref).expanduser()
    if p.is_absolute():
        return p
    candidate = Path(base) / p
    # A plain name not beside ``base`` is a run under runs_root(); never a folder of the current directory.
    return candidate if candidate.exists() or _is_path(ref) else resolve_run_dir(ref)
