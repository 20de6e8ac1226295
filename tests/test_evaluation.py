"""Evaluation runner and reporting: hand-worked metrics, prompt re-rendering, bad input, tiny-random end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from safetensors.torch import save_file

from socialite_utils import metrics as M
from socialite_utils.data.assembly import build_data, write_data_run
from socialite_utils.evaluation import (
    EvalItem,
    EvalParams,
    build_eval_items,
    build_eval_plan,
    build_metrics,
    evaluate_run,
    load_eval_run,
    score_examples,
    scoring,
)
from socialite_utils.evaluation import predictions as eval_predictions
from socialite_utils.plotting import plot_all
from socialite_utils.registry import load_registry, select_tasks
from socialite_utils.reporting import (
    build_claims,
    format_headline,
    report_aggregate_table,
    report_paper_comparison,
    report_task_table,
)
from socialite_utils.runs import RunExistsError, write_json

# ---------------------------------------------------------------- hand-made predictions

TASKS = {
    "tweet_emotion": {
        "category": "sentiment_emotion",
        "group": "seen",
        "type": "classification",
        "labels": ["anger", "joy", "sadness"],
    },
    "valence": {
        "category": "sentiment_emotion",
        "group": "related",
        "type": "regression",
        "labels": ["low", "high"],
    },
}


def _pred(task, i, model, gold, parsed, *, gold_score=None, expected=None):
    return {
        "id": f"{task}:test:{i}",
        "task": task,
        "category": TASKS[task]["category"],
        "group": TASKS[task]["group"],
        "task_type": TASKS[task]["type"],
        "model": model,
        "gold": gold,
        "gold_score": gold_score,
        "parsed": parsed,
        "expected_score": expected,
        "correct": parsed == gold,
    }


def hand_predictions() -> list[dict]:
    """Two tasks x four examples x two models; every number below is worked out by hand in the tests."""
    gold = ["anger", "joy", "joy", "sadness"]
    base = ["anger", "anger", None, None]  # two invalid answers
    tuned = ["anger", "joy", "joy", "anger"]
    rows = [_pred("tweet_emotion", i, "base", g, p) for i, (g, p) in enumerate(zip(gold, base, strict=True))]
    rows += [
        _pred("tweet_emotion", i, "tuned", g, p) for i, (g, p) in enumerate(zip(gold, tuned, strict=True))
    ]
    bins, scores = ["low", "low", "high", "high"], [1.0, 2.0, 3.0, 4.0]
    for model, expected in (("base", [0.4, 0.6, 0.3, 0.7]), ("tuned", [0.1, 0.2, 0.8, 0.9])):
        for i, (g, s, e) in enumerate(zip(bins, scores, expected, strict=True)):
            rows.append(_pred("valence", i, model, g, "high" if e > 0.5 else "low", gold_score=s, expected=e))
    return rows


@pytest.fixture(scope="module")
def hand_metrics() -> dict:
    return build_metrics(
        hand_predictions(), TASKS, settings={"mode": "score"}, run_name="hand", bootstrap_samples=300, seed=7
    )


def test_task_metrics_by_hand(hand_metrics):
    emo = hand_metrics["tasks"]["tweet_emotion"]
    base, tuned = emo["models"]["base"], emo["models"]["tuned"]
    # base: anger F1 = 2*1/(1+2) = 2/3, joy 0, sadness 0 -> macro (2/3)/3; 1 of 4 right; 2 of 4 invalid
    assert base["macro_f1"] == pytest.approx(100 * (2 / 3) / 3)
    assert base["accuracy"] == pytest.approx(25.0) and base["invalid_rate"] == pytest.approx(0.5)
    assert any("invalid: 2 of 4" in f for f in base["flags"])
    # tuned: anger 2/3, joy 1, sadness 0 (its one gold example is missed) -> macro (5/3)/3 over ALL three labels
    assert tuned["macro_f1"] == pytest.approx(100 * (5 / 3) / 3)
    assert tuned["accuracy"] == pytest.approx(75.0) and tuned["invalid_rate"] == 0.0
    comp = emo["comparison"]
    assert comp["delta_macro_f1"] == pytest.approx(100 / 3)
    # the per-task test is the paired macro-F1 bootstrap; McNemar is kept only as a test of ACCURACY
    assert comp["n"] == 4 and comp["B"] == 300 and "mcnemar" not in comp
    # McNemar: tuned right & base wrong on examples 1 and 2, never the reverse: exact p = 2 * 0.5^2
    assert comp["mcnemar_accuracy"]["b"] == 2 and comp["mcnemar_accuracy"]["c"] == 0
    assert comp["mcnemar_accuracy"]["p_value"] == pytest.approx(0.5)

    val = hand_metrics["tasks"]["valence"]
    # base P(high) = [.4, .6, .3, .7] vs scores 1..4: r = 0.3 / sqrt(5 * 0.1)
    assert val["models"]["base"]["pearson_r"] == pytest.approx(0.3 / math.sqrt(0.5))
    assert val["models"]["tuned"]["pearson_r"] == pytest.approx(1.5 / math.sqrt(2.5))
    assert val["models"]["base"]["macro_f1"] == pytest.approx(50.0)
    assert val["models"]["tuned"]["macro_f1"] == pytest.approx(100.0)
    assert val["comparison"]["delta_macro_f1"] == pytest.approx(50.0)


def test_cis_are_the_seeded_bootstrap(hand_metrics):
    base = hand_metrics["tasks"]["tweet_emotion"]["models"]["base"]
    gold = ["anger", "joy", "joy", "sadness"]
    pred = ["anger", "anger", None, None]
    expected = M.bootstrap_ci(
        lambda g, p: M.macro_f1(g, p, ["anger", "joy", "sadness"]),
        gold,
        pred,
        n_resamples=300,
        seed=M.task_seed(7, "tweet_emotion"),
    )
    assert base["macro_f1_ci"] == pytest.approx(list(expected))
    lo, hi = base["accuracy_ci"]
    assert lo <= base["accuracy"] <= hi and hi > lo
    lo, hi = hand_metrics["tasks"]["valence"]["models"]["tuned"]["pearson_r_ci"]
    assert -1 <= lo <= hi <= 1


def test_aggregates_by_hand(hand_metrics):
    f1_base = [100 * (2 / 3) / 3, 50.0]
    f1_tuned = [100 * (5 / 3) / 3, 100.0]
    cat = hand_metrics["categories"]["sentiment_emotion"]
    assert cat["base"]["macro_over_tasks"] == pytest.approx(sum(f1_base) / 2)
    # SE of a two-task mean = |a - b| / 2
    assert cat["base"]["macro_over_tasks_se"] == pytest.approx(abs(f1_base[0] - f1_base[1]) / 2)
    assert cat["tuned"]["macro_over_tasks"] == pytest.approx(sum(f1_tuned) / 2)
    assert cat["base"]["pooled_accuracy"] == pytest.approx(100 * 3 / 8)  # 1 + 2 right of 8
    assert cat["tuned"]["pooled_accuracy"] == pytest.approx(100 * 7 / 8)
    assert cat["base"]["n_examples"] == 8 and cat["base"]["n_tasks"] == 2
    seen = hand_metrics["groups"]["seen"]["base"]
    assert seen["macro_over_tasks"] == pytest.approx(f1_base[0])
    assert seen["macro_over_tasks_se"] is None  # one task: nan, written as JSON null
    assert hand_metrics["overall"]["tuned"]["macro_over_tasks"] == pytest.approx(sum(f1_tuned) / 2)
    json.dumps(hand_metrics, allow_nan=False)  # strict JSON: no NaN anywhere


def test_category_example_ci_is_the_mean_of_per_task_bootstraps(hand_metrics):
    """Each task resampled with its own seed; the category CI is the percentile CI of the mean over tasks."""
    tuned = [r for r in hand_predictions() if r["model"] == "tuned"]
    values = []
    for task, labels in (("tweet_emotion", ["anger", "joy", "sadness"]), ("valence", ["low", "high"])):
        rows = [r for r in tuned if r["task"] == task]
        values.append(
            M.bootstrap_values(
                lambda g, p, labels=labels: M.macro_f1(g, p, labels),
                [r["gold"] for r in rows],
                [r["parsed"] for r in rows],
                n_resamples=300,
                seed=M.task_seed(7, task),
            )
        )
    expected = np.quantile((values[0] + values[1]) / 2, [0.025, 0.975])
    cat = hand_metrics["categories"]["sentiment_emotion"]["tuned"]
    assert cat["macro_over_tasks_example_ci"] == pytest.approx(list(expected))
    assert 0 <= expected[0] < cat["macro_over_tasks"] < expected[1] <= 100


def test_claims(hand_metrics):
    seen, related = hand_metrics["claims"]
    # +33.3 on 4 examples: the paired bootstrap CI over those examples contains 0, so INCONCLUSIVE (not "not
    # supported": a CI around 0 is no evidence either way)
    paired = hand_metrics["group_comparisons"]["seen"]
    assert paired["delta"] == pytest.approx(100 / 3) and paired["ci"][0] <= 0 < paired["ci"][1]
    assert paired["n_examples"] == 4 and paired["B"] == 300
    # the group's per-task result is the task's own comparison (same seeds)
    emo = hand_metrics["tasks"]["tweet_emotion"]["comparison"]
    assert paired["per_task"]["tweet_emotion"]["ci"] == pytest.approx(emo["delta_ci"])
    assert seen["verdict"] == "INCONCLUSIVE" and "tuned 55.6 vs base 22.2" in seen["evidence"]
    assert seen["line"].startswith("[INCONCLUSIVE] Instruction tuning improves macro-F1")
    assert "tuned vs base, mean over seen tasks" in seen["line"] and "n = 4 examples, 1 task" in seen["line"]
    # related: +50 with a CI touching 0 ([0, 100] on 4 examples): INCONCLUSIVE; k counts Holm-corrected tests
    assert related["verdict"] == "INCONCLUSIVE" and "improves 0 of 1 related task(s)" in related["evidence"]
    below = json.loads(json.dumps(hand_metrics))
    below["group_comparisons"]["related"].update(delta=-3.0, ci=[-5.0, -1.0], p_value=0.01)
    assert build_claims(below)[1]["verdict"] == "CONTRADICTED"
    base_only = build_metrics(
        [r for r in hand_predictions() if r["model"] == "base"],
        TASKS,
        settings={},
        run_name="b",
        bootstrap_samples=50,
    )
    assert base_only["models"] == ["base"] and "comparison" not in base_only["tasks"]["valence"]
    assert [c["verdict"] for c in base_only["claims"]] == [None, None]


def test_reporting_tables_and_figures(hand_metrics, tmp_path):
    table = report_task_table(hand_metrics)
    assert list(table["task"]) == ["tweet_emotion", "valence"]  # seen before related
    assert table.loc[0, "delta F1"] == pytest.approx(33.3)
    agg = report_aggregate_table(hand_metrics)
    assert set(agg["level"]) == {"category", "group", "overall"}
    paper = report_paper_comparison(hand_metrics)
    emotion = paper.set_index("paper_task").loc["EMOTION"]
    assert emotion["our_task"] == "tweet_emotion" and emotion["paper_macro_f1"] == 81.08
    assert emotion["our_tuned_macro_f1"] == pytest.approx(100 * (5 / 3) / 3)
    assert "different data" in emotion["note"]
    assert paper.set_index("paper_task").loc["SUBJECTIVEBIAS", "note"] == "no counterpart task in this run"
    assert "[INCONCLUSIVE] Instruction tuning improves" in format_headline(hand_metrics)
    assert "NOT supported" not in format_headline(hand_metrics)
    assert "p McNemar (accuracy)" in table.columns and "p Holm" in table.columns
    paths = plot_all(hand_metrics, tmp_path / "figs")
    names = sorted(p.name for p in paths)
    assert names == sorted(
        f"{n}.{ext}" for n in ("category_bars", "task_deltas", "seen_related") for ext in ("png", "pdf")
    )
    assert all(p.stat().st_size > 1000 for p in paths)


# ---------------------------------------------------------------- scoring without a model


def _item(label="joy", labels=("anger", "joy"), task_type="classification"):
    row = {
        "id": "t:test:1",
        "task": "t",
        "category": "sentiment_emotion",
        "group": "seen",
        "task_type": task_type,
        "text": "x",
        "text_b": None,
        "label": label,
        "score": 4.0 if task_type == "regression" else None,
    }
    return EvalItem(row, "Instruction: i\nInput: x\nOutput:", list(labels), {lab: lab for lab in labels}, 0)


def test_empty_and_invalid_generations_are_kept_and_wrong(monkeypatch):
    outputs = ["", " joy\nmore", "   ", "JOYFUL"]
    # the fake model answers the i-th prompt with outputs[-len(prompts) + i]
    monkeypatch.setattr(
        eval_predictions, "generate_answers", lambda m, t, prompts, **k: outputs[-len(prompts) :]
    )
    items = [_item() for _ in outputs]
    rows = score_examples(None, None, items, model_name="base", mode="generate", lenient=False)
    assert [r["parsed"] for r in rows] == [None, "joy", None, None]
    assert [r["correct"] for r in rows] == [False, True, False, False]
    assert [r["raw_output"] for r in rows] == outputs  # raw text kept for error analysis
    lenient = score_examples(None, None, items[3:], model_name="base", mode="generate", lenient=True)
    assert lenient[0]["parsed"] is None  # "joyful" does not start with "joy" at a word boundary


def test_score_mode_probabilities_and_unnormalisable_rows(monkeypatch):
    logprobs = [{"low": math.log(0.2), "high": math.log(0.6)}, {"low": -math.inf, "high": -math.inf}]
    monkeypatch.setattr(eval_predictions, "score_label_logprobs", lambda *a, **k: logprobs)
    items = [_item("high", ("low", "high"), "regression") for _ in logprobs]
    rows = score_examples(None, None, items, model_name="tuned", mode="score")
    assert rows[0]["parsed"] == "high" and rows[0]["correct"] is True
    assert rows[0]["probs"]["high"] == pytest.approx(0.75) and rows[0]["expected_score"] == pytest.approx(
        0.75
    )
    assert rows[0]["raw_output"] is None
    assert rows[1]["parsed"] is None and rows[1]["probs"] is None and rows[1]["correct"] is False


# ---------------------------------------------------------------- data runs and bad input

EVAL_TASKS = ["tweet_emotion", "tweet_irony", "emobank_valence", "tweet_hate"]


def _write_data(bundle_dir, run_dir, *, few_shot_k=0):
    tasks = select_tasks(load_registry("local"), EVAL_TASKS)
    data = build_data(
        tasks, data_dir=bundle_dir, max_train_per_task=12, max_eval_per_task=5, few_shot_k=few_shot_k
    )
    with pytest.MonkeyPatch.context() as mp:  # a run is written by name inside the runs directory
        mp.setenv("SOCIALITE_RUNS_DIR", str(run_dir.parent))
        return write_data_run(run_dir.name, data, params={"suite": "local"})


@pytest.fixture(scope="module")
def data_run(tmp_path_factory, bundle_dir) -> str:
    """One zero-shot data run (5 test rows per task) shared by the tests that only read it."""
    return str(_write_data(bundle_dir, tmp_path_factory.mktemp("data") / "d0"))


def test_prompts_are_rerendered_only_when_k_or_variant_changes(data_run, runs_dir):
    plan = build_eval_plan(
        EvalParams(run_name="e", data_run=data_run, train_run=None, base_model="tiny-random")
    )
    assert len(plan.items) == 20 and all(it.prompt is it.row["prompt"] for it in plan.items)
    assert plan.tasks["emobank_valence"]["type"] == "regression"

    k2 = build_eval_plan(
        EvalParams(run_name="e", data_run=data_run, train_run=None, base_model="tiny-random", few_shot_k=2)
    )
    emo = next(it for it in k2.items if it.row["task"] == "tweet_emotion")
    assert emo.few_shot_k == 2 and "Examples:\n" in emo.prompt
    shot_lines = emo.prompt.split("Examples:\n")[1].split("\nInput:")[0].split("\n")
    assert len(shot_lines) == 2 and all(line.rsplit(" - ", 1)[1] in emo.answers for line in shot_lines)

    variant = build_eval_plan(
        EvalParams(
            run_name="e",
            data_run=data_run,
            train_run=None,
            base_model="tiny-random",
            variant=2,
            tasks=["tweet_irony"],
        )
    )
    it = variant.items[0]
    assert it.answers == ["no", "yes"] and it.to_label == {"no": "not ironic", "yes": "ironic"}
    assert it.prompt.startswith("Instruction: Does this tweet use irony? Answer yes or no.")
    assert len(variant.items) == 5

    capped = build_eval_plan(
        EvalParams(
            run_name="e",
            data_run=data_run,
            train_run=None,
            base_model="tiny-random",
            max_eval_per_task=2,
            seed=3,
        )
    )
    assert len(capped.items) == 8
    again = build_eval_plan(
        EvalParams(
            run_name="e",
            data_run=data_run,
            train_run=None,
            base_model="tiny-random",
            max_eval_per_task=2,
            seed=3,
        )
    )
    assert [i.row["id"] for i in capped.items] == [i.row["id"] for i in again.items]


def test_build_eval_items_rejects_a_missing_variant():
    from socialite_utils.registry import get_task

    task = get_task("tweet_irony", "local")
    rows = [
        {"id": "a", "task": "tweet_irony", "text": "t", "labels": task.labels, "prompt": "p", "few_shot_k": 0}
    ]
    with pytest.raises(ValueError, match="variant=9 but task 'tweet_irony' has 3 variant"):
        build_eval_items({"tweet_irony": rows}, {"tweet_irony": task}, [], few_shot_k=None, variant=9, seed=0)


def _fake_train_run(path, **params):
    (path / "adapter").mkdir(parents=True)
    (path / "adapter" / "adapter_config.json").write_text("{}")
    (path / "adapter" / "tokenizer.json").write_text("{}")
    save_file({}, path / "adapter" / "adapter_model.safetensors")  # a complete (empty) safetensors file
    write_json(path / "params.json", {"base_model": "smollm2-135m", **params})
    return path


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"data_run": "nope"}, FileNotFoundError, "data run .*nope does not exist"),
        ({"train_run": "missing"}, FileNotFoundError, "train run .*missing does not exist"),
        ({"train_run": "no_adapter"}, FileNotFoundError, "has no LoRA adapter"),
        ({"train_run": "fake", "base_model": "tiny-random"}, ValueError, "trained on 'smollm2-135m'"),
        ({"train_run": None, "base_model": None}, ValueError, "give a train_run"),
        ({"train_run": None, "base_model": "no such model"}, ValueError, "base_model: unknown model"),
        ({"mode": "vote"}, ValueError, "mode = 'vote'"),
        ({"tasks": ["tweet_emoji"]}, ValueError, r"task\(s\) \['tweet_emoji'\] have no rows"),
        ({"split": "validation", "tasks": ["tweet_hate"]}, ValueError, "tweet_hate"),
        ({"run_name": "exists"}, RunExistsError, "already exists"),
    ],
)
def test_bad_input_fails_before_any_model_and_writes_nothing(data_run, runs_dir, kwargs, error, match):
    _fake_train_run(runs_dir / "fake")
    (runs_dir / "no_adapter").mkdir()
    (runs_dir / "exists").mkdir()
    before = sorted(p.name for p in runs_dir.iterdir())
    params = {"run_name": "ev", "data_run": data_run, "train_run": "fake", **kwargs}
    with pytest.raises(error, match=match):
        evaluate_run(EvalParams(**params))  # a model load would take seconds; these fail in milliseconds
    assert sorted(p.name for p in runs_dir.iterdir()) == before


# ---------------------------------------------------------------- tiny-random end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory, bundle_dir):
    """A data run (4 tasks incl. a regression and a related task) and a few-step tiny-random training run."""
    from socialite_utils.training import TrainParams, train_lora

    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOCIALITE_RUNS_DIR", str(root))
        _write_data(bundle_dir, root / "data")
        params = TrainParams(run_name="train", data_run=str(root / "data")).for_smoke()
        params.max_steps = 4
        train_lora(params, verbose=False)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["score", "generate"])
def test_end_to_end_tiny_random(trained, tmp_path, monkeypatch, mode):
    monkeypatch.setenv("SOCIALITE_RUNS_DIR", str(tmp_path))
    params = EvalParams(
        run_name=f"ev-{mode}",
        data_run=str(trained / "data"),
        train_run=str(trained / "train"),
        mode=mode,
        few_shot_k=1 if mode == "generate" else None,
        bootstrap_samples=100,
        max_new_tokens=6,
    )
    result = evaluate_run(params, verbose=False)
    run = tmp_path / f"ev-{mode}"
    ev = load_eval_run(run)
    metrics, preds = ev.metrics, ev.predictions
    assert len(preds) == 20 * 2  # 4 tasks x 5 test rows x (base, tuned)
    test_ids = [json.loads(line)["id"] for line in (trained / "data" / "data" / "test.jsonl").open()]
    assert sorted((p["id"], p["model"]) for p in preds) == sorted(
        (i, m) for i in test_ids for m in ("base", "tuned")
    )
    assert set(metrics["tasks"]) == set(EVAL_TASKS) and metrics["models"] == ["base", "tuned"]
    assert metrics["tasks"]["tweet_hate"]["group"] == "related"
    assert "pearson_r" in metrics["tasks"]["emobank_valence"]["models"]["tuned"]
    assert metrics["settings"]["mode"] == mode and metrics["settings"]["bootstrap_samples"] == 100
    for name in ("category_bars", "task_deltas", "seen_related"):
        assert (run / "figures" / f"{name}.png").exists() and (run / "figures" / f"{name}.pdf").exists()
    assert (run / "paper_comparison.csv").read_text().startswith("paper_task,")
    assert json.loads((run / "provenance.json").read_text())["stage"] == "evaluation"
    assert result.metrics == metrics
    if mode == "score":
        for p in preds:
            assert p["raw_output"] is None and sum(p["probs"].values()) == pytest.approx(1.0)
            assert p["parsed"] == max(p["probs"], key=p["probs"].get)
            if p["task_type"] == "regression":
                assert p["expected_score"] == pytest.approx(p["probs"]["high"])
        # the adapter changed the model: tuned and base log-probs differ on the same example
        by = {(p["id"], p["model"]): p["logprobs"] for p in preds}
        first = preds[0]["id"]
        assert by[(first, "base")] != by[(first, "tuned")]
    else:
        assert all(p["few_shot_k"] == 1 and isinstance(p["raw_output"], str) for p in preds)
        assert all(p["logprobs"] is None for p in preds)


@pytest.mark.slow
def test_disable_adapter_equals_a_fresh_base_model(trained):
    """The base model scored through disable_adapter() is the base model (modules_to_save included)."""
    from transformers import AutoModelForCausalLM

    from socialite_utils.evaluation import load_eval_model

    plan = build_eval_plan(
        EvalParams(run_name="x", data_run=str(trained / "data"), train_run=str(trained / "train"))
    )
    model, tokenizer = load_eval_model(plan)
    assert model.peft_config["default"].modules_to_save  # tiny-random trains embeddings + head in full
    prompts = [it.prompt for it in plan.items]
    labels = [it.answers for it in plan.items]
    kw = {"batch_size": 4, "progress": False}
    tuned = scoring.score_label_logprobs(model, tokenizer, prompts, labels, **kw)
    with model.disable_adapter():
        shared = scoring.score_label_logprobs(model, tokenizer, prompts, labels, **kw)
    after = scoring.score_label_logprobs(model, tokenizer, prompts, labels, **kw)
    fresh_model = AutoModelForCausalLM.from_pretrained(trained / "train" / "base_model").eval()
    fresh = scoring.score_label_logprobs(fresh_model, tokenizer, prompts, labels, **kw)
    flat = lambda sets: np.array([v for s in sets for v in s.values()])  # noqa: E731
    np.testing.assert_allclose(flat(shared), flat(fresh), atol=1e-5)
    np.testing.assert_allclose(flat(after), flat(tuned), atol=1e-6)  # the adapter is back on afterwards
    assert np.abs(flat(tuned) - flat(fresh)).max() > 1e-3


@pytest.mark.slow
def test_base_only_run(data_run, runs_dir):
    params = EvalParams(
        run_name="base-only",
        data_run=data_run,
        train_run=None,
        base_model="tiny-random",
        mode="score",
        bootstrap_samples=50,
    )
    evaluate_run(params, verbose=False)
    ev = load_eval_run("base-only")
    metrics, preds = ev.metrics, ev.predictions
    assert metrics["models"] == ["base"] and len(preds) == 20
    assert all(c["verdict"] is None for c in metrics["claims"])
    figures = sorted(p.name for p in (runs_dir / "base-only" / "figures").iterdir())
    assert figures == ["category_bars.pdf", "category_bars.png", "seen_related.pdf", "seen_related.png"]
