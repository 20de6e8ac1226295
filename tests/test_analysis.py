"""Tests for socialite_utils.analysis: hand-worked cases for every measure, bad runs, and variant re-scoring on
tiny-random models (a hand-made training run: saved base model + a LoRA adapter with perturbed weights)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from socialite_utils import analysis as an
from socialite_utils import metrics
from socialite_utils.analysis import (
    INVALID_COLUMN,
    EvalModels,
    EvalRunError,
    analyze_eval_run,
    build_confusion_matrix,
    calibration_from_rows,
    classify_invalid,
    compute_calibration,
    compute_confident_errors,
    compute_frequency_slices,
    compute_invalid_answers,
    compute_length_slices,
    compute_sensitivity,
    labels_mentioned,
    load_eval_models,
    load_eval_registry,
    load_eval_run,
    load_sensitivity_shots,
    render_variant_prompt,
    score_prompt_variants,
    select_sensitivity_examples,
    variant_label_words,
    write_analysis_run,
)
from socialite_utils.evaluation.predictions import build_prediction_row, llm_expected_score
from socialite_utils.evaluation.scoring import score_label_logprobs
from socialite_utils.plotting import (
    plot_confusion_matrices,
    plot_invalid_kinds,
    plot_reliability,
    plot_sensitivity,
    plot_slices,
)
from socialite_utils.registry import Task, load_registry

EMOTIONS = ["anger", "joy", "optimism", "sadness"]


# ----------------------------------------------------------------------------------------------------------------
# Builders shared with test_notebook_04
# ----------------------------------------------------------------------------------------------------------------


def make_train_run(run_dir: Path) -> Path:
    """A training run in notebook 02's layout without training: tiny-random base + a LoRA adapter (q/v plus full
    embeddings/head, as tiny-random trains) whose weights are perturbed so tuned != base."""
    from peft import LoraConfig, get_peft_model

    from socialite_utils import models

    model, tok = models.load_model("tiny-random")
    model.save_pretrained(run_dir / "base_model")
    tok.save_pretrained(run_dir / "base_model")
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj"],
        modules_to_save=["embed_tokens", "lm_head"],
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in peft_model.parameters():
            if p.requires_grad:
                p.add_(0.5 * torch.randn(p.shape, generator=gen))
    peft_model.save_pretrained(run_dir / "adapter")
    tok.save_pretrained(run_dir / "adapter")
    (run_dir / "params.json").write_text(json.dumps({"base_model": "tiny-random"}))
    return run_dir


def score_row(ex: dict, model: str, probs: dict[str, float], *, task_info: dict) -> dict:
    """A score-mode predictions.jsonl row (the evaluation's row constructor) from hand-set probabilities."""
    parsed = max(probs, key=probs.get)
    example = {
        "id": ex["id"],
        "task": ex["task"],
        "category": task_info["category"],
        "group": task_info["group"],
        "task_type": task_info["type"],
        "text": ex["text"],
        "text_b": ex.get("text_b"),
        "label": ex["gold"],
        "score": ex.get("gold_score"),
    }
    expected, kind = llm_expected_score(task_info["type"], parsed, probs)
    return build_prediction_row(
        example,
        model=model,
        mode="score",
        parsed=parsed,
        few_shot_k=0,
        logprobs={k: math.log(v) for k, v in probs.items()},
        probs=probs,
        expected_score=expected,
        score_kind=kind,
    )


def generate_row(ex: dict, model: str, raw: str, labels: list[str], *, task_info: dict) -> dict:
    """A generate-mode predictions.jsonl row; ``parsed`` by the strict parser, as evaluation does."""
    from socialite_utils.evaluation.scoring import parse_answer

    parsed = parse_answer(raw, labels)
    return {
        **score_row(ex, model, dict.fromkeys(labels, 1 / len(labels)), task_info=task_info),
        "mode": "generate",
        "raw_output": raw,
        "parsed": parsed,
        "logprobs": None,
        "probs": None,
        "expected_score": None,
        "score_kind": None if task_info["type"] != "regression" else "parsed_bin",
        "correct": parsed == ex["gold"],
    }


def write_eval_run(
    run_dir: Path,
    tasks: dict[str, dict],
    rows: list[dict],
    *,
    settings: dict | None = None,
    models: tuple[str, ...] = ("base", "tuned"),
    schema_version: int | None = 1,
) -> Path:
    """An evaluation run in the eval schema: metrics.json (per-task numbers recomputed with metrics.py),
    predictions.jsonl and params.json."""
    task_entries = {}
    for name, info in tasks.items():
        per_model = {}
        for m in models:
            mine = [r for r in rows if r["task"] == name and r["model"] == m and r.get("variant") is None]
            if mine:
                rep = metrics.compute_classification(
                    [r["gold"] for r in mine], [r["parsed"] for r in mine], labels=info["labels"]
                )
                per_model[m] = {
                    k: rep[k] for k in ("macro_f1", "accuracy", "invalid_rate", "per_label", "flags")
                }
        n = len({r["id"] for r in rows if r["task"] == name})
        task_entries[name] = {**info, "n": n, "models": per_model}
    doc = {
        "run_name": run_dir.name,
        "settings": {
            "mode": rows[0]["mode"],
            "few_shot_k": 0,
            "base_model": "tiny-random",
            "train_run": None,
            "data_run": None,
            "normalize": "sum",
            "bootstrap_samples": 10,
            "seed": 0,
            "max_eval_per_task": None,
            "prompt_format": "paper",
            **(settings or {}),
        },
        "models": list(models),
        "tasks": task_entries,
        "categories": {},
        "groups": {},
        "overall": {},
        "claims": [],
    }
    if schema_version is not None:
        doc["schema_version"] = schema_version
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps(doc))
    (run_dir / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "params.json").write_text(json.dumps({"run_name": run_dir.name, **doc["settings"]}))
    return run_dir


