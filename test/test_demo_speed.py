"""Demonstrations faster than the arm's velocity limits are named when converting."""

from __future__ import annotations

import numpy as np

from armpilot.dataset.convert import check_speeds
from armpilot.dataset.demo_speed import max_joint_speeds, recorded_velocity_limits, speed_warning, too_fast
from armpilot.robot_profile import ROBOT_KEY, URDF_HASH_KEY, load_profile, robot_identity


def test_max_joint_speeds_are_the_largest_finite_differences():
    t = np.array([0.0, 0.1, 0.2, 0.4])
    q = np.array([[0.0, 1.0], [0.1, 1.0], [0.4, 0.9], [0.4, 0.9]])
    assert np.allclose(max_joint_speeds(t, q), [3.0, 1.0])
    assert np.array_equal(max_joint_speeds(t[:1], q[:1]), [0.0, 0.0])


def test_only_joints_beyond_the_tolerance_are_too_fast():
    limits = {"a": 2.0, "b": 2.0}
    fast = too_fast({"a": 2.09, "b": 2.2, "c": 9.0}, limits)  # c: no limit known, not judged
    assert fast == {"b": (2.2, 2.0)}
    assert "b 2.20 (limit 2)" in speed_warning(fast) and speed_warning({}) == ""


def test_limits_come_from_the_recorded_robot_and_its_urdf():
    panda = load_profile("panda")
    limits, why = recorded_velocity_limits(robot_identity(panda))
    assert why == "" and limits["panda_joint2"] == panda.urdf_joints["panda_joint2"].velocity > 0
    assert recorded_velocity_limits({})[1] == "the bags name no robot"
    other_urdf = {ROBOT_KEY: "panda", URDF_HASH_KEY: "0" * 12}
    assert "is not the profile's" in recorded_velocity_limits(other_urdf)[1]
    assert "could not be loaded" in recorded_velocity_limits({ROBOT_KEY: "no-such-arm"})[1]


def test_the_summary_line_names_a_joint_recorded_too_fast():
    identity = robot_identity(load_profile("panda"))
    limit = load_profile("panda").urdf_joints["panda_joint2"].velocity
    line = check_speeds({"panda_joint1": 0.5, "panda_joint2": 1.2 * limit}, identity)
    assert line.startswith("WARNING") and "panda_joint2" in line and "panda_joint1" not in line
    assert check_speeds({"panda_joint2": 0.5 * limit}, identity) == "joint speeds within the velocity limits of 'panda'"
