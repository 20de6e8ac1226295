"""Claims: one vocabulary and one decision rule for every "A beats B" statement of the three studies.

A claim is an effect with a direction ("tuned beats base": tuned - base > 0), a point estimate, a 95% interval,
a p-value and a verdict. The verdict follows ONE rule, :func:`verdict_from_interval`:

- ``SUPPORTED``: the interval of the claimed effect excludes 0 on the claimed side;
- ``CONTRADICTED``: it excludes 0 on the other side;
- ``INCONCLUSIVE``: it contains or touches 0 (or is undefined).

The intervals are paired bootstraps over test examples (the same resampled rows for both systems), stratified by
task when a claim averages over tasks (:func:`paired_bootstrap_mean_over_tasks`), and two-level over training
seeds and examples when a claim averages over seeds (:func:`combine_seeds`). The p-value reported beside the
interval is the bootstrap p that matches it: twice the share of replicates on the other side of 0, so
``p < alpha`` and "the (1 - alpha) percentile interval excludes 0" agree up to how ties and quantiles are
interpolated. Counting claims ("improves k of n tasks") use per-task tests with Holm's correction
(:func:`holm`, :func:`count_supported`), since counting uncorrected per-task significances over-counts.

Scale: metric values and effects in the unit of the metric (macro-F1 and accuracy in percent, 0-100, as in
:mod:`socialite_utils.metrics`); p-values as fractions. Pure numpy/scipy/stdlib, so any stage can import it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy import stats

__all__ = [
    "Accuracy",
    "BootstrapResult",
    "Claim",
    "ExpectedStratifiedMacroF1",
    "MacroF1",
    "MeanScore",
    "TaskCount",
    "TaskResult",
    "Verdict",
    "combine_seeds",
    "count_supported",
    "expected_stratified_macro_f1",
    "format_claim",
    "format_p",
    "holm",
    "judge",
    "paired_bootstrap_mean_over_tasks",
    "paired_bootstrap_over_seeds",
    "paired_macro_f1_test",
    "task_seed",
    "verdict_every_task",
    "verdict_from_interval",
]


# --------------------------------------------------------------------------------------------------------
# Verdicts: the one rule
# --------------------------------------------------------------------------------------------------------


class Verdict:
    """The three verdicts, as plain strings so they print and serialise (JSON, CSV) without conversion."""

    SUPPORTED = "SUPPORTED"
    CONTRADICTED = "CONTRADICTED"
    INCONCLUSIVE = "INCONCLUSIVE"
    ALL = (SUPPORTED, CONTRADICTED, INCONCLUSIVE)


def _check_direction(direction: int) -> int:
    if direction not in (1, -1):
        raise ValueError(
            f"direction must be +1 (claimed effect > 0) or -1 (claimed effect < 0), got {direction!r}"
        )
    return int(direction)


def verdict_from_interval(lo: float, hi: float, direction: int = +1) -> str:
    """The verdict on a claimed effect from its confidence interval ``[lo, hi]``.

    ``direction`` is the claimed sign: +1 for "A - B > 0" (A beats B on a higher-is-better metric), -1 for
    "A - B < 0" (e.g. "generalist data hurts factual tasks"). SUPPORTED when the interval lies strictly on the
    claimed side of 0, CONTRADICTED when it lies strictly on the other side, INCONCLUSIVE otherwise. An interval
    that touches 0 (``lo == 0`` or ``hi == 0``) is INCONCLUSIVE: 0 is a plausible value of the effect. A nan
    bound (no valid resample) is INCONCLUSIVE too: there is no evidence either way.
    """
    d = _check_direction(direction)
    lo, hi = float(lo), float(hi)
    if math.isnan(lo) or math.isnan(hi):
        return Verdict.INCONCLUSIVE
    if lo > hi:
        raise ValueError(f"interval bounds out of order: lo={lo} > hi={hi}")
    # Flip a claimed-negative effect so that "claimed side" is always "> 0".
    lo_c, hi_c = (lo, hi) if d > 0 else (-hi, -lo)
    if lo_c > 0:
        return Verdict.SUPPORTED
    if hi_c < 0:
        return Verdict.CONTRADICTED
    return Verdict.INCONCLUSIVE


# --------------------------------------------------------------------------------------------------------
# p-values: formatting and Holm's correction
# --------------------------------------------------------------------------------------------------------


def p_floor(B: int, two_sided: bool = True) -> float:
    """The smallest non-zero p-value a B-replicate bootstrap can report: one replicate across 0 out of B,
    doubled when the p-value is two-sided. A p estimated as 0 only says the true p is below this."""
    if B < 1:
        raise ValueError(f"B must be >= 1, got {B}")
    return (2.0 if two_sided else 1.0) / B


def format_p(p: float, B: int | None = None, *, two_sided: bool = True) -> str:
    """A p-value for a sentence, never ``p = 0``.

    With ``B`` (bootstrap replicates) a p below the bootstrap's resolution (:func:`p_floor`: no replicate fell on
    the other side of 0) prints as ``p < 2/B``, e.g. ``"p < 0.002"`` for B = 1000 two-sided and ``"p < 0.001"``
    one-sided: the estimate 0 only bounds p by the resolution. Otherwise (and for analytic p-values, ``B=None``)
    p prints with three decimals, and anything below 0.001 as ``"p < 0.001"``; nan prints as ``"p = n/a"``.
    """
    p = float(p)
    if math.isnan(p):
        return "p = n/a"
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if B is not None:
        floor = p_floor(B, two_sided)
        if p < floor:
            return f"p < {floor:.3g}"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}"


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Sort the m p-values ascending, multiply the i-th smallest (i = 1..m) by m - i + 1, take the running maximum
    (so an adjusted p never falls below that of a smaller raw p) and cap at 1. Rejecting every hypothesis whose
    adjusted p is below alpha controls the family-wise error rate at alpha under any dependence between the
    tests, which per-task tests on one evaluation run have. Example: [0.01, 0.04, 0.03, 0.005] ->
    [0.03, 0.06, 0.06, 0.02].
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be one-dimensional, got shape {p.shape}")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"pvalues must be in [0, 1] and not nan, got {p.tolist()}")
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty(m)
    out[order] = adjusted_sorted
    return out


@dataclass(frozen=True)
class TaskCount:
    """The count behind "better on k of n tasks", each task tested at the Holm-corrected level.

    ``better`` / ``worse``: tasks whose Holm-adjusted p is below ``alpha`` with the effect on the claimed / the
    other side; ``adjusted``: task -> Holm-adjusted p."""

    n: int
    better: tuple[str, ...]
    worse: tuple[str, ...]
    adjusted: dict[str, float]
    alpha: float
    direction: int = 1

    @property
    def k(self) -> int:
        return len(self.better)

    def describe(self) -> str:
        side = "better" if self.direction > 0 else "lower"
        return (
            f"significantly {side} on {self.k} of {self.n} task(s), the other way on {len(self.worse)} "
            f"(per-task paired bootstrap, Holm-adjusted p < {self.alpha:g})"
        )


def count_supported(per_task: Mapping[str, Any], alpha: float = 0.05, direction: int = +1) -> TaskCount:
    """Count the tasks on which the claimed effect is significant after Holm's correction over the n tasks.

    ``per_task``: task -> a :class:`TaskResult` or a mapping with ``effect`` (or ``delta``) and ``p_value``
    (two-sided). A task counts as better when its Holm-adjusted p is below ``alpha`` and its effect has the
    claimed sign (``direction``), as worse when the adjusted p is below ``alpha`` with the other sign. Use
    this for "improves k of n tasks": counting raw per-task p < alpha would let chance alone win about
    alpha * n tasks.
    """
    d = _check_direction(direction)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    names = list(per_task)
    effects, pvals = [], []
    for name in names:
        r = per_task[name]
        if isinstance(r, TaskResult):
            effects.append(r.effect)
            pvals.append(r.p_value)
        else:
            effects.append(float(r["effect"] if "effect" in r else r["delta"]))
            pvals.append(float(r["p_value"]))
    adj = holm(pvals)
    better = tuple(n for n, e, a in zip(names, effects, adj, strict=True) if a < alpha and d * e > 0)
    worse = tuple(n for n, e, a in zip(names, effects, adj, strict=True) if a < alpha and d * e < 0)
    adjusted = {n: float(a) for n, a in zip(names, adj, strict=True)}
    return TaskCount(len(names), better, worse, adjusted, alpha, d)


def verdict_every_task(per_task: Mapping[str, Any], alpha: float = 0.05, direction: int = +1) -> str:
    """The verdict on "A beats B on EVERY task" (a conjunction over tasks, e.g. "tuned beats base on every
    writing task"), from per-task results (:class:`TaskResult`, or mappings with ``effect``/``delta``, ``ci``
    and ``p_value``).

    SUPPORTED when every task's own verdict (:func:`verdict_from_interval` of its interval) is SUPPORTED. This is
    an intersection-union test: a wrong SUPPORTED needs at least one wrong per-task SUPPORTED, so the error rate
    stays at the per-task level without a multiplicity correction. CONTRADICTED when some task is significantly
    on the other side after Holm's correction (:func:`count_supported`): "some task is worse" is a union over
    tasks, and uncorrected it would find a worse task by chance in about alpha * n tasks. INCONCLUSIVE otherwise,
    and when there is no task.
    """
    d = _check_direction(direction)
    if not per_task:
        return Verdict.INCONCLUSIVE
    own = []
    for r in per_task.values():
        lo, hi = r.ci if isinstance(r, TaskResult) else r["ci"]
        own.append(verdict_from_interval(lo, hi, d))
    if all(v == Verdict.SUPPORTED for v in own):
        return Verdict.SUPPORTED
    if count_supported(per_task, alpha, d).worse:
        return Verdict.CONTRADICTED
    return Verdict.INCONCLUSIVE


# --------------------------------------------------------------------------------------------------------
# Metrics evaluated on many resamples at once
# --------------------------------------------------------------------------------------------------------


@runtime_checkable
class RowMetric(Protocol):
    """A metric evaluated on many resamples in one call: ``rows(gold, pred, idx)`` returns one value per row of
    the integer index matrix ``idx`` (shape (R, n)), the metric on ``gold[idx[r]]``, ``pred[idx[r]]``.

    The bootstrap passes any other callable ``f(gold, pred) -> float`` one resample at a time (slow, but any
    metric works, e.g. a corpus-level text metric)."""

    def rows(self, gold: Sequence[Any], pred: Sequence[Any], idx: np.ndarray) -> np.ndarray: ...


def _encode_labels(gold: Sequence[Hashable], pred: Sequence[Hashable | None], labels: list[Hashable] | None):
    """(gold codes 0..K-1, pred codes 0..K-1 or -1 for None / a label outside ``labels``, K)."""
    if any(g is None for g in gold):
        raise ValueError("a gold label is None; gold labels must be set")
    labs = sorted(set(gold)) if labels is None else list(labels)
    index = {lab: k for k, lab in enumerate(labs)}
    unknown = [g for g in gold if g not in index]
    if unknown:
        raise ValueError(f"{len(unknown)} gold label(s) not in labels={labs}, e.g. {unknown[0]!r}")
    g = np.fromiter((index[x] for x in gold), dtype=np.int64, count=len(gold))
    p = np.fromiter((-1 if x is None else index.get(x, -1) for x in pred), dtype=np.int64, count=len(pred))
    return g, p, len(labs)


def _macro_f1_from_codes(g: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """Macro-F1 in percent of each row of the 2-D code arrays ``g``, ``p`` (same shape), over classes 0..k-1.

    Per class F1 = 2 tp / (n_gold + n_pred), 0 when both counts are 0; the mean runs over all k classes. The
    counts of every row come from one bincount on row-offset codes."""
    r = g.shape[0]
    off = (np.arange(r) * k)[:, None]
    n_gold = np.bincount((g + off).ravel(), minlength=r * k).reshape(r, k)
    valid = p >= 0
    n_pred = np.bincount((p + off)[valid], minlength=r * k).reshape(r, k)
    tp = np.bincount((g + off)[p == g], minlength=r * k).reshape(r, k)
    denom = n_gold + n_pred
    f1 = np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)
    return 100.0 * f1.mean(axis=1)


class MacroF1:
    """Macro-F1 in percent over ``labels`` (default: the sorted gold labels of each task), with the semantics of
    :func:`socialite_utils.metrics.macro_f1` (sklearn, ``zero_division=0``): the mean runs over every label in
    ``labels``, a label with no gold support counts F1 = 0, and an invalid answer (None, or a string outside
    ``labels``) is a false negative of its gold class and a false positive of none."""

    def __init__(self, labels: Sequence[Hashable] | None = None):
        self.labels = None if labels is None else list(labels)

    def rows(self, gold: Sequence[Hashable], pred: Sequence[Hashable | None], idx: np.ndarray) -> np.ndarray:
        g, p, k = _encode_labels(gold, pred, self.labels)
        return _macro_f1_from_codes(g[idx], p[idx], k)

    def __call__(self, gold: Sequence[Hashable], pred: Sequence[Hashable | None]) -> float:
        return float(self.rows(gold, pred, np.arange(len(gold))[None, :])[0])


class Accuracy:
    """Exact-match accuracy in percent; a None prediction is wrong. Compare systems on macro-F1 where the kit
    reports macro-F1: accuracy rewards answering the majority label."""

    def rows(self, gold: Sequence[Hashable], pred: Sequence[Hashable | None], idx: np.ndarray) -> np.ndarray:
        correct = np.fromiter(
            (p is not None and p == g for g, p in zip(gold, pred, strict=True)), dtype=float, count=len(gold)
        )
        return 100.0 * correct[idx].mean(axis=1)

    def __call__(self, gold: Sequence[Hashable], pred: Sequence[Hashable | None]) -> float:
        return float(self.rows(gold, pred, np.arange(len(gold))[None, :])[0])


class MeanScore:
    """The mean of per-example scores (``pred``; ``gold`` is ignored): for metrics that decompose over examples
    (correctness, per-sentence scores). The bootstrap uses it when no metric is given."""

    def rows(self, gold: Any, pred: Sequence[float], idx: np.ndarray) -> np.ndarray:
        return np.asarray(pred, dtype=float)[idx].mean(axis=1)

    def __call__(self, gold: Any, pred: Sequence[float]) -> float:
        return float(np.mean(np.asarray(pred, dtype=float)))


# A metric for every task (a RowMetric or f(gold, pred) -> float), or task -> its metric (tasks with different
# label lists), or None for per-example scores.
MetricArg = RowMetric | Callable[[Sequence[Any], Sequence[Any]], float] | Mapping[str, Any] | None


def _metric_rows(metric: Any, gold: Sequence[Any], pred: Sequence[Any], idx: np.ndarray) -> np.ndarray:
    """The metric on every row of ``idx``: one vectorised call for a :class:`RowMetric`, a loop otherwise."""
    if isinstance(metric, RowMetric):
        return np.asarray(metric.rows(gold, pred, idx), dtype=float).reshape(idx.shape[0])
    g = np.empty(len(gold), dtype=object)
    g[:] = list(gold)
    p = np.empty(len(pred), dtype=object)
    p[:] = list(pred)
    return np.fromiter((metric(g[row].tolist(), p[row].tolist()) for row in idx), dtype=float, count=len(idx))


# --------------------------------------------------------------------------------------------------------
# Paired bootstrap, stratified by task
# --------------------------------------------------------------------------------------------------------


def task_seed(seed: int, task: str) -> int:
    """The bootstrap seed of one task, derived from the run's seed and the task name.

    Tasks are resampled independently (one seed for every task of equal size would draw the same index
    pattern everywhere), the draws do not depend on which other tasks are in the claim or in what order, and
    both systems of a task share them. The derivation is the one of ``socialite_utils.metrics.task_seed``, so a
    task's effect, interval and p here equal those of ``metrics.paired_bootstrap`` with that seed."""
    digest = hashlib.sha256(f"{seed}|{task}|bootstrap".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _percentile_ci(values: np.ndarray, alpha: float) -> tuple[float, float]:
    """The (1 - alpha) percentile interval of the replicates along the last axis, nan replicates ignored."""
    v = np.asarray(values, dtype=float)
    if np.isnan(v).all():
        return math.nan, math.nan
    n_nan = int(np.isnan(v).sum())
    if n_nan:
        warnings.warn(f"{n_nan} of {v.size} bootstrap replicates are nan and were ignored", RuntimeWarning, 3)
    lo, hi = np.nanquantile(v, (alpha / 2, 1 - alpha / 2))
    return float(lo), float(hi)


def _two_sided_p(effect: float, replicates: np.ndarray) -> float:
    """Twice the share of replicates on the other side of 0 than ``effect`` (a replicate at 0 counts as
    crossing), capped at 1; 1 when the effect is 0 or no replicate is valid. This is the p-value that matches the
    percentile interval: p < alpha exactly when fewer than alpha/2 of the replicates cross 0."""
    v = np.asarray(replicates, dtype=float)
    v = v[~np.isnan(v)]
    if effect == 0 or math.isnan(effect) or v.size == 0:
        return 1.0
    crossed = (v <= 0) if effect > 0 else (v >= 0)
    return float(min(1.0, 2.0 * crossed.mean()))


@dataclass(frozen=True)
class TaskResult:
    """One task of a paired comparison: ``effect`` = metric(A) - metric(B) on its n test rows, the percentile
    ``ci`` and the two-sided bootstrap ``p_value`` from resampling those rows."""

    task: str
    effect: float
    ci: tuple[float, float]
    p_value: float
    n: int
    metric_a: float
    metric_b: float


@dataclass(frozen=True)
class BootstrapResult:
    """A paired bootstrap of the mean over tasks of metric(A) - metric(B).

    ``effect``: the observed difference of the means over tasks; ``ci``: its percentile interval; ``p_value``:
    the matching two-sided bootstrap p; ``B``: replicates; ``n_examples``: test rows over all tasks (per seed);
    ``n_seeds``: training seeds averaged (1 for a single run); ``per_task``: task -> :class:`TaskResult`;
    ``replicates``: the B replicates of the mean difference and ``task_replicates`` task -> its B replicates,
    kept so that :func:`combine_seeds` can combine runs replicate by replicate. ``per_seed_effects``: the
    observed effect of every seed (empty for a single run)."""

    effect: float
    ci: tuple[float, float]
    p_value: float
    B: int
    alpha: float
    metric_a: float
    metric_b: float
    n_examples: int
    n_tasks: int
    per_task: dict[str, TaskResult]
    replicates: np.ndarray = field(repr=False)
    task_replicates: dict[str, np.ndarray] = field(repr=False)
    n_seeds: int = 1
    per_seed_effects: tuple[float, ...] = ()


def _as_pair(item: Any, task: str, side: str) -> tuple[list, list]:
    if not (isinstance(item, Sequence) and len(item) == 2):
        raise ValueError(f"{side}[{task!r}] must be a (gold, predictions) pair when a metric is given")
    gold, pred = list(item[0]), list(item[1])
    if len(gold) != len(pred):
        raise ValueError(f"{side}[{task!r}]: {len(gold)} gold labels but {len(pred)} predictions")
    return gold, pred


def paired_bootstrap_mean_over_tasks(
    per_task_a: Mapping[str, Any],
    per_task_b: Mapping[str, Any],
    metric: MetricArg = None,
    *,
    B: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    metric_b: MetricArg = None,
) -> BootstrapResult:
    """Paired bootstrap of ``mean over tasks of metric(A) - mean over tasks of metric(B)``.

    Inputs, task -> data for system A and for system B on the SAME test rows in the SAME order:

    - with a ``metric`` (e.g. ``MacroF1(labels)``, ``Accuracy()``, or any ``f(gold, pred) -> float``; or a
      mapping task -> metric, e.g. ``{t: MacroF1(labels_of[t])}`` when every task scores its own label list): a
      ``(gold, predictions)`` pair per task; A's and B's gold must be identical (a check that the rows match);
    - without one: an array of per-example scores per task (e.g. 0/1 correctness); the metric is their mean.

    Each replicate resamples every task's rows with replacement, within the task (the task set is fixed: the
    claim is about these tasks, and each task keeps its size and weight 1/n_tasks), with the same row indices
    for A and B (pairing removes the variation the two systems share). The metric is computed per task, averaged
    over tasks, and B's mean subtracted from A's. Task t's indices come from ``default_rng(task_seed(seed, t))``,
    so the result is deterministic for a seed and a task's own result does not depend on the other tasks.

    ``metric_b`` (same forms as ``metric``): B's metric when it is not A's, e.g. :class:`ExpectedStratifiedMacroF1`
    for a random floor whose score is an expectation over its draws; B's predictions are then passed but may be
    ignored. Default: B is scored with ``metric``.

    Returns a :class:`BootstrapResult`: the observed effect, the (1 - alpha) percentile interval, the two-sided
    bootstrap p-value (:func:`format_p` prints it), the per-task results and the replicates. A :class:`RowMetric`
    is evaluated on all B resamples of a task in one call (15 tasks x 300 rows x B = 1000 take well under a
    second); other callables run once per resample.
    """
    if not per_task_a:
        raise ValueError("paired_bootstrap_mean_over_tasks: no tasks")
    if set(per_task_a) != set(per_task_b):
        only_a, only_b = sorted(set(per_task_a) - set(per_task_b)), sorted(set(per_task_b) - set(per_task_a))
        raise ValueError(f"A and B cover different tasks: only in A {only_a}, only in B {only_b}")
    if B < 1:
        raise ValueError(f"B must be >= 1, got {B}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    for m in (metric, metric_b):
        if isinstance(m, Mapping) and set(m) != set(per_task_a):
            raise ValueError(f"metric mapping covers tasks {sorted(m)}, the data {sorted(per_task_a)}")
    if metric_b is not None and metric is None:
        raise ValueError("metric_b needs a metric for A too")
    per_task: dict[str, TaskResult] = {}
    task_reps: dict[str, np.ndarray] = {}
    obs_a, obs_b, n_examples = [], [], 0
    for task in per_task_a:
        fn = MeanScore() if metric is None else metric[task] if isinstance(metric, Mapping) else metric
        fn_b = fn if metric_b is None else metric_b[task] if isinstance(metric_b, Mapping) else metric_b
        if metric is None:
            gold = None
            a = np.asarray(per_task_a[task], dtype=float)
            b = np.asarray(per_task_b[task], dtype=float)
            if a.ndim != 1 or a.shape != b.shape:
                raise ValueError(f"task {task!r}: per-example scores of A {a.shape} and B {b.shape} differ")
            n = a.size
        else:
            gold, a = _as_pair(per_task_a[task], task, "per_task_a")
            gold_b, b = _as_pair(per_task_b[task], task, "per_task_b")
            if gold != gold_b:
                raise ValueError(
                    f"task {task!r}: A and B have different gold labels; pair them on the same rows"
                )
            n = len(gold)
        if n == 0:
            raise ValueError(f"task {task!r} has no rows")
        full = np.arange(n)[None, :]
        ma = float(_metric_rows(fn, gold, a, full)[0])
        mb = float(_metric_rows(fn_b, gold, b, full)[0])
        idx = np.random.default_rng(task_seed(seed, task)).integers(0, n, size=(B, n))
        reps = _metric_rows(fn, gold, a, idx) - _metric_rows(fn_b, gold, b, idx)
        effect = ma - mb
        per_task[task] = TaskResult(
            task, effect, _percentile_ci(reps, alpha), _two_sided_p(effect, reps), n, ma, mb
        )
        task_reps[task] = reps
        obs_a.append(ma)
        obs_b.append(mb)
        n_examples += n
    replicates = np.mean(np.vstack(list(task_reps.values())), axis=0)
    effect = float(np.mean(obs_a) - np.mean(obs_b))
    return BootstrapResult(
        effect=effect,
        ci=_percentile_ci(replicates, alpha),
        p_value=_two_sided_p(effect, replicates),
        B=B,
        alpha=alpha,
        metric_a=float(np.mean(obs_a)),
        metric_b=float(np.mean(obs_b)),
        n_examples=n_examples,
        n_tasks=len(per_task),
        per_task=per_task,
        replicates=replicates,
        task_replicates=task_reps,
    )


def paired_macro_f1_test(
    gold: Sequence[Hashable],
    pred_a: Sequence[Hashable | None],
    pred_b: Sequence[Hashable | None],
    labels: Sequence[Hashable] | None = None,
    *,
    B: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    task: str = "task",
) -> TaskResult:
    """Paired bootstrap test of macro-F1(A) - macro-F1(B) on one task's test rows.

    The test of a macro-F1 claim. McNemar's test compares per-example correctness, i.e. ACCURACY: a system can
    win McNemar by answering the majority label more often while its macro-F1 falls, so McNemar answers an
    accuracy question and must be labelled as such where it is still reported. Seeds as in
    :func:`paired_bootstrap_mean_over_tasks` (``task`` names the task for its seed)."""
    res = paired_bootstrap_mean_over_tasks(
        {task: (gold, pred_a)}, {task: (gold, pred_b)}, MacroF1(labels), B=B, seed=seed, alpha=alpha
    )
    return res.per_task[task]


# --------------------------------------------------------------------------------------------------------
# Several training seeds
# --------------------------------------------------------------------------------------------------------


def _combine_replicates(reps: np.ndarray, pick: np.ndarray) -> np.ndarray:
    """Two-level replicates of the mean over seeds (see :func:`combine_seeds`). ``reps`` (S, B): replicate b
    of every seed; ``pick`` (B, S): the seeds drawn with replacement for replicate b."""
    s, b = reps.shape
    cols = np.arange(b)[:, None]
    drawn = reps[pick, cols]  # (B, S): seed pick[b, k]'s replicate b
    if s == 1:
        return drawn[:, 0]
    centre = reps.mean(axis=0)[:, None]  # (B, 1): the example-level replicate of the mean over all seeds
    inflate = math.sqrt(s / (s - 1))
    return (centre + inflate * (drawn - centre)).mean(axis=1)


def combine_seeds(
    per_seed: Sequence[BootstrapResult] | Sequence[Sequence[float]],
    effects: Sequence[float] | None = None,
    *,
    alpha: float = 0.05,
    seed: int = 0,
) -> BootstrapResult:
    """The mean over training seeds of an effect, with an interval that covers seed variation AND example
    sampling: a two-level (seeds x examples) bootstrap.

    Input: one paired bootstrap per training seed (:class:`BootstrapResult`, or the B replicates as arrays with
    the observed ``effects``), each with the same B. Replicate b of the combination draws S seeds uniformly with
    replacement (the seed level) and averages their replicate b (the example level). When the per-seed
    bootstraps resampled the same test rows with the same bootstrap ``seed`` (as :func:`paired_bootstrap_over_seeds`
    does), replicate b is the same example resample in every seed, so the example noise that the seeds share is
    kept shared rather than averaged away; for seeds scored on different rows the replicates are independent,
    which is then also right.

    Why this and not "draw one seed per replicate": that mixture describes what a single training run would
    give, and would overstate the uncertainty of the mean over S seeds (the reported point) by up to sqrt(S) on the
    seed component. Resampling S seeds out of S underestimates the seed variance by the factor (S - 1) / S, so
    each drawn seed's deviation from the replicate's mean over all seeds is scaled by sqrt(S / (S - 1)), which makes
    the seed component equal the usual s^2 / S. With 2 or 3 seeds the seed level has only 3 or 10 distinct draws:
    the interval is coarse, and no interval from 3 seeds pins the seed variance down. One seed: the example-level
    interval of that seed, unchanged.

    Returns a :class:`BootstrapResult` whose ``effect`` is the mean of the per-seed effects, with ``n_seeds``,
    ``per_seed_effects`` and, when the inputs are BootstrapResults over the same tasks, per-task results combined
    the same way (same seed draws).
    """
    if not per_seed:
        raise ValueError("combine_seeds: no seeds")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    results = [r for r in per_seed if isinstance(r, BootstrapResult)]
    if results and len(results) != len(per_seed):
        raise ValueError("combine_seeds: pass BootstrapResults or replicate arrays, not a mix")
    if results:
        reps = np.vstack([r.replicates for r in results])
        eff = np.array([r.effect for r in results] if effects is None else effects, dtype=float)
    else:
        lengths = {len(r) for r in per_seed}
        if len(lengths) != 1:
            raise ValueError(f"every seed needs the same number of replicates, got {sorted(lengths)}")
        reps = np.vstack([np.asarray(r, dtype=float) for r in per_seed])
        eff = np.nanmean(reps, axis=1) if effects is None else np.asarray(effects, dtype=float)
    s, b = reps.shape
    if eff.shape != (s,):
        raise ValueError(f"effects: expected {s} values (one per seed), got {eff.shape}")
    pick = np.random.default_rng(seed).integers(0, s, size=(b, s))
    combined = _combine_replicates(reps, pick)
    effect = float(eff.mean())
    per_task: dict[str, TaskResult] = {}
    task_reps: dict[str, np.ndarray] = {}
    if results and all(r.per_task.keys() == results[0].per_task.keys() for r in results):
        for task in results[0].per_task:
            t_reps = np.vstack([r.task_replicates[task] for r in results])
            t_eff = np.array([r.per_task[task].effect for r in results])
            t_comb = _combine_replicates(t_reps, pick)
            te = float(t_eff.mean())
            per_task[task] = TaskResult(
                task,
                te,
                _percentile_ci(t_comb, alpha),
                _two_sided_p(te, t_comb),
                results[0].per_task[task].n,
                float(np.mean([r.per_task[task].metric_a for r in results])),
                float(np.mean([r.per_task[task].metric_b for r in results])),
            )
            task_reps[task] = t_comb
    first = results[0] if results else None
    return BootstrapResult(
        effect=effect,
        ci=_percentile_ci(combined, alpha),
        p_value=_two_sided_p(effect, combined),
        B=b,
        alpha=alpha,
        metric_a=float(np.mean([r.metric_a for r in results])) if results else math.nan,
        metric_b=float(np.mean([r.metric_b for r in results])) if results else math.nan,
        n_examples=first.n_examples if first else 0,
        n_tasks=first.n_tasks if first else 0,
        per_task=per_task,
        replicates=combined,
        task_replicates=task_reps,
        n_seeds=s,
        per_seed_effects=tuple(float(e) for e in eff),
    )


def paired_bootstrap_over_seeds(
    per_seed_a: Sequence[Mapping[str, Any]],
    per_seed_b: Sequence[Mapping[str, Any]],
    metric: MetricArg = None,
    *,
    B: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> BootstrapResult:
    """:func:`paired_bootstrap_mean_over_tasks` for every training seed (A's and B's runs of seed i paired on the
    same rows), all with the same bootstrap ``seed`` so replicate b resamples the same rows in every seed, then
    :func:`combine_seeds`. ``per_seed_a[i]`` is the task -> data mapping of A's run with training seed i."""
    if len(per_seed_a) != len(per_seed_b):
        raise ValueError(f"{len(per_seed_a)} seeds for A but {len(per_seed_b)} for B")
    runs = [
        paired_bootstrap_mean_over_tasks(a, b, metric, B=B, seed=seed, alpha=alpha)
        for a, b in zip(per_seed_a, per_seed_b, strict=True)
    ]
    return combine_seeds(runs, alpha=alpha, seed=seed)


# --------------------------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One judged claim. ``name``: the statement ("instruction tuning improves seen tasks"); ``comparison``: what
    is subtracted from what ("tuned vs base"); ``metric``: the unit of ``effect`` ("macro-F1"); ``direction``:
    the claimed sign of A - B. ``verdict`` is not an argument: it is always :func:`verdict_from_interval` of
    ``ci`` and ``direction``, so no claim can carry a verdict its interval does not give.

    ``n_examples`` / ``n_tasks`` / ``n_seeds``: what the interval resampled; ``B``: bootstrap replicates (for
    :func:`format_p`; None for an analytic p); ``per_task``: task -> :class:`TaskResult`; ``task_count``: the
    Holm-corrected "k of n tasks" (:func:`count_supported`), None for a single task."""

    name: str
    comparison: str
    effect: float
    ci: tuple[float, float]
    p_value: float
    n_examples: int
    n_tasks: int = 1
    n_seeds: int = 1
    direction: int = 1
    metric: str = ""
    B: int | None = None
    alpha: float = 0.05
    per_task: dict[str, TaskResult] = field(default_factory=dict)
    task_count: TaskCount | None = None
    verdict: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", _check_direction(self.direction))
        object.__setattr__(self, "ci", (float(self.ci[0]), float(self.ci[1])))
        object.__setattr__(self, "verdict", verdict_from_interval(*self.ci, direction=self.direction))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (nan as None)."""

        def num(x: float) -> float | None:
            return None if x is None or math.isnan(x) else float(x)

        return {
            "claim": self.name,
            "comparison": self.comparison,
            "metric": self.metric,
            "direction": self.direction,
            "verdict": self.verdict,
            "effect": num(self.effect),
            "ci": [num(self.ci[0]), num(self.ci[1])],
            "confidence": 1 - self.alpha,
            "p_value": num(self.p_value),
            "B": self.B,
            "n_examples": self.n_examples,
            "n_tasks": self.n_tasks,
            "n_seeds": self.n_seeds,
            "per_task": {
                t: {
                    "effect": num(r.effect),
                    "ci": [num(r.ci[0]), num(r.ci[1])],
                    "p_value": num(r.p_value),
                    "n": r.n,
                }
                for t, r in self.per_task.items()
            },
            "task_count": None
            if self.task_count is None
            else {
                "k": self.task_count.k,
                "n": self.task_count.n,
                "better": list(self.task_count.better),
                "worse": list(self.task_count.worse),
                "holm_adjusted_p": self.task_count.adjusted,
            },
        }


def judge(
    name: str,
    comparison: str,
    result: BootstrapResult,
    *,
    direction: int = +1,
    metric: str = "macro-F1",
) -> Claim:
    """A :class:`Claim` from a bootstrap result: its effect, interval, p and sizes, the verdict by the one rule,
    and (over two or more tasks) the Holm-corrected count of tasks better on the claimed side."""
    count = count_supported(result.per_task, result.alpha, direction) if len(result.per_task) > 1 else None
    return Claim(
        name=name,
        comparison=comparison,
        effect=result.effect,
        ci=result.ci,
        p_value=result.p_value,
        n_examples=result.n_examples,
        n_tasks=result.n_tasks,
        n_seeds=result.n_seeds,
        direction=direction,
        metric=metric,
        B=result.B,
        alpha=result.alpha,
        per_task=dict(result.per_task),
        task_count=count,
    )


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def format_claim(claim: Claim, digits: int = 1) -> str:
    """One line: verdict, claim, comparison, effect with its interval, p, and what was resampled, e.g.
    ``[SUPPORTED] tuning helps seen tasks: tuned vs base, macro-F1 +3.2 [95% CI +1.1, +5.4], p = 0.004;
    n = 4,500 examples, 15 tasks, 3 seeds``."""
    lo, hi = claim.ci
    conf = f"{100 * (1 - claim.alpha):g}%"
    metric = f"{claim.metric} " if claim.metric else ""
    sizes = [
        _plural(claim.n_examples, "example"),
        _plural(claim.n_tasks, "task"),
        _plural(claim.n_seeds, "seed"),
    ]
    return (
        f"[{claim.verdict}] {claim.name}: {claim.comparison}, {metric}{claim.effect:+.{digits}f} "
        f"[{conf} CI {lo:+.{digits}f}, {hi:+.{digits}f}], {format_p(claim.p_value, claim.B)}; n = {', '.join(sizes)}"
    )


# --------------------------------------------------------------------------------------------------------
# The stratified random floor
# --------------------------------------------------------------------------------------------------------

# Binomial probabilities below this are dropped from the exact expectation; the dropped mass (times the F1
# bound 1) bounds the error, about n * 1e-15 at most.
_PMF_CUTOFF = 1e-15


def _prior_vector(
    label_prior: Mapping[Hashable, float] | Sequence[float], labels: list[Hashable]
) -> np.ndarray:
    if isinstance(label_prior, Mapping):
        q = np.array([float(label_prior.get(lab, 0.0)) for lab in labels])
        outside = sum(float(v) for k, v in label_prior.items() if k not in set(labels))
        total = q.sum() + outside
    else:
        q = np.asarray(label_prior, dtype=float)
        if q.shape != (len(labels),):
            raise ValueError(f"label_prior has {q.size} values for {len(labels)} labels {labels}")
        total = q.sum()
    if (q < 0).any() or not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ValueError(f"label_prior must be non-negative and sum to 1, got sum {total}")
    return q


def expected_stratified_macro_f1(
    gold_labels: Sequence[Hashable],
    label_prior: Mapping[Hashable, float] | Sequence[float],
    n_draws: int | None = None,
    *,
    labels: Sequence[Hashable] | None = None,
    seed: int = 0,
) -> float:
    """The EXPECTED macro-F1 (percent) of the stratified random floor on these gold labels: every answer drawn
    independently from ``label_prior``. One draw of the floor is itself random (on 300 rows its macro-F1 moves by
    a few points between draws); the expectation is the floor a claim should be compared with.

    ``labels``: the scored label list (default: sorted gold labels), with :class:`MacroF1` semantics; a drawn
    label outside it is an invalid answer. ``label_prior``: label -> probability (labels outside ``labels`` may
    carry mass), or probabilities aligned with ``labels``.

    Exact (``n_draws=None``): macro-F1 is the mean over classes of F1_k = 2 TP_k / (g_k + TP_k + FP_k), and the
    expectation of a mean is the mean of the per-class expectations. For class k with g_k gold rows among n and
    prior q_k, TP_k ~ Binomial(g_k, q_k) and FP_k ~ Binomial(n - g_k, q_k) independently (the rows are drawn
    independently), so E[F1_k] is a double sum over their probabilities (terms below 1e-15 dropped; error
    below n * 1e-15). A class with no gold rows has F1 = 0 whatever is drawn. Example: gold [a, b], prior
    (1/2, 1/2): the four equally likely draws ab, ba, aa, bb give 1, 0, 1/3, 1/3, so 100 * 5/12 = 41.67.

    ``n_draws``: Monte Carlo instead, the mean macro-F1 over ``n_draws`` seeded draws (a check on the exact
    value, or for a floor that is not drawn row by row independently).
    """
    gold = list(gold_labels)
    if not gold:
        raise ValueError("expected_stratified_macro_f1: no gold labels")
    labs = sorted(set(gold)) if labels is None else list(labels)
    q = _prior_vector(label_prior, labs)
    g_codes, _, k = _encode_labels(gold, [None] * len(gold), labs)
    n = len(gold)
    if n_draws is not None:
        if n_draws < 1:
            raise ValueError(f"n_draws must be >= 1, got {n_draws}")
        rng = np.random.default_rng(seed)
        # A draw outside `labels` (the prior's remaining mass) is code -1: an invalid answer.
        p_codes = np.append(q, max(0.0, 1.0 - q.sum()))
        p_codes = p_codes / p_codes.sum()
        codes = np.append(np.arange(k), -1)
        chunk = max(1, 2_000_000 // n)
        total = 0.0
        for start in range(0, n_draws, chunk):
            r = min(chunk, n_draws - start)
            pred = codes[rng.choice(k + 1, size=(r, n), p=p_codes)]
            total += _macro_f1_from_codes(np.broadcast_to(g_codes, (r, n)), pred, k).sum()
        return float(total / n_draws)
    g_counts = np.bincount(g_codes, minlength=k)
    f1 = np.array([_expected_class_f1(int(g_counts[c]), n, float(q[c])) for c in range(k)])
    return float(100.0 * f1.mean())


@functools.lru_cache(maxsize=65536)
def _expected_class_f1(g: int, n: int, q: float) -> float:
    """E[F1] (fraction) of one class with ``g`` gold rows among ``n`` when every answer is that class with
    probability ``q``, independently: TP ~ Binomial(g, q), FP ~ Binomial(n - g, q) (see
    :func:`expected_stratified_macro_f1`). Cached: a bootstrap revisits the same (g, n) many times."""
    if g == 0 or q == 0.0:
        return 0.0
    t, f = np.arange(g + 1), np.arange(n - g + 1)
    pt, pf = stats.binom.pmf(t, g, q), stats.binom.pmf(f, n - g, q)
    t, pt = t[pt > _PMF_CUTOFF], pt[pt > _PMF_CUTOFF]
    f, pf = f[pf > _PMF_CUTOFF], pf[pf > _PMF_CUTOFF]
    return float(pt @ (2.0 * t[:, None] / (g + t[:, None] + f[None, :])) @ pf)


class ExpectedStratifiedMacroF1:
    """The stratified floor's EXPECTED macro-F1 (percent) as a :class:`RowMetric` (predictions ignored): on each
    resample, :func:`expected_stratified_macro_f1` of the resampled gold labels. Use it as ``metric_b`` of
    :func:`paired_bootstrap_mean_over_tasks` to compare a system with the floor itself rather than with one random
    draw of it (a draw adds its own noise to the difference)."""

    def __init__(self, labels: Sequence[Hashable], label_prior: Mapping[Hashable, float] | Sequence[float]):
        self.labels = list(labels)
        self.q = _prior_vector(label_prior, self.labels)

    def rows(self, gold: Sequence[Hashable], pred: Any, idx: np.ndarray) -> np.ndarray:
        g, _, k = _encode_labels(gold, [None] * len(gold), self.labels)
        n = idx.shape[1]
        r = idx.shape[0]
        counts = np.bincount((g[idx] + (np.arange(r) * k)[:, None]).ravel(), minlength=r * k).reshape(r, k)
        out = np.zeros(r)
        for c in range(k):
            qc = float(self.q[c])
            out += [_expected_class_f1(int(x), n, qc) for x in counts[:, c]]
        return 100.0 * out / k

    def __call__(self, gold: Sequence[Hashable], pred: Any = None) -> float:
        return float(self.rows(gold, pred, np.arange(len(gold))[None, :])[0])
