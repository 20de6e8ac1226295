"""Bad input data and task YAMLs, driven through the public API.

Each case goes through the entry points a user calls (registry loading, the source loaders, build_data then
write_data_run as notebook 01 does, render_prompt) and asserts the message names the file, line and field, and
that no run directory was written.
"""

from __future__ import annotations

import inspect
import json
import re
import warnings

import pytest
from conftest import toy_task

from socialite_utils.data import DataError, DataWarning, load_task_split, sources
from socialite_utils.data.assembly import build_data, load_data_card, write_data_run
from socialite_utils.prompts import render_prompt, render_variant_prompt
from socialite_utils.registry import SOURCE_FIELDS, SOURCE_KINDS, RegistryError, load_registry
from socialite_utils.runs import read_jsonl

REG = load_registry("local")


_task = toy_task


def _rows(split: str) -> list[dict]:
    return [{"text": f"{split} text one", "label": "no"}, {"text": f"{split} text two", "label": "yes"}]


GOOD = _rows("train")
VAL, TEST = _rows("validation"), _rows("test")


def _assemble(tasks, bundle, run_name="r"):
    """What notebook 01 does: build, then write the run."""
    data = build_data(tasks, data_dir=bundle)
    return write_data_run(run_name, data)


def _nothing_written(runs_dir) -> bool:
    return not runs_dir.exists() or not any(runs_dir.iterdir())


# ------------------------------------------------------------------ 7. invalid UTF-8 names file and line


def test_invalid_utf8_in_jsonl_names_file_and_line(make_bundle, runs_dir):
    bundle = make_bundle({"toy": {"train": GOOD, "validation": VAL, "test": TEST}})
    path = bundle / "toy" / "train.jsonl"
    path.write_bytes(
        path.read_bytes() + b'{"text": "caf\xe9 au lait", "label": "no"}\n'
    )  # latin-1, not UTF-8
    with pytest.raises(DataError) as exc:
        _assemble([_task()], bundle)
    assert str(exc.value) == (
        f"{path}: line 3: invalid UTF-8 (byte(s) e9 at column 14); "
        "the kit reads text files as UTF-8: re-save the file as UTF-8"
    )
    assert exc.value.__cause__ is None and exc.value.__suppress_context__
    assert _nothing_written(runs_dir)
    # the kit's one JSONL reader says the same to every other caller
    with pytest.raises(
        ValueError, match=re.escape(f"{path}: line 3: invalid UTF-8 (byte(s) e9 at column 14)")
    ):
        read_jsonl(path)


def test_gzip_jsonl_says_to_decompress_not_invalid_utf8(make_bundle, runs_dir):
    import gzip

    bundle = make_bundle({"toy": {"train": GOOD, "validation": VAL, "test": TEST}})
    path = bundle / "toy" / "train.jsonl"
    path.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(DataError) as exc:
        _assemble([_task()], bundle)
    assert str(exc.value).startswith(f"{path}: the file is gzip-compressed: decompress it first")
    assert "UTF-8" not in str(exc.value)
    assert _nothing_written(runs_dir)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # json.dump(rows, f, indent=2): an array over many lines
        (
            json.dumps(GOOD, indent=2),
            "line 1: the file is a JSON array; JSON Lines is expected (one object per line",
        ),
        # the same array on one line
        (json.dumps(GOOD), "line 1: expected a JSON object, got a JSON array; JSON Lines is expected"),
        # pretty-printed objects one after another
        (json.dumps(GOOD[0], indent=2), "line 1: an object spread over several lines (pretty-printed JSON)"),
        # an array on a later line
        (
            json.dumps(GOOD[0]) + "\n" + json.dumps(GOOD[1:]),
            "line 2: expected a JSON object, got a JSON array",
        ),
    ],
)
def test_json_that_is_not_json_lines_says_one_object_per_line(make_bundle, runs_dir, text, message):
    bundle = make_bundle({"toy": {"train": GOOD, "validation": VAL, "test": TEST}})
    path = bundle / "toy" / "train.jsonl"
    path.write_text(text + "\n")
    with pytest.raises(DataError, match=re.escape(f"{path}: {message}")):
        _assemble([_task()], bundle)
    assert _nothing_written(runs_dir)


