"""Fuzzing the parameter layer and the YAML and JSONL readers: values of wrong types, ranges and shapes give the
kit's own error (a ValueError subclass naming the field or file), never a library's, and write nothing."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from socialite_utils.evaluation import EvalParams
from socialite_utils.params import ParamError
from socialite_utils.registry import RegistryError, load_task_file
from socialite_utils.runs import UnsafePathError, read_jsonl
from socialite_utils.training import TrainParams

FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
TRAIN_FIELDS = ["lora_r", "learning_rate", "per_device_train_batch_size", "seed", "logging_steps", "resume",
                "overwrite", "lora_target_modules", "max_length", "num_train_epochs"]  # fmt: skip
EVAL_FIELDS = [
    "batch_size",
    "mode",
    "seed",
    "max_new_tokens",
    "lenient",
    "tasks",
    "few_shot_k",
    "calibration",
]


@FAST
@given(field=st.sampled_from(TRAIN_FIELDS), value=ANY)
def test_train_params_fail_only_with_the_kits_error(field, value, tmp_path_factory):
    try:
        TrainParams(run_name="t", **{field: value}).validate()
    except (ParamError, UnsafePathError) as e:
        assert field in str(e) or "lora_target_modules" in str(e)
    except ValueError as e:  # the kit's own cross-field checks
        assert type(e) is ValueError and ("num_train_epochs" in str(e) or "lora_target_modules" in str(e))


@FAST
@given(field=st.sampled_from(EVAL_FIELDS), value=ANY)
def test_eval_params_fail_only_with_the_kits_error(field, value):
    try:
        EvalParams(run_name="e", **{field: value}).validate()
    except ValueError as e:
        assert isinstance(e, ParamError) or "EvalParams" in str(e) or "backend" in str(e), e


@FAST
@given(
    doc=st.recursive(
        ANY, lambda inner: st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12
    )
)
def test_task_yaml_of_any_shape_fails_with_registry_error(doc, tmp_path_factory):
    path = tmp_path_factory.mktemp("yaml") / "t.yaml"
    path.write_text(json.dumps({"suite": "s", "tasks": {"x": doc}}))  # JSON is YAML
    before = sorted(path.parent.iterdir())
    try:
        load_task_file(path)
    except RegistryError:
        pass
    assert sorted(path.parent.iterdir()) == before


@FAST
@given(data=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_jsonl_of_any_bytes_fails_with_a_value_error_naming_the_file(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("jsonl") / "rows.jsonl"
    path.write_bytes(data)
    try:
        rows = read_jsonl(path)
    except ValueError as e:
        assert str(path) in str(e)
    else:
        assert all(isinstance(r, dict) for r in rows)
