"""The headless runner: profiles, overrides, chaining of run directories, stopping on a failing notebook."""

from __future__ import annotations

import nbformat
import pytest

from socialite_utils import pipeline
from socialite_utils.pipeline import STEPS, parse_override, resolve_profile


def test_profiles_declare_every_step_and_the_paper_recipe():
    profiles = pipeline.load_profiles()
    assert {"smoke", "cpu-demo", "colab-t4", "paper"} <= set(profiles)
    paper = resolve_profile("paper")
    assert paper["train"]["base_model"] == "llama2-7b"
    eff = paper["train"]["per_device_train_batch_size"] * paper["train"]["gradient_accumulation_steps"]
    assert eff == 64 and paper["train"]["learning_rate"] == 1e-4 and paper["train"]["num_train_epochs"] == 5
    assert resolve_profile("smoke")["train"]["smoke"] is True


def test_overrides():
    assert parse_override("train.max_steps=20") == ("train", "max_steps", 20)
    assert parse_override("data.tasks=['tweet_irony']") == ("data", "tasks", ["tweet_irony"])
    # values are YAML, as in profiles.yaml
    assert parse_override("data.tasks=[a, b]") == ("data", "tasks", ["a", "b"])
    assert parse_override("eval.train_run=null") == ("eval", "train_run", None)
    assert parse_override("data.balance_train=true") == ("data", "balance_train", True)
    assert parse_override("train.learning_rate=1e-4") == ("train", "learning_rate", 1e-4)
    assert parse_override("train.learning_rate=0.0005") == ("train", "learning_rate", 0.0005)
    assert parse_override("eval.base_model=smollm2-135m") == ("eval", "base_model", "smollm2-135m")
    assert parse_override("data.tasks=") == ("data", "tasks", None)
    with pytest.raises(ValueError, match="eval.train_run=null"):
        parse_override("eval.train_run=None")
    with pytest.raises(ValueError, match="not valid YAML"):
        parse_override("data.tasks=[a, b")
    assert parse_override("train.base_model=smollm2-135m") == ("train", "base_model", "smollm2-135m")
    with pytest.raises(ValueError, match="step.param=value"):
        parse_override("max_steps=3")
    p = resolve_profile("smoke", {"train": {"max_steps": 3}})
    assert p["train"]["max_steps"] == 3
    with pytest.raises(KeyError, match="unknown profile 'cpu'"):
        resolve_profile("cpu")


def _fake_notebooks(tmp_path, fail_step: str):
    """Notebooks with the real parameters cells that only record their parameters; the one for ``fail_step``
    raises."""
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir(parents=True)
    for step, name, *_ in STEPS:
        nb = nbformat.v4.new_notebook()
        real = nbformat.read(pipeline.notebooks_dir() / name, as_version=4)
        params = next(c for c in real.cells if "parameters" in c.metadata.get("tags", []))
        body = (
            "import json, os, pathlib, shutil\n"
            "d = pathlib.Path(os.environ['SOCIALITE_RUNS_DIR']) / run_name\n"
            "if d.exists() and not overwrite:\n"
            "    raise FileExistsError(f'{d} exists')\n"
            "shutil.rmtree(d, ignore_errors=True)\n"
            "d.mkdir()\n"
            "(d / 'params.json').write_text(json.dumps({k: v for k, v in globals().items() if k.endswith('_run')}))\n"
        )
        if step == fail_step:
            body += "raise ValueError('boom in ' + run_name)\n"
        nb.cells = [params, nbformat.v4.new_code_cell(body)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, nb_dir / name)
    return nb_dir


