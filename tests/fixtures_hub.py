"""Small fixtures in the exact upstream layouts of the two hub sources, plus a fake hub that serves them.

Importable (not a conftest) so notebook tests can build the same layouts and run papermill on them:

    from tests.fixtures_hub import write_socialite_fixture, write_socket_fixture, install_fake_hub

* ``write_socialite_fixture(root)`` mirrors ``hlab/SocialiteInstructions``: ``root/data/<split>-00000-of-00001-
  <hash>.parquet`` with columns ``task_type, Instruction, Input, Output, Model Input``. train/validation hold
  seen tasks only; the related task HATESPEECH is only in test (as upstream).
* ``write_socket_fixture(root)`` mirrors ``Blablablab/SOCKET``: ``root/SOCKET_DATA/<config>/{train,val,test}_
  {text,labels}.txt`` + ``label_list.txt`` (no trailing newline, as upstream), including a config with ``#``, a
  regression config and a ``[SEP]``-joined pair config.
* ``install_fake_hub(monkeypatch, {repo_id: root})`` replaces ``huggingface_hub.hf_hub_download`` and
  ``snapshot_download`` with functions that serve those roots and record every call.
* ``FakeHubApi(root)`` stands in for ``huggingface_hub.HfApi`` when publishing: ``create_repo`` and
  ``upload_folder`` record their calls and copy the uploaded files to ``root/<owner>/<name>/``;
  ``install_fake_model_hub(monkeypatch, root)`` serves those model repos through ``snapshot_download`` (and makes
  ``huggingface_hub.HfApi()`` return the stand-in).

All texts are invented; no real data is copied.
"""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path
from typing import Any

SOCIALITE_REPO = "hlab/SocialiteInstructions"
SOCKET_REPO = "Blablablab/SOCKET"

# Hash-suffixed shard names, as `push_to_hub` wrote them in 2023 (the test shard name is the real one).
SOCIALITE_FILES = {
    "train": "data/train-00000-of-00001-5e1f0c2a9b7d4e31.parquet",
    "validation": "data/validation-00000-of-00001-0b9d8e7c6a5f4d32.parquet",
    "test": "data/test-00000-of-00001-97aeaf72d1658e9e.parquet",
}

_INSTR = {
    "HUMOR": "Decide whether the text is humorous. Answer humorous or non-humorous.",
    "VALENCECLS": "Decide whether the text has high or low valence. Answer High Valence or Low Valence.",
    "SAMESIDESTANCE": "Decide whether two arguments take the same side. Answer same side or not same side.",
    "HATESPEECH": "Decide whether the text is hate speech. Answer hate speech or not hate speech.",
}

# (task_type, Input, Output) per split. Mixed-case outputs on purpose: upstream has e.g. "High Valence".
SOCIALITE_ROWS: dict[str, list[tuple[str, str, str]]] = {
    "train": [
        ("HUMOR", "Why did the scarecrow win an award? He was outstanding in his field.", "humorous"),
        ("VALENCECLS", "The garden smelled of rain and fresh bread.", "High Valence"),
        ("HUMOR", "The meeting has been moved to 3 pm on Thursday.", "non-humorous"),
        (
            "SAMESIDESTANCE",
            "Cities should ban cars downtown. [SEP] Car-free centres cut pollution.",
            "same side",
        ),
        ("VALENCECLS", "The flight was cancelled and my bag was lost.", "Low Valence"),
        ("HUMOR", "I told my wifi we needed to talk; it dropped the connection.", "humorous"),
        ("SAMESIDESTANCE", "Homework helps pupils. [SEP] Homework mostly adds stress.", "not same side"),
    ],
    "validation": [
        ("HUMOR", "Parking permits are renewed every January.", "non-humorous"),
        ("VALENCECLS", "She laughed all the way home.", "High Valence"),
        ("HUMOR", "My plants and I have an agreement: I forget them, they forgive me.", "humorous"),
    ],
    "test": [
        ("HUMOR", "I am reading a book on anti-gravity. I cannot put it down.", "humorous"),
        ("HATESPEECH", "Everyone is welcome at the community dinner.", "not hate speech"),
        ("VALENCECLS", "The hospital waiting room was cold and silent.", "Low Valence"),
        ("HATESPEECH", "[an invented hateful insult against a group]", "hate speech"),
        ("HUMOR", "The library closes at 8 pm.", "non-humorous"),
        (
            "SAMESIDESTANCE",
            "Voting should be compulsory. [SEP] Mandatory voting raises turnout.",
            "same side",
        ),
    ],
}


