"""The one reader per run document (socialite_utils.schema): errors name the file and the field; on a real smoke run
the readers (and the modules' wrappers around them) return exactly what the files hold."""

from __future__ import annotations

import json

import pytest

from socialite_utils import analysis, baselines, evaluation
from socialite_utils.runs import write_json
from socialite_utils.schema import (
    SCHEMA_VERSION,
    SchemaError,
    read_baselines_metrics,
    read_eval_metrics,
    read_prediction_rows,
)


def _metrics_doc() -> dict:
    model = {"macro_f1": 50.0, "macro_f1_ci": [40.0, 60.0], "accuracy": 55.0}
    task = {"category": "c", "group": "seen", "type": "classification", "n": 4, "labels": ["a", "b"]}
    return {
        "schema_version": 1,
        "settings": {},
        "models": ["base"],
        "tasks": {"emo": {**task, "models": {"base": model}}},
    }


def test_eval_metrics_reader_names_file_and_field(tmp_path):
    path = tmp_path / "ev" / "metrics.json"
    write_json(path, _metrics_doc())
    assert read_eval_metrics(tmp_path / "ev") == _metrics_doc()  # a run directory or the file itself
    assert read_eval_metrics(path) == _metrics_doc()

    write_json(path, {**_metrics_doc(), "schema_version": 7})
    with pytest.raises(
        SchemaError, match=rf"^{path}: schema_version 7 is not supported; this kit reads schema_version 1"
    ):
        read_eval_metrics(path)
    assert SCHEMA_VERSION == 1

    doc = _metrics_doc()
    del doc["schema_version"]
    write_json(path, doc)
    with pytest.raises(
        SchemaError, match=rf"^{path}: no 'schema_version' field: .*older evaluation \(notebook 03\)"
    ):
        read_eval_metrics(path)

    doc = _metrics_doc()
    del doc["tasks"]
    write_json(path, doc)
    with pytest.raises(SchemaError, match=rf"^{path}: the top level lacks \['tasks'\]"):
        read_eval_metrics(path)

    doc = _metrics_doc()
    del doc["tasks"]["emo"]["n"]
    write_json(path, doc)
    read_eval_metrics(path)  # nothing asked of the tasks
    with pytest.raises(SchemaError, match=rf"^{path}: tasks\.emo lacks \['n'\]"):
        read_eval_metrics(path, task_fields=("n",))

    doc = _metrics_doc()
    doc["tasks"]["emo"]["type"] = "regression"
    write_json(path, doc)
    with pytest.raises(SchemaError, match=rf"^{path}: tasks\.emo\.models\.base lacks \['pearson_r'\]"):
        read_eval_metrics(path, model_fields=("macro_f1",), regression_fields=("pearson_r",))

    with pytest.raises(
        FileNotFoundError, match=r"evaluation run .*none is incomplete: .*metrics\.json is missing"
    ):
        read_eval_metrics(tmp_path / "none")


def test_prediction_rows_reader_names_file_line_and_field(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"id": "a", "task": "t"}\n\n{"id": "b"}\n')
    assert read_prediction_rows(path) == [{"id": "a", "task": "t"}, {"id": "b"}]
    assert read_prediction_rows(path, line_field="_line")[1] == {"id": "b", "_line": 3}
    with pytest.raises(SchemaError, match=rf"^{path}: line 3: missing field\(s\) \['task'\]"):
        read_prediction_rows(path, fields=("id", "task"))
    path.write_text('{"id": "a"}\n[1]\n')
    with pytest.raises(SchemaError, match=rf"^{path}: line 2: expected a JSON object"):
        read_prediction_rows(path)


def test_baselines_metrics_reader_checks_its_own_version(tmp_path):
    path = tmp_path / "bl" / "baselines_metrics.json"
    write_json(path, {"schema_version": 2, "systems": [], "tasks": {}})
    with pytest.raises(
        SchemaError, match=rf"^{path}: schema_version 2 is not supported.*baselines run \(notebook 05\)"
    ):
        read_baselines_metrics(tmp_path / "bl")
    write_json(path, {"schema_version": 1, "tasks": {}})
    with pytest.raises(SchemaError, match=rf"^{path}: the top level lacks \['systems'\]"):
        read_baselines_metrics(path)


def test_module_readers_raise_their_own_error_types(tmp_path, runs_dir):
    doc = _metrics_doc()
    doc["schema_version"] = 2
    write_json(runs_dir / "ev" / "metrics.json", doc)
    (runs_dir / "ev" / "predictions.jsonl").write_text("")
    for read in (evaluation.load_eval_run, baselines.load_eval_metrics):
        with pytest.raises(SchemaError, match="schema_version 2 is not supported"):
            read("ev")
    with pytest.raises(analysis.EvalRunError, match="schema_version 2 is not supported"):
        analysis.load_eval_run("ev")


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_readers_return_the_files_of_a_smoke_run(smoke_pipeline, monkeypatch):
    from socialite_utils import pipeline

    monkeypatch.setenv("SOCIALITE_RUNS_DIR", str(smoke_pipeline))
    ev_dir = smoke_pipeline / "eval"
    metrics = json.loads((ev_dir / "metrics.json").read_text())
    rows = _jsonl(ev_dir / "predictions.jsonl")
    assert read_eval_metrics(ev_dir) == metrics
    assert read_prediction_rows(ev_dir / "predictions.jsonl") == rows
    assert baselines.load_eval_metrics("eval") == metrics
    run = evaluation.load_eval_run("eval")
    assert analysis.load_eval_run is evaluation.load_eval_run  # one reader of an evaluation run
    assert run.metrics == metrics and run.params == json.loads((ev_dir / "params.json").read_text())
    assert [{k: v for k, v in r.items() if k != "_line"} for r in run.predictions] == rows
    bl = smoke_pipeline / "baselines" / "baselines_metrics.json"
    assert read_baselines_metrics(bl) == json.loads(bl.read_text())
    assert (
        pipeline.all_claims(smoke_pipeline, metrics)
        == metrics["claims"] + json.loads(bl.read_text())["claims"]
    )
