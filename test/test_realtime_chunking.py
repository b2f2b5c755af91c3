"""Real-time chunk transitions: inpainting weights, the frozen prefix, latency tracking, injected delay,
chunk-switch metrics; the inpainted prefix of the shipped push policy equals the executing chunk."""

from __future__ import annotations

import time

import numpy as np
import pytest

from armpilot.chunk_switches import SwitchLog, kinematics_at, switch_jump
from armpilot.paths import shipped_checkpoint
from armpilot.policies.base import Observation
from armpilot.policies.config import PolicyNodeConfig
from armpilot.policies.diffusion import DiffusionPolicy
from armpilot.policies.realtime import (CommittedPrefix, ExecutingChunk, InjectedDelay, LatencyTracker,
                                        inpainting_weights)
from armpilot.robot_profile import load_profile


def test_inpainting_weights_freeze_then_decay_to_zero() -> None:
    times = np.linspace(0.0, 1.0, 21)
    w = inpainting_weights(times, frozen_until=0.3, overlap_until=0.8)
    assert np.all(w[times <= 0.3] == 1.0) and np.all(w[times >= 0.8] == 0.0)
    inside = (times > 0.3) & (times < 0.8)
    assert np.all(np.diff(w[inside]) < 0) and np.all((w[inside] > 0) & (w[inside] < 1))
    assert np.all(inpainting_weights(times, 0.5, 0.5)[times > 0.5] == 0.0)  # no overlap: hard mask


def test_latency_tracker_follows_a_high_percentile_of_recent_latencies() -> None:
    tracker = LatencyTracker(percentile=95.0, window=20, initial_s=0.1)
    assert tracker.estimate_s() == 0.1
    for _ in range(20):
        tracker.add(0.05)
    assert tracker.estimate_s() == pytest.approx(0.05)
    for _ in range(20):
        tracker.add(0.32)  # inference slowed down: the frozen prefix grows with it
    assert tracker.estimate_s() == pytest.approx(0.32)
    tracker.add(float("nan"))
    tracker.add(-1.0)
    assert tracker.estimate_s() == pytest.approx(0.32)
    mixed = LatencyTracker(percentile=90.0, window=100)
    for k in range(100):
        mixed.add(0.01 * k)
    assert mixed.estimate_s() == pytest.approx(np.percentile(0.01 * np.arange(100), 90))


def test_committed_prefix_targets_follow_the_executing_chunk() -> None:
    times = 0.1 * np.arange(1, 11)
    positions = np.stack([times, -2 * times], axis=1)  # linear in time
    executing = ExecutingChunk(stamp=5.0, times=times, positions=positions)
    prefix = CommittedPrefix(executing, frozen_s=0.25)
    frames = 0.1 * np.arange(12)
    targets, weights = prefix.guide(5.3, frames)  # a new observation 0.3 s later
    absolute = 5.3 + frames
    assert np.allclose(targets, executing.at(absolute))
    assert np.all(weights[absolute <= 5.55] == 1.0) and np.all(weights[absolute > executing.end] == 0.0)


def test_injected_delay_really_delays() -> None:
    delay = InjectedDelay(fixed_ms=60.0, jitter_ms=40.0, seed=1)
    draws = [delay.draw_s() for _ in range(200)]
    assert min(draws) >= 0.06 and max(draws) <= 0.1 and np.std(draws) > 0.005
    started = time.perf_counter()
    waited = delay.wait()
    assert time.perf_counter() - started >= waited >= 0.06
    assert not InjectedDelay().enabled and InjectedDelay(5.0).enabled and InjectedDelay(5.0, 2.0).max_s == 0.007
    with pytest.raises(ValueError):
        InjectedDelay(-1.0)


def test_transition_parameter_is_checked() -> None:
    assert PolicyNodeConfig(transition="rtc").transition == "rtc"
    with pytest.raises(ValueError, match="transition"):
        PolicyNodeConfig(transition="smooth")
    with pytest.raises(ValueError, match="inject_delay_ms"):
        PolicyNodeConfig(inject_delay_ms=-5.0)


# ------------------------------------------------------------ switch metrics


def test_switch_jump_is_zero_for_a_continuation_and_measures_a_kink() -> None:
    times = np.linspace(0.0, 1.0, 11)
    line = np.stack([0.5 * times, np.zeros_like(times)], axis=1)
    later = times + 0.25
    same = np.stack([0.5 * later, np.zeros_like(later)], axis=1)
    assert switch_jump((times, line), (later, same)) == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)
    jumped = same + np.array([0.1, 0.0])
    dp, dv, da = switch_jump((times, line), (later, jumped))
    assert dp == pytest.approx(0.1) and dv == pytest.approx(0.0, abs=1e-9)
    reversed_ = np.stack([0.5 * 0.25 - 0.5 * (later - 0.25), np.zeros_like(later)], axis=1)
    _, dv, _ = switch_jump((times, line), (later, reversed_))
    assert dv == pytest.approx(1.0)
    p, v, a = kinematics_at(times, np.stack([times**2, times], axis=1), 0.5)
    assert p[0] == pytest.approx(0.25) and v[0] == pytest.approx(1.0, abs=0.11) and a[0] == pytest.approx(2.0)


