"""Bad input around runs: run names, stale temporary directories, the pipeline's
history, notebook parameters and the pipeline CLI. Each case goes through a public entry point and checks the
message and that nothing was written, changed or deleted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import toy_task

from socialite_utils import pipeline
from socialite_utils.analysis import analyze_eval_run, write_analysis_run
from socialite_utils.baselines import write_baselines_run
from socialite_utils.data.assembly import build_data, load_data_run, write_data_run
from socialite_utils.evaluation import EvalParams, build_eval_plan
from socialite_utils.registry import load_registry, select_tasks
from socialite_utils.runs import RunExistsError, new_run_dir, resolve_run_dir
from socialite_utils.training import TrainParams

REPO = Path(__file__).resolve().parent.parent
BAD_NAMES = ["../escape", "sub/dir", "/abs/run", ".hidden", "x.partial", "", "a b"]


def _toy_data(make_bundle, n_train: int = 4, **kw):
    rows = [{"text": f"train {i}", "label": ["no", "yes"][i % 2]} for i in range(n_train)]
    bundle = make_bundle(
        {
            "toy": {
                "train": rows,
                "validation": [{"text": "v", "label": "no"}],
                "test": [{"text": "t1", "label": "yes"}, {"text": "t2", "label": "no"}],
            }
        }
    )
    return build_data([toy_task()], data_dir=bundle, **kw)


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for directories): a snapshot to compare."""
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))
    }


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- 1. run names


@pytest.mark.parametrize("name", BAD_NAMES)
def test_every_writer_refuses_a_path_or_bad_name_before_writing(
    name, tmp_path, runs_dir, monkeypatch, make_bundle
):
    monkeypatch.chdir(tmp_path)
    data = _toy_data(make_bundle)
    before = _tree(tmp_path)
    writers = {
        "write_data_run": lambda: write_data_run(name, data),
        "write_analysis_run": lambda: write_analysis_run(name, {}),
        "write_baselines_run": lambda: write_baselines_run(name, None, None, {}),
        "TrainParams": lambda: TrainParams(run_name=name).validate(),
        "EvalParams": lambda: build_eval_plan(
            EvalParams(run_name=name, data_run="d", base_model="tiny-random")
        ),
        "new_run_dir": lambda: new_run_dir(name),
        "pipeline": lambda: pipeline.run_pipeline("smoke", name, log=lambda *_: None),
    }
    for writer, call in writers.items():
        with pytest.raises(ValueError, match=r"must be a plain name .*paths like '\.\./x'"):
            call()
            pytest.fail(f"{writer} accepted run name {name!r}")
    assert _tree(tmp_path) == before  # nothing written anywhere (the runs dir was not even created)
    assert not (tmp_path.parent / "escape").exists()


def test_a_run_name_equal_to_a_folder_of_the_cwd_never_touches_it(
    tmp_path, runs_dir, monkeypatch, make_bundle
):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    data = _toy_data(make_bundle)
    assert resolve_run_dir("mine") == runs_dir / "mine"  # a plain name is a run, never ./mine
    with pytest.raises(FileNotFoundError, match=str(runs_dir / "mine")):
        load_data_run("mine")  # reading: the user's folder is not mistaken for a run
    write_data_run("mine", data)
    write_data_run("mine", data, overwrite=True)  # a plain name is runs/mine, never ./mine
    assert (mine / "thesis.tex").read_text() == "years of work" and sorted(os.listdir(mine)) == ["thesis.tex"]
    assert (runs_dir / "mine" / "data_card.json").exists()
    # an explicit path still reads an existing run wherever it is
    assert load_data_run(str(runs_dir / "mine"))["test"] == load_data_run("mine")["test"]
    assert resolve_run_dir("./mine") == mine


@pytest.mark.slow
def test_notebook_01_refuses_a_path_as_run_name_before_any_work(tmp_path, runs_dir, monkeypatch):
    from nbrun import run_notebook

    with pytest.raises(Exception, match="must be a plain name"):
        run_notebook("01_data_assembly.ipynb", tmp_path / "nb", run_name="../escape", smoke=True)
    nb = json.loads((tmp_path / "nb" / "01_data_assembly.ipynb").read_text())
    ran = [c for c in nb["cells"] if c["cell_type"] == "code" and c.get("execution_count")]
    assert "new_run_dir" in "".join(ran[-1]["source"])  # failed in the first cell after the imports
    assert [p.name for p in tmp_path.iterdir()] == ["nb"]  # only the executed notebook was written
    assert not (REPO / "escape").exists() and not runs_dir.exists()


