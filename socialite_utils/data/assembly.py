"""Assembling a training/evaluation mixture from registry tasks into a data run.

Steps, in order, per task: load raw records -> validate labels (errors name file/line/field) ->
drop empty texts (counted) -> binarize regression scores at the train median -> de-duplicate
across splits (counted) -> cap per task (stratified by label, or balanced) -> render prompts.
Seen tasks give train/validation/test rows; related (held-out) tasks give test rows only, plus a
few-shot pool drawn from their train split. Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import warnings as pywarnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..plotting import plot_composition, save_figure
from ..prompts import (
    FORMATS,
    TEXT_NORMALIZATIONS,
    draw_shots,
    normalize_text,
    prompt_text,
    render_completion,
    render_prompt,
)
from ..registry import Task
from ..runs import (
    RunWriter,
    new_run_dir,
    provenance,
    read_json,
    resolve_run_dir,
    write_json,
)
from ..schema import read_data_rows, write_data_rows
from .loaders import (
    FETCH_HINT,
    SPLITS,
    DataError,
    DataWarning,
    load_task_split,
    split_location,
    unfetched_tasks,
)
from .mixing import MixtureSpec, apply_mixture
from .types import AssembledData, DataParams
from .writing_rows import build_generation_rows
from .writing_sources import unfetched_writing_tasks

FEWSHOT_POOL_PER_TASK = 64  # enough distinct shots per label for k <= 8 without storing whole train splits


# ---------------------------------------------------------------- per-record validation


def _norm_key(text: str, text_b: str | None) -> str:
    return " ".join(str(text).lower().split()) + "\x1f" + " ".join(str(text_b or "").lower().split())


def _is_empty(rec: dict, task: Task) -> bool:
    if not isinstance(rec["text"], str) or not rec["text"].strip():
        return True
    return task.pair and (not isinstance(rec.get("text_b"), str) or not rec["text_b"].strip())


def _parse_score(rec: dict, task: Task) -> float:
    raw = rec["label"]
    if isinstance(raw, bool):
        raw = "boolean " + str(raw)
    try:
        score = float(raw)
    except (TypeError, ValueError):
        score = math.nan
    if not math.isfinite(score):
        raise DataError(
            f"{rec['file']}: line {rec['line']}: field 'label': {raw!r} is not a number "
            f"(task '{task.name}' is a regression task)"
        )
    return score


def _verbalize(rec: dict, task: Task) -> str:
    label = task.verbalize(rec["label"])
    if label is None:
        mapped = f" (raw labels mapped by label_map: {sorted(task.label_map)})" if task.label_map else ""
        raise DataError(
            f"{rec['file']}: line {rec['line']}: field 'label': {rec['label']!r} is not a label of task "
            f"'{task.name}'; allowed: {task.labels}{mapped}"
        )
    return label


def binarize(score: float, threshold: float, ties: str = "low") -> str:
    """The paper's low/high binarization: ``high`` if the score is above the threshold, else ``low``; a score
    equal to the threshold takes the side ``ties`` names."""
    if score == threshold:
        return ties
    return "high" if score > threshold else "low"


# ---------------------------------------------------------------- sampling


def _cap_stratified(rows: list[dict], cap: int | None, rng: random.Random) -> list[dict]:
    """Keep at most ``cap`` rows with label shares as in ``rows`` (largest-remainder allocation)."""
    if cap is None or len(rows) <= cap:
        return rows
    by_label: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_label[r["label"]].append(r)
    exact = {lab: cap * len(rs) / len(rows) for lab, rs in by_label.items()}
    quota = {lab: int(x) for lab, x in exact.items()}
    for lab in sorted(exact, key=lambda lab: (quota[lab] - exact[lab], lab))[: cap - sum(quota.values())]:
        quota[lab] += 1
    kept = [r for lab in sorted(by_label) for r in rng.sample(by_label[lab], quota[lab])]
    return kept


def _cap_balanced(rows: list[dict], cap: int | None, rng: random.Random) -> list[dict]:
    """Keep as equal a number per label as possible (leftover capacity goes to larger labels)."""
    by_label: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_label[r["label"]].append(r)
    cap = len(rows) if cap is None else min(cap, len(rows))
    quota = dict.fromkeys(by_label, 0)
    remaining = cap
    while remaining > 0:
        open_labels = sorted(lab for lab in by_label if quota[lab] < len(by_label[lab]))
        share = max(1, remaining // len(open_labels))
        for lab in open_labels:
            take = min(share, len(by_label[lab]) - quota[lab], remaining)
            quota[lab] += take
            remaining -= take
            if remaining == 0:
                break
    return [r for lab in sorted(by_label) for r in rng.sample(by_label[lab], quota[lab])]


def _order(rows: list[dict]) -> list[dict]:
    # Stable, seed-independent order for bytes-identical output: source line order.
    return sorted(rows, key=lambda r: r["_line"])


# ---------------------------------------------------------------- building


def _load_task(
    task: Task, splits: Sequence[str], source: str, data_dir: Any
) -> tuple[dict[str, list[dict]], list[str], set[str]]:
    out, warnings, missing = {}, [], set()
    for split in splits:
        try:
            out[split] = load_task_split(task, split, source=source, data_dir=data_dir)
        except (FileNotFoundError, ValueError) as e:
            # A held-out task may have no train data at all (SocialiteInstructions ships related tasks in
            # test only): then it just has no few-shot pool. Any other missing split is an error.
            if split == "train" and task.group == "related" and not isinstance(e, DataError):
                out[split] = []
                missing.add(split)
                warnings.append(f"no train split ({e}); few-shot prompts for this task are zero-shot")
            else:
                raise
    return out, warnings, missing


def _check_split_sizes(
    task: Task, counts: dict[str, dict[str, int]], rows: dict, missing: set[str], where: dict[str, str]
) -> list[str]:
    """Raise for a task that cannot be used (a seen task without train rows, any task without test rows);
    return warnings for the other empty splits (a seen task's validation, a held-out task's few-shot source)."""
    out = []
    for split, c in counts.items():
        if rows.get(split) or split in missing:
            continue
        if c["loaded"] == 0:
            why = "the file is empty"
        else:
            why = (
                f"all {c['loaded']} rows were dropped: {c['empty_dropped']} with an empty text, "
                f"{c.get('duplicates_dropped', 0)} duplicating a text of an evaluation split"
            )
        msg = f"{where[split]} has no usable {split} rows ({why})"
        if split == "test":
            raise DataError(f"task '{task.name}': {msg}; every task is evaluated on its test split")
        if split == "train" and task.group == "seen":
            raise DataError(
                f"task '{task.name}': {msg}; a seen task is trained on and needs train rows "
                "(or declare it group: related to evaluate it only)"
            )
        out.append(msg + ("; no few-shot pool for this task" if split == "train" else ""))
    return out


@dataclass
class TaskRows:
    """One task's rows on their way through :func:`build_data`'s steps (private ``_line``/``_instruction`` kept)."""

    task: Task
    rows: dict[str, list[dict]]  # split -> validated rows
    counts: dict[
        str, dict[str, int]
    ]  # split -> loaded / empty_dropped / duplicates_dropped / capped_away / kept
    files: dict[str, str]
    warnings: list[str]
    missing: set[str]  # splits the source does not have (a held-out task's train split)
    threshold_info: dict[str, Any] | None = None
    pool: list[dict] = field(default_factory=list)  # few-shot pool drawn from the train split
    shots: list[dict] = field(default_factory=list)
    natural_train_labels: dict[str, int] | None = None  # label counts of the train split before balancing


def check_data_options(tasks: Sequence[Task], params: DataParams) -> Any:
    """Step 0: check :func:`build_data`'s options (ValueError naming the parameter); return the validated mixture."""
    mixture, prompt_format = params.mixture, params.prompt_format
    instruction_from, text_normalization = params.instruction_from, params.text_normalization
    if mixture is not None:
        mixture = (MixtureSpec(**mixture) if isinstance(mixture, dict) else mixture).validate()
    if prompt_format not in FORMATS:
        raise ValueError(f"unknown prompt_format '{prompt_format}'; expected one of {FORMATS}")
    if instruction_from not in ("registry", "source"):
        raise ValueError("instruction_from must be 'registry' or 'source'")
    if text_normalization not in TEXT_NORMALIZATIONS:
        raise ValueError(
            f"unknown text_normalization {text_normalization!r}; expected one of {TEXT_NORMALIZATIONS}"
        )
    if not tasks:
        raise ValueError("no tasks selected")
    _check_counts(
        max_train_per_task=params.max_train_per_task,
        max_eval_per_task=params.max_eval_per_task,
        few_shot_k=params.few_shot_k,
    )
    if params.eval_seed is not None and (
        isinstance(params.eval_seed, bool) or not isinstance(params.eval_seed, int)
    ):
        raise ValueError(f"eval_seed = {params.eval_seed!r}: expected an integer or None")
    caps = params.exclude_test_caps
    if caps is not None and (
        not isinstance(caps, list | tuple)
        or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in caps)
    ):
        raise ValueError(
            f"exclude_test_caps = {caps!r}: expected a list of integers >= 1 (earlier test caps)"
        )
    return mixture


