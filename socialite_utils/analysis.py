"""Error analysis of an evaluation run (notebook 04): where and how the models fail, and how fragile the prompts are.

Pipeline position: reads what :mod:`socialite_utils.evaluation` wrote (``runs/<eval_run>/metrics.json`` with
``schema_version`` 1 and ``predictions.jsonl``; see the evaluation schema) and writes ``runs/<run_name>/`` with
``analysis.json``, ``sensitivity.jsonl`` and ``figures/``. Nothing is retrained; only the prompt-sensitivity step
loads the models again (base, and the training run's adapter for "tuned").

What is computed, per task and model (rows of the registry's main prompt only, ``variant`` null):

* per-label precision / recall / F1 (:func:`socialite_utils.metrics.score_classification`) and a confusion matrix
  whose rows are gold labels, normalised to sum to 1, with an extra column for invalid answers;
* ``generate`` mode: invalid answers sorted into kinds by :func:`classify_invalid`, with counts and examples;
* ``score`` mode: the most confident errors (highest probability on a wrong label) with their texts, and
  calibration (expected calibration error, reliability bins) per category;
* slices: accuracy by input length (per-task quantile bins of word or token length) and by gold-label frequency
  (labels rarer than a uniform share ``1/K`` of the evaluated examples versus the others);
* prompt sensitivity: the same examples re-scored (score mode) with the main prompt and each of the task's
  registry ``variants``; macro-F1 per prompt and its spread (min, max, range, std) per task and model.
"""

from __future__ import annotations

import math
import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from .prompts import FORMATS, draw_shots, render_variant_prompt, variant_label_words
from .registry import Task, load_all_suites
from .runs import (
    RunWriter,
    iter_jsonl,
    new_run_dir,
    provenance,
    read_json,
    resolve_run_dir,
    resolve_run_ref,
    write_json,
    write_jsonl,
)
from .scoring import label_probabilities, parse_answer

LENGTH_UNITS = ("words", "tokens")  # notebook 04's length_unit: input length in words or the model's tokens
SCHEMA_VERSION = 1  # the metrics.json schema this module reads (evaluation schema)
ANALYSIS_SCHEMA_VERSION = 1  # the analysis.json schema this module writes

# Kinds of invalid generate-mode answers, in precedence order (first match wins); see classify_invalid.
INVALID_KINDS = ("empty", "several_labels", "echo", "label_with_extra_text", "out_of_label_set")
INVALID_COLUMN = "(invalid)"  # confusion-matrix column for answers that are no label at all
MAIN = "main"  # name of the registry's main prompt in sensitivity summaries (variant null)

# Fields every predictions.jsonl row must carry for the analysis (the full schema has more).
_REQUIRED_ROW_FIELDS = ("id", "task", "model", "mode", "gold", "parsed", "correct", "text")
_REQUIRED_METRICS_FIELDS = ("settings", "models", "tasks")


class EvalRunError(ValueError):
    """An evaluation run is missing, incomplete or from another schema; the message says what and where."""


# ----------------------------------------------------------------------------------------------------------------
# Loading an evaluation run
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class EvalRun:
    """An evaluation run on disk: its metrics.json, params.json and prediction rows."""

    run_dir: Path
    metrics: dict[str, Any]
    params: dict[str, Any]
    predictions: list[dict[str, Any]] = field(repr=False)

    @property
    def settings(self) -> dict[str, Any]:
        return self.metrics["settings"]

    @property
    def models(self) -> list[str]:
        return list(self.metrics["models"])

    @property
    def mode(self) -> str:
        """The run's scoring mode (settings.mode, else the mode of its first prediction row)."""
        return self.settings.get("mode") or self.predictions[0]["mode"]

    @property
    def tasks(self) -> list[str]:
        return list(self.metrics["tasks"])

    def labels(self, task: str) -> list[str]:
        """The task's answer space as the evaluation scored it."""
        return list(self.metrics["tasks"][task]["labels"])

    @property
    def variant(self) -> int | None:
        """The prompt the run evaluated: None = the registry's main prompt, i = ``task.variants[i]``."""
        return self.settings.get("variant")

    def main_rows(self, task: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        """Prediction rows of the run's own prompt (``settings.variant``, normally the main prompt) in the run's
        mode, optionally of one task / model."""
        mode, variant = self.mode, self.variant
        return [
            r
            for r in self.predictions
            if r.get("variant") == variant
            and r["mode"] == mode
            and (task is None or r["task"] == task)
            and (model is None or r["model"] == model)
        ]


def _read_predictions(path: Path) -> list[dict[str, Any]]:
    """predictions.jsonl rows; a malformed line or a missing field raises naming the file, line and field."""
    rows = []
    for lineno, row in iter_jsonl(path, EvalRunError):
        missing = [k for k in _REQUIRED_ROW_FIELDS if k not in row]
        if missing:
            raise EvalRunError(f"{path}: line {lineno}: missing field(s) {missing}")
        row["_line"] = lineno
        rows.append(row)
    return rows


def load_eval_run(run: str | os.PathLike) -> EvalRun:
    """Load and check an evaluation run (name under runs/ or path).

    Raises :class:`EvalRunError` (or FileNotFoundError for a missing directory/file) naming what is wrong: no
    directory, no metrics.json / predictions.jsonl, a metrics.json without ``schema_version`` (written before the
    schema was versioned) or with another version, missing top-level fields, prediction rows without required
    fields, tasks or models that metrics.json does not declare, or duplicated prediction rows.
    """
    run_dir = resolve_run_dir(run)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"evaluation run {run_dir} does not exist (run notebook 03 first)")
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"evaluation run {run_dir} is incomplete: {metrics_path} is missing")
    doc = read_json(metrics_path)
    if not isinstance(doc, dict):
        raise EvalRunError(f"{metrics_path}: expected a JSON object at the top level")
    if "schema_version" not in doc:
        raise EvalRunError(
            f"{metrics_path}: no 'schema_version' field: this run was written by an older evaluation; "
            f"this kit reads schema_version {SCHEMA_VERSION}. Re-run notebook 03 to regenerate it."
        )
    if doc["schema_version"] != SCHEMA_VERSION:
        raise EvalRunError(
            f"{metrics_path}: schema_version {doc['schema_version']!r} is not supported; this kit reads "
            f"schema_version {SCHEMA_VERSION}"
        )
    missing = [k for k in _REQUIRED_METRICS_FIELDS if k not in doc]
    if missing:
        raise EvalRunError(f"{metrics_path}: missing top-level field(s) {missing}")
    for task, info in doc["tasks"].items():
        if "labels" not in info:
            raise EvalRunError(f"{metrics_path}: tasks.{task} has no 'labels' field")
    pred_path = run_dir / "predictions.jsonl"
    if not pred_path.is_file():
        raise FileNotFoundError(f"evaluation run {run_dir} is incomplete: {pred_path} is missing")
    rows = _read_predictions(pred_path)
    if not rows:
        raise EvalRunError(f"{pred_path}: no prediction rows")
    seen: dict[tuple, int] = {}
    for r in rows:
        where = f"{pred_path}: line {r['_line']}"
        if r["task"] not in doc["tasks"]:
            raise EvalRunError(
                f"{where}: task {r['task']!r} is not in metrics.json tasks {list(doc['tasks'])}"
            )
        if r["model"] not in doc["models"]:
            raise EvalRunError(f"{where}: model {r['model']!r} is not in metrics.json models {doc['models']}")
        key = (r["id"], r["model"], r["mode"], r.get("variant"), r.get("few_shot_k"))
        if key in seen:
            raise EvalRunError(
                f"{where}: duplicates the prediction on line {seen[key]} (same id/model/mode/variant)"
            )
        seen[key] = r["_line"]
    params_path = run_dir / "params.json"
    params = read_json(params_path) if params_path.is_file() else {}
    return EvalRun(run_dir=run_dir, metrics=doc, params=params, predictions=rows)


