"""Publish a trained LoRA adapter on the Hugging Face Hub, with a model card written from its runs.

``push_adapter_to_hub(run, repo_id)`` checks everything first (a finished training run with a complete adapter,
an ``owner/name`` repo id, a base model the card can name, an evaluation run of this very training run), then
writes the folder to upload into a temporary directory (never into the run): the adapter and the tokenizer it
trained with, the run's ``params.json``, ``provenance.json`` and ``train_summary.json``, and ``README.md``, the
model card (:func:`build_model_card`). ``HfApi.create_repo`` + ``HfApi.upload_folder`` send it; ``dry_run=True``
stops after writing the folder and returns its path.

The uploaded adapter_config.json names the base model's Hub id in ``base_model_name_or_path`` (the run's copy
names a local folder or nothing), so ``PeftModel.from_pretrained`` and the Hub's model tree find it. A run on
``tiny-random`` (random weights built in-process) is published with those weights in ``base_model/`` and a
card that says so: it proves the pipeline, not a model.

Evaluating a published adapter: ``EvalParams(train_run="hub:owner/name", ...)``
(:mod:`socialite_utils.training.hub`).

Command line::

    python -m socialite_utils.publish --run train-demo --repo you/socialite-lora --eval-run eval-demo --dry-run
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import huggingface_hub
import yaml

from .data.sources import SOCIALITE_REPO, SOCKET_REPO
from .evaluation.run import EvalRun, load_eval_run
from .models import PRESETS
from .reporting import claim_lines, current_claims, fmt_ci, fmt_value
from .runs import read_json, resolve_run_dir, resolve_run_ref, write_json, write_text_atomic
from .training.checkpoints import adapter_problem, safetensors_problem
from .training.hub import HUB_PREFIX, check_repo_id
from .training.lora import IN_PROCESS_PRESETS, partial_dir_for

RUN_FILES = ("params.json", "provenance.json", "train_summary.json")
# Not uploaded from adapter/: PEFT's placeholder card (the kit writes its own) and the Trainer's pickled arguments.
SKIPPED_ADAPTER_FILES = ("README.md", "training_args.bin")
# Local paths in train_summary.json that mean nothing on another machine.
LOCAL_PATH_FIELDS = ("run_dir", "adapter_dir")
DATASETS_BY_SOURCE = {"socialite_instructions": SOCIALITE_REPO, "socket": SOCKET_REPO}
CARD_TAGS = ("socialite", "lora", "peft", "instruction-tuning", "social-science")

PAPERS = (
    "Dey, G. et al. (2024). Socialite-Llama: An Instruction-Tuned Model for Social Scientific Tasks. "
    "Proceedings of the 18th Conference of the European Chapter of the Association for Computational "
    "Linguistics (EACL).",
    "Shi, C. et al. (2023). Specialist or Generalist? Instruction Tuning for Specific NLP Tasks. Proceedings of "
    "the 2023 Conference on Empirical Methods in Natural Language Processing (EMNLP).",
    "Zhang, Y. et al. (2023). Multi-Task Instruction Tuning of LLaMa for Specific Scenarios: A Preliminary Study "
    "on Writing Assistance. arXiv:2305.13225.",
)


class PublishError(ValueError):
    """A run cannot be published as asked; the message says what is wrong and where."""


@dataclass
class PublishPlan:
    """What :func:`check_publish` verified: the runs, the repo and how the card names the base model."""

    run_dir: Path
    repo_id: str
    params: dict[str, Any]
    provenance: dict[str, Any]
    summary: dict[str, Any]
    base_model: str  # the run's own name for it (a preset or a hub id)
    base_hub_id: str | None  # the Hub id the card and adapter_config.json name; None for in-process weights
    base_license: str | None
    ship_base_model: bool  # tiny-random: its random weights go into base_model/
    data_params: dict[str, Any] | None  # the training run's data run's params.json, when it is still there
    eval_run: EvalRun | None


@dataclass
class PushResult:
    """What :func:`push_adapter_to_hub` uploaded."""

    repo_id: str
    url: str
    files: list[str]
    commit_url: str | None


# ---------------------------------------------------------------- checks (nothing written)


def _read(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise PublishError(f"{path} is missing: {what}")
    try:
        doc = read_json(path)
    except ValueError as e:
        raise PublishError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise PublishError(f"{path}: expected a JSON object")
    return doc


def _check_train_run_dir(run: str | Path) -> Path:
    run_dir = resolve_run_dir(run)
    if not run_dir.is_dir():
        partial = partial_dir_for(run_dir)
        if partial.is_dir():
            raise PublishError(
                f"training run {run_dir} is unfinished: only {partial} exists (resume it with resume=True, "
                "then publish the finished run)"
            )
        raise PublishError(f"training run {run_dir} does not exist (run notebook 02 first, or fix --run)")
    if problem := adapter_problem(run_dir / "adapter"):
        raise PublishError(f"training run {run_dir} has no complete LoRA adapter: {problem}")
    return run_dir


def _base_model_names(run_dir: Path, name: str) -> tuple[str | None, str | None, bool]:
    """(Hub id, licence, ship base_model/) for the run's base model; PublishError when the card cannot name it."""
    if name in IN_PROCESS_PRESETS:
        saved = run_dir / "base_model"
        problem = None if (saved / "config.json").is_file() else f"{saved / 'config.json'} is missing"
        problem = problem or safetensors_problem(saved / "model.safetensors")
        if problem:
            raise PublishError(
                f"{run_dir}: base_model {name!r} has random weights built in-process, and the run must keep them "
                f"to publish the adapter with them: {problem}"
            )
        return None, None, True
    if name in PRESETS:
        return PRESETS[name]["hub_id"], PRESETS[name]["license"], False
    known = next((p for p in PRESETS.values() if p["hub_id"] == name), None)
    if known is not None:
        return name, known["license"], False
    if (
        Path(name).expanduser().is_absolute()
        or name.startswith((".", "~"))
        or Path(name).expanduser().exists()
    ):
        raise PublishError(
            f"{run_dir / 'params.json'}: base_model {name!r} is a local folder; the card and adapter_config.json "
            "must name a model others can download. Train on its Hub id (org/name) to publish the adapter"
        )
    check_repo_id(name, param=f"{run_dir / 'params.json'}: base_model")
    return name, None, False


