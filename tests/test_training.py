"""LoRA training (socialite_utils.training) on the tiny-random preset and real bundle rows.

Every test trains a 2-layer random Llama for a few dozen steps at most (seconds on a CPU). The
checks are behavioural: the loss falls, LoRA weights move, the saved adapter reproduces the
trained model's logits, a resumed run continues its step count, EOS carries a real label, and
bad input fails before anything is trained or written.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import TRAIN_TASKS
from safetensors.torch import load_file
from transformers import TrainerCallback

from socialite_utils import models
from socialite_utils.data.assembly import build_data
from socialite_utils.registry import load_registry
from socialite_utils.runs import RunExistsError
from socialite_utils.training import (
    KitProgressCallback,
    KitSFTTrainer,
    TrainParams,
    build_lora_config,
    build_sft_config,
    build_sft_dataset,
    check_supervised_tokens,
    format_log_line,
    load_adapter,
    load_run_tokenizer,
    load_training_rows,
    loss_points,
    show_label_mask,
    tokenize_like_trl,
    train_lora,
)
from socialite_utils.training.trainer import _use_kit_progress

TASKS = TRAIN_TASKS


@pytest.fixture(scope="module")
def rows(train_rows) -> list[dict]:
    return [dict(r) for r in train_rows]  # a copy per module: a test may change its rows


def tiny(**overrides) -> TrainParams:
    """Fast tiny-random params: no checkpoints unless asked, a log line per step."""
    base = {
        "run_name": "t",
        "base_model": "tiny-random",
        "max_steps": 4,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "learning_rate": 3e-3,
        "logging_steps": 1,
        "save_steps": 1000,
    }
    return TrainParams(**{**base, **overrides})


def tiny_model():
    return models.load_model("tiny-random", seed=0)


def make_trainer(rows, params: TrainParams, tmp_path, *, tokenizer=None, model=None):
    if model is None:
        model, tok = tiny_model()
        tokenizer = tokenizer or tok
    config = build_sft_config(params, tmp_path / "out", n_examples=len(rows))
    lora = build_lora_config(target_modules=["q_proj", "v_proj"], modules_to_save=["embed_tokens", "lm_head"])
    return KitSFTTrainer(
        model=model,
        args=config,
        train_dataset=build_sft_dataset(rows),
        processing_class=tokenizer,
        peft_config=lora,
        compact_lm_head=params.compact_lm_head,
    )


class StepRecorder(TrainerCallback):
    def __init__(self, crash_at: int | None = None):
        self.steps: list[int] = []
        self.crash_at = crash_at

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)
        if self.crash_at is not None and state.global_step == self.crash_at:
            raise RuntimeError("simulated crash")


def nothing_written(runs_dir) -> bool:
    return not runs_dir.exists() or not any(runs_dir.iterdir())


# ---------------------------------------------------------------- a full run


@pytest.fixture(scope="module")
def trained(rows, tmp_path_factory):
    """One tiny-random run of 40 steps at a high lr, shared by the tests that inspect its outputs."""
    runs = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOCIALITE_RUNS_DIR", str(runs))
        result = train_lora(tiny(run_name="learn", max_steps=40), rows)
        yield result, runs


def test_tiny_random_loss_falls(trained):
    result, _ = trained
    losses = [v for _, v in loss_points(result.log_history)]
    assert result.global_step == 40 and len(losses) == 40
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.6 * first, f"loss did not fall enough: {first:.3f} -> {last:.3f}"
    assert result.first_loss == losses[0] and result.last_loss == losses[-1]


def test_run_directory_contents(trained):
    result, runs = trained
    run = runs / "learn"
    assert result.run_dir == run
    for name in ("params.json", "provenance.json", "train_log.jsonl", "train_summary.json", "loss_curve.png"):
        assert (run / name).is_file(), name
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert (run / "adapter" / "tokenizer.json").is_file()
    assert (run / "base_model" / "config.json").is_file()  # tiny-random cannot be rebuilt from its name
    assert (run / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [h["step"] for h in log if "loss" in h] == list(range(1, 41))
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["packages"]["trl"] == "1.16.0" and "device" in prov and prov["stage"] == "training"
    assert "fp32" in prov["precision"] or "float32" in prov["precision"]
    params = json.loads((run / "params.json").read_text())
    assert params["base_model"] == "tiny-random" and params["lora_r"] == 8
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["n_train"] == 40 and summary["n_dropped"] == 0 and summary["global_step"] == 40
    resolved = summary["resolved"]  # the CPU speed settings and tiny-random's trainable embeddings/head
    assert resolved["sampler"] == "batch_rebalance" and resolved["compact_lm_head"] is True
    assert resolved["gradient_checkpointing"] is False
    assert sorted(resolved["modules_to_save"]) == ["embed_tokens", "lm_head"]
    assert resolved["target_modules"] == ["q_proj", "v_proj"]
    # the checkpoint directory is gone once the run is complete; no temporary directory is left
    assert sorted(p.name for p in runs.iterdir()) == ["learn"]


def test_lora_weights_changed(trained):
    result, runs = trained
    saved = load_file(runs / "learn" / "adapter" / "adapter_model.safetensors")
    lora_b = {k: v for k, v in saved.items() if "lora_B" in k}
    assert lora_b, "no LoRA B matrices were saved"
    # PEFT initialises B to zero: a non-zero B is a LoRA weight that training moved
    assert all(v.abs().sum() > 0 for v in lora_b.values())
    base = load_file(runs / "learn" / "base_model" / "model.safetensors")
    head = next(v for k, v in saved.items() if "lm_head" in k)
    assert not torch.equal(head, base["lm_head.weight"])  # the fully trained head moved too


def test_saved_adapter_reloads_with_identical_logits(trained, rows):
    result, runs = trained
    tokenizer = load_run_tokenizer(runs / "learn")
    batch = tokenizer([r["prompt"] for r in rows[:3]], return_tensors="pt", padding=True)
    with torch.no_grad():
        before = result.model(**batch).logits
        reloaded = load_adapter(runs / "learn")
        after = reloaded(**batch).logits
    assert torch.allclose(before, after, atol=1e-6)
    assert not reloaded.training


# ---------------------------------------------------------------- what is trained


def test_eos_has_a_real_label_even_when_pad_equals_eos(rows, tmp_path):
    model, tokenizer = tiny_model()
    assert tokenizer.pad_token_id != tokenizer.eos_token_id  # models.load_model's guarantee
    tokenizer.pad_token = tokenizer.eos_token  # the risky setup: padding with EOS
    trainer = make_trainer(rows[:4], tiny(), tmp_path, model=model, tokenizer=tokenizer)
    examples = [trainer.train_dataset[i] for i in range(4)]
    for ex in examples:
        assert ex["input_ids"][-1] == tokenizer.eos_token_id and ex["labels"][-1] == tokenizer.eos_token_id
    batch = trainer.data_collator(examples)
    lengths = [len(ex["input_ids"]) for ex in examples]
    assert len(set(lengths)) > 1, "need rows of different lengths to see padding"
    for i, n in enumerate(lengths):
        assert batch["labels"][i, n - 1].item() == tokenizer.eos_token_id  # EOS is trained...
        assert (batch["labels"][i, n:] == -100).all()  # ...padding (the same id) is not
        assert batch["input_ids"][i, n:].eq(tokenizer.eos_token_id).all()


@pytest.mark.parametrize("prompt_format", ["paper", "chat", "alpaca"])
def test_kit_tokenization_is_trls(bundle_dir, tmp_path, prompt_format):
    """The kit's pre-training check tokenizes exactly as TRL's dataset preparation does, in every prompt format."""
    registry = load_registry("local")
    tasks = [registry[t] for t in ("tweet_emotion", "tweet_stance")]
    fmt_rows = build_data(
        tasks, data_dir=bundle_dir, max_train_per_task=4, max_eval_per_task=1, prompt_format=prompt_format
    ).splits["train"]
    model, tokenizer = tiny_model()
    trainer = make_trainer(fmt_rows, tiny(), tmp_path, model=model, tokenizer=tokenizer)
    assert len(trainer.train_dataset) == len(fmt_rows) == 8
    for row, ex in zip(fmt_rows, trainer.train_dataset, strict=True):
        ids, n_prompt = tokenize_like_trl(tokenizer, row["prompt"], row["completion"])
        assert ex["input_ids"] == ids
        assert ex["labels"] == [-100] * n_prompt + ids[n_prompt:]
        assert ids[-1] == tokenizer.eos_token_id  # the answer ends with a trained EOS (or end of turn)


def test_label_mask_view_marks_completion_and_eos(rows):
    _, tokenizer = tiny_model()
    ids, n_prompt = tokenize_like_trl(tokenizer, "Instruction: x\nInput: y\nOutput:", " joy")
    labels = [-100] * n_prompt + ids[n_prompt:]
    view = show_label_mask(tokenizer, ids, labels)
    n_trained = len(ids) - n_prompt
    assert view.count("<- trained") == n_trained and n_trained >= 2  # " joy" + EOS
    assert view.rstrip().endswith("(EOS)")
    assert f"{n_trained} trained" in view.splitlines()[0]


def test_supervised_token_check_drops_truncated_examples(rows, tmp_path):
    model, tokenizer = tiny_model()
    short = {"prompt": "Instruction: x\nInput: short\nOutput:", "completion": " joy", "id": "short"}
    long = {
        "prompt": "Instruction: x\nInput: " + "word " * 200 + "\nOutput:",
        "completion": " joy",
        "id": "long",
    }
    ids, n_prompt = tokenize_like_trl(tokenizer, long["prompt"], long["completion"])
    max_length = n_prompt - 5  # the long prompt alone overflows it; the short example fits
    assert len(tokenize_like_trl(tokenizer, short["prompt"], short["completion"])[0]) < max_length
    kept, dropped = check_supervised_tokens([short, long, short], tokenizer, max_length)
    assert dropped == 1 and [r["id"] for r in kept] == ["short", "short"]
    # TRL silently drops the same example: the kit's count agrees with it
    trainer = make_trainer(
        [short, long, short], tiny(max_length=max_length), tmp_path, model=model, tokenizer=tokenizer
    )
    assert len(trainer.train_dataset) == 2
    # a completion cut short but not away is kept (the prompt fits, EOS does not)
    kept, dropped = check_supervised_tokens([long], tokenizer, n_prompt + 1)
    assert dropped == 0 and len(kept) == 1
    with pytest.raises(
        ValueError, match=r"max_length 4 is shorter than every prompt.*shortest prompt is \d+ tokens"
    ):
        check_supervised_tokens([short, long], tokenizer, 4)


# ---------------------------------------------------------------- configuration


def test_configs_use_paper_defaults_and_fp32_on_cpu(tmp_path):
    params = TrainParams(run_name="x")
    assert (params.lora_r, params.lora_alpha, params.lora_dropout) == (8, 16, 0.05)
    assert (params.learning_rate, params.warmup_ratio, params.num_train_epochs) == (1e-4, 0.1, 5.0)
    assert params.effective_batch_size == 64
    precision = models.choose_precision()
    assert precision.device == "cpu" and not precision.bf16 and not precision.fp16
    config = build_sft_config(params, tmp_path, precision=precision, n_examples=640)
    assert config.bf16 is False and config.fp16 is False
    assert config.completion_only_loss is True and config.max_length == 512
    assert config.gradient_checkpointing is False  # CPU: recomputation only costs time
    assert config.seed == 0 and config.data_seed == 0 and config.warmup_steps == 0.1
    assert config.train_sampling_strategy == "batch_rebalance"
    assert config.logging_steps == 1 and config.save_steps == 5  # 50 steps: ~50 log points, ~10 checkpoints
    lora = build_lora_config()
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (8, 16, 0.05)
    assert set(lora.target_modules) == {"q_proj", "v_proj"}
    assert build_lora_config(target_modules="all-linear").target_modules == "all-linear"
    assert set(build_lora_config(target_modules="q_proj, k_proj").target_modules) == {"q_proj", "k_proj"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("lora_r", 0), ("lora_dropout", 1.0), ("learning_rate", 0), ("per_device_train_batch_size", 0)],
)
def test_params_out_of_range_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainParams(run_name="x", **{field: value}).validate()


def test_compact_lm_head_gives_trl_loss_and_gradients(rows, tmp_path):
    trainer = make_trainer(rows[:8], tiny(), tmp_path)
    model = trainer.model
    model.train()
    for layer in model.base_model.model.model.layers:
        for proj in (layer.self_attn.q_proj, layer.self_attn.v_proj):
            proj.lora_dropout["default"] = torch.nn.Identity()  # deterministic forward
            torch.nn.init.normal_(proj.lora_B["default"].weight, std=0.02)  # make LoRA contribute
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    grads = {}
    for compact in (True, False):
        trainer.use_compact_lm_head = compact
        model.zero_grad()
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        grads[compact] = (
            loss.item(),
            {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
        )
    assert grads[True][0] == pytest.approx(grads[False][0], rel=1e-5)
    assert grads[True][1].keys() == grads[False][1].keys() and len(grads[True][1]) > 4
    for name, g in grads[True][1].items():
        assert torch.allclose(g, grads[False][1][name], atol=1e-5, rtol=1e-4), name


def test_length_sorting_keeps_each_steps_examples(rows, tmp_path):
    """batch_rebalance (seeded with the run's seed) sees the same examples per step as TRL's random order."""

    def windows(sort: bool, seed: int = 0):
        params = tiny(
            sort_by_length=sort, gradient_accumulation_steps=4, per_device_train_batch_size=2, seed=seed
        )
        trainer = make_trainer(rows, params, tmp_path / f"{sort}{seed}")
        loader = trainer.get_train_dataloader()
        if sort:
            micro = list(iter(loader.batch_sampler))
        else:
            order = list(iter(loader.batch_sampler.sampler))
            micro = [order[i : i + 2] for i in range(0, len(order), 2)]
        steps = [sum(micro[i : i + 4], []) for i in range(0, len(micro), 4)]
        lengths = [len(ex) for ex in trainer.train_dataset["input_ids"]]
        padded = sum(len(m) * max(lengths[j] for j in m) for m in micro)
        return [sorted(s) for s in steps], padded

    sorted_steps, sorted_padded = windows(True)
    random_steps, random_padded = windows(False)
    assert sorted_steps == random_steps  # same examples in every optimizer step
    assert sorted_padded < random_padded  # fewer padded tokens
    assert windows(True, seed=1)[0] != sorted_steps  # the run's seed decides the order


def test_group_by_length_pads_least_and_keeps_lengths_in_random_order(rows, tmp_path):
    """group_by_length: every example once per epoch, less padding than within-step sorting, seeded, not monotone."""
    from socialite_utils.training.trainer import LengthBucketSampler

    params = tiny(group_by_length=True, gradient_accumulation_steps=4, per_device_train_batch_size=2, seed=0)
    trainer = make_trainer(rows, params, tmp_path / "group")
    loader = trainer.get_train_dataloader()
    sampler = loader.batch_sampler.sampler
    assert isinstance(sampler, LengthBucketSampler)
    lengths = [len(ex) for ex in trainer.train_dataset["input_ids"]]
    order = list(iter(sampler))
    assert sorted(order) == list(range(len(lengths)))  # nothing dropped or repeated
    micro = [order[i : i + 2] for i in range(0, len(order), 2)]
    padded = sum(len(m) * max(lengths[j] for j in m) for m in micro)
    rebalance = make_trainer(
        rows, tiny(gradient_accumulation_steps=4, per_device_train_batch_size=2), tmp_path / "r"
    )
    re_micro = list(iter(rebalance.get_train_dataloader().batch_sampler))
    assert padded < sum(len(m) * max(lengths[j] for j in m) for m in re_micro)

    # Hand-made case: 4 lengths x 3 copies, batches of 3, one window: each batch holds one length, and the
    # batches' order is shuffled, not longest-first; the epoch and the seed change it, a rerun does not.
    toy = LengthBucketSampler([10, 20, 30, 40] * 3, batch_size=3, seed=0)
    batches = [list(iter(toy))[i : i + 3] for i in range(0, 12, 3)]
    assert all(len({[10, 20, 30, 40][j % 4] for j in b}) == 1 for b in batches)
    epochs = set()
    for epoch in range(6):
        toy.set_epoch(epoch)
        epochs.add(
            tuple([10, 20, 30, 40][b[0] % 4] for b in [list(iter(toy))[i : i + 3] for i in range(0, 12, 3)])
        )
    assert len(epochs) > 1 and any(list(e) != sorted(e, reverse=True) for e in epochs)
    toy.set_epoch(0)
    assert list(iter(toy)) == list(iter(LengthBucketSampler([10, 20, 30, 40] * 3, batch_size=3, seed=0)))
    assert list(iter(toy)) != list(iter(LengthBucketSampler([10, 20, 30, 40] * 3, batch_size=3, seed=1)))


def test_progress_replaces_transformers_bars_and_logs_one_line(rows, tmp_path):
    from transformers import ProgressCallback

    trainer = make_trainer(rows[:8], tiny(), tmp_path)
    _use_kit_progress(trainer)
    kinds = [type(cb).__name__ for cb in trainer.callback_handler.callbacks]
    assert "KitProgressCallback" in kinds and "ProgressCallback" not in kinds
    assert "NotebookProgressCallback" not in kinds
    assert not any(isinstance(cb, ProgressCallback) for cb in trainer.callback_handler.callbacks)
    assert isinstance(trainer.callback_handler.callbacks[-1], KitProgressCallback)

    class State:
        global_step, max_steps = 3, 10

    logs = {"loss": 1.23456, "learning_rate": 1e-4, "mean_token_accuracy": 0.5}
    line = format_log_line(logs, State)
    # one line with the step and every logged value, read back within its printed precision
    assert "\n" not in line and "3/10" in line
    values = [float(v) for v in re.findall(r"\d+\.\d+(?:e[-+]\d+)?", line)]
    assert values == pytest.approx([1.23456, 1e-4, 0.5], rel=1e-3)


# ---------------------------------------------------------------- resume


def test_resume_continues_from_the_last_checkpoint(rows, runs_dir):
    settings = {
        "max_steps": 6,
        "save_steps": 3,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 2,
    }
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_lora(
            tiny(run_name="res", **settings), rows, callbacks=[StepRecorder(crash_at=5)], verbose=False
        )
    partial = runs_dir / "res.partial"
    assert not (runs_dir / "res").exists()  # a crashed run is never mistaken for a finished one
    assert (partial / "checkpoints" / "checkpoint-3").is_dir()

    with pytest.raises(FileExistsError, match="set resume=True"):  # a fresh start would clobber it
        train_lora(tiny(run_name="res", **settings), rows, verbose=False)
    with pytest.raises(ValueError, match="learning_rate"):  # resuming with other params is refused
        train_lora(tiny(run_name="res", resume=True, **{**settings, "learning_rate": 1e-3}), rows)

    with pytest.raises(ValueError, match="training rows differ"):  # ...or with other data
        train_lora(tiny(run_name="res", resume=True, **settings), rows[:-1])

    recorder = StepRecorder()
    result = train_lora(
        tiny(run_name="res", resume=True, **settings), rows, callbacks=[recorder], verbose=False
    )
    assert recorder.steps == [4, 5, 6]  # continues at step 4, does not restart at 1
    assert result.global_step == 6 and result.resumed_from.endswith("checkpoint-3")
    assert (runs_dir / "res" / "adapter" / "adapter_model.safetensors").exists()
    assert not partial.exists()
    # the resumed run is the uninterrupted run: same data order (across the epoch boundary), same RNG
    straight = train_lora(tiny(run_name="straight", **settings), rows, verbose=False)
    assert [s for s, _ in loss_points(result.log_history)] == [1, 2, 3, 4, 5, 6]
    resumed_losses = [v for _, v in loss_points(result.log_history)]
    assert resumed_losses == pytest.approx([v for _, v in loss_points(straight.log_history)], abs=1e-6)
    # ...and reports the whole run's mean loss, not the mean of the resumed steps 4-6 only
    assert result.train_loss == pytest.approx(straight.train_loss, rel=1e-6)
    assert result.train_loss == pytest.approx(sum(resumed_losses) / 6, rel=1e-6)
    # ...and counts the tokens trained on from the start, not from the checkpoint
    assert _num_tokens(result) == _num_tokens(straight) and min(_num_tokens(straight)) > 0


def _num_tokens(result) -> list[float]:
    return [h["num_tokens"] for h in result.log_history if "num_tokens" in h and h["step"] >= 4]


class CrashAtEnd(TrainerCallback):
    """Stops the run after its last step and checkpoint, where a kill while the run is written would."""

    def on_train_end(self, args, state, control, **kwargs):
        raise RuntimeError("killed while the run was written")


def test_resume_after_the_last_checkpoint_writes_the_run_without_another_step(rows, runs_dir):
    settings = {
        "max_steps": 6,
        "save_steps": 3,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 2,
    }
    with pytest.raises(RuntimeError, match="killed while the run was written"):
        train_lora(tiny(run_name="late", **settings), rows, callbacks=[CrashAtEnd()], verbose=False)
    assert (runs_dir / "late.partial" / "checkpoints" / "checkpoint-6").is_dir()
    recorder = StepRecorder()
    result = train_lora(
        tiny(run_name="late", resume=True, **settings), rows, callbacks=[recorder], verbose=False
    )
    straight = train_lora(tiny(run_name="straight-late", **settings), rows, verbose=False)
    assert recorder.steps == [] and result.global_step == 6  # not 7 of 6
    assert result.train_loss == pytest.approx(straight.train_loss, rel=1e-6)
    assert [h["num_tokens"] for h in result.log_history if "num_tokens" in h][-1] == pytest.approx(
        [h["num_tokens"] for h in straight.log_history if "num_tokens" in h][-1]
    )
    tokenizer = load_run_tokenizer(runs_dir / "late")
    batch = tokenizer([r["prompt"] for r in rows[:2]], return_tensors="pt", padding=True)
    with torch.no_grad():
        late, fresh = (
            load_adapter(runs_dir / "late")(**batch).logits,
            load_adapter(runs_dir / "straight-late")(**batch).logits,
        )
    assert torch.allclose(late, fresh, atol=1e-6)


# ---------------------------------------------------------------- bad input, before training


def test_resume_without_checkpoint_is_refused(rows, runs_dir):
    with pytest.raises(ValueError, match="no checkpoint"):
        train_lora(tiny(run_name="fresh", resume=True), rows)
    assert nothing_written(runs_dir)


class KilledAtStart(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        raise KeyboardInterrupt


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_killed_before_its_first_checkpoint_starts_again(rows, runs_dir, resume, capsys):
    with pytest.raises(KeyboardInterrupt):
        train_lora(tiny(run_name="early"), rows, callbacks=[KilledAtStart()], verbose=False)
    assert (runs_dir / "early.partial" / "params.json").is_file()  # left with no checkpoint
    result = train_lora(
        tiny(run_name="early", resume=resume), rows
    )  # neither refused nor sent to the other flag
    assert (
        result.global_step == 4 and result.resumed_from is None and not (runs_dir / "early.partial").exists()
    )
    assert (
        "was left before its first complete checkpoint (no checkpoint): starting the run again"
        in capsys.readouterr().out
    )


def test_unknown_base_model_names_the_presets(rows, runs_dir):
    with pytest.raises(ValueError, match="base_model") as err:
        train_lora(tiny(base_model="not-a-model"), rows)
    assert "tiny-random" in str(err.value) and "smollm2-135m" in str(err.value)
    assert nothing_written(runs_dir)


def test_max_length_shorter_than_every_prompt(rows, runs_dir):
    with pytest.raises(ValueError, match="max_length 6 is shorter than every prompt"):
        train_lora(tiny(max_length=6), rows, verbose=False)
    assert nothing_written(runs_dir)


def test_data_run_without_train_examples(runs_dir):
    run = runs_dir / "empty-data"
    (run / "data").mkdir(parents=True)
    (run / "data" / "train.jsonl").write_text("")
    with pytest.raises(ValueError, match="has no train examples"):
        load_training_rows("empty-data")
    with pytest.raises(ValueError, match="has no train examples"):
        train_lora(TrainParams(run_name="t", data_run="empty-data", base_model="tiny-random"))
    with pytest.raises(FileNotFoundError, match="run notebook 01 first"):
        load_training_rows("missing-data")
    assert sorted(p.name for p in runs_dir.iterdir()) == ["empty-data"]


def test_bad_rows_name_the_line(runs_dir, rows):
    run = runs_dir / "bad-data"
    (run / "data").mkdir(parents=True)
    lines = [json.dumps(rows[0]), json.dumps({"id": "x:train:2", "prompt": "Instruction: hi\nOutput:"})]
    (run / "data" / "train.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ValueError, match=r"train.jsonl: line 2 \(id x:train:2\): missing field\(s\) \['completion'\]"
    ):
        load_training_rows("bad-data")


def test_existing_run_is_not_overwritten(rows, runs_dir):
    (runs_dir / "done").mkdir(parents=True)
    with pytest.raises(RunExistsError, match="already exists"):
        train_lora(tiny(run_name="done"), rows)
    assert sorted(p.name for p in runs_dir.iterdir()) == ["done"]


def test_report_to_tensorboard_writes_events_with_the_loss(rows, runs_dir):
    """report_to passes through to SFTConfig; TensorBoard's event files are kept in the run and hold the loss."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert build_sft_config(tiny(), runs_dir / "o").report_to == []  # "none": nothing leaves the machine
    assert build_sft_config(tiny(report_to=["tensorboard", "mlflow"]), runs_dir / "o").report_to == [
        "tensorboard",
        "mlflow",
    ]
    with pytest.raises(ValueError, match="report_to"):
        tiny(report_to="tensorbord").validate()
    result = train_lora(tiny(run_name="tb", max_steps=4, report_to="tensorboard"), rows, verbose=False)
    event_files = list((result.run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert event_files, "no TensorBoard event files in the run"
    acc = EventAccumulator(str(event_files[0].parent)).Reload()
    losses = [e.value for e in acc.Scalars("train/loss")]
    logged = [h["loss"] for h in result.log_history if "loss" in h]
    assert len(losses) == len(logged) == 4 and losses == pytest.approx(logged, rel=1e-5)
