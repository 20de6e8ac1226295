"""Training choices a study makes: the checkpoint chosen on validation rows, max_length fitted to the data, and
full fine-tuning (peft="none"). Tiny random Llama, a dozen steps at most.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TRAIN_TASKS
from transformers import AutoModelForCausalLM, TrainerCallback

from socialite_utils.data.assembly import build_data
from socialite_utils.evaluation import EvalParams
from socialite_utils.evaluation.plan import _check_train_run
from socialite_utils.params import ParamError
from socialite_utils.registry import load_registry
from socialite_utils.runs import read_json
from socialite_utils.tokens import tokenize_like_trl
from socialite_utils.training import TrainParams, load_adapter, load_run_tokenizer, train_lora


@pytest.fixture(scope="module")
def splits(bundle_dir) -> dict[str, list[dict]]:
    registry = load_registry("local")
    data = build_data(
        [registry[t] for t in TRAIN_TASKS], data_dir=bundle_dir, max_train_per_task=10, max_eval_per_task=6
    )
    return data.splits


def tiny(**overrides) -> TrainParams:
    base = {
        "run_name": "t",
        "base_model": "tiny-random",
        "max_steps": 12,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "learning_rate": 3e-2,
        "logging_steps": 1,
        "save_steps": 3,
        "save_total_limit": 1,
    }
    return TrainParams(**{**base, **overrides})


class LoraSnapshots(TrainerCallback):
    """The LoRA weights after every optimizer step, to compare the kept adapter with."""

    def __init__(self):
        self.by_step: dict[int, dict[str, torch.Tensor]] = {}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.by_step[state.global_step] = {
            k: v.detach().clone() for k, v in model.named_parameters() if "lora_" in k
        }


def test_validation_chooses_the_checkpoint_and_the_run_keeps_it(splits, runs_dir):
    # Validation rows whose gold completions are text the training never teaches: the more the model fits the
    # training labels, the less likely these become, so the loss is lowest early, not at the last step.
    validation = [{**r, "completion": " zebra umbrella quantum"} for r in splits["validation"]]
    snapshots = LoraSnapshots()
    params = tiny(run_name="chosen", select_on="validation", validation_per_task=3)
    result = train_lora(
        params, splits["train"], validation_rows=validation, callbacks=[snapshots], verbose=False
    )

    sel = result.selection
    assert [e["step"] for e in sel["evaluations"]] == [3, 6, 9, 12]
    assert sel["n_validation"] == 3 * len(TRAIN_TASKS)  # 3 rows of each trained task
    losses = {e["step"]: e["validation_loss"] for e in sel["evaluations"]}
    assert sel["selected_step"] == min(losses, key=losses.get) and sel["best_validation_loss"] == min(
        losses.values()
    )
    assert sel["selected_step"] < 12, f"the planted validation set should prefer an early step: {losses}"

    # the run's adapter is the chosen step's weights, not the last step's
    saved = load_adapter(result.run_dir)
    kept = {k.replace(".default", ""): v for k, v in saved.named_parameters() if "lora_" in k}
    chosen = {k.replace(".default", ""): v for k, v in snapshots.by_step[sel["selected_step"]].items()}
    last = {k.replace(".default", ""): v for k, v in snapshots.by_step[12].items()}
    assert kept.keys() == chosen.keys()
    assert all(torch.equal(kept[k], chosen[k]) for k in kept)
    assert any(not torch.equal(kept[k], last[k]) for k in kept)

    provenance = read_json(result.run_dir / "provenance.json")
    assert provenance["checkpoint_choice"] == {
        "select_on": "validation",
        "rows": "validation rows passed to train_lora",
        "selected_step": sel["selected_step"],
        "of_steps": 12,
    }
    summary = read_json(result.run_dir / "train_summary.json")
    assert summary["selection"]["selected_step"] == sel["selected_step"]
    assert f"kept the checkpoint of step {sel['selected_step']} of 12" in result.summary()


def test_a_last_step_run_says_so(splits, runs_dir):
    result = train_lora(tiny(run_name="last", max_steps=3), splits["train"], verbose=False)
    assert result.selection == {}
    choice = read_json(result.run_dir / "provenance.json")["checkpoint_choice"]
    assert choice == {"select_on": "last", "selected_step": 3}


def test_validation_choice_needs_validation_rows_of_the_trained_tasks(splits, runs_dir):
    other = [{**r, "task": "clickbait"} for r in splits["validation"]]
    with pytest.raises(ValueError, match="holds no row of the trained tasks"):
        train_lora(tiny(select_on="validation"), splits["train"], validation_rows=other, verbose=False)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())
    with pytest.raises(ParamError, match="select_on"):
        tiny(select_on="valid").validate()


def test_max_length_fit_is_the_longest_row_rounded_up(splits, runs_dir):
    rows = splits["train"]
    result = train_lora(tiny(run_name="fit", max_steps=2, max_length="fit"), rows, verbose=False)
    tokenizer = load_run_tokenizer(result.run_dir)
    lengths = sorted(len(tokenize_like_trl(tokenizer, r["prompt"], r["completion"])[0]) for r in rows)
    resolved = read_json(result.run_dir / "train_summary.json")["resolved"]
    assert resolved["token_lengths"]["max"] == lengths[-1]
    assert resolved["token_lengths"]["p99"] == lengths[math.ceil(0.99 * len(lengths)) - 1]
    assert (
        resolved["max_length"] == 64 * math.ceil(lengths[-1] / 64) and resolved["max_length"] >= lengths[-1]
    )
    assert (
        read_json(result.run_dir / "params.json")["max_length"] == "fit"
    )  # the request, the resolution beside


@pytest.mark.parametrize(
    ("value", "expected"),
    [("fit", "fit"), (" FIT ", "fit"), ("512", 512), (300, 300), ("8.5", None), ("fitt", None)],
)
def test_max_length_takes_an_integer_or_fit(value, expected):
    if expected is None:
        with pytest.raises(ParamError, match=r"TrainParams.max_length = .*expected an integer >= 2 or 'fit'"):
            tiny(max_length=value).validate()
    else:
        assert tiny(max_length=value).validate().max_length == expected


def test_full_fine_tuning_trains_every_weight_and_evaluates_like_an_adapter(splits, runs_dir):
    result = train_lora(tiny(run_name="full", max_steps=3, peft="none"), splits["train"], verbose=False)
    run = result.run_dir
    assert (run / "model" / "config.json").is_file() and not (run / "adapter").exists()
    assert result.trainable_params == result.total_params  # every weight, no adapter
    summary = read_json(run / "train_summary.json")["resolved"]
    assert summary["peft"] == "none" and summary["target_modules"] is None

    reloaded = load_adapter(run)
    assert "Peft" not in type(reloaded._tuned).__name__  # the whole model, no adapter inside
    tokenizer = load_run_tokenizer(run)
    batch = tokenizer([r["prompt"] for r in splits["train"][:2]], return_tensors="pt", padding=True)
    with torch.no_grad():
        tuned = reloaded(**batch).logits
        assert torch.allclose(result.model(**batch).logits, tuned, atol=1e-6)
        # base vs tuned, as evaluation asks for it: disable_adapter() gives the model the run started from
        fresh_base = AutoModelForCausalLM.from_pretrained(run / "base_model").eval()
        with reloaded.disable_adapter():
            base = reloaded(**batch).logits
        assert torch.allclose(base, fresh_base(**batch).logits, atol=1e-6)
        assert not torch.allclose(base, tuned, atol=1e-3)
        assert torch.equal(reloaded(**batch).logits, tuned)  # back to the tuned model after the block
    # evaluation accepts the run: the base model it started from, the trained model beside it
    train_dir, base_model = _check_train_run(EvalParams(run_name="e", data_run="d", train_run="full"))
    assert train_dir == run and base_model == "tiny-random"
