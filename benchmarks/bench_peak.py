"""What this machine can do: the matmul throughput at SmolLM2-135M's own shapes, the ceiling every stage is read against.

A training or scoring step of SmolLM2-135M is mostly matrix products of a (tokens x 576) activation with the
model's weights: the attention projections (576 -> 576, 576 -> 192 for grouped keys/values), the MLP (576 -> 1536,
1536 -> 576) and the LM head (576 -> 49152). This script times ``torch.mm`` at those shapes for a batch of tokens
the demo's micro-batches reach (8 rows x ~87 tokens), in fp32 and, where the CPU has native bf16 (AMX or
AVX512-BF16), in bf16, on 1 thread and on every core. Printed: GFLOP/s per shape (2 x m x k x n FLOPs per
product) and the FLOP-weighted mean over one transformer layer's products, the number to compare a stage's
achieved GFLOP/s with.

    python benchmarks/bench_peak.py [--tokens 696] [--repeats 20]

Run it on a quiet machine: another process on the same cores halves what it reports.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

HIDDEN, KV, MLP, VOCAB = 576, 192, 1536, 49152  # SmolLM2-135M's config
LAYER_SHAPES = {  # name -> (k, n, how many such products per layer)
    "q/o projection 576x576": (HIDDEN, HIDDEN, 2),
    "k/v projection 576x192": (HIDDEN, KV, 2),
    "MLP up/gate 576x1536": (HIDDEN, MLP, 2),
    "MLP down 1536x576": (MLP, HIDDEN, 1),
}
HEAD = ("LM head 576x49152", (HIDDEN, VOCAB, 1))


def native_bf16() -> bool:
    """True when the CPU advertises AMX-BF16 or AVX512-BF16 (Linux /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def gflops(m: int, k: int, n: int, dtype: torch.dtype, repeats: int) -> float:
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)  # warm-up: allocations, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / statistics.median(times) / 1e9


def measure(tokens: int, dtype: torch.dtype, threads: int, repeats: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    out = {name: gflops(tokens, k, n, dtype, repeats) for name, (k, n, _) in [*LAYER_SHAPES.items(), HEAD]}
    flops = {name: 2 * tokens * k * n * count for name, (k, n, count) in LAYER_SHAPES.items()}
    seconds = sum(flops[name] / (out[name] * 1e9) for name in flops)
    out["one layer, FLOP-weighted"] = sum(flops.values()) / seconds / 1e9
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tokens", type=int, default=8 * 87, help="rows of the activation (micro-batch tokens)"
    )
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    dtypes = [torch.float32] + ([torch.bfloat16] if native_bf16() else [])
    print(f"{platform.processor() or platform.machine()}, {cores} cores, torch {torch.__version__}; "
          f"native bf16: {'yes' if native_bf16() else 'no (bf16 not measured)'}; {args.tokens} tokens")  # fmt: skip
    for dtype in dtypes:
        for threads in sorted({1, cores}):
            res = measure(args.tokens, dtype, threads, args.repeats)
            print(f"\n{str(dtype).removeprefix('torch.')}, {threads} thread(s): GFLOP/s")
            for name, value in res.items():
                print(f"  {name:28s} {value:8.1f}")


if __name__ == "__main__":
    main()
