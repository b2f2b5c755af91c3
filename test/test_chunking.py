"""Executing chunks on a clock: dropping past points, temporal ensembling (pure numpy)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from armpilot.policies.chunking import (ACCELERATION_FIT_MARGIN, blend_with_previous, drop_past_points,
                                       fit_to_limits, limit_acceleration, limit_speed, resample_in_time)
from armpilot.policies.realtime import ExecutingChunk
from armpilot.robot import ArmModel
from armpilot.safety.limits import finite_derivatives, junction_derivatives

TIMES = 0.1 * np.arange(1, 11)


@given(age=st.floats(0.0, 1.2), margin=st.floats(0.0, 0.2))
def test_only_points_still_ahead_are_kept(age, margin):
    candidates = np.random.default_rng(0).normal(size=(3, 10, 7))
    times, kept = drop_past_points(TIMES, candidates, age, margin)
    assert np.all(times > age + margin)
    assert kept.shape == (3, len(times), 7)
    assert np.array_equal(kept, candidates[:, len(TIMES) - len(times):])  # a suffix, order kept


@given(age=st.floats(0.0, 1.2), margin=st.floats(0.0, 0.2))
def test_a_chunk_for_a_standing_arm_starts_when_it_is_ready(age, margin):
    candidates = np.random.default_rng(0).normal(size=(3, 10, 7))
    times, kept = drop_past_points(TIMES, candidates, age, margin, standing=True)
    # nothing of it can have been executed: only points due within the margin of now are skipped
    ahead = TIMES + age > age + margin  # TIMES > margin, in the same floating point
    assert np.array_equal(kept, candidates[:, ahead]) and np.all(times > age + margin)
    assert np.allclose(times, TIMES[ahead] + age)


def test_zero_weight_or_no_previous_is_plain_receding_horizon():
    new = np.ones((2, 10, 7))
    assert np.array_equal(blend_with_previous(TIMES, new, 5.0, None, 0.5), new)
    previous = (4.8, TIMES, np.zeros((10, 7)))
    assert np.array_equal(blend_with_previous(TIMES, new, 5.0, previous, 0.0), new)


def test_blend_mixes_only_where_the_previous_chunk_covers_the_instant():
    new = np.ones((2, 10, 7))
    previous = (4.8, TIMES, np.zeros((10, 7)))  # covers 4.9 .. 5.8 s
    out = blend_with_previous(TIMES, new, 5.0, previous, 0.25)  # new points at 5.1 .. 6.0 s
    covered = 5.0 + TIMES <= 5.8 + 1e-9
    assert np.allclose(out[:, covered], 0.75)
    assert np.allclose(out[:, ~covered], 1.0)
    assert np.array_equal(new, np.ones((2, 10, 7)))  # input untouched


def test_blend_interpolates_the_previous_plan_in_time():
    ramp = np.repeat(np.arange(10.0)[:, None], 7, axis=1)  # previous plan: joint = index
    previous = (4.95, TIMES, ramp)  # its points at 5.05, 5.15, ...
    out = blend_with_previous(TIMES, np.zeros((1, 10, 7)), 5.0, previous, 1.0)
    assert np.isclose(out[0, 0, 0], 0.5)  # 5.1 s is halfway between its points 0 and 1


def test_resample_in_time_keeps_samples_and_holds_the_ends():
    values = np.random.default_rng(1).normal(size=(3, 5, 7))
    source = 0.2 * np.arange(1, 6)
    assert np.allclose(resample_in_time(source, source, values), values)
    out = resample_in_time(np.array([0.0, 0.3, 2.0]), source, values)
    assert out.shape == (3, 3, 7)
    assert np.allclose(out[:, 0], values[:, 0]) and np.allclose(out[:, 2], values[:, -1])
    assert np.allclose(out[:, 1], (values[:, 0] + values[:, 1]) / 2)


@given(seed=st.integers(0, 10_000), spread=st.floats(0.01, 5.0))
def test_limit_speed_keeps_every_segment_within_the_velocity_limits(seed, spread):
    rng = np.random.default_rng(seed)
    candidates = rng.normal(scale=spread, size=(3, 10, 4))
    start, vmax = rng.normal(size=4), np.array([0.5, 1.0, 2.0, 0.1])
    continuous = np.array([False, True, False, False])
    out = limit_speed(TIMES, candidates, start, vmax, continuous)
    steps = np.diff(np.concatenate([np.broadcast_to(start, (3, 1, 4)), out], axis=1), axis=1)
    assert np.all(np.abs(steps) <= vmax * 0.1 + 1e-12)
    slow = np.all(np.abs(np.diff(np.concatenate([np.broadcast_to(start, (3, 1, 4)), candidates], axis=1),
                                 axis=1)[..., ~continuous]) <= vmax[~continuous] * 0.1, axis=(1, 2))
    np.testing.assert_array_equal(out[slow][..., ~continuous], candidates[slow][..., ~continuous])  # feasible: kept


def test_limit_speed_goes_the_short_way_round_a_continuous_joint_and_keeps_nan():
    candidates = np.array([[[-3.1], [-3.0]], [[np.nan], [0.0]]])
    out = limit_speed(np.array([0.1, 0.2]), candidates, np.array([3.1]), np.array([1.0]), np.array([True]))
    np.testing.assert_allclose(out[0, :, 0], [2 * np.pi - 3.1, 2 * np.pi - 3.0])  # across +pi, not through 0
    assert np.isnan(out[1]).all()


def test_fit_to_limits_keeps_a_wild_chunk_inside_the_position_and_velocity_limits():
    limits = ArmModel().limits
    start = (limits.lower + limits.upper) / 2
    wild = np.random.default_rng(1).normal(scale=3.0, size=(4, 10, len(start)))
    fitted = fit_to_limits(TIMES, wild, start, limits)
    assert np.all((fitted >= limits.lower) & (fitted <= limits.upper))
    steps = np.diff(np.concatenate([np.broadcast_to(start, (4, 1, len(start))), fitted], axis=1), axis=1)
    assert np.all(np.abs(steps) <= limits.velocity * 0.1 + 1e-9)


def test_fit_to_limits_leaves_continuous_joints_finite():
    """An arm with continuous joints (a Kinova Jaco: +-inf position limits) got NaN for every point of every
    joint from ``keep_braking_inside`` (the middle of an unbounded range is NaN), so the safety node refused
    every chunk of every policy as not finite."""
    limits = ArmModel().limits
    continuous = np.zeros(len(limits.names), bool)
    continuous[[0, 4]] = True
    limits = replace(limits, lower=np.where(continuous, -np.inf, limits.lower),
                     upper=np.where(continuous, np.inf, limits.upper))
    start = np.where(continuous, 5.0, (ArmModel().limits.lower + ArmModel().limits.upper) / 2)
    chunk = start + np.outer(TIMES, np.full(len(start), 0.3))[None]
    fitted = fit_to_limits(TIMES, chunk, start, limits)
    assert np.all(np.isfinite(fitted))
    np.testing.assert_allclose(fitted[0, :, continuous], chunk[0, :, continuous])


VMAX, AMAX, JMAX = np.array([1.0, 2.0, 0.5]), np.array([5.0, 10.0, 2.0]), np.array([100.0, 200.0, 40.0])


@given(seed=st.integers(0, 10_000), spread=st.floats(0.01, 3.0), lead=st.floats(0.02, 0.1))
def test_limit_acceleration_joins_the_controller_within_the_acceleration_and_jerk_limits(seed, spread, lead):
    """A planner's chunk that starts at full speed (or anywhere) is followed from the controller's motion: the
    finite differences the safety node measures, the junction included (steady motion before), stay within
    the limits."""
    rng = np.random.default_rng(seed)
    times = lead + 0.1 * np.arange(10)
    start, velocity = rng.normal(size=3), rng.uniform(-0.5, 0.5, 3) * VMAX
    candidates = start + rng.normal(scale=spread, size=(2, 10, 3))
    out = limit_acceleration(times, candidates, start, velocity, VMAX, AMAX, JMAX)
    for chunk in out:
        acceleration, jerk = junction_derivatives(start, velocity, lead, times, chunk)
        inner_acceleration, inner_jerk = finite_derivatives(np.concatenate([[0.0], times]), np.vstack([start, chunk]))
        assert np.all(np.abs(np.vstack([acceleration, inner_acceleration])) <= AMAX * ACCELERATION_FIT_MARGIN + 1e-9)
        assert np.all(np.abs(np.vstack([jerk, inner_jerk])) <= JMAX * ACCELERATION_FIT_MARGIN + 1e-6)
        assert np.all(np.abs(np.diff(np.vstack([start, chunk]), axis=0)) <= VMAX * np.diff(np.concatenate(
            [[0.0], times]))[:, None] + 1e-12)


def test_limit_acceleration_keeps_a_chunk_within_the_limits_and_reaches_a_target_it_may_not_step_to():
    times = 0.1 * np.arange(1, 41)
    start, velocity = np.zeros(3), np.array([0.2, -0.1, 0.0])
    steady = (start + np.outer(times, velocity))[None]  # carries on at the controller's speed
    np.testing.assert_allclose(limit_acceleration(times, steady, start, velocity, VMAX, AMAX, JMAX), steady,
                               atol=1e-12)
    target = np.broadcast_to([0.5, -0.3, 0.2], (1, 40, 3))  # a step: held at the end, reached later
    out = limit_acceleration(times, target, start, np.zeros(3), VMAX, AMAX, JMAX)
    assert np.all(np.abs(out[0, 0]) < np.abs(target[0, 0]))
    np.testing.assert_allclose(out[0, -1], target[0, -1], atol=2e-3)
    nan = np.array(target)
    nan[0, 3, 1] = np.nan
    assert np.isnan(limit_acceleration(times, nan, start, np.zeros(3), VMAX, AMAX, JMAX)[0, 3, 1])


def test_fit_to_limits_fits_acceleration_only_when_given_the_controller_velocity():
    limits = ArmModel().limits
    limits = replace(limits, acceleration=limits.acceleration / 4)  # an arm slower to speed up than to move
    start = (limits.lower + limits.upper) / 2
    speed = np.minimum(0.9 * limits.velocity, 0.2 * (limits.upper - limits.lower))  # well inside the range
    jump = start + np.outer(TIMES, speed)[None]  # full speed from rest
    np.testing.assert_allclose(fit_to_limits(TIMES, jump, start, limits), jump)
    asked, _ = junction_derivatives(start, np.zeros(len(start)), TIMES[0], TIMES, jump[0])
    assert np.any(np.abs(asked) > limits.acceleration)
    fitted = fit_to_limits(TIMES, jump, start, limits, np.zeros(len(start)))
    acceleration, _ = junction_derivatives(start, np.zeros(len(start)), TIMES[0], TIMES, fitted[0])
    assert np.all(np.abs(acceleration) <= limits.acceleration + 1e-9)


def test_the_executing_chunk_reports_the_slope_the_controller_follows():
    chunk = ExecutingChunk(10.0, np.array([0.1, 0.2, 0.4]), np.array([[0.0], [1.0], [2.0]]))
    np.testing.assert_allclose(chunk.velocity_at(10.15), [10.0])
    np.testing.assert_allclose(chunk.velocity_at(10.3), [5.0])
    np.testing.assert_allclose(chunk.velocity_at(10.05), [0.0])  # before point 0: joined from elsewhere
    np.testing.assert_allclose(chunk.velocity_at(10.5), [0.0])  # held after the last


def test_limit_acceleration_stops_a_closing_gripper_at_its_target_within_the_step_limit():
    """The SO-101's gripper (10 rad/s in its URDF) closed by the expert at 8 rad/s: followed from rest it caught up
    at full speed past the safety node's 0.35 rad step, and ran 0.01 rad past the closed position (its stop
    lies 0.17 rad on), so the safety node refused the pick's chunks."""
    times = 0.05 + 0.1 * np.arange(10)
    closing = np.maximum(1.0 - 0.8 * np.arange(1, 11), 0.0)[None, :, None]  # 1 -> 0 at 0.8 rad per point
    out = limit_acceleration(times, closing, np.array([1.0]), np.zeros(1), np.array([10.0]), np.array([20.0]),
                             np.array([400.0]), max_step=0.35)[0, :, 0]
    assert np.all(np.diff(np.concatenate([[1.0], out])) <= 1e-12)  # only closing, never past 0
    assert np.all(out >= -1e-12) and out[-1] < 1e-3
    assert np.all(np.abs(np.diff(np.concatenate([[1.0], out]))) <= 0.35 + 1e-12)


