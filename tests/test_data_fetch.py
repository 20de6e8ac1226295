"""socialite_utils.data.fetch against a local HTTP server standing in for raw.githubusercontent.com.

The fixture is a tiny data/ folder built in tmp_path: one bundle with a shipped file and a fetched file whose
selection rebuilds it from two small source files served as /{repo}/{commit}/{path}. No network is used.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from socialite_utils.data import fetch as data_fetch

REPO = Path(__file__).resolve().parent.parent
OWNER_REPO = "someone/tweets"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TEXT_PATH = "datasets/emo/train_text.txt"
LABELS_PATH = "datasets/emo/train_labels.txt"
TEXT = "first tweet \nsecond “quoted” tweet\nthird tweet\n".encode() + b"x" * 300_000 + b"\n"
LABELS = b"0\n1\n0\n0\n"
SOURCES = {TEXT_PATH: TEXT, LABELS_PATH: LABELS}
# rows 2, 1 and 0 of the sources, in that order, labels mapped to names, non-ASCII kept as UTF-8
EXPECTED = (
    '{"text": "third tweet", "label": "anger"}\n'
    '{"text": "second “quoted” tweet", "label": "joy"}\n'
    '{"text": "first tweet ", "label": "anger"}\n'
).encode()
SHIPPED = b'{"text": "a shipped row", "label": 1.5}\n'


def make_data_dir(root: Path) -> Path:
    """A data/ folder: SHA256SUMS, one selection, the shipped file (the fetched one is absent)."""
    data = root / "data"
    sources = {
        "text": {
            "repo": OWNER_REPO,
            "commit": COMMIT,
            "path": TEXT_PATH,
            "format": "lines",
            "git_blob": data_fetch.git_blob_sha1(TEXT),
        },
        "labels": {
            "repo": OWNER_REPO,
            "commit": COMMIT,
            "path": LABELS_PATH,
            "format": "lines",
            "git_blob": data_fetch.git_blob_sha1(LABELS),
        },
    }
    selection = {
        "bundle": "social_tasks",
        "task": "tweet_emo",
        "sources": sources,
        "files": [
            {
                "file": "tweet_emo/train.jsonl",
                "parts": [
                    {
                        "fields": [
                            ["text", {"src": "text"}],
                            ["label", {"src": "labels", "map": {"0": "anger", "1": "joy"}}],
                        ]
                    }
                ],
                "rows": [[0, 2], [0, 1], [0, 0]],
            }
        ],
    }
    (data / "selections" / "social_tasks").mkdir(parents=True)
    (data / "selections" / "social_tasks" / "tweet_emo.json").write_text(json.dumps(selection))
    (data / "social_tasks" / "shipped_task").mkdir(parents=True)
    (data / "social_tasks" / "shipped_task" / "train.jsonl").write_bytes(SHIPPED)
    sums = {
        "social_tasks/shipped_task/train.jsonl": hashlib.sha256(SHIPPED).hexdigest(),
        "social_tasks/tweet_emo/train.jsonl": hashlib.sha256(EXPECTED).hexdigest(),
    }
    (data / "SHA256SUMS").write_text("".join(f"{h}  {p}\n" for p, h in sorted(sums.items())))
    return data


class Origin:
    """A threaded HTTP server serving SOURCES in the origin layout, with switches for misbehaving."""

    def __init__(self):
        self.files = {f"/{OWNER_REPO}/{COMMIT}/{p}": b for p, b in SOURCES.items()}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.honour_range = True
        self.cut_after: int | None = None  # send only this many bytes of a full response, then hang up
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (the name http.server calls)
                rng = self.headers.get("Range")
                origin.requests.append((self.path, rng))
                body = origin.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = int(rng.removeprefix("bytes=").split("-")[0]) if rng and origin.honour_range else 0
                part = body[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(part)))
                self.send_header("Connection", "close")
                self.end_headers()
                if origin.cut_after is not None:
                    self.wfile.write(part[: origin.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origin():
    server = Origin()
    yield server
    server.close()


@pytest.fixture
def data_dir(tmp_path):
    return make_data_dir(tmp_path)


def closed_port_url() -> str:
    """A local URL nothing listens on (the port was just free)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def run(data_dir: Path, *args: str) -> int:
    return data_fetch.main(["fetch", "--data-dir", str(data_dir), *args])


TARGET = Path("social_tasks/tweet_emo/train.jsonl")
CACHED = Path(".cache") / OWNER_REPO / COMMIT / TEXT_PATH


