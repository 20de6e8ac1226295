"""Benchmark: score mode (label log-probs) vs generate mode (greedy decoding + parsing) on smollm2-135m.

Real test prompts from the local bundle (the registry + render_prompt), for each setting (prompt format and number
of few-shot examples): N distinct test examples per task over a few tasks, then 4N per task. All modes run
back-to-back in ONE process so that CPU contention from other jobs on shared cores hits them alike; the
score/generate ratio is the number to trust, the absolute examples/s are not. Peak memory is the RSS high-water mark
during each phase above the RSS just before it (sampled every 5 ms), which shows whether memory grows with the
number of examples.

    python benchmarks/bench_scoring.py --markdown benchmarks/scoring.md
"""

from __future__ import annotations

import argparse
import io
import math
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from typing import Any

import psutil
import torch
from transformers import GenerationConfig

from socialite_utils.data import load_local_split
from socialite_utils.evaluation.scoring import (
    MIN_SHARED_PREFIX_TOKENS,
    _group_by_prefix,
    generate_answers,
    parse_answer,
    score_label_logprobs,
)
from socialite_utils.models import load_model
from socialite_utils.prompts import draw_shots, render_prompt
from socialite_utils.registry import load_registry
from socialite_utils.tokens import encode_completion, encode_prompt

DEFAULT_TASKS = ["tweet_emotion", "tweet_sentiment", "tweet_offensive", "hate_offensive"]


def load_examples(task_names: list[str], per_task: int, fmt: str, shots: int = 0) -> list[dict[str, Any]]:
    """`per_task` distinct test examples of each task (file order), with prompts in format `fmt` and `shots`
    few-shot examples drawn from the task's train split (the same draw for every prompt of a task, as in eval)."""
    registry = load_registry("local")
    examples = []
    for name in task_names:
        task = registry[name]
        records = load_local_split(task, "test")
        if len(records) < per_task:
            raise SystemExit(f"{name} has {len(records)} test examples, fewer than the {per_task} asked for")
        pool = load_local_split(task, "train") if shots else []
        drawn = draw_shots(pool, shots, seed=0, task_name=name, labels=[str(x) for x in task.labels])
        for rec in records[:per_task]:
            examples.append(
                {
                    "task": name,
                    "prompt": render_prompt(task, rec["text"], rec.get("text_b"), fmt=fmt, shots=drawn),
                    "labels": list(task.labels),
                    "gold": str(rec["label"]).lower(),
                }
            )
    return examples


class PeakRSS:
    """Context manager sampling this process's RSS in a thread; `.peak_mb` is the high-water mark above the
    RSS at entry."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.proc = psutil.Process()
        self.peak_mb = 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self.proc.memory_info().rss)
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakRSS:
        self._base = self._peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self.proc.memory_info().rss)
        self.peak_mb = (self._peak - self._base) / 2**20


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak RSS growth in MB)."""
    with PeakRSS() as mem:
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
    return result, seconds, mem.peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--per-task",
        type=int,
        default=8,
        help="test examples per task in the small run; the large run has 4x",
    )
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    parser.add_argument("--score-batch-size", type=int, default=16)
    parser.add_argument("--generate-batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument(
        "--repeats", type=int, default=2, help="rounds per size; the fastest round is reported"
    )
    parser.add_argument(
        "--settings",
        default="paper:0,chat:0,paper:3",
        help="comma-separated format:shots pairs (prompt format, few-shot examples per prompt)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; on an oversubscribed shared machine 1 is far faster than 2 (spinning OpenMP workers)",
    )
    parser.add_argument(
        "--prompts-only", action="store_true", help="only print the prompt statistics (no timing; seconds)"
    )
    parser.add_argument("--markdown", help="also write the printed report to this file")
    args = parser.parse_args()

    out = io.StringIO()
    with redirect_stdout(Tee(out)):
        run(args)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(out.getvalue())