def test_duplicate_key_in_a_row_names_file_line_and_key(make_bundle, runs_dir):
    bundle = make_bundle({"toy": {"train": GOOD, "validation": VAL, "test": TEST}})
    path = bundle / "toy" / "train.jsonl"
    path.write_text(path.read_text() + '{"text": "a", "label": "no", "label": "yes"}\n')
    with pytest.raises(DataError) as exc:
        _assemble([_task()], bundle)
    assert str(exc.value) == (
        f"{path}: line 3: duplicate key 'label' in one object (JSON readers keep either value): give each key once"
    )
    assert _nothing_written(runs_dir)
    path.write_text('{"text": "a", "label": "no", "meta": {"k": 1, "k": 2}}\n')  # nested objects too
    with pytest.raises(ValueError, match=re.escape(f"{path}: line 1: duplicate key 'k'")):
        read_jsonl(path)


def test_invalid_utf8_in_socket_text_file_names_file_and_line(tmp_path):
    cfg = tmp_path / "SOCKET_DATA" / "toy"
    cfg.mkdir(parents=True)
    (cfg / "label_list.txt").write_text("no\nyes\n")
    (cfg / "train_text.txt").write_bytes(b"first\r\nsecond \x81ok\nthird\n")
    (cfg / "train_labels.txt").write_text("0\n1\n0\n")
    with pytest.raises(sources.SourceError) as exc:
        sources.load_socket("toy", "train", local_dir=tmp_path)
    assert str(exc.value).startswith(
        f"{cfg / 'train_text.txt'}: line 2: invalid UTF-8 (byte(s) 81 at column 8)"
    )


# ------------------------------------------------------------------ 10. text that is not a string


@pytest.mark.parametrize(
    ("value", "found"),
    [(42, "a number (42)"), (None, "null"), (["a", "b"], 'a list (["a", "b"])'), (True, "a boolean (true)")],
)
def test_text_that_is_not_a_string_is_an_error(make_bundle, runs_dir, value, found):
    bundle = make_bundle(
        {"toy": {"train": [*GOOD, {"text": value, "label": "no"}], "validation": VAL, "test": TEST}}
    )
    with pytest.raises(DataError) as exc:
        _assemble([_task()], bundle)
    path = bundle / "toy" / "train.jsonl"
    assert str(exc.value) == f"{path}: line 3: field 'text' must be a string, got {found}"
    assert _nothing_written(runs_dir)


def test_text_b_that_is_not_a_string_is_an_error(make_bundle, runs_dir):
    pair = _task(pair=True, text_b_name="Target")
    rows = [{"text": "a", "text_b": "b", "label": "no"}, {"text": "c", "text_b": 7, "label": "yes"}]
    bundle = make_bundle({"toy": {"train": rows[:1], "validation": rows[:1], "test": rows}})
    with pytest.raises(DataError) as exc:
        _assemble([pair], bundle)
    path = bundle / "toy" / "test.jsonl"
    assert str(exc.value) == f"{path}: line 2: field 'text_b' must be a string, got a number (7)"
    assert _nothing_written(runs_dir)
    with pytest.raises(DataError, match=re.escape(f"{path}: line 2: field 'text_b'")):
        load_task_split(pair, "test", data_dir=bundle)


def test_text_b_in_a_task_without_pair_true_is_an_error_not_dropped(make_bundle, runs_dir):
    """A second text would silently vanish from the prompt of a task not declared ``pair: true``."""
    rows = [*VAL, {"text": "the remark", "text_b": "its target", "label": "yes"}]
    bundle = make_bundle({"toy": {"train": GOOD, "validation": VAL, "test": rows}})
    with pytest.raises(DataError) as exc:
        _assemble([_task()], bundle)
    path = bundle / "toy" / "test.jsonl"
    assert str(exc.value).startswith(
        f"{path}: line 3: field 'text_b' is set, but task 'toy' is not a pair task"
    )
    assert "pair: true" in str(exc.value)
    assert _nothing_written(runs_dir)
    # declared as a pair task, the same rows load (the other rows then need a text_b too)
    paired = [{**r, "text_b": "t"} for r in rows[:2]] + rows[2:]
    ok = make_bundle({"toy": {"train": [{**r, "text_b": "t"} for r in GOOD], "validation": paired[:2],
                              "test": paired}})  # fmt: skip
    assert load_task_split(_task(pair=True), "test", data_dir=ok)[2]["text_b"] == "its target"


