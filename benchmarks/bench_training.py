"""Training throughput on this CPU: TRL's default SFTConfig vs the kit's configuration.

Both configurations train the same LoRA (the paper's: r=8, alpha=16, dropout 0.05, q_proj/v_proj)
on the same real prompts from the offline bundle, with the same optimisation settings (lr, warmup,
batch, gradient accumulation, seed). The TRL default gets only what a CPU requires (bf16=False,
use_cpu=True); everything else is TRL's default. The kit differs only in speed settings
(see socialite_utils/training.py): no gradient checkpointing on CPU, length-sorted micro-batches
inside each optimizer step, and the LM head on supervised positions only.

The two configurations run back-to-back in one process, alternating, ``--repeats`` times, because
the 2 CPU cores are shared with other work: compare within a repeat. Writes benchmarks/training.md
(its "Notes from development" section was added by hand; keep it when you regenerate the file).

    python benchmarks/bench_training.py                      # default: 3 steps x 16 examples, 1 and 2 threads
    python benchmarks/bench_training.py --ablation --job-examples 320   # + ablations, a realistic job
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# Waiting OpenMP threads sleep instead of spinning (read once, when torch loads libgomp). On a shared,
# oversubscribed CPU spinning threads steal the cores their peers need: a 2-thread SmolLM2 forward took
# 4-12 s spinning vs 2.6 s passive at a load average of 2.6 on this 2-core box. Export another value to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from transformers.trainer_utils import IntervalStrategy  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from socialite_utils import models  # noqa: E402
from socialite_utils.data.assembly import build_data  # noqa: E402
from socialite_utils.registry import load_registry  # noqa: E402
from socialite_utils.training import (  # noqa: E402
    KitSFTTrainer,
    TrainParams,
    build_lora_config,
    build_sft_config,
    build_sft_dataset,
    loss_points,
    sample_rows,
    supervised_token_count,
    train_lora,
)

CONFIGS = ("trl-default", "kit")
# Ablations: the kit with one of its speed settings switched back to TRL's behaviour.
KIT_VARIANTS = {
    "kit": {},
    "kit, full LM head": {"compact_lm_head": False},
    "kit + grad. checkpointing": {"gradient_checkpointing": True},
    "kit, random micro-batches": {"sort_by_length": False},
}


def real_rows(n: int, seed: int) -> list[dict]:
    """``n`` real train prompts (paper format) drawn evenly from the bundle's seen tasks."""
    tasks = [t for t in load_registry("local").values() if t.group == "seen"]
    per_task = -(-n // len(tasks)) + 2
    data = build_data(tasks, max_train_per_task=per_task, max_eval_per_task=1, seed=seed)
    return sample_rows(data.splits["train"], n, seed)


def rss_mb() -> float:
    """Current resident memory of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakRSS:
    """Samples RSS every 50 ms in a thread while the block runs."""

    def __enter__(self):
        self.peak = rss_mb()
        self._stop = threading.Event()

        def sample():
            while not self._stop.wait(0.05):
                self.peak = max(self.peak, rss_mb())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step."""

    def __init__(self):
        self.times: list[float] = []
        self._t = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._t)


def make_trainer(kind: str, rows: list[dict], args: argparse.Namespace, out: Path):
    """A fresh model + trainer for one configuration."""
    precision = models.choose_precision()
    model, tokenizer = models.load_model(args.model, precision=precision, seed=args.seed)
    lora = build_lora_config(**_lora_kwargs(args.model))
    dataset = build_sft_dataset(rows)
    timer = StepTimer()
    common = {"max_steps": args.steps, "learning_rate": 1e-4, "warmup_steps": 0.1, "seed": args.seed}
    batch = {"per_device_train_batch_size": args.batch, "gradient_accumulation_steps": args.grad_accum}
    if kind == "trl-default":
        config = SFTConfig(
            output_dir=str(out / kind),
            bf16=False,  # required: no bf16 autocast on this CPU
            use_cpu=True,  # required: no accelerator
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            **common,
            **batch,
        )
        trainer = SFTTrainer(
            model=model, args=config, train_dataset=dataset, processing_class=tokenizer, peft_config=lora
        )
    else:
        params = TrainParams(
            run_name="bench",
            base_model=args.model,
            max_steps=args.steps,
            logging_steps=1,
            seed=args.seed,
            max_length=1024,  # TRL's default, so both configurations keep the same examples
            per_device_train_batch_size=args.batch,
            gradient_accumulation_steps=args.grad_accum,
            **KIT_VARIANTS[kind],
        )
        config = build_sft_config(params, out / "kit", precision=precision, n_examples=len(rows))
        config.save_strategy = IntervalStrategy.NO  # the default run saves nothing either
        trainer = KitSFTTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora,
            compact_lm_head=params.compact_lm_head,
        )
    trainer.add_callback(timer)
    return trainer, timer, tokenizer