# ----------------------------------------------------------------------------------------------------------------
# Invalid answers
# ----------------------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")  # words: letters/digits, inner apostrophes kept ("can't")
_PROMPT_FIELD = re.compile(r"^\s*(instruction|input|examples|output)\s*:", re.IGNORECASE)
_ECHO_NGRAM = 4  # an answer sharing a run of this many consecutive words with the input is an echo


def _first_line(raw: str) -> str:
    """First line with any letter or digit (what the parser reads), or ''."""
    for line in raw.splitlines():
        if _WORD.search(line):
            return line.strip()
    return ""


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def labels_mentioned(text: str, labels: Sequence[str]) -> list[str]:
    """Distinct labels named in ``text`` as whole words, longest first so 'not offensive' does not also count
    'offensive'; returned in the order of ``labels``."""
    norm = " ".join(_words(text))
    claimed: list[tuple[int, int]] = []
    found = set()
    for lab in sorted(labels, key=lambda x: -len(x)):
        key = " ".join(_words(lab))
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
    inp = _words(input_text)
    ans = _words(line)
    m = min(_ECHO_NGRAM, len(inp))
    if m == 0 or len(ans) < m:
        return False
    grams = {tuple(inp[i : i + m]) for i in range(len(inp) - m + 1)}
    return any(tuple(ans[i : i + m]) in grams for i in range(len(ans) - m + 1))


def classify_invalid(raw_output: str | None, labels: Sequence[str], input_text: str = "") -> str:
    """Sort a generated answer into ``"valid"`` or one kind of invalid answer.

    ``"valid"`` when :func:`socialite_utils.scoring.parse_answer` (strict) maps it to a label. Otherwise the kinds
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


def _input_text(row: dict) -> str:
    return f"{row.get('text') or ''} {row.get('text_b') or ''}".strip()


def report_invalid_answers(rows: Sequence[dict], labels: Sequence[str], max_examples: int = 3) -> dict:
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
        kind = classify_invalid(r.get("raw_output"), labels, _input_text(r))
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


def _confidence(row: dict) -> float | None:
    """Probability the model gave its own answer (score mode), or None."""
    probs = row.get("probs")
    if not probs:
        return None
    pred = row.get("parsed")
    return float(probs[pred]) if pred in probs else float(max(probs.values()))


def report_confident_errors(rows: Sequence[dict], k: int = 5) -> list[dict]:
    """The ``k`` wrong score-mode answers the model was most sure of (highest probability on its wrong label).

    Each: ``{"id", "text", "text_b", "gold", "predicted", "confidence", "p_gold"}``; rows without ``probs``
    (generate mode) are skipped. Ties are broken by id so the list is deterministic.
    """
    errors = []
    for r in rows:
        conf = _confidence(r)
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


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """Wilson 95% interval for k successes in n, in percent (None for n = 0)."""
    if n == 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half))


def _slice_stats(rows: Sequence[dict]) -> dict[str, Any]:
    """n, correct count, accuracy (percent) with a Wilson CI, and macro-F1 over the slice's gold labels."""
    n = len(rows)
    k = sum(bool(r["correct"]) for r in rows)
    out: dict[str, Any] = {"n": n, "n_correct": k, "accuracy": None, "accuracy_ci": None, "macro_f1": None}
    if n:
        out["accuracy"] = 100.0 * k / n
        out["accuracy_ci"] = _wilson(k, n)
        out["macro_f1"] = metrics.macro_f1([r["gold"] for r in rows], [r.get("parsed") for r in rows])
    return out


