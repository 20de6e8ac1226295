"""Fetch the data files the repository does not ship, and check every data file against ``data/SHA256SUMS``.

The three bundles under ``data/`` (social_tasks, writing_tasks, general_instructions) ship the files whose
licence allows redistribution. The rest are rebuilt here from pinned source files:

1. each source file named by a selection (``data/selections/<bundle>/<task>.json``: repository, commit,
   path, git blob) is downloaded from ``{base_url}/{repo}/{commit}/{path}`` (raw.githubusercontent.com by
   default) into ``data/.cache/``; a broken download is kept as ``<name>.partial`` and resumed with an HTTP
   Range request (or restarted when the server ignores the range);
2. the download's git blob hash (sha1 of ``b"blob <len>\\0" + bytes``) must equal the selection's, otherwise
   the file is deleted and refused, by name;
3. the selection's rows (which source lines, in which order, how each JSON object is built) are rendered
   into the bundle file, whose sha256 must equal the one in ``data/SHA256SUMS``; only then is it written,
   through a temporary file and ``os.replace``, so no half-written or wrong file is ever left in place.

``--from DIR`` installs a local copy of a bundle instead (a folder such as ``.../shared/data/social_tasks``,
or a folder holding several bundle folders), after checking every file against ``data/SHA256SUMS``.
Files already present with the right hash are left alone, so running the command again does nothing.

Standard library and tqdm, plus the kernel's ``repo_root`` to find the checkout: the fetch starts (and fails
offline) within a second, before any model library is imported.

    python -m socialite_utils.data fetch [--bundle NAME ...] [--from DIR] [--data-dir DIR] [--base-url URL]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import http.client
import io
import json
import os
import socket
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

from tqdm.auto import tqdm

from ..runs import repo_root

BUNDLES = ("social_tasks", "writing_tasks", "general_instructions")
DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
SUMS_NAME = "SHA256SUMS"
SELECTIONS_DIR = "selections"
CACHE_DIR = ".cache"
# The first contact with the server gets a short limit, so that a machine without a network fails in a
# second or two instead of hanging; reads of a download in progress get a longer one.
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 30.0
CHUNK = 1 << 16


class FetchError(RuntimeError):
    """A fetch that cannot go on; the message says which file and what to do."""


class OfflineError(FetchError):
    """The source server cannot be reached."""


# --------------------------------------------------------------------------------------------- locations


def project_data_dir() -> Path:
    """The project's own data folder: ``<checkout>/data`` (bundles shipped in the repository, the rest fetched
    there), or ``./data`` when the package is installed outside a checkout."""
    root = repo_root()
    return (root / "data") if root is not None else Path.cwd() / "data"


def not_fetched(bundle_dir: Path) -> list[str]:
    """The files of a bundle that are fetched rather than shipped and are not there yet (paths relative to the
    bundle, e.g. ``tweet_emotion/train.jsonl``); empty for a folder that is not one of the project's bundles."""
    bundle_dir = Path(bundle_dir)
    data_dir, bundle = bundle_dir.parent, bundle_dir.name
    if bundle not in BUNDLES or not (data_dir / SELECTIONS_DIR / bundle).is_dir():
        return []
    wanted = [f["file"] for selection in load_selections(data_dir, bundle) for f in selection["files"]]
    return [rel for rel in wanted if not (bundle_dir / rel).is_file()]


def read_sums(data_dir: Path) -> dict[str, str]:
    """``data/SHA256SUMS`` as {path relative to data/: sha256}."""
    path = data_dir / SUMS_NAME
    if not path.is_file():
        raise FetchError(f"{path} is missing: the checksums name every data file, so nothing can be checked")
    sums = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            sums[rel.lstrip("*")] = digest
    return sums


