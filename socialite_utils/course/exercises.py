"""Check functions for the notebooks' exercises: each recomputes the answer with the kit's own functions.

Every exercise in notebooks 00-07 ends with a cell calling one ``check_*`` function on the student's answer.
A wrong (or still empty) answer raises :class:`ExerciseNotSolved` with a hint that says what to look at; a right
one prints ``Correct: ...`` and what it shows. The expected values are computed here from the same objects the
notebook uses (model, tokenizer, task, metrics), so a copied constant from another run does not pass.
``make student`` (:mod:`socialite_utils.course`) removes the cells tagged ``solution``; the checks stay.
"""

from __future__ import annotations

import copy
import difflib
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..data.assembly import build_data
from ..data.loaders import load_task_split
from ..data.mixing import MixtureSpec, general_rows_wanted
from ..evaluation.scoring import label_probabilities, score_label_logprobs
from ..metrics import compute_classification, expected_calibration_error, macro_f1
from ..models import count_parameters, peft_wrap_warnings_silenced
from ..prompts import render_prompt
from ..registry import RegistryError, load_registry, load_task_file
from ..studies.mixing import MixingStudyParams, cell_mixture
from ..text_metrics import sari, sari_ngram_parts
from ..tokens import tokenize_like_trl
from ..training.lora import TrainParams, build_lora_config, planned_steps
from ..training.rows import supervised_token_count


class ExerciseNotSolved(AssertionError):
    """An exercise's answer is missing or wrong; the message is the hint."""


def _fail(exercise: str, hint: str) -> None:
    raise ExerciseNotSolved(f"{exercise}: not yet. Hint: {hint}")


def _require(answer: Any, exercise: str, what: str) -> None:
    if answer is None:
        _fail(exercise, f"`answer` is still None; write {what} in the cell above, then rerun this check.")


def _require_result(got: Any, exercise: str, fn: str) -> None:
    if got is None:
        _fail(exercise, f"{fn} returned None; write its body in the cell above, then rerun this check.")


def _correct(exercise: str, lesson: str) -> bool:
    print(f"{exercise}: Correct! {lesson}")
    return True


def _close(a: float, b: float, tol: float) -> bool:
    return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)


# ---------------------------------------------------------------- notebook 00: inside the pipeline


def check_trained_tokens(answer: Any, tokenizer: Any, row: dict) -> bool:
    """00.1: how many tokens of ``row`` (prompt + completion) the loss is computed on."""

    ex = "Exercise 00.1"
    _require(answer, ex, "the number of trained tokens")
    ids, n_prompt = tokenize_like_trl(tokenizer, row["prompt"], row["completion"])
    expected = len(ids) - n_prompt
    if answer == expected:
        return _correct(
            ex, f"{expected} of {len(ids)} tokens are trained: the answer and EOS, never the prompt."
        )
    if answer == expected - 1:
        _fail(ex, "one short: the end-of-sequence token is trained too (it teaches the model to stop).")
    if answer in (len(ids), n_prompt):
        _fail(ex, "count the positions whose label is not -100 (the prompt's positions are all -100).")
    _fail(ex, "in the label mask of section 3, count the positions whose label is not -100.")
    return False


def check_label_probabilities(answer: Any, logprobs: dict[str, float]) -> bool:
    """00.2: the label log-probabilities ``logprobs`` turned into probabilities over the label set."""

    ex = "Exercise 00.2"
    _require(answer, ex, "a dict {label: probability}")
    expected = label_probabilities(logprobs)
    if not isinstance(answer, dict) or set(answer) != set(expected):
        _fail(ex, f"answer with a dict whose keys are the labels {list(expected)}.")
    if all(_close(answer[k], v, 1e-6) for k, v in expected.items()):
        return _correct(ex, "a softmax over the labels only: score mode's probabilities always sum to 1.")
    if all(_close(answer[k], math.exp(v), 1e-6) for k, v in logprobs.items()):
        _fail(
            ex,
            "exp(log P) is each label's probability among every possible continuation; divide by their sum.",
        )
    _fail(
        ex, "p(label) = exp(logprob) / sum of exp(logprob) over the labels (a softmax); they must sum to 1."
    )
    return False


