"""Safety invariants over every robot profile, checked with an independent FK oracle.

Profiles: every shipped one, a shuffled controller order, six joints with a
separate gripper, continuous wrist joints (``robot_variants``). For each,
generated chunks (random walks from poses near home, some with defects) go
through ``check_chunk`` with the workspace checker; whatever is accepted is
re-checked here against the URDF's position, velocity, acceleration and jerk
limits, the braking distance, and, through ``fk_oracle`` (plain numpy on the
URDF, no pinocchio), the workspace box and the table.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from armpilot.rejections import Reason
from armpilot.robot import ArmModel
from armpilot.safety.limits import SafetyConfig, check_chunk
from armpilot.safety.state_tracking import ArmState, hold_command
from armpilot.safety.stopping import CLAMPED_OVERSHOOT, braking_distance, with_braking_tail
from armpilot.safety.workspace import WorkspaceChecker

from fk_oracle import UrdfChain
from robot_variants import ALL_PROFILES, profile, safe_velocity

CFG = SafetyConfig()
NOW = 50.0
TOL = 1e-6
DT = 0.1


@pytest.fixture(scope="module")
def kit():
    """Per profile: (profile, ArmModel, WorkspaceChecker, oracle), built once."""
    cache = {}

    def get(name):
        if name not in cache:
            p = profile(name)
            arm = ArmModel(p)
            checker = WorkspaceChecker(arm, table_clearance=CFG.table_clearance)
            cache[name] = (p, arm, checker, UrdfChain(p.urdf_xml, p.base_frame))
        return cache[name]

    return get


def make_chunk(p, rng: np.random.Generator, start: np.ndarray, horizon: int, speed: float, defect: str):
    """(times (H,), positions (H, J)) a smooth random motion from ``start`` plus an optional defect."""
    vmax = safe_velocity(p)
    direction = rng.uniform(-1, 1, len(start))
    bend = rng.uniform(-1, 1, len(start))
    t = DT * np.arange(1, horizon + 1)
    positions = start + vmax * speed * (np.outer(t, direction) + 0.5 * np.outer(t**2, bend))
    joint = int(rng.integers(len(start)))
    if defect == "jump":
        positions[horizon // 2:, joint] += 0.4
    elif defect == "limit":
        positions[:, joint] += 3.5
    elif defect == "nan":
        positions[-1, joint] = np.nan
    elif defect == "dive":  # push the wrist down towards the table
        positions[:, 1 % len(start)] += np.linspace(0, 1.2, horizon)
    return t, positions


def assert_safe(p, arm, oracle, verdict, measured, passive, moving=None):
    """Everything the safety node promises about an accepted chunk, re-derived independently; ``moving`` (J,):
    the controller's velocity as the chunk arrives (None: at rest). Acceleration and jerk are checked on the
    whole command as sent, joined to the controller's steady motion before it (before session 26 neither the
    step from that motion nor the seam between a chunk and the stop after it was)."""
    names = p.joints
    lower = np.array([p.urdf_joints[n].lower for n in names])
    upper = np.array([p.urdf_joints[n].upper for n in names])
    vmax = np.array([p.urdf_joints[n].velocity for n in names])
    q, t = verdict.positions, verdict.times
    assert np.all(q >= lower - TOL) and np.all(q <= upper + TOL)
    continuous = ~np.isfinite(lower)
    wrapped = (q[0] - measured + np.pi) % (2 * np.pi) - np.pi
    assert np.allclose(np.where(continuous, q[0] - measured, wrapped), wrapped, atol=1e-9), \
        "a continuous joint was not shifted to the measured turn"
    lead = verdict.stamp + t[0] - NOW  # a hold on the way to point 0 brakes from that move's speed
    approach = np.clip(np.where(continuous, wrapped, q[0] - measured) / lead, -vmax, vmax)
    stop = q[0] + braking_distance(approach, p.max_acceleration, p.max_jerk)  # a hold clamps CLAMPED_OVERSHOOT
    assert np.all(stop >= lower - CLAMPED_OVERSHOOT - TOL) and np.all(stop <= upper + CLAMPED_OVERSHOOT + TOL)
    if len(t) > 1:
        v = np.diff(q, axis=0) / np.diff(t)[:, None]
        assert np.all(np.abs(v) <= vmax + TOL)
        brake = braking_distance(v, p.max_acceleration, p.max_jerk)  # a hold anywhere along each segment
        ends = np.vstack([q[:-1] + brake, q[1:] + brake])
        assert np.all(ends >= lower - TOL) and np.all(ends <= upper + TOL)
    # the path the controller follows: steady at its velocity before now (for two leads), from the measured arm
    # at now to point 0 within the lead, then the points and the stop sent after them; finite-difference
    # acceleration and jerk along all of it
    before = np.zeros(len(names)) if moving is None else moving
    origin = q[0] - np.where(continuous, wrapped, q[0] - measured)
    sent_t, sent_q = with_braking_tail(CFG.enforced(arm.limits), t, q, origin, lead)
    path_t = np.concatenate([[NOW - 2 * lead, NOW - lead, NOW], verdict.stamp + sent_t])
    path_q = np.vstack([origin - 2 * before * lead, origin - before * lead, origin, sent_q])
    mid = (path_t[1:] + path_t[:-1]) / 2
    a = np.diff(np.diff(path_q, axis=0) / np.diff(path_t)[:, None], axis=0) / np.diff(mid)[:, None]
    assert np.all(np.abs(a) <= p.max_acceleration + TOL)
    jerk = 3 * np.diff(a, axis=0) / (path_t[3:] - path_t[:-3])[:, None]  # 6 x the third divided difference
    assert np.all(np.abs(jerk) <= p.max_jerk + TOL)
    assert_ends_at_rest(p, arm, oracle, verdict, origin, lead, passive)
    for row in q:
        values = dict(zip(names, row))
        values.update(passive)
        for watched in p.watched_frames:
            point = oracle.point(watched.frame, values, watched.offset_z)
            assert point[2] >= p.table_z + CFG.table_clearance + watched.min_height - TOL, watched.frame
            assert np.all(point >= p.workspace_min - TOL) and np.all(point <= p.workspace_max + TOL), watched.frame


def assert_ends_at_rest(p, arm, oracle, verdict, origin, lead, passive):
    """The command as sent (``with_braking_tail``): the chunk's points unchanged, then a stop that leaves the
    last point at the speed the controller reaches it with and brakes to rest within the acceleration and jerk
    limits, inside the position limits, the box and above the table."""
    q, t = verdict.positions, verdict.times
    times, positions = with_braking_tail(CFG.enforced(arm.limits), t, q, origin, lead)
    assert np.array_equal(times[:len(t)], t) and np.array_equal(positions[:len(t)], q)
    if len(t) > 1:
        entry = (q[-1] - q[-2]) / (t[-1] - t[-2])
    else:
        entry = arm.limits.difference(q[0], origin) / lead
    if len(times) == len(t):
        assert np.allclose(entry, 0.0, atol=1e-9), "a chunk ending in motion is sent without a stop"
        return
    h = times[len(t)] - times[len(t) - 1]
    # the controller: the last segment at its speed, the stop's points, then it holds the last one
    path_t = np.concatenate([[times[len(t) - 1] - h], times[len(t) - 1:], [times[-1] + h]])
    path_q = np.vstack([q[-1] - entry * h, positions[len(t) - 1:], positions[-1:]])
    v = np.diff(path_q, axis=0) / np.diff(path_t)[:, None]
    assert np.all(np.abs(v) <= arm.limits.velocity * CFG.velocity_scale + TOL)
    mid = (path_t[1:] + path_t[:-1]) / 2
    a = np.diff(v, axis=0) / np.diff(mid)[:, None]
    assert np.all(np.abs(a) <= p.max_acceleration + TOL), "the stop after the chunk brakes too hard"
    jerk = 3 * np.diff(a, axis=0) / (path_t[3:] - path_t[:-3])[:, None]
    assert np.all(np.abs(jerk) <= p.max_jerk + TOL)
    lower, upper = arm.limits.lower, arm.limits.upper
    tail = positions[len(t):]
    assert np.all(tail >= lower - CLAMPED_OVERSHOOT - TOL) and np.all(tail <= upper + CLAMPED_OVERSHOOT + TOL)
    for row in tail:
        values = dict(zip(p.joints, row))
        values.update(passive)
        for watched in p.watched_frames:
            point = oracle.point(watched.frame, values, watched.offset_z)
            assert point[2] >= p.table_z + CFG.table_clearance + watched.min_height - TOL, watched.frame
            assert np.all(point >= p.workspace_min - TOL) and np.all(point <= p.workspace_max + TOL), watched.frame


@pytest.mark.parametrize("name", ALL_PROFILES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), speed=st.floats(0.0, 1.5), horizon=st.integers(2, 12),
       defect=st.sampled_from(["none", "none", "jump", "limit", "nan", "dive"]), shuffle=st.booleans(),
       turns=st.integers(-1, 1), carried=st.sampled_from([None, 0.0, 0.5, 1.0]))
def test_accepted_chunks_obey_every_limit(kit, name, seed, speed, horizon, defect, shuffle, turns, carried):
    p, arm, ws, oracle = kit(name)
    rng = np.random.default_rng(seed)
    lower, upper = arm.limits.lower, arm.limits.upper
    spread = np.where(np.isfinite(upper - lower), 0.15 * np.minimum(upper - lower, 2.0), 0.3)
    measured = np.clip(p.home + rng.uniform(-1, 1, len(p.home)) * spread, lower, upper)
    passive = dict(arm.passive_defaults)
    times, positions = make_chunk(p, rng, measured, horizon, speed, defect)
    # a continuous joint may be proposed a whole turn away: it is the same angle
    positions = positions + 2 * np.pi * turns * arm.limits.continuous
    order = rng.permutation(len(p.joints)) if shuffle else np.arange(len(p.joints))
    names = [p.joints[k] for k in order]
    # the controller at rest (None: no command known), or already moving into the chunk at a fraction of its speed
    first_step = positions[0] - measured - 2 * np.pi * turns * arm.limits.continuous
    moving = None if carried is None else carried * first_step / DT
    verdict = check_chunk(CFG, arm.limits, names, NOW, times, positions[:, order], NOW, measured,
                          workspace=ws, passive=passive, reference=None if carried is None else measured,
                          reference_velocity=moving)
    event(f"{name}: {verdict.reason}")
    if verdict.accepted:
        assert_safe(p, arm, oracle, verdict, measured, passive, moving)
    if defect in ("limit", "nan") and not arm.limits.continuous.any():
        assert not verdict.accepted


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_hold_from_full_speed_stays_within_acceleration_and_jerk(kit, name):
    """Every joint at its velocity limit mid-chunk: the hold brakes within the profile's limits."""
    p, arm, _, _ = kit(name)
    lim = arm.limits
    velocity = lim.velocity * np.where(np.arange(len(p.joints)) % 2, 1.0, -1.0)
    times = np.array([0.0, 1.0])
    positions = np.vstack([p.home, p.home + velocity])
    state = ArmState(p.joints)
    stop = hold_command(state, lim, (NOW - 0.5, times, positions), NOW)
    start = p.home + 0.5 * velocity
    t = np.concatenate([[0.0], stop.times])
    q = np.vstack([start, stop.positions])
    v = np.vstack([velocity, stop.velocities])
    assert np.allclose(v[-1], 0.0) and np.allclose(q[1] - start, velocity * t[1], rtol=0.05, atol=1e-3)
    accel = np.diff(v, axis=0) / np.diff(t)[:, None]
    assert np.all(np.abs(accel) <= p.max_acceleration * 1.001)
    fd_velocity = np.diff(q, axis=0) / np.diff(t)[:, None]
    assert np.all(np.abs(fd_velocity) <= lim.velocity + TOL)


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_hold_never_ends_further_outside_than_the_joint_was(kit, name):
    """At a limit and moving outward at full speed: brake past it, come back to it, jerk-limited; measured
    outside already (and still moving out): back to where it was measured, not dragged across the range."""
    p, arm, _, _ = kit(name)
    lim = arm.limits
    bounded = np.flatnonzero(np.isfinite(lim.upper))
    for outside in (0.0, 0.01):
        position = np.clip(p.home, lim.lower, lim.upper).astype(float)
        position[bounded] = lim.upper[bounded] + outside
        velocity = np.where(np.isfinite(lim.upper), lim.velocity, 0.0)
        state = ArmState(p.joints)
        assert state.update(list(p.joints), position, velocity) is None
        stop = hold_command(state, lim, None, NOW)
        assert np.allclose(stop.positions[-1][bounded], position[bounded]) and np.allclose(stop.velocities[-1], 0.0)
        t = np.concatenate([[0.0], stop.times])
        q = np.vstack([position, stop.positions])
        v = np.vstack([velocity, stop.velocities])
        fd_velocity = np.diff(q, axis=0) / np.diff(t)[:, None]
        assert np.all(np.abs(fd_velocity) <= lim.velocity + TOL) and np.all(np.abs(v) <= lim.velocity + TOL)
        accel = np.diff(v, axis=0) / np.diff(t)[:, None]
        assert np.all(np.abs(accel) <= p.max_acceleration * 1.001)
        jerk = np.diff(accel, axis=0) / np.diff(t)[1:, None]
        assert np.all(np.abs(jerk) <= p.max_jerk * 1.2)  # sampled every 20 ms: finite differences overshoot a little


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_hold_at_rest_does_not_move(kit, name):
    p, arm, _, _ = kit(name)
    state = ArmState(p.joints)
    assert state.update(list(p.joints), p.home, np.zeros(len(p.joints))) is None
    stop = hold_command(state, arm.limits, None, NOW)
    assert np.allclose(stop.positions, p.home) and np.allclose(stop.velocities, 0.0)


