"""The typed parameter layer (socialite_utils.params) through the entry points: papermill's strings coerced only
where unambiguous, wrong types and ranges refused with the field named, before anything is written."""

from __future__ import annotations

import pytest

from socialite_utils import pipeline
from socialite_utils.evaluation import EvalParams
from socialite_utils.params import ParamError
from socialite_utils.runs import RunExistsError, new_run_dir
from socialite_utils.studies.mixing import MixingStudyParams, build_grid, run_grid
from socialite_utils.studies.writing import WritingStudyParams, prepare_writing_run
from socialite_utils.training import TrainParams


def test_papermill_false_is_false_and_never_overwrites(runs_dir):
    (runs_dir / "taken").mkdir(parents=True)
    (runs_dir / "taken" / "mine.txt").write_text("keep")
    with pytest.raises(RunExistsError):
        new_run_dir("taken", overwrite="false")
    with pytest.raises(ParamError, match="overwrite = 'no': expected true or false"):
        new_run_dir("taken", overwrite="no")
    assert TrainParams(run_name="t", overwrite="false", resume="True").validate().overwrite is False
    assert EvalParams(run_name="e", overwrite="FALSE").validate().overwrite is False
    assert (runs_dir / "taken" / "mine.txt").read_text() == "keep"


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("lora_r", 2.5, r"lora_r = 2.5: expected an integer"),
        ("lora_r", "eight", r"lora_r = 'eight': expected an integer"),
        ("lora_r", -8, r"lora_r = -8 is out of range: expected a value >= 1"),
        ("per_device_train_batch_size", "8x", "expected an integer"),
        ("seed", -1, r"seed = -1 is out of range"),
        ("logging_steps", 0, r"logging_steps = 0 is out of range"),
        (
            "learning_rate",
            1e9,
            r"learning_rate = 1000000000.0 is out of range: expected a value > 0 and <= 1",
        ),
        ("learning_rate", float("nan"), "expected a number"),
        ("resume", "maybe", "expected true or false"),
    ],
)
def test_train_params_are_typed_and_ranged(field, value, message, runs_dir):
    with pytest.raises(ParamError, match=message):
        TrainParams(run_name="t", **{field: value}).validate()
    assert not runs_dir.exists()


def test_unambiguous_strings_are_coerced():
    tp = TrainParams(run_name="t", lora_r="16", learning_rate="2e-4", logging_steps="None").validate()
    assert (tp.lora_r, tp.learning_rate, tp.logging_steps) == (16, 2e-4, None)
    ep = EvalParams(run_name="e", batch_size="4", lenient="true", max_length="null").validate()
    assert (ep.batch_size, ep.lenient, ep.max_length) == (4, True, None)


def test_mixing_study_checks_everything_before_writing(runs_dir):
    for bad, message in [
        ({"train": {"lora_r": 2.5}}, "lora_r = 2.5: expected an integer"),
        ({"train": {"learning_rate": 1e9}}, "learning_rate .* out of range"),
        ({"seeds": ["a"]}, "seeds = \\['a'\\]: expected a list of integers"),
        ({"tasks": ["no_such_task"]}, "no_such_task"),
        ({"eval_mode": "guess"}, "eval_mode = 'guess' is out of range: expected one of"),
        ({"general_ratios": [0, 0.3333333, 0.33333333]}, "share a cell name"),
    ]:
        with pytest.raises(ValueError, match=message):
            run_grid(MixingStudyParams(run_name="st", smoke=True, **bad))
        assert not runs_dir.exists()  # nothing written: the corrected rerun is never refused
    p = MixingStudyParams(run_name="st", seeds="0,1", general_ratios=[0, 0.3333333, 0.5]).validate()
    assert p.seeds == [0, 1] and len({c["cell"] for c in build_grid(p)}) == len(build_grid(p))


def test_writing_study_checks_everything_before_writing(runs_dir):
    for bad, message in [
        ({"max_new_tokens_factor": -1}, "max_new_tokens_factor = -1 is out of range"),
        ({"systems": ["writing", "bogus"]}, "systems .* expected one of"),
        ({"systems": "writing"}, None),
        ({"lora_r": "2.5"}, "lora_r = '2.5': expected an integer"),
        ({"overwrite": "false"}, None),
    ]:
        params = WritingStudyParams(run_name="w", **bad)
        if message is None:
            params.validate()
            continue
        with pytest.raises(ValueError, match=message):
            params.validate()
    assert WritingStudyParams(systems="writing,general").validate().systems == ["writing", "general"]
    with pytest.raises(ParamError, match="overwrite"):
        prepare_writing_run("w", {"seed": 0}, overwrite="perhaps")
    assert not runs_dir.exists()


def test_pipeline_set_is_typed_and_only_is_checked(tmp_path, capsys):
    root = str(tmp_path / "runs")

    def main(*args):
        return pipeline.main(["--profile", "smoke", "--run-name", "p", "--runs-dir", root, *args])

    assert (
        main("--set", "train.lora_r=2.5") == 2
        and "lora_r = 2.5: expected an integer" in capsys.readouterr().err
    )
    assert main("--set", "train.learning_rate=1e9") == 2 and "out of range" in capsys.readouterr().err
    assert main("--set", "eval.overwrite=maybe") == 2 and "expected true or false" in capsys.readouterr().err
    assert main("--only", ",") == 2 and "--only names no step" in capsys.readouterr().err
    assert main("--only", "mixing") == 2 and "profile 'smoke' has no step mixing" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    params, _ = pipeline.check_pipeline(
        "smoke", "p", overrides={"train": {"overwrite": "false", "lora_r": "4"}}, runs_dir=root
    )
    assert params["train"]["overwrite"] is False and params["train"]["lora_r"] == 4
