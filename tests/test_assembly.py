"""Assembly: real bundle, binarization, caps, determinism, de-duplication and every bad-input case."""

from __future__ import annotations

import json
import random

import pytest
from conftest import toy_task

from socialite_utils.data import DataError
from socialite_utils.data.assembly import (
    _cap_balanced,
    _cap_stratified,
    build_data,
    load_data_run,
    mixture_table,
    write_data_run,
)
from socialite_utils.registry import load_registry, select_tasks
from socialite_utils.runs import RunExistsError, RunWriter

REG = load_registry("local")


_task = toy_task


def test_real_bundle_all_tasks(bundle_dir):
    data = build_data(
        list(REG.values()), data_dir=bundle_dir, max_train_per_task=20, max_eval_per_task=10, seed=0
    )
    related = {t.name for t in REG.values() if t.group == "related"}
    assert {r["task"] for r in data.splits["test"]} == set(REG)
    assert not related & {r["task"] for r in data.splits["train"] + data.splits["validation"]}
    assert len(data.splits["train"]) == 10 * 20 and len(data.splits["test"]) == 15 * 10
    ids = [r["id"] for rows in data.splits.values() for r in rows]
    assert len(ids) == len(set(ids))
    for r in data.splits["test"]:
        assert r["label"] in r["labels"] and r["prompt"].endswith("\nOutput:")
    valence = data.card["tasks"]["emobank_valence"]["binarization"]
    assert valence["source"] == "median of the train split"
    # the pool feeds few-shot prompts for related tasks too
    assert {r["task"] for r in data.pool} == set(REG)


def test_binarization_at_train_median(make_bundle):
    task = _task(type="regression", labels=["low", "high"], scale=[1, 5], instruction="low or high?")
    bundle = make_bundle(
        {
            "toy": {
                "train": [{"text": f"t{i}", "label": s} for i, s in enumerate([1, 2, 3, 4, 5])],
                "validation": [{"text": "v", "label": 3.5}],
                "test": [{"text": "a", "label": 3}, {"text": "b", "label": 3.01}],
            }
        }
    )
    data = build_data([task], data_dir=bundle)
    assert data.card["tasks"]["toy"]["binarization"]["threshold"] == 3
    test = {r["text"]: (r["label"], r["score"]) for r in data.splits["test"]}
    assert test == {"a": ("low", 3.0), "b": ("high", 3.01)}  # ties at the median go low
    assert [r["label"] for r in data.splits["train"]] == ["low", "low", "low", "high", "high"]


def test_caps_stratified_and_balanced():
    rows = [{"label": "a", "_line": i} for i in range(8)] + [{"label": "b", "_line": 8 + i} for i in range(2)]
    labels = lambda rs: sorted(r["label"] for r in rs)  # noqa: E731
    assert labels(_cap_stratified(rows, 5, random.Random(0))) == ["a"] * 4 + ["b"]
    assert labels(_cap_balanced(rows, 4, random.Random(0))) == ["a", "a", "b", "b"]
    assert labels(_cap_balanced(rows, 6, random.Random(0))) == ["a"] * 4 + ["b"] * 2
    assert len(_cap_stratified(rows, None, random.Random(0))) == 10


def test_same_seed_same_bytes_different_seed_different_sample(bundle_dir, runs_dir):
    tasks = select_tasks(REG, ["tweet_emotion", "tweet_stance", "emobank_arousal"])
    kw = dict(data_dir=bundle_dir, max_train_per_task=15, max_eval_per_task=5, few_shot_k=2)
    a = write_data_run("a", build_data(tasks, seed=7, **kw))
    b = write_data_run("b", build_data(tasks, seed=7, **kw))
    c = write_data_run("c", build_data(tasks, seed=8, **kw))
    for split in ("train", "validation", "test", "fewshot_pool"):
        assert (a / "data" / f"{split}.jsonl").read_bytes() == (b / "data" / f"{split}.jsonl").read_bytes()
    assert (a / "data_card.json").read_bytes() == (b / "data_card.json").read_bytes()
    assert (a / "data" / "train.jsonl").read_bytes() != (c / "data" / "train.jsonl").read_bytes()
    loaded = load_data_run(a)
    assert len(loaded["train"]) == 45 and {r["few_shot_k"] for r in loaded["test"]} == {2}
    assert (a / "figures" / "composition.png").stat().st_size > 10_000