def test_joint_states_missing_a_profile_joint_is_refused_with_the_joint_named():
    p = profile("armpilot_six")
    state = ArmState(p.joints, ArmModel(p).passive_joints)
    problem = state.update(list(p.joints), p.home, None)  # no gripper_joint: the separate gripper is required
    assert problem is not None and "gripper_joint" in problem and state.positions is None
    names = list(p.joints) + ["gripper_joint"]
    assert state.update(names, np.append(p.home, 0.02), None) is None
    assert state.passive == {"gripper_joint": 0.02}
    ur = profile("ur5")
    other = ArmState(ur.joints)
    problem = other.update(["panda_joint1", "panda_joint2"], np.zeros(2), None)
    assert "shoulder_pan_joint" in problem


def test_shuffled_order_checks_kinematics_by_name(kit):
    """The same motion in the shuffled profile and the plain one gets the same verdict and FK."""
    plain, arm_plain, ws_plain, _ = kit("armpilot")
    shuffled, arm_shuffled, ws_shuffled, _ = kit("armpilot_shuffled")
    dive = np.array([[0.0, 1.3, 1.0, 0.0, 0.3, 0.0, 0.04]])  # tool 4.5 cm below the table
    order = [plain.joints.index(n) for n in shuffled.joints]
    assert ws_plain.check(dive).reason == ws_shuffled.check(dive[:, order]).reason == "table_clearance"
    assert np.allclose(arm_plain.tcp_pose(dive[0]), arm_shuffled.tcp_pose(dive[0, order]))


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_hold_starts_from_the_arm_when_it_is_not_where_the_chunk_says(kit, name):
    """The arm was reset or moved by something else: the hold brakes from the measured state, not the chunk's."""
    p, arm, _, _ = kit(name)
    lim = arm.limits
    far = np.clip(p.home + 0.8, lim.lower, lim.upper)
    state = ArmState(p.joints)
    state.update(list(p.joints), p.home, np.zeros(len(p.joints)))
    stale = (NOW - 0.2, np.array([0.0, 1.0]), np.vstack([far, far]))
    stop = hold_command(state, lim, stale, NOW, tolerance=0.05)
    assert np.allclose(stop.positions, p.home) and np.allclose(stop.velocities, 0.0)


