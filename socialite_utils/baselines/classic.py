"""The classic baselines of notebook 05: two floors (``majority``, ``stratified``) and TF-IDF + logistic regression
(``tfidf_lr``); see :mod:`socialite_utils.baselines` for the decisions behind them."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import metrics as M
from ..claims import expected_stratified_macro_f1
from .views import HELD_OUT, SystemOutput, TaskData

TFIDF_C_GRID = (0.25, 1.0, 4.0)

# --------------------------------------------------------------------------------------------------------
# Floors and TF-IDF
# --------------------------------------------------------------------------------------------------------


def _task_rng(seed: int, task: str, what: str) -> np.random.Generator:
    # crc32, not hash(): Python salts str hashes per process, which would break reproducibility.
    return np.random.default_rng([seed, zlib.crc32(f"{task}|{what}".encode())])


def _label_distribution(view: TaskData) -> np.ndarray:
    """The label prior: the train split's shares before label-balanced sampling when the data card has them (a
    prior learned from balanced rows is a uniform guess, a weaker floor), else the shares of the train rows."""
    counts = Counter(view.natural_label_counts or Counter(r["label"] for r in view.train))
    return np.array([counts.get(lab, 0) for lab in view.labels], dtype=float) / sum(counts.values())


def _floor_output(view: TaskData, pred: list[str], dist: np.ndarray, kind: str, info: dict) -> SystemOutput:
    probs = dict(zip(view.labels, dist.tolist(), strict=True))
    expected = None
    score_kind = None
    if view.is_regression:
        if kind == "majority":
            expected, score_kind = [probs["high"]] * len(pred), "p_high"
        else:
            expected, score_kind = [1.0 if p == "high" else 0.0 for p in pred], "sampled_bin"
    return SystemOutput(
        pred=pred,
        probs=[probs] * len(pred),
        expected_score=expected,
        score_kind=score_kind,
        train_n=len(view.train),
        train_source=view.train_source or "none",
        info=info,
    )


def fit_predict_floors(views: dict[str, TaskData], seed: int = 0) -> dict[str, dict[str, SystemOutput | str]]:
    """``{"majority": {task: output}, "stratified": {...}}``; a task with nothing to train on gets a status string.

    The stratified output is one seeded draw (its predictions, for tables and per-example views) and carries
    ``info["expected_macro_f1"]``, the floor's EXPECTED macro-F1 over draws on these test rows
    (:func:`socialite_utils.claims.expected_stratified_macro_f1`, the task's full label list): the number to
    compare with, and the one the tuned-vs-floor claim uses."""
    out: dict[str, dict[str, SystemOutput | str]] = {"majority": {}, "stratified": {}}
    for name, view in views.items():
        if not view.train:
            out["majority"][name] = out["stratified"][name] = f"{HELD_OUT}: no few-shot pool rows"
            continue
        dist = _label_distribution(view)
        # argmax returns the first maximum: ties go to the earlier label in canonical order.
        majority = view.labels[int(np.argmax(dist))]
        n = len(view.test)
        prior = {"prior": "train_before_balancing"} if view.natural_label_counts else {}
        out["majority"][name] = _floor_output(
            view, [majority] * n, dist, "majority", {"label": majority, **prior}
        )
        draws = _task_rng(seed, name, "stratified").choice(len(view.labels), size=n, p=dist)
        # One draw's macro-F1 moves by a few points between seeds; the floor is its expectation over draws.
        expected = (
            expected_stratified_macro_f1([r["label"] for r in view.test], dist, labels=view.labels)
            if n
            else None
        )
        out["stratified"][name] = _floor_output(
            view,
            [view.labels[k] for k in draws],
            dist,
            "stratified",
            {"seed": seed, "expected_macro_f1": expected, **prior},
        )
    return out


class _Featurizer:
    """TF-IDF on ``text``; pair tasks add a second vectorizer on ``text_b`` and stack the features."""

    def __init__(self, pair: bool):
        from sklearn.feature_extraction.text import TfidfVectorizer

        def vec():
            return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=50_000)

        self.text = vec()
        self.text_b = vec() if pair else None

    def fit_transform(self, rows: list[dict]):
        from scipy.sparse import hstack

        x = self.text.fit_transform([r["text"] for r in rows])
        if self.text_b is None:
            return x
        return hstack([x, self.text_b.fit_transform([r.get("text_b") or "" for r in rows])]).tocsr()

    def transform(self, rows: list[dict]):
        from scipy.sparse import hstack

        x = self.text.transform([r["text"] for r in rows])
        if self.text_b is None:
            return x
        return hstack([x, self.text_b.transform([r.get("text_b") or "" for r in rows])]).tocsr()


def _fit_lr(x, y: list[str], c: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed).fit(x, y)


def _lr_probs(clf, x, labels: list[str]) -> np.ndarray:
    """Probabilities over the task's full label list (labels absent from training get 0)."""
    p = clf.predict_proba(x)
    full = np.zeros((x.shape[0], len(labels)))
    for j, lab in enumerate(clf.classes_):
        full[:, labels.index(lab)] = p[:, j]
    return full


def fit_predict_tfidf(
    views: dict[str, TaskData], seed: int = 0, c_grid: Sequence[float] = TFIDF_C_GRID
) -> dict[str, dict[str, SystemOutput | str]]:
    """``{"tfidf_lr": {task: output}}``: TF-IDF + class-balanced logistic regression per task.

    C is chosen on the validation split (macro-F1 over the task's labels; ties -> the earlier grid value) when the
    task has one, else C = 1. A single-class training set cannot fit a classifier: it predicts that class, flagged.
    """
    out: dict[str, SystemOutput | str] = {}
    for name, view in views.items():
        if not view.train:
            out[name] = f"{HELD_OUT}: no few-shot pool rows"
            continue
        y = [r["label"] for r in view.train]
        info: dict[str, Any] = {}
        if len(set(y)) < 2:
            dist = _label_distribution(view)
            probs = dict(zip(view.labels, dist.tolist(), strict=True))
            info["flag"] = f"single-class training data: always predicts {y[0]!r}"
            out[name] = SystemOutput(
                pred=[y[0]] * len(view.test),
                probs=[probs] * len(view.test),
                expected_score=[probs["high"]] * len(view.test) if view.is_regression else None,
                score_kind="p_high" if view.is_regression else None,
                train_n=len(y),
                train_source=view.train_source or "none",
                info=info,
            )
            continue
        feats = _Featurizer(view.pair)
        x_train = feats.fit_transform(view.train)
        c = 1.0
        if view.validation and len(c_grid) > 1:
            x_val = feats.transform(view.validation)
            gold = [r["label"] for r in view.validation]
            f1s = [
                M.macro_f1(gold, _fit_lr(x_train, y, cc, seed).predict(x_val).tolist(), view.labels)
                for cc in c_grid
            ]
            c = float(c_grid[int(np.argmax(f1s))])
            info["validation_macro_f1"] = dict(zip(map(str, c_grid), f1s, strict=True))
        info["C"] = c
        clf = _fit_lr(x_train, y, c, seed)
        p = _lr_probs(clf, feats.transform(view.test), view.labels)
        pred = [view.labels[k] for k in p.argmax(axis=1)]
        out[name] = SystemOutput(
            pred=pred,
            probs=[dict(zip(view.labels, row.tolist(), strict=True)) for row in p],
            expected_score=p[:, view.labels.index("high")].tolist() if view.is_regression else None,
            score_kind="p_high" if view.is_regression else None,
            train_n=len(y),
            train_source=view.train_source or "none",
            info=info,
        )
    return {"tfidf_lr": out}


__all__ = ["TFIDF_C_GRID", "fit_predict_floors", "fit_predict_tfidf"]
