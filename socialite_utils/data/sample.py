"""The small data sample shipped inside the package, for machines without the local bundle (Colab).

A few rows per split of the bundle's tasks whose licence allows redistribution, copied verbatim with a
``MANIFEST.json`` that names each task's source and licence. The TweetEval tasks are left out: TweetEval is
"released without any restrictions but restrictions may apply to individual tasks ... or Twitter", which does
not clearly allow us to redistribute the texts. Rebuild with ``python -m socialite_utils.data.sample <bundle_dir>``.
"""

from __future__ import annotations

import functools
import json
import os
import random
import sys
from pathlib import Path

SAMPLE_DIR = Path(__file__).parents[1] / "sample_data"
# licences (as the bundle's MANIFEST.json words them) that allow redistributing a copy with attribution
REDISTRIBUTABLE = ("MIT License", "CC-BY-SA 4.0", "CC BY 4.0")
ROWS_PER_SPLIT = {"train": 16, "validation": 8, "test": 8}


def redistributable(licence: str) -> bool:
    """True when a MANIFEST licence text starts with one of the licences in ``REDISTRIBUTABLE``."""
    return licence.startswith(REDISTRIBUTABLE)


def sample_tasks() -> list[str]:
    """Names of the tasks in the shipped sample."""
    manifest = json.loads((SAMPLE_DIR / "MANIFEST.json").read_text())
    return [t["name"] for t in manifest["tasks"]]


def on_colab() -> bool:
    return "google.colab" in sys.modules


def build_sample(bundle_dir: str | os.PathLike, out_dir: str | os.PathLike = SAMPLE_DIR) -> list[str]:
    """Copy ``ROWS_PER_SPLIT`` seeded-random rows (file order kept) of every redistributable task."""
    bundle, out = Path(bundle_dir), Path(out_dir)
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    kept = [t for t in manifest["tasks"] if redistributable(t["license"])]
    for task in kept:
        for split, n in ROWS_PER_SPLIT.items():
            lines = (bundle / task["name"] / f"{split}.jsonl").read_text().splitlines()
            picked = sorted(random.Random(f"{task['name']}|{split}").sample(range(len(lines)), n))
            dest = out / task["name"] / f"{split}.jsonl"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text("".join(lines[i] + "\n" for i in picked))
    fields = ("name", "category", "task_type", "license", "citation")
    sample_manifest = {
        "bundle": "socialite_utils sample of " + manifest["bundle"],
        "rows_per_split": ROWS_PER_SPLIT,
        "left_out": sorted(t["name"] for t in manifest["tasks"] if t not in kept),
        "left_out_why": "licence does not clearly allow redistribution (TweetEval / Twitter terms)",
        "tasks": [{k: t[k] for k in fields} | {"source": t["source"]["repo"]} for t in kept],
    }
    (out / "MANIFEST.json").write_text(json.dumps(sample_manifest, indent=1) + "\n")
    return [t["name"] for t in kept]


def sample_notice() -> str:
    """What the data step prints when it falls back to the sample."""
    return (
        f"No local data bundle here: using the small sample shipped with the package ({SAMPLE_DIR}), "
        f"{ROWS_PER_SPLIT['train']} train / {ROWS_PER_SPLIT['test']} test rows of each of these tasks: "
        f"{sample_tasks()} (licences in its MANIFEST.json; the TweetEval tasks are not shipped). "
        "Set tasks to this list in notebook 01, or use the paper's data from the hub "
        "(source='socialite_instructions', the colab-t4 profile)."
    )


@functools.cache
def print_notice_once() -> None:
    print(sample_notice())


if __name__ == "__main__":
    print(build_sample(sys.argv[1]))
