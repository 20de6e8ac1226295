"""Bad input and interruptions in training and evaluation, through the public API.

Each case asserts the kit's message and that nothing was written or lost: a kill while a checkpoint is saved,
the whole run's train_loss after a resume, over-long test texts, an incomplete adapter directory, and hub ids
while offline.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import torch
from conftest import TRAIN_TASKS
from transformers import TrainerCallback

from socialite_utils import tokens
from socialite_utils.data.assembly import build_data
from socialite_utils.registry import load_registry
from socialite_utils.runs import runs_root_at
from socialite_utils.training import KitSFTTrainer, TrainParams, loss_points, train_lora

TASKS = TRAIN_TASKS


@pytest.fixture(scope="module")
def rows(train_rows) -> list[dict]:
    return [dict(r) for r in train_rows]  # a copy per module: a test may change its rows


def tiny(**overrides) -> TrainParams:
    base = {
        "run_name": "t",
        "base_model": "tiny-random",
        "max_steps": 9,
        "save_steps": 3,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 2,
        "learning_rate": 3e-3,
        "logging_steps": 2,  # not a divisor of save_steps: the kit must still log at every checkpoint
        "save_total_limit": 3,
    }
    return TrainParams(**{**base, **overrides})


def tree(root) -> dict[str, int]:
    """Every file under ``root`` with its size: to show that a failed call changed nothing."""
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


class KilledWhileSaving(Exception):
    """Stands for SIGKILL: raised half-way through writing a checkpoint, after the files written so far."""


def kill_during_save(monkeypatch, at_step: int, *, truncate: str | None) -> None:
    """Make transformers' own checkpoint save of step ``at_step`` stop after the optimizer is written.

    The adapter, tokenizer and optimizer files are real (transformers wrote them); ``truncate`` cuts one of them
    to half its size as a kill during its write would; scheduler.pt, rng_state.pth and trainer_state.json (written
    after them) never appear.
    """
    real = KitSFTTrainer._save_optimizer_and_scheduler

    def save(self, output_dir):
        real(self, output_dir)
        if self.state.global_step == at_step:
            out = Path(output_dir)
            (out / "scheduler.pt").unlink()
            if truncate:
                data = (out / truncate).read_bytes()
                (out / truncate).write_bytes(data[: len(data) // 2])
            raise KilledWhileSaving(f"killed while saving checkpoint-{at_step}")

    monkeypatch.setattr(KitSFTTrainer, "_save_optimizer_and_scheduler", save)


# ---------------------------------------------------------------- LoRA settings refused before .partial exists


def _notebook_02_steps(params: TrainParams, rows: list[dict]):
    """Notebook 02's training cell, step by step, up to the first write (``start_partial_run``)."""
    from socialite_utils.training import (
        check_target_modules,
        keep_trainable_rows,
        load_training_model,
        lora_config_for,
        plan_training,
        start_partial_run,
    )

    plan = plan_training(params, rows, verbose=False)
    setup = load_training_model(plan, verbose=False)
    keep_trainable_rows(plan, setup, verbose=False)
    lora_config = lora_config_for(params)
    check_target_modules(setup.model, lora_config.target_modules)
    start_partial_run(plan, setup)
    return plan, setup, lora_config


def test_an_unknown_lora_target_is_refused_before_the_run_writes_anything(rows, runs_dir):
    with pytest.raises(ValueError) as exc:
        _notebook_02_steps(tiny(run_name="targets", lora_target_modules=["q_proj", "nope"]), rows)
    assert str(exc.value) == (
        "lora_target_modules: ['nope'] match no module of the base model (LlamaForCausalLM); its linear layers: "
        "down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj (or 'all-linear'). Nothing was "
        "written: fix lora_target_modules and run again"
    )
    assert not (runs_dir / "targets.partial").exists() and not (runs_dir / "targets").exists()
    # the fixed rerun starts fresh: nothing to resume, nothing refused
    plan, *_ = _notebook_02_steps(tiny(run_name="targets", lora_target_modules="q_proj,v_proj"), rows)
    assert plan.resume_from is None and (runs_dir / "targets.partial" / "params.json").is_file()