def check_label_scoring(
    fn: Callable[[Any, Sequence[str]], Any],
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Any],
    labels: Sequence[str],
) -> bool:
    """00.4: ``fn(prompt, labels) -> {label: log P(label | prompt)}`` against the kit's score mode."""

    ex = "Exercise 00.4"
    expected = score_label_logprobs(model, tokenizer, list(prompts), list(labels), progress=False)
    for prompt, exp in zip(prompts, expected, strict=True):
        got = fn(prompt, list(labels))
        _require_result(got, ex, "my_label_logprobs")
        if not isinstance(got, dict) or set(got) != set(exp):
            _fail(ex, f"my_label_logprobs must return a dict with the keys {list(exp)}.")
        for lab, value in exp.items():
            if not _close(got[lab], value, 1e-3):
                _fail(
                    ex,
                    f"for label {lab!r} you have {float(got[lab]):.4f}, score mode has {value:.4f}. Sum log P over "
                    "every token of the label; the logits at position t predict token t+1 (section 5).",
                )
    return _correct(ex, "you reimplemented score mode: one forward pass, the label's token log-probs summed.")


def lora_trainable_parameters(model: Any, r: int, target_modules: str | Sequence[str]) -> int:
    """Trainable parameters of a fresh LoRA (rank ``r`` on ``target_modules``) on ``model``'s base weights.

    ``model`` may already carry an adapter (a PeftModel): a copy is unloaded first, so ``model`` is untouched.
    """
    from peft import PeftModel, get_peft_model

    base = copy.deepcopy(model)
    if isinstance(base, PeftModel):
        base = base.unload()
    with peft_wrap_warnings_silenced():
        peft_model = get_peft_model(base, build_lora_config(r=r, alpha=2 * r, target_modules=target_modules))
    return count_parameters(peft_model)[0]


def check_lora_parameters(answer: Any, model: Any, r: int, target_modules: Sequence[str]) -> bool:
    """00.3: the LoRA parameters of rank ``r`` on ``target_modules``, worked out from the layer shapes."""
    ex = "Exercise 00.3"
    _require(answer, ex, "the number of LoRA parameters")
    expected = lora_trainable_parameters(model, r, list(target_modules))
    if answer == expected:
        paper = lora_trainable_parameters(model, 8, ["q_proj", "v_proj"])
        return _correct(
            ex,
            f"{expected:,} parameters, {expected / paper:.1f}x the paper's r=8 on q_proj/v_proj ({paper:,}).",
        )
    if answer == lora_trainable_parameters(model, 8, ["q_proj", "v_proj"]):
        _fail(ex, f"that is the paper's r=8 on q_proj/v_proj; use r={r} on {list(target_modules)}.")
    if answer * 2 == expected or answer == 2 * expected:
        _fail(ex, "a factor of 2 off: A is r x in and B is out x r, so a layer adds r * (in + out).")
    _fail(ex, "sum r * (in_features + out_features) over every layer named like a target, in every block.")
    return False


# ---------------------------------------------------------------- notebook 01: data assembly


def check_rendered_prompt(answer: Any, task: Any, text: str) -> bool:
    """01.1: the prompt for ``text`` in the paper's format, written by hand."""

    ex = "Exercise 01.1"
    _require(answer, ex, "the prompt as one string")
    expected = render_prompt(task, text)
    if answer == expected:
        return _correct(ex, "this exact string, and nothing else, is what the model sees before its answer.")
    at = next((i for i, (a, b) in enumerate(zip(answer, expected, strict=False)) if a != b), None)
    at = min(len(answer), len(expected)) if at is None else at
    diff = "\n".join(difflib.ndiff(expected.splitlines(), str(answer).splitlines()))
    _fail(
        ex,
        f"first difference at character {at}: expected {expected[at : at + 20]!r}, you have "
        f"{str(answer)[at : at + 20]!r}. Line by line (- expected, + yours):\n{diff}",
    )
    return False


