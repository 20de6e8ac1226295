"""Writing the analysis run (notebook 04): ``runs/<run_name>/`` with ``analysis.json``, ``sensitivity.jsonl`` and
``figures/``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..plotting import save_figures
from ..runs import (
    RunWriter,
    json_safe,
    new_run_dir,
    provenance,
    write_json,
    write_jsonl,
)

# ----------------------------------------------------------------------------------------------------------------
# Writing the analysis run
# ----------------------------------------------------------------------------------------------------------------


def write_analysis_run(
    run_name: str,
    analysis: dict,
    *,
    sensitivity_rows: Sequence[dict] = (),
    figures: dict[str, Any] | None = None,
    params: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``analysis.json``, ``sensitivity.jsonl``, ``params.json``, ``provenance.json`` and ``figures/<name>.png|pdf``
    atomically (nothing appears at ``runs/<run_name>`` unless everything was written)."""

    run_dir = new_run_dir(run_name, overwrite=overwrite)
    with RunWriter(run_dir, overwrite=overwrite) as tmp:
        write_json(tmp / "analysis.json", json_safe(analysis))
        write_jsonl(tmp / "sensitivity.jsonl", [json_safe(r) for r in sensitivity_rows])
        write_json(tmp / "params.json", json_safe(params or {}))
        write_json(
            tmp / "provenance.json",
            provenance({"stage": "error_analysis", "eval_run": analysis.get("eval_run")}),
        )
        (tmp / "figures").mkdir()
        save_figures(figures or {}, tmp / "figures")
    return run_dir


__all__ = ["write_analysis_run"]
