"""Holds and junctions over every robot profile: braking on the way to a chunk's first point, a hold right after
a hold, continuous joints read in another turn, malformed joint states (pure, no ROS)."""

from __future__ import annotations

import numpy as np
import pytest

from armpilot.robot import ArmModel
from armpilot.safety.limits import SafetyConfig, check_chunk
from armpilot.safety.state_tracking import ArmState, CommandedPath, hold_command, hold_on_path
from armpilot.safety.stopping import CLAMPED_OVERSHOOT, braking_distance, crosses_limit, with_braking_tail

from robot_variants import ALL_PROFILES, profile

CFG = SafetyConfig()
NOW = 50.0


@pytest.fixture(scope="module")
def limits_of():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = ArmModel(profile(name)).limits
        return cache[name]

    return get


def _rest(name: str, limits) -> np.ndarray:
    return np.clip(profile(name).home, limits.lower, limits.upper).astype(float)


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_a_chunk_whose_approach_would_brake_past_a_limit_is_refused(limits_of, name):
    """One point 0.4 s ahead, 1 mm inside the upper limit, reached at 0.9 of the velocity limit: a hold on the
    way there brakes past the limit, so the chunk is refused (it was accepted: nothing checked the approach)."""
    lim = limits_of(name)
    bounded = np.flatnonzero(np.isfinite(lim.upper))
    j = int(bounded[np.argmax(lim.velocity[bounded])])
    v, lead = 0.9 * lim.velocity[j], 0.4
    assert braking_distance(np.array([v]), lim.acceleration[j:j + 1], lim.jerk[j:j + 1])[0] > 1e-3
    measured = _rest(name, lim)
    measured[j] = lim.upper[j] - 1e-3 - v * lead
    target = measured.copy()
    target[j] = lim.upper[j] - 1e-3
    moving = np.where(np.arange(len(lim.names)) == j, v, 0.0)  # the controller already at that speed
    verdict = check_chunk(CFG, lim, list(lim.names), NOW, np.array([lead]), target[None], NOW, measured,
                          reference_velocity=moving)
    assert not verdict.accepted and verdict.reason == "braking_distance", verdict
    assert "on the way to point 0" in verdict.detail
    # the hold it guards against: braking at that speed just before the point crosses the limit
    state = ArmState(lim.names)
    tracking = measured + (target - measured) * (lead - 0.01) / lead  # the arm where the path has it then
    assert state.update(list(lim.names), tracking, None) is None
    path = np.vstack([measured, target])
    stop = hold_command(state, lim, (NOW, np.array([0.0, lead]), path), NOW + lead - 0.01, tolerance=1.0)
    assert crosses_limit(stop, lim.lower, lim.upper)[j]
    # the same speed toward a point that leaves room to brake is fine
    target[j] = lim.upper[j] - 2e-3 - braking_distance(np.array([v]), lim.acceleration[j:j + 1], lim.jerk[j:j + 1])[0]
    measured[j] = target[j] - v * lead
    verdict = check_chunk(CFG, lim, list(lim.names), NOW, np.array([lead]), target[None], NOW, measured,
                          reference_velocity=moving)
    assert verdict.accepted, verdict
    # from rest the controller steps to that speed over the lead: refused exactly when that passes the limit
    verdict = check_chunk(CFG, lim, list(lim.names), NOW, np.array([lead]), target[None], NOW, measured)
    assert verdict.accepted == (v / lead <= lim.acceleration[j]), verdict
    assert verdict.accepted or verdict.reason == "acceleration_limit"


@pytest.mark.parametrize("name", ALL_PROFILES)
@pytest.mark.parametrize("moving", [False, True])
def test_a_hold_right_after_a_hold_continues_the_first_stop(limits_of, name, moving):
    """An e-stop 5 ms after a watchdog hold, before the first stop's first point: the second stop starts where
    the first was then, at most at its speed; at rest it does not move (it was thrown at up to 1.8 rad/s)."""
    lim = limits_of(name)
    rest = _rest(name, lim)
    state = ArmState(lim.names)
    velocity = 0.5 * lim.velocity * np.isfinite(lim.upper) if moving else np.zeros(len(rest))
    assert state.update(list(lim.names), rest + 0.003, velocity) is None  # 3 mm/mrad of tracking error
    path = CommandedPath(lim.velocity * CFG.tracking_allowance, lim.continuous)
    if not moving:
        path.command(NOW - 1.0, NOW - 1.0, np.array([0.5]), rest[None], rest)  # the last chunk ended at rest
    first = hold_on_path(path, state, lim, NOW, CFG.tracking_allowance, from_arm=moving)
    second = hold_on_path(path, state, lim, NOW + 0.005, CFG.tracking_allowance)
    assert first is not None and second is not None
    speed = np.abs(second.velocities).max(axis=0)
    assert np.all(speed <= np.abs(first.velocities).max(axis=0) + 1e-6)
    assert np.all(np.abs(second.start - first.start) <= np.abs(velocity) * 0.005 + 1e-6)
    if not moving:
        assert np.allclose(second.velocities, 0.0) and np.allclose(second.positions, rest)


