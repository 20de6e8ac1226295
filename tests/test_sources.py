"""Hub sources (SocialiteInstructions parquet, SocKET raw files) and the `socialite` task suite YAML.

Everything runs offline: the fixtures mirror the upstream layouts and a fake hub serves them, which proves the
hub code path (repo ids, repo_type, file names) without network.
"""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub
import pytest
import yaml
from huggingface_hub import errors as hub_errors

from socialite_utils.data import sources
from socialite_utils.data.sources import HubAccessError, SourceError
from socialite_utils.registry import BUILTIN_DIR

try:  # works whether or not tests/ is a package
    from tests.fixtures_hub import (
        SOCIALITE_FILES,
        SOCIALITE_REPO,
        SOCKET_REPO,
        install_fake_hub,
        write_socialite_fixture,
        write_socket_fixture,
    )
except ImportError:  # pragma: no cover - depends on pytest's import mode
    from fixtures_hub import (  # type: ignore[no-redef]
        SOCIALITE_FILES,
        SOCIALITE_REPO,
        SOCKET_REPO,
        install_fake_hub,
        write_socialite_fixture,
        write_socket_fixture,
    )

SUITE_YAML = BUILTIN_DIR / "socialite.yaml"


@pytest.fixture(autouse=True)
def _fresh_parquet_cache():
    sources._read_socialite_parquet.cache_clear()
    yield
    sources._read_socialite_parquet.cache_clear()


@pytest.fixture
def socialite_dir(tmp_path: Path) -> Path:
    root = tmp_path / "socialite"
    write_socialite_fixture(root)
    return root


@pytest.fixture
def socket_dir(tmp_path: Path) -> Path:
    root = tmp_path / "socket"
    write_socket_fixture(root)
    return root


# ------------------------------------------------------------------------------------------- SocialiteInstructions


def test_socialite_records_from_local_dir(socialite_dir: Path):
    recs = sources.load_socialite_instructions("HUMOR", "train", local_dir=socialite_dir)
    # HUMOR sits at rows 0, 2 and 5 of the train fixture -> lines 1, 3, 6.
    assert [r["line"] for r in recs] == [1, 3, 6]
    assert [r["label"] for r in recs] == ["humorous", "non-humorous", "humorous"]
    assert recs[0] == {
        "text": "Why did the scarecrow win an award? He was outstanding in his field.",
        "text_b": None,
        "label": "humorous",
        "file": str((socialite_dir / SOCIALITE_FILES["train"]).resolve()),
        "line": 1,
        "instruction": "Decide whether the text is humorous. Answer humorous or non-humorous.",
    }


def test_socialite_filters_by_task_and_keeps_raw_labels(socialite_dir: Path):
    recs = sources.load_socialite_instructions("VALENCECLS", "train", local_dir=socialite_dir)
    # Raw Output, not lower-cased: verbalizing is the assembly code's job.
    assert [(r["line"], r["label"]) for r in recs] == [(2, "High Valence"), (5, "Low Valence")]


@pytest.mark.parametrize("alias", ["validation", "val", "valid", "dev", "VALIDATION"])
def test_split_aliases_normalise_to_validation(socialite_dir: Path, alias: str):
    recs = sources.load_socialite_instructions("HUMOR", alias, local_dir=socialite_dir)
    assert [r["text"] for r in recs] == [
        "Parking permits are renewed every January.",
        "My plants and I have an agreement: I forget them, they forgive me.",
    ]
    assert all(r["file"].endswith(SOCIALITE_FILES["validation"]) for r in recs)


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="unknown split 'training'"):
        sources.normalize_split("training")


