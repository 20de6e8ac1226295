"""Training on two CPU processes (``accelerate launch --multi_gpu --num_processes 2``, gloo on a CPU).

accelerate 1.15's ``--cpu --num_processes 2`` starts ONE process (several CPU processes need mpirun), so
the test launches through torchrun with ``--multi_gpu``: without a GPU each rank runs on the CPU with the
gloo backend, which is plain DDP. Checked: one run directory, complete, written once; the per-rank
accumulation halves so the effective batch stays 8; the logged losses equal a one-process run's; a run
interrupted on one process resumes on two.

Tolerance: 1e-4 relative on the loss. With dropout off both runs see the same examples per step with
the same weights and differ at most in float32 summation order. Measured here: the losses and the saved
adapters are bit-identical (two ranks all-reduce two partial gradients; a + b is exact to swap, and the
1/world scaling is a power of two). 1e-4 is the margin for more ranks or GPU kernels, whose reductions
reorder sums (~1e-6 relative per step, amplified by Adam over a few steps); a wrong split (16 instead of
8 examples per step, or both ranks on the same micro-batch) moves the loss by > 1e-3 at step 1 already.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from socialite_utils.data.assembly import build_data
from socialite_utils.registry import load_registry
from socialite_utils.runs import read_json, read_jsonl, write_jsonl
from socialite_utils.training import loss_points, train_lora
from socialite_utils.training.cli import main as train_main
from socialite_utils.training.cli import parse_overrides
from socialite_utils.training.distributed import batch_layout, world_gradient_accumulation

TASKS = ("tweet_emotion", "tweet_irony", "emobank_valence", "tweet_stance")
SETTINGS = [
    "base_model=tiny-random",
    "max_steps=4",
    "per_device_train_batch_size=4",
    "gradient_accumulation_steps=2",
    "learning_rate=3e-3",
    "lora_dropout=0.0",  # dropout masks are drawn per rank: off, so the runs are comparable step by step
    "logging_steps=1",
    "save_steps=2",
    "compact_lm_head=false",
    "torch_threads=1",
]
REL_TOL = 1e-4


def cli_args(run_name: str, *extra: str) -> list[str]:
    args = ["--data-run", "data-mp", "--run-name", run_name, "--quiet"]
    for s in [*SETTINGS, *extra]:
        args += ["--set", s]
    return args


def launch_two(runs_dir, run_name: str, *extra: str) -> subprocess.CompletedProcess:
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    cmd += ["--mixed_precision", "no", "--dynamo_backend", "no", "-m", "socialite_utils.training"]
    env = {**os.environ, "SOCIALITE_RUNS_DIR": str(runs_dir), "OMP_NUM_THREADS": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run(
        cmd + cli_args(run_name, *extra), env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def losses(run_dir) -> list[float]:
    return [v for _, v in loss_points(read_jsonl(run_dir / "train_log.jsonl"))]


class CrashAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("simulated crash")


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """torch_threads=1 is process-wide: give the rest of the session its thread count back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def data_run(runs_dir, bundle_dir):
    registry = load_registry("local")
    data = build_data(
        [registry[t] for t in TASKS], data_dir=bundle_dir, max_train_per_task=8, max_eval_per_task=1
    )
    write_jsonl(runs_dir / "data-mp" / "data" / "train.jsonl", data.splits["train"])
    return runs_dir / "data-mp"


def test_world_gradient_accumulation_keeps_the_effective_batch():
    assert world_gradient_accumulation(8, 8, 1) == 8
    assert world_gradient_accumulation(8, 8, 2) == 4  # 8 x 2 x 4 = 64, the paper's batch
    assert world_gradient_accumulation(8, 8, 8) == 1
    with pytest.raises(ValueError, match=r"8 x 8 = 64 does not split over 3 processes"):
        world_gradient_accumulation(8, 8, 3)
    assert batch_layout(4, 2) == {
        "world_size": 1,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps_per_process": 2,
        "effective_batch_size": 8,
    }


def test_cli_overrides_are_typed_and_typos_are_refused():
    assert parse_overrides(["learning_rate=3e-3", "lora_r=16", "resume=true", "max_train_examples=null"]) == {
        "learning_rate": 0.003,
        "lora_r": 16,
        "resume": True,
        "max_train_examples": None,
    }
    with pytest.raises(ValueError, match="lora_rank: not a TrainParams field"):
        parse_overrides(["lora_rank=16"])
    with pytest.raises(ValueError, match="lora_r=big: expected int"):
        parse_overrides(["lora_r=big"])


@pytest.mark.slow
def test_two_processes_train_like_one_and_resume_across_process_counts(data_run, runs_dir):
    # one process, in this interpreter: the reference run and a run interrupted after its step-2 checkpoint
    assert train_main(cli_args("one")) == 0
    settings = {**parse_overrides(SETTINGS), "run_name": "res", "data_run": "data-mp"}
    from socialite_utils.training import TrainParams

    with pytest.raises(RuntimeError, match="simulated crash"):
        train_lora(TrainParams(**settings), callbacks=[CrashAt(3)], verbose=False)
    assert (runs_dir / "res.partial" / "checkpoints" / "checkpoint-2").is_dir()

    launch_two(runs_dir, "two")
    launch_two(runs_dir, "res", "resume=true")

    one, two, res = (runs_dir / n for n in ("one", "two", "res"))
    # each run appears once, complete; nothing half-written or per-rank is left behind
    assert sorted(p.name for p in runs_dir.iterdir()) == ["data-mp", "one", "res", "two"]
    for run in (one, two, res):
        assert (run / "adapter" / "adapter_model.safetensors").exists() and (
            run / "train_summary.json"
        ).exists()
    resolved = read_json(two / "train_summary.json")["resolved"]
    assert resolved["world_size"] == 2 and resolved["gradient_accumulation_steps_per_process"] == 1
    assert resolved["effective_batch_size"] == 8
    assert read_json(two / "provenance.json")["batch"]["world_size"] == 2
    assert read_json(one / "train_summary.json")["resolved"]["gradient_accumulation_steps_per_process"] == 2

    reference = losses(one)
    assert len(reference) == 4 and len(set(reference)) > 1
    assert losses(two) == pytest.approx(reference, rel=REL_TOL)
    summary = read_json(res / "train_summary.json")
    assert summary["global_step"] == 4 and summary["resumed_from"].endswith("checkpoint-2")
    assert losses(res)[-2:] == pytest.approx(reference[-2:], rel=REL_TOL)  # steps 3-4, trained on 2 ranks

    # the adapters the two runs saved (through Trainer.save_model on every rank for 2 processes) agree
    one_w, two_w = (load_file(r / "adapter" / "adapter_model.safetensors") for r in (one, two))
    assert one_w.keys() == two_w.keys() and any("lora_B" in k for k in one_w)
    for k in one_w:
        assert torch.allclose(one_w[k], two_w[k], atol=1e-4), k
    assert sorted(p.name for p in (two / "adapter").iterdir()) == sorted(
        p.name for p in (one / "adapter").iterdir()
    )
