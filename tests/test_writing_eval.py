"""The generation-evaluation glue (socialite_utils.studies.writing_eval / writing_study) on hand-made predictions and a
stand-in generator: budgets, batching, metrics against the copy baseline, claims, the diff view, run reuse."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from socialite_utils import text_metrics as TM
from socialite_utils.registry import load_registry
from socialite_utils.runs import runs_root_at
from socialite_utils.studies import writing_eval as WE
from socialite_utils.studies.writing import prepare_writing_run


class SplitTokenizer:
    """One token per whitespace-separated word."""

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": list(range(len(text.split())))}


def test_max_new_tokens_is_sized_to_the_source():
    tok = SplitTokenizer()
    assert WE.max_new_tokens_for(tok, "a b c d") == 22  # ceil(4 * 1.5) + 16
    assert WE.max_new_tokens_for(tok, "a b c") == 21  # ceil(4.5) + 16
    assert WE.max_new_tokens_for(tok, " ".join("w" * 200)) == 256  # capped
    assert WE.max_new_tokens_for(tok, "a b", factor=2.0, extra=0, cap=3) == 3
    with pytest.raises(ValueError, match="factor > 0"):
        WE.max_new_tokens_for(tok, "a", factor=0)


def row(i: int, source: str, refs: list[str], task: str = "simplification") -> dict:
    return {
        "id": f"{task}:test:{i}", "task": task, "category": "writing", "group": "seen", "task_type": "generation",
        "text": source, "label": refs[0], "references": refs, "wording": None, "prompt": f"P{i}: {source}",
    }  # fmt: skip


def test_generations_are_batched_by_budget_and_cut_to_their_first_line(monkeypatch):
    calls = []

    def fake_generate(model, tokenizer, prompts, *, max_new_tokens, batch_size, progress):
        calls.append((list(prompts), max_new_tokens))
        return [f"\n  out {p}  \n### Instruction: more" for p in prompts]

    monkeypatch.setattr("socialite_utils.studies.writing_eval.generate_answers", fake_generate)
    sources = ["a b c d e f g h", "a", "a b c", "a b"]  # budgets 28, 18, 21, 19
    rows = [row(i, s, [s]) for i, s in enumerate(sources)]
    preds = WE.score_generations(None, SplitTokenizer(), rows, model_name="m", batch_size=2, progress=False)
    assert calls == [(["P1: a", "P3: a b"], 19), (["P2: a b c", "P0: a b c d e f g h"], 28)]
    assert [p["max_new_tokens"] for p in preds] == [28, 19, 28, 19]  # the budget of the batch it ran in
    assert preds[0]["parsed"] == "out P0: a b c d e f g h" and preds[0]["raw_output"].endswith("more")
    assert [p["id"] for p in preds] == [r["id"] for r in rows] and preds[0]["model"] == "m"
    assert WE.clean_output("") == "" and WE.clean_output("\n\n x \ny") == "x"


def hand_predictions() -> list[dict]:
    rows = [
        row(0, "the cat sat on the mat .", ["a cat sat .", "the cat sat ."]),
        row(1, "he is very big and tall .", ["he is big ."]),
        row(2, "it was quite good .", ["it was good ."]),
    ]
    good = [WE.prediction_row(r, "tuned", r["references"][0], r["references"][0], 8) for r in rows]
    return WE.copy_predictions(rows) + good


def test_metrics_from_hand_made_predictions():
    preds = hand_predictions()
    reg = load_registry("writing")
    tasks = [reg["simplification"], reg["clarity"]]
    m = WE.build_generation_metrics(preds, tasks, pairs=[("tuned", "copy")], n_resamples=200, seed=3)
    assert m["models"] == ["copy", "tuned"]
    assert m["tasks"]["clarity"]["status"] == "no data" and "IteraTeR" in m["tasks"]["clarity"]["reason"]
    t = m["tasks"]["simplification"]
    assert t["status"] == "ok" and t["n"] == 3 and t["primary"] == "sari"
    srcs = [p["text"] for p in preds[:3]]
    refs = [p["references"] for p in preds[:3]]
    outs = [p["parsed"] for p in preds[3:]]
    assert t["systems"]["tuned"]["sari"]["value"] == pytest.approx(TM.sari(srcs, outs, refs)["sari"])
    assert t["systems"]["copy"]["sari"]["value"] == pytest.approx(TM.sari(srcs, srcs, refs)["sari"])
    assert t["systems"]["tuned"]["bleu"]["value"] == pytest.approx(TM.bleu(outs, refs))
    delta = t["systems"]["tuned"]["sari"]["value"] - t["systems"]["copy"]["sari"]["value"]
    assert t["vs_copy"]["tuned"]["sari"]["delta"] == pytest.approx(delta) and delta > 20
    assert t["pairs"]["tuned vs copy"]["sari"] == t["vs_copy"]["tuned"]["sari"]
    assert all(p["correct"] for p in preds[3:]) and not any(p["correct"] for p in preds[:3])
    table = WE.report_generation_table(m)
    assert list(table["system"]) == ["copy", "tuned", "-"]
    assert table.loc[2, "status"].startswith("no data: ")
    with pytest.raises(ValueError, match="no 'copy' predictions"):
        WE.build_generation_metrics(preds[3:], tasks)
    with pytest.raises(ValueError, match="model 'tuned' has predictions for other examples"):
        WE.build_generation_metrics(preds[:5], tasks)
    with pytest.raises(ValueError, match="no predictions of model 'base'"):
        WE.build_generation_metrics(preds, tasks, pairs=[("tuned", "base")])


def claims_doc(deltas: dict[str, tuple[float, float, float, float]]) -> dict:
    """A writing metrics dict whose "writing vs base" test of each task is (delta, ci_lo, ci_hi, p); "writing+general
    vs writing" is its mirror image; "writing vs copy" is a wide interval around 0; no "general" system."""

    def test(d, lo, hi, p):
        return {"delta": d, "ci": [lo, hi], "p_value": p}

    tasks = {
        name: {"status": "ok", "primary": "sari", "metrics": ["sari"], "n": 10,
               "pairs": {"writing vs base": {"sari": test(d, lo, hi, p)},
                         "writing+general vs writing": {"sari": test(-d, -hi, -lo, p)}},
               "vs_copy": {"writing": {"sari": test(d, d - 10, d + 10, 0.5)}}}
        for name, (d, lo, hi, p) in deltas.items()
    }  # fmt: skip
    tasks["clarity"] = {"status": "no data", "reason": "r", "metrics": ["sari"]}
    return {"alpha": 0.05, "n_resamples": 1000, "tasks": tasks}