def _check_eval_run(eval_run: str | Path, run_dir: Path) -> EvalRun:
    ev = load_eval_run(eval_run)
    ref = ev.settings.get("train_run")
    if not ref:
        raise PublishError(
            f"evaluation run {ev.run_dir} evaluated a base model only (settings.train_run is empty), not the "
            f"adapter of {run_dir}"
        )
    if (
        str(ref).startswith(HUB_PREFIX)
        or resolve_run_ref(ref, ev.run_dir.parent).resolve() != run_dir.resolve()
    ):
        raise PublishError(
            f"evaluation run {ev.run_dir} evaluated train run {ref!r}, not {run_dir}: give the evaluation of this "
            "adapter (or no --eval-run)"
        )
    return ev


def check_publish(run: str | Path, repo_id: str, *, eval_run: str | Path | None = None) -> PublishPlan:
    """Every check before anything is written or uploaded; raises :class:`PublishError` (or the runs' own
    errors) naming the file, field or parameter."""
    try:
        check_repo_id(repo_id)
    except ValueError as e:
        raise PublishError(str(e)) from None
    run_dir = _check_train_run_dir(run)
    params = _read(run_dir / "params.json", "a training run names its base model and recipe there")
    provenance = _read(run_dir / "provenance.json", "every finished run has one")
    if provenance.get("stage") != "training":
        raise PublishError(
            f"{run_dir / 'provenance.json'}: stage is {provenance.get('stage')!r}, not 'training': --run must "
            "name a training run (notebook 02)"
        )
    summary = _read(run_dir / "train_summary.json", "a finished training run writes it last")
    base_model = params.get("base_model")
    if not isinstance(base_model, str) or not base_model:
        raise PublishError(f"{run_dir / 'params.json'}: field 'base_model' is missing or empty")
    hub_id, license_id, ship = _base_model_names(run_dir, base_model)
    data_params = None
    if isinstance(params.get("data_run"), str):
        data_file = resolve_run_ref(params["data_run"], run_dir.parent) / "params.json"
        data_params = read_json(data_file) if data_file.is_file() else None
    ev = _check_eval_run(eval_run, run_dir) if eval_run is not None else None
    return PublishPlan(
        run_dir, repo_id, params, provenance, summary, base_model, hub_id, license_id, ship, data_params, ev
    )


# ---------------------------------------------------------------- the model card


