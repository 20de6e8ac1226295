"""Course material: the exercises are well formed, `make student` writes copies whose checks fail on the stubs
(the full notebooks pass theirs), and `make site` renders executed notebooks that a real headless Chromium opens
with every figure decoded."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import nbformat
import papermill as pm
import pytest
from nbrun import NOTEBOOKS, run_notebook

from socialite_utils.course import (
    CourseError,
    build_site,
    build_student_notebooks,
    exercises,
    main,
    strip_solutions,
)

WITH_EXERCISES = [
    "00_inside_the_pipeline",
    "01_data_assembly",
    "02_instruction_tuning",
    "03_evaluation",
    "04_error_analysis",
    "05_baselines",
    "06_generalist_mixing",
    "07_writing_assistance",
]


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_each_exercise_is_text_stub_solution_check(name):
    cells = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells
    solutions = [i for i, c in enumerate(cells) if "solution" in _tags(c)]
    assert 2 <= len(solutions) <= 4
    for i in solutions:
        text, stub, check = cells[i - 2], cells[i - 1], cells[i + 1]
        assert (
            text.cell_type == "markdown"
            and text.source.startswith("### Exercise")
            and "*Teaches:*" in text.source
        )
        assert stub.cell_type == "code" and "# your code" in stub.source and not _tags(stub)
        assert check.cell_type == "code" and re.search(r"^check_\w+\(", check.source, re.M), check.source
        assert all(len(c.source.splitlines()) <= 15 for c in (stub, cells[i], check))


def test_every_check_function_is_used_by_a_notebook():
    sources = "".join(
        nbformat.read(NOTEBOOKS / f"{n}.ipynb", as_version=4).cells.__repr__() for n in WITH_EXERCISES
    )
    for name in exercises.__all__:
        if name.startswith("check_"):
            assert f"{name}(" in sources, name


def test_student_copies_have_no_solutions_and_keep_stubs_and_checks(tmp_path):
    written = build_student_notebooks(NOTEBOOKS, tmp_path / "student")
    assert sorted(p.name for p in written) == sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    for path in written:
        full = nbformat.read(NOTEBOOKS / path.name, as_version=4)
        student = nbformat.read(path, as_version=4)
        assert not [c for c in student.cells if "solution" in _tags(c)]
        n_solutions = sum("solution" in _tags(c) for c in full.cells)
        assert len(student.cells) == len(full.cells) - n_solutions
        assert sum("check_" in c.source for c in student.cells) == sum(
            "check_" in c.source for c in full.cells
        )
    assert json.loads((tmp_path / "student" / ".socialite-student.json").read_text())["files"]


def test_student_refuses_what_it_did_not_write(tmp_path):
    with pytest.raises(CourseError, match="outside the source folder"):
        build_student_notebooks(NOTEBOOKS, NOTEBOOKS / "student")
    with pytest.raises(CourseError, match="no numbered notebooks"):
        build_student_notebooks(tmp_path, tmp_path / "out")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(CourseError, match="was not written by the kit"):
        build_student_notebooks(NOTEBOOKS, theirs)
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]  # nothing written
    (tmp_path / "file").write_text("x")
    with pytest.raises(CourseError, match="not a folder"):
        build_student_notebooks(NOTEBOOKS, tmp_path / "file")

    out = tmp_path / "student"
    build_student_notebooks(NOTEBOOKS, out)
    build_student_notebooks(NOTEBOOKS, out)  # a rerun over its own, unchanged copies is fine
    edited = out / "00_inside_the_pipeline.ipynb"
    edited.write_text(edited.read_text().replace("answer = None", "answer = 42", 1))
    with pytest.raises(CourseError, match="was changed since"):
        build_student_notebooks(NOTEBOOKS, out)
    assert "answer = 42" in edited.read_text()  # the student's work is kept
    build_student_notebooks(NOTEBOOKS, out, force=True)
    assert "answer = 42" not in edited.read_text()
    assert main(["student", "--src", str(NOTEBOOKS), "--out", str(theirs)]) == 2  # the CLI refuses too


def test_strip_solutions_clears_outputs():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output("stream", text="1")])]
    nb.cells.append(nbformat.v4.new_code_cell("x = 2", metadata={"tags": ["solution"]}))
    out, removed = strip_solutions(nb)
    assert removed == 1 and len(out.cells) == 1 and out.cells[0].outputs == [] and len(nb.cells) == 2


def _errors(nb) -> list[dict]:
    return [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.slow
def test_student_notebook_00_checks_fail_on_the_stubs_with_hints(tmp_path, runs_dir, bundle_dir):
    student = tmp_path / "student"
    build_student_notebooks(NOTEBOOKS, student)
    with pytest.raises(pm.PapermillExecutionError) as err:
        run_notebook(
            "00_inside_the_pipeline.ipynb", tmp_path / "out", src_dir=student, allow_errors=True, smoke=True
        )
    assert err.value.ename == "ExerciseNotSolved" and "not yet. Hint:" in err.value.evalue
    errors = _errors(nbformat.read(tmp_path / "out" / "00_inside_the_pipeline.ipynb", as_version=4))
    assert [e["ename"] for e in errors] == ["ExerciseNotSolved"] * 4  # every check, and nothing else, fails
    assert [e["evalue"][:13] for e in errors] == [f"Exercise 00.{i}" for i in (1, 2, 3, 4)]
    assert all("Hint:" in e["evalue"] for e in errors)
    assert (
        "`answer` is still None" in errors[0]["evalue"]
        and "my_label_logprobs returned None" in errors[3]["evalue"]
    )


@pytest.mark.slow
def test_student_notebook_01_checks_fail_on_the_stubs_with_hints(tmp_path, runs_dir, bundle_dir):
    student = tmp_path / "student"
    build_student_notebooks(NOTEBOOKS, student)
    with pytest.raises(pm.PapermillExecutionError):
        run_notebook(
            "01_data_assembly.ipynb", tmp_path / "out", src_dir=student, allow_errors=True, smoke=True,
            tasks=["clickbait", "tweet_irony"],
        )  # fmt: skip
    errors = _errors(nbformat.read(tmp_path / "out" / "01_data_assembly.ipynb", as_version=4))
    assert [(e["ename"], e["evalue"][:13]) for e in errors] == [
        ("ExerciseNotSolved", "Exercise 01.1"),
        ("ExerciseNotSolved", "Exercise 01.2"),
    ]
    assert (runs_dir / "data-demo" / "data_card.json").is_file()  # the notebook's own work ran to the end


@pytest.mark.slow
def test_full_notebook_00_passes_every_check(tmp_path, runs_dir, bundle_dir):
    out = run_notebook("00_inside_the_pipeline.ipynb", tmp_path, smoke=True)
    text = "".join(
        o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])
    )
    assert re.findall(r"(Exercise 00\.\d): Correct!", text) == [f"Exercise 00.{i}" for i in (1, 2, 3, 4)]


# ---------------------------------------------------------------- site


def _executed_notebooks(folder):
    """Two small executed notebooks: a title, a matplotlib figure (PNG output) and text."""
    from nbclient import NotebookClient

    folder.mkdir()
    for name, title in (("01_first.ipynb", "01 · First page"), ("02_second.ipynb", "02 · Second <page>")):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [
            nbformat.v4.new_markdown_cell(f"# {title}\n\n**Purpose.** Page {name[1]}. More text."),
            nbformat.v4.new_code_cell(  # as the notebooks show their figures: display(Image(...)) of a PNG
                "import io\nimport matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt\n"
                "from IPython.display import Image, display\nfig = plt.figure(figsize=(2, 1))\nplt.plot([0, 1])\n"
                "buf = io.BytesIO()\nfig.savefig(buf, format='png')\ndisplay(Image(data=buf.getvalue()))\n"
                "print('printed output')"
            ),
        ]
        NotebookClient(nb, kernel_name="python3", timeout=120).execute()
        nbformat.write(nb, folder / name)
    return folder


def test_site_refuses_a_folder_it_did_not_write(tmp_path):
    src = tmp_path / "nbs"
    src.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), src / "01_x.ipynb")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "a.html").write_text("mine")
    with pytest.raises(CourseError, match="was not written by the kit"):
        build_site(src, theirs)
    with pytest.raises(CourseError, match="outside the source folder"):
        build_site(src, src / "site")
    assert main(["site", "--run", "no-such-run"]) == 2
    assert main(["site", "--src", str(src)]) == 2  # where to? --out is required with --src
    assert (theirs / "a.html").read_text() == "mine"


@pytest.mark.slow
def test_site_pages_open_in_headless_chromium_with_their_figures(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it)")
    src = _executed_notebooks(tmp_path / "notebooks")
    index = build_site(src, tmp_path / "site")
    index = build_site(src, tmp_path / "site")  # rebuilding replaces its own site
    pages = sorted(p.name for p in index.parent.glob("*.html"))
    assert pages == ["01_first.html", "02_second.html", "index.html"]

    def dom(page):
        res = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom",
             page.as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        return res.stdout

    home = dom(index)
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a><br><small>Page \d\.</small>', home)
    assert links == [("01_first.html", "01 · First page"), ("02_second.html", "02 · Second &lt;page&gt;")]
    for href, title in links:
        page = dom(index.parent / href)
        assert f"<title>{title}</title>" in page and "printed output" in page
        imgs = re.findall(r"<img [^>]*>", page)
        assert len(imgs) == 1 and 'src="data:image/png;base64,' in imgs[0]
        assert 'data-decoded="yes"' in imgs[0], imgs  # the browser decoded the embedded figure
        png = base64.b64decode(re.search(r"base64,([^\"]+)", imgs[0]).group(1))
        assert png.startswith(b"\x89PNG")


NOISE = (
    "TqdmWarning: IProgress not found",
    "FutureWarning: `is_gradient_checkpointing` is deprecated",
    "[IPKernelApp]",
    "KeyboardInterrupt caught in kernel",
    "Kernel is running over TCP without encryption",
)


def _png(title: str | None = None) -> str:
    import io

    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Title": title} if title else None)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _page_notebook(folder, name: str, title: str, cells: list) -> None:
    """An "executed" notebook written by hand: a header with a purpose in markdown, then ``cells``."""
    nb = nbformat.v4.new_notebook()
    head = f"# {title}\n\n**Purpose.** See *what* `{name[:2]}` does, e.g. its figure. More text."
    nb.cells = [nbformat.v4.new_markdown_cell(head), *cells]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)


def _code(outputs: list):
    cell = nbformat.v4.new_code_cell("show()")
    cell.outputs = outputs
    return cell


def _stderr(text: str):
    return nbformat.v4.new_output("stream", name="stderr", text=text)


def _widget():
    """A progress bar as tqdm.auto draws it under ipywidgets: a widget view (no state saved) and its first text."""
    view = {"model_id": "f0fb", "version_major": 2, "version_minor": 0}
    data = {"application/vnd.jupyter.widget-view+json": view, "text/plain": "training:   0%|   | 0/3"}
    return nbformat.v4.new_output("display_data", data=data)


def _image(png: str):
    return nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})


def test_site_from_several_runs_has_navigation_alt_texts_and_no_noise(tmp_path):
    runs = tmp_path / "runs"
    tqdm_warning = (
        "/x/tqdm/auto.py:21: TqdmWarning: IProgress not found. Please update jupyter and ipywidgets.\n"
        "  from .autonotebook import tqdm as notebook_tqdm\n"
    )
    future = (
        "/x/modeling_utils.py:3303: FutureWarning: `is_gradient_checkpointing` is deprecated and will be "
        "removed in v6.\n  warnings.warn(\n"
    )
    _page_notebook(runs / "demo" / "notebooks", "01_data.ipynb", "01 · Data", [
        _code([_stderr(tqdm_warning)]),
        nbformat.v4.new_markdown_cell("## Loss curve\nThe loss per step. It falls."),
        _code([_stderr(future + "a warning of the notebook's own\n"), _image(_png()), _image(_png())]),
    ])  # fmt: skip
    _page_notebook(runs / "mixing" / "notebooks", "06_mixing.ipynb", "06 · Mixing", [
        _code([_stderr("[IPKernelApp] WARNING | Kernel is running over TCP without encryption.\n"), _widget()]),
        _code([_image(_png("Macro-F1 by task-data size"))]),
    ])  # fmt: skip
    expected = {
        "00_inside.ipynb": "00 · Inside",
        "01_data.ipynb": "01 · Data",
        "06_mixing.ipynb": "06 · Mixing",
    }
    srcs = [runs / "demo" / "notebooks", runs / "mixing" / "notebooks"]
    index = build_site(srcs, runs / "demo" / "site", expected=expected)

    home = index.read_text()
    assert "<code>demo/notebooks</code>, <code>mixing/notebooks</code>" in home
    assert str(tmp_path) not in home and "**" not in home  # no absolute path, no raw markdown
    assert "See <em>what</em> <code>01</code> does, e.g. its figure.</small>" in home
    missing = re.search(r'<ul id="missing">(.*?)</ul>', home, re.S).group(1)
    assert "00 · Inside: not executed in these runs" in missing
    assert "<code>python -m socialite_utils.pipeline --profile cpu-inside --run-name inside</code>" in missing
    assert "Mixing" not in missing and "01 · Data" not in missing

    first, second = (index.parent / "01_data.html").read_text(), (index.parent / "06_mixing.html").read_text()
    for page in (first, second):
        assert not [s for s in NOISE if s in page], [s for s in NOISE if s in page]
        assert "widget-view" not in page and "unpkg" not in page and "0/3" not in page  # no remote script
        assert page.count('<a href="index.html">Index</a>') == 2  # at the top and at the bottom
    assert "a warning of the notebook&#39;s own" in first or "a warning of the notebook's own" in first
    assert '<a rel="next" href="06_mixing.html">06 · Mixing &rarr;</a>' in first and 'rel="prev"' not in first
    assert '<a rel="prev" href="01_data.html">&larr; 01 · Data</a>' in second and 'rel="next"' not in second
    alts = re.findall(r'<img alt="([^"]*)" src="data:image/png', first + second)
    assert alts == [
        "Figure: Loss curve: The loss per step (figure 1 of 2)",
        "Figure: Loss curve: The loss per step (figure 2 of 2)",
        "Figure: Macro-F1 by task-data size",  # the PNG's own title
    ]
    manifest = json.loads((index.parent / ".socialite-site.json").read_text())
    assert manifest["missing"] == ["00_inside.ipynb"] and len(manifest["pages"]) == 2

    _page_notebook(runs / "other" / "notebooks", "01_data.ipynb", "01 · Again", [])
    with pytest.raises(
        CourseError, match=r"01_data.ipynb is in two source folders \(demo/notebooks and other"
    ):
        build_site([*srcs, runs / "other" / "notebooks"], tmp_path / "site2")
    assert not (tmp_path / "site2").exists()


def test_site_command_reads_the_runs_that_exist_and_names_the_missing_notebooks(runs_dir, capsys):
    _page_notebook(runs_dir / "demo" / "notebooks", "01_data_assembly.ipynb", "01 · Data assembly", [])
    _page_notebook(runs_dir / "writing" / "notebooks", "07_writing_assistance.ipynb", "07 · Writing", [])
    assert main(["site"]) == 0  # make site: demo, inside, mixing, writing; two of them exist
    out = capsys.readouterr().out
    assert "run 'inside' has no executed notebooks" in out and "run 'mixing' has no executed notebooks" in out
    site = runs_dir / "demo" / "site"
    assert sorted(p.name for p in site.glob("*.html")) == [
        "01_data_assembly.html", "07_writing_assistance.html", "index.html"
    ]  # fmt: skip
    home = (site / "index.html").read_text()
    missing = re.findall(r"<li>(\d\d) · [^<]*: not executed in these runs", home)
    assert missing == ["00", "02", "03", "04", "05", "06"]
    assert home.count("<code>make demo</code>") == 4 and "--profile cpu-mixing --run-name mixing" in home
    assert main(["site", "--run", "writing", "--out", str(runs_dir / "w-site")]) == 0
    assert [p.name for p in (runs_dir / "w-site").glob("0*.html")] == ["07_writing_assistance.html"]


@pytest.mark.slow
def test_pipeline_run_and_its_page_carry_no_environment_noise(tmp_path, runs_dir, bundle_dir, capfd):
    """Notebook 00 through the pipeline (smoke-inside): the kernel's log stays off the terminal, peft's deprecation
    warning out of the notebook, and the page built from it holds none of the noise strings."""
    import importlib.util

    from socialite_utils import pipeline

    argv = ["--profile", "smoke-inside", "--run-name", "inside", "--runs-dir", str(runs_dir)]
    assert pipeline.main(argv) == 0
    err = capfd.readouterr().err
    assert not [s for s in NOISE if s in err], err[-2000:]
    executed = runs_dir / "inside" / "notebooks" / "00_inside_the_pipeline.ipynb"
    cells = nbformat.read(executed, as_version=4).cells
    stderr = "".join(
        o.get("text", "") for c in cells for o in c.get("outputs", []) if o.get("name") == "stderr"
    )
    assert "is_gradient_checkpointing" not in stderr
    if importlib.util.find_spec("ipywidgets") is not None:  # installed by requirements.txt
        assert "IProgress not found" not in stderr
    index = build_site(executed.parent, tmp_path / "site")
    page = (index.parent / "00_inside_the_pipeline.html").read_text()
    assert not [s for s in NOISE if s in page]
    assert '<a href="index.html">Index</a>' in page
