"""Safety core v0: every reason is detected, and nothing accepted violates the limits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from armpilot.robot import CONTROLLED_JOINTS, HOME_POSITION
from armpilot.safety.limits import SafetyConfig, check_chunk
from armpilot.safety.verifier import VerifierConfig

CFG = SafetyConfig()
NOW = 100.0


def smooth_chunk(arm, start=HOME_POSITION, horizon=10, dt=0.1, step=0.02):
    times = dt * np.arange(1, horizon + 1)
    positions = start + step * np.arange(1, horizon + 1)[:, None] * np.ones(7)
    positions[:, -1] = np.clip(positions[:, -1], 0.0, 0.04)
    return times, np.clip(positions, arm.limits.lower, arm.limits.upper)


def check(arm, names=CONTROLLED_JOINTS, stamp=NOW, times=None, positions=None, measured=HOME_POSITION, **kw):
    if times is None:
        times, positions = smooth_chunk(arm)
    return check_chunk(CFG, arm.limits, names, stamp, times, positions, NOW, measured, **kw)


def test_smooth_chunk_accepted(arm):
    verdict = check(arm)
    assert verdict.accepted, verdict.detail
    assert verdict.positions.shape == (10, 7)


def test_reordered_joints_are_matched_by_name(arm):
    times, positions = smooth_chunk(arm)
    order = np.array([6, 5, 4, 3, 2, 1, 0])
    verdict = check(arm, names=tuple(np.array(CONTROLLED_JOINTS)[order]), times=times, positions=positions[:, order])
    assert verdict.accepted
    assert np.allclose(verdict.positions, positions)


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda t, p: (t, np.where(np.arange(7) == 2, np.nan, p)), "not_finite"),
        (lambda t, p: (t, p + np.where(np.arange(7) == 1, 10.0, 0.0)), "position_limit"),
        (lambda t, p: (t[::-1].copy(), p), "time_not_increasing"),
        (lambda t, p: (t, p[:, :6]), "wrong_length"),
        (lambda t, p: (t[0] + (t - t[0]) * 0.05, p), "velocity_limit"),
    ],
)
def test_bad_chunks_rejected_with_reason(arm, mutate, reason):
    times, positions = mutate(*smooth_chunk(arm))
    verdict = check(arm, times=times, positions=positions)
    assert not verdict.accepted
    assert verdict.reason == reason


def test_absurd_magnitude_rejected(arm):
    times, positions = smooth_chunk(arm)
    positions[3, 0] = 1e12
    assert check(arm, times=times, positions=positions).reason == "position_limit"


def test_stamps(arm):
    assert check(arm, stamp=NOW - 1.0).reason == "stale"
    assert check(arm, stamp=NOW + 1.0).reason == "future_stamp"
    times, positions = smooth_chunk(arm)
    # the arm 0.25 s into the chunk, the controller moving along it
    at = np.array([np.interp(0.25, times, positions[:, j]) for j in range(7)])
    velocity = (positions[2] - positions[1]) / (times[2] - times[1])
    verdict = check(arm, stamp=NOW - 0.25, times=times, positions=positions, measured=at, reference=at,
                    reference_velocity=velocity)
    assert verdict.accepted and len(verdict.times) == 8, verdict  # the 2 points already past are dropped
    assert verdict.times[0] == pytest.approx(0.3)


def test_zero_stamp_means_now(arm):
    assert check(arm, stamp=0.0).accepted


def test_unknown_duplicate_missing_names(arm):
    times, positions = smooth_chunk(arm)
    bad = ("x",) + CONTROLLED_JOINTS[1:]
    assert check(arm, names=bad, times=times, positions=positions).reason == "unknown_joint"
    dup = CONTROLLED_JOINTS[:6] + ("shoulder_pan_joint",)
    assert check(arm, names=dup, times=times, positions=positions).reason == "duplicate_joint"


def test_no_joint_state_holds(arm):
    assert check(arm, measured=None).reason == "no_joint_state"


def test_jump_from_measured_state_rejected(arm):
    times, positions = smooth_chunk(arm, start=HOME_POSITION + 0.5)
    assert check(arm, times=times, positions=positions).reason == "discontinuity"


def test_commanded_velocities_checked(arm):
    times, positions = smooth_chunk(arm)
    velocities = np.zeros_like(positions)
    velocities[2, 0] = 50.0
    assert check(arm, times=times, positions=positions, velocities=velocities).reason == "velocity_limit"


def _assert_within_limits(arm, verdict, measured):
    lim = arm.limits
    assert np.all(verdict.positions >= lim.lower - 1e-9) and np.all(verdict.positions <= lim.upper + 1e-9)
    abs_times = verdict.stamp + verdict.times
    if len(abs_times) > 1:
        speed = np.abs(np.diff(verdict.positions, axis=0)) / np.diff(abs_times)[:, None]
        assert np.all(speed <= lim.velocity * CFG.velocity_scale + 1e-6)
    lead = abs_times[0] - NOW
    assert np.all(np.abs(verdict.positions[0] - measured) <= lim.velocity * (lead + CFG.tracking_allowance) + 1e-6)


@settings(max_examples=1500, deadline=None)
@given(
    offsets=hnp.arrays(np.float64, (8, 7), elements=st.floats(-4, 4) | st.sampled_from([np.nan, np.inf, -np.inf])),
    dts=hnp.arrays(np.float64, 8, elements=st.floats(-0.05, 0.3) | st.just(np.nan)),
    stamp_offset=st.floats(-1.0, 0.2),
    scale=st.sampled_from([1e-3, 0.05, 0.3, 1.0, 3.0]),
    horizon=st.integers(1, 8),
)
def test_property_accepted_chunks_never_violate_limits(arm, offsets, dts, stamp_offset, scale, horizon):
    """Generated and adversarial chunks: whatever is accepted respects position/velocity limits."""
    times = np.cumsum(dts[:horizon])
    positions = HOME_POSITION + scale * np.cumsum(offsets[:horizon], axis=0)
    verdict = check(arm, stamp=NOW + stamp_offset, times=times, positions=positions)
    if verdict.accepted:
        _assert_within_limits(arm, verdict, HOME_POSITION)


@settings(max_examples=500, deadline=None)
@given(
    steps=hnp.arrays(np.float64, (10, 7), elements=st.floats(-0.25, 0.25)),
    permutation=st.permutations(list(range(7))),
)
def test_property_small_steps_in_any_joint_order(arm, steps, permutation):
    """Plausible chunks in shuffled joint order: accepted ones are within limits in controller order."""
    times = 0.1 * np.arange(1, 11)
    positions = np.clip(HOME_POSITION + np.cumsum(steps, axis=0), arm.limits.lower - 0.1, arm.limits.upper + 0.1)
    order = np.array(permutation)
    names = tuple(np.array(CONTROLLED_JOINTS)[order])
    verdict = check(arm, names=names, times=times, positions=positions[:, order])
    if verdict.accepted:
        assert np.allclose(verdict.positions, positions)
        _assert_within_limits(arm, verdict, HOME_POSITION)


@settings(max_examples=500, deadline=None)
@given(heading=hnp.arrays(np.float64, 7, elements=st.floats(-0.3, 0.3)),
       first=hnp.arrays(np.float64, 7, elements=st.floats(-0.3, 0.3)), lead=st.floats(0.001, 0.3))
def test_property_the_junction_from_a_known_heading_never_exceeds_the_velocity_limit(arm, heading, first, lead):
    """The controller goes from where it heads to the first point in the lead time: never faster than allowed."""
    reference = HOME_POSITION + heading
    positions = np.repeat((HOME_POSITION + first)[None], 3, axis=0)
    verdict = check(arm, times=lead + 0.1 * np.arange(3), positions=positions, reference=reference)
    if verdict.accepted:
        speed = np.abs(verdict.positions[0] - reference) / (verdict.stamp + verdict.times[0] - NOW)
        assert np.all(speed <= arm.limits.velocity * CFG.velocity_scale + 1e-6)


def test_config_validation():
    with pytest.raises(ValueError, match="velocity_scale"):
        SafetyConfig(velocity_scale=0.0)
    with pytest.raises(ValueError, match="max_chunk_age"):
        SafetyConfig(max_chunk_age=-1.0)


@pytest.mark.parametrize("name", ["velocity_scale", "max_chunk_age", "max_future", "tracking_allowance",
                                  "start_tolerance", "joint_state_timeout", "max_step", "proposal_timeout",
                                  "table_clearance"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_parameter_is_refused_naming_it(name, value):
    """A NaN compares false with every bound: accepted, it would turn its check off (a NaN timeout never fires)."""
    with pytest.raises(ValueError, match=name):
        SafetyConfig(**{name: value})


@pytest.mark.parametrize("name", ["perturb_std", "vote_bandwidth", "weight_vote", "weight_continuity"])
def test_a_non_finite_verifier_weight_is_refused(name):
    with pytest.raises(ValueError, match="finite"):
        VerifierConfig(**{name: float("nan")})
