"""The sim runs any arm: one inside a larger robot (TIAGo, PR2) holds its pose, reports every joint the safety
node needs, and the scripted expert reaches with it; a separate gripper is reported; URDF inertias MuJoCo refuses
are made physical."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from armpilot.robot import ArmModel
from armpilot.sim.scene import make_inertias_physical
from armpilot.sim.world import SimWorld
from armpilot.tasks import get_task
from armpilot.tasks.demonstrations import run_expert_episode
from armpilot.tasks.experts import ScriptedExpert

from robot_variants import profile


@pytest.mark.parametrize("name", ["tiago", "pr2_right"])
def test_an_arm_inside_a_larger_robot_holds_home_and_reports_every_joint(name):
    """Before: MuJoCo refused the URDFs' inertias; with them fixed by hand, the shoulder's hull pressed on the torso
    (TIAGo's arm_1_joint stuck 0.4 rad off, the PR2's arm drifting 1.5 rad) and /joint_states lacked the torso
    and head, so the safety node refused every chunk (joint_state_mismatch)."""
    p = profile(name)
    arm = ArmModel(p)
    world = SimWorld(p, get_task("reach", p.reach), render=False)
    world.reset(0)
    names, start, _, _ = world.joint_state()
    assert set(names) == set(p.joints) | set(arm.passive_joints), "every movable, non-mimic joint is reported"
    reported = dict(zip(names, start))
    for joint, value in p.passive_positions.items():
        assert reported[joint] == pytest.approx(value), f"{joint} stands where passive_joints puts it"
    for _ in range(50):
        world.step(p.home, 10)  # 1 s holding home
    _, held, _, _ = world.joint_state()
    drift = np.abs(held - start)
    assert drift.max() < 0.01, f"{names[int(np.argmax(drift))]} drifted {drift.max():.3f} holding home"
    np.testing.assert_allclose(world.tcp_position(), arm.tcp_pose(world.joint_positions())[:3, 3], atol=2e-3)


def test_the_expert_reaches_with_an_arm_inside_a_larger_robot():
    p = profile("tiago")
    world = SimWorld(p, get_task("reach", p.reach), render=False)
    expert = ScriptedExpert(ArmModel(p), get_task("reach"))
    assert sum(run_expert_episode(world, expert, seed).success for seed in range(3)) >= 2


def test_a_separate_gripper_is_reported_and_held_open():
    p = profile("armpilot_six")
    world = SimWorld(p, get_task("reach", p.reach), render=False)
    world.reset(1)
    names, positions, _, _ = world.joint_state()
    assert names == p.joints + (p.gripper.joint,)
    assert positions[-1] == pytest.approx(p.gripper.open, abs=1e-6)


def test_inertias_mujoco_refuses_are_made_physical():
    xml = """<mujoco><worldbody>
      <body name="flat"><joint type="hinge"/><inertial pos="0 0 0" mass="0.1" diaginertia="0.001 0.001 0.01"/>
        <geom type="sphere" size="0.01" contype="0" conaffinity="0"/></body>
      <body name="negative" pos="0 0 1"><joint type="hinge"/>
        <inertial pos="0 0 0" mass="0.1" fullinertia="2e-8 3e-8 4e-8 6e-8 1e-8 8e-9"/>
        <geom type="sphere" size="0.01" contype="0" conaffinity="0"/></body>
      <body name="fine" pos="0 0 2"><joint type="hinge"/><inertial pos="0 0 0" mass="1" diaginertia="1 1 1"/>
        <geom type="sphere" size="0.01" contype="0" conaffinity="0"/></body>
    </worldbody></mujoco>"""
    spec = mujoco.MjSpec.from_string(xml)
    with pytest.raises(ValueError, match="inertia"):
        spec.compile()
    assert sorted(make_inertias_physical(spec)) == ["flat", "negative"]
    model = spec.compile()
    assert np.all(model.body_inertia[1:] > 0)
    assert model.body_inertia[model.body("fine").id].tolist() == [1.0, 1.0, 1.0]
