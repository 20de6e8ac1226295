"""Every number of the README's results comes from a committed result file, so it cannot go stale.

The demo's tables are rendered here from ``figures/eval_aggregates.csv`` and ``figures/comparison.csv`` (what
``--publish figures`` wrote) and must appear in the README as they are; its claim lines are those of
``figures/summary.txt``. After a new run, the failure message prints the table to paste.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
FIGURES = REPO / "figures"

GROUP_NAMES = {"seen": "seen (trained)", "related": "related (held out)", "all": "all"}
SYSTEM_NAMES = {
    "majority": "majority label (from the train split's label shares)",
    "stratified": "stratified guess (expected over draws)",
    "tfidf_lr": "TF-IDF + logistic regression",
    "multitask_encoder": "multi-task MiniLM-L6 encoder (22M parameters, a head per task)",
    "base": "base model (zero-shot)",
    "tuned": "LoRA-tuned model",
}


def _rows(name: str) -> list[dict[str, str]]:
    with open(FIGURES / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def render_group_table() -> str:
    lines = [
        "| group | tasks | base mean macro-F1 ± SE | tuned mean macro-F1 ± SE | tuned − base |",
        "|---|---|---|---|---|",
    ]
    by_name = {r["name"]: r for r in _rows("eval_aggregates.csv") if r["level"] in ("group", "overall")}
    for key in ("seen", "related", "all"):
        r = by_name[key]
        delta = float(r["delta mean F1"])
        lines.append(
            f"| {GROUP_NAMES[key]} | {r['n_tasks']} | {r['base mean F1']} ± {r['base SE']} | "
            f"{r['tuned mean F1']} ± {r['tuned SE']} | {delta:+.1f} |"
        )
    return "\n".join(lines)


def render_system_table() -> str:
    rows = _rows("comparison.csv")
    value: dict[tuple[str, str], float] = {
        (r["system"], r["name"]): float(r["macro_f1"]) for r in rows if r["level"] == "group"
    }
    # the stratified floor is read at its expectation over draws (claims.py), the mean of its tasks' expectations
    for group in ("seen", "related"):
        expected = [float(r["macro_f1_expected"]) for r in rows
                    if r["level"] == "task" and r["system"] == "stratified" and r["group"] == group and r.get("macro_f1_expected")]  # fmt: skip
        if expected:
            value[("stratified draw", group)] = value[("stratified", group)]
            value[("stratified", group)] = sum(expected) / len(expected)
    systems = [s for s in SYSTEM_NAMES if (s, "seen") in value]
    lines = ["| system | seen mean macro-F1 | related mean macro-F1 |", "|---|---|---|"]
    for s in systems:
        cells = []
        for group in ("seen", "related"):
            v = value.get((s, group))
            cell = "no head (held out)" if v is None else f"{v:.1f}"
            if ("stratified draw", group) in value and s == "stratified":
                cell += f" (one seeded draw: {value[('stratified draw', group)]:.1f})"
            cells.append(cell)
        lines.append(f"| {SYSTEM_NAMES[s]} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def claim_lines() -> list[str]:
    """The verdict lines of the run's summary (``[SUPPORTED] ...``), as the pipeline printed them."""
    text = (FIGURES / "summary.txt").read_text(encoding="utf-8")
    return [m.strip() for m in re.findall(r"(?m)^\s*(\[(?:SUPPORTED|CONTRADICTED|INCONCLUSIVE)\].*)$", text)]


def test_the_demo_tables_are_rendered_from_the_committed_files():
    for table in (render_group_table(), render_system_table()):
        assert table in README, f"README's table is stale; paste this one:\n{table}"


def test_the_demo_claims_are_the_committed_ones():
    lines = claim_lines()
    assert lines, "figures/summary.txt has no verdict lines"
    for line in lines:
        assert line in README, f"README lacks the committed claim line:\n{line}"


def numbers_of_its_own(heading: str, claims: list[str], files: list[Path]) -> list[str]:
    """The numbers with a decimal point in the README section under ``heading``, outside its tables and its claim
    lines (checked on their own), that none of ``files`` holds."""
    section = README.split(heading, 1)[1].split("\n## ", 1)[0]
    section = "\n".join(
        line
        for line in section.splitlines()
        if not line.startswith("|") and line.removeprefix("- ") not in set(claims)
    )
    committed = " ".join(p.read_text(encoding="utf-8") for p in files)
    numbers = set(re.findall(r"(?<![\w.])[-+−]?\d+\.\d+", section))
    return sorted(n for n in numbers if n.lstrip("+-−") not in committed)


def test_the_results_section_has_no_number_of_its_own():
    files = [*FIGURES.glob("*.csv"), FIGURES / "summary.txt", FIGURES / "pipeline_steps.json"]
    missing = numbers_of_its_own("## What one run shows", claim_lines(), files)
    assert not missing, f"numbers in the README's results that no committed file holds: {missing}"


# ---------------------------------------------------------------- the confirmatory run (figures/confirm/)

CONFIRM = FIGURES / "confirm"
CONFIRM_SYSTEMS = ("tuned", "base", "majority", "stratified", "tfidf_lr", "multitask_encoder")


def render_confirm_table() -> str:
    """figures/confirm/systems.csv as the README shows it: per system and group, the mean over seeds with its
    two-level 95% CI, and each seed's value."""
    rows = {(r["system"], r["group"]): r for r in _rows("confirm/systems.csv")}
    seeds = [c for c in next(iter(rows.values())) if c.startswith("seed_")]
    head = "| system | seen: mean over seeds [95% CI] | seen: each seed | related: mean over seeds [95% CI] | related: each seed |"
    lines = [head, "|---|---|---|---|---|"]
    for system in CONFIRM_SYSTEMS:
        cells = []
        for group in ("seen", "related"):
            r = rows.get((system, group))
            if r is None:
                cells += ["no head (held out)" if system == "multitask_encoder" else "-", "-"]
                continue
            cells.append(f"{float(r['mean']):.1f} [{float(r['ci_low']):.1f}, {float(r['ci_high']):.1f}]")
            cells.append(", ".join(f"{float(r[s]):.1f}" for s in seeds))
        lines.append(f"| {SYSTEM_NAMES[system]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def confirm_claim_lines() -> list[str]:
    text = (CONFIRM / "summary.txt").read_text(encoding="utf-8")
    return [m.strip() for m in re.findall(r"(?m)^(\[(?:SUPPORTED|CONTRADICTED|INCONCLUSIVE)\].*)$", text)]


def test_the_confirmatory_table_and_claims_are_the_committed_ones():
    table = render_confirm_table()
    assert table in README, f"README's confirmatory table is stale; paste this one:\n{table}"
    lines = confirm_claim_lines()
    assert len(lines) >= 5, "figures/confirm/summary.txt has too few verdict lines"
    for line in lines:
        assert line in README, f"README lacks the confirmatory claim line:\n{line}"


def test_the_confirmatory_section_has_no_number_of_its_own():
    files = [p for p in CONFIRM.glob("*") if p.suffix in (".csv", ".txt", ".json")]
    missing = numbers_of_its_own("## The confirmatory run", confirm_claim_lines(), files)
    assert not missing, (
        f"numbers in the README's confirmatory section that no committed file holds: {missing}"
    )
