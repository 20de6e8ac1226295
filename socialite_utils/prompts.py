"""Prompt rendering: one function, four formats.

* ``paper``: Socialite-Llama's exact format ``Instruction: ...\\nInput: ...\\nOutput:``; in training
  the completion is `` <label>`` and the trainer appends EOS.
* few-shot: the same, with k training examples as ``<text> - <label>`` lines between the
  instruction and the input (``shots=`` argument; any format).
* ``chat``: a list of chat messages for instruct models; the model's own chat template is
  applied at tokenisation time, so the data run stays model-agnostic.
* ``alpaca``: the Stanford Alpaca template (``PROMPT_DICT`` in tatsu-lab/stanford_alpaca ``train.py``), which
  Writing-Alpaca follows: a preface, ``### Instruction:``, ``### Input:`` (left out when the input is empty)
  and ``### Response:``. Few-shot examples go under the instruction. The completion is `` <answer>`` as in the
  paper format (Stanford Alpaca appends the answer with no space; the kit's scoring and training treat every
  string prompt alike).

The example's text goes into the prompt verbatim (trailing and repeated spaces, line breaks and all) unless
``text_normalization="collapse_whitespace"``; the data run stores each row's text as rendered, so every later
consumer (training, evaluation re-rendering, analysis, baselines) sees the same text.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from .registry import Task

FORMATS = ("paper", "chat", "alpaca")
MAIN = "main"  # the registry's main prompt (variant None), as named in sensitivity summaries
# How the example's own text (text, text_b, few-shot texts) is put into the prompt:
# "none" verbatim, character for character (as other harnesses build the prompt); "collapse_whitespace" joins
# every run of whitespace (spaces, tabs, line breaks) into one space and strips both ends.
TEXT_NORMALIZATIONS = ("none", "collapse_whitespace")
ALPACA_PREFACE = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
)
ALPACA_PREFACE_NO_INPUT = "Below is an instruction that describes a task. Write a response that appropriately completes the request."


def render_alpaca(instruction: str, input_text: str = "") -> str:
    """The Alpaca prompt for an instruction and an optional input (``""``: the no-input template)."""
    if input_text:
        return f"{ALPACA_PREFACE}\n\n### Instruction:\n{instruction}\n\n### Input:\n{input_text}\n\n### Response:"
    return f"{ALPACA_PREFACE_NO_INPUT}\n\n### Instruction:\n{instruction}\n\n### Response:"


def normalize_text(text: str, mode: str = "none") -> str:
    """The example text as it goes into a prompt, under one of :data:`TEXT_NORMALIZATIONS`."""
    if mode not in TEXT_NORMALIZATIONS:
        raise ValueError(f"unknown text_normalization {mode!r}; expected one of {TEXT_NORMALIZATIONS}")
    return " ".join(str(text).split()) if mode == "collapse_whitespace" else str(text)


def _one_line(instruction: str) -> str:
    # The instruction (not the example text) is always one line: the format's line structure depends on it.
    return " ".join(str(instruction).split())


def render_input(
    task: Task, text: str, text_b: str | None = None, *, text_normalization: str = "none"
) -> str:
    """The input block: the text, plus the second text on its own labelled line for pair tasks (the first text
    labelled too when the task names it: ``text_name``)."""
    if task.pair:
        name = task.text_b_name or "Text B"
        first = normalize_text(text, text_normalization)
        if task.text_name:
            first = f"{task.text_name}: {first}"
        return f"{first}\n{name}: {normalize_text(text_b or '', text_normalization)}"
    return normalize_text(text, text_normalization)


def render_shot(task: Task, shot: dict, *, text_normalization: str = "none") -> str:
    """One few-shot line ``<text> - <label>`` (pair tasks: ``<text> (<Target>: <text_b>) - <label>``)."""
    text = normalize_text(shot["text"], text_normalization)
    if task.pair:
        second = normalize_text(shot.get("text_b") or "", text_normalization)
        text = f"{text} ({task.text_b_name or 'Text B'}: {second})"
        if task.text_name:
            text = f"{task.text_name}: {text}"
    return f"{text} - {shot['label']}"


def render_prompt(
    task: Task,
    text: str,
    text_b: str | None = None,
    *,
    fmt: str = "paper",
    shots: Sequence[dict] | None = None,
    instruction: str | None = None,
    text_normalization: str = "none",
) -> str | list[dict[str, str]]:
    """Render one example's prompt (without the answer).

    ``shots`` are dicts with ``text``, ``label`` (verbalizer) and optionally ``text_b``;
    ``instruction`` overrides the task's (for prompt variants or the source's own wording).
    The texts go in verbatim unless ``text_normalization`` says otherwise (see :func:`normalize_text`).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown prompt format '{fmt}'; expected one of {FORMATS}")
    norm = text_normalization
    instr = _one_line(instruction or task.instruction)
    shot_block = ""
    if shots:
        shot_block = (
            "Examples:\n" + "\n".join(render_shot(task, s, text_normalization=norm) for s in shots) + "\n"
        )
    input_block = render_input(task, text, text_b, text_normalization=norm)
    if fmt == "alpaca":
        return render_alpaca(f"{instr}\n{shot_block}".rstrip("\n"), input_block)
    body = f"{shot_block}Input: {input_block}"
    ask = "" if task.is_generation else "\nAnswer with the label only."
    return _frame(instr, body, fmt, chat_suffix=ask)


