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
        ('    pair: "false"\n', "field 'pair' must be true or false"),
        ("    text_b_name: {a: 1}\n", "field 'text_b_name' must be a non-empty string"),
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