@pytest.mark.parametrize("name", ["armpilot", "panda"])
def test_a_hold_just_before_a_point_brakes_from_the_speed_that_reached_it(kit, name):
    """Fast into point 1, slower after it (within the acceleration limit), point 2 ending near the limit: a
    hold just before point 1 still moves at the first segment's speed and would cross the limit."""
    p, arm, _, _ = kit(name)
    lim, j, dt = arm.limits, 0, 0.1
    v0 = 0.9 * lim.velocity[j]
    v1 = v0 - 0.9 * lim.acceleration[j] * dt
    stop = lambda v: float(braking_distance(np.array([v]), lim.acceleration[j:j + 1], lim.jerk[j:j + 1])[0])  # noqa: E731
    p1 = lim.upper[j] - stop(v1) - v1 * dt - 1e-3
    assert p1 + stop(v0) > lim.upper[j], "the case must reach past the limit from point 1 at the first speed"
    positions = np.tile(np.clip(p.home, lim.lower, lim.upper), (3, 1)).astype(float)
    positions[:, j] = [p1 - v0 * dt, p1, p1 + v1 * dt]
    start = positions[0].copy()
    start[j] -= v0 * dt
    moving = np.where(np.arange(len(p.joints)) == j, v0, 0.0)  # the controller already at the first speed
    verdict = check_chunk(CFG, lim, list(p.joints), NOW, np.array([0.1, 0.2, 0.3]), positions, NOW, start,
                          reference_velocity=moving)
    assert not verdict.accepted and verdict.reason == "braking_distance", verdict


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_a_far_target_is_accepted_only_if_the_way_there_stays_in_the_workspace(kit, name):
    """One-point chunks up to 1.5 rad per joint from the arm, with a lead of three times what the velocity
    limit needs: the controller moves there on a straight joint-space line, which must stay inside the box and
    above the table too (sampled no coarser than ``max_step``, as the chunk's own points are). 300 fixed seeds:
    about 1 % of the accepted ones left the workspace on the way before that was checked."""
    p, arm, ws, oracle = kit(name)
    lower, upper = arm.limits.lower, arm.limits.upper
    finite_low, finite_high = np.where(np.isfinite(lower), lower, -np.pi), np.where(np.isfinite(upper), upper, np.pi)
    measured = np.clip(p.home, finite_low, finite_high)
    passive = dict(arm.passive_defaults)
    accepted = 0
    for seed in range(1500):  # 300, or more where the arm's own body refuses most (the PR2's)
        if seed >= 300 and accepted >= 30:
            break
        target = np.clip(measured + np.random.default_rng(seed).uniform(-1.5, 1.5, len(measured)), finite_low,
                         finite_high)
        lead = float(np.max(np.abs(target - measured) / arm.limits.velocity)) * 3.0 + 0.05
        verdict = check_chunk(CFG, arm.limits, p.joints, NOW, np.array([lead]), target[None], NOW, measured,
                              workspace=ws, passive=passive)
        if not verdict.accepted:
            continue
        accepted += 1
        steps = int(np.ceil(np.max(np.abs(target - measured)) / CFG.max_step))
        for fraction in np.linspace(0.0, 1.0, steps + 1):
            values = dict(zip(p.joints, measured + fraction * (verdict.positions[0] - measured)))
            values.update(passive)
            for watched in p.watched_frames:
                point = oracle.point(watched.frame, values, watched.offset_z)
                where = f"{watched.frame}, seed {seed}, {fraction:.2f} of the way"
                assert point[2] >= p.table_z + CFG.table_clearance + watched.min_height - TOL, where
                assert np.all(point >= p.workspace_min - TOL) and np.all(point <= p.workspace_max + TOL), where
    assert accepted >= 30, f"only {accepted} of {seed + 1} far targets accepted: the test checks too little"