def leave_out_unfetched(tasks: Sequence[Task], params: DataParams) -> tuple[list[Task], dict[str, str]]:
    """Step 0b: the tasks whose data the project fetches rather than ships and that are not fetched yet are left
    out, with a warning naming them and what to run (the data card lists them under ``left_out``), so a fresh
    clone runs on the shipped tasks alone. When every task is such a task, nothing can run: FileNotFoundError."""
    absent: set[str] = set()
    if params.source == "local" and any(not t.is_generation for t in tasks):
        absent |= set(unfetched_tasks([t for t in tasks if not t.is_generation], params.data_dir))
    if any(t.is_generation for t in tasks):
        writing_absent = set(unfetched_writing_tasks(params.writing_dir))
        absent |= {
            t.name
            for t in tasks
            if t.is_generation and (t.sources.get("writing_tasks") or {}).get("dir", t.name) in writing_absent
        }
    if not absent:
        return list(tasks), {}
    reason = f"data fetched, not shipped, and not fetched yet: {FETCH_HINT}"
    left_out = {t.name: reason for t in tasks if t.name in absent}
    kept = [t for t in tasks if t.name not in absent]
    if not kept:
        raise FileNotFoundError(f"no task has data here: {sorted(left_out)} are {reason}")
    pywarnings.warn(
        f"left out {len(left_out)} of {len(tasks)} tasks, {reason}: {sorted(left_out)}",
        DataWarning,
        stacklevel=3,
    )
    return kept, left_out


