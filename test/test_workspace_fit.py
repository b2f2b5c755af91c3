"""The policy node's workspace fit: proposals held short of the table and the box, over every shipped profile."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from armpilot.policies.workspace_fit import WorkspaceFit
from armpilot.robot import ArmModel
from armpilot.robot_profile import load_profile, shipped_profiles
from armpilot.safety.limits import SafetyConfig, check_chunk
from armpilot.safety.workspace import WorkspaceChecker

TIMES = 0.1 * np.arange(1, 11)
KINEMATIC = ("table_clearance", "workspace")


@pytest.fixture(scope="module", params=sorted(shipped_profiles()))
def setup(request):
    arm = ArmModel(load_profile(shipped_profiles()[request.param]))
    names = arm.profile.joints
    limits = arm.limits.reordered(names)
    return arm, names, limits, WorkspaceFit(arm, names, limits), WorkspaceChecker(arm, self_collision=False)


def chunk_from(limits, start: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """(H, J) a straight run from ``start`` at ``fractions`` (J,) of each joint's velocity limit, clipped."""
    speed = np.where(np.isfinite(limits.velocity), limits.velocity, 1.0) * fractions
    return np.clip(start + TIMES[:, None] * speed, limits.lower, limits.upper)


@settings(max_examples=25, deadline=None)
@given(fractions=st.lists(st.floats(-1.0, 1.0), min_size=16, max_size=16))
def test_fitted_chunks_pass_the_kinematic_checks(setup, fractions):
    arm, names, limits, fit, checker = setup
    start = np.asarray(arm.profile.home, float)
    chunk = chunk_from(limits, start, np.array(fractions[: len(names)]))
    fitted = fit(TIMES, chunk[None], start)[0]
    verdict = check_chunk(SafetyConfig(self_collision=False), limits, names, 100.0, TIMES, fitted, 100.0, start,
                          workspace=checker)
    assert verdict.accepted or verdict.reason not in KINEMATIC, verdict.detail
    if fit.first_unsafe(TIMES, chunk) is None:
        np.testing.assert_array_equal(fitted, chunk)  # a safe chunk is left alone


def test_a_dive_into_the_table_stops_above_it(setup):
    arm, names, limits, fit, checker = setup
    start = np.asarray(arm.profile.home, float)
    home = arm.tcp_pose(start)
    below = home[:3, 3] * [1.0, 1.0, 0.0] + [0.0, 0.0, arm.profile.table_z - 0.05]  # 5 cm into the table
    goal = arm.ik(below, home[:3, :3], start, rotation_weight=0.05).positions
    assert arm.tcp_pose(goal)[2, 3] < arm.profile.table_z  # the dive does reach into the table
    chunk = start + np.linspace(0.1, 1.0, len(TIMES))[:, None] * (goal - start)
    first = fit.first_unsafe(TIMES, chunk)
    assert first is not None
    fitted = fit(TIMES, chunk[None], start)[0]
    hold = fit.hold_index(TIMES, chunk, first)
    assert hold < first
    np.testing.assert_array_equal(fitted[:hold + 1], chunk[:hold + 1])  # the safe part is kept ...
    held = fitted[hold] if hold >= 0 else start
    np.testing.assert_array_equal(fitted[hold + 1:], np.broadcast_to(held, fitted[hold + 1:].shape))  # ... then held
    assert fit.first_unsafe(TIMES, fitted) is None
    if hold >= 1:  # the stop at the hold is within the acceleration limits
        assert np.all(np.abs(fitted[hold] - fitted[hold - 1]) / 0.1 <= limits.acceleration * 0.1 + 1e-9)
    assert checker.check(fitted, names, self_collision=False) is None


def test_the_hold_moves_back_to_where_the_arm_can_stop(setup):
    arm, names, limits, fit, _ = setup
    speeds = np.zeros((len(TIMES), len(names)))
    speeds[:, 0] = limits.acceleration[0] * 0.1 * np.array([0.5, 0.5, 0.5, 2, 2, 2, 2, 2, 2, 2])  # fast into point 3 on
    chunk = np.cumsum(speeds * 0.1, axis=0)
    assert fit.hold_index(TIMES, chunk, 7) == 2  # the last point reached slowly enough to stop at
    assert fit.hold_index(TIMES, chunk, 3) == 2
    assert fit.hold_index(TIMES, chunk, 2) == 1
    assert fit.hold_index(TIMES, chunk, 0) == -1  # the first point is unsafe: the start


def test_one_safe_candidate_leaves_them_all_to_the_verifier(setup):
    arm, names, limits, fit, _ = setup
    start = np.asarray(arm.profile.home, float)
    home = arm.tcp_pose(start)
    below = home[:3, 3] * [1.0, 1.0, 0.0] + [0.0, 0.0, arm.profile.table_z - 0.05]
    goal = arm.ik(below, home[:3, :3], start, rotation_weight=0.05).positions
    dive = start + np.linspace(0.1, 1.0, len(TIMES))[:, None] * (goal - start)
    still = np.broadcast_to(start, dive.shape)
    both = np.stack([dive, still])
    np.testing.assert_array_equal(fit(TIMES, both, start), both)  # the verifier refuses the dive itself
    assert fit.first_unsafe(TIMES, fit(TIMES, both[:1], start)[0]) is None  # alone, the dive is cut


def test_a_hold_at_a_start_past_a_position_limit_is_inside_the_limits(setup):
    """The first point dives into the table, so every point is held at the start; measured, that start can sit past
    a position limit (a gripper squeezed to -0.003 m), and a hold there is refused as a position_limit."""
    arm, names, limits, fit, checker = setup
    start = np.asarray(arm.profile.home, float)
    home = arm.tcp_pose(start)
    below = home[:3, 3] * [1.0, 1.0, 0.0] + [0.0, 0.0, arm.profile.table_z - 0.05]
    dive = np.broadcast_to(arm.ik(below, home[:3, :3], start, rotation_weight=0.05).positions, (len(TIMES), len(names)))
    assert fit.first_unsafe(TIMES, dive) == 0
    bounded = np.flatnonzero(np.isfinite(limits.lower))[-1]
    start[bounded] = limits.lower[bounded] - 0.003
    fitted = fit(TIMES, dive[None], start)[0]
    assert np.all((fitted >= limits.lower) & (fitted <= limits.upper))
    verdict = check_chunk(SafetyConfig(self_collision=False), limits, names, 100.0, TIMES, fitted, 100.0, start,
                          workspace=checker)
    assert verdict.accepted or verdict.reason != "position_limit", verdict.detail