S, C_, INC = "SUPPORTED", "CONTRADICTED", "INCONCLUSIVE"


@pytest.mark.parametrize(
    ("deltas", "verdicts"),
    [
        # every task's CI above 0: SUPPORTED; the mirror image is significantly worse on a task: CONTRADICTED
        ({"a": (5.0, 2.0, 8.0, 0.01), "b": (2.0, 0.5, 3.5, 0.001)}, [S, INC, C_, INC]),
        # b's CI straddles 0: INCONCLUSIVE, never "not supported"
        ({"a": (5.0, 2.0, 8.0, 0.01), "b": (2.0, -1.0, 5.0, 0.2)}, [INC, INC, C_, INC]),
        # b is worse at p = 0.04, but not after Holm over the two tasks (adjusted 0.06): INCONCLUSIVE
        ({"a": (5.0, 1.0, 9.0, 0.03), "b": (-2.0, -4.0, -0.1, 0.04)}, [INC, INC, INC, INC]),
        # b significantly worse after Holm: CONTRADICTED
        ({"a": (5.0, 2.0, 8.0, 0.01), "b": (-2.0, -3.5, -0.5, 0.001)}, [C_, INC, C_, INC]),
    ],
)
def test_claim_verdicts_follow_the_one_rule(deltas, verdicts):
    claims = WE.report_writing_claims(claims_doc(deltas))
    assert list(claims["verdict"]) == verdicts
    assert "the paper's contrast" in claims.loc[1, "claim"] and claims.loc[1, "comparison"].startswith(
        "writing+general vs general"
    )
    assert "a compared system is missing" in claims.loc[1, "note"]  # no "general" system in this run
    assert all("not tested: clarity" in n for n in claims["note"])
    assert claims.loc[0, "evidence"].startswith("a: dsari=+5 [+")
    assert "n=10" in claims.loc[0, "evidence"] and ", Holm p" in claims.loc[0, "evidence"]


