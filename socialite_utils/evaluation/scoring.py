"""Scoring a causal LM on classification prompts: label log-probabilities ("score") or free generation ("generate").

Two evaluation modes behind one interface:

- **score**: for each prompt, the log-probability of every candidate label given the prompt
  (`score_label_logprobs`), turned into a distribution over the label set by `label_probabilities`.
  It never produces an invalid answer and costs less than one forward pass per prompt: a token prefix common to
  many prompts (a task's instruction and few-shot examples) runs once per group, each prompt then runs only from
  where it differs (only its last position projected onto the vocabulary), and multi-token labels run on a copy
  of its KV cache. Generating costs the whole prompt pass plus one decoding step per new token, so how much score
  mode saves depends on how much of the prompts is shared and how long the model talks (benchmarks/scoring.md).
- **generate**: greedy decoding (`generate_answers`) then the paper's parsing protocol (`parse_answer`):
  the first line, stripped, lower-cased, matched exactly against the label words; anything else is invalid.

Tokenization follows TRL's SFTTrainer (trl 1.16, `trl/trainer/sft_trainer.py::tokenize_fn`) so that the label
tokens scored here are exactly the tokens a tuned model was trained to produce:

- string prompt: TRL tokenizes `prompt` and `prompt + completion` (completion = " " + label + EOS) *jointly*,
  each with the tokenizer's special tokens, and the completion starts where the two token lists diverge
  (`trl.data_utils.common_prefix_length`). For byte-level BPE (SmolLM2, Llama 3) this equals
  `prompt_ids + encode(" " + label, add_special_tokens=False)`, but SentencePiece tokenizers (Llama 2) encode a
  standalone " joy" differently from "...Output: joy", so we reproduce the joint split rather than concatenating.
- chat prompt (list of messages): `apply_chat_template(prompt, add_generation_prompt=True)` versus
  `apply_chat_template(prompt + [{"role": "assistant", "content": label}])`; the completion is again what follows
  the common prefix: the bare label followed by the template's end-of-turn tokens.

By default (`eos=False`) the scored completion is the label tokens only (TRL's completion minus EOS / end of turn).
With `eos=True` it is exactly TRL's completion, which lets a tuned model separate a label from a longer label it
prefixes ("camera" vs "camera with flash" in tweet_emoji): without the end marker, P("camera") >= P("camera with
flash") always holds under `normalize="sum"`.
"""

from __future__ import annotations

import copy
import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from ..tokens import Prompt, common_prefix_length, encode_prompt, encode_prompt_completion

# Papermill logs every progress refresh as a line; a few seconds between refreshes keeps logs readable while a
# Jupyter widget still moves visibly.
PROGRESS_MININTERVAL_S = 5.0

_NORMALIZATIONS = ("sum", "mean")


# ----------------------------------------------------------------------------------------------------------------
# Batching helpers
# ----------------------------------------------------------------------------------------------------------------


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _pad_id(tokenizer: Any) -> int:
    # Any id works under the attention mask; prefer the tokenizer's own pad token for readable debugging.
    for tok_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tok_id is not None:
            return int(tok_id)
    return 0


