"""The kit installs as a package: pyproject's dependencies match requirements.txt, a wheel built from this checkout
installs into a fresh venv and imports what the notebooks import, one repository URL everywhere, and the data sample
shipped for Colab."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

from socialite_utils.data import loaders as data_mod
from socialite_utils.data import sample

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# imported by the kit only on a GPU (the `gpu` and `vllm` extras, imported lazily) or only on Colab: not installed
# by the base package
OPTIONAL_IMPORTS = {"bitsandbytes", "google", "vllm"}


def _requirements(lines: list[str]) -> dict[str, str]:
    reqs = [Requirement(line) for line in lines]
    return {r.name.lower(): str(r.specifier) for r in reqs}


def test_pyproject_dependencies_and_requirements_txt_agree():
    """requirements.txt = pyproject's dependencies + its `dev` extra, same names and the same pins."""
    txt = [
        line.strip()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    project = PYPROJECT["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    assert _requirements(txt) == _requirements(declared)
    assert len(txt) == len(declared)
    # torch is a range (the platform's build is kept), everything whose API moves is pinned exactly
    deps = _requirements(project["dependencies"])
    assert deps["torch"].startswith(("<", ">")) and "==" not in deps["torch"]
    for name in ("transformers", "trl", "peft", "datasets", "accelerate", "papermill"):
        assert deps[name].startswith("=="), name


def _repo_url() -> str:
    return PYPROJECT["project"]["urls"]["Repository"]


def test_every_colab_badge_and_install_url_is_the_one_repository_url():
    url = _repo_url()
    slug = url.removeprefix("https://github.com/")
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", slug), url
    found = 0
    for path in [*NOTEBOOKS, REPO / "README.md"]:
        text = (
            "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
            if path.suffix == ".ipynb"
            else path.read_text()
        )
        for badge in re.findall(r"colab\.research\.google\.com/github/([^\s)\"']+)", text):
            assert badge == f"{slug}/blob/main/notebooks/{path.name}" or path.suffix == ".md", (path, badge)
            assert badge.startswith(f"{slug}/blob/main/notebooks/"), (path, badge)
            found += 1
        for install in re.findall(r"(?:git\+|\"clone\", \"-q\", \")(https://[^\s\"']+)", text):
            assert install == url, (path, install)
            found += 1
        for other in re.findall(r"https://github\.com/([\w.-]+/[\w.-]+)", text):
            assert other == slug, (path, other)
    assert found >= 2 * len(NOTEBOOKS)


def test_shipped_sample_is_verbatim_rows_of_redistributable_tasks(bundle_dir):
    manifest = json.loads((bundle_dir / "MANIFEST.json").read_text())
    licences = {t["name"]: t["license"] for t in manifest["tasks"]}
    shipped = sample.sample_tasks()
    assert shipped and all(sample.redistributable(licences[name]) for name in shipped)
    assert not any(name.startswith("tweet_") for name in shipped)  # TweetEval: not clearly redistributable
    left_out = json.loads((sample.SAMPLE_DIR / "MANIFEST.json").read_text())["left_out"]
    assert sorted(shipped + left_out) == sorted(licences)
    for name in shipped:
        for split, n in sample.ROWS_PER_SPLIT.items():
            rows = (sample.SAMPLE_DIR / name / f"{split}.jsonl").read_text().splitlines()
            assert len(rows) == n and set(rows) <= set(
                (bundle_dir / name / f"{split}.jsonl").read_text().splitlines()
            )


def test_on_colab_without_bundle_the_data_step_uses_the_sample(monkeypatch, capsys, tmp_path):
    from socialite_utils.data import fetch
    from socialite_utils.data.assembly import build_data
    from socialite_utils.registry import load_registry

    monkeypatch.delenv("SOCIALITE_DATA_DIR", raising=False)
    monkeypatch.setattr(fetch, "repo_root", lambda: None)  # the package installed alone, outside a checkout
    monkeypatch.chdir(tmp_path)
    assert data_mod.default_data_dir() == tmp_path / "data" / "social_tasks"  # not Colab: ./data
    assert capsys.readouterr().out == ""

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    sample.print_notice_once.cache_clear()
    assert data_mod.default_data_dir() == sample.SAMPLE_DIR
    assert "small sample shipped with the package" in capsys.readouterr().out
    registry = load_registry("local")
    data = build_data([registry[t] for t in sample.sample_tasks()], max_train_per_task=8, max_eval_per_task=4)
    assert {r["task"] for r in data.splits["test"]} == set(sample.sample_tasks())
    assert len(data.splits["test"]) == 4 * len(sample.sample_tasks())


def _imports(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
    return names


def modules_to_import() -> list[str]:
    """Every module a notebook imports, and every third-party module the package imports anywhere (even lazily)."""
    names = set()
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                names |= _imports(cell.source)
    for path in (REPO / "socialite_utils").rglob("*.py"):
        names |= {n for n in _imports(path.read_text()) if n.split(".")[0] not in sys.stdlib_module_names}
    return sorted(n for n in names if n.split(".")[0] not in OPTIONAL_IMPORTS)


def test_modules_to_import_come_from_the_notebooks_and_the_package():
    names = modules_to_import()
    for expected in (
        "socialite_utils.training",
        "socialite_utils.evaluation",
        "IPython.display",
        "trl",
        "sklearn",
    ):
        assert any(n == expected or n.startswith(expected + ".") for n in names), expected


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_imports_what_the_notebooks_import(tmp_path):
    """Minutes: builds the wheel, installs torch then the wheel with its dependencies (no requirements.txt)."""
    src, wheels, venv = tmp_path / "src", tmp_path / "wheels", tmp_path / "venv"
    # build from a copy, so setuptools' build/ and *.egg-info land in tmp, not in the checkout
    junk = shutil.ignore_patterns(".git", "runs", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(REPO, src, ignore=junk)
    pip = [sys.executable, "-m", "pip"]
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", *isolation, "-w", wheels, src], check=True)
    (wheel,) = wheels.glob("socialite_utils-*.whl")
    # the venv must see only what the wheel installs: not this checkout (PYTHONPATH), not the user site
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")} | {
        "PYTHONNOUSERSITE": "1"
    }
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    vpy = str(venv / "bin" / "python")
    subprocess.run([vpy, "-m", "pip", "install", "-q", "torch==2.13.0"], check=True, env=env)
    subprocess.run([vpy, "-m", "pip", "install", "-q", str(wheel)], check=True, env=env)
    subprocess.run([vpy, "-m", "pip", "check"], check=True, env=env)
    names = modules_to_import()
    code = (
        "import importlib, socialite_utils.data.sample as s, socialite_utils.tiny_tokenizer as t\n"
        f"for name in {names!r}:\n    importlib.import_module(name)\n"
        "t.load_tiny_tokenizer_file()  # the committed tokenizer of the tiny models is package data too\n"
        "print(len(s.sample_tasks()), s.SAMPLE_DIR)\n"
    )
    out = subprocess.run([vpy, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    n_tasks, where = out.stdout.split()
    assert int(n_tasks) == len(sample.sample_tasks()) and str(venv) in where  # package data inside the wheel