def test_a_continuous_joint_read_a_turn_away_is_the_same_state():
    """UR5 with a continuous wrist 3 heading to 3.25 rad at 3.2 rad/s; the driver reports 3.16 or, wrapped,
    3.16 - 2 pi: the reference, the chunk's verdict and the hold are the same (the wrapped reading dropped the
    reference, accepted a chunk starting 0.12 rad behind the heading, and stopped from the arm at speed 0)."""
    name = "ur5_continuous"
    lim = ArmModel(profile(name)).limits
    j = list(lim.names).index("wrist_3_joint")
    assert lim.continuous[j]
    base = _rest(name, lim)
    path_positions = np.tile(base, (2, 1))
    path_positions[:, j] = [3.25 - lim.velocity[j], 3.25 + lim.velocity[j]]
    outcomes = []
    for reading in (3.16, 3.16 - 2 * np.pi):
        measured = base.copy()
        measured[j] = reading
        path = CommandedPath(lim.velocity * CFG.tracking_allowance, lim.continuous)
        path.command(NOW - 1.0, NOW - 1.0, np.array([0.0, 2.0]), path_positions, None)
        reference = path.reference(NOW, measured)
        assert reference is not None and reference[j] == pytest.approx(3.25)  # the turn the controller follows
        behind = measured.copy()
        behind[j] = reading - 0.03
        verdict = check_chunk(CFG, lim, list(lim.names), NOW, np.array([0.02]), behind[None], NOW, measured,
                              reference=reference)
        ahead = measured.copy()
        ahead[j] = reading + 0.09 + lim.velocity[j] * 0.02  # on at the controller's speed (3.25 is 0.09 ahead)
        onward = check_chunk(CFG, lim, list(lim.names), NOW, np.array([0.02]), ahead[None], NOW, measured,
                             reference=reference, reference_velocity=path.velocity(NOW))
        state = ArmState(lim.names)
        assert state.update(list(lim.names), measured, None) is None
        stop = hold_command(state, lim, path.as_chunk(), NOW, CFG.tracking_allowance)
        outcomes.append((verdict.reason, onward.reason, onward.positions[0, j] if onward.accepted else None,
                         stop.positions[0, j], stop.velocities[0, j]))
    assert outcomes[0] == pytest.approx(outcomes[1])
    assert outcomes[0][0] == "discontinuity" and outcomes[0][1] == "ok"
    assert outcomes[0][2] == pytest.approx(3.25 + lim.velocity[j] * 0.02) and outcomes[0][4] > 0.9 * lim.velocity[j]


def test_joint_states_with_repeated_names_or_missing_positions_are_refused():
    p = profile("ur5")
    state = ArmState(p.joints)
    names = list(p.joints)
    problem = state.update(names + [names[0]], np.append(p.home, 2.5), None)
    assert problem is not None and names[0] in problem and "more than once" in problem and state.positions is None
    problem = state.update(names, np.zeros(0), None)
    assert problem is not None and "0 positions" in problem and state.positions is None
    assert state.update(names, p.home, None) is None


def test_a_separate_gripper_may_publish_its_own_joint_states():
    """The arm's driver and the gripper's each publish their own /joint_states: the gripper's updates the gripper
    only and does not count as the arm being alive; the arm's may leave the gripper out once it has been read."""
    p = profile("armpilot_six")
    state = ArmState(p.joints, ArmModel(p).passive_joints)
    assert "gripper_joint" in state.update(list(p.joints), p.home, None)  # never read: refused, named
    assert state.update(["gripper_joint"], np.array([0.02]), None) is None
    assert not state.arm_updated and state.positions is None and state.passive == {"gripper_joint": 0.02}
    assert state.update(list(p.joints), p.home, None) is None and state.arm_updated
    assert np.allclose(state.positions, p.home) and state.passive == {"gripper_joint": 0.02}
    assert state.update(["gripper_joint", "camera_tilt"], np.array([0.03, 1.0]), None) is None
    assert state.passive == {"gripper_joint": 0.03} and not state.arm_updated
    assert "not finite" in state.update(["gripper_joint"], np.array([np.nan]), None)
    assert state.passive == {"gripper_joint": 0.03}
    assert "shoulder_pan_joint" in state.update(["camera_tilt"], np.array([1.0]), None)  # nothing of ours
    partial = list(p.joints[:3])  # an arm message missing arm joints is still refused, naming them
    problem = state.update(partial, p.home[:3], None)
    assert problem is not None and p.joints[3] in problem


