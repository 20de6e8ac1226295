"""Trained adapters on the Hugging Face Hub: where a train run is named, ``hub:owner/name`` names a Hub repo.

The rule is one prefix, so a name is never ambiguous: ``train_run="hub:owner/name"`` downloads the repo's
files (``huggingface_hub.snapshot_download``) into the kit's cache, ``$SOCIALITE_CACHE_DIR/adapters/
owner--name/`` (default ``~/.cache/socialite/adapters/``); anything else is a local run name or path, as
before (a plain ``owner/name`` is a path under the current directory). ``hub:owner/name@rev`` pins a branch,
tag or commit.

A downloaded repo is an adapter folder (``adapter_config.json``, ``adapter_model.safetensors``, the tokenizer when
it was pushed with one) rather than a run with ``adapter/`` inside: :func:`adapter_dir_of` finds the adapter in either layout.

Its base model (:func:`hub_base_model`): ``base_model_name_or_path`` of its adapter_config.json. A repo pushed
by the kit (:mod:`socialite_utils.publish`) also carries the run's params.json; when that names the preset the
id came from (``smollm2-135m`` is the packaged copy of ``HuggingFaceTB/SmolLM2-135M-Instruct``) the preset is
loaded, the exact weights the adapter was trained on, and a ``tiny-random`` adapter loads the random base
model saved in the repo's ``base_model/``.

Offline, a repo downloaded before is read from the cache; one that is not there is an error naming the id.
"""

from __future__ import annotations

import re
from pathlib import Path

import huggingface_hub
from huggingface_hub.errors import EntryNotFoundError

from .. import models
from ..runs import read_json, resolve_run_ref
from .checkpoints import adapter_problem

HUB_PREFIX = "hub:"
# The Hub's repo ids: owner/name, letters, digits, '-', '_', '.'; no '--' or '..', not starting or ending
# with '-' or '.', at most 96 characters for the name.
_REPO_PART = r"[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"^{_REPO_PART}/{_REPO_PART}$")


def check_repo_id(repo_id: object, *, param: str = "repo_id") -> str:
    """``repo_id`` if it is a Hub repo id shaped ``owner/name``; else ValueError naming ``param``."""
    text = repo_id if isinstance(repo_id, str) else ""
    if not _REPO_ID.match(text) or "--" in text or ".." in text:
        raise ValueError(
            f"{param}={repo_id!r} is not a Hugging Face Hub repo id: write owner/name (your user or organisation, "
            "a slash, the repo name; letters, digits, '-', '_' and '.', no '--' or '..')"
        )
    return text


def is_hub_ref(train_run: object) -> bool:
    """True for ``hub:owner/name`` (the one spelling that names a Hub repo instead of a local run)."""
    return isinstance(train_run, str) and train_run.startswith(HUB_PREFIX)


def parse_hub_ref(ref: str) -> tuple[str, str | None]:
    """(repo_id, revision or None) of ``hub:owner/name[@revision]``; ValueError for a malformed one."""
    if not is_hub_ref(ref):
        raise ValueError(f"{ref!r} is not a Hub reference: write hub:owner/name")
    body = ref[len(HUB_PREFIX) :]
    repo_id, _, revision = body.partition("@")
    check_repo_id(repo_id, param="train_run")
    if "@" in ref and not revision:
        raise ValueError(f"train_run={ref!r}: nothing after '@' (write hub:owner/name@branch-tag-or-commit)")
    return repo_id, revision or None


def hub_cache_dir(repo_id: str) -> Path:
    """Where the kit keeps a downloaded adapter repo: ``<kit cache>/adapters/owner--name``."""
    return models.default_cache_dir().parent / "adapters" / repo_id.replace("/", "--")


def download_hub_adapter(ref: str, *, cache_dir: str | Path | None = None, token: str | None = None) -> Path:
    """Download ``hub:owner/name[@rev]`` into the kit's cache and return the folder; it must hold a complete
    adapter (:func:`adapter_problem`). Offline, a copy downloaded before is returned; without one the error names
    the id. Nothing is loaded here."""
    repo_id, revision = parse_hub_ref(ref)
    dest = Path(cache_dir) if cache_dir else hub_cache_dir(repo_id)
    if revision:
        dest = dest / revision.replace("/", "--")
    try:
        # looked up on the module at call time, so tests can serve a stand-in Hub
        path = Path(
            huggingface_hub.snapshot_download(
                repo_id, repo_type="model", revision=revision, local_dir=dest, token=token
            )
        )
    except (OSError, EntryNotFoundError) as e:
        offline = models.hub_offline_reason()
        why = f"the Hugging Face Hub is offline ({offline})" if offline else f"{type(e).__name__}: {e}"
        raise FileNotFoundError(
            f"train_run={ref!r}: cannot download the adapter repo {repo_id!r} and it is not in the kit's cache "
            f"({dest}): {why}. Go online (and `hf auth login` for a private repo), or give a local train run."
        ) from None
    if problem := adapter_problem(path, tokenizer=False):  # without its tokenizer: the base model's
        raise FileNotFoundError(
            f"train_run={ref!r}: the Hub repo {repo_id!r} is not a complete LoRA adapter: {problem}"
        )
    return path


def locate_train_run(ref: str, base: str | Path) -> Path:
    """The folder a train-run reference of an evaluation's settings names: a Hub adapter's copy in the kit's
    cache (downloaded again if missing) or a run, relative to ``base`` (:func:`socialite_utils.runs.run_ref`)."""
    return download_hub_adapter(ref) if is_hub_ref(ref) else resolve_run_ref(ref, base)


def adapter_dir_of(run_dir: Path) -> Path:
    """The adapter folder of a train run (``run/adapter``) or of a downloaded Hub repo (the folder itself)."""
    if not (run_dir / "adapter").is_dir() and (run_dir / "adapter_config.json").is_file():
        return run_dir
    return run_dir / "adapter"


def hub_base_model(repo_dir: Path, ref: str) -> str:
    """The base model of a downloaded adapter repo (see the module docstring for the rule)."""
    config = read_json(repo_dir / "adapter_config.json")
    name = config.get("base_model_name_or_path")
    kit = (
        read_json(repo_dir / "params.json").get("base_model")
        if (repo_dir / "params.json").is_file()
        else None
    )
    preset = models.PRESETS.get(kit) if isinstance(kit, str) else None
    if kit and (kit == name or (preset is not None and preset.get("hub_id") == name)):
        return kit
    if not name:
        raise ValueError(
            f"train_run={ref!r}: {repo_dir / 'adapter_config.json'} names no base_model_name_or_path; "
            "give base_model=... (the model the adapter was trained on)"
        )
    return str(name)


__all__ = [
    "HUB_PREFIX",
    "adapter_dir_of",
    "check_repo_id",
    "download_hub_adapter",
    "hub_base_model",
    "hub_cache_dir",
    "is_hub_ref",
    "locate_train_run",
    "parse_hub_ref",
]