def word_length(row: dict) -> int:
    """Words in the input (text plus text_b)."""
    return len(_words(_input_text(row)))


def token_length_fn(tokenizer: Any) -> Callable[[dict], int]:
    """A length function counting the tokenizer's tokens in the input (text plus text_b)."""
    return lambda row: len(tokenizer(_input_text(row), add_special_tokens=False)["input_ids"])


def report_length_slices(
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


def report_frequency_slices(rows: Sequence[dict], labels: Sequence[str]) -> dict[str, Any]:
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


# ----------------------------------------------------------------------------------------------------------------
# Calibration (score mode)
# ----------------------------------------------------------------------------------------------------------------


def report_calibration(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> dict:
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
    """:func:`report_calibration` of score-mode rows: confidence = probability of the answer given, correct =
    the row's ``correct``. None when no row has ``probs``."""
    pairs = [(c, bool(r["correct"])) for r in rows if (c := _confidence(r)) is not None]
    if not pairs:
        return None
    return report_calibration([c for c, _ in pairs], [k for _, k in pairs], n_bins)


# ----------------------------------------------------------------------------------------------------------------
# The whole analysis of one evaluation run
# ----------------------------------------------------------------------------------------------------------------


def _task_flags(task: str, gold: Sequence[str]) -> list[str]:
    flags = []
    present = sorted(set(gold))
    if len(present) == 1:
        flags.append(
            f"single_class_gold: every evaluated {task} example is {present[0]!r}; macro-F1 is that class's F1 "
            "and precision/recall of the other labels are undefined (support 0)"
        )
    return flags


def analyze_eval_run(
    ev: EvalRun,
    *,
    top_k_errors: int = 5,
    n_length_bins: int = 3,
    calibration_bins: int = 10,
    length_fn: Callable[[dict], int] = word_length,
    length_unit: str = "words",
) -> dict[str, Any]:
    """Every analysis that needs no model: per task and model, then pooled (see the module docstring).

    Uses the rows of the run's own prompt in the run's mode; other rows are counted under ``skipped_rows``. A recomputed
    macro-F1 that differs from metrics.json is flagged, not corrected.
    """
    if length_unit not in LENGTH_UNITS:
        raise ValueError(f"length_unit = {length_unit!r}; expected one of {LENGTH_UNITS}")
    mode = ev.mode
    main_ids = {id(r) for r in ev.main_rows()}
    skipped = Counter(
        f"variant {r.get('variant')!r} rows" if r.get("variant") != ev.variant else f"mode {r['mode']!r} rows"
        for r in ev.predictions
        if id(r) not in main_ids
    )
    tasks_out: dict[str, Any] = {}
    invalid_totals: dict[str, Counter] = {m: Counter() for m in ev.models}
    # A run evaluated on a prompt variant asked for that variant's words: sort its invalid answers against them.
    registry = load_eval_registry(ev) if ev.variant is not None and mode == "generate" else None
    for task in ev.tasks:
        info = ev.metrics["tasks"][task]
        labels = ev.labels(task)
        per_model: dict[str, Any] = {}
        task_flags: list[str] = []
        for model in ev.models:
            rows = sorted(ev.main_rows(task, model), key=lambda r: r["id"])
            if not rows:
                continue
            gold = [r["gold"] for r in rows]
            pred = [r.get("parsed") for r in rows]
            report = metrics.score_classification(gold, pred, labels=labels)
            flags = list(report["flags"])
            recorded = (info.get("models") or {}).get(model, {}).get("macro_f1")
            if recorded is not None and abs(recorded - report["macro_f1"]) > 1e-6:
                flags.append(
                    f"metrics_mismatch: macro-F1 recomputed from predictions is {report['macro_f1']:.4f}, "
                    f"metrics.json says {recorded:.4f}"
                )
            task_flags = task_flags or _task_flags(task, gold)
            entry: dict[str, Any] = {
                "n": len(rows),
                "macro_f1": report["macro_f1"],
                "accuracy": report["accuracy"],
                "invalid_rate": report["invalid_rate"],
                "per_label": report["per_label"],
                "flags": flags,
                "confusion": build_confusion_matrix(gold, pred, labels),
                "invalid": None,
                "confident_errors": None,
                "length_slices": report_length_slices(rows, n_length_bins, length_fn),
                "frequency_slices": report_frequency_slices(rows, labels),
            }
            if any(r["mode"] == "generate" for r in rows):
                words = (
                    labels
                    if registry is None
                    else list(variant_label_words(registry[task], ev.variant).values())
                )
                entry["invalid"] = report_invalid_answers(rows, words)
                invalid_totals[model].update(entry["invalid"]["counts"])
            if any(r.get("probs") for r in rows):
                entry["confident_errors"] = report_confident_errors(rows, top_k_errors)
            per_model[model] = entry
        tasks_out[task] = {
            "category": info.get("category"),
            "group": info.get("group"),
            "type": info.get("type"),
            "labels": labels,
            "flags": task_flags,
            "models": per_model,
        }
    return {
        "schema_version": ANALYSIS_SCHEMA_VERSION,
        "eval_run": str(ev.run_dir),
        "eval_settings": ev.settings,
        "mode": mode,
        "models": ev.models,
        "length_unit": length_unit,
        "tasks": tasks_out,
        "invalid_summary": {m: dict(c) for m, c in invalid_totals.items()} if mode == "generate" else None,
        "calibration": _calibration_section(ev, calibration_bins),
        "slices": _pooled_slices(ev, tasks_out),
        "skipped_rows": dict(skipped),
        "sensitivity": None,
    }


def _calibration_section(ev: EvalRun, n_bins: int) -> dict | None:
    """Per category and overall, per model; None when no row has probabilities (generate mode)."""
    rows = [r for r in ev.main_rows() if r.get("probs")]
    if not rows:
        return None
    by_category: dict[str, dict] = defaultdict(dict)
    overall = {}
    for model in ev.models:
        mine = [r for r in rows if r["model"] == model]
        if not mine:
            continue
        overall[model] = calibration_from_rows(mine, n_bins)
        for cat in sorted({r.get("category") or "?" for r in mine}):
            by_category[cat][model] = calibration_from_rows(
                [r for r in mine if (r.get("category") or "?") == cat], n_bins
            )
    return {"n_bins": n_bins, "by_category": dict(by_category), "overall": overall}


def _pooled_slices(ev: EvalRun, tasks_out: dict) -> dict[str, Any]:
    """Length bins and frequency slices pooled over tasks (bin i = the i-th length quantile bin of each task)."""
    length: dict[str, list[dict]] = {}
    frequency: dict[str, dict] = {}
    for model in ev.models:
        bins: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        freq: dict[str, list[int]] = {"frequent": [0, 0], "rare": [0, 0]}
        for t in tasks_out.values():
            entry = t["models"].get(model)
            if entry is None:
                continue
            for b in entry["length_slices"]:
                bins[b["bin"]][0] += b["n_correct"]
                bins[b["bin"]][1] += b["n"]
            for name in freq:
                freq[name][0] += entry["frequency_slices"][name]["n_correct"]
                freq[name][1] += entry["frequency_slices"][name]["n"]
        length[model] = [
            {"bin": i, "n": n, "accuracy": 100.0 * k / n if n else None, "accuracy_ci": _wilson(k, n)}
            for i, (k, n) in sorted(bins.items())
        ]
        frequency[model] = {
            name: {"n": n, "accuracy": 100.0 * k / n if n else None, "accuracy_ci": _wilson(k, n)}
            for name, (k, n) in freq.items()
        }
    return {"length": length, "frequency": frequency}


# ----------------------------------------------------------------------------------------------------------------
# Tables for the notebook
# ----------------------------------------------------------------------------------------------------------------


def per_label_table(analysis: dict):
    """One row per task x model x label: precision, recall, F1 (percent) and support."""
    import pandas as pd

    records = [
        {"task": task, "model": model, "label": lab, **vals}
        for task, t in analysis["tasks"].items()
        for model, entry in t["models"].items()
        for lab, vals in entry["per_label"].items()
    ]
    return pd.DataFrame.from_records(
        records, columns=["task", "model", "label", "precision", "recall", "f1", "support"]
    )


def invalid_table(analysis: dict):
    """One row per task x model: invalid answers by kind (generate mode); empty frame in score mode."""
    import pandas as pd

    records = []
    for task, t in analysis["tasks"].items():
        for model, entry in t["models"].items():
            if entry["invalid"] is not None:
                inv = entry["invalid"]
                records.append(
                    {
                        "task": task,
                        "model": model,
                        "n": inv["n"],
                        "invalid": inv["n_invalid"],
                        **inv["counts"],
                    }
                )
    return pd.DataFrame.from_records(records)


def confident_errors_table(analysis: dict, max_chars: int = 120):
    """The most confident errors of every task and model (score mode), texts shortened to ``max_chars``."""
    import pandas as pd

    records = []
    for task, t in analysis["tasks"].items():
        for model, entry in t["models"].items():
            for e in entry["confident_errors"] or []:
                text = e["text"] if e["text_b"] is None else f"{e['text']} || {e['text_b']}"
                records.append(
                    {
                        "task": task,
                        "model": model,
                        "gold": e["gold"],
                        "predicted": e["predicted"],
                        "confidence": round(e["confidence"], 3),
                        "p_gold": round(e["p_gold"], 3),
                        "text": text if len(text) <= max_chars else text[: max_chars - 1] + "…",
                    }
                )
    return pd.DataFrame.from_records(records)


def slices_table(analysis: dict):
    """Pooled accuracy (percent, Wilson CI) by length bin and by gold-label frequency, per model."""
    import pandas as pd

    unit = analysis.get("length_unit", "words")
    records = []
    for model, bins in analysis["slices"]["length"].items():
        for b in bins:
            records.append(
                {"model": model, "slice": f"length bin {b['bin'] + 1} ({unit}, per-task quantiles)", **b}
            )
    for model, sl in analysis["slices"]["frequency"].items():
        for name, s in sl.items():
            records.append({"model": model, "slice": f"{name} gold labels", **s})
    df = pd.DataFrame.from_records(records)
    return df.drop(columns=["bin"], errors="ignore")


def calibration_table(analysis: dict):
    """ECE, mean confidence and accuracy per category (and overall) per model; empty frame if not score mode."""
    import pandas as pd

    cal = analysis.get("calibration")
    if not cal:
        return pd.DataFrame()
    records = []
    for cat, per_model in [*cal["by_category"].items(), ("overall", cal["overall"])]:
        for model, c in per_model.items():
            records.append(
                {
                    "category": cat,
                    "model": model,
                    "n": c["n"],
                    "ece": c["ece"],
                    "mean_confidence": c["mean_confidence"],
                    "accuracy": c["accuracy"],
                }
            )
    return pd.DataFrame.from_records(records)


# ----------------------------------------------------------------------------------------------------------------
# Prompt sensitivity: registry variants
# ----------------------------------------------------------------------------------------------------------------


def load_eval_registry(ev: EvalRun, suite: str | None = None) -> dict[str, Task]:
    """The registry tasks of an evaluation run.

    Suite: ``suite`` if given, else ``suite`` in the eval run's params.json or settings, else in its data run's
    params.json, else the one suite that defines every task of the run. The run's label lists must match the
    registry's (a variant's label remap is keyed by them).
    """
    suites = load_all_suites()
    if suite is None:
        suite = ev.params.get("suite") or ev.settings.get("suite")
    if suite is None and ev.settings.get("data_run"):
        data_params = resolve_run_ref(ev.settings["data_run"], ev.run_dir.parent) / "params.json"
        if data_params.is_file():
            suite = read_json(data_params).get("suite")
    if suite is None:
        matches = [name for name, tasks in suites.items() if set(ev.tasks) <= set(tasks)]
        if len(matches) != 1:
            raise EvalRunError(
                f"cannot tell which task suite {ev.run_dir} used (suites defining all its tasks: {matches}); "
                "pass suite="
            )
        suite = matches[0]
    if suite not in suites:
        raise EvalRunError(
            f"{ev.run_dir} names suite {suite!r}, which the registry does not have ({sorted(suites)})"
        )
    registry = suites[suite]
    out = {}
    for task in ev.tasks:
        if task not in registry:
            raise EvalRunError(f"{ev.run_dir}: task {task!r} is not in suite {suite!r}")
        if list(registry[task].labels) != ev.labels(task):
            raise EvalRunError(
                f"{ev.run_dir}: task {task!r} was evaluated with labels {ev.labels(task)} but suite {suite!r} has "
                f"{registry[task].labels}"
            )
        out[task] = registry[task]
    return out


def select_sensitivity_examples(ev: EvalRun, max_per_task: int, seed: int = 0) -> dict[str, list[dict]]:
    """Up to ``max_per_task`` evaluated examples per task, the same for every model and prompt variant.

    Drawn per task with a seeded RNG, round-robin over gold labels so small samples still cover several classes.
    Each example: ``{"id", "task", "category", "group", "task_type", "text", "text_b", "gold", "gold_score"}``.
    """
    if max_per_task < 0:
        raise ValueError(f"max_per_task must be >= 0, got {max_per_task}")
    out: dict[str, list[dict]] = {}
    for task in ev.tasks:
        examples: dict[str, dict] = {}
        for r in sorted(ev.main_rows(task), key=lambda r: r["id"]):
            examples.setdefault(
                r["id"],
                {
                    "id": r["id"],
                    "task": task,
                    "category": r.get("category"),
                    "group": r.get("group"),
                    "task_type": r.get("task_type"),
                    "text": r["text"],
                    "text_b": r.get("text_b"),
                    "gold": r["gold"],
                    "gold_score": r.get("gold_score"),
                },
            )
        rng = random.Random(f"{seed}|{task}|sensitivity")
        by_gold: dict[str, list[dict]] = defaultdict(list)
        for ex in examples.values():
            by_gold[ex["gold"]].append(ex)
        order = [lab for lab in ev.labels(task) if by_gold.get(lab)]
        queues = {lab: rng.sample(by_gold[lab], len(by_gold[lab])) for lab in order}
        chosen: list[dict] = []
        while len(chosen) < max_per_task and any(queues.values()):
            for lab in order:
                if queues[lab] and len(chosen) < max_per_task:
                    chosen.append(queues[lab].pop())
        out[task] = chosen
    return out


def _task_shot_counts(ev: EvalRun) -> dict[str, int]:
    """k of each task's evaluated prompts (from its prediction rows; settings.few_shot_k may be a list)."""
    out: dict[str, int] = {}
    setting = ev.settings.get("few_shot_k")
    for task in ev.tasks:
        ks = {int(r.get("few_shot_k") or 0) for r in ev.main_rows(task)}
        if not ks and isinstance(setting, int):
            ks = {setting}
        if len(ks) > 1:
            raise EvalRunError(
                f"{ev.run_dir}: task {task!r} was evaluated with several few-shot k {sorted(ks)}"
            )
        out[task] = ks.pop() if ks else 0
    return out


def load_sensitivity_shots(ev: EvalRun, tasks: dict[str, Task]) -> dict[str, list[dict]]:
    """Few-shot examples per task for the tasks the run evaluated few-shot (empty lists for zero-shot).

    Drawn as the evaluation draws them whenever it re-renders prompts: ``draw_shots`` over the task's rows of the
    data run's ``fewshot_pool`` with the evaluation seed. Every prompt of the sensitivity step (main included)
    uses these same shots, so only the wording differs between prompts.
    """
    ks = _task_shot_counts(ev)
    if not any(ks.get(t) for t in tasks):
        return {t: [] for t in tasks}
    from .assembly import load_data_run

    data_run = ev.settings.get("data_run")
    if not data_run:
        raise EvalRunError(
            f"{ev.run_dir}: the run is few-shot but its settings name no data_run to draw from"
        )
    pool = load_data_run(resolve_run_ref(data_run, ev.run_dir.parent))["fewshot_pool"]
    seed = int(ev.settings.get("seed") or 0)
    return {
        name: draw_shots(
            [r for r in pool if r["task"] == name],
            ks.get(name, 0),
            seed=seed,
            task_name=name,
            labels=task.labels,
        )
        for name, task in tasks.items()
    }


class EvalModels:
    """The evaluation's models, loaded once: the tuned adapter on the base model, base = adapter disabled."""

    def __init__(self, model: Any, tokenizer: Any, has_adapter: bool):
        self.model = model
        self.tokenizer = tokenizer
        self.has_adapter = has_adapter

    @contextmanager
    def use(self, name: str) -> Iterator[Any]:
        """Yield the model that plays ``name`` ("base" or "tuned")."""
        if name == "tuned":
            if not self.has_adapter:
                raise ValueError(
                    "no adapter loaded: the evaluation run has no train_run, so there is no tuned model"
                )
            yield self.model
        elif name == "base":
            # PEFT's disable_adapter also bypasses modules_to_save copies, so this is the untouched base model
            # (checked against a freshly loaded base in tests/test_analysis.py).
            with self.model.disable_adapter() if self.has_adapter else nullcontext():
                yield self.model
        else:
            raise ValueError(f"unknown model {name!r}; expected 'base' or 'tuned'")


def load_eval_models(ev: EvalRun, precision: Any | None = None) -> EvalModels:
    """Load the models an evaluation run scored, as evaluation does: the training run's adapter (``train_run``)
    on its base model, or the base model alone when the run has no train_run."""
    from . import models as kit_models
    from . import training

    train_run = ev.settings.get("train_run")
    base_model = ev.settings.get("base_model")
    if train_run:
        run_dir = resolve_run_ref(train_run, ev.run_dir.parent)
        if not run_dir.is_dir():
            raise FileNotFoundError(
                f"training run {run_dir} named by {ev.run_dir}/metrics.json does not exist"
            )
        tokenizer = training.load_run_tokenizer(run_dir)
        model = training.load_adapter(run_dir, base_model, precision=precision)
        return EvalModels(model, tokenizer, has_adapter=True)
    if not base_model:
        raise EvalRunError(f"{ev.run_dir}/metrics.json settings name neither train_run nor base_model")
    # tiny-random builds its tokenizer from the evaluated texts (in evaluation order) and its weights from the
    # seed, exactly as evaluation.load_eval_model does, so the base model is the one that was evaluated.
    first = ev.models[0]
    texts = [r["text"] for r in ev.predictions if r["model"] == first and r.get("variant") is None]
    model, tokenizer = kit_models.load_model(
        base_model, precision=precision, train_texts=texts, seed=int(ev.settings.get("seed") or 0)
    )
    return EvalModels(model, tokenizer, has_adapter=False)


def load_eval_tokenizer(ev: EvalRun) -> Any:
    """The tokenizer the evaluation used (the training run's, else the base model's), for token lengths."""
    if ev.settings.get("train_run"):
        from .training import load_run_tokenizer

        return load_run_tokenizer(resolve_run_ref(ev.settings["train_run"], ev.run_dir.parent))
    return load_eval_models(ev).tokenizer


def _plan_variant_prompts(
    tokenizer: Any,
    examples: dict[str, list[dict]],
    tasks: dict[str, Task],
    *,
    variants: Sequence[int] | None,
    fmt: str,
    shots: dict[str, list[dict]] | None,
    eos: bool,
    max_length: int | None,
) -> tuple[list[tuple[dict, int | None, dict[str, str], int]], list, list[list[str]]]:
    """(plan, prompts, label sets) for every example x prompt; plan rows are (example, variant, words, tokens cut).

    Each prompt is fitted into ``max_length`` by cutting the example's own text (evaluation's rule)."""
    from .truncation import answer_reserve, fit_prompt

    plan: list[tuple[dict, int | None, dict[str, str], int]] = []
    prompts, label_sets = [], []
    for name, exs in examples.items():
        task = tasks[name]
        indices = list(range(len(task.variants))) if variants is None else list(variants)
        for v in [None, *indices]:
            words = variant_label_words(task, v)
            reserve = answer_reserve(
                tokenizer, list(words.values()), chat=fmt == "chat", mode="score", max_new_tokens=0, eos=eos
            )

            def render(text, text_b, task=task, v=v, name=name):
                return render_variant_prompt(
                    task, text, text_b, variant=v, fmt=fmt, shots=(shots or {}).get(name)
                )

            for ex in exs:
                prompt, cut = render(ex["text"], ex.get("text_b")), 0
                if max_length is not None:
                    prompt, cut = fit_prompt(
                        tokenizer,
                        prompt,
                        ex["text"],
                        ex.get("text_b"),
                        max_length - reserve,
                        render=render,
                        name=f"example {ex['id']} (max_length {max_length})",
                    )
                prompts.append(prompt)
                label_sets.append(list(words.values()))
                plan.append((ex, v, words, cut))
    return plan, prompts, label_sets


def score_prompt_variants(
    model: Any,
    tokenizer: Any,
    examples: dict[str, list[dict]],
    tasks: dict[str, Task],
    *,
    model_name: str,
    variants: Sequence[int] | None = None,
    fmt: str = "paper",
    shots: dict[str, list[dict]] | None = None,
    batch_size: int = 16,
    normalize: str = "sum",
    eos: bool = False,
    max_length: int | None = None,
    progress: bool = False,
) -> list[dict]:
    """Score every example with the main prompt and each variant (score mode); rows in the predictions schema.

    Prompts are fitted into ``max_length`` tokens (None: the model's context length) by cutting the example's own
    text, exactly as evaluation does (:func:`socialite_utils.truncation.fit_prompt`); rows record the tokens cut
    in ``truncated_tokens``.

    ``variants``: indices into each task's ``variants`` (None: all of them). A variant that renames labels is
    scored on its own words; the probabilities are mapped back to the canonical labels before anything else, so
    ``parsed``/``gold`` are always canonical. Rows add ``label_words`` (canonical -> word shown in the prompt).
    """
    from .scoring import score_label_logprobs
    from .truncation import model_context_length

    max_length = max_length or model_context_length(model, tokenizer)
    plan, prompts, label_sets = _plan_variant_prompts(
        tokenizer, examples, tasks, variants=variants, fmt=fmt, shots=shots, eos=eos, max_length=max_length
    )
    if not prompts:
        return []
    logprobs = score_label_logprobs(
        model,
        tokenizer,
        prompts,
        label_sets,
        batch_size=batch_size,
        normalize=normalize,
        eos=eos,
        progress=progress,
    )
    rows = []
    for (ex, v, words, cut), lp in zip(plan, logprobs, strict=True):
        canonical_lp = {lab: lp[word] for lab, word in words.items()}  # back to canonical labels
        probs = label_probabilities(canonical_lp)
        parsed = max(probs, key=probs.get)
        rows.append(
            {
                "id": ex["id"],
                "task": ex["task"],
                "category": ex.get("category"),
                "group": ex.get("group"),
                "task_type": ex.get("task_type"),
                "model": model_name,
                "mode": "score",
                "few_shot_k": len((shots or {}).get(ex["task"]) or []),
                "variant": v,
                "label_words": words,
                "text": ex["text"],
                "text_b": ex.get("text_b"),
                "truncated_tokens": cut,
                "gold": ex["gold"],
                "gold_score": ex.get("gold_score"),
                "raw_output": None,
                "parsed": parsed,
                "logprobs": canonical_lp,
                "probs": probs,
                "expected_score": probs.get("high") if ex.get("task_type") == "regression" else None,
                "correct": parsed == ex["gold"],
            }
        )
    return rows


def report_sensitivity(rows: Sequence[dict], tasks: dict[str, Task]) -> dict[str, Any]:
    """Macro-F1 (percent, over the task's labels) per prompt and its spread, per task and model.

    Per task and model: ``{"n", "macro_f1": {"main": x, "variant 0": y, ...}, "min", "max", "range", "std",
    "mean", "flags"}``; ``std`` is the population std (ddof=0) over the prompts, main prompt included.
    """
    groups: dict[tuple[str, str], dict[Any, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        groups[(r["task"], r["model"])][r["variant"]].append(r)
    out: dict[str, dict] = defaultdict(dict)
    for (task, model), by_variant in sorted(groups.items(), key=lambda kv: kv[0]):
        labels = tasks[task].labels
        scores, flags = {}, []
        for v in sorted(by_variant, key=lambda x: -1 if x is None else x):
            vr = by_variant[v]
            rep = metrics.score_classification(
                [r["gold"] for r in vr], [r["parsed"] for r in vr], labels=labels
            )
            scores[MAIN if v is None else f"variant {v}"] = rep["macro_f1"]
            flags += [f for f in rep["flags"] if f.startswith("single_class_gold") and f not in flags]
        values = np.array(list(scores.values()))
        out[task][model] = {
            "n": len(by_variant[None]) if None in by_variant else len(next(iter(by_variant.values()))),
            "macro_f1": scores,
            "min": float(values.min()),
            "max": float(values.max()),
            "range": float(values.max() - values.min()),
            "std": float(values.std()),
            "mean": float(values.mean()),
            "flags": flags,
        }
    return dict(out)


def score_sensitivity(
    ev: EvalRun,
    *,
    max_per_task: int,
    variants: Sequence[int] | None = None,
    batch_size: int = 16,
    seed: int = 0,
    suite: str | None = None,
    precision: Any | None = None,
    progress: bool = True,
) -> tuple[list[dict], dict[str, Any]]:
    """The whole prompt-sensitivity step: pick examples, load the run's models once, score every prompt variant
    with every model, summarise. Returns ``(rows, summary)``; ``max_per_task=0`` skips it (nothing is loaded).

    Prompt format, normalisation and few-shot k follow the evaluation's settings so the main-prompt scores are
    comparable with the evaluation run (in score mode they reproduce its predictions on these examples).
    """
    if max_per_task == 0:
        return [], {}
    fmt = ev.settings.get("prompt_format") or "paper"
    if fmt not in FORMATS:
        raise EvalRunError(
            f"{ev.run_dir}: prompt_format {fmt!r} cannot be re-rendered; expected one of {FORMATS}"
        )
    tasks = load_eval_registry(ev, suite)
    examples = select_sensitivity_examples(ev, max_per_task, seed=seed)
    shots = load_sensitivity_shots(ev, tasks)
    loaded = load_eval_models(ev, precision=precision)
    rows: list[dict] = []
    for name in ev.models:
        with loaded.use(name) as model:
            rows += score_prompt_variants(
                model,
                loaded.tokenizer,
                examples,
                tasks,
                model_name=name,
                variants=variants,
                fmt=fmt,
                shots=shots,
                batch_size=batch_size,
                normalize=ev.settings.get("normalize") or "sum",
                eos=bool(ev.settings.get("score_eos", ev.settings.get("eos", False))),
                max_length=ev.settings.get("max_length"),  # the evaluation's: same prompts, same cuts
                progress=progress,
            )
    return rows, report_sensitivity(rows, tasks)


def sensitivity_table(summary: dict):
    """One row per task x model: macro-F1 per prompt and the spread."""
    import pandas as pd

    records = []
    for task, per_model in summary.items():
        for model, s in per_model.items():
            records.append(
                {
                    "task": task,
                    "model": model,
                    "n": s["n"],
                    **s["macro_f1"],
                    "min": s["min"],
                    "max": s["max"],
                    "range": s["range"],
                    "std": s["std"],
                }
            )
    return pd.DataFrame.from_records(records)


def _ci_width(entry: dict) -> float | None:
    ci = entry.get("macro_f1_ci")
    if not ci or ci[0] is None or ci[1] is None or any(isinstance(v, float) and math.isnan(v) for v in ci):
        return None
    return float(ci[1] - ci[0])


def report_caveats(ev: EvalRun, analysis: dict) -> list[str]:
    """Plain-language warnings about THIS run for students: sample sizes and CI widths, class imbalance,
    binarized ratings, invalid answers, prompt fragility and the run's own flags."""
    out = []
    tasks = analysis["tasks"]
    sizes = {t: max((e["n"] for e in v["models"].values()), default=0) for t, v in tasks.items()}
    if sizes:
        lo, hi = min(sizes.values()), max(sizes.values())
        smallest = "" if lo == hi else f" (smallest: {min(sizes, key=sizes.get)})"
        span = f"{lo}" if lo == hi else f"{lo}-{hi}"
        out.append(
            f"Sample size: tasks have {span} evaluated examples{smallest}; with n examples one error moves "
            "accuracy by 100/n points."
        )
    widths = [
        (w, t, m)
        for t, info in ev.metrics["tasks"].items()
        for m, entry in (info.get("models") or {}).items()
        if (w := _ci_width(entry)) is not None
    ]
    if widths and max(widths)[0] > 0:
        w, t, m = max(widths)
        out.append(
            f"Uncertainty: the widest 95% CI of a task macro-F1 is {w:.1f} points ({t}, {m}); differences "
            "smaller than the CIs are not evidence of a difference."
        )
    imbalanced = []
    for t, v in tasks.items():
        entry = next(iter(v["models"].values()), None)
        if entry:
            shares = entry["frequency_slices"]["shares"]
            top = max(shares, key=shares.get)
            if shares[top] >= 0.6:
                imbalanced.append(f"{t} ({top}: {100 * shares[top]:.0f}%)")
    if imbalanced:
        out.append(
            "Class imbalance: " + ", ".join(imbalanced) + ". Always answering the majority label gives high "
            "accuracy but a low macro-F1, which weighs every label equally -- rare labels count as much as "
            "frequent ones."
        )
    regression = [t for t, v in tasks.items() if v.get("type") == "regression"]
    if regression:
        out.append(
            f"Binarized ratings: {', '.join(regression)} are continuous ratings cut at the train median into "
            "low/high; examples near the cut are almost coin flips and the scale's detail is lost (see "
            "pearson_r in metrics.json for the continuous view)."
        )
    if analysis.get("invalid_summary"):
        for m, counts in analysis["invalid_summary"].items():
            n_inv = sum(counts.values())
            if n_inv:
                top = max(counts, key=counts.get)
                out.append(
                    f"Invalid answers ({m}): {n_inv} answers were no label and count as wrong; most are "
                    f"'{top}'. A score reflects following the answer format as well as the task."
                )
    sens = (analysis.get("sensitivity") or {}).get("tasks") or {}
    ranges = [(s["range"], t, m) for t, per in sens.items() for m, s in per.items()]
    if ranges:
        r, t, m = max(ranges)
        out.append(
            f"Prompt fragility: rewording the prompt moved macro-F1 by up to {r:.1f} points ({t}, {m}); "
            "a single prompt's score is one draw from that range."
        )
    flagged = sorted({t for t, v in tasks.items() if v["flags"]})
    if flagged:
        out.append(
            f"Flags: {', '.join(flagged)} have flags (e.g. a single gold class); read them before comparing."
        )
    return out


# ----------------------------------------------------------------------------------------------------------------
# Writing the analysis run
# ----------------------------------------------------------------------------------------------------------------


def _json_safe(obj: Any) -> Any:
    """nan/inf -> None and tuples -> lists, recursively, so analysis.json is strict JSON."""
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_analysis_run(
    run_name: str,
    analysis: dict,
    *,
    sensitivity_rows: Sequence[dict] = (),
    figures: dict[str, Any] | None = None,
    params: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``analysis.json``, ``sensitivity.jsonl``, ``params.json``, ``provenance.json`` and ``figures/<name>.png|pdf``
    atomically (nothing appears at ``runs/<run_name>`` unless everything was written)."""
    from .plotting import save_figures

    run_dir = new_run_dir(run_name, overwrite=overwrite)
    with RunWriter(run_dir, overwrite=overwrite) as tmp:
        write_json(tmp / "analysis.json", _json_safe(analysis))
        write_jsonl(tmp / "sensitivity.jsonl", [_json_safe(r) for r in sensitivity_rows])
        write_json(tmp / "params.json", _json_safe(params or {}))
        write_json(
            tmp / "provenance.json",
            provenance({"stage": "error_analysis", "eval_run": analysis.get("eval_run")}),
        )
        (tmp / "figures").mkdir()
        save_figures(figures or {}, tmp / "figures")
    return run_dir


__all__ = [
    "INVALID_KINDS",
    "EvalModels",
    "EvalRun",
    "EvalRunError",
    "analyze_eval_run",
    "build_confusion_matrix",
    "calibration_from_rows",
    "calibration_table",
    "classify_invalid",
    "confident_errors_table",
    "invalid_table",
    "labels_mentioned",
    "load_eval_models",
    "load_eval_registry",
    "load_eval_run",
    "load_eval_tokenizer",
    "load_sensitivity_shots",
    "per_label_table",
    "render_variant_prompt",
    "report_calibration",
    "report_caveats",
    "report_confident_errors",
    "report_frequency_slices",
    "report_invalid_answers",
    "report_length_slices",
    "report_sensitivity",
    "score_prompt_variants",
    "score_sensitivity",
    "select_sensitivity_examples",
    "sensitivity_table",
    "slices_table",
    "token_length_fn",
    "variant_label_words",
    "word_length",
    "write_analysis_run",
]
