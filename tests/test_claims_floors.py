"""Honest claims: collapse onto one answer, paired CIs over test examples, and tuned vs the simple floors."""

from __future__ import annotations

import pytest

from socialite_utils import metrics as M
from socialite_utils.claims import expected_stratified_macro_f1
from socialite_utils.reporting import (
    build_claims,
    build_floor_claim,
    build_system_claim,
    claim_lines,
    current_claims,
    is_significant,
    report_claims,
    report_collapse,
)

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


def _metrics(
    tuned_preds: dict, base_preds: dict, gold: dict, *, group_ci=None, p_values=None, group="seen"
) -> dict:
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
            "group": group,
            "type": "classification",
            "labels": labels,
            "n": len(g),
            "models": models,
            "comparison": {"delta_macro_f1": delta, "p_value": (p_values or {}).get(task, 0.5)},
        }
    out = {"models": ["base", "tuned"], "tasks": tasks}
    if group_ci is not None:
        lo, hi = group_ci
        out["group_comparisons"] = {
            group: {"delta": (lo + hi) / 2, "ci": [lo, hi], "p_value": 0.2, "n_tasks": len(gold), "B": 1000,
                    "n_examples": sum(len(g) for g in gold.values())}
        }  # fmt: skip
    return out


def _rows(model: str, preds: dict, gold: dict, probs: dict | None = None) -> list[dict]:
    return [
        {"id": f"{t}-{i}", "task": t, "model": model, "gold": g, "parsed": p, "probs": (probs or {}).get(t)}
        for t in gold
        for i, (g, p) in enumerate(zip(gold[t], preds[t], strict=True))
    ]


GOLD = {"t1": ["x", "y"] * 20, "t2": ["p", "q", "q", "q"] * 10}
MAJORITY = {"t1": ["x"] * 40, "t2": ["q"] * 40}
STRATIFIED = {"t1": ["x", "x", "y", "y"] * 10, "t2": ["q", "p", "q", "q"] * 10}
PRIORS = {"t1": {"x": 0.5, "y": 0.5}, "t2": {"p": 0.25, "q": 0.75}}  # what the stratified floor draws from
TFIDF = {"t1": ["y", "x"] * 20, "t2": ["q"] * 40}
BASELINES = (
    _rows("majority", MAJORITY, GOLD)
    + _rows("stratified", STRATIFIED, GOLD, PRIORS)
    + _rows("tfidf_lr", TFIDF, GOLD)
)
BASE = {"t1": ["y"] * 40, "t2": ["p"] * 40}
TUNED = {"t1": ["x", "y"] * 20, "t2": ["p", "q", "q", "q"] * 10}


@pytest.mark.parametrize(
    ("ci", "verdict"),
    [([-1.0, 5.0], "INCONCLUSIVE"), ([1.0, 5.0], "SUPPORTED"), ([-5.0, -1.0], "CONTRADICTED"), ([0.0, 4.0], "INCONCLUSIVE")],
)  # fmt: skip
def test_seen_claim_verdict_is_the_paired_ci_rule(ci, verdict):
    """SUPPORTED only when the paired CI over test examples excludes 0 above; a CI straddling (or touching) 0 is
    INCONCLUSIVE, never "NOT supported"; one below 0 is CONTRADICTED."""
    claim = build_claims(_metrics(TUNED, BASE, GOLD, group_ci=ci))[0]
    assert claim["verdict"] == verdict
    line = claim_lines([claim])[0]
    assert line.startswith(f"[{verdict}] Instruction tuning improves macro-F1 over the base model on seen")
    assert f"[95% CI {ci[0]:+.1f}, {ci[1]:+.1f}]" in line
    assert "tuned vs base, mean over seen tasks" in line and "n = 80 examples, 2 tasks" in line
    assert "p = 0.200" in line and "NOT supported" not in line


def test_related_claim_counts_holm_corrected_tasks():
    """Four related tasks, all better by point estimate, raw p = 0.01, 0.04, 0.03, 0.005: Holm adjusts them to
    0.03, 0.06, 0.06, 0.02, so tuning "improves 2 of 4" (t1, t4), not 4 (point estimates) nor 4 (raw p < 0.05)."""
    gold = {f"t{i}": ["x", "y"] * 5 for i in range(1, 5)}
    base = {t: ["y"] * 10 for t in gold}
    tuned = {t: ["x", "y"] * 5 for t in gold}
    p = {"t1": 0.01, "t2": 0.04, "t3": 0.03, "t4": 0.005}
    metrics = _metrics(tuned, base, gold, group_ci=[2.0, 9.0], p_values=p, group="related")
    seen, related = build_claims(metrics)
    assert seen["verdict"] is None and seen["evidence"] == "no seen tasks"
    assert related["verdict"] == "SUPPORTED"
    assert "improves 2 of 4 related task(s), worse on 0" in related["evidence"]
    assert related["details"]["significantly_better"] == ["t1", "t4"]
    assert related["details"]["holm_adjusted_p"] == pytest.approx(
        {"t1": 0.03, "t2": 0.06, "t3": 0.06, "t4": 0.02}
    )
    assert related["task_count"]["k"] == 2 and related["task_count"]["n"] == 4
    assert is_significant(metrics, "related") == {"t1": True, "t2": False, "t3": False, "t4": True}


