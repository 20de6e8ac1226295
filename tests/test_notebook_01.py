"""Notebook 01 runs headless (papermill) on the real bundle and writes a complete data run."""

from __future__ import annotations

import json

import pytest
from nbrun import run_notebook

pytestmark = pytest.mark.slow


def test_notebook_01_smoke_on_bundle(tmp_path, runs_dir, bundle_dir):
    run_notebook("01_data_assembly.ipynb", tmp_path, run_name="nb01", smoke=True, few_shot_k=2)
    run = runs_dir / "nb01"
    card = json.loads((run / "data_card.json").read_text())
    assert card["params"]["max_train_per_task"] == 8 and len(card["tasks"]) == 15
    assert card["totals"] == {"train": 80, "validation": 40, "test": 60}
    assert (run / "figures" / "composition.png").exists() and (run / "mixture.csv").exists()
    # the executed notebook refuses to overwrite the run silently
    with pytest.raises(Exception, match="already exists"):
        run_notebook("01_data_assembly.ipynb", tmp_path / "again", run_name="nb01", smoke=True)


@pytest.mark.parametrize(
    ("source", "writer", "tasks"),
    [
        ("socialite_instructions", "write_socialite_fixture", ["HUMOR", "VALENCECLS", "HATESPEECH"]),
        ("socket", "write_socket_fixture", ["HUMOR", "SAMESIDESTANCE", "HYPERBOLE"]),
    ],
)
def test_notebook_01_on_hub_fixture_layouts(tmp_path, runs_dir, source, writer, tasks):
    import fixtures_hub

    root = tmp_path / source
    getattr(fixtures_hub, writer)(root)
    run_notebook(
        "01_data_assembly.ipynb",
        tmp_path / "nb",
        run_name="hub",
        suite="socialite",
        source=source,
        data_dir=str(root),
        tasks=tasks,
        few_shot_k=1,
    )
    card = json.loads((runs_dir / "hub" / "data_card.json").read_text())
    assert sorted(card["tasks"]) == sorted(tasks) and card["params"]["source"] == source
    test_rows = [
        json.loads(line) for line in (runs_dir / "hub" / "data" / "test.jsonl").read_text().splitlines()
    ]
    assert {r["task"] for r in test_rows} == set(tasks)
    for r in test_rows:
        assert r["label"] in r["labels"] and r["prompt"].startswith("Instruction: ")