@pytest.mark.slow
def test_chain_passes_run_dirs_and_stops_at_failure(tmp_path, monkeypatch):
    import json

    nb_dir = _fake_notebooks(tmp_path, fail_step="analysis")
    monkeypatch.setattr(pipeline, "notebooks_dir", lambda: nb_dir)
    monkeypatch.setenv("SOCIALITE_RUNS_DIR", str(tmp_path / "runs"))  # restored after the test
    results = pipeline.run_pipeline("smoke", "p1", runs_dir=tmp_path / "runs", log=lambda *_: None)
    assert [(r.step, r.ok) for r in results] == [
        ("data", True),
        ("train", True),
        ("eval", True),
        ("analysis", False),
    ]
    assert results[-1].error == "ValueError: boom in analysis"
    root = tmp_path / "runs" / "p1"
    assert json.loads((root / "eval" / "params.json").read_text()) == {
        "data_run": "data",
        "train_run": "train",
    }
    assert (
        root / "notebooks" / "04_error_analysis.ipynb"
    ).exists()  # the failing notebook is kept, with its error
    assert not (root / "baselines").exists()

    # Fixed the failing notebook: --only reruns steps in place, replacing the runs they made before.
    fixed = _fake_notebooks(tmp_path / "fixed", fail_step="")
    monkeypatch.setattr(pipeline, "notebooks_dir", lambda: fixed)
    again = pipeline.run_pipeline(
        "smoke", "p1", runs_dir=tmp_path / "runs", only=["eval", "analysis", "baselines"], log=lambda *_: None
    )
    assert [(r.step, r.ok) for r in again] == [("eval", True), ("analysis", True), ("baselines", True)]
    assert (root / "baselines" / "params.json").exists()
    steps = json.loads((root / "pipeline_steps.json").read_text())
    # data and train kept from the first run, eval/analysis/baselines from the rerun
    assert [(r["step"], r["ok"]) for r in steps] == [
        ("data", True),
        ("train", True),
        ("eval", True),
        ("analysis", True),
        ("baselines", True),
    ]
    with pytest.raises(pipeline.RunExistsError, match="--only"):
        pipeline.run_pipeline("smoke", "p1", runs_dir=tmp_path / "runs", log=lambda *_: None)
    with pytest.raises(FileExistsError, match="already exists"):
        pipeline.run_pipeline("smoke", "p1", runs_dir=tmp_path / "runs", log=lambda *_: None)


