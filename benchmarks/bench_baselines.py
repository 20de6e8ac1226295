"""Time the baselines on the local bundle and print their macro-F1s (CPU by default).

    python benchmarks/bench_baselines.py --encoder minilm-l6 --max-train 200 --max-eval 100

Builds the data in memory (notebook 01's assembly, nothing written), fits the floors and TF-IDF, trains the
multi-task encoder preset, and prints wall and CPU seconds per stage plus the per-task table.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from socialite_utils import baselines as B
from socialite_utils.data.assembly import build_data
from socialite_utils.registry import load_registry


def _timed(label: str, fn, timings: dict):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    timings[label] = {
        "wall_s": round(time.perf_counter() - wall, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
    }
    print(f"{label}: {timings[label]}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", default="minilm-l6")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--max-train", type=int, default=200)
    ap.add_argument("--max-eval", type=int, default=100)
    ap.add_argument("--tasks", default=None, help="comma-separated task names (default: every local task)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--json", default=None, help="also write the timings and table to this JSON file")
    args = ap.parse_args()

    reg = load_registry("local")
    tasks = [reg[t] for t in args.tasks.split(",")] if args.tasks else list(reg.values())
    data = build_data(tasks, max_train_per_task=args.max_train, max_eval_per_task=args.max_eval)
    views = B.build_task_views({**data.splits, "fewshot_pool": data.pool}, data.card)
    timings: dict = {}
    outputs = _timed("floors", lambda: B.fit_predict_floors(views), timings)
    outputs |= _timed("tfidf_lr", lambda: B.fit_predict_tfidf(views), timings)
    preset = B.resolve_preset(args.encoder, epochs=args.epochs)
    trained = _timed(
        "encoder_train", lambda: B.train_multitask_encoder(views, preset, progress=False), timings
    )
    outputs |= _timed("encoder_predict", lambda: B.predict_multitask_encoder(trained, views), timings)
    results = _timed(
        "scoring",
        lambda: B.compute_baselines_metrics(views, outputs, bootstrap_samples=args.bootstrap),
        timings,
    )
    table = B.build_comparison(results)
    print(f"torch threads: {os.cpu_count()} cores; encoder {preset}")
    print(f"train rows: {sum(len(v.train) for v in views.values() if v.group == 'seen')} (seen tasks)")
    for level in ("task", "category", "group"):
        print(B.comparison_pivot(table, level).round(1).to_string(), "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"timings": timings, "preset": preset.__dict__, "table": table.to_dict("records")},
                f,
                default=str,
            )


if __name__ == "__main__":
    main()
