"""The last check before a chunk reaches the controller (``armpilot.safety.sending.as_sent``).

While a chunk is verified the controller moves on along what it was sent before, so the straight move it makes
onto the chunk's first point starts somewhere else when the chunk is sent. Fixed seeds over every robot
profile: a far one-point target is verified while the controller is at one pose and sent while a previous
command has carried it to another; whatever ``as_sent`` lets out keeps that move inside the box and above the
table (an independent FK oracle, ``fk_oracle``), and the command ends with a stop to rest.
"""

from __future__ import annotations

import numpy as np
import pytest

from armpilot.robot import ArmModel
from armpilot.safety.limits import SafetyConfig, check_chunk, finite_derivatives
from armpilot.safety.sending import as_sent
from armpilot.safety.state_tracking import ArmState, CommandedPath
from armpilot.safety.workspace import WorkspaceChecker

from fk_oracle import UrdfChain
from robot_variants import ALL_PROFILES, profile

CFG = SafetyConfig()
TOL = 1e-6
VERIFIED_AT, SENT_AT = 10.0, 10.3  # s: the verifier took 0.3 s


def inside(p, oracle, names, q, passive) -> bool:
    values = dict(zip(names, q))
    values.update(passive)
    for watched in p.watched_frames:
        point = oracle.point(watched.frame, values, watched.offset_z)
        if point[2] < p.table_z + CFG.table_clearance + watched.min_height - TOL:
            return False
        if np.any(point < p.workspace_min - TOL) or np.any(point > p.workspace_max + TOL):
            return False
    return True


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_the_move_onto_point_0_is_checked_again_from_where_the_controller_is_when_sent(name):
    p = profile(name)
    arm = ArmModel(p)
    ws, oracle = WorkspaceChecker(arm, table_clearance=CFG.table_clearance), UrdfChain(p.urdf_xml, p.base_frame)
    lim, passive = arm.limits, dict(arm.passive_defaults)
    finite_low = np.where(np.isfinite(lim.lower), lim.lower, -np.pi)
    finite_high = np.where(np.isfinite(lim.upper), lim.upper, np.pi)
    home = np.clip(p.home, finite_low, finite_high)
    sent_count = refused_when_sent = 0
    for seed in range(600):  # 150, or more until 10 were sent (a humanoid's arm refuses most random targets)
        if seed >= 150 and sent_count >= 10:
            break
        rng = np.random.default_rng(seed)
        # the controller moves from ``start`` (at VERIFIED_AT) to ``moved`` (at SENT_AT) on an earlier command
        start = np.clip(home + rng.uniform(-0.3, 0.3, len(home)), finite_low, finite_high)
        moved = np.clip(start + rng.uniform(-0.4, 0.4, len(home)) * lim.velocity * (SENT_AT - VERIFIED_AT),
                        finite_low, finite_high)
        target = np.clip(start + rng.uniform(-1.5, 1.5, len(home)), finite_low, finite_high)
        if not (inside(p, oracle, p.joints, start, passive) and inside(p, oracle, p.joints, moved, passive)):
            continue  # where the arm already is cannot be refused; the test is about the way from there
        path = CommandedPath(np.full(len(home), 0.05), lim.continuous)
        path.command(VERIFIED_AT, SENT_AT, np.array([0.0]), moved[None], start, origin=start)
        lead = float(np.max(np.abs(target - start) / lim.velocity)) * 3.0 + 0.5
        verdict = check_chunk(CFG, lim, p.joints, VERIFIED_AT, np.array([lead]), target[None], VERIFIED_AT, start,
                              workspace=ws, passive=passive, reference=path.reference(VERIFIED_AT, start),
                              reference_velocity=path.velocity(VERIFIED_AT))
        if not verdict.accepted:
            continue
        sent, out = as_sent(CFG, lim, p.joints, verdict, SENT_AT, moved, passive, path, ws)
        if out is None:
            refused_when_sent += 1
            continue
        sent_count += 1
        origin = path.reference(SENT_AT, moved)
        assert np.allclose(origin, moved)
        steps = int(np.ceil(np.max(np.abs(out.positions[0] - origin)) / CFG.max_step)) + 1
        for fraction in np.linspace(0.0, 1.0, steps + 1):
            way = origin + fraction * (out.positions[0] - origin)
            assert inside(p, oracle, p.joints, way, passive), f"seed {seed}: {fraction:.2f} of the way onto point 0"
        for q in out.positions:  # the point and the stop after it
            assert inside(p, oracle, p.joints, q, passive), f"seed {seed}: the stop after the point"
        assert out.times[-1] > out.times[0] or np.allclose(out.positions[0], origin)
        assert out.chunk_end == pytest.approx(VERIFIED_AT + lead)
    assert sent_count >= 10, f"only {sent_count} sent: the test checks too little"
    print(f"{name}: {sent_count} sent, {refused_when_sent} refused when sent")


