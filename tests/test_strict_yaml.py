"""The strict YAML reader behind the task registry and the profiles: duplicate keys, anchors/aliases and wrong
field types refused, naming the file, line and field."""

from __future__ import annotations

import textwrap

import pytest

from socialite_utils.registry import RegistryError, load_task_file

TASK = """\
suite: mine
tasks:
  toy:
    category: trustworthiness
    type: classification
    group: seen
    labels: ["yes", "no"]
    instruction: "Is it? Answer yes or no."
    sources: {local: {dir: toy}}
"""


def _load(tmp_path, text):
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent(text))
    return load_task_file(path)


@pytest.mark.parametrize(
    "extra, message",
    [
        ('    labels: ["a", "b"]\n', r"t.yaml: line 10: duplicate key 'labels' \(first given on line 7\)"),
        ('    pair: "false"\n', "t.yaml: line 10: task 'toy': field 'pair' must be true or false"),
        (
            "    text_b_name: {a: 1}\n",
            "t.yaml: line 10: task 'toy': field 'text_b_name' must be a non-empty string",
        ),
    ],
)
def test_bad_task_fields_are_refused_with_file_and_line(tmp_path, extra, message):
    with pytest.raises(RegistryError, match=message):
        _load(tmp_path, TASK + extra)


@pytest.mark.parametrize("instruction", ["[1, 2, 3]", '""'])
def test_instruction_must_be_a_non_empty_string(tmp_path, instruction):
    with pytest.raises(RegistryError, match="field 'instruction' must be a non-empty string"):
        _load(tmp_path, TASK.replace('"Is it? Answer yes or no."', instruction))


def test_aliases_and_path_task_names_are_refused(tmp_path):
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nsuite: s\ntasks: {}\n"
    with pytest.raises(RegistryError, match="line 1: anchors and aliases"):
        _load(tmp_path, bomb)
    with pytest.raises(RegistryError, match="a task name is a plain name"):
        _load(tmp_path, TASK.replace("  toy:", '  "../../LMESC":'))
    assert _load(tmp_path, TASK)[1]["toy"].pair is False


# A field of the wrong type is named with the line it is written on (TASK's fields are on lines 4-9).
@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'instruction: "Is it? Answer yes or no."',
            "instruction: [1, 2]",
            "line 8: task 'toy': field 'instruction'",
        ),
        ('labels: ["yes", "no"]', "labels: yes", "line 7: task 'toy': field 'labels' needs at least two"),
        ('labels: ["yes", "no"]', "labels: [yes, no]", "line 7: task 'toy': labels[0] is the boolean True"),
        (
            "sources: {local: {dir: toy}}",
            "sources: [local]",
            "line 9: task 'toy': field 'sources' must be a mapping",
        ),
        (
            "sources: {local: {dir: toy}}",
            "sources: {local: toy}",
            "line 9: task 'toy': 'sources.local' must be a",
        ),
        ("type: classification", "type: [classification]", "line 5: task 'toy': field 'type' must be one of"),
        ("group: seen", "group: 3", "line 6: task 'toy': field 'group' must be one of"),
        (
            "group: seen",
            "group: seen\n    variants: {instruction: x}",
            "line 7: task 'toy': field 'variants' must be",
        ),
        ("group: seen", "group: seen\n    label_map: [a]", "line 7: task 'toy': field 'label_map' must map"),
        (
            "    group: seen",
            "    group: seen\n    variants:\n      - instruction: x\n        labels: [a]",
            "line 9: task 'toy': variants[0].labels must map labels",
        ),
        (
            'type: classification\n    group: seen\n    labels: ["yes", "no"]',
            "type: regression\n    group: seen\n    scale: [5, 1]",
            "line 7: task 'toy': field 'scale' must be [min, max]",
        ),
    ],
)
def test_a_field_of_the_wrong_type_is_named_with_its_line(tmp_path, old, new, message):
    text = TASK.replace(old, new)
    assert text != TASK
    with pytest.raises(RegistryError) as exc:
        _load(tmp_path, text)
    assert str(exc.value).startswith(f"{tmp_path / 't.yaml'}: {message}")


def test_top_level_fields_of_the_wrong_type_name_their_line(tmp_path):
    with pytest.raises(RegistryError, match=r"t.yaml: line 2: 'tasks' must map task names"):
        _load(tmp_path, "suite: mine\ntasks: [toy]\n")
    with pytest.raises(RegistryError, match=r"t.yaml: line 10: 'data_dir' must be a folder"):
        _load(tmp_path, TASK + "data_dir: [a]\n")
