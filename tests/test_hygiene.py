"""Notebook and code hygiene: one literal parameters cell, a proper header, no outputs, ruff-clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_all_notebooks_exist():
    assert [p.name[:2] for p in NOTEBOOKS] == ["00", "01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exactly_one_literal_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    names = []
    for line in cells[0].source.splitlines():
        if not line.strip():
            continue
        assert "#" in line, f"parameter line without a comment: {line!r}"
        stmt = ast.parse(line).body
        assert len(stmt) == 1 and isinstance(stmt[0], ast.Assign), f"not an assignment: {line!r}"
        ast.literal_eval(stmt[0].value)  # raises unless a plain literal
        names.append(stmt[0].targets[0].id)
    assert "smoke" in names and "run_name" in names
    assert len(names) == len(set(names))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_header_cell_and_colab_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    head = nb.cells[0]
    assert head.cell_type == "markdown" and head.source.startswith("# ")
    for needle in (
        "Purpose",
        "Inputs",
        "Outputs",
        "CPU smoke",
        "CPU demo",
        "Colab T4",
        "A100",
        "colab.research.google.com/github/",
        path.name,
    ):
        assert needle in head.source, needle
    setup = nb.cells[1]
    assert setup.cell_type == "code" and '"google.colab" in sys.modules' in setup.source


def test_no_committed_outputs():
    nbstripout = shutil.which("nbstripout") or str(Path(sys.executable).parent / "nbstripout")
    res = subprocess.run([nbstripout, "--verify", *map(str, NOTEBOOKS)], capture_output=True, text=True)
    assert res.returncode == 0, f"notebooks have outputs; run `make strip`:\n{res.stdout}{res.stderr}"


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    res = subprocess.run([ruff, "check", "."], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run([ruff, "format", "--check", "."], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_can_read_every_parameter(path):
    """papermill's parser gives up on a comment containing '=' and then warns 'unknown parameter'."""
    from papermill.inspection import _infer_parameters
    from papermill.iorw import load_notebook_node

    nb = load_notebook_node(str(path))
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = [p.name for p in _infer_parameters(nb)]
    assigned = [line.split("=", 1)[0].strip() for line in cell.source.splitlines() if line.strip()]
    assert names == assigned


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_smoke_flag_is_read_as_a_boolean_before_it_is_used(path):
    """``papermill -p smoke false`` passes the string "false", which is truthy: each notebook turns its smoke flag
    into a bool (``as_bool`` or its parameters dataclass, which coerces it) before the first ``if smoke``."""
    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    code = "\n".join(cells)
    if "if smoke" not in code:
        pytest.skip("no smoke branch")
    before = code[: code.index("if smoke")]
    assert 'as_bool(smoke, param="smoke")' in before or ".validate().to_dict())" in before, path.name
    # and as_bool does what the notebooks rely on
    from socialite_utils.params import as_bool

    assert as_bool("false", param="smoke") is False and as_bool("True", param="smoke") is True


@pytest.mark.parametrize(
    ("step", "notebook"),
    [("data", "01"), ("train", "02"), ("eval", "03"), ("analysis", "04"), ("baselines", "05")],
)
def test_notebook_defaults_are_the_demo_recipe(step, notebook):
    """Opened in JupyterLab and run top to bottom, a notebook runs what `make demo` runs (profile cpu-demo)."""
    from socialite_utils.pipeline import resolve_profile

    (path,) = [p for p in NOTEBOOKS if p.name.startswith(notebook)]
    (cell,) = [
        c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])
    ]
    defaults = {}
    for line in cell.source.splitlines():
        if line.strip():
            stmt = ast.parse(line).body[0]
            defaults[stmt.targets[0].id] = ast.literal_eval(stmt.value)
    demo = resolve_profile("cpu-demo")[step]
    compared = {k: v for k, v in demo.items() if k in defaults and k not in ("smoke",)}
    assert len(compared) >= 1
    assert {k: defaults[k] for k in compared} == compared
