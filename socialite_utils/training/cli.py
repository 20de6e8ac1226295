"""Notebook 02 on the command line: ``python -m socialite_utils.training --data-run … --run-name … [--set k=v …]``.

The same parameters (:class:`socialite_utils.training.TrainParams`, every field settable with
``--set name=value``; values are read as YAML literals: ``--set lora_r=16 --set max_train_examples=null``)
and the same function (:func:`socialite_utils.training.train_lora`) as the notebook. It runs under
``accelerate launch`` unchanged::

    accelerate launch $(python -m socialite_utils.training --print-config deepspeed) \\
        -m socialite_utils.training --data-run data-demo --run-name train-7b --set base_model=llama2-7b

The effective batch stays ``per_device_train_batch_size x gradient_accumulation_steps`` whatever the
number of processes (see :mod:`socialite_utils.training.distributed`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

import yaml

from .distributed import ACCELERATE_CONFIGS, accelerate_config_path, is_main_process, launch_args
from .lora import TrainParams, train_lora


def parse_overrides(pairs: list[str]) -> dict:
    """``["lora_r=16", "resume=true"]`` -> ``{"lora_r": 16, "resume": True}``; unknown fields raise ValueError."""
    types = {f.name: str(f.type) for f in fields(TrainParams)}
    names = set(types)
    out: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: expected name=value")
        if key not in names:
            raise ValueError(f"--set {key}: not a TrainParams field (fields: {', '.join(sorted(names))})")
        value = yaml.safe_load(raw) if raw.strip() else None
        if isinstance(value, str) and "float" in types[key]:  # YAML reads 3e-3 as a string
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"--set {key}={raw}: expected a number") from None
        expected = {"int": int, "float": (int, float), "bool": bool}.get(types[key].split(" |")[0])
        if expected and value is not None and not isinstance(value, expected):
            raise ValueError(f"--set {key}={raw}: expected {types[key]}, got {type(value).__name__}")
        out[key] = value
    return out


def build_params(argv: list[str] | None = None) -> tuple[TrainParams, bool]:
    """Parse the command line into validated TrainParams (and whether ``--smoke`` was given)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-name", required=True, help="output directory under runs/")
    ap.add_argument(
        "--data-run", required=True, help="notebook 01's output: a run name under runs/ or a path"
    )
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="any TrainParams field")
    ap.add_argument("--smoke", action="store_true", help="TrainParams.for_smoke(): tiny-random, 30 steps")
    ap.add_argument("--quiet", action="store_true", help="no label masks or summary lines")
    args = ap.parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
    except ValueError as e:
        ap.error(str(e))
    for name in ("run_name", "data_run"):
        if name in overrides:
            ap.error(f"--set {name}: use --{name.replace('_', '-')}")
    params = TrainParams(run_name=args.run_name, data_run=args.data_run, **overrides)
    if args.smoke:
        params = params.for_smoke()
    try:
        params.validate()
    except ValueError as e:
        ap.error(str(e))
    return params, args.quiet


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--print-config"]:  # `accelerate launch` arguments for a shipped config
        print(" ".join(launch_args(argv[1] if len(argv) > 1 else "deepspeed")))
        return 0
    if argv[:1] == ["--list-configs"]:
        for name in ACCELERATE_CONFIGS:
            print(f"{name}: {accelerate_config_path(name)}")
        return 0

    params, quiet = build_params(argv)
    result = train_lora(params, verbose=not quiet)
    if is_main_process():
        print(result.summary())
    return 0
