"""The exercises' check functions: a stub (None) or a wrong answer raises ExerciseNotSolved with a hint, the right
answer (worked out here another way) passes. Fast: tiny-random model, no notebook."""

from __future__ import annotations

import math

import pytest
import torch

from socialite_utils.course.exercises import (
    ExerciseNotSolved,
    check_cell_mixture,
    check_constant_floor,
    check_ece,
    check_general_rows,
    check_guessing_accuracy,
    check_label_probabilities,
    check_label_recall,
    check_label_scoring,
    check_lora_parameters,
    check_macro_f1,
    check_majority_floor,
    check_own_task,
    check_planned_steps,
    check_rendered_prompt,
    check_sari,
    check_sari_unigram_parts,
    check_task_accuracy,
    check_trained_token_total,
    check_trained_tokens,
)
from socialite_utils.data.mixing import MixtureSpec
from socialite_utils.models import load_model
from socialite_utils.prompts import render_completion, render_prompt
from socialite_utils.registry import load_registry
from socialite_utils.studies.mixing import MixingStudyParams

TASK = load_registry("local")["clickbait"]


@pytest.fixture(scope="module")
def tiny():
    prompts = [render_prompt(TASK, t) for t in ("Ten cats you must see", "Parliament passes the budget")]
    model, tokenizer = load_model("tiny-random", seed=0)
    return model, tokenizer, prompts


def test_a_stub_fails_with_a_hint_to_write_code():
    with pytest.raises(ExerciseNotSolved, match=r"Exercise 02.1: not yet. Hint: `answer` is still None"):
        check_planned_steps(None, 100)


def test_trained_tokens(tiny):
    _, tokenizer, prompts = tiny
    row = {"prompt": prompts[0], "completion": render_completion("not clickbait")}
    n_answer = len(tokenizer(prompts[0] + " not clickbait")["input_ids"]) - len(
        tokenizer(prompts[0])["input_ids"]
    )
    assert check_trained_tokens(n_answer + 1, tokenizer, row)  # the answer's tokens and EOS
    with pytest.raises(ExerciseNotSolved, match="end-of-sequence token is trained too"):
        check_trained_tokens(n_answer, tokenizer, row)


def test_trained_token_total_cuts_at_max_length(tiny):
    _, tokenizer, prompts = tiny
    rows = [{"prompt": p, "completion": render_completion("clickbait")} for p in prompts]
    n_prompt = [len(tokenizer(p)["input_ids"]) for p in prompts]
    n_answer = len(tokenizer(prompts[0] + " clickbait")["input_ids"]) - n_prompt[0] + 1  # + EOS
    assert check_trained_token_total(2 * n_answer, rows, tokenizer, 512)
    with pytest.raises(ExerciseNotSolved, match="EOS token after each answer"):
        check_trained_token_total(2 * n_answer - 2, rows, tokenizer, 512)
    cut = n_prompt[0] + 1  # the first example keeps one answer token, the second none if its prompt is longer
    expected = 1 + max(0, min(n_prompt[1] + n_answer, cut) - n_prompt[1])
    assert check_trained_token_total(expected, rows, tokenizer, cut)


def test_label_probabilities():
    logprobs = {"a": math.log(0.2), "b": math.log(0.6)}
    assert check_label_probabilities({"a": 0.25, "b": 0.75}, logprobs)
    with pytest.raises(ExerciseNotSolved, match="divide by their sum"):
        check_label_probabilities({"a": 0.2, "b": 0.6}, logprobs)
    with pytest.raises(ExerciseNotSolved, match="keys are the labels"):
        check_label_probabilities({"a": 1.0}, logprobs)


def test_label_scoring_by_hand_passes_and_off_by_one_fails(tiny):
    model, tokenizer, prompts = tiny

    def by_hand(prompt, labels, shift=1):
        out = {}
        for lab in labels:
            ctx = tokenizer(prompt)["input_ids"]
            comp = tokenizer(prompt + " " + lab)["input_ids"][len(ctx) :]
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=torch.tensor([ctx + comp])).logits[0], -1)
            out[lab] = sum(logp[len(ctx) + i - shift, t].item() for i, t in enumerate(comp))
        return out

    assert check_label_scoring(by_hand, model, tokenizer, prompts, TASK.labels)
    with pytest.raises(ExerciseNotSolved, match="predict token t\\+1"):
        check_label_scoring(lambda p, ls: by_hand(p, ls, shift=0), model, tokenizer, prompts, TASK.labels)
    with pytest.raises(ExerciseNotSolved, match="returned None"):
        check_label_scoring(lambda p, ls: None, model, tokenizer, prompts, TASK.labels)