def _left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Left-padded input_ids, attention_mask and position_ids for a batch of id lists.

    position_ids = cumsum(attention_mask) - 1 so each sequence starts at position 0 whatever its padding; padded
    slots get position 1 (as transformers' generate does) -- they are masked out anyway.
    """
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        if seq:
            input_ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            attention_mask[row, width - len(seq) :] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
    return {
        "input_ids": input_ids.to(device),
        "attention_mask": attention_mask.to(device),
        "position_ids": position_ids.to(device),
    }


def _normalize_label_sets(prompts: Sequence[Prompt], label_sets: Sequence[Any]) -> list[list[str]]:
    """One label list per prompt, validated: a single list of strings is shared by every prompt."""
    if not label_sets:
        raise ValueError("label_sets is empty: give one label list for all prompts or one list per prompt")
    if all(isinstance(x, str) for x in label_sets):
        per_prompt = [list(label_sets)] * len(prompts)
    else:
        if len(label_sets) != len(prompts):
            raise ValueError(f"label_sets has {len(label_sets)} lists for {len(prompts)} prompts")
        per_prompt = [list(x) for x in label_sets]
    for i, labels in enumerate(per_prompt):
        if not labels or not all(isinstance(lab, str) and lab for lab in labels):
            raise ValueError(f"label_sets[{i}] must be a non-empty list of non-empty strings, got {labels!r}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"label_sets[{i}] has duplicate labels: {labels!r}")
    return per_prompt


# ----------------------------------------------------------------------------------------------------------------
# Score mode
# ----------------------------------------------------------------------------------------------------------------


# Prompts of one task share their instruction (and few-shot examples): about 60% of a zero-shot prompt's tokens
# and 75% of a 3-shot prompt's on the local tasks. Running that common prefix once per group instead of once per
# prompt is where score mode's speed comes from (benchmarks/scoring.md). Shorter shared prefixes are not worth a
# separate forward and a cache copy per batch.
MIN_SHARED_PREFIX_TOKENS = 16


@dataclass
class _Prefix:
    """A token prefix common to a group of prompts and its KV cache (batch of one)."""

    length: int
    cache: Any


def _group_by_prefix(
    items: Sequence[tuple[int, list[int], dict[str, list[int]]]], min_prefix: int
) -> list[tuple[int, list[tuple[int, list[int], dict[str, list[int]]]]]]:
    """Split planned prompts into groups that share a token prefix: `[(prefix length, items), ...]`.

    Sorting the id lists puts prompts with long common prefixes next to each other, so every candidate group is a
    run of neighbours. A run either forms one group (its prefix then saves (members - 1) x prefix tokens) or splits
    where neighbours share least, whichever saves more tokens. So prompts of several tasks that share only a chat
    template's system turn split into one group per task, each with its whole instruction as prefix. A prefix
    always leaves each member at least one token of its own (the position whose logits score the labels) and is
    at least `min_prefix` tokens long. Prompts that share too little end up together in one last group with
    prefix length 0 (scored whole).
    """
    ordered = sorted(items, key=lambda item: item[1])
    lengths = [len(ctx) for _, ctx, _ in ordered]
    # lcp[i]: tokens shared by neighbours i and i + 1; what a run shares is the minimum over its neighbours.
    lcp = [common_prefix_length(a[1], b[1]) for a, b in zip(ordered, ordered[1:], strict=False)]
    # Best plan per run [a, b): (tokens saved, [(prefix length, a, b), ...]); filled children first (explicit stack:
    # nested prefixes can be deeper than Python's recursion limit).
    plans: dict[tuple[int, int], tuple[int, list[tuple[int, int, int]]]] = {}
    stack = [(0, len(ordered), False)]
    while stack:
        a, b, children_done = stack.pop()
        if b - a < 2:
            plans[a, b] = (0, [])
            continue
        weakest = min(lcp[a : b - 1])
        cuts = [a] + [i + 1 for i in range(a, b - 1) if lcp[i] == weakest] + [b]
        runs = list(zip(cuts, cuts[1:], strict=False))
        if not children_done:
            stack.append((a, b, True))
            stack.extend((x, y, False) for x, y in runs)
            continue
        length = min(weakest, min(lengths[a:b]) - 1)
        own = (b - a - 1) * length if length >= min_prefix else 0
        split = sum(plans[r][0] for r in runs)
        if own and own >= split:
            plans[a, b] = (own, [(length, a, b)])
        else:
            plans[a, b] = (split, [group for r in runs for group in plans[r][1]])
    groups = plans[0, len(ordered)][1] if ordered else []
    out = [(length, list(ordered[a:b])) for length, a, b in groups]
    grouped = {i for _, a, b in groups for i in range(a, b)}
    # Prompts without a useful shared prefix still batch together.
    alone = [item for i, item in enumerate(ordered) if i not in grouped]
    return out + ([(0, alone)] if alone else [])


def _prefix_cache(model: Any, ids: list[int], device: torch.device) -> Any | None:
    """KV cache of one token prefix, or None when the model cannot reuse one (no cache, no batch repeat)."""
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)
    out = model(
        input_ids=input_ids, attention_mask=torch.ones_like(input_ids), logits_to_keep=1, use_cache=True
    )
    cache = out.past_key_values
    if cache is None or not hasattr(cache, "batch_repeat_interleave"):
        return None
    return cache


def _logprob_sum(logprobs: torch.Tensor, targets: Sequence[int]) -> float:
    """Sum of logprobs[k, targets[k]] over k (logprobs: (len(targets), V))."""
    index = torch.tensor(targets, device=logprobs.device)[:, None]
    return logprobs.gather(-1, index).sum().item()


def _score_shared_batch(
    model: Any,
    batch: Sequence[tuple[int, list[int], dict[str, list[int]]]],
    pad_id: int,
    device: torch.device,
    pair_chunk: int,
    prefix: _Prefix | None = None,
) -> list[dict[str, float]]:
    """Summed label log-probs for prompts whose labels all follow the same context: ONE forward over the
    contexts (only the last position projected onto the vocabulary), then -- only for labels longer than one
    token -- the remaining label tokens run on top of a copy of the contexts' KV cache.

    With `prefix`, every context in the batch starts with `prefix.length` tokens whose KV cache is already
    computed: only the rest of each context runs, left-padded after the prefix (the pads sit between prefix and
    suffix, masked out; positions continue from the prefix length)."""
    suffixes = [ctx[prefix.length :] if prefix else ctx for _, ctx, _ in batch]
    inputs = _left_pad(suffixes, pad_id, device)
    needs_cache = any(len(comp) > 1 for _, _, comps in batch for comp in comps.values())
    if prefix is None:
        out = model(**inputs, logits_to_keep=1, use_cache=needs_cache)
    else:
        # The forward appends to the cache it is given: hand it a per-batch copy, one row per prompt.
        cache = copy.deepcopy(prefix.cache)
        cache.batch_repeat_interleave(len(batch))
        suffix_mask = inputs["attention_mask"]
        ones = torch.ones((len(batch), prefix.length), dtype=suffix_mask.dtype, device=device)
        inputs["attention_mask"] = torch.cat([ones, suffix_mask], dim=1)
        inputs["position_ids"] = inputs["position_ids"] + prefix.length
        out = model(**inputs, past_key_values=cache, logits_to_keep=1, use_cache=True)
    # (B, V): the next-token distribution after each context, i.e. of every label's first token.
    first = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
    totals = [
        {lab: first[row, comp[0]].item() for lab, comp in comps.items()}
        for row, (*_, comps) in enumerate(batch)
    ]
    if not needs_cache:
        return totals
    cache = out.past_key_values
    if cache is None:
        raise RuntimeError(
            f"{type(model).__name__} returned no KV cache; score with share_prefix=False instead"
        )

    # Continuations are right-padded after the (left-padded) contexts: a pad at the END of a row cannot affect
    # the real tokens before it under causal attention. Positions continue from each context's true length.
    context_mask = inputs["attention_mask"]
    context_len = context_mask.sum(-1)
    pairs = [
        (row, lab, comp)
        for row, (*_, comps) in enumerate(batch)
        for lab, comp in comps.items()
        if len(comp) > 1
    ]
    for start in range(0, len(pairs), pair_chunk):
        chunk = pairs[start : start + pair_chunk]
        rows = torch.tensor([row for row, _, _ in chunk], device=device)
        width = max(len(comp) - 1 for *_, comp in chunk)
        cont_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        cont_mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for k, (*_, comp) in enumerate(chunk):
            cont_ids[k, : len(comp) - 1] = torch.tensor(comp[:-1])
            cont_mask[k, : len(comp) - 1] = 1
        # Selecting rows and the forward both change the cache they are given: copy it, except for the last chunk.
        sub_cache = cache if start + pair_chunk >= len(pairs) else copy.deepcopy(cache)
        sub_cache.batch_select_indices(rows)
        logits = model(
            input_ids=cont_ids.to(device),
            attention_mask=torch.cat([context_mask[rows], cont_mask.to(device)], dim=1),
            position_ids=context_len[rows, None] + torch.arange(width, device=device)[None, :],
            past_key_values=sub_cache,
            use_cache=True,
        ).logits  # (pairs, width, V): label positions only
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        for k, (row, lab, comp) in enumerate(chunk):
            # Continuation position t predicts label token t + 1.
            totals[row][lab] += _logprob_sum(logprobs[k, : len(comp) - 1], comp[1:])
    return totals


def _score_separate_batch(
    model: Any, batch: Sequence[tuple[int, str, list[int], list[int]]], pad_id: int, device: torch.device
) -> list[float]:
    """Summed label log-probs for context+label sequences run whole, projecting only the label positions."""
    inputs = _left_pad([ctx + comp for _, _, ctx, comp in batch], pad_id, device)
    # With left padding every sequence ends at the last column, so the logits predicting a completion of length m
    # sit in the m columns before the last one: keep max_m + 1 columns, never all of them.
    max_m = max(len(comp) for *_, comp in batch)
    logits = model(**inputs, logits_to_keep=max_m + 1).logits  # (B, max_m + 1, V)
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    # Kept column k predicts the token at kept column k + 1; a completion of length m fills the last m kept
    # columns, so its predictions are columns [max_m - m, max_m).
    return [
        _logprob_sum(logprobs[row, max_m - len(comp) : max_m], comp) for row, (*_, comp) in enumerate(batch)
    ]


def score_label_logprobs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    label_sets: Sequence[str] | Sequence[Sequence[str]],
    *,
    batch_size: int = 16,
    normalize: str = "sum",
    eos: bool = False,
    share_prefix: bool = True,
    share_common_prefix: bool = True,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Log-probability of every candidate label given each prompt, as `[{label: logprob}, ...]` in prompt order.

    `label_sets` is one label list per prompt, or a single list shared by all. `normalize="mean"` divides by the
    number of label tokens (length normalisation). `eos=True` also scores the end marker TRL appends after the
    label (see module docstring).

    Cost: a prompt whose labels are all single tokens takes ONE forward pass (batched, left-padded) projecting only
    the last position onto the vocabulary. With multi-token labels and `share_prefix=True` (default) the prompt
    still runs once and only the label tokens run again, on a copy of its KV cache. `share_prefix=False` runs every
    prompt+label sequence whole (batch_size sequences per forward, only label positions projected) -- also the
    fallback when a tokenizer merges a label into the end of the prompt. Works on PEFT-wrapped models.

    `share_common_prefix=True` (default) also runs a token prefix common to many prompts -- a task's instruction
    and few-shot examples -- once per group instead of once per prompt, and each prompt only from where it differs
    (see `MIN_SHARED_PREFIX_TOKENS`). The tokens the model sees are the same either way; only the work is shared.
    """
    if normalize not in _NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {_NORMALIZATIONS}, got {normalize!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    per_prompt = _normalize_label_sets(prompts, label_sets)

    shared, separate = _plan_label_scoring(tokenizer, prompts, per_prompt, eos=eos, share_prefix=share_prefix)
    totals: list[dict[str, float]] = [dict.fromkeys(labels, math.nan) for labels in per_prompt]
    # Longest first: padding stays small within a batch, and an out-of-memory batch shows up at once.
    if share_common_prefix:
        groups = _group_by_prefix(shared, MIN_SHARED_PREFIX_TOKENS)
    else:
        groups = [(0, shared)] if shared else []
    separate.sort(key=lambda item: -(len(item[2]) + len(item[3])))
    device, pad_id = _device(model), _pad_id(tokenizer)

    was_training = model.training
    model.eval()
    bar = tqdm(
        total=len(shared) + len(separate),
        desc="score",
        unit="seq",
        disable=not progress,
        mininterval=PROGRESS_MININTERVAL_S,
    )
    try:
        with torch.inference_mode():
            for length, members in groups:
                prefix = None
                if length:
                    cache = _prefix_cache(model, members[0][1][:length], device)
                    prefix = _Prefix(length, cache) if cache is not None else None
                members = sorted(members, key=lambda item: -len(item[1]))
                for start in range(0, len(members), batch_size):
                    batch = members[start : start + batch_size]
                    scores = _score_shared_batch(model, batch, pad_id, device, batch_size, prefix)
                    for (i, *_), by_label in zip(batch, scores, strict=True):
                        totals[i].update(by_label)
                    bar.update(len(batch))
            for start in range(0, len(separate), batch_size):
                batch = separate[start : start + batch_size]
                for (i, lab, *_), score in zip(
                    batch, _score_separate_batch(model, batch, pad_id, device), strict=True
                ):
                    totals[i][lab] = score
                bar.update(len(batch))
    finally:
        bar.close()
        model.train(was_training)

    return totals if normalize == "sum" else _per_label_token(totals, shared, separate)


_Shared = list[tuple[int, list[int], dict[str, list[int]]]]
_Separate = list[tuple[int, str, list[int], list[int]]]


def _plan_label_scoring(
    tokenizer: Any, prompts: Sequence[Prompt], per_prompt: list[list[str]], *, eos: bool, share_prefix: bool
) -> tuple[_Shared, _Separate]:
    """shared: (prompt index, context ids, {label: completion ids}) when every label follows the same context;
    separate: one (prompt index, label, context ids, completion ids) per label otherwise."""
    shared: _Shared = []
    separate: _Separate = []
    for i, (prompt, labels) in enumerate(zip(prompts, per_prompt, strict=True)):
        prompt_ids = encode_prompt(tokenizer, prompt)
        pairs = {lab: encode_prompt_completion(tokenizer, prompt, lab, eos=eos) for lab in labels}
        same_context = all(ctx == prompt_ids for ctx, _ in pairs.values())
        single_token = all(len(comp) == 1 for _, comp in pairs.values())
        if same_context and (single_token or share_prefix):
            shared.append((i, prompt_ids, {lab: comp for lab, (_, comp) in pairs.items()}))
        else:
            separate.extend((i, lab, ctx, comp) for lab, (ctx, comp) in pairs.items())
    return shared, separate


def _per_label_token(
    totals: list[dict[str, float]], shared: _Shared, separate: _Separate
) -> list[dict[str, float]]:
    """Length normalisation: each label's summed log-probability divided by its number of tokens."""
    n_tokens = {(i, lab): len(comp) for i, _, comps in shared for lab, comp in comps.items()} | {
        (i, lab): len(comp) for i, lab, _, comp in separate
    }
    return [
        {lab: total / n_tokens[i, lab] for lab, total in scores.items()} for i, scores in enumerate(totals)
    ]


def label_probabilities(logprobs: dict[str, float]) -> dict[str, float]:
    """Softmax of label log-probabilities over the label set (same keys and order)."""
    if not logprobs:
        raise ValueError("label_probabilities needs at least one label")
    values = torch.tensor(list(logprobs.values()), dtype=torch.float64)
    if torch.isnan(values).any() or torch.isneginf(values).all():
        raise ValueError(f"label log-probabilities cannot be normalised: {logprobs!r}")
    probs = torch.softmax(values, dim=0).tolist()
    return dict(zip(logprobs.keys(), probs, strict=True))


# ----------------------------------------------------------------------------------------------------------------
# Generate mode


# ----------------------------------------------------------------------------------------------------------------
# Held-out generalist rows: the training loss on rows the model never saw
# ----------------------------------------------------------------------------------------------------------------


def score_response_nll(
    model: Any, tokenizer: Any, rows: Sequence[dict], *, batch_size: int = 8, max_length: int = 512
) -> dict[str, Any]:
    """Per-token negative log-likelihood of each row's response (``output``, + EOS) given its prompt.

    The tokens are TRL's training completion (``encode_prompt_completion(..., eos=True)``), so this is the
    training loss on held-out rows: ``nll_per_token`` = -(sum of the response tokens' log-probs) / (their number),
    pooled over rows. Sequences longer than ``max_length`` keep their first ``max_length`` tokens (a row whose
    prompt alone fills them is counted in ``n_skipped``). Returns ``{"nll_per_token", "n_tokens", "n_rows",
    "n_skipped", "per_row": [{"id", "logprob_sum", "n_tokens"}]}``.
    """
    if not rows:
        raise ValueError("score_response_nll: no rows (is the held-out generalist slice empty?)")
    encoded = []
    for r in rows:
        context, completion = encode_prompt_completion(tokenizer, r["prompt"], r["output"], eos=True)
        ids = (context + completion)[:max_length]
        if len(ids) > len(context):
            encoded.append((r["id"], ids, len(context)))
    device, pad = _device(model), _pad_id(tokenizer)
    per_row = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            batch = encoded[start : start + batch_size]
            inputs = _left_pad([ids for _, ids, _ in batch], pad, device)
            logprobs = torch.log_softmax(model(**inputs).logits.float(), dim=-1)
            width = inputs["input_ids"].shape[1]
            for row, (rid, ids, n_ctx) in enumerate(batch):
                offset = width - len(ids)
                # the logits at position p predict token p + 1
                lp = logprobs[row, offset + n_ctx - 1 : offset + len(ids) - 1]
                per_row.append(
                    {"id": rid, "logprob_sum": _logprob_sum(lp, ids[n_ctx:]), "n_tokens": len(ids) - n_ctx}
                )
    model.train(was_training)
    n_tokens = sum(p["n_tokens"] for p in per_row)
    return {
        "nll_per_token": -sum(p["logprob_sum"] for p in per_row) / n_tokens if n_tokens else math.nan,
        "n_tokens": n_tokens,
        "n_rows": len(per_row),
        "n_skipped": len(rows) - len(per_row),
        "per_row": per_row,
    }


# ----------------------------------------------------------------------------------------------------------------


def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int = 20,
    batch_size: int = 8,
    progress: bool = True,
) -> list[str]:
    """Greedy continuation of each prompt, decoded without special tokens: only the NEW text ("" if none)."""
    from transformers import GenerationConfig

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    if empty := [i for i, ids in enumerate(encoded) if not ids]:
        raise ValueError(f"prompts {empty[:10]} encode to no tokens: there is nothing to continue")
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    device, pad_id = _device(model), _pad_id(tokenizer)
    model_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    # A fresh config: greedy regardless of sampling defaults shipped with the checkpoint (temperature, top_p...).
    gen_config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=pad_id,
        eos_token_id=model_eos if model_eos is not None else tokenizer.eos_token_id,
    )
    answers = [""] * len(prompts)

    was_training = model.training
    model.eval()
    bar = tqdm(
        total=len(prompts),
        desc="generate",
        unit="ex",
        disable=not progress,
        mininterval=PROGRESS_MININTERVAL_S,
    )
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                inputs = _left_pad([encoded[i] for i in idx], pad_id, device)
                # generate derives position_ids from the attention mask itself.
                out = model.generate(
                    input_ids=inputs["input_ids"],
                    attention_mask=inputs["attention_mask"],
                    generation_config=gen_config,
                )
                new_tokens = out[:, inputs["input_ids"].shape[1] :]
                for row, i in enumerate(idx):
                    answers[i] = tokenizer.decode(new_tokens[row], skip_special_tokens=True)
                bar.update(len(idx))
    finally:
        bar.close()
        model.train(was_training)
    return answers


