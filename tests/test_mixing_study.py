"""The findings logic of notebook 06 on hand-made results tables: every verdict is reachable, and the evidence is a
paired test on the same test examples. Also the grid and its parameter checks."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from socialite_utils.studies.mixing import (
    CONTRADICTED,
    INCONCLUSIVE,
    SUPPORTED,
    MixingStudyParams,
    build_grid,
    evaluate_findings,
    format_findings,
    label_prior_caveat,
    run_grid,
)

TASKS = {  # task -> (category, group)
    "irony": ("humor_sarcasm", "seen"),
    "stance": ("other_social_factors", "seen"),
    "sentiment": ("sentiment_emotion", "seen"),
    "clickbait": ("trustworthiness", "related"),
}
N = 60


def make_tables(acc, sizes=(16, 144)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions where ``acc(task_rows, ratio, task)`` of the N examples per task are right (the first ones)."""
    preds, results = [], []
    for n in sizes:
        for r in (0, 1):
            for task, (cat, group) in TASKS.items():
                k = round(acc(n, r, task) * N)
                cell = {"cell": f"n{n}-r{r}-s0", "task_rows": n, "general_ratio": r, "seed": 0}
                for i in range(N):
                    gold = "yes" if i % 2 else "no"
                    wrong = "no" if gold == "yes" else "yes"
                    preds.append({**cell, "task": task, "category": cat, "group": group, "id": f"{task}:{i}",
                                  "gold": gold, "parsed": gold if i < k else wrong, "labels": ["no", "yes"]})  # fmt: skip
                results.append({**cell, "task": task, "category": cat, "group": group, "n": N,
                                "macro_f1": 100 * acc(n, r, task), "label_prior_macro_f1": 33.3})  # fmt: skip
    return pd.DataFrame(results), pd.DataFrame(preds)


def tiny_study(run_name: str, **overrides) -> MixingStudyParams:
    """A one- or two-cell smoke grid on two tasks, a handful of rows: seconds per cell."""
    values = dict(
        run_name=run_name, tasks=["tweet_irony", "tweet_stance"], task_rows=[4], general_ratios=[0], seeds=[0],
        general_heldout=4, max_eval_per_task=4, bootstrap_samples=50, smoke=True, train={"max_steps": 2},
    )  # fmt: skip
    return MixingStudyParams(**{**values, **overrides}).validate()


def verdicts(acc, **kw):
    results, preds = make_tables(acc, **kw)
    findings = evaluate_findings(results, preds, bootstrap_samples=300)
    assert len(findings) == 4 and all(f["evidence"] for f in findings)
    return [f["verdict"] for f in findings], findings


def test_findings_all_supported():
    def acc(n, r, task):
        if task == "clickbait":
            return 0.4 if r else 0.9  # generalist data hurts the factual task
        if n == 16:
            return 0.95 if r else 0.5  # a large gain when task data is scarce...
        return 0.85 if r else 0.8  # ...a small one when it is plentiful

    got, findings = verdicts(acc)
    assert got == [SUPPORTED] * 4
    assert findings[0]["delta"] > 0 and findings[0]["ci"][0] > 0 and findings[0]["p_value"] < 0.05
    assert findings[3]["delta"] < 0
    assert "180 paired test examples, each compared in 2" in findings[0]["evidence"]  # 3 tasks; 2 sizes
    assert findings[0]["caveat"] is None


def test_findings_contradicted():
    def acc(n, r, task):
        if task == "clickbait":
            return 0.95 if r else 0.5  # generalist data helps the factual task
        if n == 16:
            return 0.5 if r else 0.95  # generalist data hurts, most when task data is scarce
        return 0.8 if r else 0.85

    got, _ = verdicts(acc)
    assert got == [CONTRADICTED] * 4


def test_findings_inconclusive_when_nothing_differs():
    got, findings = verdicts(lambda n, r, task: 0.7)
    assert got == [INCONCLUSIVE] * 4
    assert findings[0]["p_value"] == 1.0 and findings[0]["delta"] == 0


def test_scarcity_needs_two_sizes_and_factual_needs_a_task():
    def acc(n, r, task):
        return 0.9 if r else 0.5

    results, preds = make_tables(acc, sizes=(16,))
    keep = preds["task"] != "clickbait"
    findings = evaluate_findings(results[results["task"] != "clickbait"], preds[keep], bootstrap_samples=200)
    assert [f["verdict"] for f in findings] == [SUPPORTED, INCONCLUSIVE, SUPPORTED, INCONCLUSIVE]
    assert "at least two task-data sizes" in findings[1]["evidence"]
    assert "no evaluated task" in findings[3]["evidence"]
    text = format_findings(findings)
    assert text.count("[SUPPORTED]") == 2 and "[INCONCLUSIVE] 2. the gain is largest" in text


def test_label_prior_caveat():
    results, _ = make_tables(lambda n, r, task: 0.5)
    results["macro_f1"] = 34.0  # no better than predicting the majority label
    assert "do no better than the label-prior baseline" in label_prior_caveat(results)
    results["macro_f1"] = 60.0
    assert label_prior_caveat(results) is None


