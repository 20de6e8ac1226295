"""Course material from the notebooks: student copies without solutions, and a static site of executed notebooks.

    python -m socialite_utils.course student [--src notebooks] [--out student] [--force]
    python -m socialite_utils.course site [--run demo | --src runs/demo/notebooks] [--out DIR] [--force]

``student`` copies every numbered notebook with the cells tagged ``solution`` removed (the stub and the check cells
stay, so each check fails with its hint until the student writes an answer). ``site`` renders executed notebooks
(by default the ones the pipeline saved in ``runs/<run>/notebooks/``) to HTML pages with their figures embedded, and
an ``index.html`` linking them by title: what a student opens without running anything.

Both write only into a folder they created (marked by a manifest file) and refuse anything else unless asked
(``force=True`` / ``--force``). A student copy the student has edited since it was written is never replaced
without ``force`` either: the manifest keeps each file's checksum.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat

from ..runs import (
    UnsafePathError,
    discard_temp_dir,
    make_temp_dir,
    remove_stale_temp_dirs,
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
    """The first sentence after ``**Purpose.**`` in the notebook's first cell (the kit's header), or ""."""
    head = nb.cells[0].source if nb.cells and nb.cells[0].cell_type == "markdown" else ""
    if "**Purpose.**" not in head:
        return ""
    text = " ".join(head.split("**Purpose.**", 1)[1].split("\n\n", 1)[0].split())
    text = re.sub(r"[*`]", "", text)  # the index shows text, not markdown
    return text.split(". ", 1)[0].rstrip(".") + "."


def _index_html(pages: list[tuple[str, str, str]], source: Path) -> str:
    items = "\n".join(
        f'  <li><a href="{html.escape(href)}">{html.escape(title)}</a>'
        + (f"<br><small>{html.escape(purpose)}</small>" if purpose else "")
        + "</li>"
        for href, title, purpose in pages
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>socialite: executed notebooks</title>\n'
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto;line-height:1.5}</style>\n</head>\n<body>\n"
        "<h1>socialite: executed notebooks</h1>\n"
        f"<p>The executed notebooks of <code>{html.escape(source.parent.name + '/' + source.name)}</code>; every "
        "figure is embedded in its page.</p>\n"
        "<p><strong>Content note.</strong> The pages print real social-media posts from the task data; some contain "
        "offensive, hateful or sexual language.</p>\n"
        f'<ol id="pages">\n{items}\n</ol>\n</body>\n</html>\n'
    )


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


def build_site(src_dir: str | os.PathLike, out_dir: str | os.PathLike, *, force: bool = False) -> Path:
    """Render the numbered notebooks of ``src_dir`` (executed ones, with outputs) to HTML in ``out_dir``.

    One page per notebook (nbconvert's lab template; PNG outputs and markdown images embedded as base64, no page
    needs another file) and ``index.html`` linking every page by its title. The site is built in a temporary
    folder beside ``out_dir`` and moved into place when complete; an existing ``out_dir`` is replaced only when the
    kit wrote it (or with ``force``). Returns the path of ``index.html``.
    """
    from nbconvert import HTMLExporter

    src, out = Path(src_dir), Path(out_dir)
    sources = _numbered_notebooks(src, "executed-notebook folder")
    previous = _check_destination(src, out, SITE_MANIFEST, force)
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
        exporter = HTMLExporter(template_name="lab", embed_images=True)
        pages = []
        for path in sources:
            nb = nbformat.read(path, as_version=4)
            title = notebook_title(nb, path.stem)
            body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
            head, end, tail = body.rpartition("</body>")
            body = head + _FIGURE_CHECK + end + tail if end else body + _FIGURE_CHECK
            write_text_atomic(build / f"{path.stem}.html", body)
            pages.append((f"{path.stem}.html", title, notebook_purpose(nb)))
        write_text_atomic(build / "index.html", _index_html(pages, src))
        record = {
            "written_by": "socialite_utils.course.build_site",
            "source": str(src),
            "pages": {href: title for href, title, _ in pages},
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
    print(f"wrote {len(pages)} pages and index.html to {out}")
    return out / "index.html"


# ---------------------------------------------------------------- command line


def _site_paths(args: argparse.Namespace) -> tuple[Path, Path]:

    if args.src:
        if not args.out:
            raise CourseError("--src needs --out: the folder to write the site to")
        return Path(args.src), Path(args.out)
    run_dir = resolve_run_dir(args.run)
    if not run_dir.is_dir():
        raise CourseError(f"run {args.run!r} does not exist ({run_dir}); run `make demo` first or pass --src")
    return run_dir / "notebooks", Path(args.out) if args.out else run_dir / "site"


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
    site.add_argument("--run", default="demo", help="run whose notebooks/ to render (default: demo)")
    site.add_argument("--src", default=None, help="a folder of executed notebooks instead of a run")
    site.add_argument("--out", default=None, help="output folder (default: <run>/site; required with --src)")
    for p in (student, site):
        p.add_argument("--force", action="store_true", help="write into a folder the kit did not create")
    args = parser.parse_args(argv)
    try:
        if args.command == "student":
            build_student_notebooks(args.src, args.out, force=args.force)
        else:
            src, out = _site_paths(args)
            index = build_site(src, out, force=args.force)
            print(f"open {index.resolve().as_uri()}")
    except CourseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
