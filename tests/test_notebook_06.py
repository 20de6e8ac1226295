"""Notebook 06 runs headless in smoke mode (tiny-random, a 2 x 2 grid of a few rows) and writes its tables, figures and
findings; a rerun reuses every cell."""

from __future__ import annotations

import csv
import json

import pytest
from nbrun import run_notebook

pytestmark = pytest.mark.slow

PARAMS = {
    "run_name": "nb06",
    "tasks": ["tweet_irony", "tweet_stance", "clickbait"],  # two seen tasks (two categories) + a related one
    "task_rows": [4, 8],
    "general_ratios": [0, 1],
    "seeds": [0],
    "general_heldout": 8,
    "max_eval_per_task": 4,
    "max_steps": 2,
    "bootstrap_samples": 100,
    "smoke": True,
}


def test_notebook_06_smoke(tmp_path, runs_dir, bundle_dir, general_dir):
    run_notebook("06_generalist_mixing.ipynb", tmp_path, **PARAMS)
    study = runs_dir / "nb06"
    cells = ["n4-r0-s0", "n4-r1-s0", "n8-r0-s0", "n8-r1-s0"]
    for cell in cells:
        for kind in ("data", "train", "eval"):
            assert (study / "cells" / f"{kind}-{cell}").is_dir()
        ret = json.loads((study / "cells" / f"retention-{cell}.json").read_text())
        assert ret["n_rows"] == 8 and ret["base"]["n_tokens"] > 0 and ret["tuned"]["nll_per_token"] > 0
    # the mixture is data: ratio 1 doubles the train rows with generalist rows; the held-out slice is apart
    train = [json.loads(x) for x in (study / "cells" / "data-n8-r1-s0" / "data" / "train.jsonl").open()]
    assert sum(r["task"] == "general_instructions" for r in train) == 16 and len(train) == 32
    held = {
        json.loads(x)["id"]
        for x in (study / "cells" / "data-n8-r1-s0" / "data" / "general_heldout.jsonl").open()
    }
    assert len(held) == 8 and not held & {r["id"] for r in train}
    with (study / "results.csv").open() as f:
        results = list(csv.DictReader(f))
    assert len(results) == len(cells) * 3  # grid cell x task
    assert {r["task"] for r in results} == set(PARAMS["tasks"])
    assert all(
        r["n"] == "4" and float(r["ci_low"]) <= float(r["macro_f1"]) <= float(r["ci_high"]) for r in results
    )
    # each scope's majority floor is the mean of its tasks' label-prior macro-F1 in the same cell
    with (study / "aggregates.csv").open() as f:
        aggregates = list(csv.DictReader(f))
    for cell in cells:
        seen = [
            float(r["label_prior_macro_f1"]) for r in results if r["cell"] == cell and r["group"] == "seen"
        ]
        (row,) = [a for a in aggregates if a["cell"] == cell and a["scope"] == "seen"]
        assert float(row["majority_macro_f1"]) == pytest.approx(sum(seen) / len(seen))
    findings = json.loads((study / "findings.json").read_text())
    assert len(findings) == 4
    assert all(f["verdict"] in ("SUPPORTED", "CONTRADICTED", "INCONCLUSIVE") for f in findings)
    text = (study / "findings.txt").read_text()
    assert text.count("evidence:") == 4
    for name in ("mixing_curves", "mixing_gain", "specialisation_vs_retention"):
        assert (study / "figures" / f"{name}.png").stat().st_size > 1000
    # an interrupted grid continues: a rerun trains nothing (every cell is reused)
    mtime = (study / "cells" / "train-n8-r1-s0" / "train_summary.json").stat().st_mtime_ns
    out = run_notebook("06_generalist_mixing.ipynb", tmp_path / "again", **PARAMS)
    assert (study / "cells" / "train-n8-r1-s0" / "train_summary.json").stat().st_mtime_ns == mtime
    assert out.read_text().count("reused (all runs exist)") == len(cells)
