"""Course material from the notebooks: student copies without solutions, and a static site of executed notebooks.

    python -m socialite_utils.course student [--src notebooks] [--out student] [--force]
    python -m socialite_utils.course site [--run demo ... | --src runs/demo/notebooks ...] [--out DIR] [--force]

``student`` copies every numbered notebook with the cells tagged ``solution`` removed (the stub and the check cells
stay, so each check fails with its hint until the student writes an answer). ``site`` renders executed notebooks
(by default the ones the pipeline saved in ``runs/<run>/notebooks/`` of the runs ``demo``, ``inside``, ``mixing``
and ``writing``, those that exist) to HTML pages with their figures embedded and previous / index / next links,
and an ``index.html`` linking them by title, with the command that makes each notebook the runs lack: what a
student opens without running anything.

Both write only into a folder they created (marked by a manifest file) and refuse anything else unless asked
(``force=True`` / ``--force``). A student copy the student has edited since it was written is never replaced
without ``force`` either: the manifest keeps each file's checksum.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

from ..runs import (
    UnsafePathError,
    discard_temp_dir,
    make_temp_dir,
    remove_stale_temp_dirs,
    repo_root,
    resolve_run_dir,
    safe_write_path,
    swap_into_place,
    write_text_atomic,
)

SOLUTION_TAG = "solution"
STUDENT_MANIFEST = ".socialite-student.json"
SITE_MANIFEST = ".socialite-site.json"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


class CourseError(ValueError):
    """A bad source or destination folder: nothing was written."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _numbered_notebooks(src_dir: Path, what: str) -> list[Path]:
    if not src_dir.is_dir():
        raise CourseError(f"{what} {src_dir} is not a directory")
    found = sorted(src_dir.glob(NOTEBOOK_GLOB))
    if not found:
        raise CourseError(f"{what} {src_dir} holds no numbered notebooks ({NOTEBOOK_GLOB})")
    return found


