"""A pipeline over several training seeds (profile smoke-seeds, the cpu-confirm path on the tiny model): every seed
meets the same test rows, the base model is scored once, and the seeds are judged together with an interval over
seeds and test rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from socialite_utils import pipeline
from socialite_utils.claims import Verdict
from socialite_utils.runs import read_jsonl


@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    results = pipeline.run_seeded_pipeline("smoke-seeds", "s", [0, 1], runs_dir=root, log=lambda *_: None)
    assert [r.step for r in results if not r.ok] == [], results
    return root / "s", results


@pytest.mark.slow
def test_each_seed_draws_its_train_rows_and_meets_the_same_test_rows(seeds_run):
    root, results = seeds_run
    assert [r.step for r in results] == [
        *(f"seed-0/{s}" for s in ("data", "train", "eval", "baselines")),
        *(f"seed-1/{s}" for s in ("data", "train", "eval", "baselines")),
        "seeds",
    ]
    ids = {s: {split: [r["id"] for r in read_jsonl(root / f"seed-{s}" / "data" / "data" / f"{split}.jsonl")]
               for split in ("train", "test")} for s in (0, 1)}  # fmt: skip
    assert ids[0]["test"] == ids[1]["test"] and ids[0]["train"] != ids[1]["train"]
    # the base model was scored once: seed 1 reused seed 0's predictions
    provenance = json.loads((root / "seed-1" / "eval" / "provenance.json").read_text())
    assert provenance["seconds"]["base"] == 0.0 and provenance["base_from"].endswith("seed-0/eval")
    params = json.loads((root / "seed-1" / "train" / "params.json").read_text())
    assert params["seed"] == 1


@pytest.mark.slow
def test_the_seeds_are_judged_together(seeds_run):
    root, _ = seeds_run
    doc = json.loads((root / "seeds" / "claims.json").read_text())
    assert len(doc["claims"]) == 6 and all(c["verdict"] in (*Verdict.ALL, None) for c in doc["claims"])
    seen = next(
        c for c in doc["claims"] if c["comparison"] == "tuned vs base, seen tasks, mean over 2 seed(s)"
    )
    assert seen["n_seeds"] == 2
    # the combined effect is the mean of each seed's own tuned - base difference (metrics.json of each seed)
    per_seed = [
        json.loads((root / f"seed-{s}" / "eval" / "metrics.json").read_text())["group_comparisons"]["seen"][
            "delta"
        ]
        for s in (0, 1)
    ]
    assert seen["details"]["per_seed_effects"] == pytest.approx(per_seed)
    assert seen["effect"] == pytest.approx(sum(per_seed) / 2)
    lo, hi = seen["ci"]
    assert lo <= seen["effect"] <= hi
    table = pd.read_csv(root / "seeds" / "systems.csv")
    assert {"seed_0", "seed_1", "mean", "ci_low", "ci_high"} <= set(table.columns)
    tuned = table[(table.system == "tuned") & (table.group == "seen")].iloc[0]
    assert tuned["mean"] == pytest.approx((tuned["seed_0"] + tuned["seed_1"]) / 2, abs=0.01)
    assert (root / "seeds" / "figures" / "seed_points.png").exists()
    summary = (root / "seeds" / "summary.txt").read_text()
    assert "mean over 2 seed(s)" in summary
    verdict_lines = [line for line in summary.splitlines() if line.startswith("[")]
    assert len(verdict_lines) == 6 and not any(line.startswith("[SUPPORTED] [") or "] [SUPPORTED]" in line
                                               or "] [INCONCLUSIVE]" in line or "] [CONTRADICTED]" in line
                                               for line in verdict_lines)  # fmt: skip
    judged = [c for c in doc["claims"] if c["verdict"] is not None]
    assert all("mean over 2 seed(s)" in c["comparison"] and "2 seeds" in c["line"] for c in judged)
    # the encoder is trained on seen tasks only: on related tasks that claim says why it is not judged
    (unjudged,) = [c for c in doc["claims"] if c["verdict"] is None]
    assert unjudged["claim"].endswith("multi-task encoder on related tasks")


@pytest.mark.slow
def test_publishing_a_seeds_run_copies_the_judged_seeds(seeds_run, tmp_path):
    root, _ = seeds_run
    pipeline.publish_figures(root, tmp_path / "pub")
    names = sorted(p.name for p in (tmp_path / "pub").iterdir())
    for name in (
        "claims.csv",
        "claims.json",
        "systems.csv",
        "summary.txt",
        "seed_points.png",
        "seed_steps.json",
    ):
        assert name in names, name
    steps = json.loads((tmp_path / "pub" / "seed_steps.json").read_text())
    assert sorted(steps) == ["seed-0", "seed-1"] and [r["step"] for r in steps["seed-1"]][:2] == [
        "data",
        "train",
    ]


@pytest.mark.slow
def test_rerunning_the_same_command_keeps_the_finished_seeds(seeds_run):
    root, _ = seeds_run
    before = (root / "seed-1" / "eval" / "metrics.json").stat().st_mtime_ns
    again = pipeline.run_seeded_pipeline(
        "smoke-seeds", "s", [0, 1], runs_dir=root.parent, log=lambda *_: None
    )
    assert [r.step for r in again] == ["seeds"]
    assert (root / "seed-1" / "eval" / "metrics.json").stat().st_mtime_ns == before


def test_seeds_are_checked_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match=r"seeds = \[0, 0\]: expected distinct integers"):
        pipeline.profile_seeds("smoke-seeds", [0, 0])
    assert pipeline.profile_seeds("smoke") is None and pipeline.profile_seeds("cpu-confirm") == [0, 1, 2]
    with pytest.raises(ValueError, match="seeds need a train and an eval step"):
        pipeline.check_seeded_pipeline("smoke-mixing", "x", [0, 1], runs_dir=tmp_path)
    assert not any(tmp_path.iterdir())
