"""Notebook 00 ("Inside the pipeline") runs headless in smoke mode and its hand computations match the kit's."""

from __future__ import annotations

import json
import re

import nbformat
import pytest
from nbrun import NOTEBOOKS, run_notebook


@pytest.mark.slow
def test_notebook_00_smoke_hand_computations_match_the_kit(tmp_path, runs_dir, bundle_dir):
    out = run_notebook("00_inside_the_pipeline.ipynb", tmp_path, run_name="inside", smoke=True)

    inside = json.loads((runs_dir / "inside" / "inside.json").read_text())
    assert inside["model"] == "tiny-random" and inside["task"] == "clickbait"
    assert inside["label"] == "not clickbait"  # the multi-token label is the one summed by hand
    assert abs(inside["logprob_by_hand"] - inside["logprob_kit"]) < 1e-4 and inside["logprob_kit"] < 0
    assert inside["trainable"] == inside["lora_by_hand"] > 0
    assert len(inside["losses"]) == 4  # max_steps in smoke mode, one log line each
    assert inside["macro_f1_by_hand"] == pytest.approx(inside["macro_f1_sklearn"])

    text = "".join(
        o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])
    )
    for expected in ("Instruction: ", "<- trained", "(EOS)", "trainable", "log P =", "macro-F1 by hand"):
        assert expected in text, expected


def _anchor(heading: str) -> str:
    """JupyterLab's anchor for a markdown heading: its text with spaces as dashes."""
    return heading.lstrip("#").strip().replace(" ", "-")


@pytest.mark.parametrize("name", [f"{n:02d}" for n in range(1, 6)])
def test_notebooks_01_to_05_link_to_a_section_of_00(name):
    inside = nbformat.read(NOTEBOOKS / "00_inside_the_pipeline.ipynb", as_version=4)
    anchors = {
        _anchor(line)
        for c in inside.cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("## ")
    }
    (path,) = NOTEBOOKS.glob(f"{name}_*.ipynb")
    links = [
        m
        for c in nbformat.read(path, as_version=4).cells[:4]
        if c.cell_type == "markdown"
        for m in re.findall(r"\(00_inside_the_pipeline\.ipynb#([^)]+)\)", c.source)
    ]
    assert links and all(link in anchors for link in links), (links, sorted(anchors))
