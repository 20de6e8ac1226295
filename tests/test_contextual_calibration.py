"""Contextual calibration (Zhao et al. 2021): content-free prompts, the prior, calibrated rows beside the old ones."""

from __future__ import annotations

import math

import pytest
from conftest import toy_task
from test_evaluation import trained  # noqa: F401, F811  (fixture: a data run and a 4-step tiny training run)

from socialite_utils.evaluation import contextual_calibration as C
from socialite_utils.prompts import render_prompt


def _row(task, text, text_b=None, fmt="paper", shots=None, **kw):
    return {
        "id": kw.get("id", "t-1"),
        "task": task.name,
        "text": text,
        "text_b": text_b,
        "labels": list(task.labels),
        "prompt": render_prompt(task, text, text_b, fmt=fmt, shots=shots),
    }


def test_content_free_prompt_is_the_prompt_of_the_filler_text():
    task = toy_task(labels=["negative", "positive"])
    # The shot repeats the example's text: only the example's own (last) occurrence is replaced.
    shot = {"text": "great day", "label": "positive"}
    row = _row(task, "great day", shots=[shot])
    assert C.content_free_prompt(row, "N/A") == render_prompt(task, "N/A", shots=[shot])
    assert C.content_free_prompt(row, "") == render_prompt(task, "", shots=[shot])


def test_content_free_prompt_pair_and_chat():
    task = toy_task(labels=["against", "favor", "none"], pair=True, text_b_name="Target")
    row = _row(task, "I love it", "atheism")
    assert C.content_free_prompt(row, "[MASK]") == render_prompt(task, "[MASK]", "[MASK]")
    chat = _row(toy_task(), "so so", fmt="chat")
    assert C.content_free_prompt(chat, "N/A") == render_prompt(toy_task(), "N/A", fmt="chat")
    assert chat["prompt"] != C.content_free_prompt(chat, "N/A")  # the row's prompt is not modified


def test_content_free_prompt_names_the_row_when_the_text_is_missing():
    row = {**_row(toy_task(), "hello"), "text": "not in the prompt", "id": "tweet_irony-7"}
    with pytest.raises(ValueError, match="tweet_irony-7.*does not appear in its prompt"):
        C.content_free_prompt(row, "N/A")


def test_calibrate_probs_by_hand():
    # p = (0.6, 0.4), prior = (0.8, 0.2): weights 0.75 and 2.0, normalised 0.75/2.75 and 2/2.75.
    out = C.calibrate_probs({"a": 0.6, "b": 0.4}, {"a": 0.8, "b": 0.2})
    assert out["a"] == pytest.approx(0.75 / 2.75) and out["b"] == pytest.approx(2 / 2.75)
    assert list(out) == ["a", "b"]
    # a prior equal to the prediction gives the uniform distribution
    assert C.calibrate_probs({"a": 0.7, "b": 0.3}, {"a": 0.7, "b": 0.3}) == pytest.approx(
        {"a": 0.5, "b": 0.5}
    )
    with pytest.raises(ValueError, match="differ"):
        C.calibrate_probs({"a": 1.0}, {"b": 1.0})


def test_calibrate_predictions_flips_the_prior_label_and_keeps_the_old_answer():
    rows = [
        {
            "id": "x",
            "task": "t",
            "model": "tuned",
            "task_type": "classification",
            "gold": "b",
            "parsed": "a",
            "probs": {"a": 0.6, "b": 0.4},
            "expected_score": None,
            "correct": False,
        },
        {
            "id": "x",
            "task": "t",
            "model": "base",
            "task_type": "classification",
            "gold": "b",
            "parsed": "a",
            "probs": {"a": 0.6, "b": 0.4},
            "expected_score": None,
            "correct": False,
        },
        {
            "id": "y",
            "task": "r",
            "model": "tuned",
            "task_type": "regression",
            "gold": "high",
            "parsed": "low",
            "probs": {"low": 0.55, "high": 0.45},
            "expected_score": 0.45,
            "correct": False,
        },
    ]
    priors = {"tuned": {"t": {"a": 0.8, "b": 0.2}, "r": {"low": 0.9, "high": 0.1}}}
    out = C.calibrate_predictions(rows, priors)
    assert out[0]["parsed"] == "b" and out[0]["correct"] is True and out[0]["calibration"] == "contextual"
    assert out[0]["uncalibrated"] == {
        "parsed": "a",
        "probs": {"a": 0.6, "b": 0.4},
        "expected_score": None,
        "correct": False,
    }
    assert out[1] == rows[1]  # no prior for the base model: unchanged
    # regression: 0.45/0.1 = 4.5 vs 0.55/0.9 = 0.611 -> P(high) = 4.5 / 5.111
    assert out[2]["expected_score"] == pytest.approx(4.5 / (4.5 + 0.55 / 0.9))
    assert out[2]["parsed"] == "high"
    assert rows[0]["parsed"] == "a"  # the input rows are not modified


