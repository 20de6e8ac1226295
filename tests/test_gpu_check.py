"""benchmarks/gpu_check.py without a GPU: it says so and exits 0 at once (the checks need CUDA)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def test_gpu_check_without_a_gpu_says_so_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no CUDA GPU visible to torch" in proc.stdout
    assert "check" not in proc.stdout.split("Exit 0.")[-1]  # no table: nothing was run
    assert time.perf_counter() - start < 60


def test_gpu_check_code_paths_dry_run_on_the_cpu(monkeypatch):
    """The checks' own code (not the GPU kernels) runs: DEVICE=cpu, the CUDA memory counters stubbed."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    monkeypatch.setattr(gpu_check, "DEVICE", "cpu")
    for name in ("synchronize", "max_memory_allocated", "reset_peak_memory_stats"):
        monkeypatch.setattr(torch.cuda, name, lambda *a: 0)
    for dtype in (torch.bfloat16, torch.float16):
        row = gpu_check.check_train_step(dtype)
        assert row["ok"] and "LoRA moved: True" in row["detail"], row
    row = gpu_check.check_throughput("score", n=64)
    assert row["ok"] and row["detail"].endswith("prompts/s")
    if importlib.util.find_spec("bitsandbytes") is None:  # the 4-bit path fails by name, not silently
        row = gpu_check.check_qlora_loading()
        assert not row["ok"] and "bitsandbytes" in row["detail"]