def load_task_rows(
    task: Task, *, source: str = "local", data_dir: Any = None, text_normalization: str = "none"
) -> TaskRows:
    """Step 1: load a task's splits, validate and normalise every record; drop (and count) empty texts."""
    wanted = SPLITS if task.group == "seen" else ("train", "test")
    raw, warnings, missing = _load_task(task, wanted, source, data_dir)
    out = TaskRows(task=task, rows={}, counts={}, files={}, warnings=warnings, missing=missing)
    for split, records in raw.items():
        kept, empty = [], 0
        for rec in records:
            if _is_empty(rec, task):
                empty += 1
                continue
            row = {
                "text": normalize_text(rec["text"], text_normalization),
                "text_b": normalize_text(rec["text_b"], text_normalization) if task.pair else None,
                "_line": rec["line"],
                "_instruction": rec.get("instruction"),
            }
            if task.is_regression:
                row["score"] = _parse_score(rec, task)
            else:
                row["label"] = _verbalize(rec, task)
                row["score"] = None
            kept.append(row)
        if records:
            out.files[split] = records[0]["file"]
        out.rows[split] = kept
        out.counts[split] = {"loaded": len(records), "empty_dropped": empty}
    return out


def binarize_task_rows(tr: TaskRows) -> TaskRows:
    """Step 2 (regression tasks): label every row high/low at the task's threshold (``binarize`` in its YAML:
    by default the train-split median, the scale's midpoint without a train split; a score equal to the
    threshold is ``low`` unless ``ties: high``). The data card records the threshold, where it came from, the
    rule and how many rows sat on it."""
    if not tr.task.is_regression:
        return tr
    rule = tr.task.binarize
    train_scores = [r["score"] for r in tr.rows.get("train", [])]
    if isinstance(rule["threshold"], int | float):
        threshold, how = float(rule["threshold"]), "fixed in the task's YAML"
    elif rule["threshold"] == "median" and train_scores:
        threshold, how = statistics.median(train_scores), "median of the train split"
    else:
        lo, hi = tr.task.scale or (0.0, 1.0)
        why = "the task's YAML" if rule["threshold"] == "midpoint" else "no train split available"
        threshold, how = (lo + hi) / 2, f"midpoint of the scale ({why})"
    ties = rule["ties"]
    text = f"high if score > threshold, low if below; equal to it: {ties}"
    on_threshold = sum(r["score"] == threshold for rows in tr.rows.values() for r in rows)
    tr.threshold_info = {
        "threshold": threshold,
        "source": how,
        "rule": text,
        "ties": ties,
        "n_on_threshold": on_threshold,
    }
    for split_rows in tr.rows.values():
        for r in split_rows:
            r["label"] = binarize(r["score"], threshold, ties)
    return tr