_OUTPUT_MARKER = re.compile(r"output:", re.IGNORECASE)
_EDGE_QUOTES = "\"'`*"
_TRAILING_PUNCT = string.punctuation + " \t"


def _clean_line(text: str) -> str:
    """First non-empty line, stripped of whitespace, surrounding quotes and trailing punctuation, lower-cased."""
    line = text.strip().split("\n", 1)[0]
    line = line.strip().strip(_EDGE_QUOTES).rstrip(_TRAILING_PUNCT).strip(_EDGE_QUOTES).strip()
    return " ".join(line.lower().split())  # "not  offensive" -> "not offensive"


def _match(answer: str, by_lower: dict[str, str], lenient: bool) -> str | None:
    if answer in by_lower:
        return by_lower[answer]
    if not lenient:
        return None
    # The ANSWER must start with the label (never the other way round: a bare "not" must not become
    # "not offensive"), at a word boundary ("joyful" is not "joy"); the longest such label wins, so
    # "not offensive" stays "not offensive" and "camera with flash" beats "camera".
    hits = [
        low
        for low in by_lower
        if answer.startswith(low) and (len(answer) == len(low) or not answer[len(low)].isalnum())
    ]
    return by_lower[max(hits, key=len)] if hits else None


def parse_answer(raw: str, labels: Sequence[str], *, lenient: bool = False) -> str | None:
    """Map a generated answer to one of `labels` (returned in its canonical spelling), or None if invalid.

    The paper's protocol: the first line of the answer (leading blank lines skipped), stripped of whitespace and
    trailing punctuation, lower-cased, must equal a label word. If that fails and the text contains "Output:" (the
    model echoed the prompt), the same rule is applied to the text after the first "Output:". The first line wins
    over a later "Output:" so a base model that answers and then invents further examples is read by its answer.
    `lenient=True` also accepts an answer that starts with a label at a word boundary (longest label wins).
    """
    if not labels:
        raise ValueError("parse_answer needs a non-empty label list")
    by_lower: dict[str, str] = {}
    for lab in labels:
        key = " ".join(lab.lower().split())
        if key in by_lower:
            raise ValueError(f"labels {by_lower[key]!r} and {lab!r} are identical once lower-cased")
        by_lower[key] = lab
    if not raw:
        return None
    found = _match(_clean_line(raw), by_lower, lenient)
    if found is None and (marker := _OUTPUT_MARKER.search(raw)):
        found = _match(_clean_line(raw[marker.end() :]), by_lower, lenient)
    return found
