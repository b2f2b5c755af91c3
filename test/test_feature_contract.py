"""The feature contract: one YAML from topics to dataset to checkpoint to the policy node's inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from armpilot.dataset.loader import LeRobotV3Dataset
from armpilot.features import (ACTION, COLOR, DEPTH, GOAL, OBJECT, STATE, TASK, TRACKS, TRACKS_MASK, ContractError,
                               load_contract, unfed_features)
from armpilot.policies.base import Capabilities, node_feeds
from armpilot.policies.diffusion import DiffusionPolicy
from armpilot.policies.diffusion_checkpoint import CheckpointError
from armpilot.robot import CONTROLLED_JOINTS
from armpilot.ros_nodes import topics
from diffusion_data import IMAGE_SIDE, train_tiny, write_dataset



def test_every_key_the_code_uses_is_in_the_contract_with_a_real_topic():
    contract = load_contract()
    for key in (STATE, ACTION, OBJECT, GOAL, COLOR, DEPTH, TRACKS, TRACKS_MASK, TASK):
        assert key in contract, key
    assert contract[STATE].topic == topics.JOINT_STATES and contract[GOAL].topic == topics.POLICY_GOAL
    assert contract[COLOR].topic == topics.COLOR_IMAGE and contract[TRACKS].topic == topics.PERCEPTION_TRACKS
    assert not any(f.topic.startswith("/sim/") for f in contract.values()), "sim-only topics are never features"


def test_unknown_shape_symbols_are_refused(tmp_path):
    path = tmp_path / "features.yaml"
    path.write_text("features:\n  x: {dtype: float32, shape: [Q], topic: /x, msg_type: std_msgs/msg/String}\n")
    with pytest.raises(ContractError, match="unknown shape symbols"):
        load_contract(path)


def test_unfed_features_name_the_feature_and_its_topic():
    fed = node_feeds(Capabilities())
    assert unfed_features((STATE, OBJECT, GOAL), fed, {"J": 7}) == []
    problems = unfed_features((STATE, TRACKS, "observation.images.wrist"), fed, {"J": 7})
    assert any(TRACKS in p and topics.PERCEPTION_TRACKS in p for p in problems)
    assert any("observation.images.wrist" in p and "not in the feature contract" in p for p in problems)
    assert COLOR in node_feeds(Capabilities(needs_image=True)) and TASK in node_feeds(Capabilities(
        takes_instruction=True))
    stored = {STATE: {"shape": [6]}}
    assert "shape [6] in the checkpoint, [7] here" in unfed_features(stored, fed, {"J": 7})[0]


def test_the_converter_writes_the_contracts_features_and_the_loader_returns_them(tmp_path):
    root = write_dataset(tmp_path / "dataset", episodes=3)
    info = json.loads((root / "meta" / "info.json").read_text())
    contract = load_contract()
    sizes = {"J": len(CONTROLLED_JOINTS), "H": IMAGE_SIDE, "W": IMAGE_SIDE}
    for key in (STATE, ACTION, OBJECT, GOAL, COLOR, DEPTH):
        entry = info["features"][key]
        assert entry["dtype"] == contract[key].dtype and entry["shape"] == contract[key].resolved_shape(sizes)
        assert entry["info"]["ros.topic"] == contract[key].topic
    item = LeRobotV3Dataset(root, n_obs_steps=2, horizon=4)[0]
    for key in (STATE, OBJECT, GOAL):
        assert list(item[key].shape) == [2, *contract[key].resolved_shape(sizes)]
    assert list(item[ACTION].shape) == [4, len(CONTROLLED_JOINTS)]
    info["features"][GOAL]["shape"] = [4]  # a dataset that breaks the contract is refused, naming the feature
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="observation.goal"):
        LeRobotV3Dataset(root)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("contract")
    return train_tiny(root, episodes=6, steps=10, batch_size=8)


def test_a_checkpoint_stores_its_features_and_one_the_graph_cannot_feed_is_refused(checkpoint, tmp_path):
    meta = json.loads((checkpoint / "policy.json").read_text())
    assert set(meta["features"]) == {STATE, OBJECT, GOAL, ACTION}
    assert meta["features"][STATE]["shape"] == [len(CONTROLLED_JOINTS)]
    assert meta["features"][GOAL]["topic"] == topics.POLICY_GOAL
    policy = DiffusionPolicy(checkpoint, CONTROLLED_JOINTS)
    assert set(policy.required_features()) == {STATE, OBJECT, GOAL}
    meta["features"][TRACKS] = {"dtype": "float32", "shape": [32, 8, 3], "topic": topics.PERCEPTION_TRACKS}
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "policy.json").write_text(json.dumps(meta))
    (forged / "policy.safetensors").write_bytes((checkpoint / "policy.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"observation.tracks' from /perception/tracks"):
        DiffusionPolicy(forged, CONTROLLED_JOINTS)
