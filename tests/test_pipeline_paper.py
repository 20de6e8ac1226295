"""The paper profile's recipe choices through the pipeline, on the tiny model (profile smoke-paper): notebook 02
chooses the checkpoint on validation rows after every epoch and fits max_length to the data; notebook 03 runs twice,
zero-shot (eval) and with one example in each prompt (fewshot)."""

from __future__ import annotations

import json

import pytest

from socialite_utils import pipeline


@pytest.mark.slow
def test_paper_choices_run_through_the_notebooks(tmp_path):
    steps = pipeline.run_pipeline("smoke-paper", "p", runs_dir=tmp_path, log=lambda *_: None)
    assert [(r.step, r.ok) for r in steps] == [
        ("data", True),
        ("train", True),
        ("eval", True),
        ("fewshot", True),
    ]
    root = tmp_path / "p"

    summary = json.loads((root / "train" / "train_summary.json").read_text())
    selection = summary["selection"]
    per_epoch = [e["epoch"] for e in selection["evaluations"]]
    assert len(per_epoch) >= 2 and all(float(e).is_integer() for e in per_epoch[:-1])  # one per epoch
    losses = {e["step"]: e["validation_loss"] for e in selection["evaluations"]}
    assert selection["selected_step"] == min(losses, key=losses.get)
    provenance = json.loads((root / "train" / "provenance.json").read_text())
    assert provenance["checkpoint_choice"]["select_on"] == "validation"
    assert provenance["checkpoint_choice"]["rows"].endswith("data/validation.jsonl")
    resolved = summary["resolved"]
    assert resolved["max_length"] % 64 == 0 and resolved["token_lengths"]["max"] <= resolved["max_length"]

    zero = [json.loads(line) for line in (root / "eval" / "predictions.jsonl").open()]
    few = [json.loads(line) for line in (root / "eval-fewshot" / "predictions.jsonl").open()]
    assert {p["id"] for p in zero} == {p["id"] for p in few}  # the same test rows, scored twice
    few_params = json.loads((root / "eval-fewshot" / "params.json").read_text())
    assert few_params["few_shot_k"] == 1