@pytest.mark.parametrize("name", ["armpilot", "panda", "so101"])
def test_a_gripper_closing_onto_its_limit_is_accepted_and_a_hold_there_stays_inside(limits_of, name):
    """The gripper 0.05 mm (or mrad) above its closed limit, a chunk at the limit 20 ms ahead: braking on the way
    overshoots by micrometres, which a hold clamps at the limit, so the chunk passes (it was refused: every
    push chunk of a policy, 831 of 1,483, in one evaluation) and the hold commands nothing outside."""
    lim = limits_of(name)
    gripper = profile(name).gripper.joint
    j = list(lim.names).index(gripper)
    measured = _rest(name, lim)
    measured[j] = lim.lower[j] + 5e-5
    target = measured.copy()
    target[j] = lim.lower[j]
    verdict = check_chunk(CFG, lim, list(lim.names), NOW, np.array([0.02, 0.1]), np.vstack([target, target]), NOW,
                          measured)
    assert verdict.accepted, verdict
    state = ArmState(lim.names)
    assert state.update(list(lim.names), measured, None) is None
    chunk = (NOW, np.array([0.0, 0.02]), np.vstack([measured, target]))
    stop = hold_command(state, lim, chunk, NOW + 0.019, tolerance=1.0)
    assert not crosses_limit(stop, lim.lower, lim.upper).any()
    assert stop.positions[-1, j] == pytest.approx(lim.lower[j], abs=CLAMPED_OVERSHOOT)


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_a_chunk_that_reverses_where_it_joins_the_controller_is_refused(limits_of, name):
    """The controller moving a joint at 0.2 of its velocity limit along its path; a chunk whose first point lies
    behind where it heads and whose points then run on: the controller's velocity would flip twice within the
    lead (the policy's chunks did this 23 times in a 20-episode reach demo). Accepted, continuing the path."""
    lim = limits_of(name)
    j = int(np.argmax(lim.velocity * np.isfinite(lim.upper)))
    v, lead, dt = 0.2 * lim.velocity[j], 0.05, 0.1
    measured = _rest(name, lim)
    moving = np.where(np.arange(len(lim.names)) == j, v, 0.0)
    times = lead + dt * np.arange(4)
    onward = measured + np.outer(times, moving)  # continues the path: no step anywhere
    verdict = check_chunk(CFG, lim, list(lim.names), NOW, times, onward, NOW, measured,
                          reference=measured, reference_velocity=moving)
    assert verdict.accepted, verdict
    back = lim.acceleration[j] * lead ** 2  # behind: the velocity flips by 2 * amax * lead within the lead
    zigzag = onward.copy()
    zigzag[0, j] -= 2 * back
    verdict = check_chunk(CFG, lim, list(lim.names), NOW, times, zigzag, NOW, measured, reference=measured,
                          reference_velocity=moving)
    # an arm slow for its acceleration (the SO-100: 1 rad/s, 20 rad/s^2) sees the step back as a discontinuity first
    assert not verdict.accepted and verdict.reason in ("acceleration_limit", "jerk_limit", "discontinuity"), verdict
    assert lim.names[j] in verdict.detail


