"""The lever experiment: what makes the cpu-demo's tuned SmolLM2-135M beat the simple floors?

Each configuration is a ``cpu-demo`` pipeline run with a few parameters changed (data per task, label-balanced
sampling, epochs, learning rate, LoRA rank/targets). It runs the pipeline's steps into ``runs/`` and reads what
they wrote; a configuration whose run already finished is read, not rerun, so the script can be interrupted and
restarted.

Choose on validation, report on test. By default (``--split validation``) each configuration is scored on the data
run's VALIDATION rows of the seen tasks (related tasks have none), into ``runs/levers-val-<config>/``, and the table
names the configuration with the highest seen-task validation macro-F1, with its paired difference to the
runner-up. The floors are left out there: TF-IDF + LR chooses its C on those very rows. The test rows are scored
once, for the frozen recipe, by the ``cpu-confirm`` profile. ``--split test`` reproduces the original table
(``runs/levers-<config>/``, 60 test rows per task, the floors, and contextual calibration (Zhao et al. 2021)
beside the uncalibrated numbers): a record of how the recipe was first found, on test rows, which is why
``cpu-confirm`` leaves those rows out.

    python benchmarks/bench_levers.py --configs demo-lr5e-4,demo-lr1e-3   # the demo's learning rate, on validation
    python benchmarks/bench_levers.py --split test --configs 160-bal      # a row of the original (test) table
    python benchmarks/bench_levers.py --configs demo-lr1e-3 --table-only  # print the table of finished runs

The printed tables are in ``benchmarks/levers.md``. Runs take 10-20 minutes each on 2 cores.
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

# Every configuration starts from the cpu-demo profile with these values: the first demo profile (48 rows per task,
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
    # the first demo profile's training settings, which the cpu-demo profile has changed since
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
# Configurations that start from the cpu-demo profile as it is today (not from BASELINE): its recipe with one
# parameter changed. The demo's learning rate is chosen among these on validation rows.
DEMO_CONFIGS: dict[str, tuple[str, dict[str, object]]] = {
    "demo-lr5e-4": ("the cpu-demo recipe at lr 5e-4", {"train.learning_rate": 0.0005}),
    "demo-lr1e-3": ("the cpu-demo recipe at lr 1e-3 (the profile's value)", {"train.learning_rate": 0.001}),
    "demo-lr2e-3": ("the cpu-demo recipe at lr 2e-3", {"train.learning_rate": 0.002}),
}
CONFIGS.update(DEMO_CONFIGS)
SPLITS = ("validation", "test")


def _steps(split: str) -> list[str]:
    """The steps a table row needs: the floors only on test rows (TF-IDF + LR chooses C on validation rows);
    notebook 04's error analysis adds nothing to either table."""
    return ["data", "train", "eval", "baselines"] if split == "test" else ["data", "train", "eval"]


def _overrides(name: str, split: str) -> dict[str, object]:
    """The --set overrides of one configuration scored on ``split``."""
    start = {} if name in DEMO_CONFIGS else BASELINE
    return {**start, **CONFIGS[name][1], "eval.split": split}


def run_dir_of(name: str, runs_dir: Path, split: str) -> Path:
    return runs_dir / (f"levers-{name}" if split == "test" else f"levers-val-{name}")


def _set_args(overrides: dict[str, object]) -> list[str]:
    out = []
    for key, value in overrides.items():
        out += ["--set", f"{key}={value if isinstance(value, str) else repr(value)}"]  # Python literals
    return out


def _missing_steps(run_dir: Path, split: str) -> list[str]:
    """The table's steps that have not finished yet, in order (all of them for a new run)."""
    steps = _steps(split)
    steps_file = run_dir / "pipeline_steps.json"
    done = (
        {s["step"] for s in json.loads(steps_file.read_text()) if s["ok"]} if steps_file.exists() else set()
    )
    missing = [s for s in steps if s not in done]
    # a step reruns everything after it (a new data run needs a new adapter, and so on)
    return steps[steps.index(missing[0]) :] if missing else []


def _finished(run_dir: Path, split: str) -> bool:
    return not _missing_steps(run_dir, split)


def run_config(name: str, runs_dir: Path, split: str, profile: str = "cpu-demo") -> None:
    """Run one configuration through the pipeline (from ``profile``, cpu-demo unless a test asks for smoke),
    unless it already finished."""
    run_dir = run_dir_of(name, runs_dir, split)
    if _finished(run_dir, split):
        print(f"[{name}] finished earlier: {run_dir}", flush=True)
        return
    cmd = [
        sys.executable,
        "-m",
        "socialite_utils.pipeline",
        "--profile",
        profile,
        "--run-name",
        run_dir.name,
    ]
    # --only: the steps this table needs (an interrupted run reruns the unfinished ones, each replaced atomically)
    only = ",".join(_missing_steps(run_dir, split))
    cmd += ["--runs-dir", str(runs_dir), "--only", only, *_set_args(_overrides(name, split))]
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