def test_switch_log_skips_holds_and_episode_starts() -> None:
    log = SwitchLog()
    times = np.linspace(0.0, 1.0, 6)
    chunk = np.stack([times, times], axis=1)
    log.add(times, chunk)
    log.add(times + 0.2, chunk + 0.05)
    log.add(np.array([0.1]), chunk[:1])  # a hold: one point, no switch and the chain restarts
    log.add(times + 0.4, chunk)
    log.reset()
    log.add(times + 0.6, chunk)
    summary = log.summary()
    assert summary["count"] == 1 and summary["position_rad"]["max"] == pytest.approx(0.15, abs=1e-9)  # 0.05 vs 0.2


# -------------------------------------------------- the shipped push policy


@pytest.fixture(scope="module")
def push_policy() -> DiffusionPolicy:
    profile = load_profile("armpilot")
    return DiffusionPolicy(shipped_checkpoint("push"), profile.joints, seed=3)


def _observation(policy: DiffusionPolicy, stamp: float) -> Observation:
    """The arm at rest, a box in front of it, the goal beyond it (history frames repeat the present)."""
    q = np.array([0.1, -0.3, 1.6, 0.0, 1.2, 0.0, 0.04])
    obj, goal = np.array([0.45, 0.05, 0.03]), np.array([0.55, -0.1, 0.03])
    now = Observation(stamp, (), q, obj, 0.0, goal)
    return Observation(stamp, (), q, obj, 0.0, goal, (now,) * len(policy.history_offsets))


def test_inpainted_prefix_equals_the_executing_chunk(push_policy: DiffusionPolicy) -> None:
    obs = _observation(push_policy, 10.0)
    grid = push_policy.chunk_dt * np.arange(1, push_policy.horizon + 1)
    first = push_policy.sample_candidates(obs, 1)[0]
    # an executing chunk the policy would not propose by itself, inside the range it was trained on
    executing_positions = np.clip(first + np.r_[[0.08] * 6, 0.0], push_policy.action_low, push_policy.action_high)
    executing = ExecutingChunk(9.8, grid, executing_positions)  # computed 0.2 s earlier
    frozen_s = 0.3
    inpainted = push_policy.sample_candidates(obs, 4, CommittedPrefix(executing, frozen_s))
    free = push_policy.sample_candidates(obs, 4)
    frozen = grid <= frozen_s
    expected = executing.at(obs.stamp + grid[frozen])
    error = np.abs(inpainted[:, frozen, :6] - expected[None, :, :6]).max()
    error_free = np.abs(free[:, frozen, :6] - expected[None, :, :6]).max()
    # tolerance: the network's frames (1/15 s apart) are resampled onto the node's 0.1 s grid
    assert error < 0.02, f"inpainted prefix differs by {error:.4f} rad"
    assert error_free > 0.05  # without the prefix the chunk starts elsewhere: the check can fail
    # the overlap after the frozen part moves away from the executing chunk smoothly, without a jump
    after = np.abs(np.diff(inpainted[:, :, :6], axis=1)).max()
    assert after < 0.1


def test_executing_chunk_from_a_controller_command_in_any_joint_order() -> None:
    names = ("b", "a", "gripper")
    positions = np.array([[1.0, 10.0, 0.0], [2.0, 20.0, 0.0], [3.0, 30.0, 0.0]])
    chunk = ExecutingChunk.from_command(names, 4.0, np.array([0.1, 0.2, 0.3]), positions, ("a", "b"))
    assert chunk is not None and np.allclose(chunk.positions, [[10, 1], [20, 2], [30, 3]])
    assert chunk.end == pytest.approx(4.3) and np.allclose(chunk.at(np.array([4.15])), [[15.0, 1.5]])
    assert ExecutingChunk.from_command(names, 4.0, np.array([0.1]), positions[:1], ("a", "c")) is None
    assert ExecutingChunk.from_command(names, 4.0, np.zeros(0), positions[:0], ("a",)) is None


def test_points_running_into_a_limit_at_speed_are_kept_the_braking_distance_inside() -> None:
    from armpilot.policies.chunking import keep_braking_inside
    from armpilot.safety.stopping import braking_distance

    times = 0.1 * np.arange(1, 5)
    lower, upper = np.array([0.0, -1.0]), np.array([0.04, 1.0])
    amax, jmax = np.array([1.0, 10.0]), np.array([20.0, 200.0])
    closing = np.array([[[0.03, 0.0], [0.02, 0.1], [0.01, 0.2], [0.0, 0.3]]])  # gripper closing onto 0 at 0.1 m/s
    kept = keep_braking_inside(times, closing, lower, upper, amax, jmax)
    speed = np.abs(np.diff(kept[0, :, 0])) / 0.1
    assert kept[0, -1, 0] >= braking_distance(np.array([speed[-1]]), amax[:1], jmax[:1])[0] - 1e-12
    assert kept[0, -1, 0] > 0.0 and np.allclose(kept[0, :, 1], closing[0, :, 1])  # far from its limits: untouched
    resting = np.array([[[0.0, 0.0]] * 4])
    assert np.array_equal(keep_braking_inside(times, resting, lower, upper, amax, jmax), resting)  # at rest: fine