@pytest.mark.slow
def test_notebook_04_refuses_an_existing_run_before_loading_anything(tmp_path, runs_dir):
    from nbrun import run_notebook

    (runs_dir / "taken").mkdir(parents=True)
    (runs_dir / "taken" / "analysis.json").write_text("{}")
    # eval_run does not exist: the run-name check must come first, so its message is the one shown
    with pytest.raises(Exception, match="taken already exists") as err:
        run_notebook("04_error_analysis.ipynb", tmp_path / "nb", run_name="taken", eval_run="no-such-eval")
    assert "no-such-eval" not in str(err.value)
    assert (runs_dir / "taken" / "analysis.json").read_text() == "{}" and sorted(os.listdir(runs_dir)) == [
        "taken"
    ]


# ---------------------------------------------------------------- 2. temporary directories of killed processes


def test_a_killed_writer_leaves_a_temp_dir_that_the_next_run_removes(tmp_path, runs_dir, make_bundle, capsys):
    script = textwrap.dedent(
        f"""
        import os, signal
        from socialite_utils.runs import RunWriter
        with RunWriter({str(runs_dir / "killed")!r}) as tmp:
            (tmp / "half.jsonl").write_text("{{}}")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == -signal.SIGKILL
    left = [p.name for p in runs_dir.iterdir()]
    assert len(left) == 1 and left[0].startswith(".killed.socialite-tmp-")
    # a live process's temp dir (our parent's pid) and a user's hidden folder are never touched
    host = os.uname().nodename
    alive = runs_dir / f".other.socialite-tmp-{os.getppid()}-{host}"
    (alive / "data").mkdir(parents=True)
    (runs_dir / ".git").mkdir()
    # an interrupted overwrite: the previous run was moved aside, the new one not yet in place -> restored
    dead = _dead_pid()
    far = (
        runs_dir / f".far.socialite-tmp-{dead}-another-node"
    )  # another machine on a shared file system: its pid means nothing
    far.mkdir()
    (runs_dir / f".prev.socialite-old-{dead}-{host}").mkdir()
    (runs_dir / f".prev.socialite-old-{dead}-{host}" / "data_card.json").write_text("old run")
    capsys.readouterr()
    write_data_run("next", _toy_data(make_bundle))
    out = capsys.readouterr().out
    assert f"removed stale temporary directory {runs_dir / left[0]}" in out and "no longer running" in out
    assert f"restored {runs_dir / 'prev'}" in out
    assert sorted(p.name for p in runs_dir.iterdir()) == sorted(
        [alive.name, far.name, ".git", "next", "prev"]
    )
    assert (runs_dir / "prev" / "data_card.json").read_text() == "old run"
    assert (alive / "data").is_dir()


# ---------------------------------------------------------------- 5. pipeline history


def _fake_papermill(monkeypatch, interrupt_at: str | None = None, fail_at: str | None = None):
    """papermill.execute_notebook replaced by a function that writes the step's run dir (or stops there)."""
    import papermill as pm

    seen = []

    def execute(src, out, parameters, **kw):
        step = parameters["run_name"]
        history = json.loads((Path(out).parent.parent / "pipeline.json").read_text())
        seen.append((step, [(s["step"], s["status"]) for s in history["invocations"][-1]["steps"]]))
        if step == interrupt_at:
            raise KeyboardInterrupt
        if step == fail_at:
            raise pm.PapermillExecutionError(3, 3, "boom", "ValueError", "boom", [])
        (Path(os.environ["SOCIALITE_RUNS_DIR"]) / step).mkdir(exist_ok=True)

    monkeypatch.setattr(pm, "execute_notebook", execute)
    return seen


def test_pipeline_history_is_kept_across_invocations_and_interruptions(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setattr(sys, "argv", ["socialite-pipeline", "--run-name", "p"])
    seen = _fake_papermill(monkeypatch, interrupt_at="eval")
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_pipeline("smoke", "p", runs_dir=root, log=lambda *_: None)
    # written as steps finish: when eval started, data and train were recorded as succeeded
    assert seen[-1] == ("eval", [("data", "succeeded"), ("train", "succeeded"), ("eval", "started")])
    doc = json.loads((root / "p" / "pipeline.json").read_text())
    first = doc["invocations"][0]
    assert first["status"] == "interrupted" and first["command"] == "socialite-pipeline --run-name p"
    assert [(s["step"], s["status"]) for s in first["steps"]] == [
        ("data", "succeeded"),
        ("train", "succeeded"),
        ("eval", "interrupted"),
    ]
    assert first["params"]["train"]["smoke"] is True
    steps = json.loads((root / "p" / "pipeline_steps.json").read_text())
    assert [(r["step"], r["ok"]) for r in steps] == [("data", True), ("train", True)]

    _fake_papermill(monkeypatch, fail_at="analysis")
    pipeline.run_pipeline("smoke", "p", runs_dir=root, only=["eval", "analysis"], log=lambda *_: None)
    _fake_papermill(monkeypatch)
    pipeline.run_pipeline(
        "smoke",
        "p",
        runs_dir=root,
        only=["analysis"],
        overrides={"analysis": {"seed": 3}},
        log=lambda *_: None,
    )
    doc = json.loads((root / "p" / "pipeline.json").read_text())
    assert doc["invocations"][0] == first  # earlier invocations are never rewritten
    assert [(i["status"], i["only"]) for i in doc["invocations"]] == [
        ("interrupted", None),
        ("failed", ["eval", "analysis"]),
        ("succeeded", ["analysis"]),
    ]
    assert [(s["step"], s["status"]) for s in doc["invocations"][1]["steps"]] == [
        ("eval", "succeeded"),
        ("analysis", "failed"),
    ]
    assert doc["invocations"][1]["steps"][1]["error"] == "ValueError: boom"
    assert doc["invocations"][2]["overrides"] == {"analysis": {"seed": 3}}
    assert not [p for p in (root / "p").iterdir() if p.name.startswith(".")]  # no temp files left


def _papermill_writing_notebooks(monkeypatch, fail_at: str | None = None, label: str = "run"):
    """papermill.execute_notebook replaced by one that writes the executed notebook (its text: ``<label> <step>``)
    and the step's run, or fails at ``fail_at`` after writing the notebook, as papermill does."""
    import papermill as pm

    ran = []

    def execute(src, out, parameters, **kw):
        step = parameters["run_name"]
        ran.append(step)
        Path(out).write_text(f"{label} {step}")
        if step == fail_at:
            raise pm.PapermillExecutionError(3, 3, "boom", "ValueError", "boom", [])
        (Path(os.environ["SOCIALITE_RUNS_DIR"]) / step).mkdir(exist_ok=True)

    monkeypatch.setattr(pm, "execute_notebook", execute)
    return ran


def test_a_failed_rerun_keeps_the_executed_notebook_of_the_good_run(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    _papermill_writing_notebooks(monkeypatch, label="good")
    pipeline.run_pipeline("smoke", "p", runs_dir=root, log=lambda *_: None)
    nbs = root / "p" / "notebooks"
    assert (nbs / "03_evaluation.ipynb").read_text() == "good eval"
    _papermill_writing_notebooks(monkeypatch, fail_at="eval", label="broken")
    results = pipeline.run_pipeline("smoke", "p", runs_dir=root, only=["eval"], log=lambda *_: None)
    assert [(r.step, r.ok) for r in results] == [("eval", False)]
    assert (nbs / "03_evaluation.ipynb").read_text() == "good eval"  # the good run's notebook is kept
    assert (
        nbs / "failed" / "03_evaluation.ipynb"
    ).read_text() == "broken eval"  # the failure, with its traceback
    assert not [p.name for p in nbs.iterdir() if p.name.startswith(".")]  # no temporary notebook left
    # fixed: the rerun's notebook replaces the good one and the failed one goes
    _papermill_writing_notebooks(monkeypatch, label="fixed")
    pipeline.run_pipeline("smoke", "p", runs_dir=root, only=["eval"], log=lambda *_: None)
    assert (nbs / "03_evaluation.ipynb").read_text() == "fixed eval"
    assert not (nbs / "failed").exists()


def test_the_same_command_after_a_failure_continues_from_the_failed_step(tmp_path, monkeypatch, capsys):
    root = tmp_path / "runs"
    monkeypatch.setattr(sys, "argv", ["socialite-pipeline", "--run-name", "p"])
    _papermill_writing_notebooks(monkeypatch, fail_at="eval", label="first")
    assert pipeline.main(["--profile", "smoke", "--run-name", "p", "--runs-dir", str(root)]) == 1
    assert "run the same command again to continue from that step" in capsys.readouterr().out
    nbs = root / "p" / "notebooks"
    assert (
        nbs / "03_evaluation.ipynb"
    ).read_text() == "first eval"  # no good run before: the failure is here
    # the same command again: data and train are kept, eval and what follows run
    ran = _papermill_writing_notebooks(monkeypatch, label="second")
    monkeypatch.setattr(pipeline, "format_summary", lambda _: "summary")
    assert pipeline.main(["--profile", "smoke", "--run-name", "p", "--runs-dir", str(root)]) == 0
    assert ran == ["eval", "analysis", "baselines"]
    assert (nbs / "02_instruction_tuning.ipynb").read_text() == "first train"
    assert (nbs / "03_evaluation.ipynb").read_text() == "second eval"
    doc = json.loads((root / "p" / "pipeline.json").read_text())
    assert [(i["status"], i["continued"]) for i in doc["invocations"]] == [
        ("failed", None),
        ("succeeded", ["eval", "analysis", "baselines"]),
    ]
    # finished now: the same command is refused, saying what to do instead
    assert pipeline.main(["--profile", "smoke", "--run-name", "p", "--runs-dir", str(root)]) == 2
    assert "every step of it succeeded; choose another --run-name (or --only" in capsys.readouterr().err


def test_continuing_with_other_parameters_is_refused_saying_what_to_type(tmp_path, monkeypatch, capsys):
    root = tmp_path / "runs"
    monkeypatch.setattr(sys, "argv", ["socialite-pipeline", "--profile", "smoke", "--run-name", "p"])
    _papermill_writing_notebooks(monkeypatch, fail_at="train")
    pipeline.run_pipeline("smoke", "p", runs_dir=root, log=lambda *_: None)
    ran = _papermill_writing_notebooks(monkeypatch)
    args = ["--profile", "smoke", "--run-name", "p", "--runs-dir", str(root), "--set", "train.max_steps=5"]
    assert pipeline.main(args) == 2
    assert capsys.readouterr().err == (
        f"error: {root / 'p'} is an unfinished run started with other parameters (train.max_steps); to continue it "
        "run the same command again (socialite-pipeline --profile smoke --run-name p); to rerun steps with new "
        "parameters use --only train,eval,analysis,baselines; or choose another --run-name\n"
    )
    assert ran == []
    # resume=true may be added to continue an interrupted training run
    pipeline.run_pipeline(
        "smoke", "p", runs_dir=root, overrides={"train": {"resume": True}}, log=lambda *_: None
    )
    assert ran == ["train", "eval", "analysis", "baselines"]


_SLOW_STEP = """
import os, pathlib, sys, time

import papermill

from socialite_utils import pipeline


def execute(src, out, parameters, **kw):
    step = parameters["run_name"]
    if step == "train":
        pathlib.Path(sys.argv[2]).write_text("train started")
        time.sleep(120)
    (pathlib.Path(os.environ["SOCIALITE_RUNS_DIR"]) / step).mkdir()


papermill.execute_notebook = execute
sys.exit(pipeline.main(["--profile", "smoke", "--run-name", "p", "--runs-dir", sys.argv[1]]))
"""


def test_sigterm_records_the_running_step_as_interrupted(tmp_path):
    import time

    root, started = tmp_path / "runs", tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_STEP, str(root), str(started)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 180
        while not started.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert started.exists(), proc.communicate(timeout=30)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "run the same command again to continue from it" in err
    doc = json.loads((root / "p" / "pipeline.json").read_text())
    last = doc["invocations"][-1]
    assert last["status"] == "interrupted"
    assert [(s["step"], s["status"]) for s in last["steps"]] == [
        ("data", "succeeded"),
        ("train", "interrupted"),
    ]
    assert last["steps"][-1]["error"] == "PipelineTerminated: stopped by SIGTERM"
    steps = json.loads((root / "p" / "pipeline_steps.json").read_text())
    assert [(r["step"], r["ok"]) for r in steps] == [("data", True)]
    # the record no longer says "running": the same command continues from train
    assert pipeline.unfinished_steps(root / "p", "smoke", last["params"]) == [
        "train",
        "eval",
        "analysis",
        "baselines",
    ]


# ---------------------------------------------------------------- 14. pipeline CLI


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "eval.mdoe=generate"], "unknown parameter 'eval.mdoe' (did you mean 'mode'?)"),
        (["--only", "evl"], "unknown step 'evl' in --only (did you mean 'eval'?)"),
        (["--set", "evl.mode=score"], "unknown step 'evl' in override (did you mean 'eval'?)"),
        (["--set", "data.taks=['tweet_irony']", "--only", "data"], "unknown parameter 'data.taks'"),
        (["--profile", "smok"], "unknown profile 'smok' (did you mean 'smoke'?)"),
        (["--set", "max_steps=3"], "must look like step.param=value"),
    ],
)
def test_cli_refuses_typos_before_anything_runs(args, message, tmp_path, monkeypatch, capsys):
    root = tmp_path / "runs"
    (root / "p").mkdir(parents=True)
    (root / "p" / "pipeline.json").write_text('{"invocations": []}\n')
    before = _tree(tmp_path)
    seen = _fake_papermill(monkeypatch)
    assert pipeline.main(["--run-name", "p", "--runs-dir", str(root), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1
    assert seen == [] and _tree(tmp_path) == before  # nothing ran, no record rewritten


def test_cli_error_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "socialite_utils.pipeline",
            "--run-name",
            "../x",
            "--runs-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: run_name (--run-name) '../x' must be a plain name")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- 13. notebook parameters


def test_tasks_as_a_string_is_one_name_or_a_comma_list():
    reg = load_registry("local")
    assert [t.name for t in select_tasks(reg, "tweet_irony")] == ["tweet_irony"]
    assert [t.name for t in select_tasks(reg, "tweet_irony, tweet_hate")] == ["tweet_irony", "tweet_hate"]
    assert EvalParams(run_name="e", tasks="tweet_irony,tweet_hate").tasks == ["tweet_irony", "tweet_hate"]
    with pytest.raises(KeyError, match="unknown task 'tweet_ironi'"):
        select_tasks(reg, "tweet_ironi")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"max_train_per_task": -1}, r"max_train_per_task = -1; expected None \(no cap\) or an integer >= 1"),
        ({"max_eval_per_task": 0}, r"max_eval_per_task = 0; expected None \(no cap\) or an integer >= 1"),
        ({"few_shot_k": -2}, r"few_shot_k = -2; expected an integer from 0 to 64"),
        ({"few_shot_k": 2.5}, r"few_shot_k = 2.5; expected an integer from 0 to 64"),
        ({"few_shot_k": 5}, r"few_shot_k = 5, but task 'toy' has only 4 train examples .* at most 4"),
    ],
)
def test_build_data_names_a_bad_count_parameter(kw, message, make_bundle):
    with pytest.raises(ValueError, match=message):
        _toy_data(make_bundle, n_train=4, **kw)