def _frame(instr: str, body: str, fmt: str, *, chat_suffix: str = "") -> str | list[dict[str, str]]:
    # The paper and chat frames around an instruction and its body (shots + "Input: ..."; may be empty).
    body = f"\n{body}" if body else ""
    if fmt == "paper":
        return f"Instruction: {instr}{body}\nOutput:"
    return [{"role": "user", "content": f"{instr}{body}{chat_suffix}"}]


def render_instruction_prompt(
    instruction: str, input_text: str = "", *, fmt: str = "paper"
) -> str | list[dict]:
    """The prompt of a generalist (Alpaca-style) row: its instruction and optional input, in any format.

    The same frames as :func:`render_prompt` (``Instruction: ...\nInput: ...\nOutput:``; the Alpaca template; one
    user message), with the ``Input:`` line left out when the input is empty and no "label only" request in chat.
    Texts are kept verbatim (code, lists and poems need their newlines); the answer is :func:`render_completion`
    of the row's output.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown prompt format '{fmt}'; expected one of {FORMATS}")
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError(f"a generalist row needs a non-empty instruction, got {instruction!r}")
    if fmt == "alpaca":
        return render_alpaca(instruction, input_text)
    return _frame(instruction, f"Input: {input_text}" if input_text else "", fmt)


def variant_label_words(task: Task, variant: int | None) -> dict[str, str]:
    """canonical label -> the word the prompt variant uses for it (identity for the main prompt and for labels
    the variant does not remap). Raises if the variant remaps a non-label or makes two labels share a word."""
    if variant is None:
        return {lab: lab for lab in task.labels}
    if not 0 <= variant < len(task.variants):
        raise ValueError(
            f"variant={variant} but task {task.name!r} has {len(task.variants)} variants "
            f"(0..{len(task.variants) - 1}, or None for the main prompt)"
        )
    remap = {str(k): str(v) for k, v in (task.variants[variant].get("labels") or {}).items()}
    bad = sorted(set(remap) - set(task.labels))
    if bad:
        raise ValueError(
            f"task {task.name!r} variants[{variant}] remaps {bad}, which are not labels {task.labels}"
        )
    words = {lab: remap.get(lab, lab) for lab in task.labels}
    lowered = [" ".join(w.lower().split()) for w in words.values()]
    if any(not w for w in lowered) or len(set(lowered)) != len(lowered):
        raise ValueError(
            f"task {task.name!r} variants[{variant}]: answer words {list(words.values())} must be distinct and non-empty"
        )
    return words


def render_variant_prompt(
    task: Task,
    text: str,
    text_b: str | None = None,
    *,
    variant: int | None,
    fmt: str = "paper",
    shots: Sequence[dict] | None = None,
) -> str | list[dict[str, str]]:
    """A prompt in the variant's wording; few-shot examples show the variant's answer words."""
    words = variant_label_words(task, variant)
    instruction = None if variant is None else task.variants[variant]["instruction"]
    shown = [{**s, "label": words[s["label"]]} for s in shots or []]
    return render_prompt(task, text, text_b, fmt=fmt, shots=shown or None, instruction=instruction)


def render_completion(label: str, fmt: str = "paper") -> str | list[dict[str, str]]:
    """The training target: `` <label>`` (paper, alpaca) or an assistant message (chat). EOS is added by the
    trainer."""
    if fmt in ("paper", "alpaca"):
        return f" {label}"
    return [{"role": "assistant", "content": label}]


def draw_shots(
    pool: Sequence[dict], k: int, *, seed: int, task_name: str, labels: Sequence[str]
) -> list[dict]:
    """Draw k examples from ``pool``, stratified by label, deterministically for (seed, task).

    Labels are visited round-robin in a seeded order, so k smaller than the number of labels
    still gives k different labels, and k larger cycles through them evenly.
    """
    if k <= 0 or not pool:
        return []
    rng = random.Random(f"{seed}|{task_name}|shots")
    by_label: dict[str, list[dict]] = defaultdict(list)
    for ex in pool:
        by_label[ex["label"]].append(ex)
    order = [lab for lab in labels if by_label.get(lab)]
    rng.shuffle(order)
    queues = {lab: rng.sample(by_label[lab], len(by_label[lab])) for lab in order}
    shots: list[dict] = []
    while len(shots) < k and any(queues.values()):
        for lab in order:
            if queues[lab] and len(shots) < k:
                shots.append(queues[lab].pop())
    rng.shuffle(shots)  # do not always end on the same label
    return shots


def prompt_text(prompt: str | list[dict[str, Any]]) -> str:
    """A prompt as plain text for display (chat messages joined as ``role: content``)."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