def test_related_task_only_in_test(socialite_dir: Path):
    with pytest.raises(SourceError) as err:
        sources.load_socialite_instructions("HATESPEECH", "train", local_dir=socialite_dir)
    msg = str(err.value)
    assert "HATESPEECH" in msg and "'train'" in msg and "only in the test split" in msg
    assert "HUMOR (3)" in msg and "VALENCECLS (2)" in msg  # what the split does hold
    test = sources.load_socialite_instructions("HATESPEECH", "test", local_dir=socialite_dir)
    assert [r["label"] for r in test] == ["not hate speech", "hate speech"]
    assert sources.socialite_task_types("test", local_dir=socialite_dir) == {
        "HATESPEECH": 2,
        "HUMOR": 2,
        "SAMESIDESTANCE": 1,
        "VALENCECLS": 1,
    }


def test_pair_separator_splits_text_and_text_b(socialite_dir: Path):
    recs = sources.load_socialite_instructions(
        "SAMESIDESTANCE", "train", local_dir=socialite_dir, pair_sep="[SEP]"
    )
    assert [(r["text"], r["text_b"]) for r in recs] == [
        ("Cities should ban cars downtown.", "Car-free centres cut pollution."),
        ("Homework helps pupils.", "Homework mostly adds stress."),
    ]
    with pytest.raises(
        SourceError, match=r"train-00000-of-00001-.*\.parquet:1: expected two texts joined by '\[SEP\]'"
    ):
        sources.load_socialite_instructions("HUMOR", "train", local_dir=socialite_dir, pair_sep="[SEP]")


def test_each_split_file_is_read_once_per_process(socialite_dir: Path, monkeypatch):
    import pyarrow.parquet as pq

    reads: list[str] = []
    real = pq.read_table
    monkeypatch.setattr(
        pq, "read_table", lambda path, *a, **k: reads.append(str(path)) or real(path, *a, **k)
    )
    for task in ("HUMOR", "VALENCECLS", "SAMESIDESTANCE", "HUMOR"):
        sources.load_socialite_instructions(task, "train", local_dir=socialite_dir)
    assert len(reads) == 1
    # A rewritten file (new mtime/size) is read again rather than served stale.
    import pyarrow as pa

    path = socialite_dir / SOCIALITE_FILES["train"]
    pq.write_table(
        pa.table(
            {"task_type": ["HUMOR"], "Instruction": ["i"], "Input": ["new joke"], "Output": ["humorous"]}
        ),
        path,
    )
    os.utime(path, ns=(1, 1))
    assert [
        r["text"] for r in sources.load_socialite_instructions("HUMOR", "train", local_dir=socialite_dir)
    ] == ["new joke"]
    assert len(reads) == 2