def dedupe_task_rows(tr: TaskRows, *, source: str = "local", data_dir: Any = None) -> TaskRows:
    """Step 3: de-duplicate within and across splits (later evaluation splits win; counted); then check
    that the task is usable (DataError) and warn about other empty splits."""
    seen_keys: set[str] = set()
    for split in ("test", "validation", "train"):
        if split not in tr.rows:
            continue
        kept = []
        for r in tr.rows[split]:
            key = _norm_key(r["text"], r["text_b"])
            if key not in seen_keys:
                seen_keys.add(key)
                kept.append(r)
        tr.counts[split]["duplicates_dropped"] = len(tr.rows[split]) - len(kept)
        tr.rows[split] = kept
    where = {sp: split_location(tr.task, sp, source=source, data_dir=data_dir) for sp in tr.rows}
    tr.warnings += _check_split_sizes(tr.task, tr.counts, tr.rows, tr.missing, where)
    return tr


def draw_task_shots(tr: TaskRows, *, few_shot_k: int = 0, seed: int = 0) -> TaskRows:
    """Step 4: the few-shot pool (from the train split, every task) and the shots of the evaluation prompts."""
    task = tr.task
    pool_rng = random.Random(f"{seed}|{task.name}|pool")
    tr.pool = _cap_stratified(tr.rows.get("train", []), FEWSHOT_POOL_PER_TASK, pool_rng)
    tr.shots = draw_shots(tr.pool, few_shot_k, seed=seed, task_name=task.name, labels=task.labels)
    if few_shot_k and not tr.shots and not tr.warnings:
        tr.warnings.append("no train examples for few-shot prompts: prompts are zero-shot")
    if 0 < len(tr.shots) < few_shot_k:
        raise ValueError(
            f"few_shot_k = {few_shot_k}, but task '{task.name}' has only {len(tr.shots)} train examples to draw "
            f"shots from; lower few_shot_k to at most {len(tr.shots)} or leave this task out"
        )
    return tr


def cap_task_rows(
    tr: TaskRows,
    *,
    max_train_per_task: int | None = None,
    max_eval_per_task: int | None = None,
    balance_train: bool = False,
    seed: int = 0,
    eval_seed: int | None = None,
    exclude_test_caps: Sequence[int] | None = None,
) -> TaskRows:
    """Step 5: a held-out task loses its train split; cap every split (stratified by label, or balanced).

    Validation and test rows are drawn with ``eval_seed`` (default ``seed``); ``exclude_test_caps`` first removes
    the test rows that draws with those caps made (what earlier runs scored)."""
    if tr.task.group == "related":
        tr.rows.pop("train", None)  # held out: never trained on
    eval_seed = seed if eval_seed is None else eval_seed
    for split in list(tr.rows):
        rng = random.Random(f"{seed if split == 'train' else eval_seed}|{tr.task.name}|{split}")
        if split == "test" and exclude_test_caps:
            seen = {
                id(r)
                for c in exclude_test_caps
                for r in _cap_stratified(tr.rows[split], c, random.Random(f"{eval_seed}|{tr.task.name}|test"))
            }
            tr.counts[split]["excluded_seen"] = len(seen)
            tr.rows[split] = [r for r in tr.rows[split] if id(r) not in seen]
        cap = max_train_per_task if split == "train" else max_eval_per_task
        capper = _cap_balanced if (split == "train" and balance_train) else _cap_stratified
        before = len(tr.rows[split])
        if capper is _cap_balanced:
            # the label shares before balancing: the majority / stratified floors learn their prior from these
            # (notebook 05), not from the balanced rows, which would turn them into uniform guesses
            tr.natural_train_labels = dict(sorted(Counter(r["label"] for r in tr.rows[split]).items()))
        tr.rows[split] = _order(capper(tr.rows[split], cap, rng))
        tr.counts[split]["capped_away"] = before - len(tr.rows[split])
        tr.counts[split]["kept"] = len(tr.rows[split])
    return tr


