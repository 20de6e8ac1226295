"""The README's shell examples run as written on a fresh clone (in smoke form where they are long).

Every ```bash block of the README is classified below: RUN (executed in a copy of the checkout without runs/,
the way a newcomer's clone looks, with `.venv` pointing at the environment running the tests) or SKIP with the
reason. A new block that is neither fails `test_every_bash_block_is_run_or_skipped_with_a_reason`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from socialite_utils.registry import load_task_file

REPO = Path(__file__).resolve().parent.parent
DATA_ENV = ("SOCIALITE_DATA_DIR", "SOCIALITE_WRITING_DIR", "SOCIALITE_GENERAL_DIR")
README = (REPO / "README.md").read_text()
# the README and the reference pages it links to: every shell example in them runs or says why not
DOCS = "\n".join([README, *(p.read_text() for p in sorted((REPO / "docs").glob("*.md")))])

# the blocks run here, found by a regex on the block
LAB = r"^make lab"
PAPERMILL = r"papermill 01_data_assembly\.ipynb \.\./runs/01_data\.ipynb"
OWN_TASK = r"SOCIALITE_TASKS_DIR=\$PWD/my_tasks"
COURSE = r"^make student"
RUN = {
    COURSE: "test_make_student_and_make_site_run_on_a_fresh_clone",
    LAB: "test_make_lab_serves_the_repository_on_the_socialite_kernel",
    PAPERMILL: "test_papermill_example_runs_on_a_fresh_clone",
    OWN_TASK: "test_add_your_own_task_runs_on_a_fresh_clone",
}
# the blocks not run here, and why
SKIP = {
    r"^make setup": "CI's own steps (.ci/run runs `make setup`, `make data FROM=../shared/data`, then `make test-all`); "
    "make data needs internet here (the fetcher runs against a local server in tests/test_data_fetch.py), make demo "
    "takes ~27 min (the same pipeline runs in CI with the smoke profile)",
    r"--profile smoke-mixing": "the smoke-mixing profile runs in tests/test_pipeline_mixing.py; cpu-mixing takes ~1 h, "
    "gpu-mixing needs a GPU",
    r"--profile smoke-writing": "the smoke-writing profile runs in tests/test_pipeline_writing.py; cpu-writing takes "
    "~40 min",
    r"socialite_utils\.training --data-run data-demo": "needs notebook 01's data-demo run; the same CLI trains the tiny "
    "model in tests/test_multiprocess.py",
    r"^accelerate launch": "needs GPUs and Llama-2-7B; the configs resolve in tests/test_accelerate_configs.py and "
    "two CPU processes train in tests/test_multiprocess.py",
    r"^python benchmarks/gpu_check\.py && ": "needs a CUDA GPU; gpu_check's CPU dry run is tests/test_gpu_check.py, "
    "the gpu-demo plan is checked in tests/test_plancheck.py and its recipe is cpu-demo's",
    r"^lm_eval ": "needs the hub model and an exported run; the harness's parity with score mode is "
    "tests/test_lmeval_export.py",
    r"^python -m socialite_utils\.publish ": "needs notebook 02's train-demo and 03's eval-demo runs, and the "
    "second line a Hub login and the internet; the same code pushes to a stand-in Hub in tests/test_publish.py",
}


def code_blocks(lang: str, text: str = DOCS) -> list[str]:
    """The README's fenced blocks of one language (indented blocks inside list items included), dedented."""
    blocks = []
    for indent, body in re.findall(rf"^( *)```{lang}\n(.*?)^\1```", text, flags=re.S | re.M):
        blocks.append("\n".join(line[len(indent) :] for line in body.splitlines()))
    return blocks


def _block(signature: str) -> str:
    (block,) = [b for b in code_blocks("bash") if re.search(signature, b, flags=re.M)]
    return block


def test_every_bash_block_is_run_or_skipped_with_a_reason():
    blocks = code_blocks("bash")
    assert len(blocks) >= 5
    for block in blocks:
        matched = [s for s in {**SKIP, **RUN} if re.search(s, block, flags=re.M)]
        assert len(matched) == 1, (
            f"README block not classified in tests/test_readme.py (RUN or SKIP):\n{block}"
        )
    for signature, test in RUN.items():
        assert test in globals(), test
        _block(signature)  # exactly one block per signature


def smoke_form(block: str) -> str:
    """Long commands in their CI form: every papermill call also gets `-p smoke True`."""
    lines = block.replace("\\\n", " ").splitlines()
    return "\n".join(line + " -p smoke True" if "papermill " in line else line for line in lines)


