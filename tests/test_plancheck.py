"""``pipeline --check``: every profile's plan is checked (parameters, data, time and memory) without a model."""

from __future__ import annotations

import pytest

from socialite_utils import pipeline
from socialite_utils.plancheck import PlanError
from tests.fixtures_hub import write_socialite_fixture


@pytest.mark.parametrize("profile", list(pipeline.load_profiles()))
def test_every_profile_passes_its_plan_check(profile, capsys):
    """Each profile of profiles.yaml, as written (a new profile is covered by being added there)."""
    assert pipeline.main(["--profile", profile, "--check"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"plan for profile '{profile}'" in out and "every check passed" in out
    for step in pipeline.load_profiles()[profile]["steps"]:
        assert f"[{step}]" in out


def test_check_catches_the_old_gpu_mixing_grid(capsys):
    """The grid gpu-mixing had: cells (144, 3), (432, 1), (432, 3) need more generalist rows than the bundle has."""
    grid = ["--set", "mixing.task_rows=[16, 48, 144, 432]"]
    assert pipeline.main(["--profile", "gpu-mixing", "--check", *grid]) == 1
    err = capsys.readouterr().err
    assert "plan error: profile 'gpu-mixing', step 'mixing', parameter 'task_rows x general_ratios'" in err
    assert "(144, 3) needs 4320, (432, 1) needs 4320, (432, 3) needs 12960" in err
    assert "the bundle has 4023 after general_heldout=200" in err


def test_check_names_profile_step_and_parameter(capsys):
    assert pipeline.main(["--profile", "smoke", "--check", "--set", "train.lora_r=0"]) == 1
    assert "profile 'smoke', step 'train', parameter 'lora_r'" in capsys.readouterr().err
    assert pipeline.main(["--profile", "smoke-base", "--check", "--set", "eval.base_model=null"]) == 1
    assert "step 'eval'" in capsys.readouterr().err  # no train run and no base model: nothing to evaluate
    with pytest.raises(PlanError, match="step 'data', parameter 'general_ratio'"):
        pipeline.plan_profile("smoke", {"data": {"general_ratio": 100.0, "max_train_per_task": 500}})
    with pytest.raises(PlanError, match="step 'data', parameter 'prompt_format'"):
        pipeline.plan_profile("cpu-demo", {"data": {"prompt_format": "markdown"}})


def test_hub_tasks_are_counted_from_a_local_copy(tmp_path):
    """A Hub source with a local copy in the upstream layout is counted offline; without one its tasks are listed
    as Hub-only; a task the copy lacks is a plan error (the data step would fail on it)."""
    write_socialite_fixture(tmp_path)
    tasks = {"data": {"data_dir": str(tmp_path), "tasks": ["HUMOR", "VALENCECLS", "HATESPEECH"]}}
    plan = pipeline.plan_profile("paper", tasks).format()
    assert "3 tasks (2 seen) on disk (socialite_instructions): 5 train rows, 5 test rows" in plan
    assert "[train] ~" in plan and "UNMEASURED" in plan
    assert "26 task(s) only on the Hub" in pipeline.plan_profile("paper").format()
    with pytest.raises(
        PlanError,
        match="step 'data', parameter 'data_dir'.*'HUMOURRATING' test: task_type 'HUMOURRATING' has no rows",
    ):
        pipeline.plan_profile(
            "paper", {"data": {"data_dir": str(tmp_path), "tasks": ["HUMOR", "HUMOURRATING"]}}
        )


def test_estimates_use_the_measured_cpu_rates():
    """cpu-demo's estimate reproduces its measured training and evaluation times (README: 13.9 and 6.1 min)."""
    plan = pipeline.plan_profile("cpu-demo").format()
    assert "[train] ~13.9 min" in plan and "[eval] ~6.1 min" in plan
    assert "1000 rows, 250 optimizer steps of 8" in plan