def test_the_commanded_path_knows_the_controllers_velocity():
    path = CommandedPath(np.full(2, 1.0))
    assert path.velocity(NOW) is None  # nothing commanded: at rest
    path.command(NOW, NOW, np.array([0.5, 1.0]), np.array([[1.0, 0.0], [2.0, -1.0]]), np.zeros(2))
    assert np.allclose(path.velocity(NOW + 0.25), [2.0, 0.0])  # from where it was to point 0
    assert np.allclose(path.velocity(NOW + 0.75), [2.0, -2.0])
    assert np.allclose(path.velocity(NOW + 2.0), 0.0)  # after the last point it rests there


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_holds_obey_the_scaled_velocity_limit(limits_of, name):
    """``velocity_scale`` 0.4: a hold on the way to a chunk's first point (approached faster than 0.4 of the URDF
    limit: the check's start tolerance over a short lead) and a hold from an arm measured moving at the URDF
    limit (pushed by something else) command no velocity above 0.4 of the URDF's, in their velocities or between
    their points (they started at the approach's speed and at the measured one before)."""
    cfg = SafetyConfig(velocity_scale=0.4)
    lim = limits_of(name)
    enforced = cfg.enforced(lim)
    assert np.allclose(enforced.velocity, 0.4 * lim.velocity) and np.array_equal(enforced.upper, lim.upper)
    rest = _rest(name, lim)
    sign = np.where(rest + 0.1 < lim.upper, 1.0, -1.0)
    lead = 0.05
    target = rest + sign * 0.8 * lim.velocity * lead
    approaching = ArmState(lim.names)
    assert approaching.update(list(lim.names), rest, None) is None
    pushed = ArmState(lim.names)
    assert pushed.update(list(lim.names), rest, sign * lim.velocity) is None
    for state, chunk in ((approaching, (NOW, np.array([lead, lead + 0.1]), np.vstack([target, target]))),
                         (pushed, None)):
        before = hold_command(state, lim, chunk, NOW, tolerance=1.0)
        stop = hold_command(state, enforced, chunk, NOW, tolerance=1.0)
        t = np.concatenate([[0.0], stop.times])
        between = np.abs(np.diff(np.vstack([stop.start, stop.positions]), axis=0)) / np.diff(t)[:, None]
        assert np.all(np.abs(stop.velocities) <= enforced.velocity + 1e-9)
        assert np.all(between <= enforced.velocity + 1e-9)
        assert np.any(np.abs(before.velocities) > enforced.velocity + 1e-3)  # URDF limits alone let it through


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_a_small_velocity_scale_does_not_turn_a_tracking_lag_into_a_jump_back(limits_of, name):
    """``velocity_scale`` 0.1, the path at 95 % of the scaled limit, the arm measured a normal lag behind it
    (0.15 of ``tracking_allowance`` at the URDF limit) without velocities: the hold starts on the path and
    moves on from it, never back toward the lagging arm."""
    cfg = SafetyConfig(velocity_scale=0.1)
    lim = limits_of(name)
    enforced = cfg.enforced(lim)
    rest = _rest(name, lim)
    sign = np.where(rest + 0.1 < lim.upper, 1.0, -1.0)
    speed = sign * 0.95 * enforced.velocity
    times = np.array([0.0, 1.0])
    chunk = (NOW - 0.5, times, np.vstack([rest, rest + speed]))
    on_path = rest + 0.5 * speed
    lagging = ArmState(lim.names)
    assert lagging.update(list(lim.names), on_path - sign * 0.15 * cfg.tracking_allowance * lim.velocity, None) is None
    stop = hold_command(lagging, enforced, chunk, NOW, tolerance=cfg.hold_tolerance())
    assert np.allclose(stop.start, on_path), "the hold starts where the controller is, not at the lagging arm"
    assert np.all(sign * (stop.positions[0] - on_path) >= -1e-9), "the hold moves on, never back"
    narrow = hold_command(lagging, enforced, chunk, NOW, tolerance=cfg.tracking_allowance)
    assert not np.allclose(narrow.start, on_path)  # the allowance at the scaled limit took the lag for a push


@pytest.mark.parametrize("name", ALL_PROFILES)
@pytest.mark.parametrize("into_the_tail", [0.0, 0.25, 0.5, 0.9])
def test_a_hold_during_the_stop_after_a_chunk_continues_that_stop(limits_of, name, into_the_tail):
    """A chunk at 0.9 of the velocity limit is sent with its braking tail; a hold (an e-stop) part-way through
    the tail ends where the tail ends, the stop the check approved, instead of braking afresh from the current
    speed (which starts with zero deceleration and travels further: past a limit the tail just reaches)."""
    lim = limits_of(name)
    rest = _rest(name, lim)
    sign = np.where(rest + 0.5 < lim.upper, 1.0, -1.0)
    speed = sign * 0.9 * lim.velocity
    times = np.array([0.1, 0.2, 0.3])
    chunk = rest + np.outer(times, speed)
    sent_times, sent = with_braking_tail(lim, times, chunk, rest, 0.1)
    assert len(sent_times) > len(times), "a chunk ending at speed gets a tail"
    path = CommandedPath(lim.velocity * 0.1, lim.continuous)
    path.command(NOW, NOW, sent_times, sent, rest, stopping_from=NOW + times[-1])
    now = NOW + times[-1] + into_the_tail * (sent_times[-1] - times[-1])
    on_path = np.array([np.interp(now, NOW + sent_times, sent[:, k]) for k in range(len(rest))])
    arm = ArmState(lim.names)
    assert arm.update(list(lim.names), on_path, None) is None
    stop = hold_on_path(path, arm, lim, now, 0.1)
    assert np.allclose(stop.start, on_path) and np.allclose(stop.positions[-1], sent[-1])
    assert np.allclose(stop.velocities[-1], 0.0)
    assert np.all(np.abs(stop.velocities) <= lim.velocity + 1e-9)
    fresh = hold_command(arm, lim, (0.0, NOW + sent_times, sent), now, 0.1)
    if 0.0 < into_the_tail < 0.5:  # braking afresh from the speed there goes past where the tail ends
        assert np.any(sign * (fresh.positions[-1] - sent[-1]) > 1e-4)