def test_priors_from_the_tiny_model_are_distributions_per_task():
    from socialite_utils.models import load_model

    model, tok = load_model("tiny-random")
    task = toy_task(labels=["negative", "positive"])
    rows = {"toy": [_row(task, "good fun")]}
    priors = C.score_content_free_priors(model, tok, rows)
    assert set(priors) == {"toy"} and list(priors["toy"]) == ["negative", "positive"]
    assert math.isclose(sum(priors["toy"].values()), 1.0, rel_tol=1e-9)
    # by hand: the mean of the three fillers' label distributions
    from socialite_utils.evaluation.scoring import label_probabilities, score_label_logprobs

    prompts = [C.content_free_prompt(rows["toy"][0], f) for f in C.CONTENT_FREE_FILLERS]
    dists = [
        label_probabilities(lp)
        for lp in score_label_logprobs(model, tok, prompts, task.labels, progress=False)
    ]
    assert priors["toy"]["positive"] == pytest.approx(sum(d["positive"] for d in dists) / 3)


@pytest.mark.slow
def test_evaluate_run_writes_calibrated_beside_and_leaves_the_run_unchanged(trained, tmp_path, monkeypatch):  # noqa: F811
    import json

    from socialite_utils.evaluation import EvalParams, evaluate_run

    monkeypatch.setenv("SOCIALITE_RUNS_DIR", str(tmp_path))
    common = dict(
        data_run=str(trained / "data"), train_run=str(trained / "train"), mode="score", bootstrap_samples=50
    )
    plain = evaluate_run(EvalParams(run_name="plain", **common), verbose=False)
    cal = evaluate_run(EvalParams(run_name="cal", calibration="contextual", **common), verbose=False)
    # the uncalibrated run is what it is without calibration (only the run name differs)
    name = "predictions.jsonl"
    assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "cal" / name).read_bytes()
    assert {**plain.metrics, "run_name": "cal"} == cal.metrics
    assert not (tmp_path / "plain" / "calibrated").exists() and plain.calibrated_metrics is None
    written = json.loads((tmp_path / "cal" / "calibrated" / "metrics.json").read_text())
    assert written["settings"]["calibration"] == "contextual"
    priors = written["calibration"]["priors"]
    assert set(priors) == {"base", "tuned"} and set(priors["tuned"]) == set(written["tasks"])
    rows = [json.loads(x) for x in (tmp_path / "cal" / "calibrated" / "predictions.jsonl").open()]
    for r in rows:  # each answer is the argmax of p / prior, the old one kept
        expect = C.calibrate_probs(r["uncalibrated"]["probs"], priors[r["model"]][r["task"]])
        assert r["probs"] == pytest.approx(expect) and r["parsed"] == max(expect, key=expect.get)
    assert cal.calibrated_metrics["tasks"].keys() == written["tasks"].keys()


def test_calibration_needs_score_mode():
    from socialite_utils.evaluation import EvalParams

    with pytest.raises(ValueError, match="calibration = 'contextual' needs mode='score'"):
        EvalParams(run_name="x", mode="generate", calibration="contextual").validate()
    with pytest.raises(ValueError, match="calibration"):
        EvalParams(run_name="x", mode="score", calibration="zhao").validate()