class Tee(io.TextIOBase):
    """Write to the real stdout and a buffer, so the markdown file is exactly what was printed."""

    def __init__(self, buffer: io.StringIO) -> None:
        self.buffer_ = buffer
        self.stdout = sys.stdout

    def write(self, s: str) -> int:
        self.stdout.write(s)
        self.stdout.flush()
        return self.buffer_.write(s)


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    model, tokenizer = load_model("smollm2-135m")
    settings = []
    for item in args.settings.split(","):
        fmt, _, shots = item.strip().partition(":")
        settings.append((fmt, int(shots or 0)))
    sizes = (args.per_task, 4 * args.per_task)

    def score(exs: list[dict], common: bool = True) -> list[dict[str, float]]:
        return score_label_logprobs(
            model,
            tokenizer,
            [e["prompt"] for e in exs],
            [e["labels"] for e in exs],
            batch_size=args.score_batch_size,
            share_common_prefix=common,
            progress=False,
        )

    def generate(exs: list[dict]) -> list[str]:
        return generate_answers(
            model,
            tokenizer,
            [e["prompt"] for e in exs],
            max_new_tokens=args.max_new_tokens,
            batch_size=args.generate_batch_size,
            progress=False,
        )

    def generate_forced(exs: list[dict]) -> None:
        """Worst case for generate mode: every answer runs to max_new_tokens (a base model that never emits EOS).
        Same batching as generate_answers, plus min_new_tokens."""
        encoded = sorted((encode_prompt(tokenizer, e["prompt"]) for e in exs), key=len, reverse=True)
        with torch.inference_mode():
            for start in range(0, len(encoded), args.generate_batch_size):
                batch = {"input_ids": encoded[start : start + args.generate_batch_size]}
                inputs = tokenizer.pad(batch, padding_side="left", return_tensors="pt")
                model.generate(
                    input_ids=inputs["input_ids"],
                    attention_mask=inputs["attention_mask"],
                    generation_config=GenerationConfig(
                        max_new_tokens=args.max_new_tokens,
                        min_new_tokens=args.max_new_tokens,
                        do_sample=False,
                        pad_token_id=tokenizer.pad_token_id,
                        eos_token_id=model.generation_config.eos_token_id,
                    ),
                )

    load_before = os.getloadavg()
    started = time.perf_counter()
    speed_rows, quality_rows, notes = [], [], []
    for fmt, shots in settings:
        label = f"{fmt}, {shots}-shot"
        examples_by_size = {k: load_examples(tasks, k, fmt, shots) for k in sizes}
        chat = fmt == "chat"
        big = examples_by_size[sizes[-1]]
        single = {
            name: all(
                len(encode_completion(tokenizer, lab, chat, prompt=ex["prompt"])) == 1 for lab in ex["labels"]
            )
            for name in tasks
            for ex in [next(e for e in big if e["task"] == name)]
        }
        ids = [encode_prompt(tokenizer, e["prompt"]) for e in big]
        lens = [len(x) for x in ids]
        # What score mode's grouping (the real function) would run once per group instead of once per prompt.
        groups = _group_by_prefix([(i, x, {}) for i, x in enumerate(ids)], MIN_SHARED_PREFIX_TOKENS)
        shared = sum(length * len(members) for length, members in groups)
        notes.append(
            f"- {label}: prompt length {min(lens)}-{max(lens)} tokens (mean {sum(lens) / len(lens):.0f}); "
            f"shared prefixes are {100 * shared / sum(lens):.0f}% of the prompt tokens ({len(groups)} groups); "
            "all labels one token: " + ", ".join(f"{t} {'yes' if s else 'no'}" for t, s in single.items())
        )
        if args.prompts_only:
            continue
        # Warm-up: first calls pay one-off costs (allocator growth, kernel choice) that are not per-example.
        score(big[:4])
        generate(big[:2])
        for per_task in sizes:
            exs = examples_by_size[per_task]
            n = len(exs)
            # Rounds of all modes back-to-back; the fastest round per mode is the least disturbed by other jobs.
            # Memory: the largest growth seen in any round.
            best: dict[str, float] = {}
            peak: dict[str, float] = {}
            for _ in range(args.repeats):
                for mode, fn in (
                    ("score", lambda exs=exs: score(exs)),
                    ("score_whole", lambda exs=exs: score(exs, common=False)),
                    ("generate", lambda exs=exs: generate(exs)),
                    ("forced", lambda exs=exs: generate_forced(exs)),
                ):
                    result, seconds, mem = timed(fn)
                    best[mode] = min(best.get(mode, math.inf), seconds)
                    peak[mode] = max(peak.get(mode, 0.0), mem)
                    if mode == "score":
                        scores = result
                    elif mode == "generate":
                        answers = result
            s_time, w_time, g_time, f_time = (best[k] for k in ("score", "score_whole", "generate", "forced"))
            new_tokens = [len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers]
            speed_rows.append(
                f"| {label} | {n} | {n / s_time:.2f} | {n / w_time:.2f} | {n / g_time:.2f} | {n / f_time:.2f} | "
                f"{peak['score']:.0f} | {peak['score_whole']:.0f} | {peak['generate']:.0f} | "
                f"{sum(new_tokens) / n:.1f} | **{g_time / s_time:.1f}x** | {f_time / s_time:.1f}x | "
                f"{w_time / s_time:.1f}x |"
            )
            s_acc = sum(max(sc, key=sc.get) == e["gold"] for sc, e in zip(scores, exs, strict=True)) / n
            parsed = [parse_answer(a, e["labels"]) for a, e in zip(answers, exs, strict=True)]
            lenient = [parse_answer(a, e["labels"], lenient=True) for a, e in zip(answers, exs, strict=True)]
            g_acc = sum(p == e["gold"] for p, e in zip(parsed, exs, strict=True)) / n
            quality_rows.append(
                f"| {label} | {n} | {s_acc:.2f} | {g_acc:.2f} | {sum(p is None for p in parsed) / n:.2f} | "
                f"{sum(p is None for p in lenient) / n:.2f} |"
            )
        notes.append("  first answers: " + "; ".join(repr(a[:40]) for a in answers[:3]))
    load_after = os.getloadavg()
    if args.prompts_only:
        print("\n".join(notes))
        return

    print("# Scoring benchmark: score mode vs generate mode\n")
    print(
        f"smollm2-135m (SmolLM2-135M-Instruct, dequantized GGUF, fp32) on CPU: {_cpu_name()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} thread(s). "
        f"Distinct test prompts of {', '.join(tasks)}: {sizes[0]} and {sizes[1]} per task. "
        f"score: batch_size={args.score_batch_size}, normalize=sum; "
        f"generate: batch_size={args.generate_batch_size}, greedy, max_new_tokens={args.max_new_tokens}.\n"
    )
    print("\n".join(notes) + "\n")
    print(
        "| prompts | examples | score ex/s | score, no common prefix ex/s | generate ex/s | "
        f"generate, {args.max_new_tokens} tokens forced ex/s | score peak RSS +MB | no-common-prefix peak RSS +MB | "
        "generate peak RSS +MB | generated tokens/ex | score speed-up vs generate | vs forced generate | "
        "common prefix gain |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(speed_rows) + "\n")
    print(
        "| prompts | examples | score accuracy | generate accuracy | generate invalid | invalid (lenient) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(quality_rows) + "\n")
    print(
        f"Times are the fastest of {args.repeats} back-to-back rounds; the whole benchmark took "
        f"{(time.perf_counter() - started) / 60:.0f} min. "
        "Speed-up = generate time / score time on the same examples; 'forced' makes every answer run to "
        "max_new_tokens (min_new_tokens), the cost of a base model that never stops. 'No common prefix' is score "
        "mode with share_common_prefix=False (each prompt runs whole). Load average (1/5/15 min) before "
        f"{tuple(round(x, 1) for x in load_before)}, after {tuple(round(x, 1) for x in load_after)}: when other "
        "jobs share the cores, absolute rates vary between runs; all modes ran back-to-back in one "
        "process and the ratios are the comparable figures. Peak RSS +MB is the high-water mark during a phase "
        "above the RSS at its start (glibc keeps freed memory, so later phases reuse what earlier ones grew)."
    )


def _cpu_name() -> str:
    for line in open("/proc/cpuinfo", encoding="utf-8"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


if __name__ == "__main__":
    main()