def test_a_hold_from_the_arm_stays_in_the_turn_the_commands_were_sent_in():
    """UR5 with a continuous wrist 1 carried from 3.0 past +pi by a chunk sent unwrapped (3.1 ... 3.4); the driver
    reports angles wrapped to (-pi, pi]. After a stall the hold starts from the measured arm: it must start where
    the controller is, not a turn away (it started at -3.03 against the controller's 3.25: a 2 pi step, found by a
    review in session 26). The joint-state tracker counts turns from the first reading."""
    name = "ur5_continuous"
    lim = CFG.enforced(ArmModel(profile(name)).limits)
    j = list(lim.names).index("wrist_1_joint")
    assert lim.continuous[j]
    state = ArmState(lim.names, continuous=lim.continuous)
    path = CommandedPath(lim.velocity * CFG.tracking_allowance, lim.continuous)
    base = _rest(name, lim)
    chunk = np.tile(base, (4, 1))
    chunk[:, j] = [3.1, 3.2, 3.3, 3.4]
    path.command(NOW, NOW, np.array([0.1, 0.2, 0.3, 0.4]), chunk, None, origin=np.where(np.arange(len(base)) == j,
                                                                                         3.0, base))
    for k, t in enumerate(NOW + np.arange(0.0, 0.26, 0.05)):  # the driver at 50 Hz... here every 50 ms
        measured = path.reference(t, None)
        measured[j] = (measured[j] + np.pi) % (2 * np.pi) - np.pi  # wrapped
        assert state.update(list(lim.names), measured, None, stamp=t) is None
    t = NOW + 0.25
    desired = path.reference(t, None)
    assert state.positions[j] == pytest.approx(desired[j]), "the tracker lost the turn"
    stop = hold_on_path(path, state, lim, t, CFG.hold_tolerance(), from_arm=True)
    step = abs(stop.positions[0, j] - desired[j])
    assert step <= lim.velocity[j] * stop.times[0] + 1e-9, f"a {step:.3f} rad step to the hold's first point"


def test_a_fast_urdf_never_lets_a_hold_start_far_from_the_arm():
    """Session 30, the Unitree G1's URDF (22-37 rad/s): how far the measured arm may be from the commanded path was
    velocity x tracking allowance alone, 3.7 rad, so a hold started 0.8 rad away from the arm (the controller told
    to jump there), a path 0.8 rad off the arm stayed the reference, and two states 1 rad apart 8 ms apart counted
    as one arm. Now at most ``MAX_TRACKING_OFFSET`` (0.35 rad)."""
    from dataclasses import replace

    from armpilot.safety.state_tracking import MAX_TRACKING_OFFSET, state_jump, tracking_offset

    lim = ArmModel().limits
    fast = replace(lim, velocity=np.full(len(lim.velocity), 37.0))
    home = np.clip(ArmModel().profile.home, lim.lower, lim.upper).astype(float)
    far = np.clip(home + 0.8, lim.lower, lim.upper)
    assert np.max(np.abs(far - home)) > MAX_TRACKING_OFFSET
    state = ArmState(lim.names)
    state.update(list(lim.names), home, np.zeros(len(home)))
    stop = hold_command(state, fast, (NOW - 0.2, np.array([0.0, 1.0]), np.vstack([far, far])), NOW, tolerance=0.1)
    assert np.allclose(stop.start, home), "the hold starts at the arm, not 0.8 rad away"
    path = CommandedPath(tracking_offset(fast.velocity, 0.1), lim.continuous)
    path.command(NOW - 0.2, NOW - 0.2, np.array([0.1]), far[None], far)
    assert path.reference(NOW, home) is None, "a path 0.8 rad off the arm is dropped: the controller is not there"
    jumped = home.copy()
    jumped[0] += 1.0
    assert "jumped" in state_jump(home, NOW, jumped, NOW + 0.008, fast, 0.1)
