"""Notebook 05 runs headless (papermill, smoke mode) on a data run built from real bundle tasks and merges a
hand-written evaluation run into its comparison table."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from nbrun import run_notebook

from socialite_utils.data.assembly import build_data, write_data_run
from socialite_utils.registry import load_registry
from socialite_utils.runs import read_jsonl, write_json, write_jsonl

pytestmark = pytest.mark.slow

TASKS = [
    "tweet_irony",
    "emobank_valence",
    "tweet_stance",
    "tweet_hate",
]  # + a rating, a pair and a related task


def eval_doc(tasks: dict[str, dict]) -> dict:
    def entry(f1, r=None):
        m = {
            "macro_f1": f1,
            "macro_f1_ci": [f1 - 10, f1 + 10],
            "accuracy": f1 + 1,
            "accuracy_ci": [f1 - 9, f1 + 11],
        }
        return m | ({"pearson_r": r, "pearson_r_ci": [r - 0.2, r + 0.2]} if r is not None else {})

    out = {}
    for i, (name, t) in enumerate(tasks.items()):
        reg = 0.3 if t["type"] == "regression" else None
        out[name] = {k: t[k] for k in ("category", "group", "type", "n")} | {
            "labels": t["labels"],
            "models": {"base": entry(40.0 + i, reg), "tuned": entry(60.0 + i, reg)},
        }
    return {
        "schema_version": 1,
        "run_name": "nb05-eval",
        "settings": {"mode": "score", "few_shot_k": 0, "data_run": "nb05-data"},
        "models": ["base", "tuned"],
        "tasks": out,
    }


def test_notebook_05_smoke_with_an_eval_run(tmp_path, runs_dir, bundle_dir):
    reg = load_registry("local")
    data = build_data([reg[t] for t in TASKS], max_train_per_task=16, max_eval_per_task=8)
    write_data_run("nb05-data", data)
    test_rows = data.splits["test"]
    meta = {
        t: {"category": reg[t].category, "group": reg[t].group, "type": reg[t].type, "labels": reg[t].labels,
            "n": sum(r["task"] == t for r in test_rows)}
        for t in TASKS
    }  # fmt: skip
    write_json(runs_dir / "nb05-eval" / "metrics.json", eval_doc(meta))
    # the tuned model of this hand-written run answers every test example right; the base model never does
    write_jsonl(
        runs_dir / "nb05-eval" / "predictions.jsonl",
        [{"id": r["id"], "task": r["task"], "model": m, "mode": "score", "text": r["text"], "gold": r["label"],
          "parsed": r["label"] if m == "tuned" else None, "correct": m == "tuned"}
         for r in test_rows for m in ("base", "tuned")],
    )  # fmt: skip

    run_notebook(
        "05_baselines.ipynb",
        tmp_path,
        run_name="nb05",
        data_run="nb05-data",
        eval_run="nb05-eval",
        smoke=True,
    )

    run = runs_dir / "nb05"
    table = pd.read_csv(run / "comparison.csv")
    systems = {"majority", "stratified", "tfidf_lr", "multitask_encoder", "llm_base", "llm_tuned"}
    assert set(table["system"]) == systems
    tasks = table[table["level"] == "task"].set_index(["name", "system"])
    assert len(tasks) == len(TASKS) * len(systems)
    assert tasks.loc[("tweet_stance", "llm_tuned"), "macro_f1"] == 62.0  # from the eval run, unchanged
    assert tasks.loc[("tweet_stance", "llm_tuned"), "macro_f1_lo"] == 52.0
    assert tasks.loc[("tweet_hate", "multitask_encoder"), "status"].startswith("not trainable: held out")
    assert tasks.loc[("tweet_hate", "tfidf_lr"), "train_source"] == "fewshot_pool"
    assert tasks["macro_f1"].drop(("tweet_hate", "multitask_encoder")).between(0, 100).all()
    assert not pd.isna(tasks.loc[("emobank_valence", "tfidf_lr"), "pearson_r"])
    assert set(table.loc[table["level"] == "group", "name"]) == {"seen", "related"}

    doc = json.loads((run / "baselines_metrics.json").read_text())
    assert doc["settings"]["smoke"] is True and doc["settings"]["bootstrap_samples"] == 50
    assert doc["encoder"]["preset"]["name"] == "tiny" and doc["encoder"]["preset"]["epochs"] == 2
    assert set(doc["tasks"]) == set(TASKS)
    # tuned vs the floors on the same seen-task and related-task test examples, and vs the multi-task encoder
    claim, related, encoder = doc["claims"]
    assert (
        claim["claim"].startswith("The tuned model beats the simple baselines")
        and claim["verdict"] == "SUPPORTED"
    )
    assert claim["line"].startswith("[SUPPORTED]") and "mean over seen tasks" in claim["comparison"]
    assert claim["details"]["per_floor"]["majority"]["metric_a"] == 100.0
    assert related["claim"].endswith("on related tasks") and related["verdict"] in (
        "SUPPORTED",
        "CONTRADICTED",
        "INCONCLUSIVE",
    )
    assert encoder["comparison"] == "tuned vs multitask_encoder, mean over seen tasks"
    stratified = [
        t["systems"]["stratified"] for t in doc["tasks"].values() if "macro_f1" in t["systems"]["stratified"]
    ]
    assert stratified and all(0 <= s["expected_macro_f1"] <= 100 for s in stratified)
    preds = read_jsonl(run / "predictions.jsonl")
    n_seen = sum(1 for r in test_rows if r["group"] == "seen")
    assert len(preds) == 3 * len(test_rows) + n_seen  # floors + TF-IDF everywhere, the encoder on seen tasks
    for name in ("comparison", "encoder_loss"):
        assert (run / "figures" / f"{name}.png").exists() and (run / "figures" / f"{name}.pdf").exists()
    params = json.loads((run / "params.json").read_text())
    assert params["eval_run"] == "nb05-eval" and params["data_run"] == "nb05-data"


def test_notebook_05_fails_early_on_a_missing_eval_run(tmp_path, runs_dir, bundle_dir):
    reg = load_registry("local")
    write_data_run("nb05-data", build_data([reg["tweet_irony"]], max_train_per_task=8, max_eval_per_task=4))
    with pytest.raises(Exception, match="evaluation run .*no-such-eval does not exist"):
        run_notebook("05_baselines.ipynb", tmp_path, run_name="nb05x", data_run="nb05-data", eval_run="no-such-eval",
                     smoke=True)  # fmt: skip
    assert not (runs_dir / "nb05x").exists()
