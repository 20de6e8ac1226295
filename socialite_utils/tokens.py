"""Token ids of a prompt and its answer, exactly as TRL's SFTTrainer builds a training sequence.

Training (the label mask, supervised-token counts) and scoring (the label tokens a model is asked to produce)
must agree on where the answer starts, token for token, or a tuned model would be scored on tokens it never
learned. This module is the one home of that rule (trl 1.16, ``trl/trainer/sft_trainer.py::tokenize_fn``):

- string prompt: TRL tokenizes ``prompt`` and ``prompt + completion`` separately, each with the tokenizer's
  special tokens, and the completion starts where the two token lists diverge. For byte-level BPE (SmolLM2,
  Llama 3) this equals ``prompt_ids + encode(" " + label)``; SentencePiece tokenizers (Llama 2) encode a standalone
  " joy" differently from "...Output: joy", so the joint split is reproduced rather than concatenating.
- chat prompt (a list of messages): the chat template renders the prompt (with the generation prompt) and the
  prompt plus the assistant's answer; the completion is again what follows the common prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .prompts import render_completion

Prompt = str | list[dict[str, Any]]


def is_chat(prompt: Prompt) -> bool:
    """A chat prompt is a non-empty list of {"role", "content"} messages (TRL's `is_conversational`)."""
    if isinstance(prompt, str):
        return False
    if isinstance(prompt, list) and prompt and all(isinstance(m, dict) and "role" in m for m in prompt):
        return True
    raise TypeError(
        f"prompt must be a string or a non-empty list of chat messages with a 'role', got {type(prompt).__name__}: "
        f"{str(prompt)[:80]!r}"
    )


def common_prefix_length(ids: Sequence[int], other: Sequence[int]) -> int:
    """Number of leading tokens two id lists share (same rule as trl.data_utils.common_prefix_length)."""
    n = 0
    for a, b in zip(ids, other, strict=False):
        if a != b:
            break
        n += 1
    return n


def _chat_ids(tokenizer: Any, messages: list[dict[str, Any]], **kwargs: Any) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)
    return list(out["input_ids"])


def encode_prompt(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of a prompt as the model sees it before the answer.

    A string is tokenized with the tokenizer's special tokens (BOS where the tokenizer adds one), a list of chat
    messages goes through `apply_chat_template(..., add_generation_prompt=True)` -- both as in TRL's SFTTrainer.
    """
    if is_chat(prompt):
        return _chat_ids(tokenizer, prompt, add_generation_prompt=True)
    return list(tokenizer(prompt)["input_ids"])


def tokenize_like_trl(
    tokenizer: Any, prompt: Prompt, completion: str | list[dict[str, Any]], *, eos: bool = True
) -> tuple[list[int], int]:
    """Token ids of prompt+completion and the prompt length, exactly as TRL 1.16's SFTTrainer builds a training
    sequence (``trl/trainer/sft_trainer.py::tokenize_fn``): the one home of that rule, for training and scoring.

    ``completion`` is the data run's (``" joy"``, or a list of assistant messages for a chat prompt). Plain
    strings: TRL appends ``tokenizer.eos_token`` to the completion, tokenizes prompt and prompt+completion
    separately (special tokens included), and supervises everything after their common prefix. Chat messages: the
    chat template renders both (the prompt with the generation prompt); the template's end-of-turn token is the
    EOS. ``eos=False`` stops at the end of the completion text (no EOS, no end of turn): what scoring uses.
    """
    prompt_ids = encode_prompt(tokenizer, prompt)
    if is_chat(prompt):
        if eos:
            full_ids = _chat_ids(tokenizer, prompt + completion)
        else:  # the conversation rendered up to the end of the completion, without the end-of-turn tokens
            full_ids = _chat_ids(tokenizer, prompt + completion, continue_final_message=True)
    else:
        if eos:
            if tokenizer.eos_token is None:
                raise ValueError(f"{type(tokenizer).__name__} has no eos_token to end the completion with")
            if not completion.endswith(tokenizer.eos_token):
                completion = completion + tokenizer.eos_token
        full_ids = list(tokenizer(prompt + completion)["input_ids"])
    return full_ids, common_prefix_length(prompt_ids, full_ids)


def encode_prompt_completion(
    tokenizer: Any, prompt: Prompt, label: str, *, eos: bool = False
) -> tuple[list[int], list[int]]:
    """(context ids, completion ids) for one prompt and one label, split exactly as TRL's SFTTrainer splits them.

    The completion is the training target for ``label`` (``" " + label``, or an assistant message for a chat
    prompt), tokenized by :func:`tokenize_like_trl`. `context + completion` is a prefix of TRL's training sequence
    for this example (the whole sequence when `eos=True`). The context is normally `encode_prompt(prompt)`; it is
    shorter only when the tokenizer merges tokens across the prompt/answer boundary, in which case TRL also trains
    on the shorter context.
    """
    if not encode_prompt(tokenizer, prompt):
        raise ValueError(
            f"prompt {prompt!r} encodes to no tokens: there is nothing to condition the label on"
        )
    if eos and tokenizer.eos_token is None:
        raise ValueError(f"eos=True but {type(tokenizer).__name__} has no eos_token")
    completion = render_completion(label, "chat" if is_chat(prompt) else "paper")  # the training target
    full_ids, start = tokenize_like_trl(tokenizer, prompt, completion, eos=eos)
    if start == len(full_ids):
        raise ValueError(f"label {label!r} encodes to no tokens after prompt {str(prompt)[-60:]!r}")
    return full_ids[:start], full_ids[start:]


def encode_completion(
    tokenizer: Any, label: str, chat: bool, *, prompt: Prompt | None = None, eos: bool = False
) -> list[int]:
    """The label tokens as the model must produce them after the prompt.

    Without `prompt`: `" " + label` (string prompts) or the bare label (chat prompts), no special tokens -- what
    TRL trains on whenever no token merges across the prompt/answer boundary (always for byte-level BPE).
    With `prompt`: exactly TRL's completion tokens for that prompt (see `encode_prompt_completion`).
    """
    if prompt is not None:
        if is_chat(prompt) != chat:
            raise ValueError(
                f"chat={chat} but the prompt is a {'chat' if is_chat(prompt) else 'string'} prompt"
            )
        return encode_prompt_completion(tokenizer, prompt, label, eos=eos)[1]
    ids = list(tokenizer(label if chat else " " + label, add_special_tokens=False)["input_ids"])
    if eos:
        ids.append(tokenizer.eos_token_id)
    return ids