@pytest.mark.parametrize("name", ["ur5"])
def test_the_stop_after_an_accepted_chunk_is_free_of_self_collision(kit, name):
    """Constant-speed chunks from random poses: the stop sent after the last point (``with_braking_tail``) never
    passes where the arm hits itself or the table, or the chunk is refused. 400 fixed seeds (about 220 accepted);
    before the check one accepted chunk braked into a self-collision (the UR5's wrist into its shoulder). Seeds
    1174 and 1502, found by a search over 3,000, brake through the table clearance in the middle of the stop
    while its end is clear (checked at its end only before). The other profiles' workspaces refuse nearly every
    such chunk on other grounds."""
    p, arm, ws, _ = kit(name)
    lim, passive = arm.limits, dict(arm.passive_defaults)
    accepted = 0
    for seed in [*range(400), 1174, 1502]:
        rng = np.random.default_rng(seed)
        last = np.clip(p.home + rng.uniform(-1.2, 1.2, len(p.home)), lim.lower, lim.upper)
        velocity = rng.uniform(-0.9, 0.9, len(last)) * lim.velocity
        times = DT * np.arange(1, 4)
        positions = last - np.outer(times[::-1] - DT, velocity)
        measured = positions[0] - velocity * DT
        verdict = check_chunk(CFG, lim, p.joints, NOW, times, positions, NOW, measured, workspace=ws,
                              passive=passive, reference=measured, reference_velocity=velocity)
        if not verdict.accepted:
            continue
        accepted += 1
        sent_times, sent = with_braking_tail(CFG.enforced(lim), verdict.times, verdict.positions, measured, DT)
        assert ws.check(sent[len(verdict.times):], p.joints, passive) is None, \
            f"seed {seed}: the stop after the chunk passes through a self-collision or the table"
    assert accepted >= 100, f"only {accepted} of 400 accepted: the test checks too little"