def test_writing_claim_p_values_never_print_as_zero():
    claims = WE.report_writing_claims(claims_doc({"a": (5.0, 2.0, 8.0, 0.0), "b": (2.0, 0.5, 3.5, 0.0)}))
    assert "p<0.002, Holm p<=0.004" in claims.loc[0, "evidence"] and "p=0," not in claims.loc[0, "evidence"]


def test_neutralization_primary_metric_is_sari():
    from socialite_utils.registry import load_registry

    assert load_registry("writing")["neutralization"].metrics[0] == "sari"


def test_word_diff_and_best_worst_examples():
    assert WE.word_diff_html("the cat sat", "the dog sat") == "the <del>cat</del> <ins>dog</ins> sat"
    assert WE.word_diff_html("a <b>", "a") == "a <del>&lt;b&gt;</del>"
    preds = hand_predictions()
    picked = WE.pick_examples(preds, "simplification", "copy", n=1)
    scores = TM.sari(
        [p["text"] for p in preds[:3]], [p["text"] for p in preds[:3]], [p["references"] for p in preds[:3]]
    )
    per = scores["per_example"]["sari"]
    assert picked["best"][0]["id"] == preds[int(np.argmax(per))]["id"]
    assert picked["worst"][0]["sari"] == pytest.approx(min(per))
    page = WE.format_diff_html(preds, ["simplification"], "tuned", n=1)
    assert page.count("<tr>") == 3 and "<del>" in page


def test_run_directory_is_continued_or_refused(runs_dir):
    run = prepare_writing_run("w", {"seed": 0, "smoke": True})
    assert prepare_writing_run("w", {"seed": 0, "smoke": True, "overwrite": False}) == run  # continued
    (run / "marker").write_text("x")
    with pytest.raises(ValueError, match=r"started with other parameters \(seed\)"):
        prepare_writing_run("w", {"seed": 1, "smoke": True})
    assert (run / "marker").exists()
    prepare_writing_run("w", {"seed": 1, "smoke": True}, overwrite=True)
    assert not (run / "marker").exists()
    (runs_dir / "other").mkdir()
    with pytest.raises(FileExistsError, match="not a writing-assistance run"):
        prepare_writing_run("other", {}, overwrite=True)
    # resume (notebook 07's parameter, default True) continues; False refuses the existing run, untouched
    (run / "marker").write_text("x")
    with pytest.raises(FileExistsError, match="set resume=True to continue it"):
        prepare_writing_run("w", {"seed": 1, "smoke": True}, resume=False)
    assert prepare_writing_run("w", {"seed": 1, "smoke": True}, resume="true") == run
    assert (run / "marker").exists()


