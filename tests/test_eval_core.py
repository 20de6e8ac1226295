"""One evaluation core: one prediction-row constructor, one per-task metric block, one item
builder for any prompt variant and shot count, one home for metric warnings and for TRL's tokenization."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from socialite_utils import baselines as B
from socialite_utils import metrics as M
from socialite_utils import tokens
from socialite_utils.analysis.sensitivity import (
    build_sensitivity_items,
    compute_sensitivity,
    score_prompt_variants,
)
from socialite_utils.baselines.views import SystemOutput, TaskData
from socialite_utils.evaluation import predictions as eval_predictions
from socialite_utils.evaluation.plan import EvalItem, build_eval_items, build_task_items
from socialite_utils.evaluation.predictions import (
    build_prediction_row,
    compute_task_metrics,
    compute_task_scores,
    score_examples,
)
from socialite_utils.prompts import draw_shots, render_variant_prompt
from socialite_utils.registry import load_registry
from socialite_utils.schema import PREDICTION_ROW_KEYS
from socialite_utils.training import rows as training_data

EMOTIONS = ["anger", "joy", "optimism", "sadness"]


def data_row(i: int, label: str, *, task="tweet_emotion", labels=EMOTIONS, kind="classification", score=None):
    return {
        "id": f"{task}:test:{i}",
        "task": task,
        "category": "sentiment_emotion",
        "group": "seen",
        "task_type": kind,
        "text": f"text number {i}",
        "text_b": None,
        "label": label,
        "labels": list(labels),
        "score": score,
        "prompt": f"Instruction: which emotion?\nInput: text number {i}\nOutput:",
        "few_shot_k": 0,
    }


# ---------------------------------------------------------------- one row constructor


def test_evaluation_sensitivity_and_baseline_rows_share_one_schema(monkeypatch):
    rows = [data_row(1, "joy"), data_row(2, "anger")]
    items = [EvalItem(r, r["prompt"], EMOTIONS, {w: w for w in EMOTIONS}, 0) for r in rows]
    monkeypatch.setattr(eval_predictions, "generate_answers", lambda m, t, prompts, **k: ["joy", "nonsense"])
    evaluated = score_examples(None, None, items, model_name="base", mode="generate", progress=False)

    def fake_scores(model, tok, prompts, label_sets, **kwargs):  # the 2nd answer word gets P = 0.6
        return [dict(zip(words, map(math.log, (0.1, 0.6, 0.2, 0.1)), strict=True)) for words in label_sets]

    monkeypatch.setattr(eval_predictions, "score_label_logprobs", fake_scores)
    task = load_registry("local")["tweet_emotion"]
    example = {"id": "tweet_emotion:test:1", "task": "tweet_emotion", "category": "sentiment_emotion",
               "group": "seen", "task_type": "classification", "text": "so glad", "gold": "joy"}  # fmt: skip
    variant_words = {"angry", "happy", "hopeful", "sad"}
    assert (
        set(task.variants[2].get("labels", {}).values()) == variant_words
    )  # the fake scores variant 2's words
    sens = score_prompt_variants(
        object(), None, {"tweet_emotion": [example]}, {"tweet_emotion": task}, model_name="tuned",
        variants=[2], max_length=None,
    )  # fmt: skip
    view = TaskData("tweet_emotion", "sentiment_emotion", "seen", "classification", EMOTIONS, False, [], "train",
                    [], rows)  # fmt: skip
    out = SystemOutput(["joy", "joy"], None, None, None, train_n=5, train_source="train")
    results = B.BaselineResults(views={"tweet_emotion": view}, outputs={"majority": {"tweet_emotion": out}},
                                scores={})  # fmt: skip
    baseline = B.prediction_rows(results)

    for r in evaluated + sens + baseline:
        assert tuple(r) == PREDICTION_ROW_KEYS
    assert [r["parsed"] for r in evaluated] == ["joy", None] and evaluated[1]["raw_output"] == "nonsense"
    assert evaluated[0]["label_words"] == {lab: lab for lab in EMOTIONS}
    variant_row = sens[1]
    assert [r["variant"] for r in sens] == [None, 2] and sens[0]["parsed"] == "joy"
    assert variant_row["parsed"] == "joy"  # "happy" mapped back to "joy"
    assert variant_row["label_words"]["joy"] == "happy" and variant_row["probs"]["joy"] == pytest.approx(0.6)
    b = baseline[0]
    assert (b["mode"], b["model"], b["few_shot_k"], b["variant"], b["label_words"], b["truncated_tokens"]) == (
        "baseline", "majority", None, None, None, None,
    )  # fmt: skip
    assert [r["correct"] for r in baseline] == [True, False]


def test_build_prediction_row_reads_the_data_row_and_marks_invalid_wrong():
    r = data_row(3, "high", task="emobank_valence", labels=["low", "high"], kind="regression", score=3.7)
    row = build_prediction_row(r, model="tuned", mode="score", parsed=None, expected_score=None)
    assert (row["gold"], row["gold_score"], row["correct"], row["parsed"]) == ("high", 3.7, False, None)
    with pytest.raises(KeyError, match="label"):
        build_prediction_row(
            {k: v for k, v in r.items() if k != "label"}, model="m", mode="score", parsed="high"
        )


# ---------------------------------------------------------------- one per-task metric block


def _view(rows, *, kind="classification", labels=("a", "b")):
    return TaskData("t", "offensive", "seen", kind, list(labels), False, [], "train", [], rows)


def _rows(golds, *, kind="classification", labels=("a", "b"), scores=None):
    return [
        {**data_row(i, g, task="t", labels=labels, kind=kind, score=None if scores is None else scores[i])}
        for i, g in enumerate(golds)
    ]


def test_baseline_metrics_are_the_evaluation_block():
    test = _rows(["a", "a", "b", "b", "b"])
    out = SystemOutput(["a", "b", "b", "b", "a"], None, None, None, 10, "train", info={"flag": "note: x"})
    entry = B.compute_system_metrics(_view(test), out, bootstrap_samples=200, seed=3, system="tfidf_lr")
    block = compute_task_metrics(B.system_rows("tfidf_lr", _view(test), out), ["a", "b"], "classification",
                                 bootstrap_samples=200, seed=3)  # fmt: skip
    # a: P=1/2 R=1/2 F1=1/2; b: P=2/3 R=2/3 F1=2/3 -> macro-F1 = 58.33
    assert entry["macro_f1"] == pytest.approx(100 * (0.5 + 2 / 3) / 2)
    assert entry["accuracy"] == pytest.approx(60.0)
    gold, pred = [r["label"] for r in test], out.pred
    expected_ci = M.bootstrap_ci(
        lambda g, p: M.macro_f1(g, p, ["a", "b"]), gold, pred, n_resamples=200, seed=3
    )
    assert entry["macro_f1_ci"] == pytest.approx(list(expected_ci))
    for key in (
        "macro_f1",
        "macro_f1_ci",
        "accuracy",
        "accuracy_ci",
        "per_label",
        "top_prediction",
        "collapsed",
    ):
        assert entry[key] == block[key], key
    assert entry["flags"] == block["flags"] + ["note: x"]
    assert "n_invalid" not in entry and "n_invalid" in block  # baselines_metrics.json keeps its keys
    assert entry["correct"].tolist() == [True, False, True, True, False]


def test_regression_block_constant_scores_and_too_few_pairs():
    test = _rows(
        ["low", "low", "high", "high"], kind="regression", labels=("low", "high"), scores=[1, 2, 3, 4]
    )
    view = _view(test, kind="regression", labels=("low", "high"))
    constant = SystemOutput(["low"] * 4, [{"low": 0.5, "high": 0.5}] * 4, [0.5] * 4, "p_high", 4, "train")
    entry = B.compute_system_metrics(view, constant, bootstrap_samples=50)
    assert math.isnan(entry["pearson_r"]) and all(math.isnan(x) for x in entry["pearson_r_ci"])
    # the constant input is flagged once, by Pearson r itself; no second flag from an all-nan bootstrap
    assert [f for f in entry["flags"] if "pearson" in f or "bootstrap" in f] == [
        "pearson_r: constant input (y); returning nan"
    ]
    assert entry["score_kind"] == "p_high"
    rows = B.system_rows("m", view, constant)
    for r, e in zip(rows, (0.1, None, None, 0.9), strict=True):
        r["expected_score"] = e
    block = compute_task_metrics(rows, ["low", "high"], "regression", bootstrap_samples=50)
    assert block["pearson_n"] == 2 and block["pearson_r"] == pytest.approx(1.0)
    assert "pearson_r_ci: only 2 scored pair(s); CI undefined" in block["flags"]
    assert all(math.isnan(x) for x in block["pearson_r_ci"])


def test_task_scores_are_the_point_estimates_of_the_metrics():
    rows = [build_prediction_row(r, model="m", mode="score", parsed=p)
            for r, p in zip(_rows(["a", "b", "b"]), ["a", "a", None], strict=True)]  # fmt: skip
    scores = compute_task_scores(rows, ["a", "b"], "classification")
    full = compute_task_metrics(rows, ["a", "b"], "classification", bootstrap_samples=20)
    assert {k: full[k] for k in scores} == scores
    assert set(full) - set(scores) == {"macro_f1_ci", "accuracy_ci"}
    assert (scores["n_invalid"], scores["invalid_rate"]) == (1, pytest.approx(1 / 3))
    # a: P=1/2 R=1 F1=2/3; b: F1=0 -> 33.3; the same number prompt sensitivity reports for this prompt
    assert scores["macro_f1"] == pytest.approx(100 / 3)
    task = load_registry("local")["tweet_irony"]
    sens_rows = [{**r, "task": "tweet_irony", "variant": None, "gold": g}
                 for r, g in zip(rows, ["not ironic", "ironic", "ironic"], strict=True)]  # fmt: skip
    for r, p in zip(sens_rows, ["not ironic", "not ironic", None], strict=True):
        r["parsed"] = p
    summary = compute_sensitivity(sens_rows, {"tweet_irony": task})["tweet_irony"]["m"]
    assert summary["macro_f1"]["main"] == pytest.approx(100 / 3)


def test_collect_warnings_turns_metric_warnings_into_flags_only():
    def noisy():
        warnings.warn("degenerate", M.MetricWarning, stacklevel=1)
        warnings.warn("other", UserWarning, stacklevel=1)
        return 7

    flags: list[str] = []
    with pytest.warns(UserWarning, match="other"):
        assert M.collect_warnings(noisy, flags=flags) == 7
    assert flags == ["degenerate"]


# ---------------------------------------------------------------- one item builder: any variant, any shots


def test_build_task_items_renders_any_variant_with_any_shots():
    task = load_registry("local")["tweet_emotion"]
    pool = [{**data_row(100 + i, lab), "task": "tweet_emotion"} for i, lab in enumerate(EMOTIONS * 2)]
    rows = [data_row(1, "joy"), data_row(2, "sadness")]
    shots = draw_shots(pool, 3, seed=5, task_name="tweet_emotion", labels=EMOTIONS)
    items = build_task_items(task, rows, variant=2, shots=shots)
    assert [it.prompt for it in items] == [
        render_variant_prompt(task, r["text"], None, variant=2, fmt="paper", shots=shots) for r in rows
    ]
    assert items[0].answers == ["angry", "happy", "hopeful", "sad"] and items[0].to_label["happy"] == "joy"
    assert (items[0].few_shot_k, items[0].variant) == (3, 2)
    # the evaluation's builder draws the same shots and builds the same items
    same, notes = build_eval_items({"tweet_emotion": rows}, {"tweet_emotion": task}, pool, few_shot_k=3,
                                   variant=2, seed=5)  # fmt: skip
    assert same == items and notes == []
    # sensitivity: main prompt then each variant, per task, the same shots everywhere
    ex = {"id": "x:1", "task": "tweet_emotion", "text": "t", "gold": "joy"}
    sens = build_sensitivity_items({"tweet_emotion": [ex]}, {"tweet_emotion": task}, variants=[0, 2],
                                   shots={"tweet_emotion": shots})  # fmt: skip
    assert [it.variant for it in sens] == [None, 0, 2] and {it.few_shot_k for it in sens} == {3}
    with pytest.raises(ValueError, match="variant"):
        build_task_items(task, rows, variant=len(task.variants), shots=[])


# ---------------------------------------------------------------- a variant-0 row is the evaluation's row


def test_sensitivity_variant_row_equals_the_evaluation_row(tmp_path, runs_dir, bundle_dir):
    """An evaluation run on prompt variant 0, then prompt sensitivity re-scoring the same examples with variant 0:
    the same rows (the model is rebuilt from the run, base-only tiny-random)."""
    from socialite_utils import analysis
    from socialite_utils.data.assembly import build_data, write_data_run
    from socialite_utils.evaluation import EvalParams, evaluate_run
    from socialite_utils.registry import select_tasks

    tasks = select_tasks(load_registry("local"), ["tweet_irony", "emobank_valence"])
    data = build_data(tasks, data_dir=bundle_dir, max_train_per_task=4, max_eval_per_task=3)
    write_data_run("data", data, params={"suite": "local"})
    params = EvalParams(run_name="ev-v0", data_run="data", train_run=None, base_model="tiny-random",
                        mode="score", variant=0, bootstrap_samples=20)  # fmt: skip
    evaluated = evaluate_run(params, verbose=False).predictions
    ev = analysis.load_eval_run("ev-v0")
    rows, summary = analysis.score_sensitivity(ev, max_per_task=3, variants=[0], progress=False)
    by_key = {(r["id"], r["model"]): r for r in evaluated}
    variant_rows = [r for r in rows if r["variant"] == 0]
    assert len(variant_rows) == len(evaluated) == 6
    for r in variant_rows:
        e = by_key[(r["id"], r["model"])]
        assert tuple(r) == tuple(e) == PREDICTION_ROW_KEYS
        for key in PREDICTION_ROW_KEYS:
            if key in ("logprobs", "probs", "expected_score"):
                assert r[key] == pytest.approx(e[key], abs=1e-5), key
            else:
                assert r[key] == e[key], key
    assert set(summary["tweet_irony"]["base"]["macro_f1"]) == {"main", "variant 0"}


# ---------------------------------------------------------------- one home for TRL's tokenization


@pytest.fixture(scope="module")
def tokenizer():
    from socialite_utils import models

    return models.load_model("tiny-random")[1]


def test_training_tokenization_is_scorings(tokenizer):
    assert training_data.tokenize_like_trl is tokens.tokenize_like_trl
    prompt = "Instruction: which emotion?\nInput: a fine day\nOutput:"
    ids, n_prompt = training_data.tokenize_like_trl(tokenizer, prompt, " joy")
    context, completion = tokens.encode_prompt_completion(tokenizer, prompt, "joy", eos=True)
    assert (ids, n_prompt) == (context + completion, len(context))
    assert ids[-1] == tokenizer.eos_token_id and ids[:n_prompt] == tokens.encode_prompt(tokenizer, prompt)
    assert ids[n_prompt:-1] == tokenizer(" joy", add_special_tokens=False)["input_ids"]  # byte-level BPE
    # a completion that already ends with EOS gets no second one
    assert training_data.tokenize_like_trl(tokenizer, prompt, " joy" + tokenizer.eos_token) == (ids, n_prompt)
    no_eos, _ = tokens.tokenize_like_trl(tokenizer, prompt, " joy", eos=False)
    assert no_eos == ids[:-1]
    np.testing.assert_array_equal(
        tokens.encode_completion(tokenizer, "joy", False, prompt=prompt), completion[:-1]
    )


def test_baseline_numbers_match_the_code_before_consolidation():
    """baselines_metrics.json entries as baselines.compute_system_metrics computed them at f2d867c (its own copy of
    the metric block): the same values, CIs and flags from the evaluation's block."""

    def row(i, label, kind, score=None, labels=("a", "b", "c")):
        return {
            **data_row(i, label, task="t", labels=labels, kind=kind, score=score),
            "category": "offensive",
        }

    cls = [row(i, lab, "classification") for i, lab in enumerate("aabbbccaab")]
    scores = [1.0, 2.5, 3.1, 0.2, 4.4, 2.2, 3.9, 1.7, 2.9, 4.1]
    reg = [
        row(i, "high" if s > 2.5 else "low", "regression", s, ("low", "high")) for i, s in enumerate(scores)
    ]
    vc = TaskData("t", "offensive", "seen", "classification", ["a", "b", "c"], False, [], "train", [], cls)
    vr = TaskData("r", "offensive", "seen", "regression", ["low", "high"], False, [], "train", [], reg)
    p = [0.2, 0.6, 0.7, 0.1, 0.9, 0.4, 0.8, 0.3, 0.45, 0.55]
    cases = {
        "cls": (vc, SystemOutput(list("abbbcccaaa"), None, None, None, 10, "train", info={"flag": "note"})),
        "reg": (
            vr,
            SystemOutput(
                ["high" if x > 0.5 else "low" for x in p],
                [{"low": 1 - x, "high": x} for x in p],
                p,
                "p_high",
                10,
                "train",
            ),
        ),  # fmt: skip
        "const": (
            vr,
            SystemOutput(["low"] * 10, [{"low": 0.6, "high": 0.4}] * 10, [0.4] * 10, "p_high", 10, "train"),
        ),
    }
    before = {
        "cls": (70.71428571428572, [29.363636363636363, 100.0], 70.0, [40.0, 100.0], None, ["note"]),
        "reg": (80.0, [45.05494505494506, 100.0], 80.0, [50.0, 100.0], [0.7069883265580708, 0.9886675636235294], []),
        "const": (100 / 3, [16.666666666666664, 44.44444444444444], 50.0, [20.0, 80.0], [math.nan, math.nan],
                  ["pearson_r: constant input (y); returning nan"]),
    }  # fmt: skip
    for name, (view, out) in cases.items():
        e = B.compute_system_metrics(view, out, bootstrap_samples=300, seed=7)
        f1, f1_ci, acc, acc_ci, r_ci, flags = before[name]
        assert (e["macro_f1"], e["accuracy"], e["flags"]) == (pytest.approx(f1), acc, flags), name
        assert e["macro_f1_ci"] == pytest.approx(f1_ci, abs=1e-12) and e["accuracy_ci"] == acc_ci, name
        if r_ci is not None:
            assert e["pearson_r_ci"] == pytest.approx(r_ci, abs=1e-12, nan_ok=True), name
    assert B.compute_system_metrics(*cases["reg"], bootstrap_samples=300, seed=7)[
        "pearson_r"
    ] == pytest.approx(0.9153605015673982)