def test_label_prior_caveat_is_judged_per_cell():
    """One cell at the prior, three well above: the mean over cells (53.5) would hide it; the caveat names it."""
    results, _ = make_tables(lambda n, r, task: 0.5)
    results["macro_f1"] = 60.0
    results.loc[results["cell"] == "n16-r1-s0", "macro_f1"] = 34.0
    caveat = label_prior_caveat(results)
    assert caveat.startswith("in 1 of 4 cell(s) the adapters do no better than the label-prior baseline")
    assert "n16-r1-s0 (34.0 vs 33.3)" in caveat and "n144" not in caveat


def test_label_prior_caveat_is_judged_on_each_findings_tasks():
    """The seen tasks' adapters sit at the label prior while clickbait (related) is far above it: the mean over all
    tasks (about 40) would hide it; findings 1-3 (seen tasks) carry the caveat, finding 4 (clickbait) does not."""

    def acc(n, r, task):
        return 0.9 if task == "clickbait" else 0.5

    results, preds = make_tables(acc)
    results.loc[results["task"] != "clickbait", "macro_f1"] = 34.0  # 0.7 above the prior of 33.3
    findings = evaluate_findings(results, preds, bootstrap_samples=100)
    assert [f["caveat"] is None for f in findings] == [False, False, False, True]
    assert findings[0]["caveat"].startswith(
        "in 4 of 4 cell(s) the adapters do no better than the label-prior"
    )
    text = format_findings(findings)
    assert text.count("    caveat: in 4 of 4 cell(s)") == 3  # under each finding it belongs to


def test_mixing_verdicts_come_from_the_interval():
    """The verdict is the one rule of socialite_utils.claims on the finding's own CI, and the printed line names
    the comparison, the interval, p (never 0) and n."""
    from socialite_utils.claims import verdict_from_interval

    def acc(n, r, task):
        if task == "clickbait":
            return 0.4 if r else 0.9
        return 0.9 if r else 0.5

    _, findings = verdicts(acc)
    for f, direction in zip(findings, (1, 1, 1, -1), strict=True):
        assert f["verdict"] == verdict_from_interval(*f["ci"], direction)
    line = findings[0]["line"]
    assert line.startswith("[SUPPORTED] 1. generalist data helps")
    assert "generalist ratio > 0 vs 0 (same task rows and seed), macro-F1 +" in line and "[95% CI +" in line
    assert "p < 0.00667" in line and "p = 0.000" not in line  # no replicate crosses 0: p < 2/B, B = 300
    assert "n = 180 examples, 3 tasks" in line
    assert findings[0]["task_count"]["k"] == 3  # every seen task better after Holm
    text = format_findings(findings)
    assert text.splitlines()[0] == line


def test_grid_and_parameter_checks():
    p = MixingStudyParams(task_rows=[16, 48], general_ratios=[0, 1, 3], seeds=[0, 1])
    grid = build_grid(p.validate())
    assert len(grid) == 12 and grid[0]["cell"] == "n16-r0-s0" and grid[-1]["cell"] == "n48-r3-s1"
    for bad, msg in [
        ({"general_ratios": [1, 3]}, "needs 0"),
        ({"task_rows": [0]}, r"task_rows = \[0\] is out of range: expected a value >= 1"),
        ({"general_ratios": [0, -1]}, r"general_ratios = \[0, -1\] is out of range: expected a value >= 0"),
        ({"seeds": []}, "seeds must be a non-empty list"),
        ({"train": {"learning_rat": 1e-3}}, r"unknown TrainParams field\(s\) \['learning_rat'\]"),
    ]:
        with pytest.raises(ValueError, match=msg):
            MixingStudyParams(**bad).validate()


def test_params_from_notebook_globals():
    values = {"run_name": "x", "seed": 7, "task_rows": [8], "learning_rate": 1e-3, "max_steps": 5, "smoke": False,
              "overwrite": True, "unrelated": 1}  # fmt: skip
    p = MixingStudyParams.from_mapping(values)
    assert p.data_seed == 7 and p.task_rows == [8] and p.train == {"learning_rate": 1e-3, "max_steps": 5}
    smoke = MixingStudyParams.from_mapping({**values, "smoke": True})
    assert smoke.train == {"max_steps": 5}  # the rest comes from TrainParams.for_smoke


def test_a_study_cannot_mix_two_experiments(runs_dir):
    from socialite_utils.runs import write_json
    from socialite_utils.studies.mixing import run_grid

    p = MixingStudyParams(run_name="st", base_model="tiny-random", smoke=True)
    write_json(runs_dir / "st" / "study_params.json", {**p.to_dict(), "base_model": "smollm2-135m"})
    with pytest.raises(ValueError, match=r"other \['base_model'\].*choose another run_name"):
        run_grid(p)
    assert not (runs_dir / "st" / "cells").exists()  # nothing was started
    with pytest.raises(ValueError, match="general_heldout = 0 is out of range: expected a value >= 1"):
        MixingStudyParams(general_heldout=0).validate()


