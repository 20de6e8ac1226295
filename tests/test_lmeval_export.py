"""lm-evaluation-harness export: the harness, run on the exported tasks, computes the kit's score mode.

``lm-eval`` (pinned in requirements.txt) runs the exported tasks on the same in-memory tiny-random model
through its ``HFLM`` wrapper; its per-choice log-likelihoods must equal the kit's label log-probabilities
(score mode, normalize="sum") within 1e-4 and give the same predictions. Measured here: max difference
4.3e-6 (float32 rounding: the same tokens through the same model; only batching and padding differ).
"""

from __future__ import annotations

import pytest
import yaml

from socialite_utils.data.assembly import build_data, write_data_run
from socialite_utils.evaluation import EvalParams, build_eval_plan, load_eval_model, score_examples
from socialite_utils.evaluation.lmeval import export_lmeval
from socialite_utils.registry import load_registry, select_tasks

TASKS = ["tweet_emotion", "tweet_irony", "emobank_valence", "tweet_hate"]
TOL = 1e-4


@pytest.fixture()
def exported(runs_dir, bundle_dir):
    data = build_data(
        select_tasks(load_registry("local"), TASKS),
        data_dir=bundle_dir,
        max_train_per_task=6,
        max_eval_per_task=4,
    )
    write_data_run("data", data, params={"suite": "local"})
    params = EvalParams(
        run_name="lmx", data_run="data", train_run=None, base_model="tiny-random", mode="score"
    )
    return params, export_lmeval(params)


def test_export_writes_task_and_group_yaml_inside_the_run(exported, runs_dir):
    params, run = exported
    assert run == runs_dir / "lmx" and sorted(p.name for p in runs_dir.iterdir()) == ["data", "lmx"]
    irony = yaml.safe_load((run / "tasks" / "socialite_tweet_irony.yaml").read_text())
    assert irony["output_type"] == "multiple_choice" and irony["dataset_path"] == "json"
    assert irony["dataset_kwargs"]["data_files"]["test"] == str(run / "data" / "tweet_irony.jsonl")
    assert irony["doc_to_text"] == "{{prompt}}" and irony["doc_to_target"] == "{{gold}}"
    plan = build_eval_plan(params.__class__(**{**params.to_dict(), "run_name": "again"}))
    item = next(it for it in plan.items if it.row["task"] == "tweet_irony")
    assert irony["doc_to_choice"] == item.answers  # the label words, in the kit's order
    groups = {p.name for p in (run / "tasks").glob("socialite_group_*.yaml")}
    categories = {plan.tasks[t]["category"] for t in TASKS}
    assert groups == {f"socialite_group_{c}.yaml" for c in categories}
    everything = yaml.safe_load((run / "tasks" / "socialite_all.yaml").read_text())
    assert everything["task"] == sorted(f"socialite_{t}" for t in TASKS)


def test_harness_loglikelihoods_equal_the_kit_score_mode(exported):
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    params, run = exported
    plan = build_eval_plan(params.__class__(**{**params.to_dict(), "run_name": "kit"}))
    model, tokenizer = load_eval_model(plan)
    kit = score_examples(model, tokenizer, plan.items, model_name="base", mode="score", progress=False)
    kit_by_id = {r["id"]: r for r in kit}

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, device="cpu")
    out = simple_evaluate(
        model=lm,
        tasks=[f"socialite_{t}" for t in TASKS],
        task_manager=TaskManager(include_path=str(run / "tasks")),
        log_samples=True,
        verbosity="ERROR",
    )
    compared = 0
    for task in TASKS:
        samples = out["samples"][f"socialite_{task}"]
        assert len(samples) == sum(1 for it in plan.items if it.row["task"] == task)
        for s in samples:
            doc, row = s["doc"], kit_by_id[s["doc"]["id"]]
            harness = [float(r[0]) for r in s["filtered_resps"]]
            item = next(it for it in plan.items if it.row["id"] == doc["id"])
            kit_lls = [row["logprobs"][item.to_label[w]] for w in doc["choices"]]
            assert harness == pytest.approx(kit_lls, abs=TOL)
            predicted = item.to_label[doc["choices"][max(range(len(harness)), key=harness.__getitem__)]]
            assert predicted == row["parsed"]  # same prediction
            compared += 1
    assert compared == len(plan.items) == 16
