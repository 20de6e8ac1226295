"""The claims module: the verdict rule, Holm, p formatting, the task-stratified paired bootstrap, seeds and the
stratified floor, each pinned on cases worked out by hand."""

from __future__ import annotations

import dataclasses
import itertools
import math
import time

import numpy as np
import pytest

from socialite_utils import claims as C
from socialite_utils import metrics as M

SUP, CON, INC = C.Verdict.SUPPORTED, C.Verdict.CONTRADICTED, C.Verdict.INCONCLUSIVE

# ---------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("lo", "hi", "direction", "expected"),
    [
        (-1.0, 2.0, +1, INC),  # straddles 0
        (-3.0, -1.0, +1, CON),  # entirely below 0, claimed above
        (0.5, 2.0, +1, SUP),  # entirely above 0
        (0.0, 2.0, +1, INC),  # touches 0: 0 is a plausible effect
        (-2.0, 0.0, +1, INC),
        (0.0, 0.0, +1, INC),  # identical systems
        (-3.0, -1.0, -1, SUP),  # "it hurts" and the interval is below 0
        (1.0, 3.0, -1, CON),
        (-1.0, 1.0, -1, INC),
        (math.nan, 1.0, +1, INC),  # no valid replicate: no evidence
    ],
)
def test_verdict_from_interval(lo, hi, direction, expected):
    assert C.verdict_from_interval(lo, hi, direction) == expected


def test_verdict_rejects_bad_input():
    with pytest.raises(ValueError, match="direction"):
        C.verdict_from_interval(1, 2, direction=0)
    with pytest.raises(ValueError, match="out of order"):
        C.verdict_from_interval(2, 1)


def test_claim_verdict_comes_from_its_interval_only():
    c = C.Claim("x", "a vs b", effect=-2.0, ci=(-3.0, -1.0), p_value=0.01, n_examples=10)
    assert c.verdict == CON
    assert C.Claim("x", "a vs b", -2.0, (-3.0, -1.0), 0.01, 10, direction=-1).verdict == SUP
    with pytest.raises(TypeError):  # a verdict cannot be passed in, so it cannot disagree with the interval
        C.Claim("x", "a vs b", 1.0, (0.5, 2.0), 0.01, 10, verdict=INC)  # type: ignore[call-arg]


# ---------------------------------------------------------------- Holm and counting


def test_holm_worked_example():
    # Sorted: 0.005 (x4) = 0.02, 0.01 (x3) = 0.03, 0.03 (x2) = 0.06, 0.04 (x1) = 0.04 -> running max 0.06.
    adj = C.holm([0.01, 0.04, 0.03, 0.005])
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_is_monotone():
    assert C.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # 0.5 x 2 = 1.0; 0.6 x 1 raised to 1.0
    assert C.holm([0.02]) == pytest.approx([0.02])  # one test: no correction
    assert C.holm([]).size == 0
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, size=20)
    adj = C.holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0) and np.all(adj >= p) and np.all(adj <= 1)
    with pytest.raises(ValueError):
        C.holm([0.1, math.nan])


def test_count_supported_uses_holm():
    per_task = {
        "t1": {"effect": 2.0, "p_value": 0.01},
        "t2": {"effect": 1.0, "p_value": 0.04},
        "t3": {"effect": -1.0, "p_value": 0.03},
        "t4": {"delta": 3.0, "p_value": 0.005},
    }
    # Raw p < 0.05 would count 3 better and 1 worse; Holm-adjusted [0.03, 0.06, 0.06, 0.02] leaves t1 and t4.
    count = C.count_supported(per_task, alpha=0.05)
    assert (count.k, count.n) == (2, 4)
    assert count.better == ("t1", "t4") and count.worse == ()
    assert count.adjusted == pytest.approx({"t1": 0.03, "t2": 0.06, "t3": 0.06, "t4": 0.02})
    assert "2 of 4" in count.describe()
    # Claimed "lower": t1 and t4 are significant the other way.
    lower = C.count_supported(per_task, alpha=0.05, direction=-1)
    assert lower.k == 0 and lower.worse == ("t1", "t4")


