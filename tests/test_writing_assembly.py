"""Generation tasks in data runs (socialite_utils.data.writing_rows through assembly.build_data): wordings drawn per
example in training and fixed per example in evaluation, references kept, generalist mixing, a user's own task,
and the training masks on long generation targets."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from socialite_utils import models
from socialite_utils.data import DataError
from socialite_utils.data.assembly import build_data, load_data_card, load_data_run, write_data_run
from socialite_utils.data.writing_rows import GENERAL_TASK, eval_wording, select_mixture, wordings
from socialite_utils.data.writing_sources import load_writing_split
from socialite_utils.prompts import render_prompt
from socialite_utils.registry import load_registry
from socialite_utils.training import (
    KitSFTTrainer,
    TrainParams,
    build_lora_config,
    build_sft_config,
    build_sft_dataset,
    tokenize_like_trl,
)


@pytest.fixture(scope="module")
def writing():
    return load_registry("writing")


def by_id(rows):
    return {r["id"]: r for r in rows}


def test_eval_wording_is_fixed_per_example_and_train_wording_drawn(writing_dir, writing):
    task = writing["paraphrase"]
    runs = [build_data([task], max_train_per_task=None, max_eval_per_task=None, seed=s) for s in (0, 1, 0)]
    test0, test1 = by_id(runs[0].splits["test"]), by_id(runs[1].splits["test"])
    assert test0.keys() == test1.keys() and len(test0) > 50
    # evaluation: the same wording for the same example whatever the seed, and the one eval_wording names
    for rid, row in test0.items():
        assert row["wording"] == test1[rid]["wording"]
        assert (row["wording"], row["instruction"]) == eval_wording(task, rid)
        assert row["instruction"] in row["prompt"]
    assert len(Counter(r["wording"] for r in test0.values())) == len(wordings(task)) == 3  # all wordings used
    # training: drawn per example from a seeded stream -- reproducible, different for another seed
    train0, train1 = by_id(runs[0].splits["train"]), by_id(runs[1].splits["train"])
    assert runs[2].splits["train"] == runs[0].splits["train"]
    assert len(Counter(r["wording"] for r in train0.values())) == 3
    differ = sum(train0[i]["wording"] != train1[i]["wording"] for i in train0)
    assert 0.4 * len(train0) < differ < 0.9 * len(train0)  # about 2/3 differ for 3 wordings
    assert {w for _, w in wordings(task)} == {r["instruction"] for r in train0.values()}


def test_generation_rows_keep_references_and_use_the_one_renderer(writing_dir, writing):
    task = writing["simplification"]
    data = build_data([task], max_train_per_task=3, max_eval_per_task=5, prompt_format="chat")
    source = {r["line"]: r for r in load_writing_split("simplification", "test")}
    for row in data.splits["test"]:
        rec = source[int(row["id"].rsplit(":", 1)[1])]
        assert row["text"] == rec["source"] and row["label"] == rec["target"]
        assert row["references"] == rec["references"] and len(row["references"]) == 10  # ASSET: 10 references
        assert row["prompt"] == render_prompt(task, rec["source"], fmt="chat", instruction=row["instruction"])
        assert "label" not in row["prompt"][0]["content"]  # no "Answer with the label only." for a rewrite
        assert row["completion"] == [{"role": "assistant", "content": rec["target"]}]
    assert data.card["tasks"]["simplification"]["counts"]["test"]["kept"] == 5


def test_no_data_tasks_are_in_the_card_without_rows(writing_dir, writing, runs_dir):
    data = build_data(list(writing.values()), max_train_per_task=2, max_eval_per_task=2)
    assert {r["task"] for r in data.splits["test"]} == {
        "fluency",
        "simplification",
        "neutralization",
        "paraphrase",
    }
    for name in ("grammaticality", "clarity", "coherence"):
        assert data.card["tasks"][name]["no_data"] == writing[name].no_data
    write_data_run("w", data)  # the composition figure copes with the writing category
    assert load_data_card("w")["tasks"]["clarity"]["no_data"].startswith("IteraTeR")
    assert len(load_data_run("w")["test"]) == 8


def test_generalist_mixing_and_mixtures(writing_dir, general_dir, writing):
    tasks = [writing["fluency"], writing["paraphrase"]]
    data = build_data(
        tasks,
        max_train_per_task=4,
        max_eval_per_task=2,
        mixture={"general_count": 6, "general_heldout": 0},
        prompt_format="alpaca",
    )
    train = data.splits["train"]
    general = [r for r in train if r["task"] == GENERAL_TASK.name]
    assert len(train) == 14 and len(general) == 6
    assert data.card["mixture"]["general_rows"] == 6
    assert all(r["category"] == "general" and r["instruction"] in r["prompt"] for r in general)
    assert not any(r["task"] == GENERAL_TASK.name for r in data.splits["test"])
    assert len(select_mixture(train, "tasks")) == 8
    assert select_mixture(train, "general") == general
    assert select_mixture(train, "tasks+general") == train
    # the same seed draws the same generalist rows; another seed other ones
    again = build_data(
        tasks,
        max_train_per_task=4,
        max_eval_per_task=2,
        mixture={"general_count": 6, "general_heldout": 0},
        prompt_format="alpaca",
    )
    other = build_data(
        tasks,
        max_train_per_task=4,
        max_eval_per_task=2,
        mixture={"general_count": 6, "general_heldout": 0},
        seed=1,
    )
    assert again.splits["train"] == train
    assert {r["id"] for r in other.splits["train"] if r["task"] == GENERAL_TASK.name} != {
        r["id"] for r in general
    }
    with pytest.raises(ValueError, match="mixture 'general' selects no train rows"):
        select_mixture(select_mixture(train, "tasks"), "general")
    with pytest.raises(ValueError, match="unknown mixture"):
        select_mixture(train, "writing")
    with pytest.raises(ValueError, match="general_count=100000 asks for 100000 generalist rows, but only"):
        build_data(tasks, max_train_per_task=1, max_eval_per_task=1, mixture={"general_count": 100000})


def test_a_users_own_generation_task_from_yaml_and_a_bundle(tmp_path, runs_dir):
    bundle = tmp_path / "bundle"
    for split, n in (("train", 6), ("validation", 2), ("test", 3)):
        path = bundle / "formal" / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            {"source": f"hey {split} {i} wanna go", "target": f"Would you like to go, {split} {i}?",
             "references": [f"Would you like to go, {split} {i}?"]}
            for i in range(n)
        ]  # fmt: skip
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "mine.yaml").write_text(
        "suite: mywriting\ntasks:\n  formality:\n    category: writing\n    type: generation\n    group: seen\n"
        "    instruction: Make this text formal.\n    metrics: [sari, bleu]\n"
        "    sources: {writing_tasks: {dir: formal}}\n"
    )
    task = load_registry("mywriting", extra_dirs=[tasks_dir])["formality"]
    data = build_data([task], writing_dir=bundle)
    assert [len(data.splits[s]) for s in ("train", "validation", "test")] == [6, 2, 3]
    assert data.splits["test"][0]["references"] == ["Would you like to go, test 0?"]
    write_data_run("mine", data)
    assert load_data_card("mine")["params"]["writing_dir"] == str(bundle)
    (bundle / "formal" / "test.jsonl").write_text('{"source": "x", "target": "y"}\n')
    with pytest.raises(DataError, match=r"formal/test.jsonl: line 1: missing field 'references'"):
        build_data([task], writing_dir=bundle)


def test_long_generation_targets_are_masked_as_trl_does(writing_dir, general_dir, writing, tmp_path):
    """Generation rows (long targets, alpaca and paper formats): the trained tokens are exactly the completion and
    EOS, the prompt is masked, and the target decodes back from the trained tokens."""
    data = build_data(
        [writing["simplification"], writing["neutralization"]],
        max_train_per_task=4,
        max_eval_per_task=1,
        mixture={"general_count": 4, "general_heldout": 0},
        prompt_format="alpaca",
    )
    rows = data.splits["train"]
    model, tokenizer = models.load_model("tiny-random")
    params = TrainParams(
        run_name="t", max_steps=1, per_device_train_batch_size=4, gradient_accumulation_steps=1
    )
    trainer = KitSFTTrainer(
        model=model,
        args=build_sft_config(params, tmp_path / "out", n_examples=len(rows)),
        train_dataset=build_sft_dataset(rows),
        processing_class=tokenizer,
        peft_config=build_lora_config(target_modules=["q_proj", "v_proj"]),
    )
    assert len(trainer.train_dataset) == len(rows) == 12
    lengths = []
    for row, ex in zip(rows, trainer.train_dataset, strict=True):
        ids, n_prompt = tokenize_like_trl(tokenizer, row["prompt"], row["completion"])
        assert ex["input_ids"] == ids and ex["labels"] == [-100] * n_prompt + ids[n_prompt:]
        trained = ids[n_prompt:]
        assert trained[-1] == tokenizer.eos_token_id  # EOS is supervised
        assert (
            tokenizer.decode(trained[:-1]).split() == row["completion"].split()
        )  # all of the target, nothing else
        assert tokenizer.decode(ids[:n_prompt]).split() == row["prompt"].split()  # the prompt is masked
        lengths.append(len(trained))
    assert max(lengths) > 20  # long targets, not one-word labels
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    for i in range(4):
        n = len(trainer.train_dataset[i]["input_ids"])
        assert (batch["labels"][i, n:] == -100).all()  # padding is never trained
        assert (batch["labels"][i, :n] != -100).sum().item() == lengths[i]
