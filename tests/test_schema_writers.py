"""One schema version, one writer per run document (socialite_utils.schema): a writer refuses what its reader would
refuse, naming the file and field, and writes nothing then; what it writes reads back unchanged, with the bytes the
old write_json / write_jsonl calls produced; data rows are checked by one function wherever they are read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import socialite_utils
from socialite_utils import analysis, baselines, evaluation, schema
from socialite_utils.data.assembly import build_data, load_data_run, write_data_run
from socialite_utils.evaluation import plan as eval_plan
from socialite_utils.registry import load_registry
from socialite_utils.runs import write_json, write_jsonl
from socialite_utils.schema import (
    DATA_ROW_FIELDS,
    PREDICTION_ROW_FIELDS,
    SCHEMA_VERSION,
    SchemaError,
    check_data_row,
    read_baselines_metrics,
    read_data_rows,
    read_eval_metrics,
    read_prediction_rows,
    write_baselines_metrics,
    write_data_rows,
    write_eval_metrics,
    write_prediction_rows,
)
from socialite_utils.training.rows import load_training_rows, validate_rows


def _metrics_doc() -> dict:
    model = {"macro_f1": 50.0, "macro_f1_ci": [40.0, 60.0], "accuracy": 55.0, "n": 4}
    task = {"category": "c", "group": "seen", "type": "classification", "n": 4, "labels": ["a", "b"]}
    reg = {**task, "type": "regression", "labels": ["low", "high"]}
    return {
        "schema_version": SCHEMA_VERSION,
        "run_name": "ev",
        "settings": {"mode": "score"},
        "models": ["base", "tuned"],
        "tasks": {
            "emo": {**task, "models": {"base": dict(model), "tuned": dict(model)}},
            "val": {
                **reg,
                "models": {"base": {**model, "pearson_r": 0.5}, "tuned": {**model, "pearson_r": 0.6}},
            },
        },
        "note": "ünïcode stays as written",
    }


def _data_row(i: int = 1, **kw) -> dict:
    row = {
        "id": f"emo:test:{i}",
        "task": "emo",
        "category": "sentiment_emotion",
        "task_type": "classification",
        "group": "seen",
        "split": "test",
        "text": f"text {i}",
        "text_b": None,
        "label": "a",
        "score": None,
        "labels": ["a", "b"],
        "prompt": f"Instruction: x\nInput: text {i}\nOutput:",
        "completion": " a",
        "prompt_format": "paper",
        "few_shot_k": 0,
    }
    return {**row, **kw}


def _prediction_row(i: int = 1, **kw) -> dict:
    row = {"id": f"emo:test:{i}", "task": "emo", "model": "base", "mode": "score", "gold": "a", "parsed": "b"}
    return {**row, "correct": False, "text": f"tëxt {i}", "probs": {"a": 0.25, "b": 0.75}, **kw}


# ---------------------------------------------------------------- one schema version


def test_one_schema_version_and_no_per_module_aliases():
    assert SCHEMA_VERSION == 1
    for module, name in [
        (schema, "EVAL_METRICS_SCHEMA_VERSION"),
        (schema, "BASELINES_SCHEMA_VERSION"),
        (schema, "ANALYSIS_SCHEMA_VERSION"),
        (eval_plan, "METRICS_SCHEMA_VERSION"),
        (evaluation, "METRICS_SCHEMA_VERSION"),
        (baselines, "EVAL_SCHEMA_VERSION"),
        (analysis, "SCHEMA_VERSION"),
        (analysis, "ANALYSIS_SCHEMA_VERSION"),
    ]:
        assert name not in getattr(module, "__all__", ()), f"{module.__name__} re-exports {name}"
        assert name == "SCHEMA_VERSION" or not hasattr(module, name), f"{module.__name__}.{name} is back"
    # every document builder stamps schema.SCHEMA_VERSION, none a number of its own
    package = Path(socialite_utils.__file__).parent
    literal = re.compile(r"""["']schema_version["']\s*:\s*\d""")
    stamped = [p.name for p in sorted(package.glob("*.py")) if literal.search(p.read_text())]
    assert stamped == []


# ---------------------------------------------------------------- metrics.json / baselines_metrics.json


def test_eval_metrics_round_trip_with_the_bytes_of_write_json(tmp_path):
    doc = _metrics_doc()
    new = write_eval_metrics(tmp_path / "ev", doc)  # a run directory or the file itself
    assert new == tmp_path / "ev" / "metrics.json"
    old = write_json(tmp_path / "old" / "metrics.json", doc)
    assert new.read_bytes() == old.read_bytes()
    assert sorted(p.name for p in new.parent.iterdir()) == ["metrics.json"]  # no temporary file left
    # the strictest readers of the kit (baselines, analysis) accept what the writer wrote
    assert baselines.load_eval_metrics(tmp_path / "ev") == doc
    assert read_eval_metrics(new, fields=schema.EVAL_METRICS_FIELDS, task_fields=("labels",)) == doc


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("settings"), r"the top level lacks \['settings'\]"),
        (lambda d: d["tasks"]["emo"].pop("labels"), r"tasks\.emo lacks \['labels'\]"),
        (lambda d: d["tasks"]["emo"]["models"]["tuned"].pop("macro_f1_ci"), r"tasks\.emo\.models\.tuned lacks"),
        (lambda d: d["tasks"]["val"]["models"]["base"].pop("pearson_r"), r"tasks\.val\.models\.base lacks \['pearson_r'\]"),
        (lambda d: d["tasks"]["emo"]["models"].pop("base"), r"tasks\.emo\.models lacks model 'base'"),
        (lambda d: d.pop("schema_version"), "no 'schema_version' field"),
        (lambda d: d.update(schema_version=2), "schema_version 2 is not supported"),
    ],
)  # fmt: skip
def test_eval_metrics_writer_refuses_what_a_reader_refuses(tmp_path, edit, message):
    doc = _metrics_doc()
    edit(doc)
    path = tmp_path / "ev" / "metrics.json"
    with pytest.raises(SchemaError, match=rf"^{re.escape(str(path))}: {message}.*nothing written"):
        write_eval_metrics(path, doc)
    assert not path.parent.exists()
    # and the reader, asked for what the kit's readers need, refuses the same document, naming the same field
    write_json(path, doc)
    with pytest.raises(SchemaError, match=message):
        read_eval_metrics(
            path,
            fields=schema.EVAL_METRICS_FIELDS,
            task_fields=schema.EVAL_TASK_FIELDS,
            model_fields=schema.EVAL_MODEL_FIELDS,
            regression_fields=schema.EVAL_REGRESSION_FIELDS,
        )


