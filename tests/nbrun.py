"""Run a notebook headless with papermill, as users and the pipeline do."""

from __future__ import annotations

from pathlib import Path

import papermill as pm

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run_notebook(name: str, out_dir: Path, **params) -> Path:
    """Execute notebooks/<name> with ``params`` into ``out_dir``; raises PapermillExecutionError on a failing cell."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / name
    pm.execute_notebook(
        str(NOTEBOOKS / name),
        str(out),
        parameters=params,
        cwd=str(NOTEBOOKS),
        progress_bar=False,
        kernel_name="python3",
    )
    return out
