"""Generalist rows and mixtures (mixing.py): rendering by the one renderer, TRL's masks on a generalist row (loss on
the response + EOS only), the held-out slice, exact counts per ratio, determinism, the licence filter, bad specs."""

from __future__ import annotations

import json
import math

import pytest

from socialite_utils import models
from socialite_utils.data.assembly import build_data, load_data_card, write_data_run
from socialite_utils.data.mixing import (
    GENERAL_TASK,
    MixtureSpec,
    build_mixture_rows,
    general_row,
    load_general_heldout,
    split_general,
)
from socialite_utils.data.writing_sources import load_general_instructions
from socialite_utils.registry import load_registry, select_tasks
from socialite_utils.training import (
    KitSFTTrainer,
    TrainParams,
    build_lora_config,
    build_sft_config,
    build_sft_dataset,
    tokenize_like_trl,
)

TASKS = ["tweet_irony", "tweet_offensive", "tweet_sentiment"]  # seen; + a related task below
REC = {
    "instruction": "List two primes.",
    "input": "Small ones\nplease",
    "output": "2 and 3.\nBoth are prime.",
    "source": "alpaca_libre_v1",
    "licence": "CC BY 4.0",
    "line": 7,
}


def _build(bundle_dir, general_dir, per_task=8, seed=0, **mix):
    tasks = select_tasks(load_registry("local"), [*TASKS, "clickbait"])
    spec = {"general_heldout": 50, "data_dir": str(general_dir), **mix}
    return build_data(
        tasks, data_dir=bundle_dir, max_train_per_task=per_task, max_eval_per_task=4, seed=seed, mixture=spec
    )


# ---------------------------------------------------------------- rendering and masking


def test_general_row_uses_the_one_renderer_in_every_format():
    paper = general_row(REC, split="train", fmt="paper")
    assert paper["prompt"] == "Instruction: List two primes.\nInput: Small ones\nplease\nOutput:"
    assert paper["completion"] == " 2 and 3.\nBoth are prime."
    assert paper["id"] == "general_instructions:alpaca_libre_v1:7" and paper["label"] is None
    no_input = general_row({**REC, "input": ""}, split="train", fmt="paper")
    assert no_input["prompt"] == "Instruction: List two primes.\nOutput:"
    alpaca = general_row(REC, split="train", fmt="alpaca")["prompt"]
    assert alpaca.endswith(
        "### Instruction:\nList two primes.\n\n### Input:\nSmall ones\nplease\n\n### Response:"
    )
    chat = general_row(REC, split="train", fmt="chat")
    assert chat["prompt"] == [{"role": "user", "content": "List two primes.\nInput: Small ones\nplease"}]
    assert chat["completion"] == [{"role": "assistant", "content": "2 and 3.\nBoth are prime."}]


@pytest.mark.parametrize("fmt", ["paper", "alpaca", "chat"])
def test_generalist_row_trains_on_the_response_and_eos_only(tmp_path, fmt):
    rows = [
        general_row(REC, split="train", fmt=fmt),
        general_row({**REC, "line": 8, "input": ""}, split="train", fmt=fmt),
    ]
    model, tok = models.load_model("tiny-random", seed=0)
    params = TrainParams(run_name="t", base_model="tiny-random", max_steps=1, save_steps=1000)
    trainer = KitSFTTrainer(
        model=model,
        args=build_sft_config(params, tmp_path / "out", n_examples=2),
        train_dataset=build_sft_dataset(rows),
        processing_class=tok,
        peft_config=build_lora_config(target_modules=["q_proj", "v_proj"]),
    )
    for row, ex in zip(rows, trainer.train_dataset, strict=True):
        ids, n_prompt = tokenize_like_trl(tok, row["prompt"], row["completion"])
        assert ex["input_ids"] == ids and ex["labels"] == [-100] * n_prompt + ids[n_prompt:]
        assert ids[-1] == tok.eos_token_id  # EOS (or the template's end of turn) is supervised
        trained = tok.decode(ids[n_prompt:-1] if fmt != "chat" else ids[n_prompt:])
        assert "2 and 3." in trained and "Both are prime." in trained  # the whole response...
        assert "primes" not in trained and "Small" not in trained  # ...and nothing of the prompt


# ---------------------------------------------------------------- held-out slice


def test_heldout_slice_is_seeded_fixed_size_and_disjoint(general_dir):
    rows = load_general_instructions(general_dir)
    pool, held = split_general(rows, 100, seed=3)
    assert len(held) == 100 and len(pool) + len(held) <= len(rows)
    assert [r["line"] for r in split_general(rows, 100, seed=3)[1]] == [r["line"] for r in held]
    assert [r["line"] for r in split_general(rows, 100, seed=4)[1]] != [r["line"] for r in held]
    assert not {r["line"] for r in pool} & {r["line"] for r in held}
    with pytest.raises(ValueError, match="general_heldout=9999 but only"):
        split_general(rows, 9999)