EMO_INFO = {"category": "sentiment_emotion", "group": "seen", "type": "classification", "labels": EMOTIONS}


def _emotion_examples() -> list[dict]:
    texts = [
        ("so angry at this", "anger"),
        ("what a lovely day", "joy"),
        ("tomorrow will be better", "optimism"),
        ("I miss her so much", "sadness"),
        ("this traffic makes me furious every single morning", "anger"),
        ("best party ever", "joy"),
    ]
    return [
        {"id": f"tweet_emotion:test:{i + 1}", "task": "tweet_emotion", "text": t, "gold": g}
        for i, (t, g) in enumerate(texts)
    ]


def _onehot(label: str, p: float, labels: list[str]) -> dict[str, float]:
    rest = (1 - p) / (len(labels) - 1)
    return {lab: (p if lab == label else rest) for lab in labels}


# ----------------------------------------------------------------------------------------------------------------
# Invalid answers
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "labels", "text", "kind"),
    [
        (None, EMOTIONS, "", "empty"),
        ("", EMOTIONS, "", "empty"),
        ("  \n ...\n", EMOTIONS, "", "empty"),
        ("joy", EMOTIONS, "", "valid"),
        (" Joy.\nInstruction: more", EMOTIONS, "", "valid"),
        ("joy or sadness", EMOTIONS, "", "several_labels"),
        # several labels wins over echo: the answer repeats the input AND names two labels
        ("joy and sadness everywhere", EMOTIONS, "joy and sadness everywhere today", "several_labels"),
        ("Input: I love sunny days", EMOTIONS, "I love sunny days", "echo"),
        ("Instruction: Which emotion does the text express", EMOTIONS, "hello", "echo"),
        ("how good this day has been!", EMOTIONS, "I can't believe how good this day has been", "echo"),
        # echo wins over a single label inside the echoed text
        ("pure joy at the beach", EMOTIONS, "pure joy at the beach today", "echo"),
        ("lol", EMOTIONS, "lol", "echo"),  # a one-word input repeated is an echo (run = input length)
        ("i think it is joy", EMOTIONS, "the weather", "label_with_extra_text"),
        ("happy", EMOTIONS, "what a day", "out_of_label_set"),
        ("joyful", EMOTIONS, "", "out_of_label_set"),  # whole words only
        ("happy\njoy", EMOTIONS, "", "out_of_label_set"),  # only the first line counts, as for the parser
        ("not offensive at all", ["not offensive", "offensive"], "", "label_with_extra_text"),
        ("offensive, not offensive", ["not offensive", "offensive"], "", "several_labels"),
    ],
)
def test_classify_invalid_hand_cases(raw, labels, text, kind):
    assert classify_invalid(raw, labels, text) == kind


def test_labels_mentioned_longest_label_hides_its_parts():
    labels = ["camera", "camera with flash", "fire"]
    assert labels_mentioned("a camera with flash and fire", labels) == ["camera with flash", "fire"]
    assert labels_mentioned("camera, camera with flash", labels) == ["camera", "camera with flash"]


def test_classify_invalid_needs_labels():
    with pytest.raises(ValueError, match="non-empty label list"):
        classify_invalid("joy", [])


def test_report_invalid_answers_counts_kinds_and_parser_mismatch():
    rows = [
        {"id": "a", "text": "x", "parsed": None, "raw_output": ""},
        {"id": "b", "text": "x", "parsed": None, "raw_output": "happy"},
        {"id": "c", "text": "x", "parsed": None, "raw_output": "happy too"},
        {"id": "d", "text": "x", "parsed": "joy", "raw_output": "joy"},
        # parsed None although the strict parser accepts it (evaluation used another parser): kept, not dropped
        {"id": "e", "text": "x", "parsed": None, "raw_output": "joy"},
    ]
    rep = compute_invalid_answers(rows, EMOTIONS, max_examples=1)
    assert rep["n"] == 5 and rep["n_invalid"] == 4
    assert rep["counts"] == {
        "empty": 1,
        "several_labels": 0,
        "echo": 0,
        "label_with_extra_text": 0,
        "out_of_label_set": 2,
        "parser_mismatch": 1,
    }
    assert [e["id"] for e in rep["examples"]["out_of_label_set"]] == ["b"]


