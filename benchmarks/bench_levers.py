"""The lever experiment: what makes the cpu-demo's tuned SmolLM2-135M beat the simple floors?

Each configuration is the ``cpu-demo`` profile with a few parameters changed (data per task, label-balanced
sampling, epochs, learning rate, LoRA rank/targets). It runs the pipeline's data, train, eval and baselines steps
into ``runs/levers-<name>/`` and reads what they wrote; a configuration whose run already finished is read, not
rerun, so the script can be interrupted and restarted. Then it prints one row per configuration: training size,
optimizer steps, wall times, seen / related mean macro-F1 of the base and tuned models with 95% CIs, the tuned
model against the best floor (paired 95% CI over test examples) and the collapsed seen tasks (one answer for
more than 90% of a task's examples). The same table with contextual calibration (Zhao et al. 2021) follows;
calibration is computed from the saved predictions plus one content-free prompt per task and model
(``socialite_utils.evaluation.contextual_calibration``), beside the uncalibrated numbers, never instead of them.

    python benchmarks/bench_levers.py                       # every configuration below, in order
    python benchmarks/bench_levers.py --configs 160-bal     # only some (comma-separated names)
    python benchmarks/bench_levers.py --table-only          # print the table of the runs that finished

The printed table of the committed run is in ``benchmarks/levers.md``. Runs take 10-20 minutes each on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Every configuration starts from the cpu-demo profile with these values: the pre-issue-11 profile (48 rows per task,
# 2 epochs, label shares as in the data, LoRA r=8 on q/v with dropout 0.05, steps of 2 x 8) and the same 60 test rows
# per task, so every row is scored on the same test examples whatever the profile says today.
BASELINE: dict[str, object] = {
    "data.max_train_per_task": 48,
    "data.balance_train": False,
    "data.max_eval_per_task": 60,
    "data.prompt_format": "paper",
    "train.num_train_epochs": 2,
    "train.learning_rate": 0.0005,
    "train.lora_r": 8,
    "train.lora_alpha": 16,
    "train.lora_target_modules": "q_proj,v_proj",
    # the pre-issue-11 profile's training settings that the cpu-demo profile has changed since
    "train.lora_dropout": 0.05,
    "train.group_by_length": False,
    "train.per_device_train_batch_size": 8,
    "train.gradient_accumulation_steps": 2,
}
# name -> (why, --set overrides on top of BASELINE). Order: the first demo recipe, then one lever at a time.
CONFIGS: dict[str, tuple[str, dict[str, object]]] = {
    "48x2": (
        "the first cpu-demo recipe: 48 rows/task, 2 epochs",
        {},
    ),
    "160-bal": (
        "more rows, one pass, label-balanced",
        {"data.max_train_per_task": 160, "data.balance_train": True, "train.num_train_epochs": 1},
    ),
    "160": (
        "more rows, one pass, label shares as in the data",
        {"data.max_train_per_task": 160, "train.num_train_epochs": 1},
    ),
    "160-bal-all16": (
        "as 160-bal, LoRA r=16 on every linear layer",
        {
            "data.max_train_per_task": 160,
            "data.balance_train": True,
            "train.num_train_epochs": 1,
            "train.lora_r": 16,
            "train.lora_alpha": 32,
            "train.lora_target_modules": "all-linear",
        },
    ),
    "160-bal-lr2e-3": (
        "as 160-bal, 4x the learning rate (2e-3)",
        {
            "data.max_train_per_task": 160,
            "data.balance_train": True,
            "train.num_train_epochs": 1,
            "train.learning_rate": 0.002,
        },
    ),
    "160-bal-chat": (
        "as 160-bal, prompts in the instruct model's chat template",
        {
            "data.max_train_per_task": 160,
            "data.balance_train": True,
            "data.prompt_format": "chat",
            "train.num_train_epochs": 1,
        },
    ),
    "160-bal-b8": (
        "as 160-bal, effective batch 8 instead of 16: twice the optimizer steps for the same compute",
        {
            "data.max_train_per_task": 160,
            "data.balance_train": True,
            "train.num_train_epochs": 1,
            "train.gradient_accumulation_steps": 1,
        },
    ),
    "320-bal-b8": (
        "twice the rows again, one pass, label-balanced, effective batch 8 (400 steps)",
        {
            "data.max_train_per_task": 320,
            "data.balance_train": True,
            "train.num_train_epochs": 1,
            "train.gradient_accumulation_steps": 1,
        },
    ),
    "160-bal-all16-2ep-b8": (
        "every capacity lever at once: 160-bal, LoRA r=16 on every linear layer, 2 epochs, effective batch 8",
        {
            "data.max_train_per_task": 160,
            "data.balance_train": True,
            "train.num_train_epochs": 2,
            "train.gradient_accumulation_steps": 1,
            "train.lora_r": 16,
            "train.lora_alpha": 32,
            "train.lora_target_modules": "all-linear",
        },
    ),
    "320-bal": (
        "twice the rows again, one pass, label-balanced",
        {"data.max_train_per_task": 320, "data.balance_train": True, "train.num_train_epochs": 1},
    ),
}
CONFIGS["160-bal-all16-2ep-b8-d0"] = (
    "as 160-bal-all16-2ep-b8 without LoRA dropout (a third less time per step: bench_lora_step.py)",
    {**CONFIGS["160-bal-all16-2ep-b8"][1], "train.lora_dropout": 0.0},
)
CONFIGS["160-bal-all16-b4-d0"] = (
    "the winner's 400 steps on half the compute: one pass in steps of 4, no LoRA dropout",
    {
        **CONFIGS["160-bal-all16-2ep-b8-d0"][1],
        "train.num_train_epochs": 1,
        "train.per_device_train_batch_size": 4,
    },
)
STEPS = "data,train,eval,baselines"  # notebook 04's error analysis adds nothing to this table


def _set_args(overrides: dict[str, object]) -> list[str]:
    out = []
    for key, value in overrides.items():
        out += ["--set", f"{key}={value if isinstance(value, str) else repr(value)}"]  # Python literals
    return out


def _missing_steps(run_dir: Path) -> list[str]:
    """The table's steps that have not finished yet, in order (all of them for a new run)."""
    steps_file = run_dir / "pipeline_steps.json"
    done = (
        {s["step"] for s in json.loads(steps_file.read_text()) if s["ok"]} if steps_file.exists() else set()
    )
    missing = [s for s in STEPS.split(",") if s not in done]
    # a step reruns everything after it (a new data run needs a new adapter, and so on)
    return STEPS.split(",")[STEPS.split(",").index(missing[0]) :] if missing else []