def test_target_modules_match_as_peft_matches_them():
    from socialite_utils.training import check_target_modules, linear_layer_names

    model = torch.nn.Sequential()
    block = torch.nn.Module()
    block.q_proj, block.act = torch.nn.Linear(2, 2), torch.nn.ReLU()
    model.add_module("block", block)
    assert linear_layer_names(model) == ["q_proj"]
    for ok in (["q_proj"], ["block.q_proj"], {"act"}, "all-linear", r"block\.q_.*", None):
        check_target_modules(model, ok)
    for bad, missing in (
        (["proj"], "['proj']"),
        (["q_proj", "x.q_proj"], "['x.q_proj']"),
        ("q_.*", "['q_.*']"),
    ):
        with pytest.raises(ValueError, match=re.escape(f"lora_target_modules: {missing} match no module")):
            check_target_modules(model, bad)
    with pytest.raises(ValueError, match=r"lora_target_modules '\(' is not a valid regular expression"):
        check_target_modules(model, "(")


def test_a_fractional_lora_rank_is_refused_before_anything_is_written(rows, runs_dir):
    with pytest.raises(ValueError, match=re.escape("TrainParams.lora_r = 2.5: expected an integer")):
        train_lora(tiny(run_name="rank", lora_r=2.5), rows, verbose=False)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


# ---------------------------------------------------------------- 3. kill during a checkpoint save


@pytest.mark.parametrize("truncate", ["optimizer.pt", "adapter_model.safetensors"])
def test_resume_skips_a_checkpoint_killed_while_saving(rows, runs_dir, monkeypatch, capsys, truncate):
    with monkeypatch.context() as mp:
        kill_during_save(mp, 6, truncate=truncate)
        with pytest.raises(KilledWhileSaving):
            train_lora(tiny(run_name="res"), rows, verbose=False)
    checkpoints = runs_dir / "res.partial" / "checkpoints"
    partial6 = checkpoints / "checkpoint-6"
    assert (checkpoints / "checkpoint-3" / "trainer_state.json").is_file()
    assert (partial6 / "adapter_model.safetensors").is_file() and not (
        partial6 / "trainer_state.json"
    ).exists()
    assert not (runs_dir / "res").exists()

    capsys.readouterr()
    result = train_lora(tiny(run_name="res", resume=True), rows, verbose=True)
    out = capsys.readouterr().out
    why = f"{truncate} is truncated"
    assert f"skipping incomplete checkpoint-6 ({why}" in out
    assert "resuming from checkpoint-3, the newest complete checkpoint" in out
    assert result.resumed_from.endswith("checkpoint-3") and result.global_step == 9
    assert not (runs_dir / "res.partial").exists() and (runs_dir / "res" / "adapter").is_dir()

    # the resumed run is the uninterrupted run, loss for loss
    straight = train_lora(tiny(run_name="straight"), rows, verbose=False)
    assert [s for s, _ in loss_points(result.log_history)] == [
        s for s, _ in loss_points(straight.log_history)
    ]
    assert [v for _, v in loss_points(result.log_history)] == pytest.approx(
        [v for _, v in loss_points(straight.log_history)], abs=1e-6
    )


KILL_DURING_SAVE = """
import io, json, os, signal, sys
import torch
from socialite_utils.training import TrainParams, train_lora

rows, params = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
real_save = torch.save

def save(obj, f, *args, **kwargs):  # SIGKILL half-way through writing checkpoint-6's optimizer.pt
    if str(f).endswith("checkpoint-6/optimizer.pt"):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        with open(f, "wb") as out:
            out.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)

torch.save = save
train_lora(TrainParams(**params), rows, verbose=False)
"""


