"""Notebook 04 runs headless (papermill, smoke mode) on evaluation runs made by the real pipeline: a data run from
the real bundle (assembly), a tiny-random training run (saved base model + LoRA adapter) and notebook 03's library
(evaluation.evaluate_run) in score and in generate mode."""

from __future__ import annotations

import json
import shutil

import papermill as pm
import pytest
from nbrun import run_notebook
from test_analysis import make_train_run

pytestmark = pytest.mark.slow

TASKS = ["tweet_emotion", "tweet_irony", "emobank_valence", "tweet_stance"]  # + a regression and a pair task


@pytest.fixture(scope="module")
def eval_runs(tmp_path_factory, bundle_dir):
    """runs/{data, train, eval-score, eval-generate} under a private runs root (module-scoped: built once)."""
    from socialite_utils.data.assembly import build_data, write_data_run
    from socialite_utils.evaluation import EvalParams, evaluate_run
    from socialite_utils.registry import load_registry, select_tasks

    root = tmp_path_factory.mktemp("nb04") / "runs"
    mp = pytest.MonkeyPatch()
    mp.setenv("SOCIALITE_RUNS_DIR", str(root))
    data = build_data(
        select_tasks(load_registry("local"), TASKS),
        data_dir=bundle_dir,
        max_train_per_task=8,
        max_eval_per_task=4,
    )
    write_data_run("data", data, params={"suite": "local"})
    make_train_run(root / "train")
    for mode in ("score", "generate"):
        params = EvalParams(
            run_name=f"eval-{mode}", data_run="data", train_run="train", mode=mode
        ).for_smoke()
        evaluate_run(params, verbose=False)
    yield root
    mp.undo()


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_notebook_04_score_mode_with_prompt_sensitivity(tmp_path, eval_runs, monkeypatch):
    monkeypatch.setenv("SOCIALITE_RUNS_DIR", str(eval_runs))
    run_notebook("04_error_analysis.ipynb", tmp_path, run_name="an-score", eval_run="eval-score", smoke=True)
    run = eval_runs / "an-score"
    analysis = json.loads((run / "analysis.json").read_text())
    assert analysis["schema_version"] == 1 and analysis["mode"] == "score"
    assert sorted(analysis["tasks"]) == sorted(TASKS)
    for info in analysis["tasks"].values():
        assert set(info["models"]) == {"base", "tuned"}
        assert info["models"]["tuned"]["confusion"]["columns"][-1] == "(invalid)"
    assert analysis["invalid_summary"] is None
    assert set(analysis["calibration"]["overall"]) == {"base", "tuned"}
    sens = analysis["sensitivity"]["tasks"]
    assert sorted(sens) == sorted(TASKS)
    assert set(sens["tweet_irony"]["tuned"]["macro_f1"]) == {"main", "variant 0", "variant 1", "variant 2"}

    # sensitivity.jsonl: 4 tasks x 4 smoke examples x (main + 3 variants) x 2 models, canonical labels only
    rows = _read_jsonl(run / "sensitivity.jsonl")
    assert len(rows) == 4 * 4 * 4 * 2
    irony_yes_no = [r for r in rows if r["task"] == "tweet_irony" and r["variant"] == 2]
    assert irony_yes_no and all(r["parsed"] in ("not ironic", "ironic") for r in irony_yes_no)
    assert irony_yes_no[0]["label_words"] == {"not ironic": "no", "ironic": "yes"}
    # the main prompt re-scored here reproduces the evaluation's own score-mode log-probs
    preds = {(r["id"], r["model"]): r for r in _read_jsonl(eval_runs / "eval-score" / "predictions.jsonl")}
    for r in (r for r in rows if r["variant"] is None):
        ref = preds[(r["id"], r["model"])]["logprobs"]
        assert r["logprobs"] == pytest.approx(ref, abs=1e-4)

    figures = {p.name for p in (run / "figures").iterdir()}
    for name in ("confusion_base", "confusion_tuned", "slices", "reliability", "sensitivity"):
        assert {f"{name}.png", f"{name}.pdf"} <= figures
    assert json.loads((run / "params.json").read_text())["sensitivity_max_per_task"] == 4  # smoke cap


def test_notebook_04_generate_mode_sorts_invalid_answers(tmp_path, eval_runs, monkeypatch):
    monkeypatch.setenv("SOCIALITE_RUNS_DIR", str(eval_runs))
    run_notebook(
        "04_error_analysis.ipynb",
        tmp_path,
        run_name="an-gen",
        eval_run="eval-generate",
        smoke=True,
        sensitivity_max_per_task=0,
    )
    run = eval_runs / "an-gen"
    analysis = json.loads((run / "analysis.json").read_text())
    preds = _read_jsonl(eval_runs / "eval-generate" / "predictions.jsonl")
    for model in ("base", "tuned"):
        n_invalid = sum(1 for r in preds if r["model"] == model and r["parsed"] is None)
        assert sum(analysis["invalid_summary"][model].values()) == n_invalid
    assert analysis["calibration"] is None and analysis["sensitivity"]["tasks"] == {}
    assert (run / "figures" / "invalid_kinds.png").exists()
    assert not (run / "figures" / "reliability.png").exists()
    assert (run / "sensitivity.jsonl").read_text() == ""


def test_notebook_04_refuses_an_eval_run_without_schema_version(tmp_path, eval_runs, monkeypatch):
    monkeypatch.setenv("SOCIALITE_RUNS_DIR", str(eval_runs))
    old = eval_runs / "eval-old"
    shutil.copytree(eval_runs / "eval-score", old)
    doc = json.loads((old / "metrics.json").read_text())
    del doc["schema_version"]
    (old / "metrics.json").write_text(json.dumps(doc))
    with pytest.raises(pm.PapermillExecutionError, match="schema_version"):
        run_notebook("04_error_analysis.ipynb", tmp_path, run_name="an-old", eval_run="eval-old", smoke=True)
    assert not (eval_runs / "an-old").exists()  # nothing written
