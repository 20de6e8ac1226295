"""Fitting prompts into a model's context: the example's OWN text is cut, never the instruction, shots or answer cue.

One rule for every place that runs a model on prompts (evaluation, analysis re-scoring): a prompt plus what the
model must add after it (``max_new_tokens`` when generating, the longest label when scoring) must fit in
``max_length`` tokens, by default the model's context length. An example whose prompt is longer gets its text
cut at a token boundary -- for a pair task the longer of ``text`` / ``text_b`` first, as tokenizers'
``longest_first`` strategy does -- and the prompt is rendered again around the shortened text. Callers record
how many tokens were cut per example (``truncated_tokens``) so evaluation can count truncated examples per task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ..tokens import Prompt, encode_completion, encode_prompt, is_chat

Render = Callable[[str, "str | None"], Prompt]
# Tokenizers report a huge sentinel (1e30) when they do not know the context length.
_NO_LIMIT = 1_000_000
_CONFIG_LENGTHS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def model_context_length(model: Any, tokenizer: Any | None = None) -> int | None:
    """The model's context length: the smallest of its config's position limit and the tokenizer's
    ``model_max_length`` (ignoring the "no limit" sentinel); None when neither says."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    values = [getattr(config, name, None) for name in _CONFIG_LENGTHS]
    values.append(getattr(tokenizer, "model_max_length", None))
    known = [int(v) for v in values if isinstance(v, int) and 0 < v < _NO_LIMIT]
    return min(known) if known else None


def answer_reserve(
    tokenizer: Any, answers: Sequence[str], *, chat: bool, mode: str, max_new_tokens: int, eos: bool = False
) -> int:
    """Tokens to keep free after the prompt: ``max_new_tokens`` when generating; when scoring, the longest
    answer (+ the end marker with ``eos``) plus one token that may merge across the prompt/answer boundary."""
    if mode == "generate":
        return max_new_tokens
    return 1 + max(len(encode_completion(tokenizer, a, chat, eos=eos)) for a in answers)