# ----------------------------------------------------------------------------------------------------------------
# Confusion matrix, calibration, slices, confident errors
# ----------------------------------------------------------------------------------------------------------------


def test_confusion_matrix_hand_case():
    cm = build_confusion_matrix(["a", "a", "b", "b", "b"], ["a", "b", "b", None, "zzz"], ["a", "b", "c"])
    assert cm["columns"] == ["a", "b", "c", INVALID_COLUMN]
    assert cm["counts"] == [[1, 1, 0, 0], [0, 1, 0, 2], [0, 0, 0, 0]]
    assert cm["support"] == [2, 3, 0]
    assert cm["row_normalized"][0] == [0.5, 0.5, 0.0, 0.0]
    assert cm["row_normalized"][1] == pytest.approx([0, 1 / 3, 0, 2 / 3])
    assert cm["row_normalized"][2] == [None] * 4  # no gold 'c': undefined, not zero
    with pytest.raises(ValueError, match=r"gold label\(s\) \['q'\]"):
        build_confusion_matrix(["q"], ["a"], ["a", "b"])


def test_ece_hand_worked():
    # bins (0.8, 0.9]: conf 0.9, accuracy 1/2 -> |0.5-0.9| = 0.4, weight 1/2; (0.5, 0.6]: conf 0.6, acc 1 -> 0.4
    cal = compute_calibration([0.9, 0.9, 0.6, 0.6], [True, False, True, True], n_bins=10)
    assert cal["ece"] == pytest.approx(0.4)
    assert cal["mean_confidence"] == pytest.approx(0.75) and cal["accuracy"] == pytest.approx(0.75)
    assert len(cal["bins"]) == 10 and sum(b["count"] for b in cal["bins"]) == 4
    # from rows: the confidence is the probability of the model's own answer
    rows = [
        {"parsed": "a", "probs": {"a": 0.9, "b": 0.1}, "correct": True},
        {"parsed": "a", "probs": {"a": 0.9, "b": 0.1}, "correct": False},
        {"parsed": "b", "probs": {"a": 0.4, "b": 0.6}, "correct": True},
        {"parsed": "b", "probs": {"a": 0.4, "b": 0.6}, "correct": True},
    ]
    assert calibration_from_rows(rows)["ece"] == pytest.approx(0.4)
    assert calibration_from_rows([{"parsed": "a", "probs": None, "correct": True}]) is None


def test_length_slices_tertiles_hand_worked():
    words = ["w " * k for k in range(1, 7)]  # 1..6 words -> quantile edges 1, 2.67, 4.33, 6
    correct = [True, True, False, True, False, False]
    rows = [
        {"text": t, "gold": "a", "parsed": "a" if c else "b", "correct": c}
        for t, c in zip(words, correct, strict=True)
    ]
    bins = compute_length_slices(rows, n_bins=3)
    assert [b["n"] for b in bins] == [2, 2, 2]
    assert [b["accuracy"] for b in bins] == [100.0, 50.0, 0.0]
    assert bins[0]["lo"] == 1 and bins[2]["hi"] == 6
    lo, hi = bins[1]["accuracy_ci"]
    assert lo < 50 < hi  # Wilson interval around a 1/2 accuracy on 2 examples is wide
    # a length function is used when given: reversed lengths put the 3 longest texts (F, F, T) in bin 0
    tok_bins = compute_length_slices(rows, n_bins=2, length_fn=lambda r: 10 - len(r["text"].split()))
    assert [b["accuracy"] for b in tok_bins] == pytest.approx([100 / 3, 200 / 3])


def test_frequency_slices_hand_worked():
    rows = [
        {"gold": "a", "parsed": "a", "correct": True},
        {"gold": "a", "parsed": "a", "correct": True},
        {"gold": "a", "parsed": "b", "correct": False},
        {"gold": "b", "parsed": "b", "correct": True},
    ]
    sl = compute_frequency_slices(rows, ["a", "b", "c"])  # uniform share 1/3: a 0.75 frequent, b 0.25 rare
    assert sl["frequent"]["labels"] == ["a"] and sl["rare"]["labels"] == ["b"]
    assert sl["frequent"]["accuracy"] == pytest.approx(200 / 3) and sl["rare"]["accuracy"] == 100.0
    assert sl["shares"] == {"a": 0.75, "b": 0.25, "c": 0.0}