def test_download_checks_blob_and_rebuilds_the_exact_bytes(origin, data_dir, capsys):
    assert run(data_dir, "--base-url", origin.url) == 0
    assert (data_dir / TARGET).read_bytes() == EXPECTED
    assert (data_dir / CACHED).read_bytes() == TEXT
    assert sorted(p for p, _ in origin.requests) == sorted(f"/{OWNER_REPO}/{COMMIT}/{p}" for p in SOURCES)
    assert "wrote social_tasks/tweet_emo/train.jsonl" in capsys.readouterr().out
    assert not list(data_dir.rglob("*.partial")) and not list(data_dir.rglob("*.tmp"))

    # a second run finds every file correct: no request, nothing written
    origin.requests.clear()
    assert run(data_dir, "--base-url", origin.url) == 0
    assert origin.requests == []
    assert "0 file(s) written" in capsys.readouterr().out


def test_rebuild_from_the_cache_needs_no_server(origin, data_dir):
    assert run(data_dir, "--base-url", origin.url) == 0
    (data_dir / TARGET).write_bytes(b"edited by hand\n")  # a wrong file is rebuilt, from the cache
    assert run(data_dir, "--base-url", closed_port_url()) == 0
    assert (data_dir / TARGET).read_bytes() == EXPECTED


def test_corrupted_served_file_is_refused_by_name(origin, data_dir, capsys):
    key = f"/{OWNER_REPO}/{COMMIT}/{TEXT_PATH}"
    origin.files[key] = TEXT.replace(b"second", b"SECOND")
    assert run(data_dir, "--base-url", origin.url) == 1
    err = capsys.readouterr().err
    assert f"refused {OWNER_REPO}/{TEXT_PATH}" in err
    assert data_fetch.git_blob_sha1(TEXT) in err
    assert not (data_dir / TARGET).exists()
    assert not (data_dir / CACHED).exists() and not list(data_dir.rglob("*.partial"))

    origin.files[key] = TEXT  # the origin is repaired: the next run succeeds
    assert run(data_dir, "--base-url", origin.url) == 0
    assert (data_dir / TARGET).read_bytes() == EXPECTED


def test_interrupted_download_is_resumed_with_a_range_request(origin, data_dir, capsys):
    origin.cut_after = 100_000
    assert run(data_dir, "--base-url", origin.url) == 1
    assert "broke off" in capsys.readouterr().err
    partial = data_dir / CACHED.with_name(CACHED.name + ".partial")
    assert partial.stat().st_size == 100_000 and partial.read_bytes() == TEXT[:100_000]
    assert not (data_dir / TARGET).exists()

    origin.cut_after = None
    origin.requests.clear()
    assert run(data_dir, "--base-url", origin.url) == 0
    assert (f"/{OWNER_REPO}/{COMMIT}/{TEXT_PATH}", "bytes=100000-") in origin.requests
    assert (data_dir / CACHED).read_bytes() == TEXT
    assert (data_dir / TARGET).read_bytes() == EXPECTED
    assert not partial.exists()


def test_partial_download_restarts_when_the_server_ignores_the_range(origin, data_dir):
    partial = data_dir / CACHED.with_name(CACHED.name + ".partial")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(TEXT[:5000])
    origin.honour_range = False  # answers 200 with the whole file
    assert run(data_dir, "--base-url", origin.url) == 0
    assert (f"/{OWNER_REPO}/{COMMIT}/{TEXT_PATH}", "bytes=5000-") in origin.requests
    assert (data_dir / CACHED).read_bytes() == TEXT  # not the first 5000 bytes twice
    assert (data_dir / TARGET).read_bytes() == EXPECTED


@pytest.mark.parametrize("kind", ["closed port", "unroutable address"])
def test_offline_fails_fast_and_says_what_to_do(data_dir, capsys, kind):
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737), never routed
    url = closed_port_url() if kind == "closed port" else "http://192.0.2.1:81"
    start = time.monotonic()
    assert run(data_dir, "--base-url", url) == 1
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert elapsed < 4.0, elapsed
    assert f"cannot reach {url}" in err
    assert "--from DIR" in err and "connect" in err.lower()
    assert not (data_dir / TARGET).exists()


