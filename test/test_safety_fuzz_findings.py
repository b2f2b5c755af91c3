"""What a randomized attack on the safety core found in session 29 (about 9,000 node-like sequences, 139k chunks,
200k holds, 1,166 chunks bisected to the acceptance boundary): four ways a hold broke a limit or grew without
bound. Each test gives the numbers the old code produced and fails on it."""

from __future__ import annotations

import numpy as np

from armpilot.robot import ArmModel
from armpilot.safety.limits import SafetyConfig, check_chunk, finite_derivatives
from armpilot.safety.state_tracking import ArmState, CommandedPath, hold_command, hold_on_path
from armpilot.safety.stopping import MAX_STOP_POINTS, braking_distance, stop_trajectory
from robot_variants import profile

CFG = SafetyConfig()


def _limits(name: str):
    return ArmModel(profile(name)).limits


def test_a_stop_ending_at_a_limit_brakes_smoothly_to_it():
    """The Panda's finger closing at 26 mm/s, its braking ending 0.1 mm past the limit: the stop's points were
    clipped at the limit with the braking velocity kept before it, a kink whose finite-difference jerk was 48.5
    m/s^3 (2.4x the limit) and through which a controller's spline passed the limit."""
    lim = _limits("panda").reordered(("panda_finger_joint1",))
    v0 = np.array([0.02636])
    start = lim.upper[0] - braking_distance(v0, lim.acceleration, lim.jerk)[0] + 9.89e-5
    state = ArmState(lim.names)
    state.update(list(lim.names), np.array([start]), v0)
    stop = hold_command(state, lim, None, 0.0)
    assert np.all(stop.positions <= lim.upper) and stop.positions[-1, 0] == lim.upper[0]
    _, jerk = finite_derivatives(np.concatenate([[0.0], stop.times]), np.vstack([[start], stop.positions]))
    assert np.abs(jerk).max() <= lim.jerk[0], "no kink at the limit"
    slopes = np.diff(np.concatenate([[start], stop.positions[:, 0]])) / np.diff(np.concatenate([[0.0], stop.times]))
    assert np.all(stop.velocities[:-1, 0] <= slopes[:-1] * 2.0 + 1e-9), "velocities agree with the positions"


def test_a_chunk_accepted_near_a_limit_has_a_stop_that_never_leaves_it():
    """armpilot's shoulder pan approaching its lower limit at velocity_scale 0.046: a one-point chunk whose braking
    ended a hair under CLAMPED_OVERSHOOT past the limit was accepted, and its stop, rounded the other way, braked
    9.67e-5 rad past the limit and came back."""
    lim = _limits("armpilot")
    names = list(lim.names)
    cfg = SafetyConfig(velocity_scale=0.04622991870854272)
    now, j = 100.0, 0
    q_now = np.array([0.0, -0.3, 1.6, 0.0, 1.2, 0.0, 0.02])
    q_now[j] = -3.0471895004536314
    velocity = np.zeros(len(names))
    velocity[j] = -0.08123389048183059
    p0 = q_now.copy()
    p0[j] = -3.048814178263268
    path = CommandedPath(lim.velocity * cfg.tracking_allowance, lim.continuous)
    path.command(now - 1.0, now - 1.0, np.array([0.0, 2.0]), np.vstack([q_now - velocity, q_now + velocity]), None)
    verdict = check_chunk(cfg, lim, names, now, np.array([0.02]), p0[None], now, q_now, None, None, None,
                          path.reference(now, q_now), path.velocity(now))
    assert not verdict.accepted or verdict.sent_positions[:, j].min() >= lim.lower[j], (
        f"sent {lim.lower[j] - verdict.sent_positions[:, j].min():.2e} rad past the limit")


def test_a_hold_from_the_measured_arm_does_not_believe_a_speed_the_positions_do_not_show():
    """A UR5 at rest whose driver reports 180 on shoulder_pan (deg/s sent as rad/s): a hold from the measured arm
    (start-up, after a clock jump, the arm off the path) braked from the velocity limit and moved it 0.78 rad."""
    lim = CFG.enforced(_limits("ur5"))
    names = list(lim.names)
    home = np.array([0.0, -1.2, 1.5, -1.87, -1.5708, 0.0])
    state = ArmState(lim.names)
    state.update(names, home, np.zeros(6), 99.99)
    bogus = np.zeros(6)
    bogus[0] = 180.0
    state.update(names, home, bogus, 100.0)
    stop = hold_on_path(CommandedPath(lim.velocity * CFG.tracking_allowance, lim.continuous), state, lim, 100.0,
                        CFG.hold_tolerance())
    assert np.abs(stop.positions - home).max() < 1e-9, "the arm is at rest: the hold keeps it there"
    moving = home + np.array([0.01, 0, 0, 0, 0, 0])  # it really moves at 1 rad/s: the driver's speed stands
    state.update(names, moving, np.array([1.0, 0, 0, 0, 0, 0]), 100.01)
    stop = hold_command(state, lim, None, 100.01)
    assert stop.velocities[0, 0] > 0.5 and stop.positions[-1, 0] > moving[0] + 0.01


def test_a_stop_has_a_bounded_number_of_points():
    """A placeholder velocity of 10^4 rad/s braking at 1 rad/s^2: a 785,399-point, 4.4-hour hold (and with
    larger ratios an allocation of 586 GiB)."""
    stop = stop_trajectory(np.zeros(1), np.array([1e4]), np.ones(1), np.full(1, 1e9), np.full(1, -np.inf),
                           np.full(1, np.inf))
    assert len(stop.times) <= MAX_STOP_POINTS and np.isclose(stop.velocities[-1, 0], 0.0)
    huge = stop_trajectory(np.zeros(1), np.array([1e12]), np.ones(1), np.full(1, 1e30), np.full(1, -np.inf),
                           np.full(1, np.inf))
    assert len(huge.times) <= MAX_STOP_POINTS
