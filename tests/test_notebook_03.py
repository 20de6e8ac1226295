"""Notebook 03 runs headless (papermill, smoke mode) on a data run from the real bundle and a tiny-random training
run made by the library, and writes a complete evaluation run; bad input stops it before anything is written."""

from __future__ import annotations

import csv
import json

import papermill as pm
import pytest
from nbrun import run_notebook

pytestmark = pytest.mark.slow

TASKS = ["tweet_emotion", "tweet_irony", "emobank_valence", "tweet_hate"]  # + a regression and a related task


@pytest.fixture()
def inputs(runs_dir, bundle_dir):
    """runs/data (notebook 01's output) and runs/train (notebook 02's: saved tiny-random base + LoRA adapter)."""
    from socialite_utils.data.assembly import build_data, write_data_run
    from socialite_utils.registry import load_registry, select_tasks
    from socialite_utils.training import TrainParams, train_lora

    data = build_data(
        select_tasks(load_registry("local"), TASKS),
        data_dir=bundle_dir,
        max_train_per_task=8,
        max_eval_per_task=6,
    )
    write_data_run("data", data, params={"suite": "local"})
    params = TrainParams(run_name="train", data_run="data").for_smoke()
    params.max_steps = 3
    train_lora(params, verbose=False)
    return runs_dir


def test_notebook_03_smoke(tmp_path, inputs):
    run_notebook(
        "03_evaluation.ipynb",
        tmp_path,
        run_name="nb03",
        data_run="data",
        train_run="train",
        mode="score",
        max_length=4096,
        smoke=True,
    )
    run = inputs / "nb03"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["schema_version"] == 1 and metrics["models"] == ["base", "tuned"]
    assert sorted(metrics["tasks"]) == sorted(TASKS)
    assert metrics["settings"]["max_eval_per_task"] == 4 and metrics["settings"]["bootstrap_samples"] == 200
    assert metrics["settings"]["max_length"] == 4096  # the notebook parameter reaches the truncation rule
    assert all(t["n_truncated"] == 0 for t in metrics["tasks"].values())
    preds = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 4 * 4 * 2  # smoke: 4 examples per task x 4 tasks x (base, tuned)
    assert {c["claim"][:30] for c in metrics["claims"]} and len(metrics["claims"]) == 2
    assert all(c["verdict"] in ("SUPPORTED", "CONTRADICTED", "INCONCLUSIVE", None) for c in metrics["claims"])
    assert all("mcnemar_accuracy" in t["comparison"] for t in metrics["tasks"].values())
    with (run / "paper_comparison.csv").open() as f:
        rows = {r["paper_task"]: r for r in csv.DictReader(f)}
    assert rows["EMOTION"]["our_task"] == "tweet_emotion" and rows["EMOTION"]["our_tuned_macro_f1"]
    for name in ("category_bars", "task_deltas", "seen_related"):
        assert (run / "figures" / f"{name}.png").exists() and (run / "figures" / f"{name}.pdf").exists()
    # the executed notebook printed the headline (a taken run_name: test_evaluation's
    # test_bad_input_fails_before_any_model_and_writes_nothing, the same build_eval_plan check)
    executed = (tmp_path / "03_evaluation.ipynb").read_text()
    assert "mean macro-F1" in executed


def test_notebook_03_missing_train_run_fails_before_writing(tmp_path, runs_dir, bundle_dir):
    from socialite_utils.data.assembly import build_data, write_data_run
    from socialite_utils.registry import load_registry, select_tasks

    data = build_data(
        select_tasks(load_registry("local"), ["tweet_irony"]),
        data_dir=bundle_dir,
        max_train_per_task=4,
        max_eval_per_task=2,
    )
    write_data_run("data", data, params={"suite": "local"})
    with pytest.raises(pm.PapermillExecutionError, match="train run .*no-such-train does not exist"):
        run_notebook(
            "03_evaluation.ipynb",
            tmp_path,
            run_name="nb03",
            data_run="data",
            train_run="no-such-train",
            smoke=True,
        )
    assert sorted(p.name for p in runs_dir.iterdir()) == ["data"]
