"""Safety core v1: derivative and kinematic checks, candidate selection (see also test_safety_v1_inputs.py).

Kinematic properties are re-derived with pinocchio here (own configuration
vector, fingertips from the finger joints), not through ``WorkspaceChecker``.
"""

from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from armpilot.robot import CONTROLLED_JOINTS, GRIPPER_JOINT, HOME_POSITION, top_down_rotation
from armpilot.robot_profile import load_profile
from armpilot.safety.limits import SafetyConfig, check_chunk
from armpilot.safety.verifier import VerifierConfig, perturb, select
from armpilot.safety.workspace import WorkspaceChecker

CFG = SafetyConfig()
PROFILE = load_profile()
NOW = 100.0
TOL = 1e-6
#: Independent statement of the watched points: (pinocchio joint, min height above the table, m).
JOINT_POINTS = (("elbow_joint", 0.05), ("wrist_2_joint", 0.04))
FINGER_JOINTS = ("gripper_joint", "gripper_right_finger_joint")
FINGER_LENGTH = 0.06  # finger box spans 0..0.06 m along the finger joint's z (URDF)
GRASP = ((0.45, 0.1, 0.03), 0.3)  # top-down grasp just above the table: TCP position, yaw
BEHIND = ((-0.35, 0.2, 0.3), 2.6)  # TCP behind the base, outside the box (x < -0.3)
FINGERS_ROUND_ARM = np.array([0.0, -1.0, 2.4, 0.0, 1.95, 0.0, 0.04])  # folded: open fingers beside the upper arm


@pytest.fixture(scope="module")
def ws(arm) -> WorkspaceChecker:
    return WorkspaceChecker(arm, np.array(PROFILE.workspace_min), np.array(PROFILE.workspace_max), PROFILE.table_z,
                            CFG.table_clearance, self_collision=True)


def ik(arm, target, yaw, pan=0.0):
    start = HOME_POSITION.copy()
    start[0] = pan
    result = arm.ik(np.array(target), top_down_rotation(yaw), start)
    assert result.converged
    return result.positions


@pytest.fixture(scope="module")
def starts(arm) -> np.ndarray:
    """Start poses for generated chunks: home, near the table, near the box and collision edges."""
    poses = [HOME_POSITION, ik(arm, *GRASP), ik(arm, (0.45, 0.0, 0.012), 0.0), ik(arm, (0.3, -0.3, 0.05), -0.8),
             ik(arm, (0.5, 0.25, 0.15), 0.5), ik(arm, *BEHIND, pan=2.6), FINGERS_ROUND_ARM]
    return np.array(poses)