def test_baselines_metrics_round_trip_and_refusal(tmp_path):
    doc = {"schema_version": SCHEMA_VERSION, "run_name": "b", "systems": ["majority"], "tasks": {"emo": {}}}
    new = write_baselines_metrics(tmp_path / "b", doc)
    assert new.read_bytes() == write_json(tmp_path / "old.json", doc).read_bytes()
    assert read_baselines_metrics(tmp_path / "b") == doc
    bad = {k: v for k, v in doc.items() if k != "systems"}
    path = tmp_path / "c" / "baselines_metrics.json"
    with pytest.raises(SchemaError, match=rf"^{re.escape(str(path))}: the top level lacks \['systems'\]"):
        write_baselines_metrics(path, bad)
    assert not path.exists()


# ---------------------------------------------------------------- prediction rows


def test_prediction_rows_round_trip_with_the_bytes_of_write_jsonl(tmp_path):
    rows = [_prediction_row(1), _prediction_row(2, model="tuned", parsed="a", correct=True)]
    new = write_prediction_rows(tmp_path / "ev" / "predictions.jsonl", rows)
    assert new.read_bytes() == write_jsonl(tmp_path / "old.jsonl", rows).read_bytes()
    assert sorted(p.name for p in new.parent.iterdir()) == ["predictions.jsonl"]
    assert read_prediction_rows(new, fields=PREDICTION_ROW_FIELDS) == rows


def test_prediction_rows_writer_names_line_and_field(tmp_path):
    rows = [_prediction_row(1), {k: v for k, v in _prediction_row(2).items() if k != "gold"}]
    path = tmp_path / "predictions.jsonl"
    with pytest.raises(
        SchemaError, match=rf"^{re.escape(str(path))}: line 2 .*missing field\(s\) \['gold'\]"
    ):
        write_prediction_rows(path, rows)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- data rows


