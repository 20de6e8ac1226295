"""The writing-assistance profiles: they resolve, run only notebook 07, and the smoke profile runs end to end."""

from __future__ import annotations

import pytest

from socialite_utils import pipeline
from socialite_utils.pipeline import resolve_profile
from socialite_utils.runs import read_json


def test_writing_profiles_resolve():
    assert resolve_profile("smoke-writing")["writing"]["smoke"] is True
    cpu = resolve_profile("cpu-writing")["writing"]
    assert cpu["base_model"] == "smollm2-135m" and cpu["smoke"] is False and cpu["general_train_rows"] > 0
    gpu = resolve_profile("gpu-writing")["writing"]
    assert (
        gpu["base_model"] == "llama2-7b"
        and gpu["per_device_train_batch_size"] * gpu["gradient_accumulation_steps"] == 128
    )
    assert "UNTESTED" in pipeline.load_profiles()["gpu-writing"]["description"]
    # the social profiles do not declare the writing step, so they never run notebook 07
    assert "writing" not in pipeline.load_profiles()["smoke"]["steps"]


@pytest.mark.slow
def test_smoke_writing_profile_runs_only_notebook_07(tmp_path, monkeypatch, writing_dir, general_dir):
    monkeypatch.setenv("SOCIALITE_RUNS_DIR", str(tmp_path / "runs"))  # restored after the test
    results = pipeline.run_pipeline("smoke-writing", "pw", runs_dir=tmp_path / "runs", log=lambda *_: None)
    assert [(r.step, r.ok) for r in results] == [("writing", True)], results
    root = tmp_path / "runs" / "pw"
    assert sorted(p.name for p in root.iterdir()) == [
        "notebooks", "pipeline.json", "pipeline_steps.json", "writing"
    ]  # fmt: skip
    assert read_json(root / "writing" / "metrics.json")["tasks"]["clarity"]["status"] == "no data"
    summary = pipeline.format_summary(root)
    assert (
        summary.startswith("writing assistance (notebook 07):") and summary.count("every writing task") == 4
    )
    # --publish copies the writing figures (one per metric) and the numbers behind them
    published = {p.name for p in pipeline.publish_figures(root, tmp_path / "pub")}
    assert {"writing_sari.png", "writing_sari.pdf"} <= published
    assert {"writing_table.csv", "writing_claims.csv", "writing_examples.html"} <= {
        p.name for p in (tmp_path / "pub").iterdir()
    }
