"""Tool-space actions (``action_space: tool``): FK/IK round trips on every robot profile, offsets from the TCP,
training and inference through the diffusion backend."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from armpilot.features import GOAL, POINTS, POINTS_MASK, STATE
from armpilot.policies.base import Observation
from armpilot.policies.diffusion import DiffusionPolicy
from armpilot.policies.diffusion_checkpoint import CheckpointError, load_policy
from armpilot.policies.diffusion_config import DiffusionConfig
from armpilot.policies.diffusion_training import TrainOptions, train
from armpilot.policies.tool_frame import ToolFrame, rotation_from_6d
from armpilot.robot import CONTROLLED_JOINTS, ArmModel
from armpilot.robot_profile import load_profile, shipped_profiles
from diffusion_data import STEP, TINY, write_dataset


@pytest.fixture(scope="module", params=sorted(shipped_profiles()))
def arm(request) -> ArmModel:
    return ArmModel(load_profile(request.param))


def _near_home(arm: ArmModel, offsets: list[float]) -> np.ndarray:
    """(J,) home moved by ``offsets`` (rad, or the fraction of a prismatic joint's range), within the limits."""
    home = np.asarray(arm.profile.home, float)
    delta = np.array(offsets[: len(home)])
    span = np.where(np.isfinite(arm.limits.upper - arm.limits.lower), arm.limits.upper - arm.limits.lower, 2.0)
    delta = np.where(span < 0.5, delta * span * 0.2, delta)
    return np.clip(home + delta, arm.limits.lower, arm.limits.upper)


@settings(max_examples=20, deadline=None)
@given(offsets=st.lists(st.floats(-0.25, 0.25), min_size=8, max_size=8),
       step=st.lists(st.floats(-0.03, 0.03), min_size=8, max_size=8))
def test_ik_gives_back_the_pose_of_any_chunk_in_any_joint_order(arm, offsets, step):
    """Joints -> tool frames -> joints reaches the same TCP pose (and the passthrough joints), with the columns
    in reverse order too."""
    q0 = _near_home(arm, offsets)
    chunk = np.stack([np.clip(q0 + k * np.array(step[: len(q0)]), arm.limits.lower, arm.limits.upper)
                      for k in range(1, 6)])  # (5, J) a short straight run
    for names in (arm.joint_names, arm.joint_names[::-1]):
        order = [arm.joint_names.index(n) for n in names]
        frame = ToolFrame(arm, names)
        anchor = frame.poses(q0[order][None])[0, :3]
        tool = frame.actions(chunk[:, order][None], anchor[None])
        assert tool.shape == (1, 5, frame.dim)
        back = frame.joints(tool, anchor, q0[order])[0]
        for k in range(len(chunk)):
            want = arm.tcp_pose(chunk[k])
            got = arm.tcp_pose(back[k][np.argsort(order)])
            assert np.linalg.norm(got[:3, 3] - want[:3, 3]) < 2e-3
            if len(arm.profile.arm_joints) >= 6:
                assert np.abs(got[:3, :3] - want[:3, :3]).max() < 1e-2
        passthrough = [names.index(n) for n in frame.passthrough]
        assert np.allclose(back[:, passthrough], chunk[:, order][:, passthrough])


def test_every_position_is_an_offset_from_the_latest_tcp():
    arm = ArmModel()
    frame = ToolFrame(arm, CONTROLLED_JOINTS)
    q = np.asarray(arm.profile.home, float)
    state = np.stack([q, q + [0.05, 0, 0, 0, 0, 0, 0]])[None]  # (1, 2, J)
    tcp = arm.tcp_pose(state[0, 1])[:3, 3]
    points = np.zeros((1, 4, 3), np.float32) + [0.5, 0.1, 0.05]
    mask = np.array([[True, True, False, False]])
    goal = np.tile([0.45, -0.1, 0.02], (1, 2, 1))
    out, anchor = frame.observation({STATE: state, GOAL: goal, POINTS: points, POINTS_MASK: mask})
    assert np.allclose(anchor[0], tcp)
    assert np.allclose(out[STATE][0, 1, :3], 0.0, atol=1e-6)  # the latest TCP is the origin
    assert np.linalg.norm(out[STATE][0, 0, :3]) > 0.01  # the frame before is seen from there
    assert np.allclose(out[GOAL][0], goal[0] - tcp, atol=1e-6)
    assert np.allclose(out[POINTS][0, :2], points[0, :2] - tcp, atol=1e-6)
    assert np.allclose(out[POINTS][0, 2:], points[0, 2:])  # masked slots are left alone
    assert np.allclose(out[STATE][0, :, 9], q[6])  # the gripper as it is
    assert np.allclose(rotation_from_6d(out[STATE][0, 1, 3:9]), arm.tcp_pose(state[0, 1])[:3, :3], atol=1e-5)


def test_tool_space_refuses_relative_actions_and_unknown_spaces():
    with pytest.raises(ValueError, match="tool actions are offsets"):
        DiffusionConfig(joint_names=CONTROLLED_JOINTS, action_space="tool", relative_actions=True)
    with pytest.raises(ValueError, match="unknown action space"):
        DiffusionConfig(joint_names=CONTROLLED_JOINTS, action_space="cartesian")
    with pytest.raises(ValueError, match="are not robot"):
        ToolFrame(ArmModel(), CONTROLLED_JOINTS[:-1])


@pytest.fixture(scope="module")
def tool_policy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tool")
    dataset = write_dataset(root / "dataset")
    options = TrainOptions(dataset, root / "policy", steps=400, batch_size=64, learning_rate=3e-3, warmup_steps=20,
                           ema_decay=0.9, save_every=400, seed=0, threads=1,
                           config={**TINY, "action_space": "tool"})
    return Path(train(options)["output"])


def _observation(goal_x: float) -> Observation:
    q = np.array([0.0, -0.3, 1.6, 0.0, 1.2, 0.0, 0.04])
    goal = np.array([goal_x, 0.1, 0.05])
    now = Observation(1.0, CONTROLLED_JOINTS, q, goal, 0.0, goal)
    return Observation(1.0, CONTROLLED_JOINTS, q, goal, 0.0, goal, (now,))


def test_a_tool_space_policy_learns_the_demonstrations_and_commands_joints(tool_policy):
    model, meta = load_policy(tool_policy)
    assert model.config.action_space == "tool" and model.config.tool_passthrough == ("gripper_joint",)
    assert len(meta["stats"]["action"]["min"]) == 10  # position 3, rotation 6, gripper
    policy = DiffusionPolicy(tool_policy, CONTROLLED_JOINTS, horizon=5, chunk_dt=1 / 15, sampler="ddim", steps=10)
    for goal_x in (-0.4, 0.4):
        chunk = policy.predict_action_chunk(_observation(goal_x))
        assert chunk.shape == (5, 7)
        # the demonstrations turn joint 0 by STEP per frame toward the goal's side
        assert np.sign(chunk[-1, 0]) == np.sign(goal_x) and abs(chunk[-1, 0]) > STEP
        assert np.allclose(chunk[:, 1:6], [-0.3, 1.6, 0.0, 1.2, 0.0], atol=0.15)
        assert np.allclose(chunk[:, 6], 0.04, atol=1e-6)
    candidates = policy.sample_candidates(_observation(0.4), 4)
    assert candidates.shape == (4, 5, 7)
    batch = policy.sample_batch([_observation(-0.4), _observation(0.4)], [1, 2])
    assert [b.shape for b in batch] == [(1, 5, 7), (2, 5, 7)]
    assert np.sign(batch[0][0, -1, 0]) == -1 and np.all(np.sign(batch[1][:, -1, 0]) == 1)


def test_a_robot_with_other_joints_outside_its_arm_is_refused(tool_policy, tmp_path):
    folder = tmp_path / "policy"
    shutil.copytree(tool_policy, folder)
    meta = json.loads((folder / "policy.json").read_text())
    meta["config"]["tool_passthrough"] = ["wrist_3_joint"]
    (folder / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="as they are"):
        DiffusionPolicy(folder, CONTROLLED_JOINTS)