def test_mixture_table_shares(bundle_dir):
    data = build_data(
        select_tasks(REG, ["tweet_irony", "clickbait"]),
        data_dir=bundle_dir,
        max_train_per_task=30,
        max_eval_per_task=10,
    )
    table = mixture_table(data)
    assert table.groupby("split")["share"].sum().round(6).to_dict() == {
        "test": 1.0,
        "train": 1.0,
        "validation": 1.0,
    }
    assert table.query("split == 'train'")["task"].tolist() == ["tweet_irony"]  # clickbait is held out


def test_empty_texts_dropped_and_counted_and_cross_split_duplicates(make_bundle):
    bundle = make_bundle(
        {
            "toy": {
                "train": [
                    {"text": "  ", "label": "no"},
                    {"text": "Same Text", "label": "yes"},
                    {"text": "x", "label": "no"},
                ],
                "validation": [{"text": "\n", "label": "yes"}, {"text": "v", "label": "no"}],
                "test": [{"text": "same   text", "label": "yes"}, {"text": "t", "label": "no"}],
            }
        }
    )
    data = build_data([_task()], data_dir=bundle)
    counts = data.card["tasks"]["toy"]["counts"]
    assert counts["train"]["empty_dropped"] == 1 and counts["validation"]["empty_dropped"] == 1
    assert counts["train"]["duplicates_dropped"] == 1
    assert [r["text"] for r in data.splits["train"]] == ["x"]
    assert data.card["dropped"] == {"empty_texts": 2, "duplicates": 1}


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ('{"text": "a", "label": "no"', r"train\.jsonl: line 2: malformed JSON"),
        (
            '{"text": "a", "label": "maybe"}',
            r"train\.jsonl: line 2: field 'label': 'maybe' is not a label of task 'toy'; allowed: \['no', 'yes'\]",
        ),
        ('{"label": "no"}', r"train\.jsonl: line 2: missing field 'text'"),
    ],
)
def test_bad_lines_name_file_line_field(make_bundle, line, pattern):
    bundle = make_bundle(
        {"toy": {"train": ['{"text": "ok", "label": "yes"}', line], "validation": [], "test": []}}
    )
    with pytest.raises(DataError, match=pattern):
        build_data([_task()], data_dir=bundle)


def test_non_numeric_regression_label(make_bundle):
    task = _task(type="regression", labels=["low", "high"], scale=[1, 5])
    bundle = make_bundle(
        {
            "toy": {
                "train": [{"text": "a", "label": 2.0}, {"text": "b", "label": "high-ish"}],
                "validation": [],
                "test": [],
            }
        }
    )
    with pytest.raises(DataError, match=r"train\.jsonl: line 2: field 'label': 'high-ish' is not a number"):
        build_data([task], data_dir=bundle)


def test_missing_split_file(make_bundle):
    bundle = make_bundle({"toy": {"train": [{"text": "a", "label": "no"}], "test": []}})
    with pytest.raises(FileNotFoundError, match=r"task 'toy': split file .*toy/validation\.jsonl not found"):
        build_data([_task()], data_dir=bundle)


def test_run_writer_is_atomic_and_never_overwrites(runs_dir):
    target = runs_dir / "r1"
    with pytest.raises(RuntimeError):
        with RunWriter(target) as tmp:
            (tmp / "half.json").write_text("{}")
            raise RuntimeError("crash mid-run")
    assert not runs_dir.exists() or list(runs_dir.iterdir()) == []
    with RunWriter(target) as tmp:
        (tmp / "done.json").write_text(json.dumps({"ok": 1}))
    with pytest.raises(RunExistsError, match="already exists"):
        with RunWriter(target):
            pass
    assert (target / "done.json").exists()
    with RunWriter(target, overwrite=True) as tmp:
        (tmp / "new.json").write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == ["new.json"]


def test_balanced_train_keeps_the_natural_label_counts_in_the_card(bundle_dir):
    tasks = select_tasks(REG, ["tweet_offensive", "clickbait"])
    kw = dict(data_dir=bundle_dir, max_train_per_task=40, max_eval_per_task=5)
    card = build_data(tasks, balance_train=True, **kw).card["tasks"]
    natural = card["tweet_offensive"]["label_distribution"]["train_before_balancing"]
    counts = card["tweet_offensive"]["counts"]["train"]
    assert sum(natural.values()) == counts["kept"] + counts["capped_away"]  # every train row before the cap
    assert natural["not offensive"] > natural["offensive"]  # the natural shares, not the balanced 20 / 20
    assert card["tweet_offensive"]["label_distribution"]["train"] == {"not offensive": 20, "offensive": 20}
    assert "train_before_balancing" not in card["clickbait"]["label_distribution"]  # held out: no train split
    plain = build_data(tasks, **kw).card["tasks"]["tweet_offensive"]["label_distribution"]
    assert "train_before_balancing" not in plain
