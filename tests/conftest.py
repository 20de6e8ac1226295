"""Shared fixtures: the real offline bundle, a private runs directory, and a bad-bundle writer."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from socialite_utils.data import default_data_dir
from socialite_utils.registry import Task

REPO = Path(__file__).resolve().parent.parent


def _complete(path: Path) -> Path:
    """A bundle with every file, the fetched ones included (the tests read the real data)."""
    from socialite_utils.data.fetch import not_fetched

    assert (path / "MANIFEST.json").exists(), (
        f"the bundle is missing at {path}: make data (FROM=DIR for a copy)"
    )
    missing = not_fetched(path)
    assert not missing, (
        f"{path}: {len(missing)} fetched file(s) missing, e.g. {missing[0]}: make data (FROM=DIR)"
    )
    return path


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    """The real social bundle (the project's data/social_tasks, or $SOCIALITE_DATA_DIR). Missing -> fail, not skip."""
    return _complete(default_data_dir())


@pytest.fixture(scope="session")
def writing_dir() -> Path:
    """The writing bundle (the project's data/writing_tasks, or $SOCIALITE_WRITING_DIR). Missing -> fail, not skip."""
    from socialite_utils.data.writing_sources import default_writing_dir

    return _complete(default_writing_dir())


@pytest.fixture(scope="session")
def general_dir() -> Path:
    """The generalist bundle (the project's data/general_instructions, or $SOCIALITE_GENERAL_DIR). Missing -> fail."""
    from socialite_utils.data.writing_sources import default_general_dir

    return _complete(default_general_dir())


@pytest.fixture()
def runs_dir(tmp_path, monkeypatch) -> Path:
    """A private runs/ root so tests never touch the user's runs."""
    d = tmp_path / "runs"
    monkeypatch.setenv("SOCIALITE_RUNS_DIR", str(d))
    return d


def write_bundle(root: Path, tasks: dict[str, dict[str, list]]) -> Path:
    """Write a bundle ``root/<task>/<split>.jsonl``; rows may be dicts or raw strings (written verbatim)."""
    for task, splits in tasks.items():
        for split, rows in splits.items():
            path = root / task / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return root


@pytest.fixture()
def make_bundle(tmp_path):
    """Factory: make_bundle({"task": {"train": [...], ...}}) -> bundle dir."""
    return lambda tasks: write_bundle(tmp_path / "bundle", tasks)


def toy_task(**kw) -> Task:
    """A small classification task ``toy`` (labels no/yes, local dir ``toy``); keyword arguments override fields."""
    base = dict(
        name="toy",
        suite="t",
        category="offensive",
        type="classification",
        group="seen",
        labels=["no", "yes"],
        instruction="Answer with one of: no, yes.",
        sources={"local": {"dir": "toy"}},
    )
    base.update(kw)
    return Task(**base)


TRAIN_TASKS = ("tweet_emotion", "tweet_irony", "emobank_valence", "tweet_stance")


@pytest.fixture(scope="session")
def train_rows(bundle_dir) -> list[dict]:
    """~40 real train rows (paper format) from four seen bundle tasks: a pair task and a regression task included."""
    from socialite_utils.data.assembly import build_data
    from socialite_utils.registry import load_registry

    registry = load_registry("local")
    data = build_data(
        [registry[t] for t in TRAIN_TASKS], data_dir=bundle_dir, max_train_per_task=10, max_eval_per_task=1
    )
    return data.splits["train"]


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory) -> Path:
    """One real smoke pipeline run (notebooks 01-05), shared by every test that only reads it: ``runs/smoke``."""
    from socialite_utils import pipeline

    root = tmp_path_factory.mktemp("smoke") / "runs"
    steps = pipeline.run_pipeline("smoke", "smoke", runs_dir=root, log=lambda *_: None)
    assert [r.step for r in steps if r.ok] == ["data", "train", "eval", "analysis", "baselines"], steps
    return root / "smoke"
