"""Generation backends for ``generate`` mode: ``hf`` (transformers, the default) and ``vllm`` (optional).

vLLM is an optional dependency (Linux + CUDA GPU; ``pip install vllm``), imported only when
``EvalParams.backend == "vllm"``. It plugs into the same evaluation: the same prompts, encoded by the
kit's tokenizer (:func:`socialite_utils.evaluation.scoring.encode_prompt`) and handed to vLLM as token ids; greedy
decoding, ``max_new_tokens`` new tokens; the same parser, invalid bucket and metrics. The train run's
LoRA adapter is served through vLLM's LoRA support (``LLM(enable_lora=True)`` + ``LoRARequest``); the
base model is the same engine without the request (:meth:`VLLMModel.disable_adapter`).

Parity (document, do not assume): HF and vLLM kernels differ in float summation order, so a greedy
argmax can flip where two tokens are nearly tied. Expect >= 99 % identical parsed predictions on the
same prompts in bf16 (check on a GPU: evaluate one plan with ``backend="hf"`` and ``backend="vllm"`` and
compare the ``parsed`` fields of the two ``predictions.jsonl``; README "Scaling up"). A lower agreement
means a different prompt, tokenizer or adapter, not kernel noise.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import models
from ..training.hub import adapter_dir_of
from ..training.lora import load_run_tokenizer
from .scoring import encode_prompt

BACKENDS = ("hf", "vllm")

VLLM_MISSING = (
    "EvalParams.backend = 'vllm' needs the optional package vllm, which is not installed here "
    "(it runs on Linux with a CUDA GPU: `pip install vllm`); use backend='hf' (the default) otherwise"
)


def require_vllm() -> Any:
    """Import vllm or raise ImportError with :data:`VLLM_MISSING` (what to install, what to use instead)."""
    try:
        import vllm
    except ImportError as e:
        raise ImportError(VLLM_MISSING) from e
    return vllm


def backend_info(backend: str) -> dict[str, str | None]:
    """``{"name": ..., "version": ...}`` for metrics.json (the version of transformers or vllm)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    package = "transformers" if backend == "hf" else "vllm"
    try:
        version = metadata.version(package)
    except metadata.PackageNotFoundError:
        version = None
    return {"name": backend, "version": version}


def check_backend(backend: str, mode: str) -> None:
    """Raise (naming the parameter) unless ``backend`` can run ``mode`` here."""
    if backend not in BACKENDS:
        raise ValueError(f"EvalParams.backend = {backend!r}; expected one of {BACKENDS}")
    if backend == "vllm":
        if mode != "generate":
            raise ValueError(
                "EvalParams.backend = 'vllm' supports mode='generate' only; score mode runs on 'hf'"
            )
        require_vllm()


class VLLMModel:
    """A vLLM engine with the kit's generate interface (and ``disable_adapter`` like a PeftModel)."""

    def __init__(self, base_model: str, tokenizer: Any, adapter_dir: Path | None = None, *, seed: int = 0):
        require_vllm()
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        rank = None
        if adapter_dir is not None:
            import json

            rank = json.loads((Path(adapter_dir) / "adapter_config.json").read_text()).get("r")
        self.tokenizer = tokenizer
        tokenizer_source = str(adapter_dir) if adapter_dir is not None else base_model
        kwargs = {"enable_lora": True, "max_lora_rank": max(8, int(rank or 8))} if adapter_dir else {}
        self.llm = LLM(model=base_model, tokenizer=tokenizer_source, seed=seed, **kwargs)
        self.lora_request = LoRARequest("socialite-adapter", 1, str(adapter_dir)) if adapter_dir else None
        self._adapter_on = True

    @contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """Generate with the bare base model inside the block."""
        self._adapter_on = False
        try:
            yield
        finally:
            self._adapter_on = True

    def generate_answers(
        self, tokenizer: Any, prompts: Sequence[Any], *, max_new_tokens: int = 20, **_: Any
    ) -> list[str]:
        """Greedy continuations (new text only), as :func:`socialite_utils.evaluation.scoring.generate_answers`
        (``tokenizer`` encodes the prompts; vLLM receives token ids, so both backends see the same tokens)."""
        from vllm import SamplingParams

        inputs = [{"prompt_token_ids": encode_prompt(tokenizer, p)} for p in prompts]
        sampling = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, skip_special_tokens=True)
        lora = self.lora_request if self._adapter_on else None
        outputs = self.llm.generate(inputs, sampling, lora_request=lora, use_tqdm=False)
        return [o.outputs[0].text if o.outputs else "" for o in outputs]


def load_vllm_model(plan: Any) -> tuple[VLLMModel, Any]:
    """(engine, tokenizer) for an evaluation plan: the base model (a train run's saved ``base_model/`` for an
    in-process preset) with the run's adapter served as a LoRA request."""

    if plan.train_run_dir is None:
        spec = models.resolve_model(plan.base_model)
        if spec.source is None:
            raise ValueError(
                f"base_model {plan.base_model!r} is built in-process; vLLM needs a hub id or a local dir"
            )
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(spec.source)
        return VLLMModel(spec.source, tokenizer, seed=plan.params.seed), tokenizer

    if (Path(plan.train_run_dir) / "model").is_dir():
        # one engine serves base and tuned by switching the adapter off; a whole fine-tuned model has none
        raise ValueError(
            f"backend='vllm' evaluates LoRA runs; {plan.train_run_dir} is fully fine-tuned (model/): use backend='hf'"
        )
    saved = Path(plan.train_run_dir) / "base_model"
    base = str(saved) if saved.is_dir() else models.resolve_model(plan.base_model).source
    tokenizer = load_run_tokenizer(plan.train_run_dir)
    # a run's adapter/, or a downloaded Hub adapter repo (hub:owner/name) whose files are at its top
    engine = VLLMModel(base, tokenizer, adapter_dir_of(Path(plan.train_run_dir)), seed=plan.params.seed)
    return engine, tokenizer


__all__ = ["BACKENDS", "VLLMModel", "backend_info", "check_backend", "load_vllm_model", "require_vllm"]