def write_socialite_fixture(root: str | Path) -> dict[str, Path]:
    """Write the SocialiteInstructions layout under ``root``; returns split -> parquet path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    out = {}
    for split, rows in SOCIALITE_ROWS.items():
        instr = [_INSTR[t] for t, _, _ in rows]
        table = pa.table(
            {
                "task_type": [t for t, _, _ in rows],
                "Instruction": instr,
                "Input": [x for _, x, _ in rows],
                "Output": [y for _, _, y in rows],
                "Model Input": [
                    f"Instruction: {i}\nInput: {x}\nOutput:" for i, (_, x, _) in zip(instr, rows, strict=True)
                ],
            }
        )
        path = root / SOCIALITE_FILES[split]
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        out[split] = path
    (root / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n---\n# SocialiteInstructions (fixture)\n"
    )
    return out


# config -> (label_list names, {split file prefix: [(text, raw label line)]})
SOCKET_CONFIGS: dict[str, tuple[list[str], dict[str, list[tuple[str, str]]]]] = {
    "hahackathon#is_humor": (
        ["not humor", "humor"],
        {
            "train": [
                ("A pun walks into a bar.", "1"),
                ("Bus times changed today.", "0"),
                ("Knock knock.", "1"),
            ],
            "val": [
                ("The office is closed on Monday.", "0"),
                ("I used to be a banker but lost interest.", "1"),
            ],
            "test": [("Minutes of the council meeting.", "0"), ("Time flies like an arrow.", "1")],
        },
    ),
    "emobank#valence": (
        ["valence(positive)"],
        {
            "train": [
                ("What a lovely morning.", "4.2"),
                ("The news was grim.", "1.8"),
                ("It is Tuesday.", "3.0"),
            ],
            "val": [("We won the match!", "4.6"), ("He missed the train.", "2.4")],
            "test": [("The rain would not stop.", "2.2"), ("A warm welcome awaited us.", "4.0")],
        },
    ),
    "same-side-pairs": (
        ["not same side", "same side"],
        {
            "train": [
                ("Ban plastic bags.[SEP]Plastic bags harm wildlife.", "1"),
                ("Tax sugar.[SEP]Sugar taxes hurt the poor.", "0"),
            ],
            "val": [("School uniforms help.[SEP]Uniforms reduce bullying.", "1")],
            "test": [("Zoos are cruel.[SEP]Zoos protect endangered species.", "0")],
        },
    ),
    "hypo-l": (
        ["not hyperbole", "hyperbole"],
        {
            "train": [("I have told you a million times.", "1"), ("I have told you twice.", "0")],
            "val": [("This bag weighs a ton.", "1")],
            "test": [("The bag weighs two kilos.", "0"), ("I am so hungry I could eat a horse.", "1")],
        },
    ),
}


def write_socket_fixture(root: str | Path, configs: list[str] | None = None) -> dict[str, Path]:
    """Write the SocKET raw-file layout under ``root``; returns config -> its directory (literal '#')."""
    root = Path(root)
    out = {}
    for config in configs or list(SOCKET_CONFIGS):
        names, splits = SOCKET_CONFIGS[config]
        d = root / "SOCKET_DATA" / config
        d.mkdir(parents=True, exist_ok=True)
        (d / "label_list.txt").write_text("\n".join(names), encoding="utf-8")
        for prefix, rows in splits.items():
            (d / f"{prefix}_text.txt").write_text("".join(f"{t}\n" for t, _ in rows), encoding="utf-8")
            (d / f"{prefix}_labels.txt").write_text("".join(f"{y}\n" for _, y in rows), encoding="utf-8")
        out[config] = d
    return out


def _not_found(repo_id: str, filename: str) -> Exception:
    import httpx2
    from huggingface_hub import errors

    url = f"https://huggingface.co/datasets/{repo_id}/resolve/main/{filename}"
    response = httpx2.Response(404, request=httpx2.Request("GET", url))
    return errors.RemoteEntryNotFoundError(
        f"404 Client Error. Entry Not Found for url: {url}", response=response
    )


def install_fake_hub(
    monkeypatch: Any, roots: dict[str, Path], cache: Path | None = None
) -> list[dict[str, Any]]:
    """Serve ``roots`` (repo_id -> fixture root) through monkeypatched hub download functions.

    Returns the list that records every call (function name plus its arguments). Files are copied into a
    fake cache (``cache`` or ``<root>/.fake_hf_cache``) so loaders never read the fixture root directly.
    """
    import huggingface_hub

    calls: list[dict[str, Any]] = []

    def _root(repo_id: str, repo_type: str | None) -> Path:
        assert repo_type == "dataset", (
            f"{repo_id} must be fetched with repo_type='dataset', got {repo_type!r}"
        )
        if repo_id not in roots:
            raise _not_found(repo_id, "")
        return Path(roots[repo_id])

    def _cache_dir(repo_id: str, revision: str | None) -> Path:
        base = cache or Path(roots[repo_id]).parent / ".fake_hf_cache"
        return base / repo_id.replace("/", "--") / (revision or "main")

    def fake_hf_hub_download(repo_id: str, filename: str, **kw: Any) -> str:
        calls.append({"fn": "hf_hub_download", "repo_id": repo_id, "filename": filename, **kw})
        src = _root(repo_id, kw.get("repo_type")) / filename
        if not src.is_file():
            raise _not_found(repo_id, filename)
        dest_root = Path(kw["local_dir"]) if kw.get("local_dir") else _cache_dir(repo_id, kw.get("revision"))
        dest = dest_root / filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return str(dest)

    def fake_snapshot_download(repo_id: str, **kw: Any) -> str:
        calls.append({"fn": "snapshot_download", "repo_id": repo_id, **kw})
        root = _root(repo_id, kw.get("repo_type"))
        patterns = kw.get("allow_patterns") or ["*"]
        patterns = [patterns] if isinstance(patterns, str) else patterns
        dest_root = Path(kw["local_dir"]) if kw.get("local_dir") else _cache_dir(repo_id, kw.get("revision"))
        for src in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = src.relative_to(root).as_posix()
            if rel.startswith(".") or not any(fnmatch.fnmatch(rel, pat) for pat in patterns):
                continue
            dest = dest_root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        dest_root.mkdir(parents=True, exist_ok=True)
        return str(dest_root)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    return calls


class FakeHubApi:
    """``HfApi`` for model repos kept under ``root/<owner>/<name>/``; ``calls`` records every call in order."""

    def __init__(self, root: str | Path, token: str | None = None) -> None:
        self.root = Path(root)
        self.token = token
        self.calls: list[dict[str, Any]] = []

    def create_repo(self, repo_id: str, **kw: Any) -> str:
        self.calls.append({"fn": "create_repo", "repo_id": repo_id, **kw})
        repo = self.root / repo_id
        if repo.exists() and not kw.get("exist_ok"):
            raise FileExistsError(f"409 Conflict: You already created this model repo: {repo_id}")
        repo.mkdir(parents=True, exist_ok=True)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id: str, folder_path: str | Path, **kw: Any) -> Any:
        from types import SimpleNamespace

        files = sorted(
            p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file()
        )
        self.calls.append(
            {"fn": "upload_folder", "repo_id": repo_id, "folder_path": folder_path, "files": files, **kw}
        )
        repo = self.root / repo_id
        assert repo.is_dir(), f"upload_folder to {repo_id} before create_repo"
        shutil.copytree(folder_path, repo / (kw.get("path_in_repo") or ""), dirs_exist_ok=True)
        n = sum(1 for c in self.calls if c["fn"] == "upload_folder")
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/{n:040x}")


def install_fake_model_hub(monkeypatch: Any, root: str | Path) -> tuple[FakeHubApi, list[dict[str, Any]]]:
    """Serve the model repos a :class:`FakeHubApi` wrote under ``root`` through ``huggingface_hub.snapshot_download``
    and make ``huggingface_hub.HfApi(...)`` return that stand-in. Returns (the api, the download calls). A repo
    that is not there raises what the real function raises offline without a copy."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    api = FakeHubApi(root)
    calls: list[dict[str, Any]] = []

    def fake_snapshot_download(repo_id: str, **kw: Any) -> str:
        calls.append({"fn": "snapshot_download", "repo_id": repo_id, **kw})
        assert kw.get("repo_type") in (None, "model"), f"{repo_id}: a model repo, got {kw.get('repo_type')!r}"
        src = Path(root) / repo_id
        if not src.is_dir():
            raise LocalEntryNotFoundError(
                "Cannot find an appropriate cached snapshot folder for the specified revision on the local disk "
                "and outgoing traffic has been disabled."
            )
        dest = Path(kw["local_dir"])
        shutil.copytree(src, dest, dirs_exist_ok=True)
        return str(dest.resolve())

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None, **_: api)
    return api, calls
