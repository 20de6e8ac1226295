"""Run a notebook headless with papermill, as users and the pipeline do."""

from __future__ import annotations

from pathlib import Path

import papermill as pm

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run_notebook(
    name: str, out_dir: Path, *, src_dir: Path = NOTEBOOKS, allow_errors: bool = False, **params
) -> Path:
    """Execute ``src_dir/<name>`` with ``params`` into ``out_dir``; raises PapermillExecutionError on a failing cell.

    ``allow_errors=True`` runs every cell even after one fails (the error is still raised at the end, and the
    executed copy in ``out_dir`` holds every cell's outputs).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / name
    pm.execute_notebook(
        str(src_dir / name),
        str(out),
        parameters=params,
        cwd=str(src_dir),
        progress_bar=False,
        kernel_name="python3",
        **({"allow_errors": True} if allow_errors else {}),
    )
    return out
