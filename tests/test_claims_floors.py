"""Honest claims: collapse onto one answer, paired CIs over test examples, and tuned vs the simple floors."""

from __future__ import annotations

import pytest

from socialite_utils import metrics as M
from socialite_utils.reporting import build_claims, build_floor_claim, claim_lines, report_collapse

# ---------------------------------------------------------------- collapse


def test_prediction_concentration_by_hand():
    gold = ["a", "b"] * 5
    nine = M.prediction_concentration(gold, ["a"] * 9 + ["b"])
    assert nine == {
        "top_prediction": "a",
        "top_prediction_share": 0.9,
        "n_gold_labels": 2,
        "collapsed": False,
    }
    all_a = M.prediction_concentration(gold, ["a"] * 10)
    assert all_a["top_prediction_share"] == 1.0 and all_a["collapsed"] is True
    # invalid answers are one answer of their own
    invalid = M.prediction_concentration(gold, [None] * 10)
    assert invalid["top_prediction"] == "<invalid>" and invalid["collapsed"] is True
    # one gold label: answering it every time is right, not a collapse
    assert M.prediction_concentration(["a"] * 4, ["a"] * 4)["collapsed"] is False
    with pytest.raises(ValueError, match="empty input"):
        M.prediction_concentration([], [])


# ---------------------------------------------------------------- paired bootstrap of a mean over tasks


def _acc(g, p):
    return 100.0 * sum(x == y for x, y in zip(g, p, strict=True)) / len(g)


def test_task_mean_bootstrap_agrees_with_per_task_paired_bootstrap():
    gold = [1, 1, 0, 0, 1, 0, 1, 0]
    a = [1, 1, 0, 0, 1, 0, 0, 0]  # 7/8 right
    b = [0, 0, 0, 0, 1, 0, 0, 1]  # 4/8 right
    one = M.paired_bootstrap(_acc, gold, a, b, n_resamples=300, seed=7)
    task = {"task": "t1", "metric_fn": _acc, "gold": gold, "pred_a": a, "pred_b": b, "seed": 7}
    res = M.paired_bootstrap_task_mean([task], n_resamples=300)
    assert res["delta"] == pytest.approx(37.5) == pytest.approx(one["delta"])
    assert res["ci"] == pytest.approx(one["ci"]) and res["p_value"] == pytest.approx(one["p_value"])
    # A second task on which both systems agree adds a delta of 0 to every resample: the mean halves exactly.
    same = {"task": "t2", "metric_fn": _acc, "gold": gold, "pred_a": a, "pred_b": a, "seed": 3}
    two = M.paired_bootstrap_task_mean([task, same], n_resamples=300)
    assert two["delta"] == pytest.approx(18.75) and two["n_tasks"] == 2
    assert two["ci"] == pytest.approx([c / 2 for c in one["ci"]])
    assert two["per_task"] == pytest.approx({"t1": 37.5, "t2": 0.0})
    assert two["metric_a"] == pytest.approx(87.5) and two["metric_b"] == pytest.approx(68.75)


# ---------------------------------------------------------------- claims


def _metrics(tuned_preds: dict, base_preds: dict, gold: dict, *, group_ci=None) -> dict:
    tasks = {}
    for task, g in gold.items():
        labels = sorted(set(g))
        models = {}
        for name, preds in (("base", base_preds[task]), ("tuned", tuned_preds[task])):
            models[name] = {
                "macro_f1": M.macro_f1(g, preds, labels),
                **M.prediction_concentration(g, preds),
            }
        delta = models["tuned"]["macro_f1"] - models["base"]["macro_f1"]
        tasks[task] = {
            "category": "offensive",
            "group": "seen",
            "type": "classification",
            "labels": labels,
            "n": len(g),
            "models": models,
            "comparison": {"delta_macro_f1": delta, "p_value": 0.5},
        }
    out = {"models": ["base", "tuned"], "tasks": tasks}
    if group_ci is not None:
        out["group_comparisons"] = {
            "seen": {"delta": 1.0, "ci": group_ci, "p_value": 0.2, "n_tasks": len(gold)}
        }
    return out