def watched_points(arm, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(4, 3) elbow, wrist, TCP, fingertip centre and (4,) their min heights, by plain pinocchio FK."""
    model = arm.model
    data = model.createData()
    full = pin.neutral(model)
    for name, value in zip(CONTROLLED_JOINTS + ("gripper_right_finger_joint",), list(q) + [q[-1]]):
        full[model.joints[model.getJointId(name)].idx_q] = value
    pin.framesForwardKinematics(model, data, full)
    joints = [data.oMi[model.getJointId(name)].translation for name, _ in JOINT_POINTS]
    tcp = data.oMf[model.getFrameId("tool_tcp")].translation
    tips = [data.oMi[model.getJointId(n)].act(np.array([0, 0, FINGER_LENGTH])) for n in FINGER_JOINTS]
    return np.array(joints + [tcp, np.mean(tips, axis=0)]), np.array([h for _, h in JOINT_POINTS] + [0.0, 0.0])


def hold_chunk(q, horizon=5, dt=0.1):
    return dt * np.arange(1, horizon + 1), np.tile(q, (horizon, 1))


def check(arm, times, positions, measured=None, ws=None, names=CONTROLLED_JOINTS):
    measured = positions[0] if measured is None else measured
    return check_chunk(CFG, arm.limits, names, NOW, times, positions, NOW, measured, workspace=ws)


def ramp(q, joint, steps, dt):
    """Chunk starting at ``q``; ``joint`` moves by the cumulative ``steps``."""
    positions = np.tile(q, (len(steps), 1))
    positions[:, joint] += np.cumsum(steps)
    return dt * np.arange(1, len(steps) + 1), positions


# --- derivative checks ---------------------------------------------------------------------------------------------

def test_acceleration_limit(arm):
    times, positions = ramp(HOME_POSITION, 0, [0, 0, 0.09, 0.09], dt=0.05)  # 0 -> 1.8 rad/s in 0.05 s = 36 rad/s^2
    verdict = check(arm, times, positions)
    assert verdict.reason == "acceleration_limit" and "shoulder_pan_joint" in verdict.detail
    assert check(arm, *ramp(HOME_POSITION, 0, [0, 0, 0.04, 0.04], dt=0.05)).accepted  # 16 rad/s^2


def test_jerk_limit(arm):
    verdict = check(arm, *ramp(HOME_POSITION, 0, [0, 0, 0.006, 0, 0], dt=0.02))  # +-15 rad/s^2: 1500 rad/s^3
    assert verdict.reason == "jerk_limit" and "shoulder_pan_joint" in verdict.detail
    assert check(arm, *ramp(HOME_POSITION, 0, [0, 0, 0.0006, 0, 0], dt=0.02)).accepted  # 150 rad/s^3


def test_max_step(arm):
    verdict = check(arm, *ramp(HOME_POSITION, 3, [0, 0.38], dt=0.2))  # 1.9 rad/s is within wrist_1's 3 rad/s
    assert verdict.reason == "max_step" and "wrist_1_joint" in verdict.detail
    assert check(arm, *ramp(HOME_POSITION, 3, [0, 0.3], dt=0.2)).accepted


# --- kinematic checks ----------------------------------------------------------------------------------------------

def test_home_and_top_down_grasp_pass(arm, ws):
    for q in (HOME_POSITION, ik(arm, *GRASP)):
        assert check(arm, *hold_chunk(q), ws=ws).accepted
        points, heights = watched_points(arm, q)
        assert np.all(points[:, 2] >= CFG.table_clearance + heights)


def test_fingertips_below_table(arm, ws):
    q = ik(arm, (0.45, 0.0, 0.01), 0.0)  # TCP 1 cm up: fingertips 0.5 cm into the table
    assert watched_points(arm, q)[0][3, 2] < 0.0 < watched_points(arm, q)[0][2, 2] - CFG.table_clearance
    verdict = check(arm, *hold_chunk(q), ws=ws)
    assert verdict.reason == "table_clearance" and "z = -0.005" in verdict.detail
    assert check(arm, *hold_chunk(q)).accepted  # no kinematics, no objection


def test_tool_outside_box(arm, ws):
    q = ik(arm, *BEHIND, pan=2.6)
    assert watched_points(arm, q)[0][2, 0] < PROFILE.workspace_min[0]
    assert check(arm, *hold_chunk(q), ws=ws).reason == "workspace"


def test_arm_folded_into_itself(arm, ws):
    hits = []  # a search over elbow and wrist angles for the tool folded back onto the upper arm
    for elbow in np.linspace(2.0, 2.6, 7):
        for wrist_1 in np.linspace(-3.0, 3.0, 9):
            q = np.array([0.0, -1.0, elbow, wrist_1, -2.0, 0.0, 0.04])
            verdict = check(arm, *hold_chunk(q, horizon=2), ws=ws)
            if verdict.reason == "self_collision" and verdict.detail.startswith("upper_arm_link"):
                hits.append(q)
    assert hits
    for q in hits:  # the collision is real: the tool is inside the watched box and above the table
        points, heights = watched_points(arm, q)
        assert np.all(points[:, 2] > heights) and np.all(points > PROFILE.workspace_min)


def test_self_collision_can_be_switched_off(arm, ws):
    q = np.array([0.0, -1.0, 2.4, 0.508, 2.0, 0.0, 0.04])
    plain = WorkspaceChecker(arm, np.array(PROFILE.workspace_min), np.array(PROFILE.workspace_max), 0.0, 0.003, False)
    assert check(arm, *hold_chunk(q), ws=plain).accepted
    assert check(arm, *hold_chunk(q), ws=ws).reason == "self_collision"


# --- property: nothing accepted violates a limit --------------------------------------------------------------------

def assert_safe(arm, verdict, measured):
    times, positions, lim = verdict.times, verdict.positions, arm.limits
    assert np.all(np.isfinite(positions))
    assert np.all(positions >= lim.lower - TOL) and np.all(positions <= lim.upper + TOL)
    lead = verdict.stamp + times[0] - NOW
    assert np.all(np.abs(positions[0] - measured) <= lim.velocity * (lead + CFG.tracking_allowance) + TOL)
    if len(times) > 1:
        dt = np.diff(times)
        assert np.all(np.abs(np.diff(positions, axis=0)) <= CFG.max_step + TOL)
        velocity = np.diff(positions, axis=0) / dt[:, None]
        assert np.all(np.abs(velocity) <= lim.velocity * CFG.velocity_scale + TOL)
        if len(times) > 2:  # central second difference on a non-uniform grid
            accel = 2 * np.diff(velocity, axis=0) / (times[2:] - times[:-2])[:, None]
            assert np.all(np.abs(accel) <= np.array(PROFILE.max_acceleration) + TOL)
    for q in positions:
        points, heights = watched_points(arm, q)
        assert np.all(points[:, 2] >= PROFILE.table_z + CFG.table_clearance + heights - TOL)
        assert np.all(points >= np.array(PROFILE.workspace_min) - TOL)
        assert np.all(points <= np.array(PROFILE.workspace_max) + TOL)


def swinging_chunk(arm, start, seed, v_frac, a_frac, drift, dt, horizon):
    """(H,) times, (H, J) positions: each joint swings (velocity amplitude ``v_frac`` of its limit, acceleration
    amplitude ``a_frac`` of its limit, random phase) on a random drift (``drift`` of the velocity limits)."""
    rng = np.random.default_rng(seed)
    speed = arm.limits.velocity * v_frac * rng.uniform(0.2, 1.0, 7)
    omega = a_frac * np.array(PROFILE.max_acceleration) / speed
    phase = rng.uniform(0, 2 * np.pi, 7)
    times = dt * np.arange(1, horizon + 1)[:, None]
    swing = speed / omega * (np.cos(phase) - np.cos(omega * times + phase))
    positions = start + drift * arm.limits.velocity * rng.uniform(-1, 1, 7) * times + swing
    positions[:, -1] = np.clip(positions[:, -1], 0.0, 0.04)
    return times[:, 0], positions


@settings(max_examples=2500, deadline=None)
@given(
    start=st.integers(0, 6),
    seed=st.integers(0, 2**32 - 1),
    v_frac=st.sampled_from([0.3, 0.9, 1.05]),
    a_frac=st.sampled_from([0.5, 0.9, 1.0, 1.1]),
    drift=st.sampled_from([0.0, 0.2, 0.5]),
    dt=st.sampled_from([0.005, 0.02, 0.05, 0.1, 0.2]),
    horizon=st.integers(1, 16),
    poison=st.sampled_from([None] * 18 + [np.nan, np.inf, -1e9, 3.2, -3.2, 0.5]),  # one bad value in a quarter
)
def test_property_accepted_chunks_respect_all_limits(arm, ws, starts, start, seed, v_frac, a_frac, drift, dt,
                                                    horizon, poison):
    """Generated and adversarial chunks near the table, box and folded poses: accepted ones respect every limit."""
    times, positions = swinging_chunk(arm, starts[start], seed, v_frac, a_frac, drift, dt, horizon)
    if poison is not None:
        k, j = seed % horizon, seed % 7
        positions[k, j] = poison if abs(poison) > 1 else positions[k, j] + poison
    verdict = check(arm, times, positions, measured=starts[start], ws=ws)
    event(verdict.reason)
    if verdict.accepted:
        assert_safe(arm, verdict, starts[start])


# --- verifier -------------------------------------------------------------------------------------------------------

def candidates_around(q, offsets, horizon=8, dt=0.1):
    """(N, H, J) candidates: a slow move of joint 0 from ``q``, each shifted by a constant (J,) offset."""
    times, base = ramp(q, 0, [0.01] * horizon, dt)
    return times, base[None] + np.asarray(offsets)[:, None, :]


def choose(arm, times, candidates, ws=None, config=None, names=CONTROLLED_JOINTS, measured=HOME_POSITION, **kw):
    return select(config or VerifierConfig(), CFG, arm.limits, names, NOW, times, candidates, NOW, measured,
                  workspace=ws, rng=np.random.default_rng(0), gripper_joint=GRIPPER_JOINT, **kw)


def arm_offset(value, joint=1):
    offset = np.zeros(7)
    offset[joint] = value
    return offset


def test_consensus_wins_over_outliers(arm):
    rng = np.random.default_rng(1)
    offsets = [arm_offset(v) for v in rng.normal(0, 0.005, 5)] + [arm_offset(0.15), arm_offset(-0.15, joint=2)]
    selection = choose(arm, *candidates_around(HOME_POSITION, offsets))
    assert selection.verdict.accepted and selection.index < 5
    assert np.argmax(selection.scores) == selection.index and selection.scores[5:].max() < selection.scores[:5].min()


def test_infeasible_never_chosen_despite_best_score(arm, ws):
    above, into = ik(arm, (0.45, 0.0, 0.03), 0.0), ik(arm, (0.45, 0.0, 0.01), 0.0)
    times, good = candidates_around(above, [arm_offset(0.0)])
    cands = np.concatenate([np.repeat(good, 4, axis=0), good])
    cands[0, 3, 2] = np.nan         # malformed
    cands[1, :, 0] += 3.1           # beyond the pan limit
    cands[2, 4:, 0] += 0.3          # a jump: velocity limit
    cands[3] += into - above        # fingertips in the table: passes the limits, fails kinematics

    def loved(chunks, *_):  # a learned scorer that adores the candidate in the table
        return np.where(np.abs(chunks[:, 0, 1] - cands[3, 0, 1]) < 1e-9, 1e6, 0.0)

    selection = choose(arm, times, cands, ws=ws, config=VerifierConfig(weight_learned=1.0), learned=loved,
                       executing=cands[3], measured=above)
    assert selection.verdict.accepted and selection.index == 4
    assert selection.rejected == {"not_finite": 1, "position_limit": 1, "velocity_limit": 1, "table_clearance": 1}


def test_all_infeasible_holds_with_first_reason(arm, ws):
    times, cands = candidates_around(HOME_POSITION, [arm_offset(0.0)] * 2)
    cands[0, 2, 4] = np.inf
    cands[1, :, 2] = 3.0
    selection = choose(arm, times, cands)
    assert not selection.verdict.accepted and selection.index is None
    assert selection.verdict.reason == "not_finite" and np.all(selection.scores == -np.inf)
    into = ik(arm, (0.45, 0.0, 0.01), 0.0)
    selection = choose(arm, times, np.tile(into, (2, 8, 1)), ws=ws, measured=into)
    assert selection.verdict.reason == "table_clearance" and selection.rejected == {"table_clearance": 2}
    assert "table_clearance: 2); best: " in selection.verdict.detail and "z = -0.005" in selection.verdict.detail


@pytest.mark.parametrize("follow", [0, 1])
def test_continuity_prefers_executing_chunk(arm, follow):
    times, cands = candidates_around(HOME_POSITION, [arm_offset(0.1), arm_offset(-0.1)])
    selection = choose(arm, times, cands, executing=cands[follow, :, :] + 0.002)
    assert selection.index == follow
    assert choose(arm, times, cands[::-1], executing=cands[follow]).index == 1 - follow


def test_perturbation_shape_and_fixed_gripper():
    cands = np.random.default_rng(2).normal(size=(4, 6, 7))
    out = perturb(cands, 3, 0.05, np.random.default_rng(3), fixed_joints=[6])
    assert out.shape == (16, 6, 7) and np.array_equal(out[:4], cands)
    copies = out[4:].reshape(4, 3, 6, 7) - cands[:, None]
    assert np.allclose(copies[..., 6], 0.0) and np.all(np.abs(copies[..., :6]).max(axis=(2, 3)) > 0)
    assert np.allclose(copies, copies[:, :, :1])  # one offset per copy, constant over the chunk
    assert perturb(cands, 0, 0.05, np.random.default_rng(3)) is cands


def perturbed_in_message_order(cands, names, config, seed=0):
    return perturb(cands, config.perturb_samples, config.perturb_std, np.random.default_rng(seed),
                   [names.index(GRIPPER_JOINT)])


@settings(max_examples=800, deadline=None)
@given(
    start=st.integers(0, 6),
    offsets=hnp.arrays(np.float64, (6, 7), elements=st.floats(-0.2, 0.2)),
    defects=st.lists(st.sampled_from(["none", "nan", "jump", "limit", "dive"]), min_size=1, max_size=6),
    samples=st.sampled_from([0, 2]),
    order=st.permutations(list(range(7))),
    follow=st.booleans(),
)
def test_property_select_returns_only_checked_chunks(arm, ws, starts, start, offsets, defects, samples, order, follow):
    """select() accepts exactly when some candidate passes check_chunk, and returns such a candidate."""
    times, cands = candidates_around(starts[start], offsets[: len(defects)] * 0.3, horizon=6)
    cands[..., -1] = np.clip(cands[..., -1], 0.0, 0.04)
    executing = cands[0].copy() if follow else None
    for k, defect in enumerate(defects):
        cands[k, 3:, 1] += {"none": 0, "nan": np.nan, "jump": 0.3, "limit": 4.0, "dive": 0.15}[defect]
    names, order = [CONTROLLED_JOINTS[i] for i in order], np.array(order)
    config = VerifierConfig(perturb_samples=samples, perturb_std=0.02)
    measured = starts[start]
    selection = select(config, CFG, arm.limits, names, NOW, times, cands[..., order], NOW, measured,
                       executing=executing, workspace=ws, rng=np.random.default_rng(0),
                       gripper_joint=GRIPPER_JOINT)
    every = perturbed_in_message_order(cands[..., order], names, config)
    passing = [check_chunk(CFG, arm.limits, names, NOW, times, c, NOW, measured, workspace=ws).accepted for c in every]
    assert selection.verdict.accepted == any(passing)
    if selection.verdict.accepted:
        v = selection.verdict
        assert passing[selection.index]
        assert np.array_equal(v.positions[:, order], every[selection.index])
        again = check_chunk(CFG, arm.limits, CONTROLLED_JOINTS, v.stamp, v.times, v.positions, NOW, measured,
                            workspace=ws)
        assert again.accepted
        assert_safe(arm, v, measured)


def test_gripper_not_perturbed_in_any_joint_order(arm):
    times, cands = candidates_around(HOME_POSITION, [arm_offset(0.0)] * 3)
    order = np.array([6, 2, 0, 1, 3, 5, 4])
    names = [CONTROLLED_JOINTS[i] for i in order]
    seen = []

    def scorer(chunks, *_):  # sees every feasible candidate, controller order
        seen.append(chunks)
        return np.zeros(len(chunks))

    config = VerifierConfig(perturb_samples=5, perturb_std=0.05, weight_learned=1.0)
    selection = choose(arm, times, cands[..., order], config=config, names=names, learned=scorer)
    assert selection.considered == 18 and selection.verdict.accepted
    (chunks,) = seen
    assert len(chunks) == 18 and np.all(chunks[..., 6] == cands[0, :, 6])
    assert np.all(np.abs(chunks[3:, 0, :6] - cands[0, 0, :6]).max(axis=1) > 0)
