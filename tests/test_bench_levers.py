"""benchmarks/bench_levers.py chooses on validation rows: its runs score the seen tasks' validation split (never a
test row), and the choice line compares configurations on the same rows with the claims module's rule."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from socialite_utils.runs import read_jsonl

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_levers.py"


def _bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=900
    )


@pytest.mark.slow
def test_levers_choose_on_validation_rows(tmp_path):
    runs = tmp_path / "runs"
    out = _bench("--profile", "smoke", "--configs", "demo-lr1e-3", "--runs-dir", str(runs))
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = runs / "levers-val-demo-lr1e-3"
    predictions = read_jsonl(run_dir / "eval" / "predictions.jsonl")
    # seen tasks only (related tasks have no validation rows), 4 rows per task, base and tuned; no test row
    assert {r["id"].split(":")[1] for r in predictions} == {"validation"}
    assert len(predictions) == 10 * 4 * 2
    assert not (run_dir / "baselines").exists()  # TF-IDF chooses C on these rows: no floors on validation
    assert "| demo-lr1e-3 |" in out.stdout and "| 40 |" in out.stdout
    assert "fewer than two finished configurations" in out.stdout

    # a second configuration with the same predictions: the paired difference is exactly 0, so INCONCLUSIVE
    shutil.copytree(run_dir, runs / "levers-val-demo-lr5e-4")
    table = _bench("--configs", "demo-lr5e-4,demo-lr1e-3", "--runs-dir", str(runs), "--table-only")
    assert table.returncode == 0, table.stderr[-3000:]
    assert "Chosen on validation: `demo-lr5e-4`" in table.stdout  # a tie keeps the first listed
    assert (
        "- `demo-lr5e-4` - `demo-lr1e-3`: +0.0 [95% CI +0.0, +0.0], n = 40 validation rows, 10 tasks: INCONCLUSIVE"
        in table.stdout
    )


def test_levers_refuse_an_unknown_configuration(tmp_path):
    out = _bench("--configs", "demo-lr1e-4", "--runs-dir", str(tmp_path), "--table-only")
    assert out.returncode == 2
    assert "unknown configuration(s) ['demo-lr1e-4']" in out.stderr