def test_rendered_prompt_names_the_first_difference():
    text = "Ten cats you must see"
    right = f"Instruction: {TASK.instruction}\nInput: {text}\nOutput:"
    assert check_rendered_prompt(right, TASK, text)
    with pytest.raises(ExerciseNotSolved, match="first difference at character"):
        check_rendered_prompt(right + " ", TASK, text)


OWN = """
suite: mine
tasks:
  clickbait_mine:
    category: trustworthiness
    type: classification
    group: related
    labels: [{labels}]
    label_map: {{"clickbait": "yes", "not clickbait": "{other}"}}
    instruction: "Is this headline clickbait? Answer yes or no."
    sources: {{local: {{dir: clickbait}}}}
"""


def test_own_task(bundle_dir):
    assert check_own_task(OWN.format(labels='"yes", "no"', other="no"), bundle_dir)
    with pytest.raises(ExerciseNotSolved, match="registry refuses your YAML.*yes"):
        check_own_task(OWN.format(labels="yes, no", other="no"), bundle_dir)  # unquoted yes/no: booleans
    with pytest.raises(ExerciseNotSolved, match="refuses your YAML"):
        check_own_task(OWN.format(labels='"yes", "no"', other="maybe"), bundle_dir)
    with pytest.raises(ExerciseNotSolved, match="define task 'clickbait_mine'"):
        check_own_task(
            OWN.format(labels='"yes", "no"', other="no").replace("clickbait_mine", "cb"), bundle_dir
        )


def test_planned_steps():
    assert check_planned_steps(5 * 2, 100)  # ceil(100 / 64) = 2 steps an epoch
    with pytest.raises(ExerciseNotSolved, match="accumulated forward passes"):
        check_planned_steps(5 * 13, 100)  # ceil(5 * 100 / 8): a step per forward pass


def test_lora_parameters_from_the_layer_shapes(tiny):
    model = tiny[0]
    cfg = model.config
    hidden, kv = cfg.hidden_size, cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads)
    per_block = 16 * ((hidden + hidden) + (hidden + kv) + (hidden + kv) + (hidden + hidden))  # q, k, v, o
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert check_lora_parameters(per_block * cfg.num_hidden_layers, model, 16, targets)
    with pytest.raises(ExerciseNotSolved, match="factor of 2"):
        check_lora_parameters(per_block * cfg.num_hidden_layers // 2, model, 16, targets)
    assert not any("lora" in n for n, _ in model.named_parameters())  # the model itself is untouched


PREDICTIONS = [
    {"task": "t", "model": "base", "gold": g, "parsed": p, "correct": g == p}
    for g, p in [("a", "a"), ("a", "a"), ("a", None), ("b", "a")]
]
METRICS = {"tasks": {"t": {"labels": ["a", "b"], "models": {"base": {"accuracy": 50.0}}}}}


def test_task_accuracy():
    assert check_task_accuracy(50.0, METRICS, "t", "base")
    with pytest.raises(ExerciseNotSolved, match="percentages"):
        check_task_accuracy(0.5, METRICS, "t", "base")


def test_macro_f1_checks_edge_cases():
    def mine(gold, pred, labels, zero=0.0):
        f1s = []
        for lab in labels:
            tp = sum(g == p == lab for g, p in zip(gold, pred, strict=True))
            fp = sum(p == lab != g for g, p in zip(gold, pred, strict=True))
            fn = sum(g == lab != p for g, p in zip(gold, pred, strict=True))
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else zero)
        return 100 * sum(f1s) / len(f1s)

    assert check_macro_f1(mine, PREDICTIONS)
    with pytest.raises(ExerciseNotSolved, match="a label never gold nor predicted"):
        check_macro_f1(lambda g, p, ls: mine(g, p, ls, zero=1.0), PREDICTIONS)


TRAIN_ROWS = [{"task": "t", "label": lab} for lab in ["b"] * 3 + ["a"]]  # the train majority is "b"


