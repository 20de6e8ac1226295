"""Calibration of score-mode probabilities (notebook 04): expected calibration error and reliability bins."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import metrics


def answer_confidence(row: dict) -> float | None:
    """Probability the model gave its own answer (score mode), or None."""
    probs = row.get("probs")
    if not probs:
        return None
    pred = row.get("parsed")
    return float(probs[pred]) if pred in probs else float(max(probs.values()))


def compute_calibration(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> dict:
    """ECE and reliability bins (metrics.py) plus n, mean confidence and accuracy, all as fractions (0-1)."""
    bins = metrics.reliability_bins(confidences, correct, n_bins)
    return {
        "n": len(confidences),
        "ece": metrics.expected_calibration_error(confidences, correct, n_bins),
        "mean_confidence": float(np.mean(confidences)),
        "accuracy": float(np.mean(np.asarray(correct, dtype=float))),
        "bins": bins,
    }


def calibration_from_rows(rows: Sequence[dict], n_bins: int = 10) -> dict | None:
    """:func:`compute_calibration` of score-mode rows: confidence = probability of the answer given, correct =
    the row's ``correct``. None when no row has ``probs``."""
    pairs = [(c, bool(r["correct"])) for r in rows if (c := answer_confidence(r)) is not None]
    if not pairs:
        return None
    return compute_calibration([c for c, _ in pairs], [k for _, k in pairs], n_bins)


__all__ = ["answer_confidence", "calibration_from_rows", "compute_calibration"]
