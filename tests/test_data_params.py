"""assembly.DataParams: the one list of build_data's options, shared by the per-task steps, the
generation-task assembler and the data card."""

from __future__ import annotations

import pytest

from socialite_utils.data.assembly import DataParams, build_data
from socialite_utils.registry import load_registry, select_tasks


def test_params_object_and_keywords_build_the_same_data(bundle_dir):
    tasks = select_tasks(load_registry("local"), ["tweet_irony", "tweet_stance"])
    kwargs = dict(data_dir=bundle_dir, max_train_per_task=6, max_eval_per_task=3, few_shot_k=1, seed=2)
    by_keywords = build_data(tasks, **kwargs)
    params = DataParams(**kwargs, prompt_format="chat")
    by_params = build_data(tasks, params, prompt_format="paper")  # keywords win over the params object
    assert by_params.splits == by_keywords.splits and by_params.card == by_keywords.card
    assert by_params.card["params"] is by_params.params  # one dict: apply_mixture records the mixture in both
    assert build_data(tasks, params).splits["test"][0]["prompt_format"] == "chat"


def test_card_params_list_every_option_but_the_mixture_in_order(tmp_path):
    tasks = select_tasks(load_registry("local"), ["tweet_irony"])
    params = DataParams(data_dir=tmp_path, max_eval_per_task=4, mixture={"general_count": 2})
    assert params.card_params(tasks) == {
        "source": "local",
        "data_dir": str(tmp_path),
        "tasks": ["tweet_irony"],
        "max_train_per_task": None,
        "max_eval_per_task": 4,
        "balance_train": False,
        "few_shot_k": 0,
        "prompt_format": "paper",
        "seed": 0,
        "eval_seed": None,
        "exclude_test_caps": None,
        "instruction_from": "registry",
        "text_normalization": "none",
        "writing_dir": None,
    }
    assert list(params.card_params(tasks))[:3] == ["source", "data_dir", "tasks"]


def test_an_unknown_option_is_an_error_naming_it():
    tasks = select_tasks(load_registry("local"), ["tweet_irony"])
    with pytest.raises(
        ValueError, match=r"unknown data option\(s\) \['max_train'\]; the options are \['source'"
    ):
        build_data(tasks, max_train=5)