def _rows(model: str, preds: dict, gold: dict) -> list[dict]:
    return [
        {"id": f"{t}-{i}", "task": t, "model": model, "gold": g, "parsed": p}
        for t in gold
        for i, (g, p) in enumerate(zip(gold[t], preds[t], strict=True))
    ]


GOLD = {"t1": ["x", "y"] * 20, "t2": ["p", "q", "q", "q"] * 10}
MAJORITY = {"t1": ["x"] * 40, "t2": ["q"] * 40}
STRATIFIED = {"t1": ["x", "x", "y", "y"] * 10, "t2": ["q", "p", "q", "q"] * 10}
TFIDF = {"t1": ["y", "x"] * 20, "t2": ["q"] * 40}
BASELINES = (
    _rows("majority", MAJORITY, GOLD) + _rows("stratified", STRATIFIED, GOLD) + _rows("tfidf_lr", TFIDF, GOLD)
)


def test_seen_claim_needs_a_paired_ci_over_examples_that_excludes_zero():
    """The demo printed SUPPORTED on a positive mean alone; now the paired CI over test examples decides."""
    base = {"t1": ["y"] * 40, "t2": ["p"] * 40}
    tuned = {"t1": ["x", "y"] * 20, "t2": ["p", "q", "q", "q"] * 10}
    wide = build_claims(_metrics(tuned, base, GOLD, group_ci=[-1.0, 5.0]))[0]
    assert wide["supported"] is False and "paired 95% CI over test examples [-1.0, 5.0]" in wide["evidence"]
    narrow = build_claims(_metrics(tuned, base, GOLD, group_ci=[1.0, 5.0]))[0]
    assert narrow["supported"] is True


def test_seen_claim_names_collapsed_tasks():
    base = {"t1": ["y"] * 40, "t2": ["p"] * 40}
    claim = build_claims(_metrics(MAJORITY, base, GOLD, group_ci=[1.0, 5.0]))[0]
    assert claim["details"]["tuned_collapsed"] == ["t1", "t2"]
    assert "collapsed onto a label prior: t1, t2" in claim["evidence"]


def test_floor_claim_supported_when_the_tuned_model_learned_the_tasks():
    metrics = _metrics(GOLD, MAJORITY, GOLD)  # tuned answers every example right
    claim = build_floor_claim(metrics, _rows("tuned", GOLD, GOLD), BASELINES, bootstrap_samples=200)
    assert claim["supported"] is True
    # best floor by mean macro-F1 over the seen tasks: stratified (50.0, 33.3) > majority (33.3, 42.9) > tfidf
    assert claim["details"]["best_floor"] == "stratified"
    assert claim["details"]["beats_label_priors"] is True
    assert "tuned 100.0 vs best floor stratified" in claim["evidence"]
    assert "label priors" not in claim["evidence"]


def test_floor_claim_says_plainly_when_only_label_priors_were_learned():
    metrics = _metrics(MAJORITY, MAJORITY, GOLD)  # the tuned model answers the majority label everywhere
    claim = build_floor_claim(metrics, _rows("tuned", MAJORITY, GOLD), BASELINES, bootstrap_samples=200)
    assert claim["supported"] is False
    assert claim["details"]["beats_label_priors"] is False
    assert "learned the label priors and the answer format, not the tasks" in claim["evidence"]
    assert "collapsed onto a label prior: t1, t2" in claim["evidence"]
    assert claim_lines([claim])[0].startswith("[NOT supported] The tuned model beats the simple baselines")


def test_floor_claim_refuses_predictions_of_other_examples():
    metrics = _metrics(GOLD, MAJORITY, GOLD)
    other = [dict(r, id=r["id"] + "x") for r in _rows("tuned", GOLD, GOLD)]
    with pytest.raises(ValueError, match="cover different test examples of 't1'"):
        build_floor_claim(metrics, other, BASELINES, bootstrap_samples=50)


def test_report_collapse_table():
    table = report_collapse(_metrics(MAJORITY, GOLD, GOLD))
    tuned = table[table["model"] == "tuned"].set_index("task")
    assert tuned.loc["t1", "top_share_%"] == 100.0 and bool(tuned.loc["t1", "collapsed"])
    base = table[table["model"] == "base"].set_index("task")
    assert base.loc["t2", "top_prediction"] == "q" and base.loc["t2", "top_share_%"] == 75.0
    assert not base["collapsed"].any()
