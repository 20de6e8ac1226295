"""Rebuild every fetched data file from the pinned source repositories and compare it with a reference copy.

Two checks, both against local git mirrors of the source repositories (no network):

1. direct: each selection's source files are read with `git show COMMIT:PATH`, their git blob checked, the
   rows rebuilt with socialite_utils.data.fetch, and every file compared byte for byte with the reference
   bundle and with data/SHA256SUMS;
2. end to end: the mirrors are served over a local HTTP server in raw.githubusercontent.com's layout
   (/{repo}/{commit}/{path}) and `python -m socialite_utils.data fetch --base-url ... --data-dir TMP`
   runs on a copy of data/ holding only what the repository ships; then every file of all three bundles
   (shipped and fetched) in TMP is compared with the reference.

    python data/tools/check_rebuild.py --reference /work/shared/data --mirrors /work/.mirror

--mirrors holds bare git mirrors named <owner>+<name>/repo. Exit status 1 if any file differs.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from socialite_utils.data import fetch as data_fetch  # noqa: E402

DATA = REPO / "data"


def git_dir(mirrors: Path, repo: str) -> Path:
    base = mirrors / repo.replace("/", "+") / "repo"
    return base / ".git" if (base / ".git").is_dir() else base


def git_show(mirrors: Path, repo: str, commit: str, path: str) -> bytes | None:
    out = subprocess.run(
        ["git", "--git-dir", str(git_dir(mirrors, repo)), "show", f"{commit}:{path}"], capture_output=True
    )
    return out.stdout if out.returncode == 0 else None


def direct(reference: Path, mirrors: Path, sums: dict[str, str]) -> int:
    bad = 0
    print("== direct: git show from the mirrors -> blob check -> rebuild -> compare")
    for bundle in data_fetch.BUNDLES:
        for selection in data_fetch.load_selections(DATA, bundle):

            def read(src):
                data = git_show(mirrors, src["repo"], src["commit"], src["path"])
                if data is None or data_fetch.git_blob_sha1(data) != src["git_blob"]:
                    raise SystemExit(
                        f"{src['repo']}/{src['path']}@{src['commit']}: missing or wrong git blob"
                    )
                return data

            built = data_fetch.rebuild_selection(selection, read)
            for name, data in built.items():
                rel = f"{bundle}/{name}"
                same = data == (reference / rel).read_bytes()
                digest_ok = hashlib.sha256(data).hexdigest() == sums[rel]
                bad += not (same and digest_ok)
                rows = data.count(b"\n")
                print(
                    f"{'OK ' if same and digest_ok else 'BAD'} {rel}: {rows} rows, {len(data)} bytes, "
                    f"{'byte-identical' if same else 'DIFFERS'} to the reference, "
                    f"sha256 {'matches' if digest_ok else 'DOES NOT MATCH'} SHA256SUMS"
                )
            n_src = len(selection["sources"])
            repos = sorted({s["repo"] for s in selection["sources"].values()})
            print(f"    ({n_src} source file(s), git blobs checked, from {', '.join(repos)})")
    return bad


def serve_mirrors(mirrors: Path):
    """A local HTTP server answering /{owner}/{name}/{commit}/{path} from the git mirrors."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            parts = urllib.parse.unquote(self.path).lstrip("/").split("/", 3)
            data = git_show(mirrors, "/".join(parts[:2]), parts[2], parts[3]) if len(parts) == 4 else None
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def end_to_end(reference: Path, mirrors: Path, sums: dict[str, str]) -> int:
    print(
        "== end to end: python -m socialite_utils.data fetch --base-url <local server over the mirrors> on the shipped files only"
    )
    tracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "data"], capture_output=True, text=True, check=True
    ).stdout.split()
    server = serve_mirrors(mirrors)
    with tempfile.TemporaryDirectory() as tmp, contextlib.closing(server.socket):
        work = Path(tmp) / "data"
        for rel in tracked:  # the data/ folder of a fresh clone
            dst = work / Path(rel).relative_to("data")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst)
        shipped = sum(1 for rel in sums if (work / rel).exists())
        url = f"http://127.0.0.1:{server.server_address[1]}"
        rc = data_fetch.main(["fetch", "--data-dir", str(work), "--base-url", url])
        server.shutdown()
        bad = int(rc != 0)
        same = sum(
            (work / rel).is_file() and (work / rel).read_bytes() == (reference / rel).read_bytes()
            for rel in sums
        )
        bad += len(sums) - same
        print(
            f"fetch exit status {rc}; {shipped} file(s) shipped, {len(sums) - shipped} fetched; "
            f"{same} of {len(sums)} files of the three bundles byte-identical to the reference"
        )
        rc2 = data_fetch.main(["fetch", "--data-dir", str(work), "--base-url", "http://127.0.0.1:9"])
        print(f"second run (server gone): exit status {rc2}, nothing to download")
        bad += int(rc2 != 0)
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    args = parser.parse_args()
    sums = data_fetch.read_sums(DATA)
    print(
        f"reference: {args.reference}; mirrors: {args.mirrors}; {len(sums)} files in data/{data_fetch.SUMS_NAME}"
    )
    bad = direct(args.reference, args.mirrors, sums)
    bad += end_to_end(args.reference, args.mirrors, sums)
    print(f"== {'ALL OK' if not bad else f'{bad} PROBLEM(S)'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