# ------------------------------------------------------------------ 11. empty splits


def test_seen_task_with_empty_train_file_is_an_error(make_bundle, runs_dir):
    bundle = make_bundle({"toy": {"train": [], "validation": VAL, "test": TEST}})
    assert (bundle / "toy" / "train.jsonl").stat().st_size == 0
    with pytest.raises(DataError) as exc:
        _assemble([_task()], bundle)
    assert str(exc.value) == (
        f"task 'toy': {bundle / 'toy' / 'train.jsonl'} has no usable train rows (the file is empty); "
        "a seen task is trained on and needs train rows (or declare it group: related to evaluate it only)"
    )
    assert _nothing_written(runs_dir)


def test_train_file_with_only_empty_texts_is_an_error(make_bundle, runs_dir):
    rows = [{"text": " ", "label": "no"}, {"text": "", "label": "yes"}]
    bundle = make_bundle({"toy": {"train": rows, "validation": VAL, "test": TEST}})
    with pytest.raises(
        DataError, match=r"has no usable train rows \(all 2 rows were dropped: 2 with an empty text"
    ):
        _assemble([_task()], bundle)
    assert _nothing_written(runs_dir)


def test_train_rows_all_duplicating_test_texts_is_an_error(make_bundle, runs_dir):
    bundle = make_bundle({"toy": {"train": TEST, "validation": VAL, "test": TEST}})
    with pytest.raises(DataError) as exc:
        _assemble([_task()], bundle)
    assert (
        "has no usable train rows (all 2 rows were dropped: 0 with an empty text, 2 duplicating a text of an "
        "evaluation split)" in str(exc.value)
    )
    assert _nothing_written(runs_dir)


@pytest.mark.parametrize("group", ["seen", "related"])
def test_any_task_with_empty_test_file_is_an_error(make_bundle, runs_dir, group):
    bundle = make_bundle({"toy": {"train": GOOD, "validation": VAL, "test": []}})
    with pytest.raises(DataError) as exc:
        _assemble([_task(group=group)], bundle)
    assert str(exc.value) == (
        f"task 'toy': {bundle / 'toy' / 'test.jsonl'} has no usable test rows (the file is empty); "
        "every task is evaluated on its test split"
    )
    assert _nothing_written(runs_dir)


def test_empty_socket_train_file_names_the_hub_source_file(tmp_path, runs_dir):
    cfg = tmp_path / "SOCKET_DATA" / "toy"
    cfg.mkdir(parents=True)
    (cfg / "label_list.txt").write_text("no\nyes\n")
    for split, texts in {"train": "", "val": "a\nb\n", "test": "c\nd\n"}.items():
        (cfg / f"{split}_text.txt").write_text(texts)
        (cfg / f"{split}_labels.txt").write_text("0\n1\n" if texts else "")
    task = _task(sources={"socket": {"config": "toy"}})
    with pytest.raises(
        DataError, match=re.escape(f"task 'toy': {cfg / 'train_text.txt'} has no usable train rows")
    ):
        write_data_run("r", build_data([task], source="socket", data_dir=tmp_path))
    assert _nothing_written(runs_dir)


def test_empty_validation_file_is_a_printed_warning_in_the_data_card(make_bundle, runs_dir):
    bundle = make_bundle({"toy": {"train": GOOD, "validation": [], "test": TEST}})
    expected = f"{bundle / 'toy' / 'validation.jsonl'} has no usable validation rows (the file is empty)"
    with pytest.warns(DataWarning, match=re.escape(f"task 'toy': {expected}")):
        run = _assemble([_task()], bundle)
    assert load_data_card(run)["tasks"]["toy"]["warnings"] == [expected]


def test_related_task_with_empty_train_file_warns_no_few_shot_pool(make_bundle):
    bundle = make_bundle({"toy": {"train": [], "test": TEST}})
    with pytest.warns(DataWarning, match="has no usable train rows .*; no few-shot pool for this task"):
        data = build_data([_task(group="related")], data_dir=bundle)
    assert data.pool == [] and len(data.splits["test"]) == 2


