"""Metrics for generation (rewriting) tasks: SARI, GLEU, BLEU, iBLEU, exact match, with bootstrap CIs.

The one module for generation metrics; it needs no network (``evaluate.load("sari")`` fetches its script from
the hub, so SARI is implemented here). Scores are PERCENTAGES in 0-100 like the classification metrics in
:mod:`socialite_utils.metrics`, except GLEU, which is reported as a fraction in 0-1 as JFLEG prints it.

Inputs: ``sources`` and ``predictions`` are lists of strings, ``references`` a list (one entry per example)
of non-empty lists of strings; the number of references may differ between examples except for GLEU.

- **SARI** (Xu et al. 2016) on sacrebleu's 13a tokenisation, lower-cased, in two variants:

  * ``easse`` (default): as EASSE's ``corpus_sari`` computes it (feralvam/easse ``easse/sari.py``; the version
    EditEval and Writing-Alpaca report): source, output and references are normalised alike, the n-gram
    statistics (correct / system total / reference total for add, keep and delete; keep and delete weighted by
    the number of references) are SUMMED over the corpus, then F1 per n-gram order (0 unless precision and
    recall are both > 0), averaged over n = 1..4; deletion uses F1 too. SARI is the mean of the three parts.
  * ``t2t``: tensor2tensor's ``sari_hook`` as HF ``evaluate``'s ``sari`` computes it: a sentence score
    (0/0 = 1, the keep-recall fix, deletion = precision only), averaged over sentences.

  Both return the add / keep / delete parts for the corpus and per example (``easse`` per example = the same
  formula on that example's statistics alone, i.e. EASSE's sentence-level SARI).
- **GLEU** as JFLEG defines it (keisks/jfleg ``eval/gleu.py``, the 2016 multi-reference version): whitespace
  tokens, n = 4, 500 iterations; iteration j calls ``random.seed(j * 101)`` and draws one reference per
  sentence with ``random.randint(0, n_refs - 1)``, in sentence order; corpus GLEU of each iteration from the
  summed statistics; the mean over iterations is reported.
- **BLEU**: sacrebleu's corpus BLEU with its defaults (13a tokeniser, exp smoothing, case-sensitive), computed
  from sacrebleu's own per-sentence statistics so that resampling need not re-tokenise (a test checks equality
  with ``sacrebleu.corpus_bleu``). ``force=True`` only silences sacrebleu's "looks tokenised" log warning.
- **iBLEU** (Sun & Zhou 2012) with alpha = 0.9: ``0.9 * BLEU(output, references) - 0.1 * BLEU(output, source)``.
- **Exact match**: percent of outputs equal to at least one reference after :func:`normalize_for_match`
  (Unicode NFKC, lower-cased, sacrebleu 13a tokenisation, whitespace collapsed and stripped).

Corpus metrics are not means of per-example scores, so their bootstrap recomputes the corpus metric on resampled
example indices: :func:`build_corpus_metric` returns ``f(indices) -> value`` built on per-example statistics
computed once, and :func:`bootstrap_corpus_ci` / :func:`paired_corpus_test` feed any such callable to the kit's
resampling in :mod:`socialite_utils.metrics` (``bootstrap_values`` / ``paired_bootstrap``);
:func:`compare_systems` does both for several systems of one task (copy baseline, base, tuned, ...).
"""

from __future__ import annotations

import random
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from . import metrics as M

__all__ = [
    "CORPUS_METRICS",
    "SARI_VARIANTS",
    "bleu",
    "bootstrap_corpus_ci",
    "build_corpus_metric",
    "compare_systems",
    "exact_match",
    "gleu",
    "ibleu",
    "normalize_13a",
    "normalize_for_match",
    "paired_corpus_test",
    "sari",
    "sari_ngram_parts",
]

SARI_VARIANTS = ("easse", "t2t")
NGRAM_ORDER = 4
GLEU_ITERATIONS = 500
IBLEU_ALPHA = 0.9
_TOKENIZER_13A = Tokenizer13a()


# --------------------------------------------------------------------------------------------------------
# Input checks and normalisation
# --------------------------------------------------------------------------------------------------------


def _check_texts(name: str, texts: Sequence[Any]) -> None:
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            hint = " (pass '' for an empty generation)" if t is None else ""
            raise TypeError(f"{name}[{i}] must be a string, got {type(t).__name__}{hint}")