def render_task_rows(
    tr: TaskRows, *, prompt_format: str = "paper", instruction_from: str = "registry"
) -> tuple[dict[str, list[dict]], list[dict]]:
    """Step 6: the public rows with rendered prompts: ({split: rows}, few-shot pool rows). Train prompts are
    zero-shot; validation/test prompts carry the task's shots."""
    fmt, instr = prompt_format, instruction_from
    pool = [_public_row(tr.task, r, "train", shots=None, fmt=fmt, instr_from=instr) for r in _order(tr.pool)]
    splits = {
        split: [
            _public_row(
                tr.task, r, split, shots=None if split == "train" else tr.shots, fmt=fmt, instr_from=instr
            )
            for r in rows
        ]
        for split, rows in tr.rows.items()
    }
    return splits, pool


def task_card(tr: TaskRows, *, source: str = "local") -> dict[str, Any]:
    """Step 7: the task's entry in the data card (files, counts, label distribution, binarization, shots)."""
    task = tr.task
    return {
        "category": task.category,
        "type": task.type,
        "group": task.group,
        "labels": task.labels,
        "instruction": task.instruction,
        "source": source,
        "files": tr.files,
        "counts": tr.counts,
        "label_distribution": {
            **{s: dict(sorted(Counter(r["label"] for r in rs).items())) for s, rs in tr.rows.items()},
            **({"train_before_balancing": tr.natural_train_labels} if tr.natural_train_labels else {}),
        },
        "binarization": tr.threshold_info,
        "few_shot_examples": [{"text": s["text"], "label": s["label"]} for s in tr.shots],
        "warnings": tr.warnings,
    }


def build_task_rows(
    task: Task, params: DataParams = DataParams()
) -> tuple[dict[str, list[dict]], list[dict], dict[str, Any]]:
    """Steps 1-7 for one classification/regression task: ({split: rows}, few-shot pool rows, card entry)."""
    p = params
    tr = load_task_rows(task, source=p.source, data_dir=p.data_dir, text_normalization=p.text_normalization)
    binarize_task_rows(tr)
    dedupe_task_rows(tr, source=p.source, data_dir=p.data_dir)
    draw_task_shots(tr, few_shot_k=p.few_shot_k, seed=p.seed)
    cap_task_rows(
        tr,
        max_train_per_task=p.max_train_per_task,
        max_eval_per_task=p.max_eval_per_task,
        balance_train=p.balance_train,
        seed=p.seed,
        eval_seed=p.eval_seed,
        exclude_test_caps=p.exclude_test_caps,
    )
    splits, pool = render_task_rows(tr, prompt_format=p.prompt_format, instruction_from=p.instruction_from)
    return splits, pool, task_card(tr, source=p.source)


def build_data_card(
    params: dict[str, Any], card_tasks: dict[str, Any], splits: dict[str, list[dict]]
) -> dict[str, Any]:
    """The data card: the parameters, each task's entry, totals, dropped counts and notes."""
    text_normalization = params["text_normalization"]
    return {
        "params": params,
        "tasks": card_tasks,
        "text_normalization": text_normalization,
        "totals": {s: len(rs) for s, rs in splits.items()},
        "dropped": _dropped_totals(card_tasks),
        "notes": [
            "train prompts are zero-shot (the paper's format); few_shot_k applies to validation/test",
            "related (held-out) tasks contribute test rows only",
            "duplicates are detected on case/whitespace-normalised text (+ text_b); evaluation splits keep them",
            (
                "texts are rendered verbatim (text_normalization='none')"
                if text_normalization == "none"
                else "texts had runs of whitespace collapsed to one space and ends stripped "
                "(text_normalization='collapse_whitespace'); rows store the text as rendered"
            ),
        ],
    }


