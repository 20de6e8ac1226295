"""The library-backed statistics against values worked out by hand: the Wilson interval
(scipy.stats.binomtest), Pearson's r (scipy.stats.pearsonr inside the kit's warnings) and the one t-interval."""

from __future__ import annotations

import math
import warnings

import pytest

from socialite_utils import metrics as M
from socialite_utils.analysis.error_slices import wilson_interval

Z = 1.959963984540054  # the 97.5% normal quantile


def test_wilson_interval_by_hand():
    # k = 7 of n = 10: centre (p + z^2/2n) / (1 + z^2/n), half z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)
    p, n = 0.7, 10
    denom = 1 + Z * Z / n
    centre = (p + Z * Z / (2 * n)) / denom
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / denom
    assert wilson_interval(7, 10) == pytest.approx((100 * (centre - half), 100 * (centre + half)))
    assert wilson_interval(7, 10) == pytest.approx((39.678, 89.221), abs=1e-3)
    # k = 0: the lower end is 0 and the upper 2 (z^2/2n) / (1 + z^2/n) = 0.4345 for n = 5
    lo, hi = wilson_interval(0, 5)
    assert lo == pytest.approx(0.0, abs=1e-12)
    assert hi == pytest.approx(100 * (Z * Z / 5) / (1 + Z * Z / 5))
    assert wilson_interval(0, 0) is None


def test_pearson_r_by_hand_and_its_warnings():
    # x - mean = [-.1, .1, -.2, .2], y - mean = [-1.5, -.5, .5, 1.5]: r = 0.3 / sqrt(0.1 * 5)
    assert M.pearson_r([0.4, 0.6, 0.3, 0.7], [1, 2, 3, 4]) == pytest.approx(0.3 / math.sqrt(0.5))
    assert M.pearson_r([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    with pytest.warns(M.MetricWarning, match="constant input"):
        assert math.isnan(M.pearson_r([1, 1, 1], [1, 2, 3]))
    with pytest.warns(M.MetricWarning, match="fewer than 2"):
        assert math.isnan(M.pearson_r([1], [2]))
    # scipy's own warning comes back as the kit's MetricWarning (so compute_regression turns it into a flag)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        M.pearson_r([1e6, 1e6, 1e6, 1e6 + 1e-9], [1, 2, 3, 4])
    assert [w.category for w in caught] == [M.MetricWarning]
    assert "nearly constant" in str(caught[0].message)


def test_one_t_interval_by_hand():
    # [1, 2, 3]: mean 2, sd 1, se 1/sqrt(3), t(0.975, 2 df) = 4.302653
    mean, se, (lo, hi) = M.t_interval([1, 2, 3])
    assert (mean, se) == pytest.approx((2.0, 1 / math.sqrt(3)))
    assert (lo, hi) == pytest.approx((2 - 4.302653 / math.sqrt(3), 2 + 4.302653 / math.sqrt(3)), abs=1e-6)
    mean, se, ci = M.t_interval([5.0])
    assert mean == 5.0 and math.isnan(se) and all(math.isnan(c) for c in ci)
    with pytest.raises(ValueError, match="no values"):
        M.t_interval([])
    # the aggregates' CI over tasks is this t interval
    agg = M.aggregate(
        [{"task": t, "n": 1, "macro_f1": f, "group": "g"} for t, f in zip("abc", (1, 2, 3), strict=True)],
        "group",
    )
    assert agg["g"]["macro_over_tasks_ci"] == pytest.approx([lo, hi])
