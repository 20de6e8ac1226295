"""Where a model errs (notebook 04): confusion matrices, the most confident errors, accuracy by input length and
by gold-label frequency."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats

from .. import metrics
from .calibration import answer_confidence
from .invalid_answers import row_input_text, split_words

INVALID_COLUMN = "(invalid)"  # confusion-matrix column for answers that are no label at all

# ----------------------------------------------------------------------------------------------------------------
# Confusion matrix, per-label metrics, confident errors
# ----------------------------------------------------------------------------------------------------------------


def build_confusion_matrix(
    gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]
) -> dict[str, Any]:
    """Counts and row-normalised rates: rows are gold labels, columns the labels plus ``(invalid)``.

    ``(invalid)`` collects predictions that are no label (``None`` or a string outside ``labels``). A row whose
    gold label has no examples has rates ``None`` (undefined, not zero). Returns ``{"labels", "columns",
    "counts", "row_normalized", "support"}``.
    """
    if len(gold) != len(pred):
        raise ValueError(f"length mismatch: gold has {len(gold)}, pred has {len(pred)}")
    labels = list(labels)
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted({str(g) for g in gold if g not in index})
    if unknown:
        raise ValueError(f"gold label(s) {unknown} are not in labels {labels}")
    k = len(labels)
    counts = np.zeros((k, k + 1), dtype=int)
    for g, p in zip(gold, pred, strict=True):
        counts[index[g], index.get(p, k) if p is not None else k] += 1
    support = counts.sum(axis=1)
    normalized = [
        [float(c / support[i]) for c in counts[i]] if support[i] else [None] * (k + 1) for i in range(k)
    ]
    return {
        "labels": labels,
        "columns": [*labels, INVALID_COLUMN],
        "counts": counts.tolist(),
        "row_normalized": normalized,
        "support": support.tolist(),
    }


def compute_confident_errors(rows: Sequence[dict], k: int = 5) -> list[dict]:
    """The ``k`` wrong score-mode answers the model was most sure of (highest probability on its wrong label).

    Each: ``{"id", "text", "text_b", "gold", "predicted", "confidence", "p_gold"}``; rows without ``probs``
    (generate mode) are skipped. Ties are broken by id so the list is deterministic.
    """
    errors = []
    for r in rows:
        conf = answer_confidence(r)
        if conf is None or r["correct"]:
            continue
        errors.append(
            {
                "id": r["id"],
                "text": r["text"],
                "text_b": r.get("text_b"),
                "gold": r["gold"],
                "predicted": r.get("parsed"),
                "confidence": conf,
                "p_gold": float(r["probs"].get(r["gold"], 0.0)),
            }
        )
    errors.sort(key=lambda e: (-e["confidence"], e["id"]))
    return errors[:k]


# ----------------------------------------------------------------------------------------------------------------
# Slices: input length and label frequency
# ----------------------------------------------------------------------------------------------------------------


def wilson_interval(k: int, n: int) -> tuple[float, float] | None:
    """Wilson 95% interval for k successes in n, in percent (None for n = 0)."""
    if n == 0:
        return None
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return (100.0 * float(ci.low), 100.0 * float(ci.high))


def _slice_stats(rows: Sequence[dict]) -> dict[str, Any]:
    """n, correct count, accuracy (percent) with a Wilson CI, and macro-F1 over the slice's gold labels."""
    n = len(rows)
    k = sum(bool(r["correct"]) for r in rows)
    out: dict[str, Any] = {"n": n, "n_correct": k, "accuracy": None, "accuracy_ci": None, "macro_f1": None}
    if n:
        out["accuracy"] = 100.0 * k / n
        out["accuracy_ci"] = wilson_interval(k, n)
        out["macro_f1"] = metrics.macro_f1([r["gold"] for r in rows], [r.get("parsed") for r in rows])
    return out


def word_length(row: dict) -> int:
    """Words in the input (text plus text_b)."""
    return len(split_words(row_input_text(row)))


def token_length_fn(tokenizer: Any) -> Callable[[dict], int]:
    """A length function counting the tokenizer's tokens in the input (text plus text_b)."""
    return lambda row: len(tokenizer(row_input_text(row), add_special_tokens=False)["input_ids"])


def compute_length_slices(
    rows: Sequence[dict], n_bins: int = 3, length_fn: Callable[[dict], int] = word_length
) -> list[dict]:
    """Accuracy by input length: ``n_bins`` bins at the quantiles of these rows' lengths (tertiles by default).

    Bin i holds lengths in ``(edge_i, edge_{i+1}]`` (the first also takes its lower edge); repeated quantiles give
    empty bins, reported with ``n = 0``. Each bin: ``{"bin", "lo", "hi", "n", "n_correct", "accuracy",
    "accuracy_ci", "macro_f1"}`` (macro-F1 over the gold labels present in the bin).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if not rows:
        return []
    lengths = np.array([length_fn(r) for r in rows], dtype=float)
    edges = np.quantile(lengths, np.linspace(0, 1, n_bins + 1))
    which = np.clip(np.searchsorted(edges, lengths, side="left") - 1, 0, n_bins - 1)
    out = []
    for i in range(n_bins):
        members = [r for r, w in zip(rows, which, strict=True) if w == i]
        out.append({"bin": i, "lo": float(edges[i]), "hi": float(edges[i + 1]), **_slice_stats(members)})
    return out


def compute_frequency_slices(rows: Sequence[dict], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy on examples whose gold label is rare versus frequent in these rows.

    A label is ``rare`` when its share of the rows is below the uniform share ``1 / len(labels)``, ``frequent``
    otherwise; labels with no example belong to neither. Returns ``{"threshold", "shares", "frequent": {...,
    "labels"}, "rare": {..., "labels"}}`` where each slice has the keys of the length slices.
    """
    n = len(rows)
    gold_counts = Counter(r["gold"] for r in rows)
    threshold = 1.0 / len(labels)
    shares = {lab: gold_counts.get(lab, 0) / n if n else 0.0 for lab in labels}
    rare = [lab for lab in labels if 0 < shares[lab] < threshold]
    frequent = [lab for lab in labels if shares[lab] >= threshold]
    return {
        "threshold": threshold,
        "shares": shares,
        "frequent": {"labels": frequent, **_slice_stats([r for r in rows if r["gold"] in frequent])},
        "rare": {"labels": rare, **_slice_stats([r for r in rows if r["gold"] in rare])},
    }


__all__ = [
    "INVALID_COLUMN",
    "build_confusion_matrix",
    "compute_confident_errors",
    "compute_frequency_slices",
    "compute_length_slices",
    "token_length_fn",
    "wilson_interval",
    "word_length",
]