def _ramp(lim, j: int, start: np.ndarray, spacing: float, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """A chunk from rest speeding joint ``j`` up (toward its farther limit) at ``fraction`` of its acceleration limit
    (jerk-limited at the same fraction) until 0.7 of its velocity limit: it ends while still accelerating."""
    step = 1e-4
    tt = np.arange(0.0, 3.0, step)
    acc = np.minimum(fraction * lim.jerk[j] * tt, fraction * lim.acceleration[j])
    vel = np.cumsum(acc) * step
    pos = np.cumsum(vel) * step
    room_up = lim.upper[j] - start[j] if np.isfinite(lim.upper[j]) else np.inf
    room = max(room_up, start[j] - lim.lower[j])
    # a fast arm's joint (G1: 6 rad/s at 5 rad/s^2) would leave its range first: it ends within half the room
    end = min(np.searchsorted(vel, 0.7 * lim.velocity[j]), np.searchsorted(pos, 0.5 * room))
    count = max(int(end * step / spacing), 1)
    times = spacing * np.arange(1, count + 1)
    positions = np.tile(start, (count, 1))
    direction = 1.0 if room_up >= start[j] - lim.lower[j] else -1.0
    positions[:, j] += direction * np.interp(times, tt, pos)
    return times, positions


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_what_is_sent_joins_the_controllers_motion_within_the_acceleration_and_jerk_limits(name):
    """Chunks that end while they speed up (points 20 ms or 100 ms apart), sent to a controller at rest: the whole
    command (the step off rest, the chunk, the stop after it) keeps the finite-difference acceleration and jerk
    within the limits, or is refused. Before session 26 the stop after a chunk started at zero acceleration right
    after a point still accelerating (jerk 2-3 times the limit on every profile with points 20 ms apart), and the
    step from rest into a one-point chunk was not checked for jerk."""
    p = profile(name)
    lim = ArmModel(p).limits
    finite_low = np.where(np.isfinite(lim.lower), lim.lower, -np.pi)
    finite_high = np.where(np.isfinite(lim.upper), lim.upper, np.pi)
    rest = np.clip(p.home, finite_low, finite_high).astype(float)
    checked = 0
    for j in range(len(rest)):
        for spacing in (0.02, 0.1):
            for fraction in (0.3, 0.6, 0.9):
                times, positions = _ramp(lim, j, rest, spacing, fraction)
                if np.any(positions > lim.upper) or np.any(positions < lim.lower):
                    continue
                verdict = check_chunk(CFG, lim, p.joints, VERIFIED_AT, times, positions, VERIFIED_AT, rest)
                if not verdict.accepted:
                    continue
                path = CommandedPath(np.full(len(rest), 0.05), lim.continuous)
                _, out = as_sent(CFG, lim, p.joints, verdict, VERIFIED_AT, rest, {}, path, None)
                if out is None:
                    continue
                checked += 1
                lead = out.times[0]
                t = np.concatenate([[-2 * lead, -lead, 0.0], out.times])
                q = np.vstack([rest, rest, rest, out.positions])
                acceleration, jerk = finite_derivatives(t, q)
                where = f"{p.joints[j]}, points {spacing * 1e3:.0f} ms apart, {fraction} of the acceleration limit"
                assert np.all(np.abs(acceleration) <= lim.acceleration + 1e-6), where
                assert np.all(np.abs(jerk) <= lim.jerk + 1e-6), where
    assert checked >= 2, f"only {checked} ramps accepted: the test checks too little"


def test_leaving_rest_too_abruptly_is_refused_where_the_controller_leaves_its_path():
    """A UR5 at rest and a chunk moving off at 0.12 rad/s with point 0 20 ms ahead: acceleration 6 rad/s^2 where
    the controller leaves its path (limit 10), but a jerk of 300 rad/s^3 (limit 200) leaving rest, which only the
    junction's first row (from the steady motion before, added in session 26) sees."""
    p = profile("ur5")
    lim = ArmModel(p).limits
    home = np.clip(p.home, lim.lower, lim.upper).astype(float)
    velocity = np.zeros(len(home))
    velocity[0] = 0.12
    times = 0.02 + 0.1 * np.arange(5)
    verdict = check_chunk(CFG, lim, p.joints, VERIFIED_AT, times, home + np.outer(times, velocity), VERIFIED_AT, home)
    assert verdict.reason == "jerk_limit" and "leaves its path" in verdict.detail, verdict.detail
    gentle = check_chunk(CFG, lim, p.joints, VERIFIED_AT, times, home + np.outer(times, velocity / 2), VERIFIED_AT,
                         home)
    assert gentle.accepted, gentle.detail


def test_a_continuous_joint_read_from_a_driver_that_counts_turns_is_taken_as_read():
    """After a gap a turn-counting driver reads 12.6 after 9.0: the tracker keeps 12.6 (it moved on to 6.32, a
    turn away, and a chunk was then sent a turn from the controller); a wrapping driver's reading stays in the
    turn of the one before."""
    lim = ArmModel(profile("ur5_continuous")).limits
    j = list(lim.names).index("wrist_1_joint")
    q = np.zeros(len(lim.names))
    state = ArmState(lim.names, continuous=lim.continuous)
    for stamp, reading in ((10.0, 9.0), (11.2, 12.6)):
        q[j] = reading
        assert state.update(list(lim.names), q, None, stamp=stamp) is None
    assert state.positions[j] == pytest.approx(12.6)
    q[j] = 12.6 + 0.1 - 4 * np.pi  # the same driver wrapping from now on: near 12.7, not 0.03
    assert state.update(list(lim.names), q, None, stamp=11.3) is None
    assert state.positions[j] == pytest.approx(12.7)