def test_a_planner_starts_from_the_command_unless_the_arm_left_it():
    """The Panda-like arm's gripper closed on a cube stays 2 cm from its command: the safety node then measures
    from the arm, and a chunk fitted from the command was refused as a discontinuity in every pick."""
    from armpilot.policies.realtime import controller_motion

    limits = ArmModel().limits
    home = (limits.lower + limits.upper) / 2
    moving = ExecutingChunk(1.0, np.array([0.1, 0.2]), np.vstack([home, home + 0.01]))
    start, velocity = controller_motion(moving, 1.15, home + 0.005, limits, 0.1)
    np.testing.assert_allclose(start, home + 0.005)
    np.testing.assert_allclose(velocity, np.full(len(home), 0.1))
    blocked = home + 0.005
    blocked[-1] += 0.02  # the gripper: 0.1 m/s * 0.1 s = 0.01 m tolerated
    start, velocity = controller_motion(moving, 1.15, blocked, limits, 0.1)
    np.testing.assert_allclose(start, blocked)
    np.testing.assert_allclose(velocity, 0.0)
    start, velocity = controller_motion(None, 1.15, blocked, limits, 0.1)
    np.testing.assert_allclose(start, blocked)
    np.testing.assert_allclose(velocity, 0.0)


def test_a_planner_is_fitted_from_where_the_command_has_the_controller_when_the_fit_begins():
    """The fit's t = 0 lies ``min_lead`` after now; fitted from the controller's state now, extrapolated at constant
    speed, the chunk met a controller that had sped up or slowed down on its command meanwhile: TIAGo's 20 reaches
    drew 107 junction refusals in 227 candidates (3 in 207 fitted from the command's state there)."""
    from armpilot.policies.realtime import controller_motion

    limits = ArmModel().limits
    home = (limits.lower + limits.upper) / 2
    speeding_up = ExecutingChunk(1.0, np.array([0.1, 0.2, 0.3]), np.vstack([home, home + 0.01, home + 0.03]))
    start, velocity = controller_motion(speeding_up, 1.15, home + 0.005, limits, 0.1, ahead=0.1)
    np.testing.assert_allclose(start, home + 0.02)  # on the command at 1.25 s
    np.testing.assert_allclose(velocity, np.full(len(home), 0.2))
    blocked = home + 0.005
    blocked[-1] += 0.02  # left the command now: the measured arm, at rest, whatever lies ahead
    start, velocity = controller_motion(speeding_up, 1.15, blocked, limits, 0.1, ahead=0.1)
    np.testing.assert_allclose(start, blocked)
    np.testing.assert_allclose(velocity, 0.0)


