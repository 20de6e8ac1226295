"""Generation metrics: published values (SARI paper / EASSE README / JFLEG GLEU) and hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sacrebleu

from socialite_utils import metrics as M
from socialite_utils import text_metrics as T
from socialite_utils.data.writing_sources import load_writing_split

# The SARI paper's example (Xu et al. 2016), also the example in HF evaluate's sari card.
SRC = ["About 95 species are currently accepted ."]
PRED = ["About 95 you now get in ."]
REFS = [
    [
        "About 95 species are currently known .",
        "About 95 species are now accepted .",
        "95 species are now accepted .",
    ]
]
# EASSE README's two-sentence example (its refs_sents are per reference stream; here per example).
SRC2 = ["About 95 species are currently accepted.", "The cat perched on the mat."]
PRED2 = ["About 95 you now get in.", "Cat on mat."]
REFS2 = [
    [
        "About 95 species are currently known.",
        "About 95 species are now accepted.",
        "95 species are now accepted.",
    ],
    ["The cat sat on the mat.", "The cat is on the mat.", "The cat sat."],
]


@pytest.fixture(scope="session")
def fluency_test(writing_dir):
    rows = load_writing_split("fluency", "test", writing_dir)
    # Stripped, as the reference values were computed (JFLEG's script reads one stripped line per sentence).
    src = [r["source"].strip() for r in rows]
    refs = [[x.strip() for x in r["references"]] for r in rows]
    return src, refs


# ---------------------------------------------------------------------------------------------- SARI


@pytest.mark.parametrize(
    ("variant", "expected"), [("easse", 31.350246975246975), ("t2t", 26.953601953601954)]
)
def test_sari_paper_example(variant, expected):
    assert T.sari(SRC, PRED, REFS, variant=variant)["sari"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("variant", "expected"), [("easse", 33.17472563619544), ("t2t", 29.13266517433184)])
def test_sari_easse_readme_example(variant, expected):
    assert T.sari(SRC2, PRED2, REFS2, variant=variant)["sari"] == pytest.approx(expected, abs=1e-6)


def test_sari_parts_and_per_example():
    res = T.sari(SRC2, PRED2, REFS2)
    assert res["variant"] == "easse"
    assert res["sari"] == pytest.approx((res["add"] + res["keep"] + res["delete"]) / 3)
    per = res["per_example"]
    assert set(per) == {"sari", "add", "keep", "delete"} and all(len(v) == 2 for v in per.values())
    # EASSE per example = the corpus formula on that example alone: example 0 is the paper example.
    assert per["sari"][0] == pytest.approx(31.350246975246975, abs=1e-6)
    # t2t corpus score is the mean of its per-example scores; example 0 is the paper example again.
    t2t = T.sari(SRC2, PRED2, REFS2, variant="t2t")
    assert t2t["per_example"]["sari"][0] == pytest.approx(26.953601953601954, abs=1e-6)
    assert t2t["sari"] == pytest.approx(np.mean(t2t["per_example"]["sari"]))


def test_sari_copy_of_source_hand_worked():
    # Source = output = the only reference, 4 tokens (every n-gram order has an n-gram).
    # EASSE: nothing added by system or reference -> add precision and recall 0 -> add F1 0; keep: every n-gram
    # kept and every kept n-gram is in the reference -> keep F1 1; nothing deleted -> delete F1 0. SARI = 100/3.
    # t2t: 0/0 = 1 for add precision/recall and delete precision -> every part 1 -> SARI 100.
    src, refs = ["a b c d"], [["a b c d"]]
    easse = T.sari(src, src, refs)
    assert (easse["add"], easse["keep"], easse["delete"]) == (0.0, 100.0, 0.0)
    assert easse["sari"] == pytest.approx(100 / 3)
    assert T.sari(src, src, refs, variant="t2t")["sari"] == pytest.approx(100.0)


def test_sari_ngram_parts_unigrams_hand_worked_and_mean_is_sari():
    src = "the disastrous plan of the mayor was finally scrapped ."
    out = "the plan of the mayor was finally dropped by the council ."
    ref = "The plan of the mayor was dropped."  # 13a splits the full stop; lower-cased
    parts = T.sari_ngram_parts(src, out, [ref])
    # add: output adds {dropped, by, council}, the reference adds {dropped}: P 1/3, R 1/1, F1 2*1/(3+1) = 1/2
    # keep (counts clipped): source & output 8 tokens (the x2), source & reference 7, all three 7: F1 14/15
    # delete: source - output {disastrous, scrapped}, source - reference {disastrous, finally, scrapped}: F1 4/5
    assert parts[0] == pytest.approx({"add": 50.0, "keep": 1400 / 15, "delete": 80.0})
    assert len(parts) == 4
    twelve = [v for p in parts for v in p.values()]
    assert sum(twelve) / 12 == pytest.approx(T.sari([src], [out], [[ref]])["sari"])
    with pytest.raises(ValueError, match=r"references\[0\] must be a non-empty list"):
        T.sari_ngram_parts(src, out, [])


def test_sari_tokenises_and_lowercases_like_easse():
    # 13a splits the full stop and the text is lower-cased: these two outputs score the same.
    a = T.sari(SRC2, ["about 95 you now get in .", "cat on mat ."], REFS2)["sari"]
    assert a == pytest.approx(33.17472563619544, abs=1e-6)


def test_sari_rejects_unknown_variant_and_bad_input():
    with pytest.raises(ValueError, match="unknown SARI variant 'java'"):
        T.sari(SRC, PRED, REFS, variant="java")
    with pytest.raises(TypeError, match=r"predictions\[0\] must be a string, got NoneType \(pass ''"):
        T.sari(SRC, [None], REFS)
    with pytest.raises(ValueError, match=r"references\[0\] must be a non-empty list"):
        T.sari(SRC, PRED, ["About 95 species"])
    with pytest.raises(ValueError, match="length mismatch"):
        T.sari(SRC2, PRED, REFS2)


# ---------------------------------------------------------------------------------------------- GLEU


def test_gleu_jfleg_reference_values(fluency_test):
    src, refs = fluency_test
    assert len(src) == 300 and {len(r) for r in refs} == {4}
    assert f"{T.gleu(src, src, refs)['gleu']:.6f}" == "0.399020"
    assert f"{T.gleu(src, [r[1] for r in refs], refs)['gleu']:.6f}" == "0.711331"


def test_gleu_hand_worked():
    # src "a b c d e f", ref "a b c d e g", hyp = src. Per n: matches with the ref minus matches with source
    # n-grams the ref lacks: n=1 5-1=4 of 6, n=2 4-1=3 of 5, n=3 3-1=2 of 4, n=4 2-1=1 of 3; equal lengths (BP 1).
    # GLEU = (4/6 * 3/5 * 2/4 * 1/3) ** (1/4) = (1/15) ** 0.25. One reference: every iteration is the same.
    res = T.gleu(["a b c d e f"], ["a b c d e f"], [["a b c d e g"]])
    assert res["gleu"] == pytest.approx((1 / 15) ** 0.25)
    assert res["std"] == pytest.approx(0.0)
    # The output equal to the reference: every precision 1 -> GLEU 1.
    assert T.gleu(["a b c d e f"], ["a b c d e g"], [["a b c d e g"]])["gleu"] == pytest.approx(1.0)


def test_gleu_reference_draws_follow_jfleg_seeding():
    import random

    draws = T.gleu_reference_draws(5, 4, iterations=3)
    random.seed(2 * 101)
    assert draws[2].tolist() == [random.randint(0, 3) for _ in range(5)]


def test_gleu_needs_equal_reference_counts():
    with pytest.raises(ValueError, match=r"references\[1\] has 1"):
        T.gleu(["a", "b"], ["a", "b"], [["a", "x"], ["b"]])


# ---------------------------------------------------------------------------------------------- BLEU, iBLEU, EM


def test_bleu_identical_output_is_100_and_matches_sacrebleu(fluency_test):
    src, refs = fluency_test
    assert T.bleu(["the cat sat on the mat ."], [["the cat sat on the mat ."]]) == pytest.approx(100.0)
    streams = [list(s) for s in zip(*refs, strict=True)]
    expected = sacrebleu.corpus_bleu(src, streams).score
    assert T.bleu(src, refs) == pytest.approx(expected, abs=1e-9)
    # Variable reference counts per example: padded with None, as sacrebleu allows.
    mixed = [refs[0][:1], refs[1]]
    expected = sacrebleu.corpus_bleu(src[:2], [[refs[0][0], refs[1][0]]] + [[None, r] for r in refs[1][1:]])
    assert T.bleu(src[:2], mixed) == pytest.approx(expected.score, abs=1e-9)


def test_ibleu_hand_worked():
    # Output = reference = source: 0.9 * 100 - 0.1 * 100 = 80.
    s = ["the cat sat on the mat ."]
    assert T.ibleu(s, s, [s]) == pytest.approx(80.0)
    # In general: 0.9 * BLEU(out, refs) - 0.1 * BLEU(out, source).
    src, out, refs = SRC2, PRED2, REFS2
    expected = 0.9 * T.bleu(out, refs) - 0.1 * T.bleu(out, [[x] for x in src])
    assert T.ibleu(src, out, refs) == pytest.approx(expected)
    assert T.ibleu(src, out, refs, alpha=1.0) == pytest.approx(T.bleu(out, refs))


def test_exact_match_normalisation_hand_worked():
    preds = ["The cat sat.", "a   dog", "x", "Caf\u00e9 ."]
    refs = [["the cat sat ."], ["b", "A dog"], ["y"], ["cafe\u0301."]]
    # 1: case + 13a splits '.' -> match; 2: whitespace collapsed -> match with the 2nd ref; 3: no match;
    # 4: NFKC composes e + combining acute into the same character as in the prediction -> match. 3 of 4.
    assert T.exact_match(preds, refs) == pytest.approx(75.0)
    assert T.normalize_for_match(" The  cat sat. ") == "the cat sat ."
    assert T.exact_match(["the cat sat"], [["the cat sat ."]]) == 0.0


# ---------------------------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("name", ["sari", "sari_t2t", "bleu", "ibleu", "exact_match"])
def test_corpus_metric_on_indices_equals_metric_on_repeated_rows(name):
    src, pred, refs = SRC2, PRED2, REFS2
    fn = T.build_corpus_metric(name, src, pred, refs)
    direct = {
        "sari": lambda s, p, r: T.sari(s, p, r)["sari"],
        "sari_t2t": lambda s, p, r: T.sari(s, p, r, variant="t2t")["sari"],
        "bleu": lambda s, p, r: T.bleu(p, r),
        "ibleu": T.ibleu,
        "exact_match": lambda s, p, r: T.exact_match(p, r),
    }[name]
    assert fn(range(2)) == pytest.approx(direct(src, pred, refs))
    idx = [0, 0, 1]  # a bootstrap resample with example 0 twice
    rows = [(src[i], pred[i], refs[i]) for i in idx]
    assert fn(idx) == pytest.approx(direct(*map(list, zip(*rows, strict=True))))


def test_corpus_metric_gleu_on_all_indices(fluency_test):
    src, refs = fluency_test
    fn = T.build_corpus_metric("gleu", src, src, refs)
    assert f"{fn(np.arange(len(src))):.6f}" == "0.399020"


def test_bootstrap_corpus_ci_reuses_kit_draws():
    # Exact match is a mean of 0/1 values, so the corpus bootstrap must equal the kit's bootstrap_ci on the
    # per-example match vector with the same seed (same index draws).
    preds = ["a", "b", "c", "d", "e", "f"]
    refs = [["a"], ["x"], ["c"], ["d"], ["y"], ["f"]]
    fn = T.build_corpus_metric("exact_match", preds, preds, refs)
    res = T.bootstrap_corpus_ci(fn, 6, n_resamples=300, seed=3)
    match = np.array([1, 0, 1, 1, 0, 1], dtype=float)
    assert res["value"] == pytest.approx(100 * 4 / 6)
    assert res["ci"] == pytest.approx(
        M.bootstrap_ci(lambda m: 100 * np.mean(m), match, n_resamples=300, seed=3)
    )
    assert len(res["values"]) == 300


def test_paired_corpus_test_tuned_vs_base(fluency_test):
    src, refs = fluency_test
    n = 60
    src, refs = src[:n], refs[:n]
    tuned = T.build_corpus_metric("sari", src, [r[0] for r in refs], refs)
    base = T.build_corpus_metric("sari", src, src, refs)
    res = T.paired_corpus_test(tuned, base, n, n_resamples=200, seed=0)
    assert res["metric_a"] == pytest.approx(T.sari(src, [r[0] for r in refs], refs)["sari"])
    assert res["metric_b"] == pytest.approx(T.sari(src, src, refs)["sari"])
    assert res["delta"] > 0 and res["ci"][0] > 0 and res["p_value"] < 0.05
    same = T.paired_corpus_test(base, base, n, n_resamples=50)
    assert same["delta"] == 0 and same["p_value"] == 1.0
    ci = T.bootstrap_corpus_ci(base, n, n_resamples=200)
    assert ci["ci"][0] <= ci["value"] <= ci["ci"][1] and not math.isnan(ci["ci"][0])


def test_build_corpus_metric_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown corpus metric 'rouge'"):
        T.build_corpus_metric("rouge", SRC, PRED, REFS)


@pytest.mark.parametrize("name", T.CORPUS_METRICS)
def test_every_registry_metric_name_builds(name):
    # The registry's generation tasks may list exactly these names; each must be computable here.
    value = T.build_corpus_metric(name, SRC2, PRED2, REFS2)([0, 1])
    assert math.isfinite(value)


def test_compare_systems_copy_baseline_vs_reference_outputs(fluency_test):
    src, refs = fluency_test
    src, refs = src[:50], refs[:50]
    outputs = {"copy": src, "ref1": [r[1] for r in refs], "ref1_again": [r[1] for r in refs]}
    res = T.compare_systems(
        "bleu", src, refs, outputs, baseline="copy", n_resamples=100, seed=M.task_seed(0, "fluency")
    )
    assert res["n"] == 50 and set(res["systems"]) == set(outputs)
    assert res["systems"]["ref1"]["value"] == pytest.approx(T.bleu(outputs["ref1"], refs))
    assert set(res["vs_baseline"]) == {"ref1", "ref1_again"}
    # Same outputs, same draws -> identical CIs and tests.
    assert res["systems"]["ref1"]["ci"] == res["systems"]["ref1_again"]["ci"]
    assert res["vs_baseline"]["ref1"] == res["vs_baseline"]["ref1_again"]
    assert res["vs_baseline"]["ref1"]["delta"] == pytest.approx(
        res["systems"]["ref1"]["value"] - res["systems"]["copy"]["value"]
    )
    with pytest.raises(KeyError, match="baseline 'base' is not one of the systems"):
        T.compare_systems("bleu", src, refs, outputs, baseline="base")


def test_a_metric_is_one_entry_of_the_table(tmp_path):
    """Registering a generation metric makes it computable and acceptable in a task YAML, nothing else to edit."""
    from socialite_utils import metrics as M
    from socialite_utils.registry import RegistryError, load_task_file

    yaml_text = (
        "suite: mine\ntasks:\n  shout:\n    category: writing\n    type: generation\n    group: seen\n"
        "    instruction: Write it in capitals.\n    metrics: [upper_share]\n    sources: {writing_tasks: {dir: shout}}\n"
    )
    (tmp_path / "shout.yaml").write_text(yaml_text)
    with pytest.raises(RegistryError, match="unknown metric 'upper_share'"):
        load_task_file(tmp_path / "shout.yaml")

    @M.register_metric("upper_share", kind="generation", scale="percent", label="upper case")
    def upper_share(sources, predictions, references, **kwargs):
        up = np.array([p.isupper() for p in predictions], dtype=float)
        return lambda idx: float(100.0 * up[np.asarray(idx)].mean())

    try:
        assert "upper_share" in M.metric_names("generation")
        fn = T.build_corpus_metric("upper_share", ["a", "b"], ["A", "b"], [["A"], ["B"]])
        assert fn([0, 1]) == 50.0 and fn([0, 0]) == 100.0
        assert load_task_file(tmp_path / "shout.yaml")  # the registry accepts the new name
    finally:
        del M.METRICS["upper_share"]
    with pytest.raises(ValueError, match="registered twice"):
        M.register_metric("sari", kind="generation", scale="percent")(lambda *a, **k: None)