def _build_task_rows_all(
    tasks: Sequence[Task], params: DataParams
) -> tuple[dict[str, list[dict]], list[dict], dict[str, Any]]:
    """Every task's rows, concatenated per split in task order; the few-shot pool; the card's task entries.
    Each task's warnings are issued (DataWarning) as it is built."""

    splits: dict[str, list[dict]] = {s: [] for s in SPLITS}
    pool: list[dict] = []
    card_tasks: dict[str, Any] = {}
    for task in tasks:
        if task.is_generation:
            task_rows, card_tasks[task.name] = build_generation_rows(task, params)
            task_pool: list[dict] = []
        else:
            task_rows, task_pool, card_tasks[task.name] = build_task_rows(task, params)
        for split, split_rows in task_rows.items():
            splits[split] += split_rows
        pool += task_pool
        for w in [] if task.is_generation else card_tasks[task.name]["warnings"]:
            pywarnings.warn(f"task '{task.name}': {w}", DataWarning, stacklevel=3)  # build_data's caller
    return splits, pool, card_tasks


def build_data(tasks: Sequence[Task], params: DataParams | None = None, **options: Any) -> AssembledData:
    """Load, validate, de-duplicate, cap and render every task into train/validation/test rows.

    The options are the fields of :class:`DataParams`, given as ``params`` and/or as keywords (keywords win):
    ``build_data(tasks, data_dir=..., max_train_per_task=200, prompt_format="chat")``.

    ``instruction_from="source"`` uses the source's own instruction text where it has one
    (SocialiteInstructions); the registry's otherwise. Train prompts are always zero-shot, as in
    the paper; ``few_shot_k`` applies to validation and test prompts. ``text_normalization``: "none"
    puts each text into its prompt verbatim, "collapse_whitespace" joins runs of whitespace into one space
    and strips the ends; the rows store the text as rendered, so every later consumer sees the same text.
    A seen task without train rows or any task without test rows is an error; other empty splits are
    warnings (printed and in the data card).

    Generation tasks (``type: generation``) read ``writing_dir`` (default: the writing bundle) and are built by
    :func:`socialite_utils.data.writing_rows.build_generation_rows`. ``mixture`` (a
    :class:`socialite_utils.data.mixing.MixtureSpec` or its fields as a dict) adds generalist rows to train and holds a
    generalist slice out (see :mod:`socialite_utils.data.mixing`).

    The steps, each callable alone: :func:`check_data_options`, then per task :func:`build_task_rows`
    (:func:`load_task_rows` -> :func:`binarize_task_rows` -> :func:`dedupe_task_rows` -> :func:`draw_task_shots`
    -> :func:`cap_task_rows` -> :func:`render_task_rows` -> :func:`task_card`), then :func:`build_data_card`.
    """
    params = DataParams.of(params, **options)
    mixture = check_data_options(tasks, params)
    tasks, left_out = leave_out_unfetched(tasks, params)
    splits, pool, card_tasks = _build_task_rows_all(tasks, params)
    card_params = params.card_params(tasks)  # one dict: apply_mixture records the mixture in both places
    card = build_data_card(card_params, card_tasks, splits)
    if left_out:
        card["left_out"] = left_out
    data = AssembledData(splits=splits, pool=pool, card=card, params=card_params)
    if mixture is not None:
        apply_mixture(data, mixture, seed=params.seed, fmt=params.prompt_format)
    return data


def _check_counts(**values: int | None) -> None:
    """Notebook 01's count parameters: caps are None or >= 1 (a cap of 0 would write a run without rows),
    ``few_shot_k`` is 0..FEWSHOT_POOL_PER_TASK. Raises ValueError naming the parameter and the allowed values."""
    for name, value in values.items():
        lo, hi = (0, FEWSHOT_POOL_PER_TASK) if name == "few_shot_k" else (1, None)
        ok = isinstance(value, int) and not isinstance(value, bool) and lo <= value <= (hi or value)
        if not ok and not (value is None and name != "few_shot_k"):
            allowed = f"an integer from {lo} to {hi}" if hi else f"None (no cap) or an integer >= {lo}"
            raise ValueError(f"{name} = {value!r}; expected {allowed}")