def _front_matter(plan: PublishPlan) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if plan.base_hub_id:
        meta["base_model"] = plan.base_hub_id
    meta["library_name"] = "peft"
    if plan.base_license:
        meta["license"] = plan.base_license
    meta["pipeline_tag"] = "text-generation"
    meta["tags"] = list(CARD_TAGS)
    source = (plan.data_params or {}).get("source")
    if source in DATASETS_BY_SOURCE:
        meta["datasets"] = [DATASETS_BY_SOURCE[source]]
    # the kit's own record (the Hub keeps keys it does not know): what the adapter needs to be loaded exactly
    meta["socialite"] = {
        "base_model": plan.base_model,
        "base_model_weights": "base_model/" if plan.ship_base_model else None,
        "train_run": plan.params.get("run_name"),
        "tasks": sorted(plan.summary.get("examples_by_task") or {}),
        "eval_run": plan.eval_run.metrics.get("run_name") if plan.eval_run else None,
    }
    return meta


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _data_section(plan: PublishPlan) -> list[str]:
    dp, s = plan.data_params or {}, plan.summary
    by_task = s.get("examples_by_task") or {}
    lines = ["## Data", ""]
    where = f"data run `{plan.params.get('data_run')}`"
    if dp:
        where += (
            f" (source `{dp.get('source')}`, suite `{dp.get('suite')}`, prompt format `{dp.get('prompt_format')}`, "
            f"{dp.get('few_shot_k', 0)}-shot prompts, at most {dp.get('max_train_per_task')} training rows per task)"
        )
        if dp.get("source") == "local":
            where += "; its rows are the kit's bundled samples of public datasets (sources and licences: data/README.md)"
    else:
        where += " (its params.json was not found next to the training run)"
    lines.append(f"Trained on the training split of the {where}.")
    lines.append("")
    lines += _md_table(["task", "training rows"], [[f"`{t}`", n] for t, n in sorted(by_task.items())])
    lines += [
        "",
        f"{s.get('n_train')} rows in all; {s.get('n_dropped', 0)} dropped (no trained token after truncation to "
        f"max_length {plan.params.get('max_length')}).",
        "",
    ]
    return lines


def _recipe_section(plan: PublishPlan) -> list[str]:
    p, s = plan.params, plan.summary
    resolved = s.get("resolved") or {}
    epochs = p.get("num_train_epochs")
    if p.get("max_steps", -1) not in (None, -1) and int(p["max_steps"]) > 0:
        epochs = f"{epochs} (stopped at max_steps {p['max_steps']})"
    targets = resolved.get("target_modules") or p.get("lora_target_modules")
    if isinstance(targets, list):
        targets = ", ".join(targets)
    to_save = resolved.get("modules_to_save")
    rows = [
        ["base model", f"`{plan.base_model}`" + (f" ({plan.base_hub_id})" if plan.base_hub_id else "")],
        ["LoRA r / alpha / dropout", f"{p.get('lora_r')} / {p.get('lora_alpha')} / {p.get('lora_dropout')}"],
        ["target modules", targets],
        ["modules trained in full", ", ".join(to_save) if to_save else "none"],
        ["learning rate", p.get("learning_rate")],
        ["warmup ratio", p.get("warmup_ratio")],
        ["epochs", epochs],
        ["optimizer steps run", s.get("global_step")],
        [
            "effective batch size",
            f"{resolved.get('effective_batch_size')} (per device {resolved.get('per_device_train_batch_size')} x "
            f"accumulation {resolved.get('gradient_accumulation_steps_per_process')} x "
            f"{resolved.get('world_size', 1)} process(es))",
        ],
        ["max_length (prompt + answer tokens)", p.get("max_length")],
        ["seed", p.get("seed")],
        ["precision", plan.provenance.get("precision", "n/a")],
        ["mean training loss", fmt_value(s.get("train_loss"), 4)],
        ["trainable parameters", f"{s.get('trainable_params'):,} of {s.get('total_params'):,}"],
    ]
    return [
        "## Training recipe",
        "",
        "LoRA supervised fine-tuning with TRL's SFTTrainer, the loss on the answer (and end marker) only, "
        "following Socialite-Llama (Dey et al. 2024).",
        "",
        *_md_table(["setting", "value"], rows),
        "",
    ]