@pytest.fixture
def clone(tmp_path, bundle_dir) -> Path:
    """A copy of the checkout as a fresh clone has it (no runs/), `.venv` -> the environment running the tests."""
    junk = shutil.ignore_patterns(".git", "runs", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache")
    dest = tmp_path / "clone"
    shutil.copytree(REPO, dest, ignore=junk)
    (dest / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    assert (dest / ".venv" / "bin" / "activate").exists(), "tests must run from a virtual environment"
    return dest


def _env(clone: Path, bundle_dir: Path) -> dict[str, str]:
    drop = ("SOCIALITE_RUNS_DIR", "SOCIALITE_TASKS_DIR", "VIRTUAL_ENV", *DATA_ENV)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    # as in a new shell: the venv's commands are on PATH only once a block activates it
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(d for d in env.get("PATH", "").split(os.pathsep) if d != venv_bin)
    # the clone's package is the one imported (as after `pip install -e .` there), so runs land in <clone>/runs
    # the clone reads its own data/ (the copy holds the fetched files too: CI installs them before the tests)
    return env | {"PYTHONPATH": str(clone), "HF_HUB_OFFLINE": "1"}


def run_block(block: str, clone: Path, env: dict[str, str], timeout: int = 600) -> str:
    res = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", smoke_form(block)],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert res.returncode == 0, (
        f"README block failed:\n{block}\n--- output ---\n{(res.stdout + res.stderr)[-4000:]}"
    )
    return res.stdout + res.stderr


@pytest.mark.slow
def test_papermill_example_runs_on_a_fresh_clone(clone, bundle_dir):
    block = _block(PAPERMILL)
    run_block(block, clone, _env(clone, bundle_dir))
    assert (clone / "runs" / "01_data.ipynb").is_file()
    params = json.loads((clone / "runs" / "data-demo" / "params.json").read_text())
    assert params["tasks"] == ["tweet_irony", "tweet_hate"]  # the list reached the notebook via -y
    assert params["few_shot_k"] == 2 and params["smoke"] is True


def _write_own_task(clone: Path) -> None:
    """Step 1 and 2 of "Add your own task": the README's YAML as written, data in the README's layout."""
    (own,) = [b for b in code_blocks("yaml") if "politeness_toy" in b]
    (clone / "my_tasks").mkdir()
    (clone / "my_tasks" / "politeness.yaml").write_text(own)
    rows = [{"text": "Could you please send the file?", "label": "1"}] + [
        {
            "text": f"{'Would you kindly' if i % 2 else 'Send me'} file number {i} {'please' if i % 2 else 'now'}",
            "label": str(i % 2),
        }
        for i in range(1, 24)
    ]
    for split, part in (("train", rows[:12]), ("validation", rows[12:18]), ("test", rows[18:])):
        path = clone / "my_data" / "politeness_toy" / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in part))


@pytest.mark.slow
def test_add_your_own_task_runs_on_a_fresh_clone(clone, bundle_dir):
    _write_own_task(clone)
    run_block(_block(OWN_TASK), clone, _env(clone, bundle_dir))
    params = json.loads((clone / "runs" / "mine-data" / "params.json").read_text())
    assert params["suite"] == "local+mine" and params["tasks"] == ["politeness_toy", "tweet_irony"]
    card = json.loads((clone / "runs" / "mine-data" / "data_card.json").read_text())
    assert card["totals"]["test"] > 0


def test_make_student_and_make_site_run_on_a_fresh_clone(clone, bundle_dir):
    """The teachers' block as written; `make demo`'s executed notebooks stood in for by one with a figure."""
    import base64
    import io

    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    import nbformat

    fig = plt.figure(figsize=(2, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    nb = nbformat.v4.new_notebook()
    png = base64.b64encode(buf.getvalue()).decode()
    nb.cells = [nbformat.v4.new_markdown_cell("# 01 · Data assembly"), nbformat.v4.new_code_cell("plot()")]
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", data={"image/png": png})]
    (clone / "runs" / "demo" / "notebooks").mkdir(parents=True)
    nbformat.write(nb, clone / "runs" / "demo" / "notebooks" / "01_data_assembly.ipynb")

    run_block(_block(COURSE), clone, _env(clone, bundle_dir))
    student = sorted(p.name for p in (clone / "student").glob("*.ipynb"))
    assert student == sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert '"solution"' not in (clone / "student" / "00_inside_the_pipeline.ipynb").read_text()
    page = (clone / "runs" / "demo" / "site" / "01_data_assembly.html").read_text()
    assert f"data:image/png;base64,{png[:40]}" in page
    assert (
        '<a href="01_data_assembly.html">01 · Data assembly</a>'
        in (clone / "runs/demo/site/index.html").read_text()
    )


def test_every_task_yaml_in_the_readme_loads(tmp_path):
    """The YAML examples (own task; pair and regression) are valid task files with the fields they describe."""
    tasks = {}
    for i, block in enumerate(code_blocks("yaml")):
        path = tmp_path / f"block{i}.yaml"
        path.write_text(block)
        tasks.update(load_task_file(path)[1])
    assert tasks["stance_toy"].pair and tasks["stance_toy"].text_b_name == "Target"
    assert tasks["warmth_toy"].is_regression and tasks["warmth_toy"].scale == [1, 5]
    assert tasks["politeness_toy"].verbalize("1") == "polite"
    assert yaml.safe_load(code_blocks("yaml")[0])["suite"] == "mine"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def test_make_lab_serves_the_repository_on_the_socialite_kernel(clone, bundle_dir, tmp_path):
    """`make lab` as written, plus LAB_ARGS for a headless server; asks the running server what it serves."""
    block = _block(LAB)
    port, token = _free_port(), "readme-test"
    command = smoke_form(block).split("#")[0].strip()
    assert command == "make lab"
    lab_args = f"--no-browser --port={port} --IdentityProvider.token={token}"  # as root too: make lab adds --allow-root
    jupyter_dirs = {
        name: str(tmp_path / name) for name in ("JUPYTER_RUNTIME_DIR", "JUPYTERLAB_WORKSPACES_DIR")
    }
    proc = subprocess.Popen(
        ["make", "lab", f"LAB_ARGS={lab_args}"],
        cwd=clone,
        env=_env(clone, bundle_dir) | jupyter_dirs,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}/api"
        for _ in range(120):
            try:
                specs = _get(f"{base}/kernelspecs", token)
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within 60 s")
        assert specs["default"] == "socialite"
        argv = specs["kernelspecs"]["socialite"]["spec"]["argv"]
        assert Path(argv[0]).resolve() == Path(sys.executable).resolve()  # the kit's environment
        listing = {item["name"] for item in _get(f"{base}/contents/notebooks", token)["content"]}
        assert "00_inside_the_pipeline.ipynb" in listing  # served from the repository root
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
