"""The checks to run the day a CUDA GPU is at hand: `python benchmarks/gpu_check.py` (about a minute).

On the tiny-random model (no download): one LoRA training step in bf16 autocast and one in fp16 autocast
(with a GradScaler): the loss is finite and the LoRA weights moved; the 4-bit QLoRA loading path
(bitsandbytes NF4, the kit's `build_quantization_config`) on the tiny model saved to a local dir;
score-mode and generate-mode throughput (prompts/s); the peak GPU memory of each. One table is printed.
A failing check prints FAIL and the script exits 1. Without a GPU it says so and exits 0 at once.
Never run here (no GPU in the sessions that wrote it): its first real run is on a GPU machine.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

DEVICE = "cuda"  # a dry run of the code paths on a CPU sets "cpu" (see the test)
TEXTS = [
    f"Text: example {i} about the weather and the news.\nOutput: {'positive' if i % 2 else 'negative'}"
    for i in range(64)
]


def _row(name: str, ok: bool, seconds: float, detail: str) -> dict:
    peak = torch.cuda.max_memory_allocated() / 2**20
    torch.cuda.reset_peak_memory_stats()
    return {"check": name, "ok": ok, "seconds": seconds, "peak_mb": peak, "detail": detail}


def check_train_step(dtype: torch.dtype) -> dict:
    from peft import get_peft_model

    from socialite_utils import models
    from socialite_utils.training import build_lora_config

    model, tok = models.load_model("tiny-random", precision=models.choose_precision(), seed=0)
    model = get_peft_model(model.train(), build_lora_config(dropout=0.0))
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    batch = tok(TEXTS[:8], return_tensors="pt", padding=True).to(DEVICE)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    scaler = torch.amp.GradScaler(DEVICE, enabled=dtype == torch.float16)
    start = time.perf_counter()
    with torch.autocast(DEVICE, dtype=dtype):
        loss = model(**batch, labels=labels).loss
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    torch.cuda.synchronize()
    moved = any(not torch.equal(p.detach(), lora[n]) for n, p in model.named_parameters() if n in lora)
    ok = bool(torch.isfinite(loss)) and moved
    name = "train step " + str(dtype).removeprefix("torch.")
    return _row(name, ok, time.perf_counter() - start, f"loss {loss.item():.3f}, LoRA moved: {moved}")


def check_qlora_loading() -> dict:
    from socialite_utils import models

    base, tok = models.load_model("tiny-random", seed=0)
    with tempfile.TemporaryDirectory() as d:
        base.save_pretrained(d)
        tok.save_pretrained(d)
        precision = models.Precision("cuda", torch.bfloat16, True, False, True, "gpu_check: 4-bit path")
        start = time.perf_counter()
        try:
            model, _ = models.load_model(str(Path(d)), precision=precision)
        except Exception as e:  # bitsandbytes missing or broken: a failed check, named
            return _row(
                "4-bit QLoRA load", False, time.perf_counter() - start, f"{type(e).__name__}: {e}"[:90]
            )
        n4 = sum(1 for m in model.modules() if type(m).__name__ == "Linear4bit")
    return _row("4-bit QLoRA load", n4 > 0, time.perf_counter() - start, f"{n4} Linear4bit layers")


def check_throughput(mode: str, n: int = 256) -> dict:
    from socialite_utils import models
    from socialite_utils.evaluation import scoring

    model, tok = models.load_model("tiny-random", precision=models.choose_precision(), seed=0)
    prompts = [t.rsplit(" ", 1)[0] for t in TEXTS] * (n // len(TEXTS))
    start = time.perf_counter()
    if mode == "score":
        out = scoring.score_label_logprobs(
            model, tok, prompts, ["positive", "negative"], batch_size=64, progress=False
        )
    else:
        out = scoring.generate_answers(model, tok, prompts, max_new_tokens=20, batch_size=64, progress=False)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return _row(
        f"{mode} throughput", len(out) == len(prompts), seconds, f"{len(prompts) / seconds:.0f} prompts/s"
    )


def main() -> int:
    if not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA GPU visible to torch; nothing to check (run this on a GPU machine). Exit 0."
        )
        return 0
    print(
        f"gpu_check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    )
    rows = []
    checks = [
        lambda: check_train_step(torch.bfloat16),
        lambda: check_train_step(torch.float16),
        check_qlora_loading,
    ]
    checks += [lambda: check_throughput("score"), lambda: check_throughput("generate")]
    for check in checks:
        torch.cuda.reset_peak_memory_stats()
        rows.append(check())
    print(f"\n{'check':<20} {'result':<6} {'seconds':>8} {'peak MB':>8}  detail")
    for r in rows:
        status = "ok" if r["ok"] else "FAIL"
        print(f"{r['check']:<20} {status:<6} {r['seconds']:>8.2f} {r['peak_mb']:>8.0f}  {r['detail']}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
