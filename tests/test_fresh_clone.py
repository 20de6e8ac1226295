"""A clone of the repository alone, with nothing beside it and nothing fetched: what runs, and what it says.

The repository ships the data files whose licence allows it (data/README.md). Without ``make data`` the main
pipeline runs on those alone and names what it left out; notebooks 06 and 07, which train on the fetched
generalist rows, stop with what to run; after ``python -m socialite_utils.data fetch --from DIR`` they run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from socialite_utils.data.fetch import BUNDLES, load_selections

REPO = Path(__file__).resolve().parent.parent
DATA_ENV = ("SOCIALITE_DATA_DIR", "SOCIALITE_WRITING_DIR", "SOCIALITE_GENERAL_DIR", "SOCIALITE_RUNS_DIR")


def fetched_files(data: Path) -> list[Path]:
    return [
        data / bundle / f["file"]
        for bundle in BUNDLES
        for selection in load_selections(data, bundle)
        for f in selection["files"]
    ]


@pytest.fixture
def shipped_clone(tmp_path, bundle_dir, writing_dir, general_dir) -> Path:
    """The checkout as a fresh clone has it: no runs/, no fetched data files, no download cache."""
    junk = shutil.ignore_patterns(
        ".git", "runs", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", ".cache"
    )
    dest = tmp_path / "clone"
    shutil.copytree(REPO, dest, ignore=junk)
    for path in fetched_files(dest / "data"):
        path.unlink()
        if not any(path.parent.iterdir()):
            path.parent.rmdir()  # git keeps no empty folder
    return dest


def run(clone: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in DATA_ENV}
    env |= {"PYTHONPATH": str(clone), "HF_HUB_OFFLINE": "1"}  # the clone's package, reading the clone's data/
    return subprocess.run(
        [sys.executable, *args], cwd=clone, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_a_clone_alone_runs_on_the_shipped_data_and_says_what_it_left_out(shipped_clone):
    clone = shipped_clone
    assert not (clone / "data" / "social_tasks" / "tweet_emotion").exists()
    res = run(clone, "-m", "socialite_utils.pipeline", "--profile", "smoke", "--run-name", "fresh")
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    card = json.loads((clone / "runs" / "fresh" / "data" / "data_card.json").read_text())
    tweeteval = {"tweet_emotion", "tweet_irony", "tweet_offensive", "tweet_hate", "tweet_emoji", "tweet_sentiment",
                 "tweet_stance"}  # fmt: skip
    assert set(card["left_out"]) == tweeteval and "make data" in card["left_out"]["tweet_emotion"]
    assert set(card["tasks"]) == {"hate_offensive", "isarcasm_sarcasm", "clickbait", "emobank_valence",
                                  "emobank_arousal", "emobank_dominance", "empathy_concern", "empathy_distress"}  # fmt: skip
    metrics = json.loads((clone / "runs" / "fresh" / "eval" / "metrics.json").read_text())
    assert set(metrics["tasks"]) == set(card["tasks"])

    # notebooks 06 and 07 train on generalist rows, which are fetched: they stop at once and say what to run
    for profile in ("smoke-mixing", "smoke-writing"):
        res = run(
            clone, "-m", "socialite_utils.pipeline", "--profile", profile, "--run-name", f"fresh-{profile}"
        )
        out = res.stdout + res.stderr
        assert res.returncode != 0
        assert "general_instructions/train.jsonl is fetched, not shipped, and not fetched yet" in out, out[
            -999:
        ]
        assert "make data" in out

    res = run(clone, "-m", "socialite_utils.data", "fetch", "--from", str(REPO / "data"))
    assert res.returncode == 0, res.stderr
    assert all(p.is_file() for p in fetched_files(clone / "data"))
    for profile in ("smoke-mixing", "smoke-writing"):
        res = run(
            clone, "-m", "socialite_utils.pipeline", "--profile", profile, "--run-name", f"fetched-{profile}"
        )
        assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
