"""Loaders for the writing-task and generalist-instruction bundles: real data and bad rows."""

from __future__ import annotations

import json
import shutil

import pytest

from socialite_utils.data import DataError
from socialite_utils.data.writing_sources import (
    general_source_licences,
    load_general_instructions,
    load_writing_split,
    writing_task_status,
)

ROW = {
    "source": "he go home .",
    "target": "he goes home .",
    "references": ["he goes home .", "he went home ."],
}


def write_task(root, task, split, rows):
    path = root / task / f"{split}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------------------------------------- writing tasks


def test_real_writing_bundle_matches_manifest(writing_dir):
    manifest = json.loads((writing_dir / "MANIFEST.json").read_text())
    status = writing_task_status(writing_dir)
    for entry in manifest["tasks"]:
        if entry["status"] != "ok":
            assert status[entry["task"]].startswith("no data: ")
            continue
        for split, size in entry["sizes"].items():
            rows = load_writing_split(entry["task"], split, writing_dir)
            assert len(rows) == size, (entry["task"], split)
            assert all(r["target"] == r["references"][0] for r in rows)
    assert {t for t, s in status.items() if s != "ok"} == {"grammaticality", "clarity", "coherence"}
    fluency = load_writing_split("fluency", "test", writing_dir)
    assert {len(r["references"]) for r in fluency} == {4}
    assert fluency[0]["line"] == 1 and fluency[0]["file"].endswith("fluency/test.jsonl")


def test_writing_dir_from_env(monkeypatch, tmp_path):
    write_task(tmp_path, "mine", "test", [ROW])
    monkeypatch.setenv("SOCIALITE_WRITING_DIR", str(tmp_path))
    assert load_writing_split("mine", "test")[0]["references"] == ROW["references"]


def test_missing_task_says_no_data_and_why(writing_dir):
    with pytest.raises(DataError, match="writing task 'clarity': no data: IteraTeR"):
        load_writing_split("clarity", "test", writing_dir)
    with pytest.raises(FileNotFoundError, match=r"'fluenci' not found .*tasks with data: \['fluency'"):
        load_writing_split("fluenci", "test", writing_dir)
    with pytest.raises(
        FileNotFoundError, match=r"no split 'dev' .*splits here: \['test', 'train', 'validation'\]"
    ):
        load_writing_split("fluency", "dev", writing_dir)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"source": "a", "target": "b"}, "line 2: missing field 'references'"),
        ({**ROW, "referencs": ["x"]}, r"line 2: unknown field\(s\) \['referencs'\]"),
        ({**ROW, "target": "something else"}, "line 2: field 'target' differs from references"),
        ({**ROW, "references": []}, "line 2: field 'references' must be a non-empty list"),
        (
            {**ROW, "references": ["he goes home .", 3]},
            r"line 2: field 'references\[1\]' must be a non-empty",
        ),
        ({**ROW, "source": " "}, "line 2: field 'source' must be a non-empty string"),
        ('{"source": "a",', "line 2: malformed JSON"),
    ],
)
def test_bad_writing_rows_name_file_line_field(tmp_path, bad, message):
    path = write_task(tmp_path, "mine", "train", [ROW, bad])
    with pytest.raises(DataError, match=message) as err:
        load_writing_split("mine", "train", tmp_path)
    assert str(path) in str(err.value)


# ---------------------------------------------------------------------------------------------- generalist data


def test_general_instructions_and_licence_filter(general_dir):
    licences = general_source_licences(general_dir)
    assert {k: v["non_commercial"] for k, v in licences.items()} == {
        "self_instruct_seed_tasks": False,
        "alpaca_libre": False,
        "llamafactory_alpaca_en_demo": True,  # "treat as non-commercial" (looks like Alpaca-GPT4, CC BY-NC)
    }
    rows = load_general_instructions(general_dir)
    assert len(rows) == 4223  # README / MANIFEST size
    assert set(rows[0]) == {"instruction", "input", "output", "source", "licence", "file", "line"}
    commercial = load_general_instructions(general_dir, licence="commercial")
    assert len(commercial) == 4223 - 976
    assert not any(r["source"] == "llamafactory_alpaca_en_demo" for r in commercial)
    # Order is the file's (a prefix is the seeded mixed subsample).
    assert [r["line"] for r in commercial] == sorted(r["line"] for r in commercial)
    libre = load_general_instructions(general_dir, sources=["alpaca_libre"])
    assert len(libre) == 3072 and {r["source"] for r in libre} == {f"alpaca_libre_v{i}" for i in (1, 2, 3)}
    assert len(load_general_instructions(general_dir, sources=["alpaca_libre_v3"])) == 642


def test_general_instructions_bad_arguments(general_dir):
    with pytest.raises(ValueError, match="unknown licence filter 'noncommercial'"):
        load_general_instructions(general_dir, licence="noncommercial")
    with pytest.raises(ValueError, match=r"sources \['alpaca'\] not in"):
        load_general_instructions(general_dir, sources=["alpaca"])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            {"instruction": "Say hi", "input": "", "output": "hi", "source": "dolly"},
            "field 'source' 'dolly' matches no",
        ),
        (
            {"instruction": "Say hi", "input": "", "output": "", "source": "alpaca_libre_v1"},
            "field 'output' must be",
        ),
        ({"instruction": "Say hi", "output": "hi", "source": "alpaca_libre_v1"}, "missing field 'input'"),
        (
            {"instruction": "Say hi", "input": "", "output": "hi", "source": "alpaca_libre_v1", "lang": "en"},
            r"unknown field\(s\) \['lang'\]",
        ),
    ],
)
def test_bad_general_rows_name_file_line_field(general_dir, tmp_path, bad, message):
    shutil.copy(general_dir / "MANIFEST.json", tmp_path / "MANIFEST.json")
    good = {"instruction": "Say hi", "input": "", "output": "hi", "source": "self_instruct_seed_tasks"}
    (tmp_path / "train.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=f"train.jsonl: line 2: {message}"):
        load_general_instructions(tmp_path)


# ---------------------------------------------------------------------------------------------- registry


def test_writing_suite_is_generation_tasks_with_data_or_no_data(writing_dir):
    from socialite_utils.data.writing_sources import load_generation_split
    from socialite_utils.registry import load_registry

    reg = load_registry("writing")
    assert list(reg) == [
        "grammaticality",
        "fluency",
        "clarity",
        "coherence",
        "simplification",
        "neutralization",
        "paraphrase",
    ]
    assert all(t.is_generation and t.labels == [] and len(t.variants) >= 2 for t in reg.values())
    assert {n for n, t in reg.items() if t.no_data} == {"grammaticality", "clarity", "coherence"}
    assert reg["fluency"].metrics[0] == "gleu" and reg["simplification"].metrics[0] == "sari"
    assert (
        reg["neutralization"].metrics[:2] == ["sari", "exact_match"]
        and reg["paraphrase"].metrics[0] == "ibleu"
    )
    rows = load_generation_split(reg["paraphrase"], "test", writing_dir)
    assert len(rows) == 97
    with pytest.raises(DataError, match="task 'clarity' .*no data: IteraTeR"):
        load_generation_split(reg["clarity"], "test", writing_dir)
    social = load_registry("local")["tweet_irony"]
    with pytest.raises(ValueError, match="tweet_irony' is a classification task"):
        load_generation_split(social, "test", writing_dir)