@given(seed=st.integers(0, 10_000), speed=st.floats(0.2, 3.0), with_velocity=st.booleans())
def test_a_chunk_running_into_a_limit_slows_before_it_within_the_velocity_limit(seed, speed, with_velocity):
    """A chunk heading into a position limit at up to three times the velocity limit (the PR2's elbow
    straightening onto its 0 rad stop): every point can still brake before the limit (``braking_distance`` of
    the segment's speed, the safety node's check) and no step exceeds the velocity limit. Before, the braking
    pull stepped points up to 0.6 rad back from the limit in one point (1.6-2.5x the velocity limit: the safety
    node refused 38 of the PR2's chunks as ``velocity_limit``)."""
    from armpilot.safety.stopping import braking_distance

    rng = np.random.default_rng(seed)
    limits = replace(ArmModel().limits, velocity=np.full(7, 3.3), acceleration=np.full(7, 5.0),
                     jerk=np.full(7, 100.0))
    start = limits.upper - rng.uniform(0.05, 1.0, 7) * (limits.upper - limits.lower)
    chunk = start + speed * limits.velocity * TIMES[:, None] * rng.choice([-1.0, 1.0], 7)
    fitted = fit_to_limits(TIMES, chunk[None], start, limits, np.zeros(7) if with_velocity else None)[0]
    path = np.vstack([start, fitted])
    velocity = np.diff(path, axis=0) / np.diff(np.concatenate([[0.0], TIMES]))[:, None]
    assert np.all(np.abs(velocity) <= limits.velocity + 1e-6)
    stop = braking_distance(velocity, limits.acceleration, limits.jerk)
    assert np.all(fitted + stop <= limits.upper + 1e-6) and np.all(fitted + stop >= limits.lower - 1e-6)
