"""The VLA backend with a tiny random PaliGemma built here: load, fine-tune (also under torchrun), serve, refuse."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from armpilot.dataset.loader import LeRobotV3Dataset
from armpilot.policies.base import Observation
from armpilot.policies.diffusion_checkpoint import CheckpointError
from armpilot.policies.policy_server import PolicyServer, ServerConfig
from armpilot.policies.remote import RemotePolicy, serve_policy
from armpilot.policies.vla import VLAPolicy
from armpilot.policies.vla_training import VLATrainOptions, build_tiny_vla, finetune_vla
from armpilot.robot import CONTROLLED_JOINTS
from diffusion_data import write_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("vla")
    dataset = write_dataset(root / "dataset", episodes=8)
    report = finetune_vla(VLATrainOptions(dataset, root / "model", steps=80, batch_size=16, learning_rate=3e-3))
    return dataset, report


def _observation(image: bool = True) -> Observation:
    q = np.array([0.0, -0.3, 1.6, 0.0, 1.2, 0.0, 0.04])
    goal = np.array([0.3, 0.1, 0.05])
    return Observation(1.0, CONTROLLED_JOINTS, q, goal, 0.0, goal, (),
                       np.full((48, 64, 3), 120, np.uint8) if image else None)


def test_fine_tuning_learns_the_action_tokens(trained):
    _, report = trained
    assert report["final_loss"] < 0.5 * report["first_loss"]
    folder = Path(report["output"])
    expected = {"model.safetensors", "config.json", "tokenizer.json", "armpilot_vla.json"}
    assert expected <= {p.name for p in folder.iterdir()}
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))  # safetensors only


def test_vla_proposes_candidates_in_the_demonstrated_range(trained):
    _, report = trained
    policy = VLAPolicy(Path(report["output"]), CONTROLLED_JOINTS, 10, 0.1, "reach the ball")
    chunk = policy.predict_action_chunk(_observation())
    assert chunk.shape == (10, 7) and np.all(np.isfinite(chunk))
    meta = json.loads((Path(report["output"]) / "armpilot_vla.json").read_text())
    low, high = np.array(meta["action_tokenizer"]["low"]), np.array(meta["action_tokenizer"]["high"])
    # actions are tokenised as offsets from the joint state, within the offsets the data showed
    offsets = chunk - _observation().joint_positions
    assert meta["relative_actions"] and np.all(offsets >= low - 1e-6) and np.all(offsets <= high + 1e-6)
    dataset, _ = trained
    loaded = LeRobotV3Dataset(dataset, n_obs_steps=1, horizon=16)
    stride, state, action = 3, loaded.column("observation.state"), loaded.column("action")
    first = loaded.episode_bounds[0]
    direct = np.stack([action[min(i + stride * k - 1, first[1] - 1)] - state[i]
                       for i in range(*first) for k in range(1, 6)])
    assert np.all(direct.min(0) >= low - 1e-6) and np.all(direct.max(0) <= high + 1e-6)
    assert policy.sample_candidates(_observation(False), 4).shape == (4, 10, 7)  # no image: a black frame


def test_bad_models_and_instructions_are_refused(trained, tmp_path):
    _, report = trained
    with pytest.raises(CheckpointError, match="never downloaded"):
        VLAPolicy(tmp_path / "absent", CONTROLLED_JOINTS)
    with pytest.raises(CheckpointError, match="trained on joints"):
        VLAPolicy(Path(report["output"]), CONTROLLED_JOINTS[:6], instruction="reach the ball")
    policy = VLAPolicy(Path(report["output"]), CONTROLLED_JOINTS, instruction="reach the ball")
    with pytest.raises(ValueError, match="instruction"):
        policy.set_instruction("   ")
    from transformers import GPT2Config, GPT2LMHeadModel

    text_only = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=50)).save_pretrained(text_only)
    (text_only / "armpilot_vla.json").write_text((Path(report["output"]) / "armpilot_vla.json").read_text())
    with pytest.raises(CheckpointError, match="'gpt2' model .* not a vision-language"):
        VLAPolicy(text_only, CONTROLLED_JOINTS)


def test_the_vla_behind_the_policy_server(trained):
    _, report = trained
    policy = VLAPolicy(Path(report["output"]), CONTROLLED_JOINTS, 10, 0.1, "reach the ball")
    infer, metadata = serve_policy(policy, CONTROLLED_JOINTS, "vla")
    with PolicyServer(infer, metadata, ServerConfig(port=0)) as server:
        remote = RemotePolicy(f"127.0.0.1:{server.address[1]}", CONTROLLED_JOINTS, timeout=10.0,
                              instruction="push the box to the goal")
        candidates = remote.sample_candidates(_observation(), 3)
        assert candidates.shape == (3, 10, 7)
        assert policy.instruction == "push the box to the goal"  # the prompt travelled with the request


def test_build_tiny_vla_is_small_and_seeded(tmp_path):
    low, high = np.zeros(7), np.ones(7)
    a = build_tiny_vla(tmp_path / "a", CONTROLLED_JOINTS, low, high, seed=3)
    b = build_tiny_vla(tmp_path / "b", CONTROLLED_JOINTS, low, high, seed=3)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "model.safetensors").stat().st_size < 1_000_000


@pytest.mark.timeout(240)
def test_training_under_torchrun_uses_ddp(trained, tmp_path):
    dataset, _ = trained
    with socket.socket() as probe:  # a free port: a fixed one collides with another run on the same machine
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
               "-m", "armpilot.cli", "train-vla", str(dataset), "--output", str(tmp_path / "ddp"), "--steps", "5",
               "--batch-size", "4"]
    # a session of its own, so that a timeout ends torchrun's workers too (killing torchrun alone orphans them)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        _out, err = process.communicate(timeout=200)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _out, err = process.communicate()
        pytest.fail(f"torchrun did not finish within 200 s: {err[-3000:]}")
    assert process.returncode == 0, err[-3000:]
    report = json.loads((tmp_path / "ddp" / "report.json").read_text())
    assert report["world_size"] == 2 and report["steps"] == 5
