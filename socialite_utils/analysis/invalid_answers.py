"""Invalid generate-mode answers (notebook 04): which labels an answer mentions and what kind of invalid it is."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence

from ..evaluation.scoring import parse_answer
from ..schema import INVALID_KINDS

# Kinds of invalid generate-mode answers, in precedence order (first match wins); see classify_invalid.


_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")  # words: letters/digits, inner apostrophes kept ("can't")
_PROMPT_FIELD = re.compile(r"^\s*(instruction|input|examples|output)\s*:", re.IGNORECASE)
_ECHO_NGRAM = 4  # an answer sharing a run of this many consecutive words with the input is an echo


def _first_line(raw: str) -> str:
    """First line with any letter or digit (what the parser reads), or ''."""
    for line in raw.splitlines():
        if _WORD.search(line):
            return line.strip()
    return ""


def split_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def labels_mentioned(text: str, labels: Sequence[str]) -> list[str]:
    """Distinct labels named in ``text`` as whole words, longest first so 'not offensive' does not also count
    'offensive'; returned in the order of ``labels``."""
    norm = " ".join(split_words(text))
    claimed: list[tuple[int, int]] = []
    found = set()
    for lab in sorted(labels, key=lambda x: -len(x)):
        key = " ".join(split_words(lab))
        if not key:
            continue
        for m in re.finditer(rf"(?<!\w){re.escape(key)}(?!\w)", norm):
            if all(m.end() <= s or m.start() >= e for s, e in claimed):
                claimed.append(m.span())
                found.add(lab)
    return [lab for lab in labels if lab in found]


def _is_echo(line: str, input_text: str) -> bool:
    """The answer line repeats the prompt (starts with a prompt field name) or the input text (a run of
    ``min(4, input length)`` consecutive input words)."""
    if _PROMPT_FIELD.match(line):
        return True
    inp = split_words(input_text)
    ans = split_words(line)
    m = min(_ECHO_NGRAM, len(inp))
    if m == 0 or len(ans) < m:
        return False
    grams = {tuple(inp[i : i + m]) for i in range(len(inp) - m + 1)}
    return any(tuple(ans[i : i + m]) in grams for i in range(len(ans) - m + 1))


def classify_invalid(raw_output: str | None, labels: Sequence[str], input_text: str = "") -> str:
    """Sort a generated answer into ``"valid"`` or one kind of invalid answer.

    ``"valid"`` when :func:`socialite_utils.evaluation.scoring.parse_answer` (strict) maps it to a label. Otherwise the kinds
    are checked on the answer's first line that has a letter or digit (the line the parser reads), in this
    precedence order, first match wins:

    1. ``empty``: no output, or nothing but whitespace and punctuation;
    2. ``several_labels``: two or more different label words (whole words; a longer label such as
       "not offensive" hides the shorter "offensive" it contains) -- ambiguous whatever else the line holds;
    3. ``echo``: the line starts with a prompt field ("Instruction:", "Input:", "Examples:", "Output:") or repeats
       the input: it shares a run of ``min(4, number of input words)`` consecutive words with ``input_text``;
    4. ``label_with_extra_text``: exactly one label inside a longer answer ("i think joy") -- a lenient parser
       would have accepted some of these;
    5. ``out_of_label_set``: anything else, e.g. a word that is no label ("happy" for "joy").
    """
    if not labels:
        raise ValueError("classify_invalid needs a non-empty label list")
    if raw_output is None or not _WORD.search(raw_output):
        return "empty"
    if parse_answer(raw_output, labels) is not None:
        return "valid"
    line = _first_line(raw_output)
    found = labels_mentioned(line, labels)
    if len(found) >= 2:
        return "several_labels"
    if _is_echo(line, input_text):
        return "echo"
    if len(found) == 1:
        return "label_with_extra_text"
    return "out_of_label_set"


def row_input_text(row: dict) -> str:
    return f"{row.get('text') or ''} {row.get('text_b') or ''}".strip()


def compute_invalid_answers(rows: Sequence[dict], labels: Sequence[str], max_examples: int = 3) -> dict:
    """Kinds of the invalid answers (``parsed`` null) among generate-mode ``rows``, with counts and examples.

    Returns ``{"n", "n_invalid", "counts": {kind: n} (every kind, zeros included), "examples": {kind: [{"id",
    "raw_output", "text"}]}}``. A row whose ``parsed`` is null but which the strict parser accepts (the evaluation
    used another parser) is counted under ``"parser_mismatch"`` so it is not silently dropped.
    """
    counts: Counter = Counter(dict.fromkeys(INVALID_KINDS, 0))
    examples: dict[str, list[dict]] = defaultdict(list)
    n_invalid = 0
    for r in rows:
        if r.get("parsed") is not None:
            continue
        n_invalid += 1
        kind = classify_invalid(r.get("raw_output"), labels, row_input_text(r))
        if kind == "valid":
            kind = "parser_mismatch"
        counts[kind] += 1
        if len(examples[kind]) < max_examples:
            raw = r.get("raw_output")
            examples[kind].append(
                {
                    "id": r["id"],
                    "raw_output": None if raw is None else raw[:200],
                    "text": str(r["text"])[:200],
                }
            )
    return {"n": len(rows), "n_invalid": n_invalid, "counts": dict(counts), "examples": dict(examples)}


__all__ = [
    "INVALID_KINDS",
    "classify_invalid",
    "labels_mentioned",
    "compute_invalid_answers",
    "row_input_text",
    "split_words",
]