def check_own_task(yaml_text: Any, data_dir: str | Path | None = None) -> bool:
    """01.2: a suite file ``mine`` with task ``clickbait_mine``: the bundle's clickbait data, answered yes/no."""

    ex = "Exercise 01.2"
    _require(yaml_text, ex, "the YAML text of your suite file")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mine.yaml"
        path.write_text(str(yaml_text))
        try:
            suite, tasks = load_task_file(path)
        except RegistryError as e:
            _fail(ex, f"the registry refuses your YAML: {e}")
    if suite != "mine" or "clickbait_mine" not in tasks:
        _fail(
            ex,
            f"define task 'clickbait_mine' in suite 'mine' (you defined {sorted(tasks)} in suite {suite!r}).",
        )
    task = tasks["clickbait_mine"]
    if sorted(task.labels) != ["no", "yes"]:
        _fail(
            ex,
            f'the answer words must be yes and no (quoted in YAML: ["yes", "no"]); you have {task.labels}.',
        )
    try:
        rows = load_task_split(load_registry("local")["clickbait"], "train", data_dir=data_dir)
    except (
        FileNotFoundError
    ) as e:  # no clickbait data here (a machine on Hub data only): say what was checked
        return _correct(
            ex,
            "half checked: the registry accepts your task (suite, name, answer words), but its label_map was not "
            f"tried on the clickbait data, which is not here ({e}). Run `make data`, or point data_dir at a "
            "bundle with clickbait/, to check the mapping too.",
        )
    raw = {str(r["label"]) for r in rows}
    wrong = {
        r: task.verbalize(r)
        for r in sorted(raw)
        if task.verbalize(r) != ("yes" if r == "clickbait" else "no")
    }
    if wrong:
        _fail(ex, f"label_map must send the data's labels {sorted(raw)} to yes/no; now they give {wrong}.")
    try:
        data = build_data([task], data_dir=data_dir, max_train_per_task=20, max_eval_per_task=10)
    except Exception as e:  # noqa: BLE001 - any refusal is the hint
        _fail(ex, f"the registry accepts the task but build_data refuses it: {e}")
    answers = sorted({r["label"] for r in data.splits["test"]})
    return _correct(ex, f"test rows answered {answers}: the model never sees the files' raw labels.")


# ---------------------------------------------------------------- notebook 02: instruction tuning


def check_planned_steps(
    answer: Any, n_rows: int, epochs: float = 5.0, batch: int = 8, accumulation: int = 8
) -> bool:
    """02.1: optimizer steps of ``epochs`` passes over ``n_rows`` rows at ``batch`` x ``accumulation`` per step."""

    ex = "Exercise 02.1"
    _require(answer, ex, "the number of optimizer steps")
    params = TrainParams(
        run_name="exercise",
        num_train_epochs=epochs,
        max_steps=-1,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation,
    )
    expected = planned_steps(params, n_rows)
    if answer == expected:
        return _correct(
            ex, f"{expected} steps: one step per {batch * accumulation} examples (the effective batch)."
        )
    if answer in (math.ceil(epochs * n_rows / batch), math.ceil(epochs * math.ceil(n_rows / batch))):
        _fail(ex, f"a step is taken after {accumulation} accumulated forward passes, not after each one.")
    _fail(ex, "steps per epoch = ceil(rows / (batch x accumulation)); multiply by the epochs and round up.")
    return False


def check_trained_token_total(answer: Any, rows: Sequence[dict], tokenizer: Any, max_length: int) -> bool:
    """02.2: the tokens one pass over ``rows`` computes the loss on (answer + EOS, after cutting at ``max_length``)."""

    ex = "Exercise 02.2"
    _require(answer, ex, "the number of trained tokens")
    expected = supervised_token_count(list(rows), tokenizer, max_length)
    if answer == expected:
        total = sum(
            min(len(tokenize_like_trl(tokenizer, r["prompt"], r["completion"])[0]), max_length) for r in rows
        )
        return _correct(
            ex, f"{expected:,} of {total:,} tokens ({100 * expected / total:.1f} %) carry the loss."
        )
    if answer == expected - len(rows):
        _fail(ex, "one token short per example: the EOS token after each answer is trained too.")
    _fail(ex, "per example: min(len(ids), max_length) - n_prompt tokens (never below 0); sum over rows.")
    return False


# ---------------------------------------------------------------- notebook 03: evaluation


def _task_model(metrics: dict, task: str, model: str) -> dict:
    try:
        return metrics["tasks"][task]["models"][model]
    except KeyError:
        raise KeyError(f"metrics has no task {task!r} for model {model!r}") from None


