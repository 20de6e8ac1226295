"""Notebook 07 runs headless (papermill, smoke mode: tiny-random, 4 test rows per writing task) and writes a complete
writing-assistance run; a second execution continues it (reuses the training runs and predictions) and a change of
parameters under the same name is refused."""

from __future__ import annotations

import csv

import papermill as pm
import pytest
from nbrun import run_notebook

from socialite_utils.runs import read_json, read_jsonl

pytestmark = pytest.mark.slow

WITH_DATA = {"fluency", "simplification", "neutralization", "paraphrase"}
NO_DATA = {"grammaticality", "clarity", "coherence"}
SYSTEMS = ["copy", "base", "writing", "writing+general", "general"]


def test_notebook_07_smoke(tmp_path, runs_dir, writing_dir, general_dir):
    run_notebook("07_writing_assistance.ipynb", tmp_path / "nb", smoke=True, run_name="w7")
    run = runs_dir / "w7"
    metrics = read_json(run / "metrics.json")
    assert set(metrics["tasks"]) == WITH_DATA | NO_DATA
    for name in NO_DATA:
        assert metrics["tasks"][name]["status"] == "no data" and metrics["tasks"][name]["reason"]
    assert metrics["models"] == SYSTEMS
    for name in WITH_DATA:
        task = metrics["tasks"][name]
        assert task["status"] == "ok" and task["n"] == 4
        assert set(task["systems"]) == set(SYSTEMS)  # the copy baseline is in every table
        assert set(task["pairs"]) == {"writing vs base", "writing+general vs base", "general vs base",
                                      "writing+general vs writing", "writing+general vs general"}  # fmt: skip
        for metric in task["metrics"]:
            lo, hi = task["systems"]["copy"][metric]["ci"]
            assert lo <= task["systems"]["copy"][metric]["value"] <= hi
    preds = read_jsonl(run / "predictions.jsonl")
    assert len(preds) == 5 * 16 and {p["model"] for p in preds} == set(SYSTEMS)
    assert all(p["parsed"] == p["text"] for p in preds if p["model"] == "copy")
    with open(run / "claims.csv") as f:
        claims = list(csv.DictReader(f))
    assert len(claims) == 4
    assert {c["verdict"] for c in claims} <= {"SUPPORTED", "CONTRADICTED", "INCONCLUSIVE"}
    assert any(
        c["comparison"].startswith("writing+general vs general") for c in claims
    )  # the paper's contrast
    assert all("grammaticality" in c["note"] for c in claims)  # untested tasks are named, never claimed
    for sub in ("train-writing", "train-writing-general", "train-general"):
        assert (run / sub / "adapter").is_dir()
    figures = {p.name for p in (run / "figures").iterdir()}
    assert {"sari.png", "gleu.png", "bleu.png", "ibleu.png"} <= figures
    # exact match (0 for every system unless an output equals a reference) is drawn, or named with its reason
    if "exact_match.png" not in figures:
        note = (run / "figures" / "no_figure.txt").read_text()
        assert note.startswith("exact_match: no figure, 0 for every system (")
    assert "<ins>" in (run / "examples.html").read_text() or "<del>" in (run / "examples.html").read_text()
    table = (run / "table.csv").read_text()
    assert "no data: " in table and "copy" in table

    # a second execution continues the run: nothing is trained or generated again
    stamps = {p: p.stat().st_mtime_ns for p in run.glob("predictions/*.jsonl")}
    adapter = next((run / "train-writing" / "adapter").iterdir())
    adapter_time = adapter.stat().st_mtime_ns
    run_notebook("07_writing_assistance.ipynb", tmp_path / "nb2", smoke=True, run_name="w7")
    assert {p: p.stat().st_mtime_ns for p in run.glob("predictions/*.jsonl")} == stamps
    assert adapter.stat().st_mtime_ns == adapter_time
    with pytest.raises(pm.PapermillExecutionError, match="started with other parameters \\(seed\\)"):
        run_notebook("07_writing_assistance.ipynb", tmp_path / "nb3", smoke=True, run_name="w7", seed=1)