@pytest.mark.slow
def test_smoke_profile_end_to_end(smoke_pipeline, tmp_path):
    """The CI profile runs notebooks 01-05 for real (the session's one smoke run, tests/conftest.py)."""
    import json

    metrics = json.loads((smoke_pipeline / "eval" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"base", "tuned"} and len(metrics["tasks"]) == 15
    assert set(metrics["group_comparisons"]) == {"seen", "related"}
    assert all("collapsed" in t["models"]["tuned"] for t in metrics["tasks"].values())
    summary = pipeline.format_summary(smoke_pipeline)
    assert "sentiment_emotion" in summary and "eval/figures/category_bars.png" in summary
    # tuned vs base (notebook 03) and tuned vs the floors (notebook 05) are separate claims
    assert "The tuned model beats the simple baselines (majority, stratified, TF-IDF + LR)" in summary
    assert (smoke_pipeline / "notebooks" / "05_baselines.ipynb").exists()
    published = {p.name for p in pipeline.publish_figures(smoke_pipeline, tmp_path / "pub")}
    assert {
        "category_bars.png",
        "category_bars.pdf",
        "baselines_comparison.png",
        "loss_curve.png",
    } <= published
    assert (tmp_path / "pub" / "eval_tasks.csv").read_text().count("\n") == 16  # header + 15 tasks
    assert "beats the simple baselines" in (tmp_path / "pub" / "eval_claims.csv").read_text()


@pytest.mark.slow
def test_smoke_profile_is_reproducible(smoke_pipeline, tmp_path):
    """Same profile + seed on the same machine -> the same data rows, predictions and metrics, byte for byte.

    The second run stops after evaluation: the compared files are all written by then."""
    steps = pipeline.run_pipeline(
        "smoke", "smoke", runs_dir=tmp_path, only=["data", "train", "eval"], log=lambda *_: None
    )
    assert [r.step for r in steps if r.ok] == ["data", "train", "eval"], steps
    for name in (
        "data/data/train.jsonl",
        "data/data/test.jsonl",
        "eval/predictions.jsonl",
        "eval/metrics.json",
    ):
        again = (tmp_path / "smoke" / name).read_bytes()
        assert again == (smoke_pipeline / name).read_bytes(), f"{name} differs between two smoke runs"


def test_list_needs_no_run_name_and_a_run_still_does(capsys):
    from socialite_utils.pipeline import main

    # the README's command, as written: `python -m socialite_utils.pipeline --list`
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert "cpu-demo-long" in listed and "needs: CPU (2 cores)" in listed
    with pytest.raises(SystemExit) as e:
        main(["--profile", "smoke"])
    assert e.value.code == 2 and "--run-name" in capsys.readouterr().err


def test_set_refuses_unknown_steps_and_parameters_naming_the_known_ones(capsys):
    from socialite_utils.pipeline import main

    assert main(["--profile", "smoke", "--run-name", "x", "--set", "evl.mode=score"]) == 2
    err = capsys.readouterr().err
    assert "unknown step 'evl'" in err and "did you mean 'eval'" in err and "steps: data, train, eval" in err
    assert main(["--profile", "smoke", "--run-name", "x", "--set", "train.lerning_rate=0.1"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'train.lerning_rate'" in err and "did you mean 'learning_rate'" in err
    assert "its parameters: run_name, data_run, base_model" in err


def _record_notebooks(monkeypatch):
    """papermill replaced by a recorder: step notebook -> the parameters it was given (nothing runs)."""
    import papermill

    given = {}

    def fake_execute(src, out, parameters, **kw):
        given[src.rsplit("/", 1)[-1]] = parameters

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    return given


def test_base_only_evaluation_keeps_train_run_none(tmp_path, monkeypatch):
    """A profile without a train step evaluates the base model alone: the pipeline passes the data run but no
    train run, and --set eval.base_model picks any base model."""
    given = _record_notebooks(monkeypatch)
    monkeypatch.setattr(pipeline, "format_summary", lambda _: "")
    results = pipeline.run_pipeline(
        "smoke-base", "b", runs_dir=tmp_path, overrides={"eval": {"base_model": "smollm2-135m"}}, log=print
    )
    assert [(r.step, r.ok) for r in results] == [("data", True), ("eval", True)]
    ev = given["03_evaluation.ipynb"]
    assert ev["train_run"] is None and ev["base_model"] == "smollm2-135m" and ev["data_run"] == "data"
    assert "02_instruction_tuning.ipynb" not in given
    # with a train step the pipeline links its run; an explicit --set eval.train_run wins over the link
    given.clear()
    pipeline.run_pipeline("smoke", "t", runs_dir=tmp_path, log=print)
    assert given["03_evaluation.ipynb"]["train_run"] == "train"
    given.clear()
    pipeline.run_pipeline(
        "smoke", "u", runs_dir=tmp_path, overrides={"eval": {"train_run": "mine"}}, log=print
    )
    assert given["03_evaluation.ipynb"]["train_run"] == "mine"


@pytest.mark.slow
def test_base_only_profile_end_to_end(tmp_path):
    """smoke-base for real (about 30 s): notebook 01, then notebook 03 on the tiny random model alone."""
    import json

    steps = pipeline.run_pipeline("smoke-base", "base", runs_dir=tmp_path, log=lambda *_: None)
    assert [(r.step, r.ok) for r in steps] == [("data", True), ("eval", True)], steps
    metrics = json.loads((tmp_path / "base" / "eval" / "metrics.json").read_text())
    assert metrics["models"] == ["base"] and len(metrics["tasks"]) == 15
    assert not (tmp_path / "base" / "train").exists()
    assert "no tuned model in this run" in pipeline.format_summary(tmp_path / "base")