def test_verdict_every_task():
    t1 = {"effect": 2.0, "ci": (1.0, 3.0), "p_value": 0.001}
    t2 = {"effect": 1.0, "ci": (0.5, 2.0), "p_value": 0.03}
    assert C.verdict_every_task({"t1": t1, "t2": t2}) == SUP
    unsure = {"effect": 0.5, "ci": (-0.5, 2.0), "p_value": 0.4}
    assert C.verdict_every_task({"t1": t1, "t2": t2, "t3": unsure}) == INC
    # t3 is below 0 on its own (p = 0.03), but "some task is worse" over 3 tasks is Holm-corrected:
    # adjusted p of t3 = max(0.003, 2 * 0.03, 1 * 0.03) = 0.06 -> not significant, INCONCLUSIVE.
    worse = {"effect": -1.0, "ci": (-2.0, -0.1), "p_value": 0.03}
    assert C.verdict_every_task({"t1": t1, "t2": t2, "t3": worse}) == INC
    clearly_worse = {"effect": -2.0, "ci": (-3.0, -1.0), "p_value": 0.002}  # adjusted 3 * 0.002 = 0.006
    assert C.verdict_every_task({"t1": t1, "t2": t2, "t3": clearly_worse}) == CON
    assert C.verdict_every_task({}) == INC


def test_per_task_metrics_mapping():
    # Each task scored over its own label list: "c" is a label of t2 only and pulls its macro-F1 down.
    a = {"t1": (["a", "b"], ["a", "b"]), "t2": (["a", "b"], ["a", "b"])}
    b = {"t1": (["a", "b"], ["a", "a"]), "t2": (["a", "b"], ["a", "a"])}
    metric = {"t1": C.MacroF1(["a", "b"]), "t2": C.MacroF1(["a", "b", "c"])}
    res = C.paired_bootstrap_mean_over_tasks(a, b, metric, B=50)
    # t1: 100 - (2/3 + 0)/2 * 100; t2: (1 + 1 + 0)/3 * 100 - (2/3 + 0 + 0)/3 * 100.
    assert res.per_task["t1"].effect == pytest.approx(100 - 100 / 3)
    assert res.per_task["t2"].effect == pytest.approx(200 / 3 - 200 / 9)
    with pytest.raises(ValueError, match="metric mapping"):
        C.paired_bootstrap_mean_over_tasks(a, b, {"t1": C.MacroF1()}, B=50)


# ---------------------------------------------------------------- format_p


def test_format_p_values():
    assert C.format_p(0.0, 1000) == "p < 0.002"  # two-sided: one crossing of 1000 would give p = 0.002
    assert C.format_p(0.0, 1000, two_sided=False) == "p < 0.001"
    assert C.format_p(0.002, 1000) == "p = 0.002"
    assert C.format_p(0.0, 200) == "p < 0.01"
    assert C.format_p(0.0) == "p < 0.001"  # analytic p-value of 0 (underflow)
    assert C.format_p(0.0004) == "p < 0.001"
    assert C.format_p(0.0342) == "p = 0.034"
    assert C.format_p(1.0, 1000) == "p = 1.000"
    assert C.format_p(math.nan) == "p = n/a"
    with pytest.raises(ValueError):
        C.format_p(1.5)


def test_format_p_never_prints_zero():
    grid = [0.0, 1e-12, 1e-5, 0.0004, 0.00049, 0.0005, 0.00099, 0.001, 0.0015, 0.004, 0.02, 0.5, 1.0]
    for p, b in itertools.product(grid, [None, 10, 100, 1000, 10_000, 100_000]):
        text = C.format_p(p, b)
        number = text.split()[-1]
        assert float(number) > 0, (p, b, text)
        assert text.startswith(("p = ", "p < ")), text