def check_task_accuracy(answer: Any, metrics: dict, task: str, model: str) -> bool:
    """03.1: the accuracy (percent) of ``model`` on ``task``, computed from the predictions."""
    ex = "Exercise 03.1"
    _require(answer, ex, "the accuracy in percent")
    expected = _task_model(metrics, task, model)["accuracy"]
    if _close(answer, expected, 1e-6):
        return _correct(ex, f"{expected:.1f} % of {task}'s test examples answered right by {model}.")
    if _close(answer, expected / 100, 1e-6):
        _fail(ex, "the kit reports percentages (0-100): multiply by 100.")
    _fail(
        ex, f"keep only the rows with task == {task!r} and model == {model!r}; accuracy = mean of 'correct'."
    )
    return False


def check_macro_f1(fn: Callable[..., Any], predictions: Sequence[dict]) -> bool:
    """03.2: ``fn(gold, pred, labels)`` (percent) against the kit's macro-F1 on each task of ``predictions``."""

    ex = "Exercise 03.2"
    cases = [
        ("a label nobody predicted", ["a", "a", "b", "b"], ["a", "a", "a", "a"], ["a", "b"]),
        ("an invalid answer (None)", ["a", "b", "b"], ["a", None, "b"], ["a", "b"]),
        ("a label predicted but never gold", ["a", "a", "b"], ["a", "c", "b"], ["a", "b", "c"]),
        ("a label never gold nor predicted", ["a", "b"], ["a", "a"], ["a", "b", "c"]),
    ]
    by_task: dict[str, tuple[list, list]] = {}
    for row in predictions:
        if row.get("task_type", "classification") in ("classification", "regression"):
            gold, pred = by_task.setdefault(f"task {row['task']} ({row['model']})", ([], []))
            gold.append(row["gold"])
            pred.append(row["parsed"])
    for name, (gold, pred) in by_task.items():
        cases.append((name, gold, pred, sorted(set(gold))))
    for name, gold, pred, labels in cases:
        got = fn(gold, pred, labels)
        _require_result(got, ex, "my_macro_f1")
        expected = macro_f1(gold, pred, labels)
        if not _close(got, expected, 1e-6):
            _fail(
                ex,
                f"on {name}: gold {gold[:6]}, pred {pred[:6]} you give {float(got):.3f}, expected {expected:.3f} "
                "(percent). F1 = 2TP / (2TP + FP + FN) per label, 0 when TP + FP + FN = 0; then the plain mean.",
            )
    return _correct(ex, f"your macro-F1 matches the kit's on {len(cases)} cases, edge cases included.")


def _majority_labels(labels: Sequence[str], task: str, split: str) -> list[str]:
    """The most frequent of ``labels`` (every one of them on a tie)."""
    from collections import Counter

    if not labels:
        raise ValueError(f"task {task!r} has no {split} rows to take the majority label from")
    counts = Counter(labels)
    return sorted(lab for lab, n in counts.items() if n == max(counts.values()))


def check_constant_floor(
    answer: Any, predictions: Sequence[dict], task: str, labels: Sequence[str], train_rows: Sequence[dict]
) -> bool:
    """03.3: macro-F1 on ``task``'s evaluated rows of always answering the most frequent label of its train rows."""
    from collections import Counter

    ex = "Exercise 03.3"
    _require(answer, ex, "the macro-F1 in percent of the constant answer")
    rows = [r for r in predictions if r["task"] == task]
    if not rows:
        raise ValueError(f"no predictions of task {task!r}")
    gold = [r["gold"] for r in rows if r["model"] == rows[0]["model"]]  # the same gold rows for every model
    tops = _majority_labels([r["label"] for r in train_rows if r["task"] == task], task, "train")
    for top in tops:  # a tie: any of them is the floor
        expected = macro_f1(gold, [top] * len(gold), list(labels))
        if _close(answer, expected, 1e-6):
            return _correct(
                ex,
                f"answering {top!r} every time scores {expected:.1f}: a model at this level may have collapsed "
                "onto the train prior (notebook 03's collapse table).",
            )
    test_top = Counter(gold).most_common(1)[0][0]
    if test_top not in tops and _close(answer, macro_f1(gold, [test_top] * len(gold), list(labels)), 1e-6):
        _fail(
            ex,
            "that label is the most frequent of the TEST rows: take it from the train rows (never from test).",
        )
    if _close(answer, 100 * sum(g == tops[0] for g in gold) / len(gold), 1e-6):
        _fail(
            ex,
            "that is the accuracy of the constant answer; macro-F1 averages F1 over every label of the task.",
        )
    _fail(ex, "the most frequent label of the task's train rows, answered for every evaluated row; macro-F1 over "
          "all the task's labels (the kit's macro_f1).")  # fmt: skip
    return False


