"""What a study over several seeds needs from the data and evaluation steps: test rows that stay put while the
training seed varies (eval_seed), test rows no earlier run drew (exclude_test_caps), and the base model scored once
(base_from reuses an earlier run's base predictions, only when they are what scoring here would give)."""

from __future__ import annotations

import json

import pytest

from socialite_utils.data.assembly import build_data, write_data_run
from socialite_utils.evaluation import EvalParams, evaluate_run, load_eval_run
from socialite_utils.registry import load_registry, select_tasks
from socialite_utils.training import TrainParams, train_lora

TASKS = ["tweet_irony", "tweet_stance", "tweet_hate"]


def _rows(bundle_dir, **options):
    tasks = select_tasks(load_registry("local"), TASKS)
    return build_data(tasks, data_dir=bundle_dir, max_train_per_task=12, max_eval_per_task=5, **options)


def _ids(data, split):
    return [r["id"] for r in data.splits[split]]


def test_eval_seed_keeps_the_test_rows_while_the_train_draw_changes(bundle_dir):
    a = _rows(bundle_dir, seed=0, eval_seed=0)
    b = _rows(bundle_dir, seed=1, eval_seed=0)
    assert _ids(a, "test") == _ids(b, "test") and _ids(a, "validation") == _ids(b, "validation")
    assert _ids(a, "train") != _ids(b, "train")
    # without eval_seed the seed draws both, as before
    assert _ids(_rows(bundle_dir, seed=1), "test") != _ids(a, "test")
    assert _ids(_rows(bundle_dir, seed=0), "test") == _ids(a, "test")


def test_excluded_caps_leave_out_exactly_the_rows_earlier_draws_took(bundle_dir):
    earlier = set(_ids(_rows(bundle_dir, seed=0), "test"))  # a run with cap 5, seed 0
    tasks = select_tasks(load_registry("local"), TASKS)
    wide = build_data(tasks, data_dir=bundle_dir, max_train_per_task=12, max_eval_per_task=3, seed=0)
    earlier |= set(_ids(wide, "test"))  # and one with cap 3
    fresh = _rows(bundle_dir, seed=0, exclude_test_caps=[5, 3])
    assert len(_ids(fresh, "test")) == 5 * len(TASKS)
    assert not earlier & set(_ids(fresh, "test"))
    counts = fresh.card["tasks"]["tweet_irony"]["counts"]["test"]
    assert counts["excluded_seen"] == len({i for i in earlier if i.startswith("tweet_irony:")})
    with pytest.raises(ValueError, match=r"exclude_test_caps = \['60'\]: expected a list of integers"):
        _rows(bundle_dir, exclude_test_caps=["60"])


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory, bundle_dir):
    """Two data runs (train seeds 0 and 1, the same test rows) and a tiny training run on each."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOCIALITE_RUNS_DIR", str(root))
        for s in (0, 1):
            write_data_run(f"data-{s}", _rows(bundle_dir, seed=s, eval_seed=0), params={"suite": "local"})
            params = TrainParams(run_name=f"train-{s}", data_run=f"data-{s}", seed=s).for_smoke()
            params.max_steps = 3
            train_lora(params, verbose=False)
        write_data_run("data-other", _rows(bundle_dir, seed=0, eval_seed=7), params={"suite": "local"})
    return root


@pytest.mark.slow
def test_base_from_reuses_the_base_predictions_of_an_earlier_seed(two_seeds, monkeypatch):
    monkeypatch.setenv("SOCIALITE_RUNS_DIR", str(two_seeds))
    common = {"mode": "score", "bootstrap_samples": 50}
    evaluate_run(
        EvalParams(run_name="eval-0", data_run="data-0", train_run="train-0", **common), verbose=False
    )
    evaluate_run(
        EvalParams(run_name="eval-1", data_run="data-1", train_run="train-1", base_from="eval-0", **common),
        verbose=False,
    )
    first, second = load_eval_run("eval-0"), load_eval_run("eval-1")

    def base(ev):
        return sorted(
            (r["id"], json.dumps(r, sort_keys=True)) for r in ev.predictions if r["model"] == "base"
        )

    assert base(first) == base(second) and len(base(first)) == 5 * len(TASKS)
    assert (
        first.metrics["tasks"]["tweet_irony"]["models"]["base"]
        == second.metrics["tasks"]["tweet_irony"]["models"]["base"]
    )
    tuned = {
        ev.run_dir.name: {r["id"]: r["logprobs"] for r in ev.predictions if r["model"] == "tuned"}
        for ev in (first, second)
    }
    assert tuned["eval-0"] != tuned["eval-1"]  # each seed's own adapter was scored
    provenance = json.loads((two_seeds / "eval-1" / "provenance.json").read_text())
    assert provenance["seconds"]["base"] == 0.0 and provenance["base_from"] == "eval-0"

    # the earlier run's base predictions stand in only for the same question
    with pytest.raises(ValueError, match=r"base_from='eval-0'.*mode: 'score' there, 'generate' here"):
        evaluate_run(
            EvalParams(
                run_name="g",
                data_run="data-1",
                train_run="train-1",
                base_from="eval-0",
                mode="generate",
                max_new_tokens=4,
                bootstrap_samples=50,
            ),  # fmt: skip
            verbose=False,
        )
    with pytest.raises(ValueError, match=r"base_from='eval-0'.*its items differ from this run's"):
        evaluate_run(
            EvalParams(
                run_name="o", data_run="data-other", train_run="train-0", base_from="eval-0", **common
            ),
            verbose=False,
        )
    assert not (two_seeds / "g").exists() and not (two_seeds / "o").exists()