def test_claims_of_an_older_metrics_json_are_rebuilt():
    metrics = _metrics(TUNED, BASE, GOLD, group_ci=[-1.0, 5.0])
    metrics["claims"] = [{"claim": "old", "supported": False, "evidence": "e", "details": {}}]
    assert [c["verdict"] for c in current_claims(metrics)] == ["INCONCLUSIVE", None]
    assert list(report_claims(metrics)["verdict"]) == ["INCONCLUSIVE", "cannot judge"]


def test_seen_claim_names_collapsed_tasks():
    claim = build_claims(_metrics(MAJORITY, BASE, GOLD, group_ci=[1.0, 5.0]))[0]
    assert claim["details"]["tuned_collapsed"] == ["t1", "t2"]
    assert "collapsed onto a label prior: t1, t2" in claim["evidence"]


def _expected_stratified() -> float:
    return sum(
        expected_stratified_macro_f1(GOLD[t], PRIORS[t], labels=sorted(PRIORS[t])) for t in GOLD
    ) / len(GOLD)


def test_floor_claim_supported_when_the_tuned_model_learned_the_tasks():
    metrics = _metrics(GOLD, MAJORITY, GOLD)  # tuned answers every example right
    claim = build_floor_claim(metrics, _rows("tuned", GOLD, GOLD), BASELINES, bootstrap_samples=200)
    assert claim["verdict"] == "SUPPORTED"
    # the stratified floor is scored by its EXPECTED macro-F1 (about 50 on both tasks), not its one draw;
    # majority: (33.3 + 42.9) / 2, tfidf: (0 + 42.9) / 2, so stratified is the best floor
    per_floor = claim["details"]["per_floor"]
    assert per_floor["stratified"]["metric_b"] == pytest.approx(_expected_stratified())
    assert per_floor["stratified"]["scored_as"] == "expected macro-F1 over its draws"
    assert claim["details"]["best_floor"] == "stratified"
    assert claim["details"]["beats_label_priors"] is True
    assert f"tuned 100.0 vs stratified {_expected_stratified():.1f}" in claim["evidence"]
    assert claim["line"].startswith("[SUPPORTED] The tuned model beats the simple baselines")
    assert "tuned vs stratified, mean over seen tasks" in claim["line"]
    assert "label priors" not in claim["evidence"]


def test_floor_claim_says_plainly_when_only_label_priors_were_learned():
    metrics = _metrics(MAJORITY, MAJORITY, GOLD)  # the tuned model answers the majority label everywhere
    claim = build_floor_claim(metrics, _rows("tuned", MAJORITY, GOLD), BASELINES, bootstrap_samples=200)
    # below the stratified floor's expectation on both tasks: the interval lies below 0
    assert claim["verdict"] == "CONTRADICTED" and claim["ci"][1] < 0
    # identical to the majority floor: effect 0, interval [0, 0], INCONCLUSIVE
    assert claim["details"]["per_floor"]["majority"]["verdict"] == "INCONCLUSIVE"
    assert claim["details"]["beats_label_priors"] is False
    assert "learned the label priors and the answer format, not the tasks" in claim["evidence"]
    assert "collapsed onto a label prior: t1, t2" in claim["evidence"]
    assert claim_lines([claim])[0].startswith("[CONTRADICTED] The tuned model beats the simple baselines")


def test_floor_claim_on_related_tasks():
    metrics = _metrics(GOLD, MAJORITY, GOLD, group="related")
    claim = build_floor_claim(
        metrics, _rows("tuned", GOLD, GOLD), BASELINES, group="related", bootstrap_samples=200
    )
    assert claim["verdict"] == "SUPPORTED" and claim["claim"].endswith("on related tasks")
    seen = build_floor_claim(metrics, _rows("tuned", GOLD, GOLD), BASELINES, bootstrap_samples=200)
    assert seen["verdict"] is None and seen["evidence"] == "no seen tasks"


def test_tuned_vs_encoder_claim():
    metrics = _metrics(GOLD, MAJORITY, GOLD)
    encoder = _rows("multitask_encoder", TFIDF, GOLD)
    claim = build_system_claim(metrics, _rows("tuned", GOLD, GOLD), encoder, bootstrap_samples=200)
    assert (
        claim["verdict"] == "SUPPORTED"
        and claim["comparison"] == "tuned vs multitask_encoder, mean over seen tasks"
    )
    assert claim["n_examples"] == 80 and claim["n_tasks"] == 2 and claim["task_count"]["n"] == 2
    assert "p < 0.01" in claim["line"]  # no replicate crosses 0: p is bounded by 2/B, never printed as 0
    same = build_system_claim(metrics, _rows("tuned", TFIDF, GOLD), encoder, bootstrap_samples=200)
    assert same["verdict"] == "INCONCLUSIVE"
    none = build_system_claim(metrics, _rows("tuned", GOLD, GOLD), BASELINES, bootstrap_samples=50)
    assert none["verdict"] is None and "no multitask_encoder predictions" in none["evidence"]


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
