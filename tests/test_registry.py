"""The registry: shipped suites match the bundle, user tasks are data, errors are precise."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from socialite_utils.data.assembly import build_data
from socialite_utils.registry import RegistryError, list_suites, load_registry, load_task_file, select_tasks


def test_local_suite_matches_bundle_manifest(bundle_dir):
    manifest = json.loads((bundle_dir / "MANIFEST.json").read_text())
    reg = load_registry("local")
    assert sorted(reg) == sorted(t["name"] for t in manifest["tasks"])
    for entry in manifest["tasks"]:
        task = reg[entry["name"]]
        assert task.category == entry["category"], entry["name"]
        assert task.type == entry["task_type"]
        assert task.pair == entry["pair_task"]
        if task.type == "classification":
            # every raw label in the manifest maps onto a verbalizer, in the same order
            assert [task.verbalize(lab) for lab in entry["labels"]] == task.labels
        else:
            assert task.labels == ["low", "high"] and task.scale is not None
        assert len(task.variants) >= 3
        assert {"seen", "related"} >= {task.group}
    groups = [t.group for t in reg.values()]
    assert groups.count("seen") == 10 and groups.count("related") == 5


def test_every_instruction_closes_the_answer_space():
    for task in load_registry("local").values():
        assert "answer with one of" in task.instruction.lower(), task.name
        for label in task.labels:
            assert label in task.instruction, (task.name, label)


USER_TASK = """
suite: mine
tasks:
  politeness_toy:
    category: other_social_factors
    type: classification
    group: seen
    labels: [polite, impolite]
    label_map: {"1": polite, "0": impolite}
    instruction: "Is this request polite? Answer with one of: polite, impolite."
    sources: {local: {dir: politeness_toy}}
"""


def test_user_task_from_yaml_directory_works_end_to_end(tmp_path, make_bundle, monkeypatch):
    tasks_dir = tmp_path / "my_tasks"
    tasks_dir.mkdir()
    (tasks_dir / "politeness.yaml").write_text(USER_TASK)
    rows = [{"text": f"could you please pass item {i}", "label": str(i % 2)} for i in range(6)]
    bundle = make_bundle({"politeness_toy": {"train": rows, "validation": rows[:2], "test": rows[2:4]}})
    monkeypatch.setenv("SOCIALITE_TASKS_DIR", str(tasks_dir))
    assert "mine" in list_suites()
    reg = load_registry("mine")
    data = build_data(list(reg.values()), data_dir=bundle)
    assert {r["label"] for r in data.splits["train"]} == {"polite", "impolite"}
    # test rows de-duplicated against train? no: eval splits win, so train lost the overlapping texts
    assert data.card["tasks"]["politeness_toy"]["counts"]["train"]["duplicates_dropped"] == 4
    assert data.splits["test"][0]["prompt"].startswith("Instruction: Is this request polite?")


def test_bad_definition_names_file_task_and_field(tmp_path):
    bad = USER_TASK.replace("other_social_factors", "vibes")
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(
        RegistryError, match=r"bad\.yaml: line 5: task 'politeness_toy': field 'category' must be one of"
    ):
        load_registry("mine", extra_dirs=[tmp_path])


def test_uppercase_label_and_unknown_field_rejected(tmp_path):
    (tmp_path / "a.yaml").write_text(USER_TASK.replace("[polite, impolite]", "[Polite, impolite]"))
    with pytest.raises(RegistryError, match="label 'Polite' must be lower-case"):
        load_registry("mine", extra_dirs=[tmp_path / "a.yaml"])
    (tmp_path / "b.yaml").write_text(USER_TASK.replace("group: seen", "group: seen\n    colour: red"))
    with pytest.raises(RegistryError, match=r"unknown field\(s\) \['colour'\]"):
        load_registry("mine", extra_dirs=[tmp_path / "b.yaml"])


def test_duplicate_task_in_a_suite_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text(USER_TASK)
    (tmp_path / "b.yaml").write_text(USER_TASK)
    with pytest.raises(RegistryError, match="already defined in suite 'mine'"):
        load_registry("mine", extra_dirs=[tmp_path])


def test_unknown_task_and_suite_suggest_close_matches():
    reg = load_registry("local")
    with pytest.raises(KeyError, match=r"unknown task 'tweet_emotoin'; did you mean \['tweet_emotion'"):
        select_tasks(reg, ["tweet_emotoin"])
    with pytest.raises(KeyError, match=r"unknown suite 'locl'; did you mean \['local'\]"):
        load_registry("locl")


GEN_TASK = """
suite: mywriting
tasks:
  formalize:
    category: writing
    type: generation
    group: seen
    instruction: Make this sentence formal.
    metrics: [sari, bleu]
    sources: {writing_tasks: {dir: formalize}}
