"""The one write guard (runs.safe_write_path) behind every entry point that writes: run names of the studies, task
names of the lm-eval export, the course site and student copies; temporary names that cannot be a user's file;
symbolic links never followed out of the runs directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from conftest import toy_task

from socialite_utils import pipeline
from socialite_utils.course import build_site, build_student_notebooks
from socialite_utils.course.build import CourseError
from socialite_utils.data.assembly import build_data, write_data_run
from socialite_utils.evaluation import EvalParams
from socialite_utils.evaluation.lmeval import export_lmeval
from socialite_utils.runs import (
    MAX_NAME_BYTES,
    UnsafePathError,
    new_run_dir,
    remove_stale_temp_dirs,
    safe_write_path,
)
from socialite_utils.studies.mixing import MixingStudyParams, run_grid
from socialite_utils.studies.writing import prepare_writing_run

REPO = Path(__file__).resolve().parent.parent


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _toy_data(make_bundle):
    rows = [{"text": f"train {i}", "label": ["no", "yes"][i % 2]} for i in range(4)]
    bundle = make_bundle(
        {
            "toy": {
                "train": rows,
                "validation": [{"text": "v", "label": "no"}],
                "test": [{"text": "t1", "label": "yes"}, {"text": "t2", "label": "no"}],
            }
        }
    )
    return build_data([toy_task()], data_dir=bundle)


@pytest.mark.parametrize("name", ["../ESCAPE", "/abs/ESCAPE", "sub/dir", "a b", "x" * 300])
def test_study_run_names_are_refused_before_anything_is_written(name, tmp_path, runs_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(UnsafePathError):
        run_grid(MixingStudyParams(run_name=name, smoke=True))
    with pytest.raises(UnsafePathError):
        MixingStudyParams(run_name=name).validate()
    with pytest.raises(UnsafePathError):
        prepare_writing_run(name, {"seed": 0})
    assert _tree(tmp_path) == before and not Path("/abs/ESCAPE").exists()
    assert not (tmp_path.parent / "ESCAPE").exists() and not (REPO / "ESCAPE").exists()


def test_a_long_run_name_gets_the_kits_message_not_oserror(runs_dir):
    with pytest.raises(UnsafePathError, match=rf"300 bytes long .* limited to {MAX_NAME_BYTES} bytes"):
        new_run_dir("x" * 300)
    assert new_run_dir("x" * MAX_NAME_BYTES) == runs_dir / ("x" * MAX_NAME_BYTES)


def test_lmeval_export_refuses_a_task_name_that_is_a_path(runs_dir, make_bundle, tmp_path):
    run = write_data_run("data", _toy_data(make_bundle))
    for split in ("test", "train", "validation", "fewshot_pool"):
        path = run / "data" / f"{split}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        path.write_text("".join(json.dumps({**r, "task": "../../LMESC"}) + "\n" for r in rows))
    params = EvalParams(
        run_name="lmx", data_run="data", train_run=None, base_model="tiny-random", mode="score"
    )
    with pytest.raises(UnsafePathError, match="LMESC"):
        export_lmeval(params)
    assert sorted(p.name for p in runs_dir.iterdir()) == ["data"]
    assert not list(tmp_path.rglob("*LMESC*"))


def test_a_users_file_that_looks_like_a_temp_name_is_never_deleted(runs_dir, make_bundle):
    runs_dir.mkdir(parents=True)
    mine = [
        runs_dir / ".notes.tmp-999999",
        runs_dir / ".notes.old-999999",
        runs_dir / ".x.socialite-tmp-999999-h",
    ]
    for path in mine:
        path.write_text("my notes")
    folder = runs_dir / f".draft.socialite-tmp-999999-{os.uname().nodename}"  # the pattern, but no marker
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    write_data_run("one", _toy_data(make_bundle))
    assert all(p.read_text() == "my notes" for p in mine) and (folder / "keep.txt").read_text() == "mine"


def test_a_killed_writer_is_cleaned_only_through_its_marker(tmp_path, runs_dir, make_bundle, capsys):
    script = textwrap.dedent(
        f"""
        import os, signal
        from socialite_utils.runs import RunWriter
        with RunWriter({str(runs_dir / "killed")!r}) as tmp:
            (tmp / "half.jsonl").write_text("{{}}")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)})
    (left,) = runs_dir.iterdir()
    assert left.name.startswith(".killed.socialite-tmp-")
    assert remove_stale_temp_dirs(runs_dir, log=lambda *_: None) == [left] and not left.exists()