def _token_ends(tokenizer: Any, text: str) -> list[int] | None:
    """Character offset where each token of ``text`` ends (None if the tokenizer cannot map offsets)."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, TypeError, ValueError):
        return None
    return [end for _, end in enc["offset_mapping"]]


def _cut(tokenizer: Any, text: str, keep: int) -> str:
    """The first ``keep`` tokens of ``text`` as the original characters (decoded ids as a fallback)."""
    if keep <= 0:
        return ""
    ends = _token_ends(tokenizer, text)
    if ends is not None:
        return text[: ends[keep - 1]] if keep <= len(ends) else text
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids[:keep])


def _longest_first(lengths: list[int], excess: int) -> list[int]:
    """New token counts after removing ``excess`` tokens, always from the longest text."""
    target = max(0, sum(lengths) - excess)
    if len(lengths) == 1:
        return [target]
    a, b = lengths
    if abs(a - b) >= excess:
        return [a - excess, b] if a >= b else [a, b - excess]
    short = target // 2
    return [target - short, short] if a >= b else [short, target - short]


def fit_prompt(
    tokenizer: Any,
    prompt: Prompt,
    text: str,
    text_b: str | None,
    budget: int,
    *,
    render: Render | None = None,
    name: str = "example",
) -> tuple[Prompt, int]:
    """``(prompt, tokens cut)``: ``prompt`` unchanged when it has at most ``budget`` tokens, else
    ``render(cut_text, cut_text_b)`` with the texts cut (longest first) until it fits. Without ``render`` the
    cut texts replace the example's texts inside ``prompt`` (:func:`substitute_renderer`).

    Raises ValueError when even empty texts leave the prompt over ``budget`` (the instruction, shots and answer
    cue alone are too long).
    """
    n = len(encode_prompt(tokenizer, prompt))
    if n <= budget:
        return prompt, 0
    pieces = [text] if text_b is None else [text, text_b]
    render = render or substitute_renderer(prompt, text, text_b, name=name)
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in pieces]
    excess = n - budget
    for _ in range(10):  # token counts of a cut text rendered in context can differ by a few; re-measure
        keep = _longest_first(lengths, excess)
        cut = [_cut(tokenizer, p, k) for p, k in zip(pieces, keep, strict=True)]
        fitted = render(cut[0], cut[1] if text_b is not None else None)
        n = len(encode_prompt(tokenizer, fitted))
        if n <= budget:
            return fitted, sum(lengths) - sum(keep)
        if sum(keep) == 0:
            break
        excess += n - budget
    raise ValueError(
        f"{name}: the prompt is {n} tokens even with its text cut away (instruction, few-shot examples and answer "
        f"cue), more than the {budget} tokens max_length leaves for it; raise max_length or use fewer shots"
    )


def _find(content: str, piece: str, end: int) -> tuple[int, int, Callable[[str], str]] | None:
    """(start, stop, how to render a replacement) of the last rendering of ``piece`` before ``end``."""
    for form in (lambda t: t, lambda t: " ".join(t.split())):  # verbatim, or whitespace collapsed
        shown = form(piece)
        start = content.rfind(shown, 0, end)
        if shown and start >= 0:
            return start, start + len(shown), form
    return None


def substitute_renderer(
    prompt: Prompt, text: str, text_b: str | None = None, *, name: str = "example"
) -> Render:
    """A ``render(text, text_b)`` for an already rendered prompt: it swaps the example's own text (the LAST
    occurrence, after any few-shot examples; ``text_b`` after it) for another, leaving everything else as is.
    For chat prompts the last user message holds the text."""
    content = prompt if isinstance(prompt, str) else prompt[-1]["content"]
    spans = []
    end = len(content)
    for piece in [p for p in (text_b, text) if p is not None]:
        found = _find(content, piece, end)
        if found is None:
            raise ValueError(f"{name}: cannot find the example's text in its prompt to shorten it")
        spans.append(found)
        end = found[0]
    spans.reverse()  # text first, then text_b

    def render(new_text: str, new_text_b: str | None = None) -> Prompt:
        out, pos = [], 0
        for (start, stop, form), piece in zip(spans, (new_text, new_text_b), strict=False):
            out += [content[pos:start], form(piece or "")]
            pos = stop
        new = "".join(out) + content[pos:]
        if isinstance(prompt, str):
            return new
        return [*prompt[:-1], {**prompt[-1], "content": new}]

    return render


def fit_eval_items(
    items: Sequence[Any],
    tokenizer: Any,
    max_length: int | None,
    *,
    mode: str,
    max_new_tokens: int = 20,
    score_eos: bool = False,
) -> list[Any]:
    """Evaluation items (``evaluation.EvalItem``) with every prompt and its answer fitted into ``max_length``.

    Only the example's own text (and ``text_b``) is cut, never the instruction, the shots or the answer cue
    (:func:`fit_prompt`, the rule analysis re-scoring follows too); a cut item records how many tokens it lost in
    ``truncated_tokens``. ``max_length=None`` leaves every item as it is.
    """
    if max_length is None:
        return list(items)
    reserves: dict[tuple, int] = {}
    out = []
    for it in items:
        chat = is_chat(it.prompt)
        key = (tuple(it.answers), chat)
        if key not in reserves:
            reserves[key] = answer_reserve(
                tokenizer, it.answers, chat=chat, mode=mode, max_new_tokens=max_new_tokens, eos=score_eos
            )
        budget = max_length - reserves[key]
        row = it.row
        prompt, cut = fit_prompt(
            tokenizer,
            it.prompt,
            row["text"],
            row.get("text_b"),
            budget,
            name=f"example {row['id']} (max_length {max_length}, {reserves[key]} tokens kept for the answer)",
        )
        out.append(replace(it, prompt=prompt, truncated_tokens=cut) if cut else it)
    return out


def format_truncation(metrics: dict) -> str:
    """One line: how many examples per task had their text cut to fit ``max_length`` (from metrics.json)."""
    max_length = (metrics.get("settings") or {}).get("max_length")
    if max_length is None:
        return "texts were not fitted to a max_length (run evaluated before truncation was recorded)"
    counts = {t: e.get("n_truncated", 0) for t, e in metrics.get("tasks", {}).items()}
    cut = {t: n for t, n in counts.items() if n}
    head = f"texts cut to fit max_length {max_length} tokens"
    if not cut:
        return f"{head}: none"
    ns = {t: metrics["tasks"][t].get("n") for t in cut}
    return f"{head}: " + ", ".join(f"{t} {n} of {ns[t]}" for t, n in cut.items())


__all__ = [
    "answer_reserve",
    "fit_eval_items",
    "fit_prompt",
    "model_context_length",
    "format_truncation",
    "substitute_renderer",
]
