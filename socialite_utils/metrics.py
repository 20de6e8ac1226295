"""Metrics for classification, regression, calibration and aggregation over tasks.

Pure numpy/scipy; every notebook (evaluation, baselines, error analysis) calls these names.

Scale convention, used everywhere in this module:
- Scores are PERCENTAGES in 0-100: macro-F1, accuracy, per-label precision/recall/F1, pooled accuracy
  (the paper reports e.g. "81.08"). Their standard errors and confidence intervals are in the same unit.
- Rates and probabilities are FRACTIONS in 0-1: ``invalid_rate``, p-values, confidences, expected
  calibration error and the per-bin accuracy of reliability diagrams (those are compared with confidences).
- Pearson r is in [-1, 1].

Invalid answers: a prediction of ``None`` (an unparseable generation) is always WRONG. For macro-F1 it is a
false negative for the gold class and a false positive for no class. A prediction that is a string outside
the scored label set is treated the same way (wrong, never a false positive of a scored class) and is
counted separately in ``n_out_of_labels`` and ``flags`` so it is never silently dropped.

Macro-F1 follows ``sklearn.metrics.f1_score(gold, pred, labels=labels, average="macro", zero_division=0)``:
- ``labels`` defaults to the sorted set of gold labels;
- the mean runs over exactly ``labels``; a class in ``labels`` with no gold support contributes F1 = 0
  (zero_division=0), which pulls the mean down. That case is flagged so the caller sees it;
- a single-class gold set is defined (macro-F1 is then that class's F1) and flagged.

Problems that are not errors (constant input for Pearson, nan bootstrap resamples) raise a
:class:`MetricWarning` and are recorded in the ``flags`` list of the result dicts.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "METRICS",
    "MetricSpec",
    "MetricWarning",
    "accuracy",
    "aggregate",
    "bootstrap_ci",
    "collect_warnings",
    "expected_calibration_error",
    "macro_f1",
    "mcnemar",
    "metric_names",
    "paired_bootstrap",
    "paired_bootstrap_task_mean",
    "prediction_concentration",
    "pearson_r",
    "register_metric",
    "reliability_bins",
    "compute_classification",
    "compute_correctness",
    "compute_regression",
]


def _scipy_stats() -> Any:
    """scipy.stats, imported on first use (about 0.6 s): reading and fetching data never needs it."""
    from scipy import stats

    return stats


class MetricWarning(UserWarning):
    """A metric was computed but is degenerate (nan, constant input, dropped resamples)."""


# ---------------------------------------------------------------- the metric table


@dataclass(frozen=True)
class MetricSpec:
    """One entry of the metric table: how a metric is computed and how to read it.

    ``compute`` is, for a classification metric, ``f(gold, pred, labels=None) -> value``; for a regression metric
    ``f(x, y) -> value``; for a generation metric ``f(sources, predictions, references, **options) -> g`` where
    ``g(indices) -> corpus value`` (so a bootstrap resample costs a weighted sum, see text_metrics).
    """

    name: str
    kind: str  # one of METRIC_KINDS
    compute: Callable[..., Any]
    scale: str  # "percent" (0-100) or "correlation" (-1..1)
    higher_is_better: bool = True
    ci: str = "percentile bootstrap over examples"
    label: str = ""  # the name tables and figures print


METRIC_KINDS = ("classification", "regression", "generation")
METRIC_SCALES = ("percent", "correlation")
METRICS: dict[str, MetricSpec] = {}


def register_metric(
    name: str,
    *,
    kind: str,
    scale: str,
    higher_is_better: bool = True,
    ci: str = "percentile bootstrap over examples",
    label: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the decorated function to :data:`METRICS` under ``name``: adding a metric is this one entry (task
    YAML validation, the writing study's scoring and the reports read the table)."""
    if kind not in METRIC_KINDS:
        raise ValueError(f"metric {name!r}: kind {kind!r} is not one of {METRIC_KINDS}")
    if scale not in METRIC_SCALES:
        raise ValueError(f"metric {name!r}: scale {scale!r} is not one of {METRIC_SCALES}")

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice")
        METRICS[name] = MetricSpec(name, kind, fn, scale, higher_is_better, ci, label or name)
        return fn

    return add