def load_selections(data_dir: Path, bundle: str) -> list[dict]:
    """Every selection of a bundle (one JSON file per task), sorted by file name."""
    folder = data_dir / SELECTIONS_DIR / bundle
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_sha1(data: bytes) -> str:
    """The object id git gives a file with these bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder and ``os.replace``: the file is whole or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------- rebuilding


class _JsonLines:
    """The lines of a JSON-lines file, parsed on access (a malformed line elsewhere in the file is no harm)."""

    def __init__(self, text: str):
        self._lines = text.split("\n")

    def __getitem__(self, index: int):
        return json.loads(self._lines[index])


def parse_source(data: bytes, source: dict):
    """A source file as an indexable sequence of records, per its ``format``."""
    text = data.decode("utf-8")
    fmt = source.get("format", "lines")
    if fmt == "lines":  # line i, without its "\n"
        return text.split("\n")
    if fmt == "jsonl":  # line i, parsed as JSON
        return _JsonLines(text)
    if fmt == "json":  # element i of the top-level JSON array
        return json.loads(text)
    if fmt == "csv":  # record i of the CSV file (record 0 is the header where there is one)
        return list(csv.reader(io.StringIO(text, newline=""), **source.get("csv", {})))
    raise FetchError(f"unknown source format {fmt!r} for {source['path']}")


def _value(expr: dict, row: list, records: dict):
    """One field of one output row. ``row`` is [part, index, index, ...]; ``at`` picks the index."""
    if "const" in expr:
        value = expr["const"]
    elif "list" in expr:
        value = [_value(item, row, records) for item in expr["list"]]
    else:
        value = records[expr["src"]][row[1 + expr.get("at", 0)]]
        for key in expr.get("key", []):  # into a JSON object / CSV record: names or positions
            value = value[key]
    if expr.get("strip"):
        value = value.strip()
    if "map" in expr:  # label ids to names, placeholders to "": values not in the map pass unchanged
        value = expr["map"].get(value, value)
    return value


def render_file(spec: dict, records: dict) -> bytes:
    """The bytes of one bundle file: one JSON object a line, fields in the order the selection gives."""
    dump = spec.get("json", {"ensure_ascii": False})
    out = []
    for row in spec["rows"]:
        part = spec["parts"][row[0]]
        obj = {name: _value(expr, row, records) for name, expr in part["fields"]}
        out.append(json.dumps(obj, **dump) + "\n")
    return "".join(out).encode("utf-8")


def rebuild_selection(selection: dict, read_source: Callable[[dict], bytes]) -> dict[str, bytes]:
    """{bundle-relative path: bytes} of every file of a selection; ``read_source`` returns checked bytes."""
    records = {sid: parse_source(read_source(src), src) for sid, src in selection["sources"].items()}
    return {spec["file"]: render_file(spec, records) for spec in selection["files"]}


# ------------------------------------------------------------------------------------------- downloading


def source_url(base_url: str, source: dict) -> str:
    return f"{base_url.rstrip('/')}/{source['repo']}/{source['commit']}/{urllib.parse.quote(source['path'])}"


def _check_reachable(base_url: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Resolve and connect to the server within ``timeout`` seconds (name lookup included), else OfflineError."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https"):
        return
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):  # behind a proxy: the proxy is what must answer
        proxied = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxied.hostname, proxied.port or 80
    outcome: dict = {}

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome["ok"] = True
        except OSError as exc:
            outcome["error"] = exc

    # getaddrinfo has no timeout of its own, so the attempt runs in a thread that is given up on.
    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not outcome.get("ok"):
        why = outcome.get("error") or f"no answer within {timeout:g} s"
        raise OfflineError(_offline_message(base_url, why))


def _offline_message(base_url: str, why) -> str:
    return (
        f"cannot reach {base_url} ({why}).\n"
        "  Connect to the internet and run the command again, or install a copy of the bundle you already "
        "have:\n    python -m socialite_utils.data fetch --from DIR   "
        "(DIR: a copy of e.g. social_tasks/, or a folder holding the bundle folders)"
    )


class Downloader:
    """Downloads source files into a cache folder, resuming broken downloads, and checks their git blob."""

    def __init__(self, cache_dir: Path, base_url: str = DEFAULT_BASE_URL, progress: bool = True):
        self.cache_dir = cache_dir
        self.base_url = base_url
        self.progress = progress
        self._checked_reachable = False

    def cache_path(self, source: dict) -> Path:
        return self.cache_dir / source["repo"] / source["commit"] / source["path"]

    def get(self, source: dict) -> bytes:
        """The checked bytes of a source file, from the cache or downloaded."""
        path = self.cache_path(source)
        if path.is_file():
            data = path.read_bytes()
            if git_blob_sha1(data) == source["git_blob"]:
                return data
            path.unlink()  # a cached file that no longer matches is fetched again
        if not self._checked_reachable:
            _check_reachable(self.base_url)
            self._checked_reachable = True
        self._download(source, path)
        data = path.read_bytes()
        return data

    def _download(self, source: dict, path: Path) -> None:
        url = source_url(self.base_url, source)
        partial = path.with_name(path.name + ".partial")
        partial.parent.mkdir(parents=True, exist_ok=True)
        have = partial.stat().st_size if partial.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            response = urllib.request.urlopen(request, timeout=READ_TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # the range is past the end: start over
                partial.unlink()
                return self._download(source, path)
            raise FetchError(
                f"{source['repo']}/{source['path']}: HTTP {exc.code} from {url}\n  If this machine has no "
                "access to that server, install a copy of the bundle instead: --from DIR"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise OfflineError(_offline_message(self.base_url, getattr(exc, "reason", exc))) from exc
        with response:
            resumed = have and response.status == 206
            if have and not resumed:  # the server sent the whole file: start over
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            bar = tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                desc=f"{source['repo'].split('/')[-1]}/{source['path']}",
                disable=not self.progress,
                leave=False,
            )
            got = have
            with bar, open(partial, "ab" if resumed else "wb") as fh:
                try:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        fh.write(block)
                        got += len(block)
                        bar.update(len(block))
                    if total is not None and got < total:  # the connection closed early
                        raise OSError(f"{got} of {total} bytes received")
                except (OSError, http.client.HTTPException) as exc:  # the .partial stays, to be resumed
                    raise FetchError(
                        f"download of {source['repo']}/{source['path']} broke off ({exc}); run the command "
                        "again to resume it"
                    ) from exc
        data = partial.read_bytes()
        blob = git_blob_sha1(data)
        if blob != source["git_blob"]:
            partial.unlink()
            raise FetchError(
                f"refused {source['repo']}/{source['path']} (from {url}): git blob {blob} is not the pinned "
                f"{source['git_blob']}; the file was deleted, nothing was written"
            )
        os.replace(partial, path)


# ------------------------------------------------------------------------------------------- the command


def _bundle_files(sums: dict[str, str], bundle: str) -> dict[str, str]:
    """{path relative to the bundle: sha256} of one bundle's files."""
    prefix = bundle + "/"
    return {rel[len(prefix) :]: digest for rel, digest in sums.items() if rel.startswith(prefix)}