# ---------------------------------------------------------------- paired bootstrap over tasks


def test_bootstrap_effect_is_the_mean_over_tasks_of_the_differences():
    # Per-example scores. t1: A 3/4, B 1/4 -> +1/2; t2: A 2/3, B 1/3 -> +1/3; mean over tasks 5/12.
    # Pooled over examples it would be 5/7 - 2/7 = 3/7: the test fails if tasks are pooled.
    a = {"t1": [1, 1, 1, 0], "t2": [1, 0, 1]}
    b = {"t1": [1, 0, 0, 0], "t2": [0, 0, 1]}
    res = C.paired_bootstrap_mean_over_tasks(a, b, B=200, seed=3)
    assert res.effect == pytest.approx(5 / 12)
    assert res.per_task["t1"].effect == pytest.approx(0.5) and res.per_task["t2"].effect == pytest.approx(
        1 / 3
    )
    assert (res.n_tasks, res.n_examples, res.B) == (2, 7, 200)
    assert res.metric_a == pytest.approx((3 / 4 + 2 / 3) / 2) and res.metric_b == pytest.approx(
        (1 / 4 + 1 / 3) / 2
    )
    # Replicate by replicate, the mean over tasks of the per-task replicates (the task set is fixed).
    stacked = np.vstack([res.task_replicates["t1"], res.task_replicates["t2"]])
    assert res.replicates == pytest.approx(stacked.mean(axis=0))


def test_bootstrap_macro_f1_by_hand():
    # t1: A exact -> 100; B all "a": F1_a = 2*2/(2+4) = 2/3, F1_b = 0 -> 33.33; delta 66.67.
    # t2: A [a, None]: F1_a = 1, F1_b = 0 -> 50; B [b, a] -> 0; delta 50. Mean over tasks 58.33.
    a = {"t1": (["a", "a", "b", "b"], ["a", "a", "b", "b"]), "t2": (["a", "b"], ["a", None])}
    b = {"t1": (["a", "a", "b", "b"], ["a", "a", "a", "a"]), "t2": (["a", "b"], ["b", "a"])}
    res = C.paired_bootstrap_mean_over_tasks(a, b, C.MacroF1(["a", "b"]), B=100, seed=0)
    assert res.per_task["t1"].effect == pytest.approx(100 - 100 / 3)
    assert res.per_task["t2"].effect == pytest.approx(50.0)
    assert res.effect == pytest.approx((200 / 3 + 50) / 2)


def test_identical_systems_give_zero_and_inconclusive():
    rng = np.random.default_rng(1)
    data = {
        f"t{i}": (list(rng.choice(["x", "y", "z"], 40)), list(rng.choice(["x", "y", None], 40)))
        for i in range(3)
    }
    res = C.paired_bootstrap_mean_over_tasks(data, data, C.MacroF1(["x", "y", "z"]), B=300, seed=0)
    assert res.effect == 0.0 and res.ci == (0.0, 0.0) and res.p_value == 1.0
    claim = C.judge("A beats B", "A vs B", res)
    assert claim.verdict == INC
    assert claim.task_count is not None and claim.task_count.k == 0


def test_bootstrap_pairs_the_rows():
    # A = B + 1 on every example: every paired replicate differs by exactly 1, so the interval is [1, 1]. An
    # unpaired resampling (different rows for A and B) would give a wide interval around 1.
    rng = np.random.default_rng(2)
    b = {t: rng.normal(0, 5, size=50) for t in ("t1", "t2")}
    a = {t: v + 1.0 for t, v in b.items()}
    res = C.paired_bootstrap_mean_over_tasks(a, b, B=500, seed=0)
    assert res.effect == pytest.approx(1.0)
    assert res.ci == pytest.approx((1.0, 1.0))
    assert C.judge("A beats B", "A vs B", res, metric="score").verdict == SUP


