"""The diffusion policy with a camera (no ROS): the contract it stores, what it needs, what it learns from pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from armpilot.features import COLOR, STATE
from armpilot.policies.base import Observation
from armpilot.policies.diffusion import DiffusionPolicy
from armpilot.policies.diffusion_checkpoint import CheckpointError
from armpilot.robot import CONTROLLED_JOINTS
from armpilot.train_command import input_overrides
from diffusion_data import IMAGE_SIDE, goal_image, train_tiny

Q0 = np.array([0.0, -0.3, 1.6, 0.0, 1.2, 0.0, 0.04])


def _observation(image: np.ndarray | None) -> Observation:
    # the goal and object fields carry nothing here: the checkpoint reads the state and the camera only
    blank = np.zeros(3)
    now = Observation(1.0, CONTROLLED_JOINTS, Q0, blank, 0.0, blank, image=image)
    return Observation(1.0, CONTROLLED_JOINTS, Q0, blank, 0.0, blank, (now,), image)


@pytest.fixture(scope="module")
def camera_checkpoint(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("camera"), episodes=16, steps=150, batch_size=32,
                      obs_keys=(STATE,), image_keys=(COLOR,), image_size=IMAGE_SIDE, image_crop=IMAGE_SIDE - 4)


def test_the_checkpoint_stores_the_camera_and_needs_it(camera_checkpoint):
    policy = DiffusionPolicy(camera_checkpoint, CONTROLLED_JOINTS, horizon=5, chunk_dt=1 / 15, sampler="ddim",
                             steps=5)
    assert policy.capabilities.needs_image
    stored = policy.required_features()
    assert set(stored) == {STATE, COLOR} and stored[COLOR]["shape"] == [IMAGE_SIDE, IMAGE_SIDE, 3]
    with pytest.raises(ValueError, match=COLOR):
        policy.predict_action_chunk(_observation(None))
    big = np.repeat(np.repeat(goal_image(0.3), 15, axis=0), 20, axis=1)  # 480x640: any camera size is resized
    assert policy.sample_candidates(_observation(big), 4).shape == (4, 5, len(CONTROLLED_JOINTS))


def test_the_policy_finds_the_goal_side_from_pixels_alone(camera_checkpoint):
    """The goal is not an input: only the white square's side tells where joint 0 must go."""
    policy = DiffusionPolicy(camera_checkpoint, CONTROLLED_JOINTS, horizon=5, chunk_dt=1 / 15, sampler="ddim",
                             steps=10, seed=3)
    left = policy.sample_candidates(_observation(goal_image(-0.4)), 8)[:, -1, 0]
    right = policy.sample_candidates(_observation(goal_image(0.4)), 8)[:, -1, 0]
    assert np.median(left) < -0.05 < 0.05 < np.median(right), (left, right)


def test_a_graph_that_feeds_no_camera_is_named(camera_checkpoint, monkeypatch):
    import armpilot.policies.diffusion as diffusion

    monkeypatch.setattr(diffusion, "node_feeds", lambda capabilities: frozenset({STATE}))
    with pytest.raises(CheckpointError, match="/camera/camera/color/image_raw"):
        DiffusionPolicy(camera_checkpoint, CONTROLLED_JOINTS)


def test_inputs_option_names_contract_features():
    assert input_overrides("", 96) == {}
    overrides = input_overrides("state, goal,color", 96)
    assert overrides["obs_keys"] == (STATE, "observation.goal") and overrides["image_keys"] == (COLOR,)
    assert overrides["image_crop"] == 84
    with pytest.raises(ValueError, match="depth"):
        input_overrides("state,depth", 96)