def test_a_process_killed_while_saving_resumes_from_the_previous_checkpoint(rows, runs_dir, tmp_path, capsys):
    import os
    import signal
    import subprocess
    import sys

    (tmp_path / "rows.json").write_text(json.dumps(rows))
    (tmp_path / "params.json").write_text(json.dumps(tiny(run_name="killed").to_dict()))
    env = {**os.environ, "SOCIALITE_RUNS_DIR": str(runs_dir)}
    child = subprocess.run(
        [sys.executable, "-c", KILL_DURING_SAVE, str(tmp_path / "rows.json"), str(tmp_path / "params.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    partial6 = runs_dir / "killed.partial" / "checkpoints" / "checkpoint-6"
    assert (partial6 / "adapter_model.safetensors").is_file() and (partial6 / "optimizer.pt").is_file()
    assert not (partial6 / "scheduler.pt").exists() and not (partial6 / "trainer_state.json").exists()

    capsys.readouterr()
    result = train_lora(tiny(run_name="killed", resume=True), rows, verbose=True)
    out = capsys.readouterr().out
    assert "skipping incomplete checkpoint-6 (optimizer.pt is truncated" in out
    assert result.resumed_from.endswith("checkpoint-3") and result.global_step == 9
    straight = train_lora(tiny(run_name="straight"), rows, verbose=False)
    assert result.train_loss == pytest.approx(straight.train_loss, rel=1e-6)


def test_empty_checkpoint_dirs_only_start_the_run_again_and_say_why(rows, runs_dir, capsys):
    with pytest.raises(RuntimeError, match="crash"):
        train_lora(tiny(run_name="empty", max_steps=9), rows, verbose=False, callbacks=[_Crash(2)])
    checkpoints = runs_dir / "empty.partial" / "checkpoints"
    (checkpoints / "checkpoint-3").mkdir(parents=True)  # killed right after mkdir
    result = train_lora(tiny(run_name="empty", max_steps=9, resume=True), rows)
    assert result.resumed_from is None and result.global_step == 9
    assert "before its first complete checkpoint (incomplete checkpoint-3 (the directory is empty))" in (
        capsys.readouterr().out
    )
    assert not (runs_dir / "empty.partial").exists() and (runs_dir / "empty" / "adapter").is_dir()


class _Crash(TrainerCallback):
    """Fails at one step: a crash between checkpoints."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("crash")


# ---------------------------------------------------------------- 4. the whole run's train_loss


def test_resumed_run_reports_the_whole_runs_train_loss(rows, runs_dir):
    with pytest.raises(RuntimeError, match="crash"):
        train_lora(tiny(run_name="half"), rows, verbose=False, callbacks=[_Crash(8)])
    resumed = train_lora(tiny(run_name="half", resume=True), rows, verbose=False)
    assert resumed.resumed_from.endswith("checkpoint-6")
    straight = train_lora(tiny(run_name="whole"), rows, verbose=False)
    assert straight.train_loss == pytest.approx(
        sum(v * n for v, n in _spans(straight.log_history)) / 9, rel=1e-6
    )
    assert resumed.train_loss == pytest.approx(straight.train_loss, rel=1e-6)
    for run, result in (("half", resumed), ("whole", straight)):
        summary = json.loads((runs_dir / run / "train_summary.json").read_text())
        assert summary["train_loss"] == pytest.approx(result.train_loss, rel=1e-9)
        log = [json.loads(line) for line in (runs_dir / run / "train_log.jsonl").read_text().splitlines()]
        assert log[-1]["train_loss"] == pytest.approx(straight.train_loss, rel=1e-6)
    # the checkpoint steps are logged even though logging_steps=2 does not divide save_steps=3
    assert {3, 6, 9} <= {s for s, _ in loss_points(resumed.log_history)}


def _spans(history):
    last = 0
    for step, value in loss_points(history):
        yield value, step - last
        last = step


# ---------------------------------------------------------------- evaluation inputs


@pytest.fixture(scope="module")
def eval_runs(tmp_path_factory, bundle_dir) -> Path:
    """A runs/ root with a small data run ("data": 2 tasks, 3 test rows each) and a 2-step training run ("train")."""
    from socialite_utils.data.assembly import write_data_run
    from socialite_utils.registry import select_tasks

    root = tmp_path_factory.mktemp("eval-runs")
    tasks = select_tasks(load_registry("local"), ["tweet_irony", "tweet_stance"])
    data = build_data(tasks, data_dir=bundle_dir, max_train_per_task=8, max_eval_per_task=3)
    with runs_root_at(root):
        write_data_run("data", data, params={"suite": "local"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOCIALITE_RUNS_DIR", str(root))
        train_lora(tiny(run_name="train", data_run="data", max_steps=2, save_steps=100), verbose=False)
    return root


def copy_runs(eval_runs: Path, runs_dir: Path) -> Path:
    shutil.copytree(eval_runs, runs_dir)
    return runs_dir


# ---------------------------------------------------------------- 8. incomplete adapter directory


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("delete adapter_model.safetensors", r"adapter/adapter_model.safetensors is missing"),
        ("delete tokenizer.json", r"adapter/tokenizer.json is missing"),
        (
            "truncate adapter_model.safetensors",
            r"adapter/adapter_model.safetensors is truncated \(\d+ of \d+ bytes\)",
        ),
    ],
)
def test_incomplete_adapter_is_named_by_the_plan_check(eval_runs, runs_dir, monkeypatch, damage, message):
    from socialite_utils import models
    from socialite_utils.evaluation import EvalParams, evaluate_run

    copy_runs(eval_runs, runs_dir)
    action, name = damage.split()
    path = runs_dir / "train" / "adapter" / name
    if action == "delete":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:-100])
    before = tree(runs_dir)
    monkeypatch.setattr(models, "load_model", _no_model_load)
    with pytest.raises(
        FileNotFoundError, match=rf"train run .*train has an incomplete LoRA adapter: .*{message}"
    ):
        evaluate_run(EvalParams(run_name="ev", data_run="data", train_run="train"), verbose=False)
    assert tree(runs_dir) == before


def _no_model_load(*args, **kwargs):
    raise AssertionError("a model was loaded before the inputs were checked")


# ---------------------------------------------------------------- 9. hub ids while offline


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_hub_id_not_in_cache_fails_at_once(tmp_path, monkeypatch, variable):
    from socialite_utils import models

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(variable, "1")
    start = time.monotonic()
    with pytest.raises(models.ModelOfflineError) as err:
        models.load_model("nobody/not-cached", cache_dir=tmp_path / "hf")
    assert time.monotonic() - start < 3
    msg = str(err.value)
    assert f"the Hugging Face hub is offline ({variable}=1 is set)" in msg
    assert "'nobody/not-cached' is not in the local cache" in msg and str(tmp_path / "hf") in msg
    assert "hf download nobody/not-cached --local-dir DIR" in msg and "base_model='DIR'" in msg
    assert not (tmp_path / "hf").exists()  # nothing was created


def test_offline_hub_id_is_refused_by_the_training_and_evaluation_checks(eval_runs, runs_dir, monkeypatch):
    from socialite_utils import models
    from socialite_utils.evaluation import EvalParams, evaluate_run

    copy_runs(eval_runs, runs_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "load_model", _no_model_load)
    before = tree(runs_dir)
    start = time.monotonic()
    with pytest.raises(models.ModelOfflineError, match="'nobody/not-cached' is not in the local cache"):
        train_lora(tiny(run_name="hub", data_run="data", base_model="nobody/not-cached"), verbose=False)
    with pytest.raises(models.ModelOfflineError, match="'nobody/not-cached' is not in the local cache"):
        evaluate_run(
            EvalParams(run_name="ev", data_run="data", train_run=None, base_model="nobody/not-cached"),
            verbose=False,
        )
    assert time.monotonic() - start < 5
    assert tree(runs_dir) == before


def test_no_network_is_detected_quickly_and_cached_ids_still_load(tmp_path, monkeypatch):
    """No offline variable, but the hub endpoint cannot be reached: a cached id loads, an uncached one fails fast."""
    import huggingface_hub.constants as hub_constants

    from socialite_utils import models

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused at once
    monkeypatch.setattr(models, "_NETWORK_PROBE", {})
    assert models.hub_offline_reason().startswith("127.0.0.1:9 cannot be reached")

    cache = tmp_path / "hf"
    tok = models.load_tiny_tokenizer()
    saved = models.build_tiny_model(tok, seed=1)
    sha = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "models--someone--cached-model" / "snapshots" / sha
    saved.save_pretrained(snapshot)
    tok.save_pretrained(snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(sha)
    start = time.monotonic()
    model, _ = models.load_model("someone/cached-model", cache_dir=cache)
    assert time.monotonic() - start < 10
    assert torch.equal(model.lm_head.weight, saved.lm_head.weight)
    with pytest.raises(models.ModelOfflineError, match=r"offline \(127.0.0.1:9 cannot be reached"):
        models.load_model("someone/other-model", cache_dir=cache)


# ---------------------------------------------------------------- 6. over-long test texts

HUGE = 100_000  # characters: ~35k tokens, a prompt far beyond tiny-random's 1,024 positions


def write_long_data_run(root: Path, bundle_dir: Path) -> tuple[str, str]:
    """Data run "long": tweet_irony and tweet_stance, 3 test rows each; one irony text of HUGE characters and one
    stance pair whose text (HUGE) and target (3,000 characters) are both too long. Returns their ids."""
    from socialite_utils.data.assembly import write_data_run
    from socialite_utils.prompts import render_prompt
    from socialite_utils.registry import select_tasks

    registry = load_registry("local")
    tasks = select_tasks(registry, ["tweet_irony", "tweet_stance"])
    data = build_data(tasks, data_dir=bundle_dir, max_train_per_task=8, max_eval_per_task=3)
    test = data.splits["test"]
    irony = next(r for r in test if r["task"] == "tweet_irony")
    stance = next(r for r in test if r["task"] == "tweet_stance")
    irony["text"] = ("All good, said nobody ever. " * 4000)[:HUGE]
    stance["text"] = ("Another long rant about the target. " * 3000)[:HUGE]
    stance["text_b"] = ("Target words " * 300)[:3000]
    for row in (irony, stance):
        row["prompt"] = render_prompt(registry[row["task"]], row["text"], row.get("text_b"))
    with runs_root_at(root):
        write_data_run("long", data, params={"suite": "local"})
    return irony["id"], stance["id"]


@pytest.mark.parametrize("mode", ["score", "generate"])
def test_long_texts_are_cut_to_the_context_and_counted(eval_runs, runs_dir, bundle_dir, mode):
    from socialite_utils.evaluation import EvalParams, evaluate_run, load_eval_run
    from socialite_utils.evaluation.truncation import format_truncation

    copy_runs(eval_runs, runs_dir)
    long_ids = write_long_data_run(runs_dir, bundle_dir)
    params = EvalParams(
        run_name="ev", data_run="long", train_run="train", mode=mode, max_new_tokens=4, bootstrap_samples=20
    )
    evaluate_run(params, verbose=False)
    ev = load_eval_run("ev")
    metrics, preds = ev.metrics, ev.predictions
    assert metrics["settings"]["max_length"] == 1024  # tiny-random's context length, the default
    assert {t: e["n_truncated"] for t, e in metrics["tasks"].items()} == {"tweet_irony": 1, "tweet_stance": 1}
    assert format_truncation(metrics) == (
        "texts cut to fit max_length 1024 tokens: tweet_irony 1 of 3, tweet_stance 1 of 3"
    )
    for p in preds:
        assert (p["truncated_tokens"] > 30_000) == (p["id"] in long_ids), p["id"]
        if p["id"] in long_ids:
            assert len(p["text"]) == HUGE  # predictions keep the example's whole text


def test_only_the_examples_own_text_is_cut(eval_runs, runs_dir, bundle_dir):
    """Instruction and answer cue stay whole; a pair's longer text is cut first; prompt + answer fit max_length."""
    from socialite_utils.evaluation import EvalParams, build_eval_plan
    from socialite_utils.evaluation.truncation import fit_eval_items
    from socialite_utils.training import load_run_tokenizer

    copy_runs(eval_runs, runs_dir)
    irony_id, stance_id = write_long_data_run(runs_dir, bundle_dir)
    plan = build_eval_plan(EvalParams(run_name="ev", data_run="long", train_run="train"))
    tokenizer = load_run_tokenizer(runs_dir / "train")
    fitted = fit_eval_items(plan.items, tokenizer, 300, mode="generate", max_new_tokens=20)
    by_id = {it.row["id"]: (before, it) for before, it in zip(plan.items, fitted, strict=True)}
    for before, it in by_id.values():
        assert len(tokens.encode_prompt(tokenizer, it.prompt)) <= 300 - 20
        if it.row["id"] not in (irony_id, stance_id):
            assert it.prompt is before.prompt and it.truncated_tokens == 0
    before, it = by_id[irony_id]
    head = before.prompt.split("\nInput: ")[0] + "\nInput: "
    assert it.prompt.startswith(head) and it.prompt.endswith("\nOutput:")
    kept = it.prompt[len(head) : -len("\nOutput:")]
    assert 100 < len(kept) < 2000 and it.row["text"].startswith(kept)
    before, it = by_id[stance_id]
    text_part, target_part = it.prompt[len(before.prompt.split("\nInput: ")[0] + "\nInput: ") :].split(
        "\nTarget: "
    )
    assert it.row["text"].startswith(text_part) and it.row["text_b"].startswith(
        target_part[: -len("\nOutput:")]
    )
    n_text = len(tokenizer(text_part, add_special_tokens=False)["input_ids"])
    n_target = len(tokenizer(target_part[: -len("\nOutput:")], add_special_tokens=False)["input_ids"])
    assert abs(n_text - n_target) <= 3  # longest first: both cut down to about the same length


def test_max_length_without_room_for_the_text_is_refused_and_nothing_written(eval_runs, runs_dir, bundle_dir):
    from socialite_utils.evaluation import EvalParams, evaluate_run

    copy_runs(eval_runs, runs_dir)
    write_long_data_run(runs_dir, bundle_dir)
    before = tree(runs_dir)
    with pytest.raises(
        ValueError, match=r"example tweet_\w+:test:\d+ \(max_length 40, 20 tokens kept for the ans"
    ):
        evaluate_run(
            EvalParams(run_name="ev", data_run="long", train_run="train", mode="generate", max_length=40),
            verbose=False,
        )
    assert tree(runs_dir) == before
    with pytest.raises(ValueError, match=r"EvalParams.max_length = 1 is out of range"):
        evaluate_run(EvalParams(run_name="ev", data_run="long", train_run="train", max_length=1))


def test_analysis_rescoring_cuts_the_same_way(eval_runs, runs_dir, bundle_dir):
    from socialite_utils import analysis
    from socialite_utils.evaluation import EvalParams, evaluate_run

    copy_runs(eval_runs, runs_dir)
    long_ids = write_long_data_run(runs_dir, bundle_dir)
    evaluate_run(
        EvalParams(run_name="ev", data_run="long", train_run="train", mode="score", bootstrap_samples=20),
        verbose=False,
    )
    ev = analysis.load_eval_run("ev")
    rows, _ = analysis.score_sensitivity(ev, max_per_task=3, variants=[0], progress=False)
    evaluated = {(p["id"], p["model"]): p for p in ev.predictions}
    main = [r for r in rows if r["variant"] is None]
    assert {r["id"] for r in main if r["truncated_tokens"]} == set(long_ids)
    for r in main:  # the main prompt re-scored = the evaluation's scores, long examples included
        p = evaluated[(r["id"], r["model"])]
        assert r["truncated_tokens"] == p["truncated_tokens"]
        assert r["logprobs"] == pytest.approx(p["logprobs"], abs=1e-4)
    assert all(r["truncated_tokens"] > 0 for r in rows if r["id"] in long_ids)  # variants too


@pytest.mark.parametrize("fmt", ["paper", "chat"])
def test_chat_prompts_and_collapsed_whitespace_are_cut_in_place(fmt):
    """The text is found in the rendered prompt (last user message for chat, whitespace collapsed or verbatim)."""
    from socialite_utils import models
    from socialite_utils.evaluation.truncation import fit_prompt
    from socialite_utils.prompts import render_prompt
    from socialite_utils.registry import get_task

    task = get_task("tweet_irony", "local")
    tokenizer = models.load_tiny_tokenizer()
    text = "so   much\tfun " * 500  # runs of whitespace: rendered collapsed or verbatim, both are found
    prompt = render_prompt(task, text, fmt=fmt)
    fitted, cut = fit_prompt(tokenizer, prompt, text, None, 400)
    assert cut > 0 and len(tokens.encode_prompt(tokenizer, fitted)) <= 400
    content, original = (fitted, prompt) if fmt == "paper" else (fitted[-1]["content"], prompt[-1]["content"])
    head, tail = original.split("Input: ")[0] + "Input: ", original.rsplit("\n", 1)[1]
    assert content.startswith(head) and content.endswith("\n" + tail)  # instruction and answer cue intact
    kept = content[len(head) : -len(tail) - 1]
    assert " ".join(text.split()).startswith(kept) or text.startswith(kept)
    assert len(kept) > 50
