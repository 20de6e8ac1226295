"""Hand-worked checks for socialite_utils.metrics (arithmetic in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score, precision_recall_fscore_support

from socialite_utils.metrics import (
    MetricWarning,
    accuracy,
    aggregate,
    bootstrap_ci,
    compute_classification,
    compute_correctness,
    compute_regression,
    expected_calibration_error,
    macro_f1,
    mcnemar,
    paired_bootstrap,
    pearson_r,
    reliability_bins,
    task_seed,
)

# ---------------------------------------------------------------------------------------------- classification


def test_macro_f1_with_invalid_answer():
    # gold [a,a,b,b], pred [a,None,b,a]
    # a: tp=1 (i0), fp=1 (i3), fn=1 (i1 None) -> P=1/2, R=1/2, F1=1/2
    # b: tp=1 (i2), fp=0, fn=1 (i3)            -> P=1,   R=1/2, F1=2*1*.5/1.5=2/3
    # macro = (1/2 + 2/3)/2 = 7/12 = 58.333...; None is FN for a, FP for nothing.
    gold, pred = ["a", "a", "b", "b"], ["a", None, "b", "a"]
    res = compute_classification(gold, pred)
    assert res["macro_f1"] == pytest.approx(100 * 7 / 12)
    assert macro_f1(gold, pred) == pytest.approx(100 * 7 / 12)
    assert res["accuracy"] == pytest.approx(50.0)  # 2 of 4 right
    assert res["invalid_rate"] == pytest.approx(0.25)  # fraction, not percent
    assert res["n"] == 4 and res["n_invalid"] == 1 and res["n_out_of_labels"] == 0
    assert res["per_label"]["a"] == pytest.approx(
        {"precision": 50.0, "recall": 50.0, "f1": 50.0, "support": 2}
    )
    assert res["per_label"]["b"] == pytest.approx(
        {"precision": 100.0, "recall": 50.0, "f1": 100 * 2 / 3, "support": 2}
    )
    assert any(f.startswith("invalid: 1 of 4") for f in res["flags"])


def test_label_absent_from_predictions():
    # gold [a,b,c,c], pred [a,a,c,c]
    # a: tp=1, fp=1, fn=0 -> P=1/2, R=1, F1=2/3
    # b: never predicted, 1 gold -> P=0 (zero_division=0), R=0, F1=0
    # c: tp=2 -> F1=1
    # macro = (2/3 + 0 + 1)/3 = 5/9 = 55.556
    res = compute_classification(["a", "b", "c", "c"], ["a", "a", "c", "c"])
    assert res["macro_f1"] == pytest.approx(100 * 5 / 9)
    assert res["per_label"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert res["flags"] == []


def test_label_without_gold_support_counts_as_zero_like_sklearn():
    # gold [a,a], pred [a,b], labels [a,b,c]
    # a: tp=1, n_gold=2, n_pred=1 -> F1 = 2*1/(2+1) = 2/3
    # b: 0 gold, 1 pred -> F1 = 0;  c: 0 gold, 0 pred -> F1 = 0 (zero_division=0, still in the mean)
    # macro = (2/3 + 0 + 0)/3 = 2/9 = 22.222
    gold, pred, labels = ["a", "a"], ["a", "b"], ["a", "b", "c"]
    res = compute_classification(gold, pred, labels=labels)
    assert res["macro_f1"] == pytest.approx(100 * 2 / 9)
    assert res["macro_f1"] == pytest.approx(
        100 * f1_score(gold, pred, labels=labels, average="macro", zero_division=0)
    )
    flags = " | ".join(res["flags"])
    assert "no_gold_support: label 'b'" in flags and "no_gold_support: label 'c'" in flags
    assert "single_class_gold" in flags


def test_single_class_test_set_is_defined_and_flagged():
    # gold [a,a,a], pred [a,a,None]: tp=2, n_gold=3, n_pred=2 -> F1 = 4/5 = 80 (mean over the one class)
    res = compute_classification(["a", "a", "a"], ["a", "a", None])
    assert res["macro_f1"] == pytest.approx(80.0)
    assert res["accuracy"] == pytest.approx(100 * 2 / 3)
    assert any(f.startswith("single_class_gold") for f in res["flags"])


def test_out_of_label_prediction_is_wrong_counted_and_flagged():
    # gold [a,b], pred [a,"zzz"]: a F1=1; b: tp=0, 1 gold, 0 pred -> 0; macro = 50. "zzz" is not an FP of a/b.
    res = compute_classification(["a", "b"], ["a", "zzz"], labels=["a", "b"])
    assert res["macro_f1"] == pytest.approx(50.0)
    assert res["per_label"]["a"]["precision"] == 100.0
    assert res["n_out_of_labels"] == 1 and res["invalid_rate"] == 0.0
    assert any("out_of_labels: 1" in f and "zzz" in f for f in res["flags"])


def test_accuracy_and_correctness():
    # 3 of 5 right (None never equals gold) -> 60%
    gold = ["x", "y", "x", "y", "x"]
    pred = ["x", "y", None, "x", "x"]
    assert accuracy(gold, pred) == pytest.approx(60.0)
    assert compute_correctness(gold, pred).tolist() == [True, True, False, False, True]


def test_bad_input_errors_name_the_problem():
    with pytest.raises(ValueError, match="length mismatch"):
        macro_f1(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty input"):
        accuracy([], [])
    with pytest.raises(ValueError, match="gold label at index 1 is None"):
        compute_classification(["a", None], ["a", "a"])
    with pytest.raises(ValueError, match=r"1 gold label\(s\) not in labels.*index 2: 'c'"):
        compute_classification(["a", "b", "c"], ["a", "b", "c"], labels=["a", "b"])
    with pytest.raises(ValueError, match="duplicates"):
        macro_f1(["a"], ["a"], labels=["a", "a"])


def test_macro_f1_matches_sklearn_on_random_cases():
    rng = np.random.default_rng(123)
    labels = ["neg", "neu", "pos", "other"]
    for trial in range(200):
        n = int(rng.integers(1, 40))
        k = int(rng.integers(1, 5))
        gold = list(rng.choice(labels[:k], size=n))
        # Predictions: valid labels, invalid (None) and an out-of-label string.
        pool = labels + [None, "garbage"]
        pred = [pool[i] for i in rng.integers(0, len(pool), size=n)]
        use_labels = labels if trial % 2 else None
        ref_labels = labels if use_labels else sorted(set(gold))
        pred_sk = ["__invalid__" if p is None else p for p in pred]
        ref = 100 * f1_score(gold, pred_sk, labels=ref_labels, average="macro", zero_division=0)
        res = compute_classification(gold, pred, labels=use_labels)
        assert res["macro_f1"] == pytest.approx(ref), (gold, pred)
        p, r, f, s = precision_recall_fscore_support(gold, pred_sk, labels=ref_labels, zero_division=0)
        for i, lab in enumerate(ref_labels):
            row = res["per_label"][lab]
            assert [row["precision"], row["recall"], row["f1"]] == pytest.approx(
                [100 * p[i], 100 * r[i], 100 * f[i]]
            )
            assert row["support"] == s[i]


# ---------------------------------------------------------------------------------------------- regression


def test_pearson_known_pair():
    # x=[1,2,3] (centred -1,0,1), y=[2,4,7] (mean 13/3, centred -7/3,-1/3,8/3)
    # cov sum = 7/3 + 0 + 8/3 = 5; sxx = 2; syy = (49+1+64)/9 = 114/9
    # r = 5 / sqrt(2 * 114/9) = 15 / sqrt(228) = 0.993399...
    assert pearson_r([1, 2, 3], [2, 4, 7]) == pytest.approx(15 / math.sqrt(228))
    assert pearson_r([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_pearson_constant_input_is_nan_with_warning():
    with pytest.warns(MetricWarning, match=r"constant input \(y\)"):
        assert math.isnan(pearson_r([1, 2, 3], [5, 5, 5]))
    with pytest.warns(MetricWarning, match="fewer than 2"):
        assert math.isnan(pearson_r([1], [2]))
    with pytest.raises(ValueError, match="non-finite.*index 1"):
        pearson_r([1, float("nan"), 3], [1, 2, 3])


def test_score_regression_pearson_and_binarized_f1():
    gold_scores = [1.0, 2.0, 4.0, 3.0]
    pred_scores = [2.0, 4.0, 7.0, None]  # last one unparseable -> r on the first 3 pairs
    gold_bin = ["low", "low", "high", "high"]
    pred_bin = ["low", "high", "high", None]
    res = compute_regression(gold_scores, pred_scores, gold_bin, pred_bin)
    assert res["pearson_r"] == pytest.approx(stats.pearsonr([1, 2, 4], [2, 4, 7])[0])
    assert res["pearson_n"] == 3
    # low: tp=1, n_gold=2, n_pred=1 -> F1=2/3; high: tp=1, n_gold=2, n_pred=2 -> F1=1/2; macro = 7/12
    assert res["macro_f1"] == pytest.approx(100 * 7 / 12)
    assert res["invalid_rate"] == pytest.approx(0.25)
    assert any("1 of 4 predicted scores are None" in f for f in res["flags"])


def test_score_regression_constant_predictions_flagged_not_crashing():
    res = compute_regression([1, 2, 3], [2, 2, 2], ["low", "high", "high"], ["low", "high", "high"])
    assert math.isnan(res["pearson_r"])
    assert any("constant input" in f for f in res["flags"])
    assert res["macro_f1"] == pytest.approx(100.0)
    no_scores = compute_regression([1, 2], None, ["low", "high"], ["low", "low"])
    assert math.isnan(no_scores["pearson_r"]) and no_scores["pearson_n"] == 0


# ---------------------------------------------------------------------------------------------- bootstrap


def _mean_pct(c):
    return 100 * float(np.mean(c))


def test_bootstrap_ci_contains_estimate_and_narrows_with_n():
    # Same underlying accuracy (70%) at n=50 and n=2000: width should shrink ~sqrt(40)=6.3x.
    small = np.array([1] * 35 + [0] * 15, dtype=bool)
    large = np.array([1] * 1400 + [0] * 600, dtype=bool)
    lo_s, hi_s = bootstrap_ci(_mean_pct, small)
    lo_l, hi_l = bootstrap_ci(_mean_pct, large)
    assert lo_s <= 70.0 <= hi_s and lo_l <= 70.0 <= hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 3
    # Normal approximation for n=50: 1.96*sqrt(.7*.3/50)*100 = 12.7 half-width; the percentile CI is close.
    assert (hi_s - lo_s) / 2 == pytest.approx(12.7, abs=2.5)


def test_bootstrap_ci_seeded_and_joint_resampling():
    gold = ["a", "b"] * 30
    pred = ["a", "b", "a", None, "b", "a"] * 10
    ci1 = bootstrap_ci(macro_f1, gold, pred, seed=7)
    ci2 = bootstrap_ci(macro_f1, gold, pred, seed=7)
    ci3 = bootstrap_ci(macro_f1, gold, pred, seed=8)
    assert ci1 == ci2 and ci1 != ci3
    assert ci1[0] <= macro_f1(gold, pred) <= ci1[1]
    # Joint resampling: gold and pred with the same indices, so a perfect system stays perfect in every resample.
    assert bootstrap_ci(accuracy, gold, gold) == (100.0, 100.0)


def test_bootstrap_vectorized_equals_loop():
    correct = np.random.default_rng(0).random(300) < 0.6
    loop = bootstrap_ci(_mean_pct, correct, seed=3)
    vec = bootstrap_ci(lambda c: 100 * c.mean(axis=1), correct, seed=3, vectorized=True)
    assert loop == pytest.approx(vec)


def test_bootstrap_nan_resamples_warned():
    # A 2-example set: resamples [0,0] / [1,1] make x constant -> pearson nan; those are ignored with a warning.
    with pytest.warns(MetricWarning, match=r"of 200 resamples gave nan and were ignored"):
        bootstrap_ci(pearson_r, [1.0, 2.0, 3.0], [1.0, 2.0, 4.0], n_resamples=200)


def test_paired_bootstrap_identical_systems():
    gold = ["a", "b", "c"] * 20
    pred = ["a", "b", "b"] * 20
    res = paired_bootstrap(macro_f1, gold, pred, list(pred))
    assert res["delta"] == 0.0 and res["ci"] == (0.0, 0.0) and res["p_value"] == 1.0


def test_paired_bootstrap_clear_winner():
    # A is right on all 100, B on the first 50 only: delta = 100 - 50 = 50 accuracy points; no resample flips.
    gold = ["y"] * 100
    res = paired_bootstrap(accuracy, gold, ["y"] * 100, ["y"] * 50 + ["n"] * 50, seed=1)
    assert res["delta"] == pytest.approx(50.0)
    assert res["metric_a"] == 100.0 and res["metric_b"] == 50.0
    assert res["ci"][0] > 30 and res["ci"][1] < 70
    assert res["p_value"] == 0.0


def test_paired_bootstrap_two_sided_p_value():
    # gold [y,y]; A right on both, B right only on example 0 -> delta = 100 - 50 = 50.
    # A resample's delta is 50 * (number of draws of example 1): it is <= 0 only when both draws are
    # example 0, probability 1/4. Two-sided p = 2 * 1/4 = 0.5 (up to resampling noise, sd ~ 2*0.007).
    res = paired_bootstrap(accuracy, ["y", "y"], ["y", "y"], ["y", "n"], n_resamples=4000, seed=0)
    assert res["delta"] == pytest.approx(50.0)
    assert res["p_value"] == pytest.approx(0.5, abs=0.05)


def test_mcnemar_exact_hand_case():
    # b = A right & B wrong = 5, c = A wrong & B right = 1, plus 4 both right -> b+c=6 < 25: exact.
    # p = 2 * P(X <= 1 | Bin(6, 1/2)) = 2 * (1 + 6)/64 = 14/64 = 0.21875
    a = [True] * 5 + [False] + [True] * 4
    b = [False] * 5 + [True] + [True] * 4
    res = mcnemar(a, b)
    assert (res["b"], res["c"], res["method"]) == (5, 1, "exact")
    assert res["statistic"] == 1.0
    assert res["p_value"] == pytest.approx(14 / 64)


def test_mcnemar_chi2_hand_case():
    # b=30, c=10 -> chi2_cc = (|30-10| - 1)^2 / 40 = 361/40 = 9.025; p(chi2_1 > s) = erfc(sqrt(s/2)) ~ 0.00266
    a = [1] * 30 + [0] * 10
    b = [0] * 30 + [1] * 10
    res = mcnemar(a, b)
    assert res["method"] == "chi2_cc"
    assert res["statistic"] == pytest.approx(9.025)
    assert res["p_value"] == pytest.approx(math.erfc(math.sqrt(9.025 / 2)))
    assert mcnemar([True, False], [True, False])["p_value"] == 1.0  # no discordant pairs
    with pytest.raises(ValueError, match="correct_b must be booleans"):
        mcnemar([1, 0], [1, 2])


def test_mcnemar_switches_method_at_25_discordant_pairs():
    # b=20, c=4 (b+c=24 < 25): exact, p = 2 * sum_{k<=4} C(24,k) / 2^24 = 2 * 12951 / 16777216 = 0.001544
    res = mcnemar([1] * 20 + [0] * 4, [0] * 20 + [1] * 4)
    assert res["method"] == "exact"
    assert res["p_value"] == pytest.approx(2 * sum(math.comb(24, k) for k in range(5)) / 2**24)
    # b=20, c=5 (b+c=25): chi-square, (15 - 1)^2 / 25 = 7.84
    res = mcnemar([1] * 20 + [0] * 5, [0] * 20 + [1] * 5)
    assert res["method"] == "chi2_cc" and res["statistic"] == pytest.approx(7.84)


# ---------------------------------------------------------------------------------------------- aggregate


def test_aggregate_mean_over_tasks_differs_from_pooled():
    results = [
        # small easy task: macro 100, 2/2 right
        {"task": "t1", "category": "c1", "group": "seen", "n": 2, "macro_f1": 100.0, "correct": [1, 1]},
        # big hard task: macro 50, 4/8 right
        {
            "task": "t2",
            "category": "c2",
            "group": "seen",
            "n": 8,
            "macro_f1": 50.0,
            "correct": [1] * 4 + [0] * 4,
        },
        {"task": "t3", "category": "c2", "group": "related", "n": 5, "macro_f1": 40.0},
    ]
    agg = aggregate(results, by="group")
    seen = agg["seen"]
    # mean over tasks = (100 + 50)/2 = 75; pooled accuracy = (2 + 4)/10 = 60%
    assert seen["macro_over_tasks"] == pytest.approx(75.0)
    assert seen["pooled_accuracy"] == pytest.approx(60.0)
    assert (seen["n_tasks"], seen["n_examples"], seen["pooled_n"]) == (2, 10, 10)
    # se = std([100, 50], ddof=1)/sqrt(2) = 35.355/1.4142 = 25; CI = 75 +- t(0.975, 1 df)=12.706 * 25
    assert seen["macro_over_tasks_se"] == pytest.approx(25.0)
    assert seen["macro_over_tasks_ci"] == pytest.approx((75 - 12.7062 * 25, 75 + 12.7062 * 25), rel=1e-4)
    # pooled se = 100 * sqrt(.6 * .4 / 9) = 16.33
    assert seen["pooled_accuracy_se"] == pytest.approx(100 * math.sqrt(0.24 / 9))
    related = agg["related"]
    assert related["pooled_accuracy"] is None and math.isnan(related["macro_over_tasks_se"])
    assert any("single_task" in f for f in related["flags"])
    assert any("no_pooled" in f and "t3" in f for f in related["flags"])
    everything = aggregate(results, by="all")["all"]
    assert everything["macro_over_tasks"] == pytest.approx((100 + 50 + 40) / 3)
    assert set(aggregate(results, by="category")) == {"c1", "c2"}


def test_aggregate_example_ci_combines_tasks_resample_by_resample():
    """The category CI over test examples is the percentile interval of the per-resample MEAN over tasks."""
    a = np.arange(1000) / 10.0  # task 1's bootstrap macro-F1 values: 0.0, 0.1, ..., 99.9
    b = np.full(1000, 50.0)  # task 2 never moves
    rows = [
        {"task": "t1", "category": "c", "n": 10, "macro_f1": 50.0, "macro_f1_boot": a},
        {"task": "t2", "category": "c", "n": 10, "macro_f1": 50.0, "macro_f1_boot": b},
    ]
    c = aggregate(rows, by="category")["c"]
    # mean per resample = a / 2 + 25, so its quantiles are a's halved plus 25
    lo, hi = np.quantile(a, [0.025, 0.975]) / 2 + 25
    assert c["macro_over_tasks_example_ci"] == pytest.approx((lo, hi))
    assert 0 < lo < 50 < hi < 100
    # the t-CI over 2 tasks is degenerate here (both 50, se 0) and the two-task case is flagged
    assert any(f.startswith("few_tasks") for f in c["flags"])
    assert aggregate(rows[:1], by="category")["c"]["macro_over_tasks_example_ci"] == pytest.approx(
        tuple(np.quantile(a, [0.025, 0.975]))
    )
    no_boot = [{k: v for k, v in r.items() if k != "macro_f1_boot"} for r in rows]
    assert aggregate(no_boot, by="category")["c"]["macro_over_tasks_example_ci"] is None
    with pytest.raises(ValueError, match="bootstrap value counts"):
        aggregate([rows[0], {**rows[1], "macro_f1_boot": b[:10]}], by="category")


def test_task_seed_is_stable_and_differs_between_tasks():
    assert task_seed(0, "tweet_irony") == task_seed(0, "tweet_irony")
    assert len({task_seed(0, t) for t in ("tweet_irony", "tweet_hate", "clickbait")}) == 3
    assert task_seed(0, "tweet_irony") != task_seed(1, "tweet_irony")


def test_aggregate_rejects_bad_rows():
    with pytest.raises(ValueError, match=r"task_results\[0\] \(t1\) lacks key\(s\) \['group'\]"):
        aggregate([{"task": "t1", "n": 1, "macro_f1": 1.0}], by="group")
    with pytest.raises(ValueError, match="n=3 but 2 'correct'"):
        aggregate([{"task": "t1", "group": "g", "n": 3, "macro_f1": 1.0, "correct": [1, 0]}], by="group")


# ---------------------------------------------------------------------------------------------- calibration


def test_ece_two_bins_hand_case():
    # bins (0, .5] and (.5, 1]
    # bin0: conf .2,.4 -> mean .3; correct 0,1 -> acc .5; gap .2
    # bin1: conf .6,.9 -> mean .75; correct 1,1 -> acc 1;  gap .25
    # ECE = 2/4 * .2 + 2/4 * .25 = .225
    conf, corr = [0.2, 0.4, 0.6, 0.9], [False, True, True, True]
    assert expected_calibration_error(conf, corr, n_bins=2) == pytest.approx(0.225)
    bins = reliability_bins(conf, corr, n_bins=2)
    assert [b["count"] for b in bins] == [2, 2]
    assert bins[0]["mean_confidence"] == pytest.approx(0.3) and bins[1]["accuracy"] == pytest.approx(1.0)
    assert (bins[0]["lo"], bins[0]["hi"], bins[1]["hi"]) == (0.0, 0.5, 1.0)


def test_reliability_bin_edges_and_empty_bins():
    # 0 -> first bin; .5 is right-closed -> bin 0 of 2; 1.0 -> last bin
    bins = reliability_bins([0.0, 0.5, 1.0], [1, 1, 0], n_bins=2)
    assert [b["count"] for b in bins] == [2, 1]
    bins10 = reliability_bins([0.95], [1], n_bins=10)
    assert len(bins10) == 10 and bins10[9]["count"] == 1 and math.isnan(bins10[0]["accuracy"])
    # perfectly calibrated single bin: conf .75 with 3/4 right -> ECE 0
    assert expected_calibration_error([0.75] * 4, [1, 1, 1, 0], n_bins=10) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="outside \\[0, 1\\]; first at index 1: 1.2"):
        reliability_bins([0.5, 1.2], [1, 1])
