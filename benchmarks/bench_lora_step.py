"""Where does the time of a LoRA training step go on the CPU? (The all-linear adapter that beats TF-IDF trained
at 6 s per step of 8 examples in `make demo`, against about 2.4 s per 8 examples for the q/v adapter.)

Times forward + backward + AdamW step of SmolLM2-135M (the packaged model, fp32) on the same micro-batch of 8
real training prompts (the first 8 rows of a data run, padded to the longest; `benchmarks/levers.md` used
`runs/levers-160-bal/data`), for LoRA adapters that differ in
one setting at a time: targets (q/v or every linear layer), rank, dropout. The kit's trainer adds its own work on
top (TRL collation, the compact LM head, logging, checkpoints); this isolates the adapter's share.

    python benchmarks/bench_lora_step.py [--data-run runs/demo/data] [--steps 5]

Prints one line per adapter: trainable parameters and median seconds per step (after one warm-up step).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from peft import get_peft_model

from socialite_utils import models
from socialite_utils.training import build_lora_config
from socialite_utils.training.rows import load_training_rows, tokenize_like_trl

REPO = Path(__file__).resolve().parents[1]
ADAPTERS = {  # name -> build_lora_config kwargs
    "q/v r8 dropout 0.05 (cpu-demo before)": dict(
        r=8, alpha=16, dropout=0.05, target_modules="q_proj,v_proj"
    ),
    "all-linear r16 dropout 0.05 (cpu-demo-long)": dict(
        r=16, alpha=32, dropout=0.05, target_modules="all-linear"
    ),
    "all-linear r16 dropout 0 (cpu-demo)": dict(r=16, alpha=32, dropout=0.0, target_modules="all-linear"),
    "all-linear r8 dropout 0.05": dict(r=8, alpha=16, dropout=0.05, target_modules="all-linear"),
}


def batch_of(tokenizer, rows: list[dict]) -> dict[str, torch.Tensor]:
    """The rows tokenized as training does, right-padded to the longest; labels -100 on prompt and padding."""
    encoded = [tokenize_like_trl(tokenizer, r["prompt"], r["completion"], eos=True) for r in rows]
    width = max(len(full) for full, _ in encoded)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids, labels, mask = [], [], []
    for full, n_prompt in encoded:
        n = len(full)
        ids.append(full + [pad] * (width - n))
        mask.append([1] * n + [0] * (width - n))
        labels.append([-100] * n_prompt + full[n_prompt:] + [-100] * (width - n))
    return {
        "input_ids": torch.tensor(ids),
        "attention_mask": torch.tensor(mask),
        "labels": torch.tensor(labels),
    }


def time_adapter(kwargs: dict, batch: dict, steps: int) -> tuple[int, float]:
    model, _ = models.load_model("smollm2-135m")
    model = get_peft_model(model, build_lora_config(**kwargs))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-4)
    times = []
    for _ in range(steps + 1):  # the first step warms up (allocations, thread pools)
        t0 = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return sum(p.numel() for p in params), statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-run", default=str(REPO / "runs" / "demo" / "data"))
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    _, tokenizer = models.load_model("smollm2-135m")
    batch = batch_of(tokenizer, load_training_rows(args.data_run)[:8])
    print(
        f"micro-batch: 8 rows x {batch['input_ids'].shape[1]} tokens; torch threads {torch.get_num_threads()}"
    )
    for name, kwargs in ADAPTERS.items():
        n, seconds = time_adapter(kwargs, batch, args.steps)
        print(f"{name:<45} trainable {n:>9,}  {seconds:.2f} s/step", flush=True)


if __name__ == "__main__":
    main()
