"""The pipeline runs notebook 06 for the *-mixing profiles, and only the steps a profile declares."""

from __future__ import annotations

import pytest
from test_pipeline import _fake_notebooks

from socialite_utils import pipeline
from socialite_utils.pipeline import resolve_profile
from socialite_utils.studies.mixing import MixingStudyParams


def test_mixing_profiles_map_onto_notebook_06_parameters():
    fields = set(MixingStudyParams.__dataclass_fields__) | {
        "seed", "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
        "gradient_accumulation_steps", "max_length", "torch_threads", "overwrite",
    }  # fmt: skip
    for name in ("smoke-mixing", "cpu-mixing", "gpu-mixing"):
        params = resolve_profile(name)["mixing"]
        assert set(params) <= fields, f"{name}: {sorted(set(params) - fields)}"
        assert 0 in params["general_ratios"] and len(params["task_rows"]) >= 2
    cpu = resolve_profile("cpu-mixing")["mixing"]
    assert cpu["base_model"] == "smollm2-135m" and cpu["smoke"] is False
    assert resolve_profile("smoke-mixing")["mixing"]["smoke"] is True
    assert cpu["torch_threads"] == 1  # the setting of the measured 26-minute run (README)


@pytest.mark.slow
def test_a_mixing_profile_runs_only_notebook_06(tmp_path, monkeypatch):
    nb_dir = _fake_notebooks(tmp_path, fail_step="none")
    monkeypatch.setattr(pipeline, "notebooks_dir", lambda: nb_dir)
    monkeypatch.setenv("SOCIALITE_RUNS_DIR", str(tmp_path / "runs"))
    results = pipeline.run_pipeline("smoke-mixing", "m", runs_dir=tmp_path / "runs", log=lambda *_: None)
    assert [(r.step, r.ok) for r in results] == [("mixing", True)]
    assert (tmp_path / "runs" / "m" / "mixing").is_dir() and not (tmp_path / "runs" / "m" / "data").exists()
    results = pipeline.run_pipeline("smoke", "s", runs_dir=tmp_path / "runs", log=lambda *_: None)
    assert [r.step for r in results] == ["data", "train", "eval", "analysis", "baselines"]  # no mixing step