def test_constant_floor_takes_the_majority_from_train():
    # gold a, a, a, b; always "b" (the train majority): F1(a) = 0, F1(b) = 2*1 / (2*1 + 3) = 0.4 -> macro 20
    assert check_constant_floor(20.0, PREDICTIONS, "t", ["a", "b"], TRAIN_ROWS)
    with pytest.raises(ExerciseNotSolved, match="most frequent of the TEST rows"):
        check_constant_floor(
            300 / 7, PREDICTIONS, "t", ["a", "b"], TRAIN_ROWS
        )  # always "a", the test majority
    with pytest.raises(ExerciseNotSolved, match="accuracy of the constant answer"):
        check_constant_floor(25.0, PREDICTIONS, "t", ["a", "b"], TRAIN_ROWS)  # 1 of 4 gold rows is "b"
    with pytest.raises(ValueError, match="task 't' has no train rows"):
        check_constant_floor(20.0, PREDICTIONS, "t", ["a", "b"], [])


def test_own_task_without_a_local_bundle_checks_the_registry_only(tmp_path, capsys):
    assert check_own_task(OWN.format(labels='"yes", "no"', other="no"), tmp_path / "no-bundle")
    assert "label_map was not tried on the clickbait data" in capsys.readouterr().out


def test_label_recall():
    # gold a: 2 of 3 answered a; gold b: 0 of 1 -> recall a 66.7, b 0; precision a = 2/3 too, so use b's 0
    assert check_label_recall({"a": 200 / 3, "b": 0.0}, PREDICTIONS, "t", "base", ["a", "b"])
    with pytest.raises(ExerciseNotSolved, match="of the rows whose gold label is 'a'"):
        check_label_recall({"a": 50.0, "b": 0.0}, PREDICTIONS, "t", "base", ["a", "b"])
    rows = [
        {"task": "t", "model": "m", "gold": g, "parsed": p} for g, p in [("a", "a"), ("b", "a"), ("b", "a")]
    ]
    with pytest.raises(ExerciseNotSolved, match="that is the precision"):
        check_label_recall({"a": 100 / 3, "b": 0.0}, rows, "t", "m", ["a", "b"])  # 1 right of 3 answered a


SCORED = [
    {"model": "m", "probs": {"a": 0.9, "b": 0.1}, "parsed": "a", "correct": True},
    {"model": "m", "probs": {"a": 0.95, "b": 0.05}, "parsed": "a", "correct": False},
    {"model": "m", "probs": {"a": 0.35, "b": 0.65}, "parsed": "b", "correct": True},
]


def test_ece_by_hand(capsys):
    # bin (0.8, 0.9]: conf 0.9, acc 1; bin (0.9, 1]: 0.95, acc 0; bin (0.6, 0.7]: 0.65, acc 1
    ece = (abs(1 - 0.9) + abs(0 - 0.95) + abs(1 - 0.65)) / 3
    assert check_ece(ece, SCORED, "m")
    with pytest.raises(ExerciseNotSolved, match="a fraction"):
        check_ece(100 * ece, SCORED, "m")
    with pytest.raises(ExerciseNotSolved, match="equal-width bins"):
        check_ece(abs(2 / 3 - (0.9 + 0.95 + 0.65) / 3), SCORED, "m")  # one bin for everything
    assert not check_ece(
        None, [{**r, "probs": None} for r in SCORED], "m"
    )  # generate mode: says so, no error
    assert "generate mode" in capsys.readouterr().out


DATA = {
    "train": [{"task": "t", "label": lab} for lab in ["a"] * 6 + ["b"] * 2],
    "test": [{"task": "t", "label": lab, "labels": ["a", "b"]} for lab in ["a"] * 1 + ["b"] * 3],
}


def test_majority_floor_is_learned_from_train():
    # always "a": F1(a) = 2*1 / (2*1 + 3) = 0.4, F1(b) = 0 -> 20
    assert check_majority_floor(20.0, DATA, "t")
    with pytest.raises(ExerciseNotSolved, match="may not peek at the test labels"):
        check_majority_floor(100 * (6 / 7) / 2, DATA, "t")  # always "b", the test majority: F1(b) = 6/7


def test_guessing_accuracy():
    assert check_guessing_accuracy(100 * (0.75 * 0.25 + 0.25 * 0.75), DATA, "t")
    with pytest.raises(ExerciseNotSolved, match="uniform guess"):
        check_guessing_accuracy(50.0, DATA, "t")


STUDY = MixingStudyParams(general_heldout=50, general_licence="commercial")
CELL = {"cell": "n48-r1-s2", "task_rows": 48, "general_ratio": 1, "seed": 2}