"""


# each message names the line of the field in GEN_TASK (line 1 is its leading blank line)
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("metrics: [sari, bleu]", "metrics: [rouge]"), "line 9: T unknown metric 'rouge' in 'metrics'"),
        (
            ("metrics: [sari, bleu]", "metrics: []"),
            "line 9: T field 'metrics' needs at least one metric name",
        ),
        (
            ("group: seen", "group: seen\n    labels: [a, b]"),
            "line 8: T field 'labels' does not apply to generation",
        ),
        (
            ("category: writing", "category: offensive"),
            r"line 5: T field 'category' must be one of \['writing'\]",
        ),
        (("    sources: {writing_tasks: {dir: formalize}}\n", ""), "T give either 'sources' or 'no_data"),
        (
            ("instruction: Make", "variants: [{instruction: x, labels: {a: b}}]\n    instruction: Make"),
            r"line 8: T variants\[0\] must be \{instruction: ...\}",
        ),
    ],
)
def test_generation_task_definitions_are_checked(tmp_path, edit, message):
    (tmp_path / "gen.yaml").write_text(GEN_TASK.replace(*edit))
    expected = "gen.yaml: " + message.replace("T ", "task 'formalize': ")
    with pytest.raises(RegistryError, match=expected):
        load_registry("mywriting", extra_dirs=[tmp_path])


def test_generation_task_parses_and_metrics_field_is_generation_only(tmp_path):
    (tmp_path / "gen.yaml").write_text(GEN_TASK)
    task = load_registry("mywriting", extra_dirs=[tmp_path])["formalize"]
    assert task.is_generation and task.metrics == ["sari", "bleu"] and task.no_data is None
    bad = USER_TASK.replace("group: seen", "group: seen\n    metrics: [sari]")
    (tmp_path / "gen.yaml").write_text(bad)
    with pytest.raises(RegistryError, match="field 'metrics' is for generation tasks only"):
        load_registry("mine", extra_dirs=[tmp_path])


def _regression_yaml(tmp_path, extra: str = "") -> Path:
    path = tmp_path / "warmth.yaml"
    path.write_text(
        "suite: mine\ntasks:\n  warmth:\n    category: sentiment_emotion\n    type: regression\n    group: seen\n"
        "    scale: [0, 4]\n    instruction: Rate the warmth. Answer with one of low, high.\n"
        f"    sources: {{local: {{dir: warmth}}}}\n{extra}"
    )
    return path


def _binarized(task, scores: dict[str, list[float]]):
    from socialite_utils.data.assembly import TaskRows, binarize_task_rows

    rows = {split: [{"score": s} for s in values] for split, values in scores.items()}
    tr = binarize_task_rows(TaskRows(task=task, rows=rows, counts={}, files={}, warnings=[], missing=[]))
    return {split: [r["label"] for r in rs] for split, rs in tr.rows.items()}, tr.threshold_info


def test_regression_binarization_threshold_and_ties_come_from_the_yaml(tmp_path):
    scores = {
        "train": [0, 1, 2, 2, 4],
        "test": [1, 2, 3],
    }  # train median 2, two train rows and one test row on it
    (task,) = load_task_file(_regression_yaml(tmp_path))[1].values()
    labels, info = _binarized(task, scores)
    assert labels["test"] == ["low", "low", "high"] and info["threshold"] == 2 and info["n_on_threshold"] == 3
    assert info["source"] == "median of the train split" and info["ties"] == "low"

    (task,) = load_task_file(_regression_yaml(tmp_path, "    binarize: {ties: high}\n"))[1].values()
    assert _binarized(task, scores)[0]["test"] == ["low", "high", "high"]
    (task,) = load_task_file(_regression_yaml(tmp_path, "    binarize: {threshold: 2.5}\n"))[1].values()
    assert _binarized(task, scores)[0]["train"] == ["low", "low", "low", "low", "high"]
    (task,) = load_task_file(_regression_yaml(tmp_path, "    binarize: {threshold: midpoint, ties: high}\n"))[
        1
    ].values()
    labels, info = _binarized(task, scores)  # midpoint of [0, 4] is 2
    assert labels["test"] == ["low", "high", "high"] and info["source"].startswith("midpoint of the scale")


@pytest.mark.parametrize(
    "extra, message",
    [
        ("    binarize: {threshold: mean}\n", "binarize.threshold must be 'median', 'midpoint' or a number"),
        ("    binarize: {ties: middle}\n", "binarize.ties must be 'low' or 'high'"),
        ("    binarize: {treshold: 2}\n", "treshold"),
    ],
)
def test_bad_binarization_settings_are_refused_naming_the_field(tmp_path, extra, message):
    with pytest.raises(RegistryError, match=re.escape(message)):
        load_task_file(_regression_yaml(tmp_path, extra))


def test_a_scale_must_be_two_ordered_numbers(tmp_path):
    path = _regression_yaml(tmp_path).read_text().replace("scale: [0, 4]", 'scale: ["0", "4"]')
    (tmp_path / "bad.yaml").write_text(path)
    with pytest.raises(RegistryError, match="field 'scale' must be \\[min, max\\], two numbers"):
        load_task_file(tmp_path / "bad.yaml")


def _own_suite(tmp_path: Path, rows_per_label: int) -> tuple[Path, Path]:
    """A user's suite 'mine' (one task, 'polite') whose data_dir, beside its YAML folder, holds the task's rows."""
    tasks_dir, data = tmp_path / "my_tasks", tmp_path / "my_data" / "polite"
    tasks_dir.mkdir()
    data.mkdir(parents=True)
    for split in ("train", "validation", "test"):
        rows = [{"text": f"could you please help {split} {i}", "label": "1"} for i in range(rows_per_label)]
        rows += [{"text": f"do it now {split} {i}", "label": "0"} for i in range(rows_per_label)]
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tasks_dir / "mine.yaml").write_text(
        "suite: mine\ndata_dir: ../my_data\ntasks:\n  polite:\n    category: other_social_factors\n"
        "    type: classification\n    group: seen\n    labels: [polite, impolite]\n"
        '    label_map: {"1": polite, "0": impolite}\n'
        "    instruction: Is the request polite? Answer with one of polite, impolite.\n"
        "    sources: {local: {dir: polite}}\n"
    )
    return tasks_dir, data


def test_your_suite_with_its_own_data_runs_beside_the_bundled_tasks(tmp_path, bundle_dir):
    """`data_dir` in a suite file (relative to it) keeps your data apart from the bundle; `local+mine` joins
    the suites, and the data card names the file each task's rows came from."""
    tasks_dir, data = _own_suite(tmp_path, rows_per_label=4)
    registry = load_registry("local+mine", [tasks_dir])
    selected = select_tasks(registry, ["polite", "tweet_irony"])
    data_run = build_data(selected, data_dir=bundle_dir, max_train_per_task=4, max_eval_per_task=2)
    assert {r["task"] for r in data_run.splits["test"]} == {"polite", "tweet_irony"}
    files = json.dumps(data_run.card["tasks"]["polite"])
    assert str(data / "test.jsonl") in files and str(bundle_dir) not in files
    assert str(bundle_dir / "tweet_irony") in json.dumps(data_run.card["tasks"]["tweet_irony"])

    (tasks_dir / "clash.yaml").write_text(
        (tasks_dir / "mine.yaml").read_text().replace("polite:", "tweet_irony:", 1)
    )
    with pytest.raises(
        RegistryError, match="task 'tweet_irony' is defined by .* and by .*rename one of them"
    ):
        load_registry("local+mine", [tasks_dir])


@pytest.mark.slow
def test_the_pipeline_runs_your_tasks_and_the_bundled_ones_together(tmp_path, monkeypatch):
    """Notebooks 01-05 through the pipeline on `local+mine`: your task (its own data_dir) beside two bundled ones."""
    from socialite_utils import pipeline

    tasks_dir, _ = _own_suite(tmp_path, rows_per_label=6)
    monkeypatch.setenv("SOCIALITE_TASKS_DIR", str(tasks_dir))  # the notebooks' kernels inherit it
    overrides = {"data": {"suite": "local+mine", "tasks": ["polite", "tweet_irony", "clickbait"]}}
    steps = pipeline.run_pipeline(
        "smoke", "joined", overrides=overrides, runs_dir=tmp_path / "runs", log=lambda *_: None
    )
    assert [s.ok for s in steps] == [True] * 5, [s.error for s in steps if not s.ok]
    metrics = json.loads((tmp_path / "runs" / "joined" / "eval" / "metrics.json").read_text())
    assert set(metrics["tasks"]) == {"polite", "tweet_irony", "clickbait"}
    baselines = json.loads(
        (tmp_path / "runs" / "joined" / "baselines" / "baselines_metrics.json").read_text()
    )
    assert "polite" in baselines["tasks"]