def _is_current(path: Path, digest: str) -> bool:
    return path.is_file() and sha256_file(path) == digest


def fetch_bundle(
    bundle: str,
    data_dir: Path,
    downloader: Downloader,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Rebuild the missing or wrong fetched files of one bundle; returns the paths written."""
    sums = _bundle_files(read_sums(data_dir), bundle)
    if not sums:
        raise FetchError(f"no files of bundle {bundle!r} in {data_dir / SUMS_NAME}")
    written, fetched = [], set()
    for selection in load_selections(data_dir, bundle):
        names = [spec["file"] for spec in selection["files"]]
        fetched.update(names)
        unlisted = [n for n in names if n not in sums]
        if unlisted:
            raise FetchError(f"{bundle}/{unlisted[0]} has a selection but no line in {SUMS_NAME}")
        todo = [n for n in names if not _is_current(data_dir / bundle / n, sums[n])]
        if not todo:
            continue
        built = rebuild_selection(selection, downloader.get)
        for name in todo:
            data = built[name]
            got = hashlib.sha256(data).hexdigest()
            if got != sums[name]:
                raise FetchError(
                    f"rebuilt {bundle}/{name} has sha256 {got}, not {sums[name]} ({SUMS_NAME}); not written"
                )
            write_atomic(data_dir / bundle / name, data)
            written.append(f"{bundle}/{name}")
            log(f"wrote {bundle}/{name}")
    broken = [n for n in sorted(set(sums) - fetched) if not _is_current(data_dir / bundle / n, sums[n])]
    if broken:
        raise FetchError(
            f"shipped files of {bundle} are missing or changed: {', '.join(broken)}; restore them with "
            f"`git checkout -- data/{bundle}` or install a copy with --from DIR"
        )
    return written


def _from_dirs(src: Path, bundles: Iterable[str]) -> dict[str, Path]:
    """Which bundle each given folder holds: the folder itself (by MANIFEST.json or name), or its sub-folders."""
    manifest = src / "MANIFEST.json"
    if manifest.is_file():
        try:
            name = json.loads(manifest.read_text(encoding="utf-8")).get("bundle") or src.name
        except (ValueError, AttributeError):
            name = src.name
        return {name: src}
    if src.name in BUNDLES:
        return {src.name: src}
    return {b: src / b for b in bundles if (src / b).is_dir()}


def install_from(
    src: Path,
    data_dir: Path,
    bundles: Iterable[str],
    log: Callable[[str], None] = print,
) -> list[str]:
    """Copy a local copy of bundle files into data/, every file checked first; returns the paths written."""
    bundles = list(bundles)
    if not src.is_dir():
        raise FetchError(f"--from {src}: no such folder")
    found = {b: p for b, p in _from_dirs(src, bundles).items() if b in bundles}
    if not found:
        raise FetchError(f"--from {src}: holds none of the bundles {', '.join(bundles)}")
    sums = read_sums(data_dir)
    plan, problems = [], []
    for bundle, folder in found.items():
        files = _bundle_files(sums, bundle)
        if not files:
            raise FetchError(f"--from {src}: {bundle!r} is not a bundle listed in {SUMS_NAME}")
        for rel, digest in sorted(files.items()):
            if _is_current(data_dir / bundle / rel, digest):
                continue
            candidate = folder / rel
            if not candidate.is_file():
                problems.append(f"{candidate} is missing")
            elif sha256_file(candidate) != digest:
                problems.append(f"{candidate} does not match {SUMS_NAME} ({bundle}/{rel})")
            else:
                plan.append((candidate, data_dir / bundle / rel, f"{bundle}/{rel}"))
    if problems:  # checked before anything is copied, so a bad copy installs nothing
        raise FetchError("refused --from copy, nothing installed:\n  " + "\n  ".join(problems))
    for candidate, target, rel in plan:
        write_atomic(target, candidate.read_bytes())
        log(f"installed {rel}")
    return [rel for _, _, rel in plan]


def fetch(
    bundles: Iterable[str] | None = None,
    data_dir: Path | None = None,
    base_url: str = DEFAULT_BASE_URL,
    from_dir: Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Make every file of the given bundles (default: all) present and correct; returns the paths written."""
    data_dir = Path(data_dir) if data_dir is not None else project_data_dir()
    if not bundles:  # every bundle that SHA256SUMS lists
        listed = {rel.split("/", 1)[0] for rel in read_sums(data_dir)}
        bundles = [b for b in BUNDLES if b in listed]
    bundles = list(bundles)
    unknown = [b for b in bundles if b not in BUNDLES]
    if unknown:
        raise FetchError(f"unknown bundle(s) {', '.join(unknown)}; choose from {', '.join(BUNDLES)}")
    if from_dir is not None:
        return install_from(Path(from_dir), data_dir, bundles, log=log)
    downloader = Downloader(data_dir / CACHE_DIR, base_url=base_url, progress=progress)
    written = []
    for bundle in bundles:
        written += fetch_bundle(bundle, data_dir, downloader, log=log)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m socialite_utils.data",
        description="Fetch the data files the repository does not ship (see data/README.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("fetch", help="download, rebuild and check the fetched files of the bundles")
    cmd.add_argument(
        "--bundle",
        action="extend",
        nargs="+",
        choices=BUNDLES,
        metavar="NAME",
        help=f"only these bundles ({', '.join(BUNDLES)}); default: all",
    )
    cmd.add_argument(
        "--from",
        dest="from_dir",
        type=Path,
        metavar="DIR",
        help="install a local copy of a bundle (checked against data/SHA256SUMS) instead of downloading",
    )
    cmd.add_argument(
        "--data-dir", type=Path, metavar="DIR", help="the data/ folder (default: the checkout's)"
    )
    cmd.add_argument(
        "--base-url",
        default=DEFAULT_BASE_URL,
        metavar="URL",
        help=f"where {{repo}}/{{commit}}/{{path}} is served (default: {DEFAULT_BASE_URL})",
    )
    args = parser.parse_args(argv)
    try:
        written = fetch(args.bundle, args.data_dir, base_url=args.base_url, from_dir=args.from_dir)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(written)} file(s) written; every file of the bundle(s) matches {SUMS_NAME}")
    return 0