def test_cell_mixture():
    right = MixtureSpec(general_ratio=1, general_licence="commercial", general_heldout=50, draw_seed=2)
    assert check_cell_mixture(right, STUDY, CELL)
    wrong = {
        "not a fixed general_count": MixtureSpec(general_count=480, general_licence="commercial",
                                                 general_heldout=50, draw_seed=2),
        "holds out the study's general_heldout=50": MixtureSpec(general_ratio=1, general_licence="commercial",
                                                                draw_seed=2),
        r"draw_seed=2": MixtureSpec(general_ratio=1, general_licence="commercial", general_heldout=50),
        "general_licence='commercial'": MixtureSpec(general_ratio=1, general_heldout=50, draw_seed=2),
        "the kit refuses your spec: general_ratio must be a number": MixtureSpec(general_ratio=-1),
        "not a dict": {"general_ratio": 1},
    }  # fmt: skip
    for hint, answer in wrong.items():
        with pytest.raises(ExerciseNotSolved, match=hint):
            check_cell_mixture(answer, STUDY, CELL)


def _card(kept: dict[str, int], ratio: float, general_rows: int) -> dict:
    tasks = {t: {"counts": {"train": {"kept": n}, "test": {"kept": 4}}} for t, n in kept.items()}
    tasks["related"] = {"counts": {"test": {"kept": 4}}}  # no train rows
    spec = MixtureSpec(general_ratio=ratio).to_dict()
    return {
        "tasks": tasks,
        "totals": {"train": sum(kept.values()) + general_rows},
        "mixture": {"spec": spec, "task_train_rows": sum(kept.values()), "general_rows": general_rows},
    }


def test_general_rows():
    card = _card({"x": 8, "y": 7}, 1.5, 23)  # 1.5 x 15 = 22.5, rounded half up
    assert check_general_rows(23, card)
    with pytest.raises(ExerciseNotSolved, match="per task row of the whole run"):
        check_general_rows(12, card)  # 1.5 x 8, one task's rows
    with pytest.raises(ExerciseNotSolved, match="already holds the generalist rows"):
        check_general_rows(38, card)
    with pytest.raises(ValueError, match="no mixture"):
        check_general_rows(1, {"tasks": {}})


SARI_SRC = "the disastrous plan of the mayor was finally scrapped ."
SARI_OUT = "the plan of the mayor was finally dropped by the council ."
SARI_REF = ["the plan of the mayor was dropped ."]


def test_sari_unigram_parts_by_hand():
    # add 2*1/(3+1), keep 2*7/(8+7), delete 2*2/(2+3): see tests/test_text_metrics.py for the counts
    assert check_sari_unigram_parts(
        {"add": 50.0, "keep": 1400 / 15, "delete": 80.0}, SARI_SRC, SARI_OUT, SARI_REF
    )
    with pytest.raises(ExerciseNotSolved, match="in percent"):
        check_sari_unigram_parts({"add": 0.5, "keep": 14 / 15, "delete": 0.8}, SARI_SRC, SARI_OUT, SARI_REF)
    with pytest.raises(ExerciseNotSolved, match="'keep' is off.*clipped"):
        check_sari_unigram_parts({"add": 50.0, "keep": 100.0, "delete": 80.0}, SARI_SRC, SARI_OUT, SARI_REF)
    with pytest.raises(ExerciseNotSolved, match="keys are"):
        check_sari_unigram_parts({"add": 50.0}, SARI_SRC, SARI_OUT, SARI_REF)


def test_sari_of_one_example():
    from socialite_utils.text_metrics import sari

    kit = sari([SARI_SRC], [SARI_OUT], [SARI_REF])["sari"]
    assert check_sari(kit, SARI_SRC, SARI_OUT, SARI_REF)
    with pytest.raises(ExerciseNotSolved, match="that is the unigram SARI"):
        check_sari((50 + 1400 / 15 + 80) / 3, SARI_SRC, SARI_OUT, SARI_REF)
    t2t = sari([SARI_SRC], [SARI_OUT], [SARI_REF], variant="t2t")["sari"]
    with pytest.raises(ExerciseNotSolved, match="tensor2tensor"):
        check_sari(t2t, SARI_SRC, SARI_OUT, SARI_REF)
    with pytest.raises(ExerciseNotSolved, match="average the twelve"):
        check_sari(kit + 1, SARI_SRC, SARI_OUT, SARI_REF)