def _results_section(plan: PublishPlan) -> list[str]:
    ev = plan.eval_run
    if ev is None:
        return [
            "## Results",
            "",
            "No evaluation run was given when this adapter was published, so this card reports no results. "
            "Evaluate it with the socialite kit (see below) before relying on it.",
            "",
        ]
    m, st = ev.metrics, ev.settings
    models = m["models"]
    lines = [
        "## Results",
        "",
        f"Evaluation run `{m.get('run_name')}`: the `{st.get('split')}` split of data run `{st.get('data_run')}`, "
        f"mode `{st.get('mode')}`, {st.get('few_shot_k')}-shot, "
        f"{'all' if st.get('max_eval_per_task') is None else 'at most ' + str(st['max_eval_per_task'])} "
        f"examples per task, seed {st.get('seed')}. Macro-F1 in %, each with its 95% bootstrap CI over test "
        f"examples ({st.get('bootstrap_samples')} resamples); the difference is paired (same examples).",
        "",
    ]
    header = ["task", "group", "n"] + [f"{name} macro-F1 [95% CI]" for name in models]
    if len(models) == 2:
        header.append(f"{models[1]} - {models[0]} [95% CI]")
    rows = []
    for task, t in m["tasks"].items():
        row: list[Any] = [f"`{task}`", t.get("group"), t.get("n")]
        for name in models:
            mm = t["models"][name]
            cell = f"{fmt_value(mm.get('macro_f1'))} {fmt_ci(mm.get('macro_f1_ci'))}"
            if t.get("type") == "regression" and "pearson_r" in mm:
                cell += f"; r {fmt_value(mm.get('pearson_r'), 3)} {fmt_ci(mm.get('pearson_r_ci'), 3)}"
            row.append(cell)
        if len(models) == 2:
            c = t.get("comparison") or {}
            row.append(f"{fmt_value(c.get('delta_macro_f1'))} {fmt_ci(c.get('delta_ci'))}" if c else "n/a")
        rows.append(row)
    lines += _md_table(header, rows)
    overall = m.get("overall") or {}
    if overall:
        lines += ["", "Mean macro-F1 over tasks, 95% CI over test examples:"]
        for name in models:
            a = overall[name]
            ci = a.get("macro_over_tasks_example_ci") or a.get("macro_over_tasks_ci")
            lines.append(
                f"- {name}: {fmt_value(a.get('macro_over_tasks'))} {fmt_ci(ci)} ({a.get('n_tasks')} tasks)"
            )
    claims = current_claims(m)
    if claims:
        lines += ["", "The paper's claims, judged on this run:", ""]
        lines += [f"- {line}" for line in claim_lines(claims)]
    lines.append("")
    return lines


def _usage_section(plan: PublishPlan) -> list[str]:
    repo = plan.repo_id
    if plan.ship_base_model:
        load_base = f'base = AutoModelForCausalLM.from_pretrained("{repo}", subfolder="base_model")'
    else:
        load_base = f'base = AutoModelForCausalLM.from_pretrained("{plan.base_hub_id}")'
    return [
        "## How to use",
        "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        load_base,
        f'tokenizer = AutoTokenizer.from_pretrained("{repo}")  # the tokenizer it was trained with',
        f'model = PeftModel.from_pretrained(base, "{repo}").eval()',
        "```",
        "",
        "Prompts must be rendered as in training (the kit's registry instructions in its "
        f"`{(plan.data_params or {}).get('prompt_format', 'paper')}` prompt format); the answer is one of the "
        "task's label words. With the socialite kit, evaluate it on a data run:",
        "",
        "```python",
        "from socialite_utils.evaluation import EvalParams, evaluate_run",
        "",
        f'evaluate_run(EvalParams(run_name="eval-hub", data_run="data-demo", train_run="hub:{repo}"))',
        "```",
        "",
    ]


def _citation_section() -> list[str]:
    return [
        "## Citation",
        "",
        "The recipe reproduces these papers; cite them, and each data source as its README asks:",
        "",
        *[f"- {p}" for p in PAPERS],
        "",
    ]