# ---------------------------------------------------------------- notebook 04: error analysis


def check_label_recall(
    answer: Any, predictions: Sequence[dict], task: str, model: str, labels: Sequence[str]
) -> bool:
    """04.1: ``{label: recall in percent}`` of ``model`` on ``task``: the share of each gold label answered right."""

    ex = "Exercise 04.1"
    _require(answer, ex, "a dict {label: recall in percent}")
    rows = [r for r in predictions if r["task"] == task and r["model"] == model]
    per_label = compute_classification([r["gold"] for r in rows], [r["parsed"] for r in rows], list(labels))[
        "per_label"
    ]
    if not isinstance(answer, dict) or set(answer) != set(per_label):
        _fail(ex, f"answer with a dict whose keys are the task's labels {list(per_label)}.")
    for lab, entry in per_label.items():
        if entry["support"] and not _close(answer[lab], entry["recall"], 1e-6):
            if _close(answer[lab], entry["precision"], 1e-6):
                _fail(
                    ex,
                    f"for {lab!r} that is the precision (divided by the answers {lab!r}); divide by the gold ones.",
                )
            _fail(
                ex, f"for {lab!r}: of the rows whose gold label is {lab!r}, the percentage answered {lab!r}."
            )
    low = min(
        (lab for lab in per_label if per_label[lab]["support"]), key=lambda lab: per_label[lab]["recall"]
    )
    return _correct(
        ex,
        f"the weakest label is {low!r} ({per_label[low]['recall']:.0f} %): errors are rarely spread evenly.",
    )


def _answer_confidence(row: dict) -> float:
    probs = row["probs"]
    return float(probs[row["parsed"]]) if row.get("parsed") in probs else float(max(probs.values()))


def check_ece(answer: Any, predictions: Sequence[dict], model: str, n_bins: int = 10) -> bool:
    """04.2: expected calibration error (a fraction) of ``model``'s score-mode answers over ``n_bins`` bins."""

    ex = "Exercise 04.2"
    rows = [r for r in predictions if r["model"] == model and r.get("probs")]
    if not rows:
        print(f"{ex}: this evaluation ran in generate mode (no probabilities): nothing to calibrate; rerun notebook "
              "03 with mode='score' to try this exercise.")  # fmt: skip
        return False
    _require(answer, ex, "the ECE as a fraction")
    conf = [_answer_confidence(r) for r in rows]
    expected = expected_calibration_error(conf, [bool(r["correct"]) for r in rows], n_bins)
    if _close(answer, expected, 1e-6):
        acc, mean_conf = sum(r["correct"] for r in rows) / len(rows), sum(conf) / len(conf)
        return _correct(
            ex, f"ECE {expected:.3f}: mean confidence {mean_conf:.2f} against accuracy {acc:.2f}."
        )
    if _close(answer, 100 * expected, 1e-6):
        _fail(ex, "the ECE here is a fraction (0-1), not a percentage.")
    _fail(ex, f"{n_bins} equal-width bins on [0, 1], each (lo, hi]; ECE = sum over bins of count / N x "
          "|accuracy - mean confidence|; confidence = the probability of the answer given.")  # fmt: skip
    return False


# ---------------------------------------------------------------- notebook 05: baselines


def _task_labels(data: dict, split: str, task: str) -> list[str]:
    labels = [r["label"] for r in data.get(split, []) if r["task"] == task]
    if not labels:
        raise ValueError(f"the data run has no {split} rows of task {task!r}")
    return labels


def check_majority_floor(answer: Any, data: dict, task: str) -> bool:
    """05.1: macro-F1 (percent) on ``task``'s test rows of always answering its most frequent train label."""
    from collections import Counter

    ex = "Exercise 05.1"
    _require(answer, ex, "the macro-F1 in percent")
    train, test = _task_labels(data, "train", task), _task_labels(data, "test", task)
    labels = next(r["labels"] for r in data["test"] if r["task"] == task)
    counts = Counter(train)
    tops = [lab for lab in labels if counts[lab] == max(counts.values())]  # a tie: any of them is the floor
    for top in tops:
        expected = macro_f1(test, [top] * len(test), labels)
        if _close(answer, expected, 1e-6):
            return _correct(
                ex, f"always {top!r}: macro-F1 {expected:.1f}, the majority row of the comparison table."
            )
    test_top = Counter(test).most_common(1)[0][0]
    if test_top not in tops and _close(answer, macro_f1(test, [test_top] * len(test), labels), 1e-6):
        _fail(
            ex, "take the most frequent label of the train split: the floor may not peek at the test labels."
        )
    _fail(ex, "the most frequent train label, predicted for every test row; macro-F1 over the task's labels.")
    return False


