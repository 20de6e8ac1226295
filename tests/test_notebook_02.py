"""Notebook 02 runs headless (papermill, smoke=True) on a data run built from the real bundle."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbrun import run_notebook

from socialite_utils.data.assembly import build_data, write_data_run
from socialite_utils.registry import load_registry

pytestmark = pytest.mark.slow


def _stream_text(nb) -> str:
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )


def test_notebook_02_smoke_trains_tiny_random(tmp_path, runs_dir, bundle_dir):
    registry = load_registry("local")
    tasks = [registry[t] for t in ("tweet_emotion", "tweet_sentiment", "tweet_stance", "emobank_valence")]
    data = build_data(tasks, data_dir=bundle_dir, max_train_per_task=12, max_eval_per_task=2)
    write_data_run("nb02-data", data)

    out = run_notebook(
        "02_instruction_tuning.ipynb", tmp_path, run_name="nb02", data_run="nb02-data", smoke=True
    )

    run = runs_dir / "nb02"
    for name in ("params.json", "provenance.json", "train_log.jsonl", "train_summary.json", "loss_curve.png"):
        assert (run / name).is_file(), name
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert not (runs_dir / "nb02.partial").exists()
    params = json.loads((run / "params.json").read_text())
    assert (
        params["base_model"] == "tiny-random"
        and params["max_steps"] == 30
        and params["data_run"] == "nb02-data"
    )
    assert params["lora_r"] == 16 and params["lora_target_modules"] == "all-linear"  # the demo's recipe
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    losses = [h["loss"] for h in log if "loss" in h]
    assert len(losses) == 30 and sum(losses[-5:]) / 5 < sum(losses[:5]) / 5  # smoke still learns
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["n_train"] == 48 and summary["examples_by_task"]["tweet_stance"] == 12

    text = _stream_text(nbformat.read(out, as_version=4))
    for expected in ("trainable parameters", "peak memory", "<- trained", "(EOS)", "step 30/30"):
        assert expected in text, expected
    # a papermill log stays readable: one line per log step plus a sparse progress bar, not thousands
    assert len(text.splitlines()) < 150