def _finished(run_dir: Path) -> bool:
    return not _missing_steps(run_dir)


def run_config(name: str, runs_dir: Path) -> None:
    """Run one configuration through the pipeline, unless it already finished."""
    run_dir = runs_dir / f"levers-{name}"
    if _finished(run_dir):
        print(f"[{name}] finished earlier: {run_dir}", flush=True)
        return
    cmd = [
        sys.executable,
        "-m",
        "socialite_utils.pipeline",
        "--profile",
        "cpu-demo",
        "--run-name",
        run_dir.name,
    ]
    # --only: the steps this table needs (an interrupted run reruns the unfinished ones, each replaced atomically)
    only = ",".join(_missing_steps(run_dir))
    cmd += ["--runs-dir", str(runs_dir), "--only", only, *_set_args({**BASELINE, **CONFIGS[name][1]})]
    print(f"[{name}] {' '.join(cmd[1:])}", flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    print(f"[{name}] done in {time.time() - t0:.0f} s", flush=True)


def _fmt_ci(value: float, ci: list[float] | None) -> str:
    if ci is None or ci[0] is None:
        return f"{value:.1f}"
    return f"{value:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]"


def _priors(run_dir: Path, metrics: dict) -> dict:
    """Content-free label priors of the run's base and tuned models (cached in the run directory)."""
    from socialite_utils.evaluation import contextual_calibration as calibration
    from socialite_utils.runs import read_json, read_jsonl, write_json_atomic
    from socialite_utils.training import load_adapter, load_run_tokenizer

    cache = run_dir / "calibration_priors.json"
    if cache.exists():
        return read_json(cache)
    rows_by_task: dict[str, list[dict]] = {}
    for row in read_jsonl(run_dir / "data" / "data" / "test.jsonl"):
        rows_by_task.setdefault(row["task"], []).append(row)
    settings = metrics["settings"]
    model = load_adapter(run_dir / "train", settings["base_model"]).eval()
    tokenizer = load_run_tokenizer(run_dir / "train")
    priors = calibration.score_model_priors(
        model,
        tokenizer,
        rows_by_task,
        ["base", "tuned"],
        normalize=settings["normalize"],
        score_eos=settings["score_eos"],
    )
    write_json_atomic(cache, priors)
    return priors


def lever_row(run_dir: Path, *, name: str, calibrated: bool) -> dict[str, str]:
    """One table row from a finished run's files (calibrated: contextual calibration of the same predictions)."""
    from socialite_utils.evaluation import load_eval_run
    from socialite_utils.evaluation.contextual_calibration import build_calibrated_metrics
    from socialite_utils.reporting import build_floor_claim, collapsed_tasks
    from socialite_utils.runs import read_json, read_jsonl

    data = read_json(run_dir / "data" / "params.json")
    train = read_json(run_dir / "train" / "params.json")
    summary = read_json(run_dir / "train" / "train_summary.json")
    seconds = {s["step"]: s["seconds"] for s in read_json(run_dir / "pipeline_steps.json")}
    metrics, predictions = load_eval_run(run_dir / "eval")
    floor_rows = read_jsonl(run_dir / "baselines" / "predictions.jsonl")
    if calibrated:
        metrics, predictions = build_calibrated_metrics(metrics, predictions, _priors(run_dir, metrics))
    claim = build_floor_claim(metrics, predictions, floor_rows, bootstrap_samples=1000, seed=0)
    best = claim["details"]["best_floor"]
    vs_floor = claim["details"]["per_floor"][best]
    seen, related = metrics["groups"]["seen"], metrics["groups"]["related"]
    targets = train["lora_target_modules"]
    return {
        "config": name,
        "train/task": f"{data['max_train_per_task']}{' bal' if data.get('balance_train') else ''}",
        "epochs": f"{train['num_train_epochs']:g}",
        "lr": f"{train['learning_rate']:g}",
        "LoRA": f"r{train['lora_r']} {targets if isinstance(targets, str) else '+'.join(targets)}",
        "batch": str(train["per_device_train_batch_size"] * train["gradient_accumulation_steps"]),
        "steps": str(summary["global_step"]),
        "train s": f"{seconds.get('train', float('nan')):.0f}",
        "data+train+eval+baselines s": f"{sum(seconds.get(k, 0) for k in STEPS.split(',')):.0f}",
        "seen base": _fmt_ci(seen["base"]["macro_over_tasks"], seen["base"]["macro_over_tasks_example_ci"]),
        "seen tuned": _fmt_ci(
            seen["tuned"]["macro_over_tasks"], seen["tuned"]["macro_over_tasks_example_ci"]
        ),
        "best floor": f"{best} {vs_floor['metric_b']:.1f}",
        "tuned - best floor [paired CI]": _fmt_ci(vs_floor["delta"], vs_floor["ci"]),
        "related base / tuned": (
            f"{related['base']['macro_over_tasks']:.1f} / {related['tuned']['macro_over_tasks']:.1f}"
        ),
        "collapsed seen tasks": ", ".join(collapsed_tasks(metrics, "tuned", "seen")) or "none",
    }


def format_lever_table(rows: list[dict[str, str]], why: dict[str, str]) -> str:
    """A markdown table, one row per configuration, and what each configuration changes."""
    if not rows:
        return "(no finished runs)"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    lines += [""] + [f"- `{r['config']}`: {why[r['config']]}" for r in rows]
    return "\n".join(lines)


def table_row(name: str, runs_dir: Path, *, calibrated: bool) -> dict[str, str] | None:
    """One table row read from a finished run (None when it has not finished)."""
    run_dir = runs_dir / f"levers-{name}"
    return lever_row(run_dir, name=name, calibrated=calibrated) if _finished(run_dir) else None


def length_stats(run_dir: Path, step_batch: int = 16) -> str:
    """Token lengths of a run's training examples and the share of padding in micro-batches of 8 and 4: unsorted,
    sorted within each optimizer step of ``step_batch`` (the kit's default ``sort_by_length``) and grouped by length
    (the ``group_by_length`` option's sampler)."""
    import numpy as np

    from socialite_utils.runs import read_jsonl
    from socialite_utils.training import load_run_tokenizer, tokenize_like_trl
    from socialite_utils.training.trainer import LengthBucketSampler

    tok = load_run_tokenizer(run_dir / "train")
    rows = read_jsonl(run_dir / "data" / "data" / "train.jsonl")
    lens = np.array([len(tokenize_like_trl(tok, r["prompt"], r["completion"])[0]) for r in rows])
    order = np.random.default_rng(0).permutation(len(lens))

    def share(micro_batches: list[np.ndarray]) -> str:
        padding = sum(int((mb.max() - mb).sum()) for mb in micro_batches)
        return f"{padding / (padding + lens.sum()):.1%}"

    parts = []
    for micro in (8, 4):
        steps = [lens[order[i : i + step_batch]] for i in range(0, len(order), step_batch)]
        unsorted = [st[j : j + micro] for st in steps for j in range(0, len(st), micro)]
        ranked = [np.sort(st)[j : j + micro] for st in steps for j in range(0, len(st), micro)]
        grouped_order = np.array(list(LengthBucketSampler(lens.tolist(), batch_size=micro, seed=0)))
        grouped = [lens[grouped_order[i : i + micro]] for i in range(0, len(grouped_order), micro)]
        parts.append(
            f"micro-batches of {micro}: {share(unsorted)} unsorted, {share(ranked)} sorted within each step of "
            f"{step_batch}, {share(grouped)} grouped by length"
        )
    return (
        f"{run_dir.name}: {len(lens)} training examples, tokens p50 {np.percentile(lens, 50):.0f}, "
        f"p99 {np.percentile(lens, 99):.0f}, max {lens.max()}; padding share of " + "; ".join(parts)
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", help=f"comma-separated names (default: all): {', '.join(CONFIGS)}")
    ap.add_argument("--table-only", action="store_true", help="print the table of finished runs; run nothing")
    ap.add_argument("--runs-dir", default=str(REPO / "runs"))
    ap.add_argument("--lengths", action="store_true", help="also print token lengths and padding of each run")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.configs.split(",")] if args.configs else list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        ap.error(f"unknown configuration(s) {unknown}; known: {', '.join(CONFIGS)}")
    runs_dir = Path(args.runs_dir)
    if not args.table_only:
        for name in names:
            run_config(name, runs_dir)
    for calibrated in (False, True):
        rows = [r for n in names if (r := table_row(n, runs_dir, calibrated=calibrated)) is not None]
        title = (
            "contextual calibration (beside, not instead)"
            if calibrated
            else "uncalibrated (the kit's default)"
        )
        print(f"\n### {title}\n")
        print(format_lever_table(rows, {n: CONFIGS[n][0] for n in names}))
    if args.lengths:
        print("\n### Token lengths and padding\n")
        for name in names:
            if _finished(runs_dir / f"levers-{name}"):
                print(f"- {length_stats(runs_dir / f'levers-{name}')}")


if __name__ == "__main__":
    main()