def check_guessing_accuracy(answer: Any, data: dict, task: str) -> bool:
    """05.2: expected accuracy (percent) of guessing each test label from the train label distribution."""
    from collections import Counter

    ex = "Exercise 05.2"
    _require(answer, ex, "the expected accuracy in percent")
    train, test = Counter(_task_labels(data, "train", task)), Counter(_task_labels(data, "test", task))
    n_train, n_test = sum(train.values()), sum(test.values())
    expected = 100 * sum(train[lab] / n_train * test[lab] / n_test for lab in test)
    if _close(answer, expected, 1e-6):
        return _correct(ex, f"{expected:.1f} %, not 1/{len(train)}: a guess that follows the label shares.")
    if _close(answer, 100 / len(set(train) | set(test)), 1e-6):
        _fail(ex, "1/K is a uniform guess; this one draws each label with its train share.")
    _fail(ex, "P(right) = sum over labels of P(guess = label) x P(gold = label): train shares x test shares.")
    return False


# ---------------------------------------------------------------- notebook 06: generalist mixing


def check_cell_mixture(answer: Any, study: MixingStudyParams, cell: dict) -> bool:
    """06.1: the :class:`MixtureSpec` notebook 06 builds ``cell``'s data run with, under ``study``'s settings."""

    ex = "Exercise 06.1"
    _require(answer, ex, "a MixtureSpec(...)")
    if not isinstance(answer, MixtureSpec):
        _fail(
            ex,
            f"answer with a MixtureSpec(...) (socialite_utils.data.mixing), not a {type(answer).__name__}.",
        )
    try:
        answer.validate()
    except ValueError as e:
        _fail(ex, f"the kit refuses your spec: {e}")
    expected = cell_mixture(study, cell)
    if answer == expected:
        n = 10 * cell["task_rows"]  # the local suite's ten seen tasks
        return _correct(
            ex,
            f"e.g. next to {cell['task_rows']} rows of each of 10 seen tasks ({n} rows) this spec adds "
            f"{general_rows_wanted(expected, n)} generalist rows; every cell holds out the same generalist rows, "
            "so their NLLs compare.",
        )
    if answer.general_count is not None:
        _fail(ex, "the grid sets general_ratio (generalist rows per task row), not a fixed general_count.")
    if answer.general_ratio != expected.general_ratio:
        _fail(ex, f"this cell's ratio is {cell['general_ratio']} (you have {answer.general_ratio}).")
    if answer.general_heldout != expected.general_heldout or answer.heldout_seed != expected.heldout_seed:
        _fail(ex, f"every cell holds out the study's general_heldout={study.general_heldout} rows with the default "
              "heldout_seed, so that every cell's retained-ability NLL is measured on the same rows.")  # fmt: skip
    if answer.draw_seed != expected.draw_seed:
        _fail(ex, f"the cell's seed ({cell['seed']}) draws its generalist rows: draw_seed={cell['seed']}.")
    if answer.general_licence != expected.general_licence:
        _fail(ex, f"the study filters sources with general_licence={study.general_licence!r}.")
    _fail(ex, f"leave the other fields at their defaults (you differ from {expected}).")
    return False