def metric_names(kind: str) -> tuple[str, ...]:
    """The registered metrics of one kind, in registration order."""
    return tuple(name for name, spec in METRICS.items() if spec.kind == kind)


def collect_warnings(fn: Callable[..., Any], *args: Any, flags: list[str], **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; the :class:`MetricWarning` warnings it raises are appended to ``flags`` (as text)
    instead of reaching the console; any other warning is passed on unchanged. The one place the kit turns metric
    warnings into a result's flags."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MetricWarning)
        result = fn(*args, **kwargs)
    for w in caught:
        if issubclass(w.category, MetricWarning):
            flags.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return result


# --------------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------------


def _check_same_length(**arrays: Sequence[Any]) -> int:
    """Return the common length of the named sequences or raise naming every length."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"length mismatch: {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError(f"empty input: {', '.join(lengths)} have length 0")
    return n


def _check_gold(gold: Sequence[Hashable]) -> None:
    """Gold labels must all be present; a None gold label is a data bug, not an invalid answer."""
    for i, g in enumerate(gold):
        if g is None:
            raise ValueError(f"gold label at index {i} is None; gold labels must be set")


def _resolve_labels(gold: Sequence[Hashable], labels: Sequence[Hashable] | None) -> list[Hashable]:
    """Scored label list: caller's ``labels`` (checked) or the sorted set of gold labels."""
    if labels is None:
        return sorted(set(gold))
    labels = list(labels)
    if len(set(labels)) != len(labels):
        dupes = sorted({str(x) for x in labels if labels.count(x) > 1})
        raise ValueError(f"labels contain duplicates: {dupes}")
    known = set(labels)
    unknown = [(i, g) for i, g in enumerate(gold) if g not in known]
    if unknown:
        first_i, first_g = unknown[0]
        raise ValueError(
            f"{len(unknown)} gold label(s) not in labels={labels}; first at index {first_i}: {first_g!r}"
        )
    return labels


def _encode(gold: Sequence[Hashable], pred: Sequence[Hashable | None], labels: list[Hashable]):
    """Integer codes: gold in 0..K-1, pred in 0..K-1 or -1 (None / outside ``labels``)."""
    index = {lab: k for k, lab in enumerate(labels)}
    g = np.fromiter((index[x] for x in gold), dtype=np.int64, count=len(gold))
    p = np.fromiter(
        (index.get(x, -1) if x is not None else -1 for x in pred), dtype=np.int64, count=len(pred)
    )
    return g, p


def _per_class_f1(tp: np.ndarray, n_gold: np.ndarray, n_pred: np.ndarray):
    """Precision, recall, F1 (fractions) with sklearn's zero_division=0; works on any trailing shape."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 0.0)
        recall = np.where(n_gold > 0, tp / np.maximum(n_gold, 1), 0.0)
        # F1 = 2tp / (2tp + fp + fn) = 2tp / (n_gold + n_pred); 0 when both are empty (zero_division=0).
        denom = n_gold + n_pred
        f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return precision, recall, f1


# --------------------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------------------


def compute_correctness(gold: Sequence[Hashable], pred: Sequence[Hashable | None]) -> np.ndarray:
    """Per-example correctness (bool array); ``None`` predictions are wrong. Feeds McNemar and aggregate."""
    _check_same_length(gold=gold, pred=pred)
    _check_gold(gold)
    return np.fromiter(
        (p is not None and p == g for g, p in zip(gold, pred, strict=True)), dtype=bool, count=len(gold)
    )


@register_metric("accuracy", kind="classification", scale="percent", label="accuracy")
def accuracy(gold: Sequence[Hashable], pred: Sequence[Hashable | None]) -> float:
    """Exact-match accuracy in percent (0-100); ``None`` predictions count as wrong."""
    return float(100.0 * compute_correctness(gold, pred).mean())


@register_metric("macro_f1", kind="classification", scale="percent", label="macro-F1")
def macro_f1(
    gold: Sequence[Hashable], pred: Sequence[Hashable | None], labels: Sequence[Hashable] | None = None
) -> float:
    """Macro-F1 in percent (0-100) over ``labels`` (default: sorted gold labels), sklearn semantics.

    ``None`` predictions are false negatives for their gold class and false positives for no class.
    """
    _check_same_length(gold=gold, pred=pred)
    _check_gold(gold)
    labs = _resolve_labels(gold, labels)
    g, p = _encode(gold, pred, labs)
    k = len(labs)
    tp = np.bincount(g[p == g], minlength=k)
    _, _, f1 = _per_class_f1(tp, np.bincount(g, minlength=k), np.bincount(p[p >= 0], minlength=k))
    return float(100.0 * f1.mean())


def compute_classification(
    gold: Sequence[Hashable], pred: Sequence[Hashable | None], labels: Sequence[Hashable] | None = None
) -> dict:
    """Full classification report for one task.

    Returns ``{"n", "macro_f1", "accuracy", "invalid_rate", "n_invalid", "n_out_of_labels", "labels",
    "per_label": {label: {"precision", "recall", "f1", "support"}}, "flags": [str, ...]}``.
    ``macro_f1``, ``accuracy`` and per-label precision/recall/F1 are percentages (0-100);
    ``invalid_rate`` (share of ``None`` predictions) is a fraction (0-1).
    """
    n = _check_same_length(gold=gold, pred=pred)
    _check_gold(gold)
    labs = _resolve_labels(gold, labels)
    g, p = _encode(gold, pred, labs)
    k = len(labs)
    tp = np.bincount(g[p == g], minlength=k)
    n_gold = np.bincount(g, minlength=k)
    n_pred = np.bincount(p[p >= 0], minlength=k)
    precision, recall, f1 = _per_class_f1(tp, n_gold, n_pred)

    n_invalid = sum(1 for x in pred if x is None)
    n_out = int((p < 0).sum()) - n_invalid
    flags: list[str] = []
    present = int((n_gold > 0).sum())
    if present == 1:
        flags.append(f"single_class_gold: every gold label is {labs[int(np.argmax(n_gold))]!r}")
    for lab, s in zip(labs, n_gold, strict=True):
        if s == 0:
            flags.append(f"no_gold_support: label {lab!r} has 0 gold examples; its F1=0 is in the mean")
    if n_out:
        known = set(labs)
        outside = sorted({str(x) for x in pred if x is not None and x not in known})
        flags.append(f"out_of_labels: {n_out} prediction(s) outside labels (counted wrong): {outside[:10]}")
    if n_invalid:
        flags.append(f"invalid: {n_invalid} of {n} predictions are None (counted wrong)")

    return {
        "n": n,
        "macro_f1": float(100.0 * f1.mean()),
        "accuracy": float(100.0 * (p == g).mean()),
        "invalid_rate": n_invalid / n,
        "n_invalid": n_invalid,
        "n_out_of_labels": n_out,
        "labels": labs,
        "per_label": {
            lab: {
                "precision": float(100.0 * precision[i]),
                "recall": float(100.0 * recall[i]),
                "f1": float(100.0 * f1[i]),
                "support": int(n_gold[i]),
            }
            for i, lab in enumerate(labs)
        },
        "flags": flags,
    }


# --------------------------------------------------------------------------------------------------------
# Regression
# --------------------------------------------------------------------------------------------------------


@register_metric("pearson_r", kind="regression", scale="correlation", label="Pearson r")
def pearson_r(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation in [-1, 1]; nan plus a :class:`MetricWarning` for constant input or n < 2."""
    _check_same_length(x=x, y=y)
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    bad = np.flatnonzero(~(np.isfinite(xa) & np.isfinite(ya)))
    if bad.size:
        raise ValueError(f"pearson_r: {bad.size} non-finite value(s); first at index {int(bad[0])}")
    if xa.size < 2:
        warnings.warn("pearson_r: fewer than 2 pairs; returning nan", MetricWarning, stacklevel=2)
        return math.nan
    if np.ptp(xa) == 0 or np.ptp(ya) == 0:
        which = "x" if np.ptp(xa) == 0 else "y"
        warnings.warn(f"pearson_r: constant input ({which}); returning nan", MetricWarning, stacklevel=2)
        return math.nan
    # scipy's own warnings (near-constant input) come back as MetricWarnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = float(_scipy_stats().pearsonr(xa, ya).statistic)  # clipped to [-1, 1] by scipy
    for w in caught:
        warnings.warn(f"pearson_r: {w.message}", MetricWarning, stacklevel=2)
    return r


def compute_regression(
    gold_scores: Sequence[float],
    pred_scores: Sequence[float | None] | None,
    gold_bin: Sequence[str],
    pred_bin: Sequence[str | None],
    labels: Sequence[str] = ("low", "high"),
) -> dict:
    """Regression task report: Pearson r on raw scores plus the binarized classification report.

    ``pred_scores`` may be ``None`` (a generative model that only names a bin) or contain ``None`` entries
    (unparseable); Pearson is then computed on the valid pairs only, ``pearson_n`` says how many, and a flag
    records the rest. All keys of :func:`compute_classification` are included (``macro_f1`` is the binarized
    macro-F1, percent).
    """
    n = _check_same_length(gold_scores=gold_scores, gold_bin=gold_bin, pred_bin=pred_bin)
    result = compute_classification(gold_bin, pred_bin, labels=labels)
    flags = result["flags"]
    if pred_scores is None:
        r, pearson_n = math.nan, 0
        flags.append("pearson: no predicted scores given; pearson_r is nan")
    else:
        _check_same_length(gold_scores=gold_scores, pred_scores=pred_scores)
        keep = [i for i, s in enumerate(pred_scores) if s is not None]
        pearson_n = len(keep)
        if pearson_n < n:
            flags.append(
                f"pearson: {n - pearson_n} of {n} predicted scores are None; r uses {pearson_n} pairs"
            )
        r = (
            collect_warnings(
                pearson_r, [gold_scores[i] for i in keep], [pred_scores[i] for i in keep], flags=flags
            )
            if keep
            else math.nan
        )
        if not keep:
            flags.append("pearson: every predicted score is None; pearson_r is nan")
    return {"pearson_r": r, "pearson_n": pearson_n, **result}


# --------------------------------------------------------------------------------------------------------
# Resampling statistics
# --------------------------------------------------------------------------------------------------------


def _as_arrays(arrays: Sequence[Sequence[Any]]) -> list[np.ndarray]:
    """numpy views for fancy indexing; object dtype keeps None and mixed types intact."""
    out = []
    for a in arrays:
        arr = np.asarray(a)
        if arr.dtype.kind in "OUS" or arr.ndim != 1:
            arr = np.empty(len(a), dtype=object)
            arr[:] = list(a)
        out.append(arr)
    return out


def _resample_stats(
    metric_fn: Callable[..., float], arrays: list[np.ndarray], idx: np.ndarray, vectorized: bool
) -> np.ndarray:
    """Metric on every resample (rows of ``idx``); one call on 2-D arrays when ``vectorized``."""
    if vectorized:
        return np.asarray(metric_fn(*(a[idx] for a in arrays)), dtype=float).reshape(len(idx))
    # Object arrays go back as lists so metric_fn sees the same types as on the full data.
    conv = [(lambda v: v.tolist()) if a.dtype == object else (lambda v: v) for a in arrays]
    # Per-resample degeneracy warnings (e.g. constant Pearson input) would repeat hundreds of times; the nan
    # resamples they produce are counted and reported once by _nan_quantiles instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        return np.fromiter(
            (metric_fn(*(c(a[row]) for c, a in zip(conv, arrays, strict=True))) for row in idx),
            dtype=float,
            count=len(idx),
        )