def _lora_kwargs(model_name: str) -> dict:
    rec = models.recommended_lora_kwargs(model_name)
    return {
        "target_modules": rec.get("target_modules") or ["q_proj", "v_proj"],
        "modules_to_save": rec.get("modules_to_save"),
    }


def run_once(kind: str, rows: list[dict], args: argparse.Namespace) -> dict:
    """Train one configuration; time only ``trainer.train()``."""
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp:
        trainer, timer, tokenizer = make_trainer(kind, rows, args, Path(tmp))
        base = rss_mb()
        with PeakRSS() as mem:
            start = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - start
        n_examples = args.steps * args.batch * args.grad_accum
        tokens = supervised_token_count(rows[:n_examples], tokenizer, 1024)
        result = {
            "kind": kind,
            "seconds": seconds,
            "step_seconds": timer.times,
            "examples_per_s": n_examples / seconds,
            "sup_tokens_per_s": tokens / seconds,
            "peak_rss_mb": mem.peak,
            "rss_increase_mb": mem.peak - base,
            "losses": [v for _, v in loss_points(trainer.state.log_history)],
            "gradient_checkpointing": bool(trainer.args.gradient_checkpointing),
            "sampler": trainer.args.train_sampling_strategy,
        }
        del trainer
    gc.collect()
    print(
        f"  {kind:<12} {seconds:7.1f} s  {result['examples_per_s']:.2f} ex/s  "
        f"{result['sup_tokens_per_s']:.2f} sup-tok/s  peak RSS {mem.peak:.0f} MB  losses {result['losses']}",
        flush=True,
    )
    return result