def _public_row(task: Task, r: dict, split: str, *, shots, fmt: str, instr_from: str) -> dict:
    instruction = r["_instruction"] if (instr_from == "source" and r["_instruction"]) else None
    return {
        "id": f"{task.name}:{split}:{r['_line']}",
        "task": task.name,
        "category": task.category,
        "task_type": task.type,
        "group": task.group,
        "split": split,
        "text": r["text"],
        "text_b": r["text_b"],
        "label": r["label"],
        "score": r["score"],
        "labels": task.labels,
        "prompt": render_prompt(task, r["text"], r["text_b"], fmt=fmt, shots=shots, instruction=instruction),
        "completion": render_completion(r["label"], fmt),
        "prompt_format": fmt,
        "few_shot_k": len(shots or []),
    }


def _dropped_totals(card_tasks: dict[str, Any]) -> dict[str, int]:
    tot: Counter = Counter()
    for info in card_tasks.values():
        for c in info.get("counts", {}).values():
            tot["empty_texts"] += c.get("empty_dropped", 0)
            tot["duplicates"] += c.get("duplicates_dropped", 0)
    return dict(tot)


# ---------------------------------------------------------------- reporting and I/O


def mixture_table(data: AssembledData):
    """task x split x count x share (share of the split's examples), as a pandas DataFrame."""
    import pandas as pd

    records = []
    for split, rows in data.splits.items():
        per_task = Counter(r["task"] for r in rows)
        cats = {r["task"]: (r["category"], r["group"]) for r in rows}
        for task, n in per_task.items():
            records.append(
                {
                    "task": task,
                    "category": cats[task][0],
                    "group": cats[task][1],
                    "split": split,
                    "count": n,
                    "share": round(n / len(rows), 4),
                }
            )
    return pd.DataFrame.from_records(
        records, columns=["task", "category", "group", "split", "count", "share"]
    )


def write_data_run(
    run_name: str, data: AssembledData, *, params: dict | None = None, overwrite: bool = False
) -> Path:
    """Write a complete data run to ``runs/<run_name>/`` atomically (see :func:`socialite_utils.runs.RunWriter`);
    ``run_name`` must be a plain name (:func:`socialite_utils.runs.check_run_name`)."""

    run_dir = new_run_dir(run_name, overwrite=overwrite)
    with RunWriter(run_dir, overwrite=overwrite) as tmp:
        for split, rows in data.splits.items():
            write_data_rows(tmp / "data" / f"{split}.jsonl", rows)
        write_data_rows(tmp / "data" / "fewshot_pool.jsonl", data.pool)
        if "mixture" in data.card:
            write_data_rows(tmp / "data" / "general_heldout.jsonl", data.general_heldout)
        write_json(tmp / "data_card.json", data.card)
        write_json(tmp / "params.json", {**data.params, **(params or {})})
        write_json(tmp / "provenance.json", provenance({"stage": "data_assembly"}))
        mixture_table(data).to_csv(tmp / "mixture.csv", index=False)
        save_figure(plot_composition(data), tmp / "figures" / "composition")
    return run_dir


def load_data_run(run_dir: str | os.PathLike) -> dict[str, list[dict]]:
    """The rows of a data run, split -> rows (``fewshot_pool`` included), read by
    :func:`socialite_utils.schema.read_data_rows`: errors name what is missing, or the file, line and field of a
    bad row."""
    run_dir = resolve_run_dir(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"data run {run_dir} does not exist (run notebook 01 first)")
    out = {}
    for name in (*SPLITS, "fewshot_pool"):
        path = run_dir / "data" / f"{name}.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"data run {run_dir} is incomplete: {path} is missing")
        out[name] = read_data_rows(path)
    return out


def load_data_card(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The data card of a data run."""
    return read_json(resolve_run_dir(run_dir) / "data_card.json")


def task_table(tasks: Sequence[Task]):
    """One row per task (name, category, type, group, labels) for display."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "task": t.name,
                "category": t.category,
                "type": t.type,
                "group": t.group,
                "labels": ", ".join(t.labels),
            }
            for t in tasks
        ]
    )


def show_examples(data: AssembledData, n: int = 3, split: str = "test") -> str:
    """A few rendered prompts with their gold answers, one per task, as text."""

    seen: set[str] = set()
    blocks = []
    for r in data.splits[split]:
        if r["task"] in seen:
            continue
        seen.add(r["task"])
        blocks.append(f"--- {r['id']} (gold: {r['label']!r})\n{prompt_text(r['prompt'])}")
        if len(blocks) == n:
            break
    return "\n".join(blocks)