def _check_destination(src_dir: Path, out_dir: Path, manifest: str, force: bool) -> dict | None:
    """Refuse a destination that is, holds or lies inside the source, is a file, or is a folder the kit did not make.

    Returns the folder's manifest (None for a new or forced folder).
    """
    try:  # the folder itself passes the kit's write guard (a plain name, not a symbolic link)
        target = Path(os.path.abspath(out_dir))
        safe_write_path(target.parent, target.name, param="output folder")
    except UnsafePathError as e:
        raise CourseError(str(e)) from None
    src, out = src_dir.resolve(), out_dir.resolve()
    if out == src or src in out.parents or out in src.parents:
        raise CourseError(
            f"output folder {out_dir} must lie outside the source folder {src_dir} (and not hold it)"
        )
    if out.exists() and not out.is_dir():
        raise CourseError(f"output path {out_dir} exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return None
    if (out / manifest).is_file():
        try:
            return json.loads((out / manifest).read_text())
        except json.JSONDecodeError as e:
            raise CourseError(
                f"{out / manifest} is not valid JSON ({e}); remove the folder or pass force"
            ) from None
    if force:
        return None
    raise CourseError(
        f"output folder {out_dir} exists and was not written by the kit (no {manifest}); "
        "choose another folder, or pass --force (force=True) to write into it anyway"
    )


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------- student copies


def strip_solutions(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """A copy of ``nb`` without the cells tagged ``solution`` and without outputs; also the number removed."""
    out = nbformat.from_dict(json.loads(json.dumps(nb)))
    kept = [c for c in out.cells if SOLUTION_TAG not in c.get("metadata", {}).get("tags", [])]
    removed = len(out.cells) - len(kept)
    for cell in kept:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    out.cells = kept
    return out, removed


def build_student_notebooks(
    src_dir: str | os.PathLike = "notebooks", out_dir: str | os.PathLike = "student", *, force: bool = False
) -> list[Path]:
    """Write student copies of the numbered notebooks of ``src_dir`` into ``out_dir``, solutions removed.

    Refuses (:class:`CourseError`, nothing written) an ``out_dir`` that is or lies inside ``src_dir``, a non-empty
    folder the kit did not write, and a copy the student changed since it was written, unless ``force``.
    Files in ``out_dir`` other than the copies are left alone. Returns the written paths.
    """
    src, out = Path(src_dir), Path(out_dir)
    sources = _numbered_notebooks(src, "notebook folder")
    manifest = _check_destination(src, out, STUDENT_MANIFEST, force) or {}
    written_before = manifest.get("files", {})
    if not force:
        for source in sources:
            dest = out / source.name
            if dest.exists() and (
                source.name not in written_before or _sha256(dest) != written_before[source.name]
            ):
                raise CourseError(
                    f"{dest} was changed since `make student` wrote it (or was not written by it); "
                    "move it away or pass --force (force=True) to replace it"
                )
    copies = {s.name: strip_solutions(nbformat.read(s, as_version=4)) for s in sources}
    out.mkdir(parents=True, exist_ok=True)
    written, files = [], {}
    for name, (nb, _) in copies.items():
        try:
            dest = safe_write_path(out, name, param="student copy")
        except UnsafePathError as e:
            raise CourseError(str(e)) from None
        write_text_atomic(dest, nbformat.writes(nb) + "\n")
        files[name] = _sha256(dest)
        written.append(dest)
    record = {
        "written_by": "socialite_utils.course.build_student_notebooks",
        "source": str(src),
        "files": files,
    }
    write_text_atomic(out / STUDENT_MANIFEST, json.dumps(record, indent=1) + "\n")
    removed = sum(n for _, n in copies.values())
    print(f"wrote {len(written)} student notebooks to {out} ({removed} solution cells removed)")
    return written


# ---------------------------------------------------------------- static site

# Where each numbered notebook's executed copy comes from: the run `make site` reads it from by default and the
# command that makes that run. The index names the command for every notebook the runs given do not hold.
PRODUCERS: dict[str, tuple[str, str]] = {
    "00": ("inside", "python -m socialite_utils.pipeline --profile cpu-inside --run-name inside"),
    **{f"0{i}": ("demo", "make demo") for i in range(1, 6)},
    "06": ("mixing", "python -m socialite_utils.pipeline --profile cpu-mixing --run-name mixing"),
    "07": ("writing", "python -m socialite_utils.pipeline --profile cpu-writing --run-name writing"),
}
SITE_RUNS = ("demo", "inside", "mixing", "writing")  # `make site`'s runs, in the order their pages come

# Stderr lines about the environment, not the notebook, that runs made before the kit silenced them (or made where
# ipywidgets is missing) still hold; the site drops exactly these, every other warning stays on the page.
NOISE = (
    re.compile(r"^.*TqdmWarning: IProgress not found.*\n(?:[ \t]+from \.autonotebook import .*\n?)?", re.M),
    re.compile(
        r"^.*FutureWarning: `is_gradient_checkpointing` is deprecated.*\n(?:[ \t]+warnings\.warn\(\n?)?", re.M
    ),
    re.compile(r"^\[IPKernelApp\] .*\n?", re.M),
)

ALT_SENTENCE_CHARS = 100  # at most this much of a markdown sentence goes into a figure's alt text

# nbconvert's lab template with one change: every image output carries an alt text (output.metadata["alt"]).
_TEMPLATE_NAME = "socialite_site.html.j2"
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{% block data_png scoped %}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}" alt="{{ output.metadata.get('alt', '') | escape_html }}">
</div>
{%- endblock data_png %}
{% block data_jpg scoped %}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img src="data:image/jpeg;base64,{{ output.data['image/jpeg'] | escape_html }}" alt="{{ output.metadata.get('alt', '') | escape_html }}">
</div>
{%- endblock data_jpg %}
"""


def notebook_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The first markdown heading of ``nb`` (without the #), or ``fallback``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


# Each page marks its embedded figures once loaded: data-decoded="yes" when the browser decoded the image, "no" (and
# a red outline) when it did not, so a reader sees a broken figure and a headless browser can check every page.
# Remote images (the Colab badge) are left alone: they need the internet, the figures do not.
_FIGURE_CHECK = """<script>
window.addEventListener("load", () => {
  const figures = document.querySelectorAll('img[src^="data:"]');
  for (const img of figures) {
    const ok = img.complete && img.naturalWidth > 0;
    img.dataset.decoded = ok ? "yes" : "no";
    if (!ok) img.style.outline = "3px solid red";
  }
  document.body.dataset.figures = String(figures.length);
});
</script>
"""


def notebook_purpose(nb: nbformat.NotebookNode) -> str:
    """The first sentence after ``**Purpose.**`` in the notebook's first cell (the kit's header), as markdown; ""
    when there is none."""
    head = nb.cells[0].source if nb.cells and nb.cells[0].cell_type == "markdown" else ""
    if "**Purpose.**" not in head:
        return ""
    text = " ".join(head.split("**Purpose.**", 1)[1].split("\n\n", 1)[0].split())
    return first_sentence(text) + "."


def first_sentence(text: str) -> str:
    """``text`` up to its first full stop that ends a sentence (not "et al." or "e.g."), without the stop."""
    return re.split(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)\.\s+(?=[A-Z*`(\[])", text, maxsplit=1)[0].rstrip(".")


def markdown_inline(text: str) -> str:
    """One paragraph of markdown as inline HTML (raw HTML in it escaped)."""
    import mistune

    out = mistune.create_markdown(escape=True)(text).strip()
    return out[3:-4] if out.startswith("<p>") and out.endswith("</p>") else out


def _plain(markdown: str) -> str:
    """Markdown as plain text: links by their text, no emphasis or code marks, no heading marks."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    text = re.sub(r"[*`]", "", text)
    return " ".join(text.lstrip("#").split())


def _markdown_context(cell: nbformat.NotebookNode) -> str:
    """What a markdown cell says first: its heading and the first sentence after it (either may be missing)."""
    lines = [line for line in cell.source.splitlines() if line.strip()]
    heading = _plain(lines.pop(0)) if lines and lines[0].startswith("#") else ""
    sentence = first_sentence(_plain(" ".join(lines))) if lines else ""
    if len(sentence) > ALT_SENTENCE_CHARS:  # an alt text names the figure; the page around it explains
        sentence = sentence[:ALT_SENTENCE_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + " …"
    return ": ".join(part for part in (heading, sentence) if part)


def png_title(data_b64: str) -> str | None:
    """The ``Title`` text chunk of a base64 PNG (the kit's ``save_figure`` writes the figure's title there)."""
    try:
        raw = base64.b64decode(data_b64)
    except ValueError:
        return None
    if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    pos = 8
    while pos + 8 <= len(raw):
        length = int.from_bytes(raw[pos : pos + 4], "big")
        kind, body = raw[pos + 4 : pos + 8], raw[pos + 8 : pos + 8 + length]
        if kind == b"tEXt" and body.startswith(b"Title\x00"):
            return body[6:].decode("latin-1").strip() or None
        if kind in (b"IDAT", b"IEND"):
            return None  # matplotlib writes its text chunks before the image data
        pos += 12 + length
    return None


def describe_images(nb: nbformat.NotebookNode, page_title: str) -> int:
    """Give every image output of ``nb`` an alt text (``output.metadata["alt"]``, in place): the figure's own
    title when its PNG carries one, else what the nearest markdown cell above says (its heading or first
    sentence), numbered when a cell shows several. Returns the number of images described."""
    context, count = page_title, 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            context = _markdown_context(cell) or context
            continue
        images = [o for o in cell.get("outputs", []) if {"image/png", "image/jpeg"} & set(o.get("data", {}))]
        for k, out in enumerate(images, 1):
            title = png_title(out["data"]["image/png"]) if "image/png" in out["data"] else None
            numbered = f" (figure {k} of {len(images)})" if len(images) > 1 else ""
            out.setdefault("metadata", {})["alt"] = f"Figure: {title or context}{numbered}"
            count += 1
    return count


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def drop_noise(nb: nbformat.NotebookNode) -> int:
    """Remove the :data:`NOISE` lines from the stderr outputs of ``nb`` (an output left empty goes) and its widget
    outputs (tqdm's progress bars under ipywidgets: a headless run saves no widget state, so a page could show
    only an empty box, after loading a script from the internet). In place; returns how many lines and outputs
    went."""
    removed = 0
    if nb.metadata.pop("widgets", None) is not None:
        removed += 1
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if WIDGET_VIEW in out.get("data", {}):
                removed += 1
                continue
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = out["text"]
                for pattern in NOISE:
                    text, n = pattern.subn("", text)
                    removed += n
                if not text.strip():
                    continue
                out["text"] = text
            kept.append(out)
        cell.outputs = kept
    return removed


def _nav(pages: list[tuple[str, str]], i: int) -> str:
    """Previous / index / next links of page ``i`` of ``pages`` ((href, title) in site order)."""
    links = []
    if i > 0:
        href, title = pages[i - 1]
        links.append(f'<a rel="prev" href="{html.escape(href)}">&larr; {html.escape(title)}</a>')
    links.append('<a href="index.html">Index</a>')
    if i + 1 < len(pages):
        href, title = pages[i + 1]
        links.append(f'<a rel="next" href="{html.escape(href)}">{html.escape(title)} &rarr;</a>')
    return (
        '<nav class="socialite-nav" aria-label="course pages" style="font-family:sans-serif;padding:0.6em 1em;'
        'display:flex;gap:1.5em;justify-content:center">' + "".join(links) + "</nav>\n"
    )


def _with_nav(body: str, nav: str) -> str:
    """The page with ``nav`` at its top and bottom and the figure check before ``</body>``."""
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + "\n" + nav, body, count=1)
    head, end, tail = body.rpartition("</body>")
    return head + nav + _FIGURE_CHECK + end + tail if end else body + nav + _FIGURE_CHECK


def _source_label(src: Path) -> str:
    """A source folder as the index names it: ``demo/notebooks`` (never an absolute path)."""
    return f"{src.parent.name}/{src.name}" if src.parent.name else src.name


def _index_html(
    pages: list[tuple[str, str, str, Path]], sources: list[Path], missing: list[tuple[str, str]]
) -> str:
    items = "\n".join(
        f'  <li><a href="{html.escape(href)}">{html.escape(title)}</a>'
        + (f"<br><small>{markdown_inline(purpose)}</small>" if purpose else "")
        + "</li>"
        for href, title, purpose, _ in pages
    )
    labels = ", ".join(f"<code>{html.escape(_source_label(s))}</code>" for s in sources)
    text = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>socialite: executed notebooks</title>\n'
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto;line-height:1.5}</style>\n</head>\n<body>\n"
        "<h1>socialite: executed notebooks</h1>\n"
        f"<p>The executed notebooks of {labels}; every figure is embedded in its page, and every page links to the "
        "previous and next one.</p>\n"
        "<p><strong>Content note.</strong> The pages print real social-media posts from the task data; some contain "
        "offensive, hateful or sexual language.</p>\n"
        f'<ul id="pages" style="list-style:none;padding:0">\n{items}\n</ul>\n'
    )
    if missing:
        rows = []
        for name, title in missing:
            run, command = PRODUCERS.get(name[:2], ("", ""))
            how = (
                f" Make it with <code>{html.escape(command)}</code>, then build the site again with the run "
                f"<code>{html.escape(run)}</code> among its runs (<code>make site</code> reads "
                f"{', '.join(SITE_RUNS)})."
                if command
                else ""
            )
            rows.append(f"  <li>{html.escape(title)}: not executed in these runs.{how}</li>")
        text += '<h2>Not in this site</h2>\n<ul id="missing">\n' + "\n".join(rows) + "\n</ul>\n"
    return text + "</body>\n</html>\n"


def _keep_user_files(out: Path, build: Path, manifest: dict) -> None:
    """Copy into the new site ``build`` every entry of the previous site ``out`` that the kit did not write (not a
    page of its manifest, not the index, not the manifest): a rebuild never deletes a user's file."""
    kit = set(manifest.get("pages", {})) | {"index.html", SITE_MANIFEST}
    for entry in sorted(out.iterdir()):
        if entry.name in kit or (build / entry.name).exists():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, build / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, build / entry.name, follow_symlinks=False)


def _site_sources(src_dirs: Sequence[Path]) -> list[Path]:
    """The numbered notebooks of every source folder, in page order; one notebook in two folders is refused."""
    found: dict[str, Path] = {}
    for src in src_dirs:
        for path in _numbered_notebooks(src, "executed-notebook folder"):
            if path.name in found:
                raise CourseError(
                    f"{path.name} is in two source folders ({_source_label(found[path.name].parent)} and "
                    f"{_source_label(src)}); give only one of them"
                )
            found[path.name] = path
    return [found[name] for name in sorted(found)]


def build_site(
    src_dir: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    expected: dict[str, str] | None = None,
) -> Path:
    """Render the numbered notebooks of ``src_dir`` (one folder of executed notebooks, or several: a run's
    ``notebooks/`` each) to HTML in ``out_dir``.

    One page per notebook (nbconvert's lab template; PNG outputs and markdown images embedded as base64, no page
    needs another file; every image with an alt text; previous / index / next links at the top and bottom;
    the environment noise of :data:`NOISE` dropped from stderr) and ``index.html`` linking every page by its title
    and purpose. ``expected`` (notebook file name -> title) names the notebooks the site should have: the index
    lists each one missing with the command that makes it. The site is built in a temporary folder beside
    ``out_dir`` and moved into place when complete; an existing ``out_dir`` is replaced only when the kit wrote it
    (or with ``force``). Returns the path of ``index.html``.
    """
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    srcs = [Path(src_dir)] if isinstance(src_dir, str | os.PathLike) else [Path(s) for s in src_dir]
    if not srcs:
        raise CourseError("no executed-notebook folder given")
    out = Path(out_dir)
    sources = _site_sources(srcs)
    previous = None
    for src in srcs:
        previous = _check_destination(src, out, SITE_MANIFEST, force) or previous
    if (
        out.exists() and any(out.iterdir()) and not (out / SITE_MANIFEST).is_file()
    ):  # forced: add, never delete
        build, replace = out, False
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_dirs(out.parent)  # a killed build's marked temporary folder, never anything else
        build, replace = make_temp_dir(out.parent, out.name, param="output folder"), True
        build.chmod(0o777 & ~_umask())  # a site is meant to be read
    try:
        exporter = HTMLExporter(
            template_name="lab",
            template_file=_TEMPLATE_NAME,
            extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
            embed_images=True,
        )
        notebooks = [nbformat.read(path, as_version=4) for path in sources]
        pages = [
            (f"{path.stem}.html", notebook_title(nb, path.stem), notebook_purpose(nb), path.parent)
            for path, nb in zip(sources, notebooks, strict=True)
        ]
        links = [(href, title) for href, title, *_ in pages]
        for i, (nb, (href, title, *_)) in enumerate(zip(notebooks, pages, strict=True)):
            drop_noise(nb)
            describe_images(nb, title)
            body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
            write_text_atomic(build / href, _with_nav(body, _nav(links, i)))
        have = {path.name for path in sources}
        missing = [(name, title) for name, title in sorted((expected or {}).items()) if name not in have]
        write_text_atomic(build / "index.html", _index_html(pages, srcs, missing))
        record = {
            "written_by": "socialite_utils.course.build_site",
            "source": [str(s) for s in srcs] if len(srcs) > 1 else str(srcs[0]),
            "pages": {href: title for href, title, *_ in pages},
            "missing": [name for name, _ in missing],
        }
        write_text_atomic(build / SITE_MANIFEST, json.dumps(record, indent=1) + "\n")
        if replace and out.is_dir():
            _keep_user_files(out, build, previous or {})
    except BaseException:
        if replace:
            discard_temp_dir(build)
        raise
    if replace:
        swap_into_place(build, out)  # the previous site (a folder the kit wrote, checked above) goes only now
    note = f"; not in these runs: {', '.join(name for name, _ in missing)}" if missing else ""
    print(f"wrote {len(pages)} pages and index.html to {out}{note}")
    return out / "index.html"


def course_notebooks() -> dict[str, str]:
    """The checkout's numbered notebooks, file name -> title (empty when the package is installed elsewhere)."""
    root = repo_root()
    if root is None or not (root / "notebooks").is_dir():
        return {}
    return {
        p.name: notebook_title(nbformat.read(p, as_version=4), p.stem)
        for p in sorted((root / "notebooks").glob(NOTEBOOK_GLOB))
    }


# ---------------------------------------------------------------- command line


def _site_paths(args: argparse.Namespace) -> tuple[list[Path], Path, dict[str, str] | None]:
    """(source folders, output folder, expected notebooks) of the ``site`` command."""
    if args.src:
        if not args.out:
            raise CourseError("--src needs --out: the folder to write the site to")
        return [Path(s) for s in args.src], Path(args.out), None
    names = args.run or list(SITE_RUNS)
    found, skipped = [], []
    for name in names:
        run_dir = resolve_run_dir(name)
        has_pages = (run_dir / "notebooks").is_dir() and any((run_dir / "notebooks").glob(NOTEBOOK_GLOB))
        (found if has_pages else skipped).append((name, run_dir))
    if not found:
        listed = ", ".join(f"{n!r} ({d})" for n, d in skipped)
        raise CourseError(
            f"no executed notebooks in run(s) {listed}: the pipeline saves them in <run>/notebooks/; "
            "run `make demo` first or pass --src"
        )
    for name, run_dir in skipped:
        print(f"run {name!r} has no executed notebooks ({run_dir / 'notebooks'}): its pages are left out")
    out = Path(args.out) if args.out else found[0][1] / "site"
    return [run_dir / "notebooks" for _, run_dir in found], out, course_notebooks()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m socialite_utils.course", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    student = sub.add_parser("student", help="student copies of the notebooks, without the solution cells")
    student.add_argument(
        "--src", default="notebooks", help="folder of the numbered notebooks (default: notebooks)"
    )
    student.add_argument("--out", default="student", help="folder for the copies (default: student)")
    site = sub.add_parser("site", help="executed notebooks rendered to HTML, with an index page")
    site.add_argument(
        "--run",
        action="append",
        help=f"a run whose notebooks/ to render; repeat for several (default: {' '.join(SITE_RUNS)}, those that "
        "exist)",
    )
    site.add_argument(
        "--src", action="append", help="a folder of executed notebooks instead of runs; repeat for several"
    )
    site.add_argument(
        "--out", default=None, help="output folder (default: <first run>/site; required with --src)"
    )
    for p in (student, site):
        p.add_argument("--force", action="store_true", help="write into a folder the kit did not create")
    args = parser.parse_args(argv)
    try:
        if args.command == "student":
            build_student_notebooks(args.src, args.out, force=args.force)
        else:
            srcs, out, expected = _site_paths(args)
            index = build_site(srcs, out, force=args.force, expected=expected)
            print(f"open {index.resolve().as_uri()}")
    except CourseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