def test_check_data_row_accepts_every_kind_of_row_the_kit_writes():
    check_data_row(_data_row(), "x")
    check_data_row(_data_row(task_type="regression", labels=["low", "high"], label="high", score=3.5), "x")
    generation = _data_row(task_type="generation", labels=[], label="a rewrite", references=["a rewrite"])
    check_data_row(generation, "x")
    general = _data_row(task="general", task_type="instruction", labels=[], label=None, output="free text")
    check_data_row(general, "x")
    chat = _data_row(
        prompt=[{"role": "user", "content": "q"}], completion=[{"role": "assistant", "content": "a"}]
    )
    check_data_row(chat, "x")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"completion": None}, r"missing field\(s\) \['completion'\]"),
        ({"text": None}, r"missing field\(s\) \['text'\]"),
        ({"label": "c"}, r"field 'label' 'c' is not in \['a', 'b'\]"),
        ({"task_type": "regression", "labels": ["low", "high"], "label": "low"}, "regression row needs a numeric 'score', got None"),
        ({"completion": "  "}, "empty 'completion'"),
        ({"completion": [{"role": "assistant", "content": "a"}]}, "'prompt' and 'completion' must both be strings"),
    ],
)  # fmt: skip
def test_check_data_row_names_the_field(change, message):
    with pytest.raises(SchemaError, match=rf"^where: {message}"):
        check_data_row(_data_row(**change), "where")


def test_check_data_row_names_every_missing_field():
    row = {k: v for k, v in _data_row().items() if k not in ("group", "prompt_format")}
    with pytest.raises(SchemaError, match=r"missing field\(s\) \['group', 'prompt_format'\]"):
        check_data_row(row, "where")
    check_data_row(row, "where", fields=("prompt", "completion"))  # a caller may need fewer fields


def test_data_rows_writer_refuses_a_bad_row_and_writes_nothing(tmp_path):
    path = tmp_path / "data" / "test.jsonl"
    rows = [_data_row(1), _data_row(2, label="c")]
    with pytest.raises(SchemaError, match=rf"^{re.escape(str(path))}: line 2 \(id emo:test:2\).*'label' 'c'"):
        write_data_rows(path, rows)
    assert not path.parent.exists()
    rows[1]["label"] = "b"
    assert write_data_rows(path, rows).read_bytes() == write_jsonl(tmp_path / "old.jsonl", rows).read_bytes()
    assert read_data_rows(path) == rows


def test_data_rows_reader_names_file_line_and_field(tmp_path):
    path = tmp_path / "data" / "train.jsonl"
    bad = {k: v for k, v in _data_row(2).items() if k != "labels"}
    write_jsonl(path, [_data_row(1), bad])
    with pytest.raises(
        SchemaError,
        match=rf"^{re.escape(str(path))}: line 2 \(id emo:test:2\): missing field\(s\) \['labels'\]",
    ):
        read_data_rows(path)
    assert read_data_rows(path, fields=("prompt", "completion"))[1] == bad  # training needs only these
    path.write_text(json.dumps(_data_row(1)) + "\n[1]\n")
    with pytest.raises(SchemaError, match=rf"^{re.escape(str(path))}: line 2: expected a JSON object"):
        read_data_rows(path)


def test_training_and_loading_share_the_row_check(runs_dir):
    data = runs_dir / "d" / "data"
    for split in ("train", "validation", "test", "fewshot_pool"):
        write_jsonl(data / f"{split}.jsonl", [_data_row(1, split=split)])
    write_jsonl(data / "test.jsonl", [_data_row(1), _data_row(2, label="c")])
    with pytest.raises(
        SchemaError, match=r"test\.jsonl: line 2 \(id emo:test:2\): field 'label' 'c' is not in"
    ):
        load_data_run("d")
    write_jsonl(data / "train.jsonl", [_data_row(1), _data_row(2, completion=[])])
    with pytest.raises(
        SchemaError, match=r"train\.jsonl: line 2 \(id emo:test:2\): 'prompt' and 'completion'"
    ):
        load_training_rows("d")
    with pytest.raises(SchemaError, match=r"^rows: line 1 \(id emo:test:1\): empty 'completion'"):
        validate_rows([_data_row(1, completion="")])


def test_a_real_data_run_round_trips_byte_for_byte(bundle_dir, runs_dir):
    reg = load_registry("local")
    data = build_data(
        list(reg.values()), data_dir=bundle_dir, max_train_per_task=3, max_eval_per_task=2, seed=0
    )
    run = write_data_run("d", data)
    loaded = load_data_run("d")
    assert loaded == {**data.splits, "fewshot_pool": data.pool}
    for name, rows in loaded.items():
        assert rows and all(set(DATA_ROW_FIELDS) <= set(r) for r in rows)
        old = write_jsonl(runs_dir.parent / "old" / f"{name}.jsonl", rows)
        assert (run / "data" / f"{name}.jsonl").read_bytes() == old.read_bytes()