def test_a_hanging_name_lookup_or_connect_is_given_up_after_the_short_timeout(data_dir, capsys, monkeypatch):
    import socket

    def hang(*args, **kwargs):  # what a machine without network may do: wait for DNS or a SYN answer
        time.sleep(60)

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.monotonic()
    assert run(data_dir, "--base-url", "http://origin.example") == 1
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert elapsed < data_fetch.CONNECT_TIMEOUT_S + 1.5, elapsed
    assert f"no answer within {data_fetch.CONNECT_TIMEOUT_S:g} s" in err and "--from DIR" in err


def test_module_runs_as_a_command_and_fails_fast_offline(data_dir):
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "socialite_utils.data",
            "fetch",
            "--data-dir",
            str(data_dir),
            "--base-url",
            closed_port_url(),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "cannot reach" in proc.stderr and "--from DIR" in proc.stderr
    assert time.monotonic() - start < 20


def test_from_dir_installs_a_checked_copy(data_dir, tmp_path, capsys):
    copy = tmp_path / "copy" / "social_tasks"
    (copy / "tweet_emo").mkdir(parents=True)
    (copy / "tweet_emo" / "train.jsonl").write_bytes(EXPECTED)
    (copy / "MANIFEST.json").write_text(json.dumps({"bundle": "social_tasks"}))
    assert run(data_dir, "--from", str(copy)) == 0
    assert (data_dir / TARGET).read_bytes() == EXPECTED
    assert "installed social_tasks/tweet_emo/train.jsonl" in capsys.readouterr().out
    assert run(data_dir, "--from", str(copy)) == 0  # already present: skipped
    assert "0 file(s) written" in capsys.readouterr().out


def test_from_dir_holding_bundle_folders_is_accepted(data_dir, tmp_path):
    copy = tmp_path / "shared"
    (copy / "social_tasks" / "tweet_emo").mkdir(parents=True)
    (copy / "social_tasks" / "tweet_emo" / "train.jsonl").write_bytes(EXPECTED)
    assert run(data_dir, "--from", str(copy), "--bundle", "social_tasks") == 0
    assert (data_dir / TARGET).read_bytes() == EXPECTED


def test_from_dir_with_a_wrong_file_is_refused_by_name(data_dir, tmp_path, capsys):
    copy = tmp_path / "copy" / "social_tasks"
    (copy / "tweet_emo").mkdir(parents=True)
    wrong = copy / "tweet_emo" / "train.jsonl"
    wrong.write_bytes(EXPECTED.replace(b"anger", b"joy"))
    assert run(data_dir, "--from", str(copy)) == 1
    err = capsys.readouterr().err
    assert str(wrong) in err and "does not match SHA256SUMS" in err and "nothing installed" in err
    assert not (data_dir / TARGET).exists()


def test_missing_shipped_file_is_named(origin, data_dir, capsys):
    (data_dir / "social_tasks" / "shipped_task" / "train.jsonl").unlink()
    assert run(data_dir, "--base-url", origin.url) == 1
    err = capsys.readouterr().err
    assert "shipped_task/train.jsonl" in err and "git checkout" in err
    assert (data_dir / TARGET).read_bytes() == EXPECTED  # the fetched file was still made


def test_write_atomic_leaves_no_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "out.jsonl"
    target.write_bytes(b"old\n")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        data_fetch.write_atomic(target, b"new\n")
    assert target.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_git_blob_sha1_is_git_hash_object():
    blob = data_fetch.git_blob_sha1(TEXT)
    git = subprocess.run(["git", "hash-object", "--stdin"], input=TEXT, capture_output=True, check=True)
    assert blob == git.stdout.decode().strip()


# ------------------------------------------------------------------------------- the repository's data/


def test_repository_selections_and_sums_agree_and_fetched_files_are_git_ignored():
    data = REPO / "data"
    sums = data_fetch.read_sums(data)
    fetched = set()
    for bundle in data_fetch.BUNDLES:
        for selection in data_fetch.load_selections(data, bundle):
            for src in selection["sources"].values():
                assert len(src["commit"]) == 40 and len(src["git_blob"]) == 40, src
            for spec in selection["files"]:
                fetched.add(f"{bundle}/{spec['file']}")
                assert len(spec["rows"]) == spec["n"] > 0
    assert fetched and fetched <= set(sums)
    shipped = sorted(set(sums) - fetched)
    ignored = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "--no-index", *[f"data/{p}" for p in sums]],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert sorted(ignored) == sorted(f"data/{p}" for p in fetched)
    for rel in shipped:  # what the repository ships is present and matches SHA256SUMS
        assert data_fetch.sha256_file(data / rel) == sums[rel], rel