def _check_inputs(predictions, references, sources=None) -> int:
    lengths = {"predictions": len(predictions), "references": len(references)}
    if sources is not None:
        lengths["sources"] = len(sources)
    n = M._check_same_length(**{k: range(v) for k, v in lengths.items()})
    _check_texts("predictions", predictions)
    if sources is not None:
        _check_texts("sources", sources)
    for i, refs in enumerate(references):
        if isinstance(refs, str) or not isinstance(refs, Sequence) or len(refs) == 0:
            raise ValueError(f"references[{i}] must be a non-empty list of strings, got {refs!r}")
        _check_texts(f"references[{i}]", refs)
    return n


def normalize_13a(text: str, lowercase: bool = True) -> str:
    """sacrebleu's 13a tokenisation (``mteval-v13a``), lower-cased first by default (as EASSE and HF do)."""
    return _TOKENIZER_13A(text.lower() if lowercase else text)


def normalize_for_match(text: str) -> str:
    """Exact-match normalisation: Unicode NFKC, lower-case, 13a tokenisation, whitespace collapsed.

    So "The cat sat." and "the cat sat ." match; "the cat sat" (no full stop) does not.
    """
    return " ".join(normalize_13a(unicodedata.normalize("NFKC", text), lowercase=True).split())


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


# --------------------------------------------------------------------------------------------------------
# SARI
# --------------------------------------------------------------------------------------------------------

# Per-example EASSE statistics: rows (add, keep, delete) x columns (sys_correct, sys_total, ref_total) x n.
_OPS = ("add", "keep", "delete")


def _scale(c: Counter, k: int) -> Counter:
    return Counter({g: v * k for g, v in c.items()})


def _easse_stats(src: str, hyp: str, refs: Sequence[str]) -> np.ndarray:
    """EASSE ``compute_ngram_stats`` for one example on already normalised text: shape (3, 3, 4)."""
    out = np.zeros((3, 3, NGRAM_ORDER))
    r = len(refs)
    s_tok, h_tok, r_toks = src.split(), hyp.split(), [x.split() for x in refs]
    for k in range(NGRAM_ORDER):
        s, h = _ngrams(s_tok, k + 1), _ngrams(h_tok, k + 1)
        rr = sum((_ngrams(t, k + 1) for t in r_toks), Counter())
        sys_add = set(h) - set(s)
        out[0, :, k] = (len(sys_add & set(rr)), len(sys_add), len(set(rr) - set(s)))
        s_r, h_r = _scale(s, r), _scale(h, r)
        keep_sys, keep_ref = s_r & h_r, s_r & rr
        out[1, :, k] = (sum((keep_sys & keep_ref).values()), sum(keep_sys.values()), sum(keep_ref.values()))
        del_sys, del_ref = s_r - h_r, s_r - rr
        out[2, :, k] = (sum((del_sys & del_ref).values()), sum(del_sys.values()), sum(del_ref.values()))
    return out