def realistic_job(args: argparse.Namespace) -> dict:
    """The kit end to end (train_lora) on a few hundred real examples across tasks."""
    rows = real_rows(args.job_examples, args.seed + 1)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SOCIALITE_RUNS_DIR"] = tmp
        params = TrainParams(
            run_name="cpu-job",
            base_model=args.model,
            num_train_epochs=args.job_epochs,
            per_device_train_batch_size=args.batch,
            gradient_accumulation_steps=args.job_grad_accum,
            seed=args.seed,
        )
        gc.collect()
        with PeakRSS() as mem:
            start = time.perf_counter()
            result = train_lora(params, rows, verbose=False)
            wall = time.perf_counter() - start
    losses = loss_points(result.log_history)
    values = [v for _, v in losses]
    k = max(1, min(5, len(values) // 4))
    return {
        "examples": result.n_train,
        "tasks": len({r["task"] for r in rows}),
        "epochs": args.job_epochs,
        "effective_batch": args.batch * args.job_grad_accum,
        "steps": result.global_step,
        "train_seconds": result.train_seconds,
        "wall_seconds": wall,
        "first_loss": losses[0][1] if losses else None,
        "last_loss": losses[-1][1] if losses else None,
        "first_mean": sum(values[:k]) / k,
        "last_mean": sum(values[-k:]) / k,
        "mean_window": k,
        "losses": losses,
        "peak_memory_mb": mem.peak,
    }


def _pairs(results: list[dict]) -> list[tuple[dict, dict]]:
    """(default, kit) result pairs that ran back-to-back (same thread count and repeat)."""
    keyed = {(r["threads"], r["repeat"], r["kind"]): r for r in results}
    keys = sorted({(r["threads"], r["repeat"]) for r in results})
    return [(keyed[(*k, "trl-default")], keyed[(*k, "kit")]) for k in keys]


def markdown(results: list[dict], args: argparse.Namespace, job: dict | None) -> str:
    """The report written to benchmarks/training.md."""
    n = args.steps * args.batch * args.grad_accum
    shown = [a for i, a in enumerate(sys.argv[1:]) if a != "--out" and (i == 0 or sys.argv[i] != "--out")]
    command = " ".join(["python benchmarks/bench_training.py", *shown])
    lines = [
        "# Training throughput: TRL default vs the kit (CPU)",
        "",
        f"Generated by `{command}` on the development machine ({os.cpu_count()} CPU cores shared with",
        f"other developers' jobs, torch {torch.__version__}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}).",
        "Rerun it to get your machine's numbers.",
        "",
        f"Model `{args.model}` with the paper's LoRA (r=8, alpha=16, dropout 0.05, q_proj/v_proj). Each run trains "
        f"{args.steps} optimizer steps x {args.batch * args.grad_accum} examples (micro-batch {args.batch}, "
        f"gradient accumulation {args.grad_accum}) on the same {n} real prompts from the bundle's seen tasks, "
        f"lr 1e-4 with 10 % warmup, seed {args.seed}. Only `trainer.train()` is timed.",
        "",
        "* **trl-default**: `SFTConfig()` with only the changes a CPU requires (`bf16=False`, `use_cpu=True`);",
        "  TRL then uses gradient checkpointing, a random sampler (micro-batches padded to their longest",
        "  example) and its fused LM head, which on a device without Triton projects *every* position",
        "  (prompt and padding included) through the 49k-word vocabulary and computes entropy and accuracy",
        "  over all of them.",
        "* **kit**: `build_sft_config()` + `KitSFTTrainer`: gradient checkpointing off on CPU, `batch_rebalance`",
        "  sampling (the same examples per optimizer step as the default's random order, sorted by length",
        "  before they are cut into micro-batches, so less padding), and the LM head applied only to the",
        "  supervised positions (completion + EOS: a few of ~100 tokens per example).",
        "",
        "| torch threads | repeat | config | seconds | examples/s | supervised tokens/s | peak RSS (MB) | loss per step |",
        "|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in sorted(results, key=lambda r: (r["threads"], r["repeat"])):
        losses = ", ".join(f"{v:.4f}" for v in r["losses"])
        lines.append(
            f"| {r['threads']} | {r['repeat']} | {r['kind']} | {r['seconds']:.1f} | {r['examples_per_s']:.3f} | "
            f"{r['sup_tokens_per_s']:.2f} | {r['peak_rss_mb']:.0f} | {losses} |"
        )
    lines += ["", "**Speed-up = default seconds / kit seconds, per back-to-back pair:**", ""]
    by_threads: dict[int, list[float]] = {}
    diffs = []
    for d, k in _pairs(results):
        by_threads.setdefault(d["threads"], []).append(d["seconds"] / k["seconds"])
        diffs += [abs(a - b) for a, b in zip(d["losses"], k["losses"], strict=False)]
    for threads, ratios in by_threads.items():
        lines.append(
            f"* {threads} thread(s): {', '.join(f'{x:.2f}x' for x in ratios)} "
            f"(median **{statistics.median(ratios):.2f}x**; target >= 1.5x)"
        )
    ablations = [r for r in results if r["kind"] not in CONFIGS]
    if ablations:
        ref = {(r["threads"], r["repeat"]): r for r in results if r["kind"] == "kit"}
        lines += ["", "**What each setting buys** (the kit with one setting switched back, same repeat):", ""]
        for r in ablations:
            kit = ref[(r["threads"], r["repeat"])]
            lines.append(
                f"* {r['kind']}: {r['seconds']:.1f} s, {r['seconds'] / kit['seconds']:.2f}x the kit's time"
            )
    if diffs:
        lines += [
            "",
            f"Same loss curve: per-step losses of the two configurations differ by at most {max(diffs):.4f}. "
            "Both see the same examples in each optimizer step; the residual comes from LoRA dropout masks "
            "falling differently when micro-batches are composed differently, and float summation order.",
        ]
    if job:
        curve = ", ".join(f"{s}: {v:.3f}" for s, v in job["losses"])
        lines += [
            "",
            "## A realistic CPU job",
            "",
            f"`train_lora` (the kit end to end, paper LoRA and lr, micro-batch {args.batch}) on {job['examples']} "
            f"real examples from {job['tasks']} seen tasks, {job['epochs']:g} epoch(s), effective batch "
            f"{job['effective_batch']}, {args.job_threads} torch thread(s): **{job['steps']} steps in "
            f"{job['train_seconds'] / 60:.1f} min** of training ({job['wall_seconds'] / 60:.1f} min wall with "
            f"model loading and writing the run); loss {job['first_loss']:.3f} -> {job['last_loss']:.3f} "
            f"(mean of the first/last {job['mean_window']} steps: {job['first_mean']:.3f} -> {job['last_mean']:.3f}); "
            f"peak RSS during the job {job['peak_memory_mb']:.0f} MB.",
            "",
            f"Loss by step: {curve}.",
        ]
    lines += [
        "",
        "## Caveats",
        "",
        "* Two shared cores: absolute times move with the other developers' load (their tests and",
        "  benchmarks ran at the same time). The configurations alternate, so each pair saw similar",
        "  load: compare the ratios, not the seconds.",
        "* Threads: with OpenMP's default spinning wait, 2 torch threads on an oversubscribed 2-core box",
        "  thrash (a waiting thread spins on the core its descheduled peer needs) and timings swing by 3-5x",
        "  from one minute to the next. This script sets `OMP_WAIT_POLICY=PASSIVE` before torch loads, which",
        "  removes most of that; set it in your shell for notebooks too. `TrainParams.torch_threads` (a",
        "  notebook parameter) sets the thread count; 1 thread is the safe choice on a busy shared CPU.",
        "* Peak RSS is the process's resident memory sampled every 50 ms during `train()`; it includes",
        "  the model (~0.55 GB fp32) and whatever the allocator kept from earlier runs in this process.",
        "* The compact LM head only applies on CPU; on CUDA, TRL's Triton kernel already skips unsupervised",
        "  positions and the kit keeps TRL's path (and gradient checkpointing, for memory).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per run")
    parser.add_argument("--batch", type=int, default=8, help="micro-batch size")
    parser.add_argument(
        "--grad-accum", type=int, default=2, help="gradient accumulation (the kit defaults to 8)"
    )
    parser.add_argument("--repeats", default="2,1", help="repeats per thread count, e.g. '2,1'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", default="2,1", help="torch thread counts to measure, e.g. '2,1'")
    parser.add_argument("--ablation", action="store_true", help="also time the kit minus each speed setting")
    parser.add_argument(
        "--job-examples", type=int, default=0, help="also run the realistic job on N examples"
    )
    parser.add_argument("--job-epochs", type=float, default=1.0)
    parser.add_argument("--job-grad-accum", type=int, default=2)
    parser.add_argument("--job-threads", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "training.md"))
    args = parser.parse_args(argv)

    rows = real_rows(args.steps * args.batch * args.grad_accum, args.seed)
    print(
        f"{len(rows)} real prompts from {len({r['task'] for r in rows})} tasks; model {args.model}",
        flush=True,
    )
    results = []
    thread_counts = [int(t) for t in args.threads.split(",")]
    repeats = [int(r) for r in str(args.repeats).split(",")]
    repeats += [repeats[-1]] * (len(thread_counts) - len(repeats))
    for threads, n_repeats in zip(thread_counts, repeats, strict=False):
        torch.set_num_threads(threads)
        for i in range(n_repeats):
            print(f"threads {threads}, repeat {i + 1}/{n_repeats}", flush=True)
            kinds = list(CONFIGS)
            if args.ablation and threads == thread_counts[0] and i == 0:
                kinds += [k for k in KIT_VARIANTS if k != "kit"]
            for kind in kinds:
                results.append({**run_once(kind, rows, args), "threads": threads, "repeat": i + 1})
    job = None
    if args.job_examples:
        torch.set_num_threads(args.job_threads)
        print(f"realistic job: {args.job_examples} examples", flush=True)
        job = realistic_job(args)
        print({k: v for k, v in job.items() if k != "losses"}, flush=True)
    report = markdown(results, args, job)
    Path(args.out).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
