"""Publishing an adapter on the Hub and evaluating one by Hub id, against a stand-in Hub (no network).

One tiny-random training run and its evaluation are built once; every push goes to ``FakeHubApi`` (which copies
the uploaded files into a folder laid out as the Hub repo), and ``hub:owner/name`` is served from that folder by
the stand-in ``snapshot_download``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from socialite_utils.data.assembly import build_data, write_data_run
from socialite_utils.evaluation import EvalParams, build_eval_plan, evaluate_run, load_eval_run
from socialite_utils.publish import PublishError, check_publish, main, push_adapter_to_hub
from socialite_utils.registry import load_registry, select_tasks
from socialite_utils.training import TrainParams, train_lora
from socialite_utils.training.hub import hub_base_model, parse_hub_ref

try:
    from tests.fixtures_hub import FakeHubApi, install_fake_model_hub
except ImportError:  # run from tests/
    from fixtures_hub import FakeHubApi, install_fake_model_hub  # type: ignore[no-redef]

REPO_ID = "you/socialite-lora"
TASKS = ["tweet_emotion", "tweet_irony", "emobank_valence", "tweet_hate"]
ADAPTER_FILES = {
    "adapter_config.json",
    "adapter_model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
}
BASE_FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, bundle_dir) -> Path:
    """runs/: data (4 tasks, 3 test rows each), train (tiny-random, 2 steps), ev (score mode, its evaluation)."""
    root = tmp_path_factory.mktemp("pub") / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOCIALITE_RUNS_DIR", str(root))
        data = build_data(
            select_tasks(load_registry("local"), TASKS),
            data_dir=bundle_dir,
            max_train_per_task=6,
            max_eval_per_task=3,
        )
        write_data_run("data", data, params={"suite": "local", "source": "local"})
        params = TrainParams(run_name="train", data_run="data").for_smoke()
        params.max_steps = 2
        train_lora(params, verbose=False)
        evaluate_run(
            EvalParams(run_name="ev", data_run="data", train_run="train", mode="score", bootstrap_samples=50),
            verbose=False,
        )
    return root


@pytest.fixture()
def at_runs(runs, monkeypatch) -> Path:
    monkeypatch.setenv("SOCIALITE_RUNS_DIR", str(runs))
    return runs


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    head, _ = card[4:].split("\n---\n", 1)
    return yaml.safe_load(head)


def _listing(d: Path) -> dict[str, int]:
    return {p.relative_to(d).as_posix(): p.stat().st_mtime_ns for p in d.rglob("*")}


def test_push_uploads_the_adapter_the_run_files_and_a_card(at_runs, tmp_path):
    before = _listing(at_runs / "train")
    api = FakeHubApi(tmp_path / "hub")
    result = push_adapter_to_hub("train", REPO_ID, api=api, eval_run="ev")

    assert [c["fn"] for c in api.calls] == ["create_repo", "upload_folder"]
    create, upload = api.calls
    assert create["private"] is True and create["exist_ok"] is True and create["repo_type"] == "model"
    assert upload["repo_type"] == "model" and upload["repo_id"] == REPO_ID
    repo = tmp_path / "hub" / REPO_ID
    expected = ADAPTER_FILES | {"README.md", "params.json", "provenance.json", "train_summary.json"}
    expected |= {f"base_model/{f}" for f in BASE_FILES | {"chat_template.jinja"}}
    assert set(upload["files"]) == expected == set(result.files)
    assert {p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()} == expected
    assert not Path(upload["folder_path"]).exists()  # the temporary folder is gone
    assert _listing(at_runs / "train") == before  # nothing written into the run

    # the uploaded adapter_config names the base model; the run's own copy is untouched
    assert json.loads((repo / "adapter_config.json").read_text())["base_model_name_or_path"] == "tiny-random"
    assert (
        json.loads((at_runs / "train/adapter/adapter_config.json").read_text())["base_model_name_or_path"]
        is None
    )
    summary = json.loads((repo / "train_summary.json").read_text())
    assert "run_dir" not in summary and "adapter_dir" not in summary and summary["global_step"] == 2

    card = (repo / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["library_name"] == "peft" and "base_model" not in meta  # random weights: no Hub model to link
    assert meta["socialite"]["base_model"] == "tiny-random"
    assert meta["socialite"]["base_model_weights"] == "base_model/"
    assert meta["socialite"]["tasks"] == sorted(TASKS[:3])  # tweet_hate is related: test rows only
    assert "| learning rate | 0.003 |" in card
    assert "| LoRA r / alpha / dropout | 8 / 16 / 0.05 |" in card
    assert "| `tweet_irony` | 6 |" in card  # training rows per task
    metrics = json.loads((at_runs / "ev/metrics.json").read_text())
    tuned = metrics["tasks"]["tweet_irony"]["models"]["tuned"]
    lo, hi = tuned["macro_f1_ci"]
    assert f"{tuned['macro_f1']:.1f} [{lo:.1f}, {hi:.1f}]" in card
    seen_claim = metrics["claims"][0]  # the seen-task claim, as metrics.json stores its line
    assert seen_claim["line"].startswith(f"[{seen_claim['verdict']}] Instruction tuning improves macro-F1")
    assert f"- {seen_claim['line']}; " in card
    assert "- [cannot judge] Instruction tuning improves macro-F1 over the base model on related" not in card
    assert "A test adapter." in card and "No evaluation run was given" not in card
    for paper in ("Socialite-Llama", "Specialist or Generalist?", "arXiv:2305.13225"):
        assert paper in card
    assert f'PeftModel.from_pretrained(base, "{REPO_ID}")' in card


def test_a_hub_base_model_is_named_with_its_licence_and_no_eval_is_said(at_runs, tmp_path):
    run = at_runs / "train-smol"
    shutil.copytree(at_runs / "train", run, ignore=shutil.ignore_patterns("base_model"))
    params = json.loads((run / "params.json").read_text())
    (run / "params.json").write_text(json.dumps({**params, "base_model": "smollm2-135m"}))

    folder = push_adapter_to_hub("train-smol", REPO_ID, dry_run=True)
    try:
        assert isinstance(folder, Path) and not (folder / "base_model").exists()
        card = (folder / "README.md").read_text()
        meta = _front_matter(card)
        assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta["license"] == "apache-2.0"
        assert meta["socialite"]["base_model"] == "smollm2-135m" and meta["socialite"]["eval_run"] is None
        config = json.loads((folder / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
        assert "No evaluation run was given" in card
        assert 'AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")' in card
        # the kit maps the id back to the preset it trained on (the packaged GGUF copy)
        assert hub_base_model(folder, "hub:" + REPO_ID) == "smollm2-135m"
    finally:
        shutil.rmtree(folder)


def _unfinished(runs: Path) -> str:
    shutil.copytree(runs / "train", runs / "half.partial")
    return "half"


def _truncated(runs: Path) -> str:
    shutil.copytree(runs / "train", runs / "cut")
    weights = runs / "cut/adapter/adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    return "cut"


def _no_base_weights(runs: Path) -> str:
    shutil.copytree(runs / "train", runs / "nobase", ignore=shutil.ignore_patterns("base_model"))
    return "nobase"


def _local_base(runs: Path) -> str:
    shutil.copytree(runs / "train", runs / "localbase")
    params = json.loads((runs / "localbase/params.json").read_text())
    (runs / "localbase/params.json").write_text(
        json.dumps({**params, "base_model": str(runs / "train/base_model")})
    )
    return "localbase"


@pytest.mark.parametrize(
    "make_run, repo_id, error",
    [
        (
            None,
            "socialite-lora",
            r"repo_id='socialite-lora' is not a Hugging Face Hub repo id: write owner/name",
        ),
        (None, "you/socialite/lora", "not a Hugging Face Hub repo id"),
        (None, "you/--lora", "not a Hugging Face Hub repo id"),
        (None, "you/lora.", "not a Hugging Face Hub repo id"),
        (_unfinished, REPO_ID, r"half is unfinished: only .*half\.partial exists"),
        (lambda runs: "nope", REPO_ID, r"training run .*nope does not exist"),
        (lambda runs: "ev", REPO_ID, r"ev has no complete LoRA adapter: .*adapter is missing"),
        (_truncated, REPO_ID, r"cut has no complete LoRA adapter: .*adapter_model\.safetensors is truncated"),
        (
            _no_base_weights,
            REPO_ID,
            r"'tiny-random' has random weights built in-process.*config\.json is missing",
        ),
        (_local_base, REPO_ID, r"params\.json: base_model .* is a local folder"),
    ],
)
def test_bad_input_is_refused_before_any_upload(at_runs, tmp_path, make_run, repo_id, error):
    run = make_run(at_runs) if make_run else "train"
    api = FakeHubApi(tmp_path / "hub")
    with pytest.raises(PublishError, match=error):
        push_adapter_to_hub(run, repo_id, api=api, eval_run="ev")
    assert api.calls == [] and not (tmp_path / "hub").exists()


def test_an_evaluation_of_another_run_is_refused(at_runs, tmp_path):
    for name, train_run, error in [
        (
            "ev-other",
            "other",
            r"evaluated train run 'other', not .*train: give the evaluation of this adapter",
        ),
        ("ev-base", None, r"evaluated a base model only"),
    ]:
        shutil.copytree(at_runs / "ev", at_runs / name)
        metrics = json.loads((at_runs / name / "metrics.json").read_text())
        metrics["settings"]["train_run"] = train_run
        (at_runs / name / "metrics.json").write_text(json.dumps(metrics))
        api = FakeHubApi(tmp_path / "hub")
        with pytest.raises(PublishError, match=error):
            push_adapter_to_hub("train", REPO_ID, api=api, eval_run=name)
        assert api.calls == []
    with pytest.raises(FileNotFoundError, match="evaluation run .*missing-ev does not exist"):
        check_publish("train", REPO_ID, eval_run="missing-ev")


def test_evaluating_the_pushed_adapter_by_hub_id_gives_the_local_predictions(at_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIALITE_CACHE_DIR", str(tmp_path / "cache"))
    api, downloads = install_fake_model_hub(monkeypatch, tmp_path / "hub")
    push_adapter_to_hub("train", REPO_ID, eval_run="ev")  # through huggingface_hub.HfApi (the stand-in)
    assert [c["fn"] for c in api.calls] == ["create_repo", "upload_folder"]

    params = EvalParams(
        run_name="ev-hub", data_run="data", train_run=f"hub:{REPO_ID}", mode="score", bootstrap_samples=50
    )
    plan = build_eval_plan(params)
    cached = tmp_path / "cache" / "adapters" / "you--socialite-lora"
    assert [(c["repo_id"], c["repo_type"], Path(c["local_dir"])) for c in downloads] == [
        (REPO_ID, "model", cached)
    ]
    assert plan.train_run_dir == cached.resolve() and plan.base_model == "tiny-random"
    evaluate_run(params, plan=plan, verbose=False)

    local, hub = load_eval_run(at_runs / "ev"), load_eval_run(at_runs / "ev-hub")
    assert hub.settings["train_run"] == f"hub:{REPO_ID}"

    def key(rows):
        return {(r["id"], r["model"]): (r["parsed"], r["logprobs"]) for r in rows}

    assert key(hub.predictions) == key(local.predictions)
    assert len(hub.predictions) == 2 * 3 * len(TASKS)


def test_a_hub_adapter_offline_without_a_copy_is_an_error_naming_the_id(at_runs, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("SOCIALITE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # the real snapshot_download
    params = EvalParams(run_name="ev-off", data_run="data", train_run="hub:someone/not-here")
    with pytest.raises(
        FileNotFoundError, match=r"cannot download the adapter repo 'someone/not-here'.*offline"
    ):
        build_eval_plan(params)
    assert not (at_runs / "ev-off").exists()


@pytest.mark.parametrize(
    "ref, expected",
    [
        ("hub:you/lora", ("you/lora", None)),
        ("hub:you/lora@v1.0", ("you/lora", "v1.0")),
        ("hub:you", ValueError("train_run='you' is not a Hugging Face Hub repo id")),
        ("hub:you/lora@", ValueError("nothing after '@'")),
        ("you/lora", ValueError("not a Hub reference: write hub:owner/name")),
    ],
)
def test_parse_hub_ref(ref, expected):
    if isinstance(expected, Exception):
        with pytest.raises(ValueError, match=str(expected)):
            parse_hub_ref(ref)
    else:
        assert parse_hub_ref(ref) == expected


def test_base_model_of_a_downloaded_repo(tmp_path):
    def repo(config_name, kit_base=None):
        d = tmp_path / str(len(list(tmp_path.iterdir())))
        d.mkdir()
        (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": config_name}))
        if kit_base:
            (d / "params.json").write_text(json.dumps({"base_model": kit_base}))
        return d

    assert hub_base_model(repo("Qwen/Qwen2.5-0.5B-Instruct"), "hub:a/b") == "Qwen/Qwen2.5-0.5B-Instruct"
    # params.json of another model does not override the adapter's own record
    assert hub_base_model(repo("org/other", kit_base="smollm2-135m"), "hub:a/b") == "org/other"
    with pytest.raises(ValueError, match="names no base_model_name_or_path; give base_model="):
        hub_base_model(repo(None), "hub:a/b")


def test_cli_dry_run_and_bad_input(at_runs, capsys):
    assert main(["--run", "train", "--repo", REPO_ID, "--eval-run", "ev", "--dry-run"]) == 0
    out = capsys.readouterr().out
    folder = Path(out.splitlines()[0].split(" is ", 1)[1])
    try:
        assert "  README.md" in out and "  adapter_model.safetensors" in out
        assert _front_matter((folder / "README.md").read_text())["socialite"]["eval_run"] == "ev"
    finally:
        shutil.rmtree(folder)
    assert main(["--run", "train", "--repo", "nope"]) == 2
    assert "error: repo_id='nope' is not a Hugging Face Hub repo id" in capsys.readouterr().err


def test_cli_push_is_private_unless_asked(at_runs, tmp_path, monkeypatch, capsys):
    api, _ = install_fake_model_hub(monkeypatch, tmp_path / "hub")
    assert main(["--run", "train", "--repo", REPO_ID, "--public"]) == 0
    assert api.calls[0]["private"] is False
    printed = json.loads(capsys.readouterr().out)
    assert printed["repo"] == REPO_ID and "README.md" in printed["files"]
    card = (tmp_path / "hub" / REPO_ID / "README.md").read_text()
    assert "No evaluation run was given" in card


def test_a_hub_adapter_without_tokenizer_or_kit_files(at_runs, tmp_path, monkeypatch):
    """An adapter pushed by someone else: adapter_config.json names the base model, no tokenizer, no params.json."""
    import huggingface_hub.constants

    from socialite_utils.models import ModelOfflineError

    monkeypatch.setenv("SOCIALITE_CACHE_DIR", str(tmp_path / "cache"))
    api, _ = install_fake_model_hub(monkeypatch, tmp_path / "hub")
    push_adapter_to_hub("train", "someone/bare-lora", api=api)
    repo = tmp_path / "hub" / "someone/bare-lora"
    for name in (
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        *("params.json", "README.md"),
    ):
        (repo / name).unlink()

    params = EvalParams(
        run_name="ev-bare",
        data_run="data",
        train_run="hub:someone/bare-lora",
        mode="score",
        bootstrap_samples=50,
    )
    plan = build_eval_plan(params)
    assert plan.base_model == "tiny-random" and not (plan.train_run_dir / "tokenizer.json").exists()
    evaluate_run(params, plan=plan, verbose=False)  # the tokenizer of the repo's base_model/: the same one
    local, hub = load_eval_run(at_runs / "ev"), load_eval_run(at_runs / "ev-bare")
    assert {(r["id"], r["model"]): r["logprobs"] for r in hub.predictions} == {
        (r["id"], r["model"]): r["logprobs"] for r in local.predictions
    }

    # a base model on the Hub that is not cached, while offline: named before anything is loaded
    config = json.loads((repo / "adapter_config.json").read_text())
    (repo / "adapter_config.json").write_text(
        json.dumps({**config, "base_model_name_or_path": "someone/base-7b"})
    )
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        ModelOfflineError, match="cannot load 'someone/base-7b': the Hugging Face hub is offline"
    ):
        build_eval_plan(_with(params, run_name="ev-bare2"))
    # base_model= overrides what the repo names
    plan = build_eval_plan(_with(params, run_name="ev-bare3", base_model="tiny-random"))
    assert plan.base_model == "tiny-random"


def _with(params: EvalParams, **changes) -> EvalParams:
    return EvalParams(**{**params.to_dict(), **changes})


def test_a_failed_upload_leaves_no_temporary_folder(at_runs, tmp_path):
    class Refusing(FakeHubApi):
        def upload_folder(self, *, repo_id, folder_path, **kw):
            self.calls.append({"fn": "upload_folder", "folder_path": folder_path})
            raise OSError("403 Forbidden: you cannot write to this namespace")

    api = Refusing(tmp_path / "hub")
    with pytest.raises(OSError, match="403 Forbidden"):
        push_adapter_to_hub("train", REPO_ID, api=api)
    assert [c["fn"] for c in api.calls] == ["create_repo", "upload_folder"]
    assert not Path(api.calls[1]["folder_path"]).exists()
