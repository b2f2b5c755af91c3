"""The experts approach a waypoint in joint space where the tool must turn over (a Kinova Jaco from its home)."""

from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest
from robot_variants import profile

from armpilot.robot import ArmModel
from armpilot.safety.workspace import WorkspaceChecker
from armpilot.tasks import get_task
from armpilot.tasks.experts import ExpertObservation, ScriptedExpert, down_reference
from armpilot.tasks.joint_space import JOINT_SPEED_FRACTION, joint_goal, tool_turn, toward_joint_goal


@pytest.fixture(scope="module")
def jaco() -> ArmModel:
    return ArmModel(profile("kinova_j2s6s200"))


def test_a_jaco_at_home_turns_its_tool_over_to_point_down(jaco):
    home = np.asarray(jaco.profile.home, float)
    assert tool_turn(jaco, home, pin.SE3(jaco.tcp_pose(home))) < 1e-6
    target = pin.SE3(down_reference(jaco), np.array([0.40, 0.18, 0.08]))
    assert tool_turn(jaco, home, target) > 2.0  # the home tool points up
    goal = joint_goal(jaco, home, target, 1.0, 50)
    assert np.linalg.norm(jaco.tcp_pose(goal)[:3, 3] - target.translation) < 1e-3
    continuous = jaco.limits.continuous
    assert np.all(np.abs(goal - home)[continuous] <= np.pi + 1e-9), "continuous joints the short way round"
    chunk = toward_joint_goal(jaco, home, goal, 10, 0.1)
    steps = np.abs(np.diff(np.vstack([home, chunk]), axis=0))
    assert np.all(steps <= JOINT_SPEED_FRACTION * jaco.limits.velocity * 0.1 + 1e-12)
    np.testing.assert_allclose(toward_joint_goal(jaco, home, goal, 400, 0.1)[-1], goal)


@pytest.mark.parametrize("target", [[0.402, 0.18, 0.079], [0.427, -0.092, 0.058]])
def test_the_jaco_reach_expert_never_folds_onto_itself(jaco, target):
    """Turning the tool over along its straight path from home folded link 2 onto links 5 and 6 within 0.4-0.8 s:
    the safety node refused every chunk (0/6 reach episodes through the graph)."""
    target = np.asarray(target, float)
    checker = WorkspaceChecker(jaco, table_clearance=0.003)
    expert = ScriptedExpert(jaco, get_task("reach", jaco.profile.reach))
    q = np.asarray(jaco.profile.home, float)
    for step in range(120):  # a controller that follows two points of each chunk
        chunk = expert.act(ExpertObservation(0.2 * step, q, target, 0.0, target))
        violation = checker.check(chunk, jaco.profile.joints, dict(jaco.passive_defaults))
        assert violation is None, f"step {step}: {violation.detail}"
        q = chunk[1]
    assert np.linalg.norm(jaco.tcp_pose(q)[:3, 3] - target) < 0.004


@pytest.mark.parametrize("name", ["armpilot", "panda", "ur5", "so101", "z1", "xarm7"])
def test_arms_whose_home_tool_points_down_keep_the_straight_tool_path(name):
    """The approach axis counts, not a turn about it: a grasp's yaw (up to 1.5 rad) tipped the SO-101 (5 joints:
    its tool cannot take every orientation) into joint-space moves, and its pick from 6/6 to 4/6."""
    from armpilot.tasks.experts import turned_about_z
    from armpilot.tasks.joint_space import JOINT_SPACE_TURN

    arm = ArmModel(profile(name))
    home = np.asarray(arm.profile.home, float)
    for yaw in (0.0, 0.8, 1.5):
        target = pin.SE3(turned_about_z(down_reference(arm), yaw), arm.tcp_pose(home)[:3, 3])
        assert tool_turn(arm, home, target) < JOINT_SPACE_TURN