def _random_tasks(seed: int, n_tasks: int, n: int, labels=("a", "b", "c")):
    rng = np.random.default_rng(seed)
    a, b = {}, {}
    for t in range(n_tasks):
        gold = list(rng.choice(labels, n))
        pa = [g if rng.random() < 0.7 else rng.choice(labels) for g in gold]
        pb = [g if rng.random() < 0.6 else (None if rng.random() < 0.5 else "other") for g in gold]
        a[f"task{t}"], b[f"task{t}"] = (gold, pa), (gold, pb)
    return a, b


def test_bootstrap_is_deterministic_and_agrees_with_the_per_task_test():
    a, b = _random_tasks(0, 3, 60)
    labels = ["a", "b", "c"]
    r1 = C.paired_bootstrap_mean_over_tasks(a, b, C.MacroF1(labels), B=400, seed=5)
    r2 = C.paired_bootstrap_mean_over_tasks(a, b, C.MacroF1(labels), B=400, seed=5)
    r3 = C.paired_bootstrap_mean_over_tasks(a, b, C.MacroF1(labels), B=400, seed=6)
    assert np.array_equal(r1.replicates, r2.replicates) and r1.ci == r2.ci
    assert not np.array_equal(r1.replicates, r3.replicates)
    # A task's result is the single-task paired bootstrap with its own seed, whatever else is in the claim ...
    one = C.paired_bootstrap_mean_over_tasks(
        {"task1": a["task1"]}, {"task1": b["task1"]}, C.MacroF1(labels), B=400, seed=5
    )
    assert one.per_task["task1"] == r1.per_task["task1"]
    # ... and equals metrics.paired_bootstrap (scalar macro-F1, one resample at a time) with that seed.
    gold, pa = a["task1"]
    ref = M.paired_bootstrap(
        lambda g, p: M.macro_f1(g, p, labels),
        gold,
        pa,
        b["task1"][1],
        n_resamples=400,
        seed=C.task_seed(5, "task1"),
    )
    t = r1.per_task["task1"]
    assert t.effect == pytest.approx(ref["delta"]) and t.ci == pytest.approx(ref["ci"])
    assert t.p_value == pytest.approx(ref["p_value"])
    # A plain callable metric takes the slow path and gives the same numbers as the vectorised one.
    slow = C.paired_bootstrap_mean_over_tasks(a, b, lambda g, p: M.macro_f1(g, p, labels), B=400, seed=5)
    assert slow.replicates == pytest.approx(r1.replicates)


def test_macro_f1_matches_the_kit_metric():
    rng = np.random.default_rng(4)
    labels = ["a", "b", "c", "d"]  # "d" never gold: F1 0 pulls the mean down, as in metrics.macro_f1
    gold = list(rng.choice(labels[:3], 80))
    pred = [rng.choice([*labels, None, "junk"]) for _ in gold]
    assert C.MacroF1(labels)(gold, pred) == pytest.approx(M.macro_f1(gold, pred, labels))
    assert C.MacroF1()(gold, pred) == pytest.approx(M.macro_f1(gold, pred))
    assert C.Accuracy()(gold, pred) == pytest.approx(M.accuracy(gold, pred))


def test_bootstrap_rejects_unpaired_input():
    with pytest.raises(ValueError, match="different tasks"):
        C.paired_bootstrap_mean_over_tasks({"t1": [1, 0]}, {"t2": [1, 0]})
    with pytest.raises(ValueError, match="different gold"):
        C.paired_bootstrap_mean_over_tasks(
            {"t": (["a", "b"], ["a", "a"])}, {"t": (["b", "a"], ["a", "a"])}, C.MacroF1()
        )
    with pytest.raises(ValueError, match="differ"):
        C.paired_bootstrap_mean_over_tasks({"t": [1, 0, 1]}, {"t": [1, 0]})