def check_general_rows(answer: Any, card: dict) -> bool:
    """06.2: how many generalist rows a mixing cell's data run (its data ``card``) trains on."""

    ex = "Exercise 06.2"
    _require(answer, ex, "the number of generalist rows")
    info = card.get("mixture")
    if not info:
        raise ValueError("this data card has no mixture: pass the card of one of notebook 06's cells")
    spec = MixtureSpec(**info["spec"])
    task_rows, expected = info["task_train_rows"], info["general_rows"]  # what the data run was built with
    if answer == expected:
        share = expected / (expected + task_rows) if expected + task_rows else 0.0
        return _correct(
            ex,
            f"{expected} generalist rows beside {task_rows} task rows: {share:.0%} of this cell's training rows.",
        )
    per_task = [t["counts"]["train"].get("kept", 0) for t in card["tasks"].values() if "train" in t["counts"]]
    if any(answer == general_rows_wanted(spec, n) != expected for n in per_task):
        _fail(ex, "the ratio counts generalist rows per task row of the whole run: sum the train rows of every "
              "seen task.")  # fmt: skip
    if answer == card["totals"]["train"]:
        _fail(ex, "the train total already holds the generalist rows; start from the task rows only.")
    _fail(
        ex, "general_ratio x (train rows kept, summed over the tasks that have train rows), rounded half up."
    )
    return False


# ---------------------------------------------------------------- notebook 07: writing assistance


_SARI_HINTS = {
    "add": "add counts distinct words: those in the output but not the source (system), those of them in the "
    "reference (correct), and those in the reference but not the source (reference).",
    "keep": "keep counts with repeats, clipped (a word twice in the source and once in the output is kept once): "
    "source & output (system), source & reference (reference), all three (correct).",
    "delete": "delete counts with repeats: source - output (system), source - reference (reference), and the "
    "deletions both made (correct).",
}


def check_sari_unigram_parts(answer: Any, source: str, output: str, references: Sequence[str]) -> bool:
    """07.1: the unigram add / keep / delete F1 (percent) of SARI on one example."""

    ex = "Exercise 07.1"
    _require(answer, ex, 'a dict {"add": ..., "keep": ..., "delete": ...} in percent')
    expected = sari_ngram_parts(source, output, list(references))[0]
    if not isinstance(answer, dict) or set(answer) != set(expected):
        _fail(ex, f"answer with a dict whose keys are {sorted(expected)}.")
    for op, value in expected.items():
        if _close(answer[op], value, 1e-6):
            continue
        if _close(answer[op], value / 100, 1e-6):
            _fail(ex, "the kit's SARI is in percent (0-100): multiply by 100.")
        _fail(ex, f"{op!r} is off (you have {float(answer[op]):.2f}). F1 = 2 x correct / (system + reference) "
              f"counts; {_SARI_HINTS[op]}")  # fmt: skip
    return _correct(ex, "add, keep and delete each reward a different edit: what changed, and what stayed.")


def check_sari(answer: Any, source: str, output: str, references: Sequence[str]) -> bool:
    """07.2: the SARI (percent) of one example, as the kit's ``text_metrics.sari`` computes it."""

    ex = "Exercise 07.2"
    _require(answer, ex, "the SARI in percent")
    expected = sari([source], [output], [list(references)])["sari"]
    if _close(answer, expected, 1e-6):
        return _correct(
            ex, f"SARI {expected:.2f}: the mean of 3 operations x 4 n-gram orders, as the kit computes it."
        )
    parts = sari_ngram_parts(source, output, list(references))
    if _close(answer, sum(parts[0].values()) / 3, 1e-6):
        _fail(ex, "that is the unigram SARI; average the three parts over n = 1, 2, 3, 4 (12 numbers).")
    if _close(answer, sari([source], [output], [list(references)], variant="t2t")["sari"], 1e-6):
        _fail(
            ex,
            "that is tensor2tensor's SARI; the kit reports EASSE's (deletion is an F1 too, 0 when nothing fits).",
        )
    if _close(answer, expected / 100, 1e-6):
        _fail(ex, "the kit's SARI is in percent (0-100): multiply by 100.")
    _fail(ex, "for each n = 1..4 count n-grams (n consecutive words) exactly as 07.1 counts words, take the add, "
          "keep and delete F1, then average the twelve numbers.")  # fmt: skip
    return False


__all__ = [
    "ExerciseNotSolved",
    "check_cell_mixture",
    "check_constant_floor",
    "check_ece",
    "check_general_rows",
    "check_guessing_accuracy",
    "check_label_probabilities",
    "check_label_recall",
    "check_label_scoring",
    "check_lora_parameters",
    "check_macro_f1",
    "check_majority_floor",
    "check_own_task",
    "check_planned_steps",
    "check_rendered_prompt",
    "check_sari",
    "check_sari_unigram_parts",
    "check_task_accuracy",
    "check_trained_token_total",
    "check_trained_tokens",
    "lora_trainable_parameters",
]