def _nan_quantiles(values: np.ndarray, qs: tuple[float, float], what: str) -> tuple[float, float]:
    """Quantiles ignoring nan resamples, with a warning that counts them."""
    n_nan = int(np.isnan(values).sum())
    if n_nan == values.size:
        warnings.warn(f"{what}: every resample gave nan; CI is (nan, nan)", MetricWarning, stacklevel=3)
        return math.nan, math.nan
    if n_nan:
        warnings.warn(
            f"{what}: {n_nan} of {values.size} resamples gave nan and were ignored",
            MetricWarning,
            stacklevel=3,
        )
    lo, hi = np.nanquantile(values, qs)
    return float(lo), float(hi)


def bootstrap_values(
    metric_fn: Callable[..., float],
    *arrays: Sequence[Any],
    n_resamples: int = 1000,
    seed: int = 0,
    vectorized: bool = False,
) -> np.ndarray:
    """``metric_fn(*arrays)`` on ``n_resamples`` bootstrap resamples of the example indices (jointly for all
    arrays), as a float array; nan where a resample is degenerate. :func:`bootstrap_ci` takes its percentiles;
    keeping the values lets :func:`aggregate` combine tasks resample by resample.

    Indices come from ``numpy.random.default_rng(seed)`` (same seed -> same values). With ``vectorized=True``
    ``metric_fn`` is called once with 2-D arrays of shape ``(n_resamples, n)`` and must return one value
    per row (e.g. ``lambda c: 100 * c.mean(axis=1)`` on correctness); otherwise it is called per resample.
    """
    if not arrays:
        raise ValueError("bootstrap needs at least one array")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    n = _check_same_length(**{f"arrays[{i}]": a for i, a in enumerate(arrays)})
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    return _resample_stats(metric_fn, _as_arrays(arrays), idx, vectorized)