def test_bad_parquet_rows_and_columns_are_named(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "data" / "test-00000-of-00001-aaaa.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"task_type": ["HUMOR"], "Input": ["x"], "Output": ["humorous"]}), path)
    with pytest.raises(
        SourceError, match=r"test-00000-of-00001-aaaa\.parquet: missing column\(s\) \['Instruction'\]"
    ):
        sources.load_socialite_instructions("HUMOR", "test", local_dir=tmp_path)
    sources._read_socialite_parquet.cache_clear()
    table = {
        "task_type": ["HUMOR", "HUMOR"],
        "Instruction": ["i", "i"],
        "Input": ["a", "b"],
        "Output": ["humorous", None],
    }
    pq.write_table(pa.table(table), path)
    with pytest.raises(SourceError, match=r"aaaa\.parquet:2 \(task_type HUMOR\): field 'Output' is empty"):
        sources.load_socialite_instructions("HUMOR", "test", local_dir=tmp_path)


def test_missing_split_file_in_local_dir(tmp_path: Path):
    (tmp_path / "data").mkdir()
    with pytest.raises(SourceError, match=r"no parquet file for split 'test'.*data/test-\*\.parquet"):
        sources.load_socialite_instructions("HUMOR", "test", local_dir=tmp_path)
    with pytest.raises(SourceError, match="does not exist"):
        sources.load_socialite_instructions("HUMOR", "test", local_dir=tmp_path / "nope")


def test_socialite_hub_path_downloads_only_the_split(socialite_dir: Path, tmp_path: Path, monkeypatch):
    calls = install_fake_hub(monkeypatch, {SOCIALITE_REPO: socialite_dir}, cache=tmp_path / "cache")
    recs = sources.load_socialite_instructions("HUMOR", "val", revision="abc123", cache_dir=tmp_path / "hf")
    assert calls == [
        {
            "fn": "snapshot_download",
            "repo_id": "hlab/SocialiteInstructions",
            "repo_type": "dataset",
            "revision": "abc123",
            "cache_dir": tmp_path / "hf",
            "allow_patterns": ["data/validation-*.parquet", "data/valid-*.parquet", "data/val-*.parquet"],
        }
    ]
    local = sources.load_socialite_instructions("HUMOR", "validation", local_dir=socialite_dir)
    strip = [{k: v for k, v in r.items() if k != "file"} for r in recs]
    assert strip == [{k: v for k, v in r.items() if k != "file"} for r in local]
    # Only the requested split was materialised, and the records point at the downloaded copy.
    cached = sorted(
        p.relative_to(tmp_path / "cache").as_posix() for p in (tmp_path / "cache").rglob("*.parquet")
    )
    assert cached == ["hlab--SocialiteInstructions/abc123/" + SOCIALITE_FILES["validation"]]
    assert recs[0]["file"].startswith(str((tmp_path / "cache").resolve()))


def test_fetch_socialite_instructions_then_load_locally(socialite_dir: Path, tmp_path: Path, monkeypatch):
    calls = install_fake_hub(monkeypatch, {SOCIALITE_REPO: socialite_dir})
    dest = sources.fetch_socialite_instructions(tmp_path / "mirror")
    assert calls[0]["local_dir"] == tmp_path / "mirror" and calls[0]["repo_type"] == "dataset"
    assert sorted(p.name for p in (dest / "data").iterdir()) == sorted(
        Path(f).name for f in SOCIALITE_FILES.values()
    )
    recs = sources.load_socialite_instructions("HATESPEECH", "test", local_dir=dest)
    assert [r["label"] for r in recs] == ["not hate speech", "hate speech"]


# ------------------------------------------------------------------------------------------------------- SocKET


def test_socket_filenames_keep_literal_hash_and_hub_quotes_it():
    names = sources.socket_filenames("hahackathon#is_humor", "validation")
    assert names == {
        "text": "SOCKET_DATA/hahackathon#is_humor/val_text.txt",
        "labels": "SOCKET_DATA/hahackathon#is_humor/val_labels.txt",
        "label_list": "SOCKET_DATA/hahackathon#is_humor/label_list.txt",
    }
    # huggingface_hub URL-quotes the filename itself: the literal '#' becomes %23 exactly once.
    url = huggingface_hub.hf_hub_url(SOCKET_REPO, names["text"], repo_type="dataset")
    assert url.endswith(
        "/datasets/Blablablab/SOCKET/resolve/main/SOCKET_DATA/hahackathon%23is_humor/val_text.txt"
    )
    assert "%2523" not in url


def test_socket_index_labels_map_to_label_list_names(socket_dir: Path):
    recs = sources.load_socket("hahackathon#is_humor", "train", local_dir=socket_dir)
    assert [(r["text"], r["label"], r["line"]) for r in recs] == [
        ("A pun walks into a bar.", "humor", 1),
        ("Bus times changed today.", "not humor", 2),
        ("Knock knock.", "humor", 3),
    ]
    assert recs[0]["file"] == str(socket_dir / "SOCKET_DATA" / "hahackathon#is_humor" / "train_text.txt")
    assert recs[0]["text_b"] is None and recs[0]["instruction"] is None


def test_socket_regression_labels_are_floats(socket_dir: Path):
    recs = sources.load_socket("emobank#valence", "test", local_dir=socket_dir)
    assert [r["label"] for r in recs] == [2.2, 4.0]
    assert all(isinstance(r["label"], float) for r in recs)


def test_socket_split_names_and_pairs(socket_dir: Path):
    val = sources.load_socket("same-side-pairs", "dev", local_dir=socket_dir, pair_sep="[SEP]")
    assert [(r["text"], r["text_b"], r["label"]) for r in val] == [
        ("School uniforms help.", "Uniforms reduce bullying.", "same side")
    ]
    assert val[0]["file"].endswith("same-side-pairs/val_text.txt")  # validation -> SocKET's "val" prefix


def test_socket_line_count_mismatch_names_both_files(socket_dir: Path):
    labels = socket_dir / "SOCKET_DATA" / "hypo-l" / "test_labels.txt"
    labels.write_text(labels.read_text() + "1\n")
    with pytest.raises(SourceError) as err:
        sources.load_socket("hypo-l", "test", local_dir=socket_dir)
    msg = str(err.value)
    assert "hypo-l/test_text.txt has 2 lines" in msg and "hypo-l/test_labels.txt has 3" in msg


def test_socket_bad_label_index_names_file_and_line(socket_dir: Path):
    labels = socket_dir / "SOCKET_DATA" / "hypo-l" / "train_labels.txt"
    labels.write_text("1\n2\n")
    with pytest.raises(
        SourceError, match=r"hypo-l/train_labels\.txt:2: label '2' is not a class index 0\.\.1"
    ):
        sources.load_socket("hypo-l", "train", local_dir=socket_dir)
    labels.write_text("1\nyes\n")
    with pytest.raises(SourceError, match=r"train_labels\.txt:2: label 'yes' is not a number"):
        sources.load_socket("hypo-l", "train", local_dir=socket_dir)


def test_socket_missing_file_in_local_dir(socket_dir: Path):
    (socket_dir / "SOCKET_DATA" / "hypo-l" / "label_list.txt").unlink()
    with pytest.raises(SourceError, match=r"'hypo-l' is incomplete .*hypo-l/label_list\.txt"):
        sources.load_socket("hypo-l", "train", local_dir=socket_dir)


def test_socket_hub_path_requests_exact_files(socket_dir: Path, tmp_path: Path, monkeypatch):
    calls = install_fake_hub(monkeypatch, {SOCKET_REPO: socket_dir})
    recs = sources.load_socket("hahackathon#is_humor", "test", cache_dir=tmp_path / "hf")
    assert [(c["fn"], c["repo_id"], c["filename"], c["repo_type"], c["revision"]) for c in calls] == [
        ("hf_hub_download", "Blablablab/SOCKET", f"SOCKET_DATA/hahackathon#is_humor/{f}", "dataset", None)
        for f in ("test_text.txt", "test_labels.txt", "label_list.txt")
    ]
    assert all(c["cache_dir"] == tmp_path / "hf" for c in calls)
    assert [r["label"] for r in recs] == ["not humor", "humor"]


def test_socket_hub_missing_file_names_repo_file_and_fix(socket_dir: Path, monkeypatch):
    install_fake_hub(monkeypatch, {SOCKET_REPO: socket_dir})
    with pytest.raises(HubAccessError) as err:
        sources.load_socket("hahackathon#is_humour", "train")
    msg = str(err.value)
    assert "'SOCKET_DATA/hahackathon#is_humour/train_text.txt'" in msg and "'Blablablab/SOCKET'" in msg
    assert "does not exist in the repo" in msg and "config name" in msg
    assert isinstance(err.value.__cause__, hub_errors.RemoteEntryNotFoundError)


def test_hub_offline_error_says_what_to_do(tmp_path: Path, monkeypatch):
    # The real huggingface_hub code path with offline mode on and an empty cache: no network is touched.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubAccessError) as err:
        sources.load_socket("hypo-l", "train", cache_dir=tmp_path / "hf")
    msg = str(err.value)
    assert "SOCKET_DATA/hypo-l/train_text.txt" in msg and "Blablablab/SOCKET" in msg
    assert "unreachable" in msg and "local_dir=" in msg and "HF_HUB_OFFLINE" in msg and "fetch_" in msg
    with pytest.raises(
        HubAccessError, match=r"data/test-\*\.parquet.*'hlab/SocialiteInstructions'.*unreachable"
    ):
        sources.load_socialite_instructions("HUMOR", "test", cache_dir=tmp_path / "hf")


def test_gated_repo_error_says_log_in(monkeypatch):
    import httpx2

    def gated(*a, **k):
        resp = httpx2.Response(401, request=httpx2.Request("GET", "https://huggingface.co/x"))
        raise hub_errors.GatedRepoError("401 gated", response=resp)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", gated)
    with pytest.raises(
        HubAccessError, match=r"'hlab/SocialiteInstructions'.*gated.*(hf auth login|HF_TOKEN)"
    ):
        sources.load_socialite_instructions("HUMOR", "train")


def test_fetch_socket_then_load_locally(socket_dir: Path, tmp_path: Path, monkeypatch):
    calls = install_fake_hub(monkeypatch, {SOCKET_REPO: socket_dir})
    written = sources.fetch_socket(["hahackathon#is_humor", "emobank#valence"], tmp_path / "mirror")
    # 2 configs x (3 splits x 2 files + label_list) = 14 distinct files, each requested once.
    assert len(calls) == len(written) == 14
    assert all(c["local_dir"] == tmp_path / "mirror" for c in calls)
    assert (tmp_path / "mirror" / "SOCKET_DATA" / "hahackathon#is_humor" / "val_labels.txt").is_file()
    local = sources.load_socket("emobank#valence", "train", local_dir=tmp_path / "mirror")
    assert [r["label"] for r in local] == [4.2, 1.8, 3.0]


def test_load_source_dispatches_registry_specs(socialite_dir: Path, socket_dir: Path):
    recs = sources.load_source(
        "socket", {"config": "same-side-pairs", "pair_sep": "[SEP]"}, "test", local_dir=socket_dir
    )
    assert (recs[0]["text"], recs[0]["text_b"]) == ("Zoos are cruel.", "Zoos protect endangered species.")
    recs = sources.load_source(
        "socialite_instructions", {"task_type": "HUMOR"}, "test", local_dir=socialite_dir
    )
    assert len(recs) == 2
    with pytest.raises(ValueError, match="not a hub source"):
        sources.load_source("local", {"dir": "x"}, "test")


# --------------------------------------------------------------------------------------- the socialite suite YAML

SEEN = {
    "HUMOR", "HUMOURRATING", "FLUTE", "OFFENSIVE", "INTENTTOOFFEND", "SEXIST", "BIASEDIMPLICATION", "SENTIMENT",
    "EMOTION", "VALENCECLS", "AROUSALCLS", "DOMINANCECLS", "DISTRESSSELFRATED", "EMPATHYSELFRATED",
    "SAMESIDESTANCE", "HYPERBOLE", "SUBJECTIVEBIAS", "POLITENESSHAYATI", "INTIMACY", "EMPATHYEXPLORATIONS",
}  # fmt: skip
RELATED = {"HATESPEECH", "IRONY", "POLITENESSSTANFORD", "OPTIMISM", "COMPLAINTS", "AGREEDISAGREE"}
CATEGORIES = {"humor_sarcasm", "offensive", "sentiment_emotion", "trustworthiness", "other_social_factors"}

# Class names of the wired SocKET configs, as SocKET's loading script (minjechoi/SOCKET SOCKET.py) lists them.
SOCKET_CLASS_NAMES = {
    "hahackathon#is_humor": ["not humor", "humor"],
    "tweet_irony": ["not irony", "irony"],
    "offensiveyn": ["not offensive", "offensive"],
    "intentyn": ["not intentional", "intentional"],
    "sexyn": ["not sexism", "sexism"],
    "hasbiasedimplication": ["not biased", "biased"],
    "tweet_sentiment": ["negative", "neutral", "positive"],
    "tweet_emotion": ["anger", "joy", "optimism", "sadness"],
    "empathy#distress_bin": ["not distress", "distress bin"],
    "empathy#empathy_bin": ["not empathy", "empathy"],
    "same-side-pairs": ["not same side", "same side"],
    "hypo-l": ["not hyperbole", "hyperbole"],
    "neutralizing-bias-pairs": ["the first sentence is biased", "the second sentence is biased"],
    "hayati_politeness": ["impolite", "polite"],
    "questionintimacy": ["Very-intimate", "Intimate", "Somewhat-intimate", "Not-very-intimate", "Not-intimate",
                         "Not-intimate-at-all"],
    "stanfordpoliteness": ["polite", "impolite"],
    "complaints": ["not complaint", "complaint"],
}  # fmt: skip


@pytest.fixture(scope="module")
def suite() -> dict:
    return yaml.safe_load(SUITE_YAML.read_text())


def test_suite_has_the_papers_26_tasks(suite: dict):
    assert suite["suite"] == "socialite"
    tasks = suite["tasks"]
    assert set(tasks) == SEEN | RELATED and len(tasks) == 26
    assert {n for n, t in tasks.items() if t["group"] == "seen"} == SEEN
    assert {n for n, t in tasks.items() if t["group"] == "related"} == RELATED


@pytest.mark.parametrize("name", sorted(SEEN | RELATED))
def test_suite_task_is_well_formed(suite: dict, name: str):
    t = suite["tasks"][name]
    assert t["category"] in CATEGORIES
    assert t["type"] == "classification"  # the paper's regression-derived tasks are released binarised
    labels = t["labels"]
    assert all(lab == lab.strip().lower() and lab for lab in labels) and len(set(labels)) == len(labels)
    instruction = " ".join(t["instruction"].split())
    # Closes the answer space with every label, in canonical order.
    assert instruction.endswith("Answer with one of: " + ", ".join(labels) + ".")
    assert t["sources"]["socialite_instructions"]["task_type"] == name
    assert set(t.get("label_map") or {}).isdisjoint(labels) and set(
        (t.get("label_map") or {}).values()
    ) <= set(labels)
    variants = t["variants"]
    assert len(variants) >= 3
    remaps = [v["labels"] for v in variants if v.get("labels")]
    assert remaps, "needs at least one variant with a different verbalizer set"
    for v in variants:
        words = [str((v.get("labels") or {}).get(lab, lab)) for lab in labels]
        assert len(set(words)) == len(words) and all(w == w.lower() for w in words)
        text = " ".join(v["instruction"].split()).lower()
        assert all(w in text for w in words), (name, v["instruction"])
    for remap in remaps:
        assert set(remap) == set(labels)
    if t.get("pair"):
        assert t["text_b_name"]
        assert all(spec.get("pair_sep") == "[SEP]" for spec in t["sources"].values())


def test_suite_socket_configs_verbalize_into_labels(suite: dict):
    wired = {
        n: t["sources"]["socket"]["config"] for n, t in suite["tasks"].items() if "socket" in t["sources"]
    }
    assert set(wired.values()) == set(SOCKET_CLASS_NAMES)
    for name, config in wired.items():
        t = suite["tasks"][name]
        label_map = t.get("label_map") or {}
        for raw in SOCKET_CLASS_NAMES[config]:
            verb = label_map.get(raw, raw.lower())
            assert verb in t["labels"], (name, config, raw)
        # ...and the paper's own raw outputs still verbalize by lower-casing (no label_map shadowing).
        for lab in t["labels"]:
            assert label_map.get(lab, lab) == lab


def test_registry_loads_suite_and_verbalizes_fixture_records(socialite_dir: Path, socket_dir: Path):
    registry = pytest.importorskip("socialite_utils.registry")
    tasks = registry.load_registry("socialite")
    assert len(tasks) == 26
    valence = tasks["VALENCECLS"]
    raw = [
        r["label"]
        for r in sources.load_socialite_instructions("VALENCECLS", "train", local_dir=socialite_dir)
    ]
    assert [valence.verbalize(x) for x in raw] == ["high valence", "low valence"]
    humor = tasks["HUMOR"]
    recs = sources.load_source("socket", humor.sources["socket"], "train", local_dir=socket_dir)
    assert [humor.verbalize(r["label"]) for r in recs] == ["humorous", "non-humorous", "humorous"]
