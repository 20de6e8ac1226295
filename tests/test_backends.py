"""The vLLM generation backend's contract on a machine without vllm (and without a GPU).

vllm is deliberately not installed here: asking for it fails before any model is loaded, with a message
that says what to install and what to use instead. The generate path itself needs a CUDA GPU (README,
"Scaling up"); here the engine is replaced by a stand-in to check the kit's side of the hook.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from contextlib import contextmanager

import pytest

from socialite_utils.evaluation import EvalParams, backends, score_examples
from socialite_utils.evaluation.backends import backend_info, check_backend, require_vllm

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")


def test_missing_vllm_gives_a_clear_message_before_anything_loads():
    with pytest.raises(ImportError, match=r"needs the optional package vllm.*pip install vllm.*backend='hf'"):
        require_vllm()
    with pytest.raises(ImportError, match="needs the optional package vllm"):
        EvalParams(run_name="e", train_run=None, base_model="tiny-random", backend="vllm").validate()
    with pytest.raises(ImportError, match="needs the optional package vllm"):
        backends.VLLMModel("some/model", tokenizer=None)


def test_backend_is_validated():
    with pytest.raises(ValueError, match=r"EvalParams.backend = 'vlm'; expected one of \('hf', 'vllm'\)"):
        EvalParams(run_name="e", train_run=None, base_model="tiny-random", backend="vlm").validate()
    with pytest.raises(ValueError, match="supports mode='generate' only"):
        check_backend("vllm", "score")
    EvalParams(run_name="e", train_run=None, base_model="tiny-random").validate()  # hf: fine


def test_backend_info_records_the_package_version():
    import transformers

    assert backend_info("hf") == {"name": "hf", "version": transformers.__version__}
    assert backend_info("vllm") == {"name": "vllm", "version": None}


@contextmanager
def fake_vllm(outputs_by_lora):
    """A stand-in `vllm` module recording what the kit sends it."""
    calls = []

    class LLM:
        def __init__(self, **kwargs):
            calls.append(("init", kwargs))

        def generate(self, inputs, sampling, lora_request=None, use_tqdm=True):
            calls.append(("generate", inputs, sampling, lora_request))
            text = outputs_by_lora[lora_request is not None]
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=text)]) for _ in inputs]

    mod = types.ModuleType("vllm")
    mod.LLM = LLM
    mod.SamplingParams = lambda **kw: kw
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = lambda name, lid, path: ("lora", name, lid, path)
    saved = {k: sys.modules.get(k) for k in ("vllm", "vllm.lora", "vllm.lora.request")}
    sys.modules.update({"vllm": mod, "vllm.lora": lora, "vllm.lora.request": request})
    try:
        yield calls
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def test_vllm_engine_serves_the_adapter_as_a_lora_request_and_feeds_the_same_parser(tmp_path):
    from socialite_utils import models

    _, tokenizer = models.load_model("tiny-random", seed=0)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 16}')
    with fake_vllm({True: "positive\nmore", False: "maybe"}) as calls:
        engine = backends.VLLMModel("base-dir", tokenizer, adapter, seed=3)
        init = calls[0][1]
        assert (
            init["enable_lora"] is True and init["max_lora_rank"] == 16 and init["tokenizer"] == str(adapter)
        )
        item = _item("Text: a b c\nAnswer:")
        tuned = score_examples(engine, tokenizer, [item], model_name="tuned", mode="generate")
        with engine.disable_adapter():
            base = score_examples(engine, tokenizer, [item], model_name="base", mode="generate")
    sent, sampling, lora = calls[1][1], calls[1][2], calls[1][3]
    from socialite_utils.tokens import encode_prompt

    assert sent == [{"prompt_token_ids": encode_prompt(tokenizer, item.prompt)}]  # same tokens as HF
    assert sampling["temperature"] == 0.0 and sampling["max_tokens"] == 20
    assert lora == ("lora", "socialite-adapter", 1, str(adapter)) and calls[2][3] is None
    assert tuned[0]["parsed"] == "pos" and tuned[0]["correct"] is True
    assert base[0]["parsed"] is None and base[0]["raw_output"] == "maybe"  # the invalid bucket, as with HF


def _item(prompt: str):
    from socialite_utils.evaluation import EvalItem

    row = {"id": "x1", "task": "t", "category": "c", "group": "g", "task_type": "classification"}
    row.update(text="a b c", label="pos")
    return EvalItem(
        row=row,
        prompt=prompt,
        answers=["positive", "negative"],
        to_label={"positive": "pos", "negative": "neg"},
        few_shot_k=0,
    )