def test_few_shot_k_equal_to_the_pool_is_kept(make_bundle):
    data = _toy_data(make_bundle, n_train=4, few_shot_k=4)
    assert {r["few_shot_k"] for r in data.splits["test"]} == {4} and data.params["few_shot_k"] == 4


def test_smoke_settings_do_not_hide_a_bad_parameter():
    with pytest.raises(ValueError, match=r"TrainParams.per_device_train_batch_size = 0"):
        TrainParams(run_name="t", per_device_train_batch_size=0).for_smoke()
    with pytest.raises(ValueError, match=r"EvalParams.max_eval_per_task = -3"):
        EvalParams(run_name="e", max_eval_per_task=-3).for_smoke()


def test_length_unit_is_validated():
    with pytest.raises(ValueError, match=r"length_unit = 'token'; expected one of \('words', 'tokens'\)"):
        analyze_eval_run(None, length_unit="token")


def test_existing_run_is_refused_by_name_check(runs_dir):
    (runs_dir / "done").mkdir(parents=True)
    with pytest.raises(RunExistsError, match="done already exists"):
        new_run_dir("done")
    assert new_run_dir("done", overwrite=True) == runs_dir / "done"


def test_every_profile_sets_only_parameters_its_notebooks_declare():
    for name in pipeline.load_profiles():
        pipeline.check_steps(pipeline.resolve_profile(name), None)  # raises naming the parameter