def test_complete_task_builds_without_warnings(make_bundle):
    bundle = make_bundle({"toy": {"train": GOOD, "validation": VAL, "test": TEST}})
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        data = build_data([_task()], data_dir=bundle)
    assert data.card["tasks"]["toy"]["warnings"] == []


# ------------------------------------------------------------------ 12. unknown keys at every level; booleans

USER_TASK = """
suite: mine
description: my tasks
tasks:
  politeness_toy:
    category: other_social_factors
    type: classification
    group: seen
    labels: [polite, impolite]
    label_map: {"1": polite, "0": impolite}
    instruction: "Is this request polite? Answer with one of: polite, impolite."
    sources: {local: {dir: politeness_toy}}
    variants:
      - instruction: "Polite or rude? Answer with one of: polite, rude."
        labels: {impolite: rude}
"""


def _load(tmp_path, text):
    path = tmp_path / "user.yaml"
    path.write_text(text)
    return path, lambda: load_registry("mine", extra_dirs=[path])


def test_the_user_task_itself_loads(tmp_path):
    _, load = _load(tmp_path, USER_TASK)
    task = load()["politeness_toy"]
    assert task.sources == {"local": {"dir": "politeness_toy"}} and task.variants[0]["labels"] == {
        "impolite": "rude"
    }


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "{local: {dir: politeness_toy}}",
            "{local: {dri: politeness_toy}}",
            "unknown field(s) ['sources.local.dri']; did you mean 'sources.local.dir'? "
            "Allowed in 'sources.local': ['dir']",
        ),
        (
            "{local: {dir: politeness_toy}}",
            "{lcoal: {dir: politeness_toy}}",
            "unknown field(s) ['sources.lcoal']; did you mean 'sources.local'? "
            "Allowed in 'sources': ['local', 'socialite_instructions', 'socket', 'writing_tasks']",
        ),
        (
            "{local: {dir: politeness_toy}}",
            "{socket: {config: x, revison: main}}",
            "unknown field(s) ['sources.socket.revison']; did you mean 'sources.socket.revision'? "
            "Allowed in 'sources.socket': ['config', 'pair_sep', 'repo_id', 'revision']",
        ),
        (
            "        labels: {impolite: rude}",
            "        lables: {impolite: rude}",
            "unknown field(s) ['variants[0].lables']; did you mean 'variants[0].labels'? "
            "Allowed in 'variants[0]': ['instruction', 'labels']",
        ),
        (
            "    group: seen",
            "    group: seen\n    colour: red",
            "unknown field(s) ['colour']",
        ),
    ],
)
def test_unknown_key_below_the_top_level_names_file_task_path_and_closest_key(tmp_path, old, new, message):
    path, load = _load(tmp_path, USER_TASK.replace(old, new))
    with pytest.raises(RegistryError) as exc:
        load()
    assert str(exc.value).startswith(f"{path}: task 'politeness_toy': {message}")


def test_unknown_top_level_key_of_the_suite_file(tmp_path):
    path, load = _load(tmp_path, USER_TASK.replace("description:", "descripton:"))
    with pytest.raises(RegistryError) as exc:
        load()
    assert str(exc.value) == (
        f"{path}: unknown field(s) ['descripton']; did you mean 'description'? "
        "Allowed at the top level of a suite file: ['data_dir', 'description', 'suite', 'tasks']"
    )


QUOTE = 'YAML reads unquoted yes/no/true/false/on/off as booleans; quote the word, e.g. labels: ["yes", "no"]'


@pytest.mark.parametrize(
    ("old", "new", "line", "what"),
    [
        ("labels: [polite, impolite]", "labels: [yes, no]", 9, "labels[0] is the boolean True"),
        ("labels: [polite, impolite]", "labels: [on, off]", 9, "labels[0] is the boolean True"),
        ('"0": impolite}', '"0": no}', 10, "label_map['0'] is the boolean False"),
        ("{impolite: rude}", "{impolite: off}", 15, "variants[0].labels['impolite'] is the boolean False"),
    ],
)
def test_unquoted_yes_no_labels_say_to_quote_them(tmp_path, old, new, line, what):
    path, load = _load(tmp_path, USER_TASK.replace(old, new))
    with pytest.raises(RegistryError) as exc:
        load()
    # the line is that of the field in USER_TASK (line 1 is its leading blank line)
    assert str(exc.value) == f"{path}: line {line}: task 'politeness_toy': {what}: {QUOTE}"