def percentile_ci(
    values: Sequence[float], alpha: float = 0.05, what: str = "bootstrap"
) -> tuple[float, float]:
    """``(1 - alpha)`` percentile interval of bootstrap values, ignoring (and warning about) nan ones."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return _nan_quantiles(np.asarray(values, dtype=float), (alpha / 2, 1 - alpha / 2), what)


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: Sequence[Any],
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    vectorized: bool = False,
) -> tuple[float, float]:
    """Percentile bootstrap ``(1 - alpha)`` CI of ``metric_fn(*arrays)``, resampling example indices jointly
    (see :func:`bootstrap_values` for ``seed`` and ``vectorized``)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    values = bootstrap_values(metric_fn, *arrays, n_resamples=n_resamples, seed=seed, vectorized=vectorized)
    return percentile_ci(values, alpha, "bootstrap_ci")


def task_seed(seed: int, task: str) -> int:
    """A per-task bootstrap seed derived from the run's seed: tasks are resampled independently of each other
    (the same seed everywhere would draw the same index pattern for every task of equal size), and base and
    tuned predictions of one task still share their draws (a paired comparison)."""
    digest = hashlib.sha256(f"{seed}|{task}|bootstrap".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def paired_bootstrap(
    metric_fn: Callable[..., float],
    gold: Sequence[Any],
    pred_a: Sequence[Any],
    pred_b: Sequence[Any],
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """Paired bootstrap of ``metric_fn(gold, pred_a) - metric_fn(gold, pred_b)`` (same indices for both).

    Returns ``{"delta", "ci", "p_value", "metric_a", "metric_b"}``. ``ci`` is the percentile CI of the
    delta. ``p_value`` is two-sided: twice the share of resamples whose delta has the opposite sign of the
    observed delta (ties at 0 count as flips), capped at 1; it is 1.0 when the observed delta is 0.
    """
    n = _check_same_length(gold=gold, pred_a=pred_a, pred_b=pred_b)
    metric_a = float(metric_fn(gold, pred_a))
    metric_b = float(metric_fn(gold, pred_b))
    delta = metric_a - metric_b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    g, a, b = _as_arrays([gold, pred_a, pred_b])
    deltas = _resample_stats(lambda gg, aa, bb: metric_fn(gg, aa) - metric_fn(gg, bb), [g, a, b], idx, False)
    ci = _nan_quantiles(deltas, (alpha / 2, 1 - alpha / 2), "paired_bootstrap")
    p_value = _two_sided_p(delta, deltas)
    return {"delta": delta, "ci": ci, "p_value": p_value, "metric_a": metric_a, "metric_b": metric_b}


def _two_sided_p(delta: float, deltas: np.ndarray) -> float:
    """Twice the share of resampled deltas on the other side of 0 than the observed one (ties flip), <= 1."""
    valid = deltas[~np.isnan(deltas)]
    if delta == 0 or valid.size == 0:
        return 1.0
    flips = (valid <= 0) if delta > 0 else (valid >= 0)
    return float(min(1.0, 2.0 * flips.mean()))


def paired_bootstrap_task_mean(tasks: Sequence[dict], n_resamples: int = 1000, alpha: float = 0.05) -> dict:
    """Paired bootstrap of the MEAN OVER TASKS of ``metric_fn(gold, pred_a) - metric_fn(gold, pred_b)``.

    Each entry of ``tasks`` holds ``task``, ``metric_fn``, ``gold``, ``pred_a``, ``pred_b`` (same examples, same
    order) and ``seed``. Each task's test examples are resampled with its own seed (the indices
    :func:`paired_bootstrap` draws for that seed, so a task's delta here and there agree); the task set is fixed,
    and the per-task deltas are averaged resample by resample. Returns ``{"delta", "ci", "p_value", "metric_a",
    "metric_b", "n_tasks", "per_task"}`` with ``metric_a``/``metric_b`` the means over tasks and ``per_task`` the
    observed delta per task.
    """
    if not tasks:
        raise ValueError("paired_bootstrap_task_mean: no tasks")
    boots, obs_a, obs_b, per_task = [], [], [], {}
    for t in tasks:
        fn, gold, a, b = t["metric_fn"], t["gold"], t["pred_a"], t["pred_b"]
        n = _check_same_length(gold=gold, pred_a=a, pred_b=b)
        obs_a.append(float(fn(gold, a)))
        obs_b.append(float(fn(gold, b)))
        per_task[t["task"]] = obs_a[-1] - obs_b[-1]
        idx = np.random.default_rng(t["seed"]).integers(0, n, size=(n_resamples, n))
        boots.append(
            _resample_stats(
                lambda gg, aa, bb, f=fn: f(gg, aa) - f(gg, bb), _as_arrays([gold, a, b]), idx, False
            )
        )
    deltas = np.vstack(boots).mean(axis=0)
    delta = float(np.mean(obs_a) - np.mean(obs_b))
    return {
        "delta": delta,
        "ci": _nan_quantiles(deltas, (alpha / 2, 1 - alpha / 2), "paired_bootstrap_task_mean"),
        "p_value": _two_sided_p(delta, deltas),
        "metric_a": float(np.mean(obs_a)),
        "metric_b": float(np.mean(obs_b)),
        "n_tasks": len(tasks),
        "per_task": per_task,
    }


# A model whose most frequent answer covers more than this share of a task's examples (with two or more gold
# labels present) has collapsed onto one answer: it reproduces a label prior, not the task.
COLLAPSE_SHARE = 0.9


def prediction_concentration(
    gold: Sequence[Hashable], pred: Sequence[Hashable | None], threshold: float = COLLAPSE_SHARE
) -> dict:
    """How much of a task one answer covers: ``{"top_prediction", "top_prediction_share", "n_gold_labels",
    "collapsed"}``.

    Invalid answers (``None``) count as one answer, ``"<invalid>"``; ties go to the answer seen first.
    ``collapsed`` is True when the gold set has two or more labels and the top share exceeds ``threshold``.
    """
    n = _check_same_length(gold=gold, pred=pred)
    counts = Counter("<invalid>" if p is None else p for p in pred)
    top, k = counts.most_common(1)[0]
    n_gold = len(set(gold))
    share = k / n
    return {
        "top_prediction": top,
        "top_prediction_share": share,
        "n_gold_labels": n_gold,
        "collapsed": bool(n_gold >= 2 and share > threshold),
    }


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict:
    """McNemar test on paired per-example correctness of two systems: a test of ACCURACY. It does not test a
    macro-F1 difference (a system can win it by answering the majority label more often while its macro-F1
    falls); for that use :func:`socialite_utils.claims.paired_macro_f1_test`.

    ``b`` = A right & B wrong, ``c`` = A wrong & B right. When ``b + c < 25`` the exact two-sided binomial
    test is used (``statistic`` = min(b, c)); otherwise chi-square with continuity correction,
    ``(|b - c| - 1)^2 / (b + c)`` on 1 df. Returns ``{"b", "c", "statistic", "p_value", "method"}``.
    """
    _check_same_length(correct_a=correct_a, correct_b=correct_b)
    a = np.asarray(correct_a)
    bb = np.asarray(correct_b)
    for name, arr in (("correct_a", a), ("correct_b", bb)):
        if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must be booleans (or 0/1); got values {np.unique(arr)[:5].tolist()}")
    a, bb = a.astype(bool), bb.astype(bool)
    b = int((a & ~bb).sum())
    c = int((~a & bb).sum())
    if b + c < 25:
        stat = float(min(b, c))
        # Two-sided exact p: double the smaller tail of Binomial(b + c, 1/2); b + c = 0 gives p = 1.
        p = 1.0 if b + c == 0 else float(min(1.0, 2.0 * _scipy_stats().binom.cdf(min(b, c), b + c, 0.5)))
        method = "exact"
    else:
        stat = (abs(b - c) - 1) ** 2 / (b + c)
        p = float(_scipy_stats().chi2.sf(stat, df=1))
        method = "chi2_cc"
    return {"b": b, "c": c, "statistic": stat, "p_value": p, "method": method}


# --------------------------------------------------------------------------------------------------------
# Aggregation over tasks
# --------------------------------------------------------------------------------------------------------


# Below this many tasks a t-interval over tasks is flagged as very wide (t_0.975 on 4 df is 2.8).
FEW_TASKS = 5


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, tuple[float, float]]:
    """Mean, standard error (sample std with ddof=1 / sqrt(k)) and the t-based CI on k - 1 df of ``values``;
    se and CI are nan for fewer than 2 values. The one t-interval of the kit (task means, claims over tasks)."""
    v = np.asarray(values, dtype=float)
    k = len(v)
    if k == 0:
        raise ValueError("t_interval: no values")
    mean = float(v.mean())
    if k < 2:
        return mean, math.nan, (math.nan, math.nan)
    se = float(v.std(ddof=1) / math.sqrt(k))
    half = float(_scipy_stats().t.ppf(0.5 + confidence / 2, df=k - 1) * se)
    return mean, se, (mean - half, mean + half)


def aggregate(task_results: list[dict], by: str) -> dict:
    """Summarise per-task results by a key (``"group"``, ``"category"``; ``"all"`` pools every task).

    Each task result needs ``task``, ``n``, ``macro_f1`` (percent) and the ``by`` key; ``correct`` (per-example
    booleans, length ``n``) is optional. Per group value returns:
    - ``macro_over_tasks``: unweighted mean of the tasks' macro-F1 (percent), with ``macro_over_tasks_se`` =
      sample std (ddof=1) / sqrt(k) and a t-based 95% CI ``macro_over_tasks_ci`` on k - 1 df (nan for k = 1,
      flagged). This is the standard error of the task mean, as lm-evaluation-harness shows for groups.
    - ``pooled_accuracy``: accuracy over all examples of the group's tasks (percent), with
      ``pooled_accuracy_se`` = sqrt(p(1-p)/(N-1)) (lm-eval's sample-std/sqrt(N)); None if any task lacks
      ``correct`` (flagged, naming the tasks).
    - ``macro_over_tasks_example_ci``: 95% percentile CI of the same mean when each task's TEST EXAMPLES are
      resampled and the task set is fixed: the mean over tasks of each task's ``macro_f1_boot`` values (bootstrap
      replicates of its macro-F1, equal count for every task, drawn independently per task), resample by
      resample. It answers "how much would this number move with another test sample of these tasks" and stays
      inside [0, 100]; the t-CI answers "... with other tasks of this kind", which needs many tasks (with 2 or 3
      it is very wide; flagged ``few_tasks``). None when any task lacks ``macro_f1_boot``.
    - ``n_tasks``, ``n_examples`` (sum of ``n``), ``tasks`` (names) and ``flags``.
    """
    groups = _group_task_results(task_results, by)
    return {key: _aggregate_group(key, trs) for key, trs in groups.items()}


def _group_task_results(task_results: list[dict], by: str) -> dict[Any, list[dict]]:
    """The task results per value of ``by`` (checked: required keys, ``correct`` of length ``n``)."""
    if not task_results:
        raise ValueError("aggregate: task_results is empty")
    groups: dict[Any, list[dict]] = {}
    for i, tr in enumerate(task_results):
        missing = [k for k in ("task", "n", "macro_f1") if k not in tr]
        if by != "all" and by not in tr:
            missing.append(by)
        if missing:
            raise ValueError(f"aggregate: task_results[{i}] ({tr.get('task', '?')}) lacks key(s) {missing}")
        if tr.get("correct") is not None and len(tr["correct"]) != tr["n"]:
            raise ValueError(
                f"aggregate: task {tr['task']!r} has n={tr['n']} but {len(tr['correct'])} 'correct' entries"
            )
        groups.setdefault("all" if by == "all" else tr[by], []).append(tr)
    return groups


def _aggregate_group(key: Any, trs: list[dict]) -> dict:
    """One group's summary (see :func:`aggregate`)."""
    flags: list[str] = []
    f1s = np.array([float(t["macro_f1"]) for t in trs])
    k = len(trs)
    mean, se, ci = t_interval(f1s)
    if k == 1:
        flags.append("single_task: standard error and CI undefined (k=1)")
    if 1 < k < FEW_TASKS:
        flags.append(
            f"few_tasks: the t-CI over {k} tasks is very wide (t on {k - 1} df); "
            "macro_over_tasks_example_ci shows test-sample noise only"
        )
    boots = [t.get("macro_f1_boot") for t in trs]
    example_ci: tuple[float, float] | None = None
    if all(b is not None for b in boots):
        sizes = {len(b) for b in boots}
        if len(sizes) != 1:
            raise ValueError(
                f"aggregate: tasks {[t['task'] for t in trs]} have bootstrap value counts {sizes}"
            )
        example_ci = percentile_ci(np.vstack(boots).mean(axis=0), what=f"aggregate {key!r} example CI")

    lacking = [t["task"] for t in trs if t.get("correct") is None]
    if lacking:
        pooled = pooled_se = None
        pooled_n = 0
        flags.append(f"no_pooled: task(s) without per-example 'correct': {lacking}")
    else:
        correct = np.concatenate([np.asarray(t["correct"], dtype=bool) for t in trs])
        pooled_n = int(correct.size)
        p = float(correct.mean())
        pooled = 100.0 * p
        pooled_se = 100.0 * math.sqrt(p * (1 - p) / (pooled_n - 1)) if pooled_n > 1 else math.nan

    return {
        "n_tasks": k,
        "n_examples": int(sum(int(t["n"]) for t in trs)),
        "tasks": [t["task"] for t in trs],
        "macro_over_tasks": mean,
        "macro_over_tasks_se": se,
        "macro_over_tasks_ci": ci,
        "macro_over_tasks_example_ci": example_ci,
        "pooled_accuracy": pooled,
        "pooled_accuracy_se": pooled_se,
        "pooled_n": pooled_n,
        "flags": flags,
    }


# --------------------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------------------


def _check_calibration(confidences: Sequence[float], correct: Sequence[bool], n_bins: int):
    _check_same_length(confidences=confidences, correct=correct)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf = np.asarray(confidences, dtype=float)
    bad = np.flatnonzero(~np.isfinite(conf) | (conf < 0) | (conf > 1))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{bad.size} confidence(s) outside [0, 1]; first at index {i}: {conf[i]}")
    return conf, np.asarray(correct, dtype=float)


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> list[dict]:
    """Equal-width confidence bins on [0, 1] for reliability diagrams.

    Bin i covers ``(lo, hi]`` (the first bin also takes confidence 0). Each dict: ``lo``, ``hi``,
    ``mean_confidence``, ``accuracy`` (fractions; nan for an empty bin) and ``count``. All bins are returned,
    empty ones included, so the list always has ``n_bins`` entries.
    """
    conf, corr = _check_calibration(confidences, correct, n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") puts c == edge_i into bin i-1, i.e. right-closed bins; 0 is clipped to bin 0.
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    conf_sum = np.bincount(which, weights=conf, minlength=n_bins)
    corr_sum = np.bincount(which, weights=corr, minlength=n_bins)
    bins = []
    for i in range(n_bins):
        c = int(counts[i])
        bins.append(
            {
                "lo": float(edges[i]),
                "hi": float(edges[i + 1]),
                "mean_confidence": float(conf_sum[i] / c) if c else math.nan,
                "accuracy": float(corr_sum[i] / c) if c else math.nan,
                "count": c,
            }
        )
    return bins


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10
) -> float:
    """ECE as a fraction (0-1): sum over bins of (count / N) * |accuracy - mean confidence|."""
    bins = reliability_bins(confidences, correct, n_bins)
    n = sum(b["count"] for b in bins)
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["mean_confidence"]) for b in bins if b["count"]))