def _recipe_columns(run_dir: Path, name: str, split: str) -> dict[str, str]:
    """The columns every table shares: what the configuration trained, and how long its steps took."""
    from socialite_utils.runs import read_json

    data = read_json(run_dir / "data" / "params.json")
    train = read_json(run_dir / "train" / "params.json")
    summary = read_json(run_dir / "train" / "train_summary.json")
    seconds = {s["step"]: s["seconds"] for s in read_json(run_dir / "pipeline_steps.json")}
    targets = train["lora_target_modules"]
    steps = _steps(split)
    return {
        "config": name,
        "train/task": f"{data['max_train_per_task']}{' bal' if data.get('balance_train') else ''}",
        "epochs": f"{train['num_train_epochs']:g}",
        "lr": f"{train['learning_rate']:g}",
        "LoRA": f"r{train['lora_r']} {targets if isinstance(targets, str) else '+'.join(targets)}",
        "batch": str(train["per_device_train_batch_size"] * train["gradient_accumulation_steps"]),
        "steps": str(summary["global_step"]),
        "train s": f"{seconds.get('train', float('nan')):.0f}",
        f"{'+'.join(steps)} s": f"{sum(seconds.get(k, 0) for k in steps):.0f}",
    }


def lever_row(run_dir: Path, *, name: str, calibrated: bool) -> dict[str, str]:
    """One row of the test table from a finished run's files (calibrated: contextual calibration of the same
    predictions)."""
    from socialite_utils.evaluation import load_eval_run
    from socialite_utils.evaluation.contextual_calibration import build_calibrated_metrics
    from socialite_utils.reporting import build_floor_claim, collapsed_tasks
    from socialite_utils.runs import read_jsonl

    run = load_eval_run(run_dir / "eval")
    metrics, predictions = run.metrics, run.predictions
    floor_rows = read_jsonl(run_dir / "baselines" / "predictions.jsonl")
    if calibrated:
        metrics, predictions = build_calibrated_metrics(metrics, predictions, _priors(run_dir, metrics))
    claim = build_floor_claim(metrics, predictions, floor_rows, bootstrap_samples=1000, seed=0)
    best = claim["details"]["best_floor"]
    vs_floor = claim["details"]["per_floor"][best]
    seen, related = metrics["groups"]["seen"], metrics["groups"]["related"]
    return {
        **_recipe_columns(run_dir, name, "test"),
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


def validation_row(run_dir: Path, *, name: str) -> dict[str, str]:
    """One row of the validation table: the seen tasks' validation rows, base and tuned, and their paired
    difference (the eval run's own bootstrap over those rows)."""
    from socialite_utils.evaluation import load_eval_run
    from socialite_utils.reporting import collapsed_tasks

    metrics = load_eval_run(run_dir / "eval").metrics
    split = metrics["settings"].get("split", "test")
    if split != "validation":
        raise ValueError(f"{run_dir / 'eval'} scored its {split!r} rows, not the validation rows")
    seen, delta = metrics["groups"]["seen"], metrics["group_comparisons"]["seen"]
    return {
        **_recipe_columns(run_dir, name, "validation"),
        "val rows": str(delta["n_examples"]),
        "seen base (val)": _fmt_ci(
            seen["base"]["macro_over_tasks"], seen["base"]["macro_over_tasks_example_ci"]
        ),
        "seen tuned (val)": _fmt_ci(
            seen["tuned"]["macro_over_tasks"], seen["tuned"]["macro_over_tasks_example_ci"]
        ),
        "tuned - base [paired CI]": _fmt_ci(delta["delta"], delta["ci"]),
        "collapsed seen tasks": ", ".join(collapsed_tasks(metrics, "tuned", "seen")) or "none",
    }


def _tuned_pairs(run_dir: Path) -> tuple[dict[str, tuple[list, list]], dict[str, object]]:
    """task -> (gold, tuned predictions) in id order, and task -> its MacroF1 metric, from an eval run."""
    from socialite_utils import claims as C
    from socialite_utils.evaluation import load_eval_run

    run = load_eval_run(run_dir / "eval")
    metrics, predictions = run.metrics, run.predictions
    rows = sorted(
        (r for r in predictions if r["model"] == "tuned" and r["group"] == "seen"), key=lambda r: r["id"]
    )
    pairs: dict[str, tuple[list, list]] = {}
    for r in rows:
        gold, pred = pairs.setdefault(r["task"], ([], []))
        gold.append(r["gold"])
        pred.append(r["parsed"])
    return pairs, {t: C.MacroF1(metrics["tasks"][t]["labels"]) for t in pairs}


def choose_on_validation(names: list[str], runs_dir: Path) -> str:
    """The configuration with the highest seen-task validation macro-F1 of the tuned model, and its paired
    difference to each other finished configuration (bootstrap over the same validation rows, stratified by task;
    the claims module's verdict rule)."""
    from socialite_utils import claims as C

    done = [n for n in names if _finished(run_dir_of(n, runs_dir, "validation"), "validation")]
    if len(done) < 2:
        return "(fewer than two finished configurations: nothing to choose between)"
    runs = {n: _tuned_pairs(run_dir_of(n, runs_dir, "validation")) for n in done}
    means = {n: sum(m[t](*pairs[t]) for t in pairs) / len(pairs) for n, (pairs, m) in runs.items()}
    best = max(done, key=lambda n: means[n])
    lines = [
        f"Chosen on validation: `{best}` (seen-task validation macro-F1 of the tuned model {means[best]:.1f})."
    ]
    for other in (n for n in done if n != best):
        (a, metric), (b, _) = runs[best], runs[other]
        if [a[t][0] for t in a] != [b[t][0] for t in a]:
            raise ValueError(f"{best} and {other} were scored on different validation rows")
        res = C.paired_bootstrap_mean_over_tasks(a, b, metric, B=1000, seed=0)
        verdict = C.verdict_from_interval(*res.ci)
        lines.append(
            f"- `{best}` - `{other}`: {res.effect:+.1f} [95% CI {res.ci[0]:+.1f}, {res.ci[1]:+.1f}], "
            f"n = {res.n_examples:,} validation rows, {res.n_tasks} tasks: {verdict}"
        )
    return "\n".join(lines)


def format_lever_table(rows: list[dict[str, str]], why: dict[str, str]) -> str:
    """A markdown table, one row per configuration, and what each configuration changes."""
    if not rows:
        return "(no finished runs)"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    lines += [""] + [f"- `{r['config']}`: {why[r['config']]}" for r in rows]
    return "\n".join(lines)


def table_row(name: str, runs_dir: Path, *, split: str, calibrated: bool = False) -> dict[str, str] | None:
    """One table row read from a finished run (None when it has not finished)."""
    run_dir = run_dir_of(name, runs_dir, split)
    if not _finished(run_dir, split):
        return None
    if split == "validation":
        return validation_row(run_dir, name=name)
    return lever_row(run_dir, name=name, calibrated=calibrated)


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
    ap.add_argument(
        "--split",
        choices=SPLITS,
        default="validation",
        help="rows to score: validation (chooses; the default) or test (the original table)",
    )
    ap.add_argument("--table-only", action="store_true", help="print the table of finished runs; run nothing")
    ap.add_argument("--runs-dir", default=str(REPO / "runs"))
    ap.add_argument("--lengths", action="store_true", help="also print token lengths and padding of each run")
    ap.add_argument("--profile", default="cpu-demo", help="the profile every configuration starts from")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.configs.split(",")] if args.configs else list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        ap.error(f"unknown configuration(s) {unknown}; known: {', '.join(CONFIGS)}")
    runs_dir = Path(args.runs_dir)
    if not args.table_only:
        for name in names:
            run_config(name, runs_dir, args.split, args.profile)
    why = {n: CONFIGS[n][0] for n in names}
    if args.split == "validation":
        rows = [r for n in names if (r := table_row(n, runs_dir, split="validation")) is not None]
        print("\n### Seen tasks, validation rows (choosing)\n")
        print(format_lever_table(rows, why))
        print()
        print(choose_on_validation(names, runs_dir))
    else:
        for calibrated in (False, True):
            rows = [
                r
                for n in names
                if (r := table_row(n, runs_dir, split="test", calibrated=calibrated)) is not None
            ]
            title = (
                "contextual calibration (beside, not instead)"
                if calibrated
                else "uncalibrated (the kit's default)"
            )
            print(f"\n### Test rows, {title}\n")
            print(format_lever_table(rows, why))
    if args.lengths:
        print("\n### Token lengths and padding\n")
        for name in names:
            run_dir = run_dir_of(name, runs_dir, args.split)
            if _finished(run_dir, args.split):
                print(f"- {length_stats(run_dir)}")


if __name__ == "__main__":
    main()
