"""The shipped accelerate configs load and resolve with accelerate's own launcher code and plugin classes.

DeepSpeed and FSDP cannot start without GPUs (and deepspeed is not installed here): what is checked is
everything before that, i.e. what `accelerate launch` would hand the training processes.
"""

from __future__ import annotations

import os
from unittest import mock

import pytest
import torch
from accelerate.commands.config.config_args import ClusterConfig
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DeepSpeedPlugin, DistributedType, FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

from socialite_utils.training.cli import main as train_main
from socialite_utils.training.distributed import ACCELERATE_CONFIGS, accelerate_config_path, launch_args


def resolved(name: str):
    parser = launch_command_parser()
    args = parser.parse_args([*launch_args(name), "-m", "socialite_utils.training"])
    return _validate_launch_command(args)


def test_every_config_loads_as_an_accelerate_cluster_config():
    kinds = {
        n: ClusterConfig.from_yaml_file(accelerate_config_path(n)).distributed_type
        for n in ACCELERATE_CONFIGS
    }
    assert kinds == {
        "ddp": DistributedType.MULTI_GPU,
        "deepspeed": DistributedType.DEEPSPEED,
        "fsdp": DistributedType.FSDP,
    }
    with pytest.raises(ValueError, match="unknown accelerate config 'zero3'"):
        accelerate_config_path("zero3")


def test_ddp_config_resolves_to_a_multi_gpu_launch():
    args, _, _ = resolved("ddp")
    assert args.multi_gpu and not args.use_deepspeed and not args.use_fsdp and args.num_processes == 2
    # precision is the kit's choice per GPU (TrainParams -> bf16/fp16 flags), not fixed in the config
    assert prepare_multi_gpu_env(args)["ACCELERATE_MIXED_PRECISION"] == "no"


def test_deepspeed_config_resolves_to_zero_stage_2_with_the_shipped_json():
    args, defaults, _ = resolved("deepspeed")
    assert args.use_deepspeed
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
    _, env = prepare_deepspeed_cmd_env(args)
    assert env["ACCELERATE_DEEPSPEED_CONFIG_FILE"] == str(
        accelerate_config_path("deepspeed").parent / "ds_zero2.json"
    )
    with mock.patch.dict(os.environ, env):
        plugin = DeepSpeedPlugin()  # accelerate's own reader of the JSON (deepspeed itself not needed)
    assert plugin.zero_stage == 2
    config = plugin.hf_ds_config.config
    assert config["train_micro_batch_size_per_gpu"] == "auto"  # filled from TrainParams by transformers
    assert config["gradient_accumulation_steps"] == "auto"


def test_fsdp_config_resolves_to_full_shard_with_a_full_state_dict():
    args, _, _ = resolved("fsdp")
    assert args.use_fsdp
    env = prepare_multi_gpu_env(args)
    assert env["FSDP_SHARDING_STRATEGY"] == "FULL_SHARD" and env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT"
    assert env["FSDP_USE_ORIG_PARAMS"] == "true"
    with mock.patch.dict(os.environ, env):
        if torch.cuda.is_available():
            assert FullyShardedDataParallelPlugin().use_orig_params
        else:  # the documented limit of this CPU: FSDP needs an accelerator to start
            with pytest.raises(RuntimeError, match="no available devices"):
                FullyShardedDataParallelPlugin()


def test_print_config_gives_the_launch_arguments(capsys):
    assert train_main(["--print-config", "deepspeed"]) == 0
    out = capsys.readouterr().out.split()
    assert out[0] == "--config_file" and out[1].endswith("deepspeed_zero2.yaml") and os.path.exists(out[1])
    assert out[2] == "--deepspeed_config_file" and out[3].endswith("ds_zero2.json") and os.path.exists(out[3])