@pytest.mark.parametrize("name", ["panda", "talos_right"])
def test_every_pair_the_srdf_disables_and_every_pair_within_the_gripper_goes_unchecked(name):
    """Pairs were removed while walking pinocchio's pair list, whose references shift on removal: 34 of the
    Panda's 35 SRDF pairs and 165 of TALOS's 459 stayed checked, and 6 of TALOS's gripper pairs (its closing
    fingers refused in a pick). The SRDF's "Default" pairs (touching at the all-zero pose only) stay checked."""
    p = profile(name)
    arm = ArmModel(p)
    checker = WorkspaceChecker(arm)
    checked = [checker._link_pair(pair) for pair in checker.geometry.collisionPairs]
    disabled = {frozenset(pair) for pair in p.disabled_collisions}
    assert disabled and not any(links in disabled for links in checked)
    assert not any(links <= arm.gripper_links() for links in checked)


@pytest.mark.parametrize("name, pose, hit", [
    ("panda", None, "panda_link5"),            # joint 6 at its stop folds the hand back onto link 5
    ("kinova_j2s6s200", None, "j2s6s200_link_4"),
    ("z1", [1.364, 0.851, -0.065, 0.201, 1.006, -0.728, -1.555], "link06"),
])
def test_links_that_touch_only_folded_at_zero_are_still_checked(name, pose, hit):
    """Pairs touching with every joint at zero (clipped into the limits) were dropped as touching by construction;
    on these arms that pose folds the arm onto itself, so these collisions passed unchecked (found by the review of
    session 28). Only pairs one joint apart are dropped for touching there now."""
    p = profile(name)
    arm = ArmModel(p)
    checker = WorkspaceChecker(arm, box_min=np.full(3, -9.0), box_max=np.full(3, 9.0), table_z=-9.0)
    q = np.clip(np.zeros(len(p.joints)), arm.limits.lower, arm.limits.upper) if pose is None else np.array(pose)
    violation = checker.check(q[None])
    assert violation is not None and violation.reason == Reason.SELF_COLLISION and hit in violation.detail, violation
    assert checker.check(p.home[None]) is None