def build_model_card(plan: PublishPlan) -> str:
    """The model card (README.md): YAML front matter, then data, recipe, results, usage and citations."""
    s = plan.summary
    front = yaml.safe_dump(_front_matter(plan), sort_keys=False, allow_unicode=True)
    n_tasks = len(s.get("examples_by_task") or {})
    intro = (
        f"A LoRA adapter for `{plan.base_hub_id or plan.base_model}`, instruction-tuned on {n_tasks} "
        "social-science task(s) with the socialite kit (training run "
        f"`{plan.params.get('run_name')}`)."
    )
    lines = ["---", front.rstrip("\n"), "---", "", f"# {plan.repo_id.split('/')[1]}", "", intro, ""]
    if plan.ship_base_model:
        lines += [
            f"**A test adapter.** Its base model `{plan.base_model}` has random weights built in-process by the kit; "
            "they are saved in `base_model/` of this repo, and the adapter only works on them. It shows that the "
            "pipeline runs, not that a model learned the tasks.",
            "",
        ]
    lines += _data_section(plan) + _recipe_section(plan) + _results_section(plan)
    lines += _usage_section(plan) + _citation_section()
    return "\n".join(lines)


# ---------------------------------------------------------------- the folder and the upload


def write_upload_folder(plan: PublishPlan, folder: Path) -> list[str]:
    """Write what is uploaded into ``folder`` (an empty temporary folder); return its files, sorted."""
    adapter = plan.run_dir / "adapter"
    for src in sorted(adapter.iterdir()):
        if src.is_file() and src.name not in SKIPPED_ADAPTER_FILES:
            shutil.copyfile(src, folder / src.name)
    config = read_json(folder / "adapter_config.json")
    config["base_model_name_or_path"] = plan.base_hub_id or plan.base_model
    write_json(folder / "adapter_config.json", config)
    if plan.ship_base_model:
        shutil.copytree(plan.run_dir / "base_model", folder / "base_model")
    for name in RUN_FILES:
        shutil.copyfile(plan.run_dir / name, folder / name)
    summary = {k: v for k, v in plan.summary.items() if k not in LOCAL_PATH_FIELDS}
    write_json(folder / "train_summary.json", summary)
    write_text_atomic(folder / "README.md", build_model_card(plan))
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def push_adapter_to_hub(
    run: str | Path,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    api: Any | None = None,
    eval_run: str | Path | None = None,
    dry_run: bool = False,
) -> PushResult | Path:
    """Publish training run ``run``'s adapter as the Hub model repo ``repo_id`` with a model card.

    Checks everything first (:func:`check_publish`), writes the folder to upload into a new temporary directory
    (:func:`write_upload_folder`), then creates the repo (``private`` by default; ``exist_ok``: pushing again
    adds a commit) and uploads the folder with ``api`` (default ``huggingface_hub.HfApi(token=token)``).
    ``dry_run=True`` uploads nothing and returns the folder's path (it is kept; delete it when done).
    """
    plan = check_publish(run, repo_id, eval_run=eval_run)
    folder = Path(tempfile.mkdtemp(prefix="socialite-hub-"))
    keep = False
    try:
        files = write_upload_folder(plan, folder)
        if dry_run:
            keep = True
            return folder
        api = api if api is not None else huggingface_hub.HfApi(token=token)
        repo_url = api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            commit_message=f"socialite: LoRA adapter of training run {plan.params.get('run_name')}",
        )
        return PushResult(
            repo_id=repo_id,
            url=str(repo_url),
            files=files,
            commit_url=getattr(commit, "commit_url", None),
        )
    finally:
        if not keep:  # a failed write or upload leaves nothing behind
            shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="the training run to publish (a name under runs/ or a path)")
    ap.add_argument("--repo", required=True, help="the Hub model repo, owner/name (created if missing)")
    ap.add_argument("--eval-run", help="an evaluation run of this training run: its results go on the card")
    ap.add_argument("--public", action="store_true", help="create the repo public (default: private)")
    ap.add_argument("--token", help="a Hub token (default: the one `hf auth login` saved, or $HF_TOKEN)")
    ap.add_argument(
        "--dry-run", action="store_true", help="write the folder to upload, print its path, upload nothing"
    )
    args = ap.parse_args(argv)
    try:
        out = push_adapter_to_hub(
            args.run,
            args.repo,
            private=not args.public,
            token=args.token,
            eval_run=args.eval_run,
            dry_run=args.dry_run,
        )
    except (PublishError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if isinstance(out, Path):
        print(f"dry run: the folder that would be uploaded is {out}")
        for p in sorted(out.rglob("*")):
            if p.is_file():
                print(f"  {p.relative_to(out).as_posix()}")
    else:
        print(json.dumps({"repo": out.repo_id, "url": out.url, "commit": out.commit_url, "files": out.files}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