def test_heldout_is_the_same_whatever_the_training_seed_and_ratio(bundle_dir, general_dir):
    a = _build(bundle_dir, general_dir, seed=0, general_ratio=1)
    b = _build(bundle_dir, general_dir, seed=1, general_ratio=3)
    assert [r["id"] for r in a.general_heldout] == [r["id"] for r in b.general_heldout]
    assert len(a.general_heldout) == 50


# ---------------------------------------------------------------- mixtures


@pytest.mark.parametrize(("ratio", "expected"), [(0, 0), (0.5, 12), (1, 24), (3, 72), (1 / 3, 8)])
def test_exact_counts_for_each_ratio(bundle_dir, general_dir, ratio, expected):
    data = _build(bundle_dir, general_dir, general_ratio=ratio)
    train = data.splits["train"]
    general = [r for r in train if r["task"] == GENERAL_TASK]
    assert len(train) - len(general) == 24  # 3 seen tasks x 8 (the related task adds none)
    assert len(general) == expected
    table = {(t["source"], t["task"]): t["rows"] for t in data.card["mixture"]["table"]}
    assert sum(n for (src, _), n in table.items() if src != "social_tasks") == expected
    assert all(table[("social_tasks", t)] == 8 for t in TASKS)
    assert data.card["totals"]["train"] == 24 + expected


def test_count_instead_of_ratio(bundle_dir, general_dir):
    data = _build(bundle_dir, general_dir, general_count=17)
    assert sum(r["task"] == GENERAL_TASK for r in data.splits["train"]) == 17


def test_mixture_is_deterministic_under_a_fixed_seed(bundle_dir, general_dir, runs_dir):
    a = _build(bundle_dir, general_dir, general_ratio=2)
    b = _build(bundle_dir, general_dir, general_ratio=2)
    c = _build(bundle_dir, general_dir, seed=1, general_ratio=2)
    assert a.splits["train"] == b.splits["train"]
    assert [r["id"] for r in a.splits["train"]] != [r["id"] for r in c.splits["train"]]
    write_data_run("a", a)
    write_data_run("b", b)
    for name in ("train.jsonl", "general_heldout.jsonl"):
        assert (runs_dir / "a" / "data" / name).read_bytes() == (runs_dir / "b" / "data" / name).read_bytes()
    card = load_data_card("a")
    assert card["mixture"]["general_rows"] == 48 and card["params"]["mixture"]["general_ratio"] == 2
    assert [r["id"] for r in load_general_heldout("a")] == [r["id"] for r in a.general_heldout]


def test_no_heldout_or_test_row_is_trained_on(bundle_dir, general_dir):
    data = _build(bundle_dir, general_dir, general_ratio=3)
    train_general = {r["id"] for r in data.splits["train"] if r["task"] == GENERAL_TASK}
    assert train_general and not train_general & {r["id"] for r in data.general_heldout}
    key = lambda r: (r["instruction"].lower().split(), r["text"].lower().split())  # noqa: E731
    held_keys = [key(r) for r in data.general_heldout]
    assert not any(key(r) in held_keys for r in data.splits["train"] if r["task"] == GENERAL_TASK)
    test_texts = {r["text"] for r in data.splits["test"]}
    assert not test_texts & {r["text"] for r in data.splits["train"]}
    assert {r["split"] for r in data.splits["train"]} == {"train"}


def test_licence_filter(bundle_dir, general_dir):
    data = _build(bundle_dir, general_dir, general_count=300, general_licence="commercial")
    sources = {r["source"] for r in data.splits["train"] if r["task"] == GENERAL_TASK}
    assert sources and not any(s.startswith("llamafactory") for s in sources)  # stated non-commercial
    assert all(not s.startswith("llamafactory") for s in (r["source"] for r in data.general_heldout))
    anyl = _build(bundle_dir, general_dir, general_count=300)
    assert any(
        r["source"].startswith("llamafactory") for r in anyl.splits["train"] if r["task"] == GENERAL_TASK
    )
    n_comm = len(load_general_instructions(general_dir, licence="commercial"))
    assert data.card["mixture"]["available_after_filters"] == n_comm < 4223


@pytest.mark.parametrize(
    ("mix", "message"),
    [
        ({"general_ratio": -1}, "general_ratio must be a number >= 0"),
        ({"general_ratio": 1, "general_count": 5}, "give general_ratio or general_count, not both"),
        ({"general_count": -2}, "general_count must be an integer >= 0"),
        ({"general_heldout": -1}, "general_heldout must be an integer >= 0"),
        ({"general_licence": "commerical"}, "general_licence must be one of"),
        (
            {"general_count": 5000},
            r"general_count=5000 asks for 5000 generalist rows, but only \d+ are available",
        ),
        ({"general_ratio": 500}, r"general_ratio=500 x 24 task rows asks for 12000 generalist rows"),
    ],
)
def test_bad_specs_name_the_parameter(bundle_dir, general_dir, mix, message):
    with pytest.raises(ValueError, match=message):
        _build(bundle_dir, general_dir, **mix)