def _easse_f1(stats: np.ndarray) -> np.ndarray:
    """F1 in percent per operation and n-gram order from statistics (..., 3, 3, 4): shape (..., 3, 4)."""
    correct, sys_total, ref_total = stats[..., 0, :], stats[..., 1, :], stats[..., 2, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(sys_total > 0, correct / np.where(sys_total > 0, sys_total, 1), 0.0)
        r = np.where(ref_total > 0, correct / np.where(ref_total > 0, ref_total, 1), 0.0)
        f1 = np.where((p > 0) & (r > 0), 2 * p * r / np.where(p + r > 0, p + r, 1), 0.0)
    return 100.0 * f1


def _easse_parts(stats: np.ndarray) -> np.ndarray:
    """(add, keep, delete) in percent from summed statistics (..., 3, 3, 4): EASSE ``compute_macro_sari``."""
    return _easse_f1(stats).mean(axis=-1)


def _t2t_ngram(s: list[str], c: list[str], refs: list[list[str]]) -> tuple[float, float, float]:
    """tensor2tensor ``SARIngram`` (as in HF evaluate's sari.py): (keep F1, delete precision, add F1)."""
    numref = len(refs)
    rgram = Counter(g for r in refs for g in r)
    s_cnt, c_cnt = Counter(s), Counter(c)
    s_rep, c_rep = _scale(s_cnt, numref), _scale(c_cnt, numref)
    keep = s_rep & c_rep
    keep_good, keep_all = keep & rgram, s_rep & rgram
    keep_p = sum(keep_good[g] / keep[g] for g in keep_good) / len(keep) if keep else 1.0
    keep_r = sum(keep_good.values()) / sum(keep_all.values()) if keep_all else 1.0
    keep_f = 2 * keep_p * keep_r / (keep_p + keep_r) if keep_p > 0 or keep_r > 0 else 0.0
    dele = s_rep - c_rep
    del_good = dele - rgram
    del_p = sum(del_good[g] / dele[g] for g in del_good) / len(dele) if dele else 1.0
    add = set(c_cnt) - set(s_cnt)
    add_good = add & set(rgram)
    add_all = set(rgram) - set(s_cnt)
    add_p = len(add_good) / len(add) if add else 1.0
    add_r = len(add_good) / len(add_all) if add_all else 1.0
    add_f = 2 * add_p * add_r / (add_p + add_r) if add_p > 0 or add_r > 0 else 0.0
    return keep_f, del_p, add_f


def _t2t_parts(src: str, hyp: str, refs: Sequence[str]) -> np.ndarray:
    """(add, keep, delete) in percent for one normalised example (tokens split on single spaces, as t2t)."""
    s_tok, c_tok, r_toks = src.split(" "), hyp.split(" "), [r.split(" ") for r in refs]
    keep = dele = add = 0.0
    for n in range(1, NGRAM_ORDER + 1):
        grams = lambda toks, n=n: [" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1)]  # noqa: E731
        k, d, a = _t2t_ngram(grams(s_tok), grams(c_tok), [grams(t) for t in r_toks])
        keep, dele, add = keep + k / NGRAM_ORDER, dele + d / NGRAM_ORDER, add + a / NGRAM_ORDER
    return 100.0 * np.array([add, keep, dele])


def _sari_setup(sources, predictions, references, variant: str, lowercase: bool):
    """Per-example statistics: EASSE (n, 3, 3, 4) n-gram counts, or t2t (n, 3) part scores."""
    if variant not in SARI_VARIANTS:
        raise ValueError(f"unknown SARI variant {variant!r}; expected one of {SARI_VARIANTS}")
    _check_inputs(predictions, references, sources)
    fn = _easse_stats if variant == "easse" else _t2t_parts
    return np.stack(
        [
            fn(
                normalize_13a(s, lowercase),
                normalize_13a(h, lowercase),
                [normalize_13a(r, lowercase) for r in refs],
            )
            for s, h, refs in zip(sources, predictions, references, strict=True)
        ]
    )


def _sari_from_stats(stats: np.ndarray, variant: str, weights: np.ndarray) -> np.ndarray:
    """Corpus (add, keep, delete) from per-example statistics, each example counted ``weights[i]`` times."""
    if variant == "easse":
        return _easse_parts(np.tensordot(weights, stats, axes=1))
    return weights @ stats / weights.sum()


def sari(
    sources: Sequence[str],
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    variant: str = "easse",
    lowercase: bool = True,
) -> dict:
    """SARI in percent (0-100), corpus-level, with its parts and per-example scores.

    Returns ``{"sari", "add", "keep", "delete", "variant", "per_example": {"sari", "add", "keep", "delete"}}``
    (per-example values are lists aligned with the inputs). See the module docstring for the two variants.
    """
    stats = _sari_setup(sources, predictions, references, variant, lowercase)
    corpus = _sari_from_stats(stats, variant, np.ones(len(stats)))
    per = _easse_parts(stats) if variant == "easse" else stats
    result = {"sari": float(corpus.mean()), **{op: float(v) for op, v in zip(_OPS, corpus, strict=True)}}
    result["variant"] = variant
    result["per_example"] = {
        "sari": per.mean(axis=1).tolist(),
        **{op: per[:, i].tolist() for i, op in enumerate(_OPS)},
    }
    return result


def sari_ngram_parts(
    source: str, prediction: str, references: Sequence[str], *, lowercase: bool = True
) -> list[dict[str, float]]:
    """EASSE SARI of one example taken apart: for each n-gram order n = 1..4 (list index n - 1) the add, keep and
    delete F1 in percent. The example's SARI (``sari([source], [prediction], [references])``) is the mean of these
    twelve numbers; what a reader checks a hand computation against."""
    _check_inputs([prediction], [references], [source])
    stats = _easse_stats(
        normalize_13a(source, lowercase),
        normalize_13a(prediction, lowercase),
        [normalize_13a(r, lowercase) for r in references],
    )
    f1 = _easse_f1(stats)  # (3 operations, 4 orders)
    return [{op: float(f1[i, k]) for i, op in enumerate(_OPS)} for k in range(NGRAM_ORDER)]


# --------------------------------------------------------------------------------------------------------
# GLEU (JFLEG)
# --------------------------------------------------------------------------------------------------------


def _gleu_stats(src: list[str], hyp: list[str], ref: list[str]) -> list[int]:
    """JFLEG ``gleu_stats``: hyp length, ref length, then (matches - source-only matches, hyp n-grams) per n."""
    out = [len(hyp), len(ref)]
    for n in range(1, NGRAM_ORDER + 1):
        h, s, r = _ngrams(hyp, n), _ngrams(src, n), _ngrams(ref, n)
        s_diff = Counter({g: v for g, v in s.items() if g not in r})
        out += [max(sum((h & r).values()) - sum((h & s_diff).values()), 0), max(len(hyp) + 1 - n, 0)]
    return out


def _gleu_from_sums(sums: np.ndarray) -> np.ndarray:
    """JFLEG ``gleu`` on rows of summed statistics (no smoothing): 0 where any statistic is 0."""
    c, r = sums[..., 0], sums[..., 1]
    ok = (sums != 0).all(axis=-1)
    safe = np.where(sums != 0, sums, 1)
    log_prec = np.log(safe[..., 2::2] / safe[..., 3::2]).sum(axis=-1) / NGRAM_ORDER
    return np.where(ok, np.exp(np.minimum(0.0, 1 - r / np.where(ok, c, 1)) + log_prec), 0.0)


def gleu_reference_draws(n_examples: int, n_refs: int, iterations: int = GLEU_ITERATIONS) -> np.ndarray:
    """JFLEG's reference choice: row j is ``random.seed(j * 101)`` then one ``randint(0, n_refs - 1)`` per example."""
    rng = random.Random()
    draws = np.empty((iterations, n_examples), dtype=np.int64)
    for j in range(iterations):
        rng.seed(j * 101)
        draws[j] = [rng.randint(0, n_refs - 1) for _ in range(n_examples)]
    return draws


def _gleu_setup(sources, predictions, references, iterations: int) -> np.ndarray:
    """Statistics of every example against the reference each iteration drew: (iterations, n, 10)."""
    _check_inputs(predictions, references, sources)
    n_refs = len(references[0])
    for i, refs in enumerate(references):
        if len(refs) != n_refs:
            raise ValueError(
                f"GLEU needs the same number of references for every example: references[0] has {n_refs}, "
                f"references[{i}] has {len(refs)}"
            )
    per_ref = np.array(
        [
            [_gleu_stats(s.split(), h.split(), r.split()) for r in refs]
            for s, h, refs in zip(sources, predictions, references, strict=True)
        ],
        dtype=float,
    )  # (n, n_refs, 10)
    draws = gleu_reference_draws(len(predictions), n_refs, iterations)
    return per_ref[np.arange(len(predictions))[None, :], draws]


def gleu(
    sources: Sequence[str],
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    iterations: int = GLEU_ITERATIONS,
) -> dict:
    """JFLEG GLEU as a fraction (0-1): ``{"gleu", "std", "iterations"}`` (mean and std over the iterations)."""
    per_iter = _gleu_from_sums(_gleu_setup(sources, predictions, references, iterations).sum(axis=1))
    return {"gleu": float(per_iter.mean()), "std": float(per_iter.std()), "iterations": iterations}


# --------------------------------------------------------------------------------------------------------
# BLEU, iBLEU, exact match
# --------------------------------------------------------------------------------------------------------


def _bleu_setup(predictions, references) -> tuple[BLEU, np.ndarray]:
    """sacrebleu's per-sentence BLEU statistics (n, 2 + 2 * 4); references may vary in number per example."""
    _check_inputs(predictions, references)
    width = max(len(r) for r in references)
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
    metric = BLEU(force=True)
    return metric, np.asarray(metric._extract_corpus_statistics(list(predictions), streams), dtype=np.int64)


def _bleu_from_stats(metric: BLEU, stats: np.ndarray, weights: np.ndarray) -> float:
    return float(metric._compute_score_from_stats([int(x) for x in weights @ stats]).score)


def bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """sacrebleu corpus BLEU in percent (0-100), 13a tokenisation, case-sensitive, exp smoothing."""
    metric, stats = _bleu_setup(predictions, references)
    return _bleu_from_stats(metric, stats, np.ones(len(stats), dtype=np.int64))


def ibleu(
    sources: Sequence[str],
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    alpha: float = IBLEU_ALPHA,
) -> float:
    """iBLEU = ``alpha * BLEU(predictions, references) - (1 - alpha) * BLEU(predictions, sources)`` (percent)."""
    return build_corpus_metric("ibleu", sources, predictions, references, alpha=alpha)(
        range(len(predictions))
    )


def exact_match(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Percent of predictions equal to at least one reference after :func:`normalize_for_match`."""
    _check_inputs(predictions, references)
    return float(100.0 * np.mean(_match_vector(predictions, references)))


def _match_vector(predictions, references) -> np.ndarray:
    return np.array(
        [
            normalize_for_match(p) in {normalize_for_match(r) for r in refs}
            for p, refs in zip(predictions, references, strict=True)
        ],
        dtype=float,
    )


# --------------------------------------------------------------------------------------------------------
# Corpus metrics on example indices, bootstrap and paired tests
# --------------------------------------------------------------------------------------------------------


def _weights(idx: Sequence[int], n: int) -> np.ndarray:
    """How many times each of the ``n`` examples occurs in ``idx`` (a bootstrap resample)."""
    return np.bincount(np.asarray(idx, dtype=np.int64), minlength=n)


# The generation metrics, in the order reports list them: each entry of the kit's metric table
# (metrics.METRICS) is a builder ``(sources, predictions, references, **options) -> f(indices) -> value``.


def _sari_corpus(variant: str):
    def build(sources, predictions, references, **kwargs: Any) -> Callable[[Sequence[int]], float]:
        n = len(predictions)
        stats = _sari_setup(sources, predictions, references, variant, kwargs.get("lowercase", True))
        return lambda idx: float(_sari_from_stats(stats, variant, _weights(idx, n)).mean())

    return build


M.register_metric("sari", kind="generation", scale="percent", label="SARI")(_sari_corpus("easse"))
M.register_metric("sari_t2t", kind="generation", scale="percent", label="SARI (t2t)")(_sari_corpus("t2t"))


@M.register_metric("gleu", kind="generation", scale="percent", label="GLEU")
def _gleu_corpus(sources, predictions, references, **kwargs: Any) -> Callable[[Sequence[int]], float]:
    n = len(predictions)
    stats = _gleu_setup(sources, predictions, references, kwargs.get("iterations", GLEU_ITERATIONS))
    return lambda idx: float(_gleu_from_sums(np.einsum("i,jik->jk", _weights(idx, n), stats)).mean())


@M.register_metric("bleu", kind="generation", scale="percent", label="BLEU")
def _bleu_corpus(sources, predictions, references, **kwargs: Any) -> Callable[[Sequence[int]], float]:
    n = len(predictions)
    metric, stats = _bleu_setup(predictions, references)
    return lambda idx: _bleu_from_stats(metric, stats, _weights(idx, n))


@M.register_metric("ibleu", kind="generation", scale="percent", label="iBLEU")
def _ibleu_corpus(sources, predictions, references, **kwargs: Any) -> Callable[[Sequence[int]], float]:
    n = len(predictions)
    alpha = kwargs.get("alpha", IBLEU_ALPHA)
    metric, stats = _bleu_setup(predictions, references)
    _check_texts("sources", sources)
    _, src_stats = _bleu_setup(predictions, [[s] for s in sources])
    return lambda idx: (
        alpha * _bleu_from_stats(metric, stats, _weights(idx, n))
        - (1 - alpha) * _bleu_from_stats(metric, src_stats, _weights(idx, n))
    )


@M.register_metric("exact_match", kind="generation", scale="percent", label="exact match")
def _exact_match_corpus(sources, predictions, references, **kwargs: Any) -> Callable[[Sequence[int]], float]:
    _check_inputs(predictions, references)
    match = _match_vector(predictions, references)
    return lambda idx: float(100.0 * match[np.asarray(idx, dtype=np.int64)].mean())


CORPUS_METRICS = M.metric_names("generation")  # the names a registry generation task may list


def build_corpus_metric(
    name: str,
    sources: Sequence[str],
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    **kwargs: Any,
) -> Callable[[Sequence[int]], float]:
    """``f(indices) -> corpus metric`` on the examples at ``indices`` (repeats count repeatedly).

    Per-example statistics are computed once; each call sums them with the multiplicity of every index, so a
    bootstrap resample costs a weighted sum. ``f(range(n))`` equals the metric on the full data. ``name`` is one
    of :data:`CORPUS_METRICS` (``sari`` is the EASSE variant; ``kwargs``: ``lowercase`` for SARI, ``iterations``
    for GLEU, ``alpha`` for iBLEU). GLEU keeps each example's reference draws when it is resampled.
    """
    spec = M.METRICS.get(name)
    if spec is None or spec.kind != "generation":
        raise ValueError(f"unknown corpus metric {name!r}; expected one of {CORPUS_METRICS}")
    return spec.compute(sources, predictions, references, **kwargs)


def bootstrap_corpus_ci(
    corpus_metric: Callable[[Sequence[int]], float],
    n: int,
    *,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict:
    """Percentile bootstrap CI of a corpus metric ``f(indices)`` over ``n`` examples.

    Uses :func:`socialite_utils.metrics.bootstrap_values` on the example indices, so the draws are the kit's
    (``default_rng(seed)``). Returns ``{"value", "ci", "values"}`` (``values``: the resampled metric values).
    """
    value = float(corpus_metric(np.arange(n)))
    values = M.bootstrap_values(corpus_metric, np.arange(n), n_resamples=n_resamples, seed=seed)
    return {"value": value, "ci": M.percentile_ci(values, alpha, "bootstrap_corpus_ci"), "values": values}


def paired_corpus_test(
    metric_a: Callable[[Sequence[int]], float],
    metric_b: Callable[[Sequence[int]], float],
    n: int,
    *,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict:
    """Paired bootstrap of ``metric_a - metric_b`` (two systems on the same ``n`` examples, e.g. tuned vs base).

    Runs :func:`socialite_utils.metrics.paired_bootstrap` on the example indices (both systems see the same
    resamples), so the CI and two-sided p-value follow its definitions. Returns its dict:
    ``{"delta", "ci", "p_value", "metric_a", "metric_b"}``.
    """
    systems = {"a": metric_a, "b": metric_b}
    return M.paired_bootstrap(
        lambda idx, which: systems[which[0]](idx),
        np.arange(n),
        ["a"] * n,
        ["b"] * n,
        n_resamples=n_resamples,
        seed=seed,
        alpha=alpha,
    )


def compare_systems(
    metric: str,
    sources: Sequence[str],
    references: Sequence[Sequence[str]],
    outputs: dict[str, Sequence[str]],
    *,
    baseline: str,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    **kwargs: Any,
) -> dict:
    """One task, several systems (e.g. ``{"copy": sources, "base": ..., "tuned": ...}``) on one metric.

    Returns ``{"metric", "n", "systems": {name: {"value", "ci"}}, "vs_baseline": {name: paired test}}``: a
    bootstrap CI per system and a paired bootstrap of each other system minus ``baseline``
    (:func:`paired_corpus_test`). Every system is resampled with the same index draws (one ``seed``); pass
    ``metrics.task_seed(run_seed, task)`` so that tasks are resampled independently of each other.
    """
    if baseline not in outputs:
        raise KeyError(f"baseline {baseline!r} is not one of the systems {list(outputs)}")
    n = len(sources)
    fns = {
        name: build_corpus_metric(metric, sources, out, references, **kwargs) for name, out in outputs.items()
    }
    systems = {}
    for name, fn in fns.items():
        res = bootstrap_corpus_ci(fn, n, n_resamples=n_resamples, alpha=alpha, seed=seed)
        systems[name] = {"value": res["value"], "ci": res["ci"]}
    vs = {
        name: paired_corpus_test(fn, fns[baseline], n, n_resamples=n_resamples, alpha=alpha, seed=seed)
        for name, fn in fns.items()
        if name != baseline
    }
    return {"metric": metric, "n": n, "systems": systems, "vs_baseline": vs}