def test_confident_errors_ordered_by_confidence():
    rows = [
        {
            "id": "1",
            "text": "t1",
            "gold": "a",
            "parsed": "b",
            "probs": {"a": 0.3, "b": 0.7},
            "correct": False,
        },
        {
            "id": "2",
            "text": "t2",
            "gold": "a",
            "parsed": "b",
            "probs": {"a": 0.1, "b": 0.9},
            "correct": False,
        },
        {
            "id": "3",
            "text": "t3",
            "gold": "a",
            "parsed": "a",
            "probs": {"a": 0.99, "b": 0.01},
            "correct": True,
        },
        {
            "id": "4",
            "text": "t4",
            "gold": "b",
            "parsed": "a",
            "probs": {"a": 0.6, "b": 0.4},
            "correct": False,
        },
    ]
    errs = compute_confident_errors(rows, k=2)
    assert [e["id"] for e in errs] == ["2", "1"]
    assert errs[0]["confidence"] == 0.9 and errs[0]["p_gold"] == 0.1 and errs[0]["text"] == "t2"


# ----------------------------------------------------------------------------------------------------------------
# Loading evaluation runs: bad input
# ----------------------------------------------------------------------------------------------------------------


def _emotion_run(run_dir: Path, **kw) -> Path:
    rows = [
        score_row(ex, m, _onehot(ex["gold"], 0.7, EMOTIONS), task_info=EMO_INFO)
        for m in ("base", "tuned")
        for ex in _emotion_examples()
    ]
    return write_eval_run(run_dir, {"tweet_emotion": EMO_INFO}, rows, **kw)