def test_a_symlink_in_the_runs_directory_is_never_followed(tmp_path, runs_dir, make_bundle):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    runs_dir.mkdir(parents=True)
    (runs_dir / "link").symlink_to(outside)
    data = _toy_data(make_bundle)
    for overwrite in (False, True):
        with pytest.raises(UnsafePathError, match=rf"{runs_dir / 'link'} is a symbolic link"):
            write_data_run("link", data, overwrite=overwrite)
    assert sorted(os.listdir(outside)) == ["precious.txt"]
    write_data_run("other", data)  # every other run still writes
    assert sorted(os.listdir(runs_dir)) == ["link", "other"]
    with pytest.raises(UnsafePathError, match="symbolic link"):
        safe_write_path(runs_dir, "link", "x.json")


def _notebooks(folder: Path) -> Path:
    folder.mkdir()
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# One")]), folder / "01_x.ipynb"
    )
    return folder


def test_a_site_rebuild_keeps_the_users_files(tmp_path):
    src = _notebooks(tmp_path / "nbs")
    site = tmp_path / "site"
    build_site(src, site)
    (site / "my_notes.md").write_text("mine")
    (site / "extra").mkdir()
    (site / "extra" / "a.txt").write_text("mine too")
    build_site(src, site)
    assert (site / "my_notes.md").read_text() == "mine" and (
        site / "extra" / "a.txt"
    ).read_text() == "mine too"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_a_killed_site_build_leaves_nothing_the_next_build_keeps(tmp_path):
    src = _notebooks(tmp_path / "nbs")
    script = textwrap.dedent(
        f"""
        import os, signal
        from socialite_utils.course import build
        build.write_text_atomic = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
        build.build_site({str(src)!r}, {str(tmp_path / "site")!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)})
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".site.socialite-tmp-")]
    build_site(src, tmp_path / "site")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nbs", "site"]


def test_site_and_student_refuse_a_symlinked_output(tmp_path):
    src = _notebooks(tmp_path / "nbs")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "site").symlink_to(outside)
    with pytest.raises(CourseError, match="symbolic link"):
        build_site(src, tmp_path / "site")
    with pytest.raises(CourseError, match="symbolic link"):
        build_student_notebooks(src, tmp_path / "site")
    student = tmp_path / "student"
    student.mkdir()
    (student / "01_x.ipynb").symlink_to(outside / "target.ipynb")
    with pytest.raises(CourseError, match="symbolic link"):
        build_student_notebooks(src, student, force=True)
    assert os.listdir(outside) == []


def test_pipeline_refuses_a_symlinked_run_directory(tmp_path, monkeypatch, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "runs"
    root.mkdir()
    (root / "pipe").symlink_to(outside)
    assert (
        pipeline.main(["--profile", "smoke", "--run-name", "pipe", "--runs-dir", str(root), "--only", "data"])
        == 2
    )
    assert "symbolic link" in capsys.readouterr().err and os.listdir(outside) == []


def test_a_full_disk_names_what_was_being_written_and_keeps_the_earlier_run(tmp_path, runs_dir, capsys):
    """ "No space left on device" from deep inside a write: the kit's message names the run (or file) and says what
    was kept; no temporary directory or file is left behind."""
    import errno

    from socialite_utils.runs import RunWriter, write_json, write_text_atomic

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    with RunWriter(runs_dir / "r") as tmp:
        write_json(tmp / "metrics.json", {"v": 1})
    with pytest.raises(
        OSError, match=r"no space left on the disk of .*r while writing it \(the earlier run is unchanged\)"
    ):
        with RunWriter(runs_dir / "r", overwrite=True) as tmp:
            (tmp / "big.bin").write_bytes(b"x")
            full()
    assert json.loads((runs_dir / "r" / "metrics.json").read_text()) == {"v": 1}
    with pytest.raises(OSError, match=r"nothing of the new run was kept"):
        with RunWriter(runs_dir / "new"):
            full()
    assert sorted(p.name for p in runs_dir.iterdir()) == ["r"]  # no temporary directory left
    target = tmp_path / "notes.txt"
    target.write_text("before")
    with pytest.raises(OSError, match=r"notes.txt while writing it \(the file is unchanged\)"):
        from socialite_utils import runs as runs_mod

        runs_mod._write_atomic(target, lambda p, t: full(), "after")
    assert target.read_text() == "before" and sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "notes.txt"
    ]
    write_text_atomic(target, "after")  # and with space, the write goes through
    assert target.read_text() == "after"