def test_bootstrap_speed_15_tasks_300_rows():
    a, b = _random_tasks(1, 15, 300)
    start = time.perf_counter()
    res = C.paired_bootstrap_mean_over_tasks(a, b, C.MacroF1(["a", "b", "c"]), B=1000, seed=0)
    elapsed = time.perf_counter() - start
    assert res.n_examples == 4500 and res.replicates.shape == (1000,)
    assert elapsed < 10.0, f"{elapsed:.1f} s"  # well under 1 s on 2 CPUs; the bound only catches a slow path


def test_paired_macro_f1_test_is_not_an_accuracy_test():
    # 8 "a" + 2 "b". A answers "a" everywhere: accuracy 80, macro-F1 (8/9 + 0)/2 = 44.4.
    # B gets both "b" right but 3 "a" wrong (as "b"): accuracy 70, macro-F1 (10/13 + 4/7)/2 = 67.0.
    # McNemar (accuracy) favours A; the macro-F1 difference is negative.
    gold = ["a"] * 8 + ["b"] * 2
    pa = ["a"] * 10
    pb = ["a"] * 5 + ["b"] * 3 + ["b"] * 2
    res = C.paired_macro_f1_test(gold, pa, pb, ["a", "b"], B=500, seed=0)
    assert res.effect == pytest.approx(100 * (4 / 9 - (10 / 13 + 4 / 7) / 2))
    assert C.Accuracy()(gold, pa) - C.Accuracy()(gold, pb) == pytest.approx(10.0)


# ---------------------------------------------------------------- seeds


def test_combine_seeds_widens_when_seeds_disagree():
    noise = np.random.default_rng(0).normal(0, 0.3, size=2000)
    agree = [1.0 + noise] * 3
    disagree = [mu + noise for mu in (-1.0, 1.0, 3.0)]
    a = C.combine_seeds(agree, effects=[1.0, 1.0, 1.0], seed=1)
    d = C.combine_seeds(disagree, effects=[-1.0, 1.0, 3.0], seed=1)
    assert a.effect == d.effect == pytest.approx(1.0) and a.n_seeds == d.n_seeds == 3
    # Seeds that agree add nothing: the interval is the one seed's example-level interval.
    single = C.combine_seeds([1.0 + noise], effects=[1.0])
    assert a.ci == pytest.approx(single.ci)
    assert C.verdict_from_interval(*a.ci) == SUP
    width_a, width_d = a.ci[1] - a.ci[0], d.ci[1] - d.ci[0]
    assert width_d > width_a + 2.0
    assert C.verdict_from_interval(*d.ci) == INC  # one seed of three goes the other way


def test_combine_seeds_seed_level_variance():
    # No example noise; seed effects with sample variance s^2 = 4: the seed-level spread of the mean is s / sqrt(S).
    effects = [-1.0, 1.0, 3.0]
    reps = [np.full(20_000, e) for e in effects]
    res = C.combine_seeds(reps, effects=effects, seed=0)
    assert res.replicates.mean() == pytest.approx(1.0, abs=0.05)
    assert res.replicates.std() == pytest.approx(2.0 / math.sqrt(3), rel=0.05)


def test_paired_bootstrap_over_seeds_shares_example_resamples():
    # The same runs under three training seeds: the seeds agree exactly, and because every seed's bootstrap
    # resamples the same rows, the combined interval is the single run's interval (not narrowed by sqrt(3)).
    a, b = _random_tasks(3, 4, 80)
    metric = C.MacroF1(["a", "b", "c"])
    single = C.paired_bootstrap_mean_over_tasks(a, b, metric, B=500, seed=2)
    three = C.paired_bootstrap_over_seeds([a, a, a], [b, b, b], metric, B=500, seed=2)
    assert three.n_seeds == 3 and three.per_seed_effects == (single.effect,) * 3
    assert three.effect == pytest.approx(single.effect) and three.ci == pytest.approx(single.ci)
    assert three.per_task["task0"].ci == pytest.approx(single.per_task["task0"].ci)
    claim = C.judge("A beats B", "A vs B", three)
    assert claim.n_seeds == 3 and claim.n_tasks == 4 and claim.n_examples == 320