def test_load_eval_run_errors_name_what_is_missing(tmp_path, runs_dir):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_eval_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"metrics\.json is missing"):
        load_eval_run(tmp_path / "empty")
    old = _emotion_run(tmp_path / "old", schema_version=None)
    with pytest.raises(EvalRunError, match="no 'schema_version' field.*older evaluation"):
        load_eval_run(old)
    newer = _emotion_run(tmp_path / "newer", schema_version=2)
    with pytest.raises(EvalRunError, match="schema_version 2 is not supported"):
        load_eval_run(newer)
    broken = _emotion_run(tmp_path / "broken")
    lines = (broken / "predictions.jsonl").read_text().splitlines()
    row = json.loads(lines[2])
    del row["gold"]
    lines[2] = json.dumps(row)
    (broken / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(EvalRunError, match=r"predictions\.jsonl: line 3: missing field\(s\) \['gold'\]"):
        load_eval_run(broken)
    nopred = _emotion_run(tmp_path / "nopred")
    (nopred / "predictions.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"predictions\.jsonl is missing"):
        load_eval_run(nopred)
    # a name resolves under the runs root
    _emotion_run(runs_dir / "byname")
    assert load_eval_run("byname").tasks == ["tweet_emotion"]


# ----------------------------------------------------------------------------------------------------------------
# The whole analysis on hand-made runs
# ----------------------------------------------------------------------------------------------------------------


def test_analyze_score_run_matches_metrics_and_flags_single_class(tmp_path):
    exs = _emotion_examples()
    rows = []
    for ex in exs:  # base: always says anger with 0.6; tuned: right with 0.8, except the last example
        rows.append(score_row(ex, "base", _onehot("anger", 0.6, EMOTIONS), task_info=EMO_INFO))
    for ex in exs[:-1]:
        rows.append(score_row(ex, "tuned", _onehot(ex["gold"], 0.8, EMOTIONS), task_info=EMO_INFO))
    rows.append(score_row(exs[-1], "tuned", _onehot("sadness", 0.95, EMOTIONS), task_info=EMO_INFO))
    single_info = {
        "category": "offensive",
        "group": "related",
        "type": "classification",
        "labels": ["not hate speech", "hate speech"],
    }
    for i in range(3):  # every gold label of this task is the same class
        ex = {
            "id": f"tweet_hate:test:{i + 1}",
            "task": "tweet_hate",
            "text": f"tweet number {i}",
            "gold": "not hate speech",
        }
        for m in ("base", "tuned"):
            rows.append(
                score_row(
                    ex,
                    m,
                    _onehot("hate speech" if i == 0 else "not hate speech", 0.7, single_info["labels"]),
                    task_info=single_info,
                )
            )
    run = write_eval_run(tmp_path / "ev", {"tweet_emotion": EMO_INFO, "tweet_hate": single_info}, rows)
    analysis = analyze_eval_run(load_eval_run(run), top_k_errors=2)

    emo = analysis["tasks"]["tweet_emotion"]["models"]
    # base predicts anger for all 6: anger P=2/6 R=1 F1=0.5, the rest 0 -> macro-F1 12.5
    assert emo["base"]["macro_f1"] == pytest.approx(12.5) and emo["base"]["accuracy"] == pytest.approx(
        200 / 6
    )
    assert emo["base"]["confusion"]["counts"][1] == [2, 0, 0, 0, 0]  # both gold joy -> predicted anger
    assert emo["tuned"]["per_label"]["joy"]["recall"] == pytest.approx(50.0)
    assert not any("metrics_mismatch" in f for f in emo["base"]["flags"])
    # the tuned model's only error is the most confident one; base errors all have confidence 0.6
    assert [e["id"] for e in emo["tuned"]["confident_errors"]] == ["tweet_emotion:test:6"]
    assert emo["tuned"]["confident_errors"][0]["confidence"] == pytest.approx(0.95)
    assert emo["base"]["invalid"] is None  # score mode never gives invalid answers

    hate = analysis["tasks"]["tweet_hate"]
    assert any(f.startswith("single_class_gold") for f in hate["flags"])
    assert any(f.startswith("single_class_gold") for f in hate["models"]["base"]["flags"])
    assert hate["models"]["base"]["confusion"]["row_normalized"][1] == [None, None, None]
    assert hate["models"]["tuned"]["accuracy"] == pytest.approx(200 / 3)

    cal = analysis["calibration"]
    assert set(cal["by_category"]) == {"sentiment_emotion", "offensive"}
    # base on tweet_emotion: confidence 0.6 everywhere, accuracy 2/6 -> ECE |1/3 - 0.6|
    assert cal["by_category"]["sentiment_emotion"]["base"]["ece"] == pytest.approx(0.6 - 1 / 3)
    assert analysis["invalid_summary"] is None
    assert (
        analysis["slices"]["frequency"]["base"]["frequent"]["n"]
        + analysis["slices"]["frequency"]["base"]["rare"]["n"]
        == 9
    )

    for fig in (
        plot_confusion_matrices(analysis, "tuned"),
        plot_reliability(analysis),
        plot_slices(analysis),
    ):
        assert fig.axes
    with pytest.raises(ValueError, match="not in generate mode"):
        plot_invalid_kinds(analysis)


def test_analyze_flags_metrics_mismatch(tmp_path):
    run = _emotion_run(tmp_path / "ev")
    doc = json.loads((run / "metrics.json").read_text())
    doc["tasks"]["tweet_emotion"]["models"]["base"]["macro_f1"] = 42.0
    (run / "metrics.json").write_text(json.dumps(doc))
    flags = analyze_eval_run(load_eval_run(run))["tasks"]["tweet_emotion"]["models"]["base"]["flags"]
    assert any("metrics_mismatch" in f and "42.0000" in f for f in flags)


def test_analyze_generate_run_sorts_invalid_answers(tmp_path):
    exs = _emotion_examples()[:4]
    raws = ["anger", "", "Input: tomorrow will be better", "sad"]
    rows = [
        generate_row(ex, "base", raw, EMOTIONS, task_info=EMO_INFO) for ex, raw in zip(exs, raws, strict=True)
    ]
    rows += [generate_row(ex, "tuned", ex["gold"], EMOTIONS, task_info=EMO_INFO) for ex in exs]
    run = write_eval_run(tmp_path / "gen", {"tweet_emotion": EMO_INFO}, rows)
    analysis = analyze_eval_run(load_eval_run(run))
    inv = analysis["tasks"]["tweet_emotion"]["models"]["base"]["invalid"]
    assert inv["n_invalid"] == 3
    assert (
        inv["counts"]["empty"] == 1 and inv["counts"]["echo"] == 1 and inv["counts"]["out_of_label_set"] == 1
    )
    assert analysis["invalid_summary"]["tuned"]["empty"] == 0
    assert analysis["tasks"]["tweet_emotion"]["models"]["base"]["confusion"]["counts"][2] == [0, 0, 0, 0, 1]
    assert analysis["calibration"] is None
    assert analysis["tasks"]["tweet_emotion"]["models"]["base"]["confident_errors"] is None
    assert plot_invalid_kinds(analysis).axes


# ----------------------------------------------------------------------------------------------------------------
# Prompt-variant registry
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", ["local", "socialite"])
def test_every_task_has_three_valid_variants(suite):
    for name, task in load_registry(suite).items():
        assert len(task.variants) >= 3, f"{suite}/{name} has {len(task.variants)} variants"
        for i, var in enumerate(task.variants):
            assert set(var.get("labels") or {}) <= set(task.labels), (
                f"{name} variants[{i}] remaps a non-label"
            )
            words = variant_label_words(task, i)
            assert list(words) == task.labels
            assert len({w.lower() for w in words.values()}) == len(task.labels)
            assert var["instruction"].strip()


def test_render_variant_prompt_uses_instruction_and_remapped_words():
    task = load_registry("local")["tweet_emotion"]
    assert variant_label_words(task, None) == {lab: lab for lab in EMOTIONS}
    words = variant_label_words(task, 2)
    assert words == {"anger": "angry", "joy": "happy", "optimism": "hopeful", "sadness": "sad"}
    shots = [{"text": "great news", "label": "joy"}]
    prompt = render_variant_prompt(task, "I won!", variant=2, shots=shots)
    assert prompt.startswith("Instruction: How does the writer of this tweet feel?")
    assert "great news - happy" in prompt and "great news - joy" not in prompt
    assert prompt.endswith("Input: I won!\nOutput:")
    main = render_variant_prompt(task, "I won!", variant=None)
    assert main == f"Instruction: {task.instruction}\nInput: I won!\nOutput:"
    with pytest.raises(ValueError, match="has 3 variants"):
        variant_label_words(task, 3)


def test_variant_label_words_rejects_bad_remaps():
    base = dict(
        name="t", suite="x", category="offensive", type="classification", group="seen", instruction="i"
    )
    bad = Task(labels=["a", "b"], variants=[{"instruction": "v", "labels": {"zzz": "q"}}], **base)
    with pytest.raises(ValueError, match=r"remaps \['zzz'\]"):
        variant_label_words(bad, 0)
    clash = Task(labels=["a", "b"], variants=[{"instruction": "v", "labels": {"a": "B"}}], **base)
    with pytest.raises(ValueError, match="must be distinct"):
        variant_label_words(clash, 0)


def test_report_sensitivity_hand_worked():
    task = Task(
        name="t",
        suite="x",
        category="offensive",
        type="classification",
        group="seen",
        labels=["a", "b"],
        instruction="i",
    )
    preds = {None: ["a", "b"], 0: ["a", "a"], 1: ["b", "a"]}
    rows = [
        {"task": "t", "model": "base", "variant": v, "gold": g, "parsed": p}
        for v, ps in preds.items()
        for g, p in zip(["a", "b"], ps, strict=True)
    ]
    s = compute_sensitivity(rows, {"t": task})["t"]["base"]
    # variant 0: a has P=1/2 R=1 F1=2/3, b F1=0 -> 33.3; variant 1: all wrong -> 0
    assert s["macro_f1"] == pytest.approx({"main": 100.0, "variant 0": 100 / 3, "variant 1": 0.0})
    assert (s["min"], s["max"], s["range"], s["n"]) == (0.0, 100.0, 100.0, 2)
    assert s["std"] == pytest.approx(float(np.std([100.0, 100 / 3, 0.0])))
    assert plot_sensitivity({"t": {"base": s}}).axes


# ----------------------------------------------------------------------------------------------------------------
# Models: base via disable_adapter, variant re-scoring on tiny-random
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_run(tmp_path_factory) -> Path:
    return make_train_run(tmp_path_factory.mktemp("train") / "tiny-train")


@pytest.fixture(scope="module")
def eval_models(train_run) -> EvalModels:
    from socialite_utils.training import load_adapter, load_run_tokenizer

    return EvalModels(load_adapter(train_run), load_run_tokenizer(train_run), has_adapter=True)


def test_base_via_disable_adapter_equals_fresh_base(train_run, eval_models):
    from transformers import AutoModelForCausalLM

    prompts = [
        "Instruction: Which emotion?\nInput: I love it\nOutput:",
        "Instruction: x\nInput: bad day\nOutput:",
    ]
    labels = ["anger", "joy", "not offensive"]
    tok = eval_models.tokenizer
    with eval_models.use("base") as m:
        base = score_label_logprobs(m, tok, prompts, labels, progress=False)
    fresh_model = AutoModelForCausalLM.from_pretrained(train_run / "base_model").eval()
    fresh = score_label_logprobs(fresh_model, tok, prompts, labels, progress=False)
    with eval_models.use("tuned") as m:
        tuned = score_label_logprobs(m, tok, prompts, labels, progress=False)
    for b, f, t in zip(base, fresh, tuned, strict=True):
        assert b == pytest.approx(f, abs=1e-5)
        assert max(abs(b[k] - t[k]) for k in labels) > 0.1  # the adapter is really switched off for base
    with pytest.raises(ValueError, match="unknown model"):
        with eval_models.use("other"):
            pass
    with pytest.raises(ValueError, match="no adapter loaded"):
        with EvalModels(fresh_model, tok, has_adapter=False).use("tuned"):
            pass


def test_score_prompt_variants_maps_remapped_words_back(eval_models):
    reg = load_registry("local")
    tasks = {"tweet_emotion": reg["tweet_emotion"], "emobank_valence": reg["emobank_valence"]}
    examples = {
        "tweet_emotion": [{**ex, "task_type": "classification"} for ex in _emotion_examples()[:2]],
        "emobank_valence": [
            {
                "id": "emobank_valence:test:1",
                "task": "emobank_valence",
                "task_type": "regression",
                "text": "a fine day",
                "gold": "high",
                "gold_score": 3.4,
            }
        ],
    }
    with eval_models.use("tuned") as m:
        rows = score_prompt_variants(
            m, eval_models.tokenizer, examples, tasks, model_name="tuned", variants=[0, 2], batch_size=4
        )
        direct = score_label_logprobs(
            m,
            eval_models.tokenizer,
            [render_variant_prompt(tasks["tweet_emotion"], "so angry at this", variant=2)],
            ["angry", "happy", "hopeful", "sad"],
            progress=False,
        )[0]
    assert len(rows) == 3 * 3  # (main + 2 variants) x 3 examples
    assert {r["variant"] for r in rows} == {None, 0, 2}
    r = next(r for r in rows if r["id"] == "tweet_emotion:test:1" and r["variant"] == 2)
    assert list(r["logprobs"]) == EMOTIONS and r["parsed"] in EMOTIONS
    assert r["logprobs"]["joy"] == pytest.approx(direct["happy"], abs=1e-5)
    assert r["logprobs"]["sadness"] == pytest.approx(direct["sad"], abs=1e-5)
    assert r["label_words"]["joy"] == "happy" and sum(r["probs"].values()) == pytest.approx(1.0)
    assert r["correct"] == (r["parsed"] == "anger")
    reg_row = next(r for r in rows if r["task"] == "emobank_valence" and r["variant"] == 2)
    assert reg_row["label_words"] == {"low": "negative", "high": "positive"}
    assert reg_row["expected_score"] == pytest.approx(reg_row["probs"]["high"])
    summary = compute_sensitivity(rows, tasks)
    assert set(summary["tweet_emotion"]["tuned"]["macro_f1"]) == {"main", "variant 0", "variant 2"}


def test_sensitivity_end_to_end_helpers(tmp_path, runs_dir, train_run):
    """Suite found from the tasks, examples stratified and shared, models loaded from the run's train_run."""
    exs = _emotion_examples()
    rows = [
        score_row(ex, m, _onehot(ex["gold"], 0.7, EMOTIONS), task_info=EMO_INFO)
        for m in ("base", "tuned")
        for ex in exs
    ]
    run = write_eval_run(
        tmp_path / "ev", {"tweet_emotion": EMO_INFO}, rows, settings={"train_run": str(train_run)}
    )
    ev = load_eval_run(run)
    tasks = load_eval_registry(ev)
    assert tasks["tweet_emotion"].suite == "local"
    chosen = select_sensitivity_examples(ev, 4, seed=0)["tweet_emotion"]
    assert len(chosen) == 4 and {c["gold"] for c in chosen} == set(EMOTIONS)  # round-robin over gold labels
    assert select_sensitivity_examples(ev, 4, seed=0)["tweet_emotion"] == chosen  # deterministic
    assert load_sensitivity_shots(ev, tasks) == {"tweet_emotion": []}
    em = load_eval_models(ev)
    assert em.has_adapter
    with em.use("base") as m:
        out = score_prompt_variants(
            m, em.tokenizer, {"tweet_emotion": chosen}, tasks, model_name="base", variants=[1]
        )
    assert len(out) == 8 and all(r["model"] == "base" for r in out)
    # labels that disagree with the registry are refused: a remap keyed by them would be wrong
    doc = json.loads((run / "metrics.json").read_text())
    doc["tasks"]["tweet_emotion"]["labels"] = ["joy", "anger", "optimism", "sadness"]
    (run / "metrics.json").write_text(json.dumps(doc))
    with pytest.raises(EvalRunError, match="evaluated with labels"):
        load_eval_registry(load_eval_run(run))


def test_few_shot_sensitivity_draws_from_the_data_run(tmp_path, runs_dir):
    data = runs_dir / "data-fs"
    local = load_registry("local")

    def pool_row(i: int, task: str, text: str, label: str) -> dict:  # a data row as notebook 01 writes it
        t = local[task]
        meta = {
            "category": t.category,
            "task_type": t.type,
            "group": t.group,
            "split": "train",
            "labels": t.labels,
        }
        return {"id": f"{task}:train:{i}", "task": task, **meta, "text": text, "text_b": None, "label": label,
                "score": None, "prompt": f"{text}\nOutput:", "completion": f" {label}", "prompt_format": "paper",
                "few_shot_k": 0}  # fmt: skip

    pool = [pool_row(i, "tweet_emotion", f"pool text {i}", lab) for i, lab in enumerate(EMOTIONS * 2)]
    pool += [pool_row(99, "tweet_irony", "other task", "ironic")]
    (data / "data").mkdir(parents=True)
    for split in ("train", "validation", "test"):
        (data / "data" / f"{split}.jsonl").write_text("")
    (data / "data" / "fewshot_pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pool))
    (data / "params.json").write_text(json.dumps({"suite": "local"}))
    rows = [  # k comes from the rows (settings.few_shot_k may be a list when tasks differ)
        {**score_row(ex, "base", _onehot(ex["gold"], 0.7, EMOTIONS), task_info=EMO_INFO), "few_shot_k": 2}
        for ex in _emotion_examples()
    ]
    run = write_eval_run(
        tmp_path / "ev",
        {"tweet_emotion": EMO_INFO},
        rows,
        settings={"few_shot_k": [2], "data_run": "data-fs"},
        models=("base",),
    )
    ev = load_eval_run(run)
    tasks = load_eval_registry(ev)  # suite read from the data run's params.json
    shots = load_sensitivity_shots(ev, tasks)["tweet_emotion"]
    assert len(shots) == 2 and all(s["text"].startswith("pool text") for s in shots)
    prompt = render_variant_prompt(tasks["tweet_emotion"], "x", variant=2, shots=shots)
    words = variant_label_words(tasks["tweet_emotion"], 2)
    for s in shots:
        assert f"{s['text']} - {words[s['label']]}" in prompt


def test_write_analysis_run_is_atomic_and_strict_json(tmp_path, runs_dir):
    run = _emotion_run(tmp_path / "ev")
    analysis = analyze_eval_run(load_eval_run(run))
    analysis["extra"] = {"nan": math.nan, "tuple": (1, 2)}
    out = write_analysis_run(
        "an1",
        analysis,
        sensitivity_rows=[{"a": math.nan}],
        figures={"slices": plot_slices(analysis)},
        params={"seed": 0},
    )
    assert out == runs_dir / "an1"
    doc = json.loads(
        (out / "analysis.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}")
    )
    assert doc["extra"] == {"nan": None, "tuple": [1, 2]}
    assert (out / "figures" / "slices.png").exists() and (out / "figures" / "slices.pdf").exists()
    assert json.loads((out / "sensitivity.jsonl").read_text()) == {"a": None}
    with pytest.raises(FileExistsError, match="already exists"):
        write_analysis_run("an1", analysis)


def test_report_caveats_name_this_runs_numbers(tmp_path):
    exs = _emotion_examples()
    rows = [score_row(ex, "base", _onehot("anger", 0.6, EMOTIONS), task_info=EMO_INFO) for ex in exs]
    reg_info = {
        "category": "sentiment_emotion",
        "group": "seen",
        "type": "regression",
        "labels": ["low", "high"],
    }
    for i, gold in enumerate(["low", "low", "low", "high"]):  # 75% low: imbalanced
        ex = {
            "id": f"emobank_valence:test:{i + 1}",
            "task": "emobank_valence",
            "text": f"s {i}",
            "gold": gold,
        }
        rows.append(score_row(ex, "base", _onehot("low", 0.8, ["low", "high"]), task_info=reg_info))
    run = write_eval_run(
        tmp_path / "ev", {"tweet_emotion": EMO_INFO, "emobank_valence": reg_info}, rows, models=("base",)
    )
    doc = json.loads((run / "metrics.json").read_text())
    doc["tasks"]["tweet_emotion"]["models"]["base"]["macro_f1_ci"] = [2.0, 30.5]
    (run / "metrics.json").write_text(json.dumps(doc))
    ev = load_eval_run(run)
    analysis = analyze_eval_run(ev)
    analysis["sensitivity"] = {"tasks": {"tweet_emotion": {"base": {"range": 17.25}}}}
    text = "\n".join(an.format_caveats(ev, analysis))
    assert "4-6 evaluated examples (smallest: emobank_valence)" in text
    assert "28.5 points (tweet_emotion, base)" in text
    assert "emobank_valence (low: 75%)" in text
    assert "Binarized ratings: emobank_valence" in text
    assert "up to 17.2 points" in text or "up to 17.3 points" in text


def test_variant_eval_run_is_analysed_on_its_own_answer_words(tmp_path):
    """A run evaluated on variant 2 (angry/happy/hopeful/sad) sorts invalid answers against those words."""
    exs = _emotion_examples()[:3]
    words = ["angry", "happy", "hopeful", "sad"]
    to_label = dict(zip(words, EMOTIONS, strict=True))
    rows = []
    for ex, raw in zip(exs, ["happy", "joy", "angry or sad"], strict=True):
        row = generate_row(ex, "base", raw, words, task_info=EMO_INFO)
        parsed = to_label.get(row["parsed"])
        rows.append({**row, "variant": 2, "parsed": parsed, "correct": parsed == ex["gold"]})
    rows.append({**generate_row(exs[0], "base", "joy", EMOTIONS, task_info=EMO_INFO), "variant": None})
    run = write_eval_run(
        tmp_path / "ev", {"tweet_emotion": EMO_INFO}, rows, settings={"variant": 2}, models=("base",)
    )
    doc = json.loads((run / "metrics.json").read_text())
    doc["tasks"]["tweet_emotion"]["models"] = {}  # recomputed over variant rows only below; not compared here
    (run / "metrics.json").write_text(json.dumps(doc))
    analysis = analyze_eval_run(load_eval_run(run))
    entry = analysis["tasks"]["tweet_emotion"]["models"]["base"]
    assert entry["n"] == 3
    assert entry["invalid"]["counts"]["out_of_label_set"] == 1  # "joy" is not a word this prompt offered
    assert entry["invalid"]["counts"]["several_labels"] == 1
    assert analysis["skipped_rows"] == {"variant None rows": 1}