@pytest.mark.slow
def test_a_system_killed_before_its_first_checkpoint_trains_again(tmp_path, train_rows):
    from transformers import TrainerCallback

    from socialite_utils.training import TrainParams, train_lora

    class KilledAtStart(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            raise KeyboardInterrupt

    params = replace(TrainParams(run_name="train-writing").for_smoke(), max_steps=2, save_steps=1000)
    with runs_root_at(tmp_path), pytest.raises(KeyboardInterrupt):
        train_lora(params, train_rows, callbacks=[KilledAtStart()], verbose=False)
    assert (tmp_path / "train-writing.partial" / "params.json").is_file()  # left without a checkpoint
    run = WE.train_or_reuse(params, train_rows, where=tmp_path, verbose=False)  # notebook 07's call
    assert run == (tmp_path / "train-writing").resolve() and (run / "adapter").is_dir()
    assert not (tmp_path / "train-writing.partial").exists()

    # one killed after a checkpoint continues from it
    class KilledAtStep2(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise KeyboardInterrupt

    params = replace(params, run_name="train-general", max_steps=3, save_steps=1)
    with runs_root_at(tmp_path), pytest.raises(KeyboardInterrupt):
        train_lora(params, train_rows, callbacks=[KilledAtStep2()], verbose=False)
    run = WE.train_or_reuse(params, train_rows, where=tmp_path, verbose=False)
    summary = json.loads((run / "train_summary.json").read_text())
    assert "checkpoint-" in summary["resumed_from"] and summary["global_step"] == 3


def test_notebook_03_refuses_generation_rows(runs_dir, writing_dir):
    from socialite_utils.data.assembly import build_data, write_data_run
    from socialite_utils.evaluation import EvalParams, build_eval_plan

    write_data_run(
        "wd", build_data([load_registry("writing")["paraphrase"]], max_train_per_task=2, max_eval_per_task=2)
    )
    params = EvalParams(run_name="e", data_run="wd", train_run=None, base_model="tiny-random")
    with pytest.raises(
        ValueError, match=r"test.jsonl: line 1: task 'paraphrase' is a generation task; use notebook 07"
    ):
        build_eval_plan(params)
    assert not (runs_dir / "e").exists()


def test_a_metric_that_is_zero_for_every_system_gets_no_figure_and_the_report_says_why(runs_dir, capsys):
    from socialite_utils.studies.writing import write_writing_report

    rows = [
        row(0, "he is a great leader .", ["he is a leader ."], task="neutralization"),
        row(1, "the awful plan failed .", ["the plan failed ."], task="neutralization"),
    ]
    # neither the copy baseline nor "tuned" ever equals a reference: exact match is 0 for both
    tuned = [WE.prediction_row(r, "tuned", "he is leader", "he is leader", 8) for r in rows]
    preds = WE.copy_predictions(rows) + tuned
    metrics = WE.build_generation_metrics(preds, [load_registry("writing")["neutralization"]], n_resamples=50)
    assert [s["exact_match"]["value"] for s in metrics["tasks"]["neutralization"]["systems"].values()] == [
        0,
        0,
    ]
    run_dir = runs_dir / "w"
    (run_dir / "figures").mkdir(parents=True)
    (run_dir / "figures" / "exact_match.png").write_bytes(b"an earlier execution's figure")
    paths = write_writing_report(run_dir, preds, metrics, view_model="tuned")
    figures = sorted(p.name for p in (run_dir / "figures").iterdir())
    assert figures == ["bleu.pdf", "bleu.png", "no_figure.txt", "sari.pdf", "sari.png"]
    note = "exact_match: no figure, 0 for every system (copy, tuned) on every task with data\n"
    assert (run_dir / "figures" / "no_figure.txt").read_text() == note
    assert note in capsys.readouterr().out and run_dir / "figures" / "no_figure.txt" in paths

    # a later execution where one output equals its reference draws the figure and drops the note
    exact = [WE.prediction_row(rows[0], "tuned", "he is a leader .", "he is a leader .", 8), tuned[1]]
    preds = WE.copy_predictions(rows) + exact
    metrics = WE.build_generation_metrics(preds, [load_registry("writing")["neutralization"]], n_resamples=50)
    write_writing_report(run_dir, preds, metrics, view_model="tuned")
    assert not (run_dir / "figures" / "no_figure.txt").exists()
    assert (run_dir / "figures" / "exact_match.png").stat().st_size > 1000