def test_general_sources_as_a_string_names_sources_not_letters(bundle_dir, general_dir):
    from socialite_utils.data.mixing import MixtureSpec

    assert MixtureSpec(general_sources="alpaca").general_sources == ["alpaca"]
    assert MixtureSpec(general_sources="alpaca, dolly").general_sources == ["alpaca", "dolly"]
    with pytest.raises(ValueError, match=r"general_sources must be a list of source names .* got \[3\]"):
        MixtureSpec(general_sources=[3]).validate()
    source = load_general_instructions(general_dir)[0]["source"]
    data = _build(bundle_dir, general_dir, general_count=20, general_sources=source)
    assert {r["source"] for r in data.splits["train"] if r["task"] == GENERAL_TASK} == {source}


def test_unknown_spec_field_is_not_ignored(bundle_dir, general_dir):
    with pytest.raises(TypeError, match="general_ration"):
        _build(bundle_dir, general_dir, general_ration=1)


def test_build_mixture_rows_info(general_dir):
    spec = MixtureSpec(general_ratio=0.5, general_heldout=10, data_dir=str(general_dir))
    train, held, info = build_mixture_rows(spec, 11, seed=0)
    assert len(train) == 6 and len(held) == 10  # 5.5 rounds half up
    assert info["pool_after_heldout"] <= 4223 - 10 and sum(info["sources_used"].values()) == 6
    assert json.dumps(info)  # JSON-ready for the data card


# ---------------------------------------------------------------- retained general ability


def test_score_response_nll_matches_a_hand_computation():
    import torch

    from socialite_utils.evaluation.scoring import score_response_nll

    rows = [
        general_row(REC, split="heldout"),
        general_row({**REC, "line": 9, "input": "", "output": "Seven."}, split="heldout"),
    ]
    model, tok = models.load_model("tiny-random", seed=0)
    model.eval()
    total, n_tokens = 0.0, 0
    for r in rows:  # token by token, no batching, no padding: log p(token k | tokens < k)
        prompt_ids = tok(r["prompt"])["input_ids"]
        full = tok(r["prompt"] + r["completion"] + tok.eos_token)["input_ids"]
        assert full[: len(prompt_ids)] == prompt_ids and full[-1] == tok.eos_token_id
        for k in range(len(prompt_ids), len(full)):
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([full[:k]])).logits[0, -1]
            total += torch.log_softmax(logits.float(), -1)[full[k]].item()
            n_tokens += 1
    res = score_response_nll(model, tok, rows, batch_size=2)
    assert res["n_tokens"] == n_tokens and res["n_rows"] == 2 and res["n_skipped"] == 0
    assert res["nll_per_token"] == pytest.approx(-total / n_tokens, abs=1e-4)
    one_by_one = score_response_nll(model, tok, rows, batch_size=1)  # left padding changes nothing
    assert one_by_one["nll_per_token"] == pytest.approx(res["nll_per_token"], abs=1e-4)
    short = score_response_nll(model, tok, rows[:1], max_length=len(tok(rows[0]["prompt"])["input_ids"]))
    assert short["n_skipped"] == 1 and short["n_rows"] == 0 and math.isnan(short["nll_per_token"])


@pytest.mark.slow
def test_notebook_01_writes_a_mixture(tmp_path, runs_dir, bundle_dir, general_dir):
    from nbrun import run_notebook

    out = run_notebook(
        "01_data_assembly.ipynb", tmp_path, run_name="mix01", tasks=TASKS, general_ratio=0.5, general_heldout=10,
        general_licence="commercial", smoke=True,
    )  # fmt: skip
    train = [json.loads(x) for x in (runs_dir / "mix01" / "data" / "train.jsonl").open()]
    general = [r for r in train if r["task"] == GENERAL_TASK]
    assert len(train) == 24 + 12 and len(general) == 12  # smoke: 8 rows x 3 tasks, ratio 0.5
    assert not any(r["source"].startswith("llamafactory") for r in general)
    card = json.loads((runs_dir / "mix01" / "data_card.json").read_text())
    assert (
        card["mixture"]["spec"]["general_licence"] == "commercial" and card["totals"]["general_heldout"] == 10
    )
    assert len((runs_dir / "mix01" / "data" / "general_heldout.jsonl").read_text().splitlines()) == 10
    assert "generalist rows: 12 next to 24 task rows" in out.read_text()