def test_quoted_yes_no_labels_load(tmp_path):
    text = USER_TASK.replace("[polite, impolite]", '["yes", "no"]').replace(
        '{"1": polite, "0": impolite}', '{"1": "yes", "0": "no"}'
    )
    text = text.replace("{impolite: rude}", '{"no": "nope"}').replace("polite, impolite.", "yes, no.")
    _, load = _load(tmp_path, text)
    assert load()["politeness_toy"].labels == ["yes", "no"]


def test_source_fields_are_the_loaders_own_arguments():
    assert set(SOURCE_FIELDS) == set(SOURCE_KINDS)  # a new source kind needs its allowed fields listed
    loaders = {"socialite_instructions": sources.load_socialite_instructions, "socket": sources.load_socket}
    for kind, loader in loaders.items():
        params = inspect.signature(loader).parameters
        assert set(SOURCE_FIELDS[kind]) <= set(params), kind


# ------------------------------------------------------------------ 15. verbatim text by default

TWEETS = {
    "train": [
        {"text": "@user I love  this phone ", "label": "positive"},
        {"text": "meh.   whatever ", "label": "neutral"},
        {"text": "worst day ever ", "label": "negative"},
    ],
    "validation": [{"text": "not bad at all ", "label": "positive"}],
    "test": [{"text": "@user so   tired of this ", "label": "negative"}],
}


@pytest.mark.parametrize(
    ("option", "shown"),
    [
        (None, "@user so   tired of this "),
        ("none", "@user so   tired of this "),
        ("collapse_whitespace", "@user so tired of this"),
    ],
)
def test_text_rendered_verbatim_by_default_and_collapsed_on_request(make_bundle, runs_dir, option, shown):
    task = REG["tweet_sentiment"]
    bundle = make_bundle({"tweet_sentiment": TWEETS})
    kwargs = {} if option is None else {"text_normalization": option}
    data = build_data([task], data_dir=bundle, few_shot_k=1, **kwargs)
    (row,) = data.splits["test"]
    assert row["prompt"].endswith(f"\nInput: {shown}\nOutput:")
    assert row["text"] == shown  # the row stores the text as rendered, so every consumer sees the same text
    shot = data.card["tasks"]["tweet_sentiment"]["few_shot_examples"][0]
    assert f"\n{shot['text']} - {shot['label']}\n" in row["prompt"]
    assert shot["text"].endswith(" ") == (option != "collapse_whitespace")
    # evaluation and analysis re-render from the row and the pool: the same prompt
    shots = [{"text": p["text"], "label": p["label"]} for p in data.pool if p["text"] == shot["text"]]
    assert render_variant_prompt(task, row["text"], variant=None, shots=shots) == row["prompt"]
    run = write_data_run("tweets", data)
    card = load_data_card(run)
    assert card["text_normalization"] == (option or "none") == card["params"]["text_normalization"]
    assert json.loads((run / "params.json").read_text())["text_normalization"] == (option or "none")


def test_render_prompt_verbatim_and_collapsed_exact():
    task = REG["tweet_sentiment"]
    text = "@user I love  this\tphone "
    head = f"Instruction: {task.instruction}\nInput: "
    assert render_prompt(task, text) == f"{head}@user I love  this\tphone \nOutput:"
    got = render_prompt(task, text, text_normalization="collapse_whitespace")
    assert got == f"{head}@user I love this phone\nOutput:"


def test_unknown_text_normalization_is_refused_before_loading(make_bundle, runs_dir):
    with pytest.raises(
        ValueError,
        match=r"unknown text_normalization 'collapse'; expected one of \('none', 'collapse_whitespace'\)",
    ):
        build_data([REG["tweet_sentiment"]], data_dir=make_bundle({}), text_normalization="collapse")
    assert _nothing_written(runs_dir)
