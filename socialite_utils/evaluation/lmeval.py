"""Export the kit's evaluation tasks for EleutherAI's lm-evaluation-harness (``lm_eval``).

:func:`export_lmeval` takes the same :class:`~socialite_utils.evaluation.EvalParams` as notebook 03
(data run, split, tasks, subset, few-shot k, prompt variant), builds the same evaluation items and
writes ``runs/<run_name>/``:

* ``data/<task>.jsonl``: one document per example: ``prompt`` (the kit's exact prompt text), ``choices``
  (the label words offered to the model), ``gold`` (index of the gold label's word), ``id``, ``label``;
* ``tasks/socialite_<task>.yaml``: ``dataset_path: json`` with ``data_files``, ``output_type:
  multiple_choice``, ``doc_to_text: "{{prompt}}"``, the label words as ``doc_to_choice``, ``doc_to_target:
  "{{gold}}"`` and ``target_delimiter: " "`` (the kit scores ``prompt + " " + label``, as TRL trains);
* ``tasks/socialite_group_<category>.yaml``: a group per category, plus ``socialite_all``.

Run any checkpoint with the harness (``--include_path`` points at the task folder)::

    lm_eval --model hf --model_args pretrained=<model>,peft=runs/train-demo/adapter \\
        --include_path runs/lmeval-demo/tasks --tasks socialite_all

The harness's per-choice log-likelihood is the kit's ``score`` mode with ``normalize="sum"`` and
``score_eos=False`` (``acc``); ``acc_norm`` is length-normalised by characters, which the kit does not
do. Equality within 1e-4 on the tiny model is tested (tests/test_lmeval_export.py). The YAML names the
data files by absolute path (the harness resolves a relative one from the current directory), so
export again after moving the runs directory. Chat-format prompts are not exported: the harness
applies a chat template itself (``--apply_chat_template``), which is a different prompt than the kit's.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from ..runs import RunWriter, provenance, safe_write_path, write_json, write_jsonl
from .run import EvalParams, EvalPlan, build_eval_plan

TASK_PREFIX = "socialite_"


def build_lmeval_docs(plan: EvalPlan) -> dict[str, list[dict]]:
    """task -> the harness documents of the plan's items; chat prompts raise ValueError naming the task."""
    docs: dict[str, list[dict]] = defaultdict(list)
    for it in plan.items:
        task = it.row["task"]
        if not isinstance(it.prompt, str):
            raise ValueError(
                f"task {task}: chat-format prompts (prompt_format {it.row.get('prompt_format')!r}) cannot be "
                "exported as plain text; export a data run built with the paper's text format"
            )
        if docs[task] and docs[task][0]["choices"] != list(it.answers):
            raise ValueError(
                f"task {task}: examples offer different label words; the harness needs one choice list"
            )
        gold_word = next(w for w, label in it.to_label.items() if label == it.row["label"])
        docs[task].append(
            {
                "id": it.row["id"],
                "prompt": it.prompt,
                "choices": list(it.answers),
                "gold": list(it.answers).index(gold_word),
                "label": it.row["label"],
            }
        )
    return dict(docs)


def build_task_yaml(task: str, choices: list[str], data_file: Path) -> dict[str, Any]:
    """One harness task: the kit's prompt, the label words as choices, accuracy."""
    return {
        "task": TASK_PREFIX + task,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{prompt}}",
        "doc_to_choice": list(choices),
        "doc_to_target": "{{gold}}",
        "target_delimiter": " ",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    }


def build_group_yaml(group: str, tasks: list[str]) -> dict[str, Any]:
    """A harness group over ``tasks`` (macro-average of their accuracies)."""
    return {
        "group": TASK_PREFIX + group,
        "task": [TASK_PREFIX + t for t in sorted(tasks)],
        "aggregate_metric_list": [{"metric": "acc", "aggregation": "mean", "weight_by_size": False}],
        "metadata": {"version": 1.0},
    }


def export_lmeval(params: EvalParams) -> Path:
    """Write the harness export of ``params``'s evaluation items to ``runs/<params.run_name>/`` (atomically)."""
    plan = build_eval_plan(params)
    docs = build_lmeval_docs(plan)
    categories: dict[str, list[str]] = defaultdict(list)
    for task in docs:
        categories[plan.tasks[task]["category"]].append(task)
    if "all" in categories:
        raise ValueError("a task category is named 'all', which the export uses for the group of every task")
    # Task and category names become file names: each passes the write guard before anything is written.
    for task in docs:
        safe_write_path(plan.run_dir, "data", f"{task}.jsonl", param=f"task name {task!r}")
        safe_write_path(plan.run_dir, "tasks", f"{TASK_PREFIX}{task}.yaml", param=f"task name {task!r}")
    for category in categories:
        safe_write_path(plan.run_dir, "tasks", f"{TASK_PREFIX}group_{category}.yaml", param="task category")
    with RunWriter(plan.run_dir, overwrite=params.overwrite) as tmp:
        for task, rows in docs.items():
            write_jsonl(safe_write_path(tmp, "data", f"{task}.jsonl", param="task name"), rows)
            config = build_task_yaml(task, rows[0]["choices"], plan.run_dir / "data" / f"{task}.jsonl")
            _write_yaml(safe_write_path(tmp, "tasks", f"{TASK_PREFIX}{task}.yaml", param="task name"), config)
        for category, tasks in categories.items():
            group = f"group_{category}"  # prefixed: a category may share a task's name
            path = safe_write_path(tmp, "tasks", f"{TASK_PREFIX}{group}.yaml", param="task category")
            _write_yaml(path, build_group_yaml(group, tasks))
        _write_yaml(tmp / "tasks" / f"{TASK_PREFIX}all.yaml", build_group_yaml("all", list(docs)))
        write_json(tmp / "params.json", params.to_dict())
        write_json(tmp / "provenance.json", provenance({"stage": "lmeval-export", "notes": plan.notes}))
    return plan.run_dir


def _write_yaml(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


__all__ = ["build_group_yaml", "build_lmeval_docs", "build_task_yaml", "export_lmeval"]
