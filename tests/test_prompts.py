"""Prompt rendering: exact strings for the paper format, few-shot, pair tasks and chat."""

from __future__ import annotations

from collections import Counter

import pytest

from socialite_utils.prompts import draw_shots, render_completion, render_prompt
from socialite_utils.registry import load_registry

REG = load_registry("local")


def test_paper_format_exact():
    task = REG["tweet_sentiment"]
    got = render_prompt(task, "I love this phone")
    assert got == f"Instruction: {task.instruction}\nInput: I love this phone\nOutput:"
    # the text goes in verbatim by default; collapsing whitespace is an explicit option
    assert render_prompt(task, "I love\nthis  phone ").endswith("Input: I love\nthis  phone \nOutput:")
    collapsed = render_prompt(task, "I love\nthis  phone ", text_normalization="collapse_whitespace")
    assert collapsed == got
    assert render_completion("positive") == " positive"


def test_pair_task_renders_both_texts():
    task = REG["tweet_stance"]
    got = render_prompt(task, "Vote for her!", "Hillary Clinton")
    assert got == f"Instruction: {task.instruction}\nInput: Vote for her!\nTarget: Hillary Clinton\nOutput:"


def test_few_shot_lines_exact():
    task = REG["tweet_sentiment"]
    shots = [{"text": "great day", "label": "positive"}, {"text": "meh", "label": "neutral"}]
    got = render_prompt(task, "awful", shots=shots)
    assert got == (
        f"Instruction: {task.instruction}\nExamples:\ngreat day - positive\nmeh - neutral\nInput: awful\nOutput:"
    )
    stance = REG["tweet_stance"]
    got = render_prompt(stance, "x", "T", shots=[{"text": "yes!", "text_b": "Atheism", "label": "favor"}])
    assert "\nyes! (Target: Atheism) - favor\n" in got


def test_chat_format_is_messages():
    task = REG["tweet_irony"]
    msgs = render_prompt(task, "sure, great", fmt="chat")
    assert msgs == [
        {"role": "user", "content": f"{task.instruction}\nInput: sure, great\nAnswer with the label only."}
    ]
    assert render_completion("ironic", "chat") == [{"role": "assistant", "content": "ironic"}]


def test_draw_shots_stratified_and_deterministic():
    labels = ["anger", "joy", "optimism", "sadness"]
    pool = [{"text": f"t{i}", "label": labels[i % 4] if i < 40 else "anger"} for i in range(100)]
    shots = draw_shots(pool, 4, seed=3, task_name="tweet_emotion", labels=labels)
    assert sorted(s["label"] for s in shots) == labels  # one per label despite 70% anger
    assert shots == draw_shots(pool, 4, seed=3, task_name="tweet_emotion", labels=labels)
    assert shots != draw_shots(pool, 4, seed=4, task_name="tweet_emotion", labels=labels)
    eight = Counter(s["label"] for s in draw_shots(pool, 8, seed=3, task_name="x", labels=labels))
    assert set(eight.values()) == {2}
    assert draw_shots(pool, 0, seed=3, task_name="x", labels=labels) == []


def test_alpaca_format_exact():
    task = REG["tweet_sentiment"]
    got = render_prompt(task, "I love\nthis  phone", fmt="alpaca")
    assert got == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        f"### Instruction:\n{task.instruction}\n\n### Input:\nI love\nthis  phone\n\n### Response:"
    )  # the text verbatim (the default); collapsed only when asked:
    collapsed = render_prompt(
        task, "I love\nthis  phone", fmt="alpaca", text_normalization="collapse_whitespace"
    )
    assert collapsed == got.replace("I love\nthis  phone", "I love this phone")
    assert render_completion("positive", "alpaca") == " positive"
    shots = [{"text": "great day", "label": "positive"}]
    got = render_prompt(task, "awful", fmt="alpaca", shots=shots)
    assert (
        f"### Instruction:\n{task.instruction}\nExamples:\ngreat day - positive\n\n### Input:\nawful\n\n"
        in got
    )


def test_alpaca_without_input_uses_the_no_input_template():
    from socialite_utils.prompts import render_alpaca

    assert render_alpaca("Name three colours.") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\nName three colours.\n\n### Response:"
    )


def test_a_pair_task_can_name_its_first_text_too(tmp_path):
    from socialite_utils.registry import RegistryError, load_task_file

    spec = (
        "suite: mine\ntasks:\n  same:\n    category: other_social_factors\n    type: classification\n"
        "    group: seen\n    labels: [same, different]\n    pair: true\n    text_name: Sentence 1\n"
        "    text_b_name: Sentence 2\n    instruction: Same meaning? Answer with one of same, different.\n"
    )
    (tmp_path / "same.yaml").write_text(spec)
    task = load_task_file(tmp_path / "same.yaml")[1]["same"]
    prompt = render_prompt(
        task, "a cat sat", "a cat was sitting", shots=[{"text": "x", "text_b": "y", "label": "same"}]
    )
    assert "Input: Sentence 1: a cat sat\nSentence 2: a cat was sitting\nOutput:" in prompt
    assert "Sentence 1: x (Sentence 2: y) - same" in prompt
    (tmp_path / "bad.yaml").write_text(spec.replace("    pair: true\n", ""))
    with pytest.raises(
        RegistryError, match="'text_name' names the first of two texts: it needs 'pair: true'"
    ):
        load_task_file(tmp_path / "bad.yaml")