# ---------------------------------------------------------------- claims as text and JSON


def test_format_claim_one_line():
    claim = C.Claim(
        "tuning helps seen tasks",
        "tuned vs base",
        3.2,
        (1.1, 5.4),
        0.004,
        4500,
        15,
        3,
        metric="macro-F1",
        B=1000,
    )
    line = C.format_claim(claim)
    assert line == (
        "[SUPPORTED] tuning helps seen tasks: tuned vs base, macro-F1 +3.2 [95% CI +1.1, +5.4], p = 0.004; "
        "n = 4,500 examples, 15 tasks, 3 seeds"
    )
    zero_p = dataclasses.replace(claim, p_value=0.0, ci=(-0.5, 5.4), n_tasks=1, n_seeds=1)
    line = C.format_claim(zero_p)
    assert line.startswith("[INCONCLUSIVE]") and "p < 0.002" in line and "1 task, 1 seed" in line
    assert "\n" not in line


def test_claim_to_dict_is_json_ready():
    import json

    a, b = _random_tasks(5, 2, 30)
    claim = C.judge("A beats B", "A vs B", C.paired_bootstrap_mean_over_tasks(a, b, C.MacroF1(), B=100))
    d = json.loads(json.dumps(claim.to_dict()))
    assert d["verdict"] == claim.verdict and d["n_tasks"] == 2 and set(d["per_task"]) == {"task0", "task1"}
    assert d["task_count"]["n"] == 2


# ---------------------------------------------------------------- the stratified floor


def test_expected_stratified_macro_f1_two_rows_by_hand():
    # gold [a, b], prior (1/2, 1/2): draws ab, ba, aa, bb (each 1/4) give macro-F1 1, 0, 1/3, 1/3 -> 5/12.
    assert C.expected_stratified_macro_f1(["a", "b"], [0.5, 0.5]) == pytest.approx(500 / 12)
    assert C.expected_stratified_macro_f1(["a", "b"], {"a": 0.5, "b": 0.5}) == pytest.approx(500 / 12)


def test_expected_stratified_macro_f1_degenerate_prior_by_hand():
    # Prior all "a": every draw is "a" everywhere. F1_a = 2*1/(1+2) = 2/3, F1_b = 0 -> 33.33.
    assert C.expected_stratified_macro_f1(["a", "b"], {"a": 1.0, "b": 0.0}) == pytest.approx(100 / 3)
    # A label in the scored list with no gold rows counts F1 = 0 (kit semantics): (2/3 + 0 + 0) / 3.
    assert C.expected_stratified_macro_f1(["a", "b"], {"a": 1.0}, labels=["a", "b", "c"]) == pytest.approx(
        200 / 9
    )


def test_expected_stratified_macro_f1_matches_monte_carlo():
    gold = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    prior = {"a": 0.5, "b": 0.3, "c": 0.1, "d": 0.1}  # "d" is outside the scored labels: an invalid answer
    exact = C.expected_stratified_macro_f1(gold, prior, labels=["a", "b", "c"])
    mc = C.expected_stratified_macro_f1(gold, prior, n_draws=40_000, labels=["a", "b", "c"], seed=1)
    assert mc == pytest.approx(exact, abs=0.15)  # Monte Carlo SE about 0.03
    # Balanced two classes, many rows: close to (but below) 50.
    balanced = C.expected_stratified_macro_f1(["a", "b"] * 200, [0.5, 0.5])
    assert 49.0 < balanced < 50.0
    with pytest.raises(ValueError, match="sum to 1"):
        C.expected_stratified_macro_f1(gold, {"a": 0.5})