@pytest.mark.slow
def test_an_interrupted_cell_resumes_from_its_checkpoint(runs_dir, bundle_dir, general_dir):
    import json

    from transformers import TrainerCallback

    from socialite_utils.runs import runs_root_at
    from socialite_utils.studies.mixing import _build_cell_data, _train_params, run_cell
    from socialite_utils.training import train_lora

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise KeyboardInterrupt

    p = tiny_study("st", train={"max_steps": 3, "save_steps": 1})
    cell = build_grid(p)[0]
    cells = runs_dir / "st" / "cells"
    with runs_root_at(cells):
        _build_cell_data(p, cell, f"data-{cell['cell']}")
        with pytest.raises(KeyboardInterrupt):
            train_lora(_train_params(p, cell), callbacks=[Crash()], verbose=False)
    assert (cells / "train-n4-r0-s0.partial" / "checkpoints").is_dir()
    done = run_cell(p, cell, cells, log=lambda *_: None)
    assert done["ran"] == ["train", "eval", "retention"]  # the data run was reused
    summary = json.loads((cells / "train-n4-r0-s0" / "train_summary.json").read_text())
    assert "checkpoint-1" in summary["resumed_from"] and summary["global_step"] == 3  # saved before the crash


@pytest.mark.slow
def test_a_cell_killed_before_its_first_checkpoint_restarts_clean(runs_dir, bundle_dir, general_dir):
    from transformers import TrainerCallback

    from socialite_utils.runs import runs_root_at
    from socialite_utils.studies.mixing import _build_cell_data, _train_params, run_grid
    from socialite_utils.training import train_lora

    class KilledAtStart(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            raise KeyboardInterrupt

    p = tiny_study("st")
    cell = build_grid(p)[0]
    cells = runs_dir / "st" / "cells"
    with runs_root_at(cells):
        _build_cell_data(p, cell, f"data-{cell['cell']}")
        with pytest.raises(KeyboardInterrupt):
            train_lora(_train_params(p, cell), callbacks=[KilledAtStart()], verbose=False)
    partial = cells / "train-n4-r0-s0.partial"
    assert (partial / "params.json").is_file()  # the kill left the .partial with no checkpoint
    (partial / "checkpoints" / "checkpoint-1").mkdir(
        parents=True
    )  # and one killed while it was being written
    # resume=False refuses the existing study; nothing is touched
    with pytest.raises(FileExistsError, match="set resume=True to continue it"):
        run_grid(replace(p, resume=False))
    assert (partial / "checkpoints" / "checkpoint-1").is_dir()
    said = []
    cells_run = run_grid(p, log=said.append)  # the notebook's call, resume=True by default
    assert cells_run[0]["ran"] == ["train", "eval", "retention"]
    assert any("before its first complete checkpoint (incomplete checkpoint-1 (the directory is empty))" in m
               for m in said)  # fmt: skip
    assert (cells / "train-n4-r0-s0" / "adapter").is_dir() and not partial.exists()


def test_repeating_a_seed_adds_no_evidence():
    """Test examples are resampled, not (example, cell) pairs: an identical second seed leaves the CI unchanged."""

    def acc(n, r, task):
        return 0.75 if r else 0.6

    results, preds = make_tables(acc)
    one = evaluate_findings(results, preds, bootstrap_samples=300)[0]
    twice = pd.concat([preds, preds.assign(seed=1)], ignore_index=True)
    two = evaluate_findings(results, twice, bootstrap_samples=300)[0]
    assert "each compared in 4" in two["evidence"]
    assert two["delta"] == pytest.approx(one["delta"]) and two["ci"] == pytest.approx(one["ci"])


@pytest.mark.slow
def test_the_base_model_is_scored_once_per_study(runs_dir, bundle_dir, general_dir):
    """Every cell is scored on the same test rows and held-out slice: the first cell scores the base model, the
    others reuse its predictions and its held-out NLL (checked to be the same question)."""
    import json

    from socialite_utils.runs import read_jsonl

    p = tiny_study("once", general_ratios=[0, 1])
    run_grid(p, log=lambda *_: None)
    cells = runs_dir / "once" / "cells"
    first, second = (json.loads((cells / f"eval-n4-r{r}-s0" / "provenance.json").read_text()) for r in (0, 1))
    assert first["base_from"] is None and first["seconds"]["base"] > 0
    assert second["base_from"].endswith("eval-n4-r0-s0") and second["seconds"]["base"] == 0.0

    def base_rows(r):
        rows = read_jsonl(cells / f"eval-n4-r{r}-s0" / "predictions.jsonl")
        return sorted(json.dumps(x, sort_keys=True) for x in rows if x["model"] == "base")

    assert base_rows(0) == base_rows(1) and base_rows(0)
    ret = [json.loads((cells / f"retention-n4-r{r}-s0.json").read_text()) for r in (0, 1)]
    assert ret[0]["heldout_digest"] == ret[1]["heldout_digest"] and ret[0]["base"] == ret[1]["base"]
    assert ret[0]["tuned"] != ret[1]["tuned"]  # each cell's own adapter
