"""Safety core v1: derivative and kinematic checks, candidate selection, watchdog, candidate tables.

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
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import PointCloud2

from armpilot.policies.perturbed import PerturbedProposer, ProposerConfig
from armpilot.robot import CONTROLLED_JOINTS, GRIPPER_JOINT, HOME_POSITION, top_down_rotation
from armpilot.ros_nodes.candidate_conversions import TIME_FIELD, candidates_from_msg, candidates_to_msg
from armpilot.ros_nodes.conversion_core import ConversionError
from armpilot.ros_nodes.conversions import pointcloud_to_msg
from armpilot.safety.limits import SafetyConfig, check_chunk
from armpilot.safety.supervisor import Supervisor
from armpilot.safety.verifier import VerifierConfig, perturb, select
from armpilot.safety.workspace import WorkspaceChecker

CFG = SafetyConfig()
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
    return WorkspaceChecker(arm, np.array(CFG.workspace_min), np.array(CFG.workspace_max), CFG.table_z,
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
    assert watched_points(arm, q)[0][2, 0] < CFG.workspace_min[0]
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
        assert np.all(points[:, 2] > heights) and np.all(points > CFG.workspace_min)


def test_self_collision_can_be_switched_off(arm):
    q = np.array([0.0, -1.0, 2.4, 0.508, 2.0, 0.0, 0.04])
    plain = WorkspaceChecker(arm, np.array(CFG.workspace_min), np.array(CFG.workspace_max), 0.0, 0.003, False)
    assert check(arm, *hold_chunk(q), ws=plain).accepted


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
            assert np.all(np.abs(accel) <= np.array(CFG.max_acceleration) + TOL)
    for q in positions:
        points, heights = watched_points(arm, q)
        assert np.all(points[:, 2] >= CFG.table_z + CFG.table_clearance + heights - TOL)
        assert np.all(points >= np.array(CFG.workspace_min) - TOL) and np.all(points <= np.array(CFG.workspace_max) + TOL)


def swinging_chunk(arm, start, seed, v_frac, a_frac, drift, dt, horizon):
    """(H,) times, (H, J) positions: each joint swings (velocity amplitude ``v_frac`` of its limit, acceleration
    amplitude ``a_frac`` of its limit, random phase) on a random drift (``drift`` of the velocity limits)."""
    rng = np.random.default_rng(seed)
    speed = arm.limits.velocity * v_frac * rng.uniform(0.2, 1.0, 7)
    omega = a_frac * np.array(CFG.max_acceleration) / speed
    phase = rng.uniform(0, 2 * np.pi, 7)
    times = dt * np.arange(1, horizon + 1)[:, None]
    swing = speed / omega * (np.cos(phase) - np.cos(omega * times + phase))
    positions = start + drift * arm.limits.velocity * rng.uniform(-1, 1, 7) * times + swing
    positions[:, -1] = np.clip(positions[:, -1], 0.0, 0.04)
    return times[:, 0], positions


@settings(max_examples=2300, deadline=None)
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


def choose(arm, times, candidates, ws=None, config=VerifierConfig(), names=CONTROLLED_JOINTS, measured=HOME_POSITION,
           **kw):
    return select(config, CFG, arm.limits, names, NOW, times, candidates, NOW, measured, workspace=ws,
                  rng=np.random.default_rng(0), **kw)


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
    loved = lambda chunks, *_: np.where(np.abs(chunks[:, 0, 1] - cands[3, 0, 1]) < 1e-9, 1e6, 0.0)  # noqa: E731
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
    assert selection.verdict.reason == "workspace" and selection.rejected == {"table_clearance": 2}


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


@settings(max_examples=700, deadline=None)
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
    for k, defect in enumerate(defects):
        cands[k, 3:, 1] += {"none": 0, "nan": np.nan, "jump": 0.3, "limit": 4.0, "dive": 0.15}[defect]
    names, order = [CONTROLLED_JOINTS[i] for i in order], np.array(order)
    config = VerifierConfig(perturb_samples=samples, perturb_std=0.02)
    measured = starts[start]
    selection = select(config, CFG, arm.limits, names, NOW, times, cands[..., order], NOW, measured,
                       executing=cands[0] if follow else None, workspace=ws, rng=np.random.default_rng(0))
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
    config = VerifierConfig(perturb_samples=5, perturb_std=0.05, weight_vote=0.0)
    selection = choose(arm, times, cands[..., order], config=config, names=names)
    assert selection.considered == 18 and selection.verdict.accepted
    assert np.array_equal(selection.verdict.positions[:, 6], cands[0, :, 6])


# --- supervisor -----------------------------------------------------------------------------------------------------

def test_estop_latches_until_reset():
    sup = Supervisor(proposal_timeout=0.3, joint_state_timeout=0.25)
    sup.joint_state(0.0)
    assert sup.refusal(0.1) is None
    assert sup.estop("button") and not sup.estop("again")
    for t in (0.1, 0.15, 0.2):
        sup.joint_state(t)
        assert sup.refusal(t)[0] == "estop"
    sup.reset()
    assert sup.refusal(0.2) is None


def test_disabled_refuses():
    sup = Supervisor(0.3, 0.25)
    sup.joint_state(0.0)
    sup.set_enabled(False)
    assert sup.refusal(0.0)[0] == "disabled"
    sup.set_enabled(True)
    assert sup.refusal(0.0) is None


def test_proposal_timeout_only_while_executing_and_once():
    sup = Supervisor(proposal_timeout=0.3, joint_state_timeout=10.0)
    sup.joint_state(0.0)
    assert sup.watchdog(5.0) is None  # idle: silence is fine
    sup.accepted(1.0, ends_at=2.0)
    assert sup.watchdog(1.2) is None
    assert sup.watchdog(1.4)[0] == "proposal_timeout"
    sup.held()
    assert sup.watchdog(1.5) is None and sup.watchdog(1.9) is None
    sup.accepted(3.0, ends_at=3.2)
    assert sup.watchdog(3.5) is None  # the chunk ended before the timeout: nothing moves


def test_joint_state_timeout():
    sup = Supervisor(proposal_timeout=0.3, joint_state_timeout=0.25)
    assert sup.refusal(0.0)[0] == "no_joint_state"
    sup.joint_state(1.0)
    assert sup.watchdog(1.2) is None and sup.refusal(1.2) is None
    assert sup.watchdog(1.3)[0] == "joint_state_timeout" and sup.refusal(1.3)[0] == "no_joint_state"
    sup.held()
    assert sup.watchdog(1.4) is None
    sup.joint_state(1.5)
    assert sup.refusal(1.5) is None


# --- candidate table ------------------------------------------------------------------------------------------------

def test_candidate_table_round_trip_over_serialization():
    names = ("wrist_3_joint", "gripper_joint", "shoulder_pan_joint")  # any order, kept
    times = np.array([0.1, 0.2, 0.35, 0.5])
    positions = np.random.default_rng(4).normal(size=(3, 4, 3))
    msg = candidates_to_msg(names, times, positions, 12.25)
    back = candidates_from_msg(deserialize_message(serialize_message(msg), PointCloud2))
    assert back.joint_names == names and back.stamp_sec == 12.25
    assert np.array_equal(back.times, times) and np.array_equal(back.positions, positions)
    assert (msg.height, msg.width, msg.header.frame_id) == (3, 4, "joint_space")


def test_candidate_table_wrong_shapes_and_names():
    times = np.arange(1, 5) * 0.1
    with pytest.raises(ConversionError, match="shape"):
        candidates_to_msg(CONTROLLED_JOINTS, times, np.zeros((4, 7)), 0.0)
    with pytest.raises(ConversionError, match="shape"):
        candidates_to_msg(CONTROLLED_JOINTS, times, np.zeros((2, 5, 7)), 0.0)
    with pytest.raises(ConversionError, match="unique"):
        candidates_to_msg(("a", "a"), times, np.zeros((1, 4, 2)), 0.0)
    with pytest.raises(ConversionError, match="empty"):
        candidates_from_msg(candidates_to_msg(("a",), times, np.zeros((0, 4, 1)), 0.0))


def table_msg(fields, rows, width, times=None):
    table = np.zeros((rows, width), fields)
    if times is not None:
        table[TIME_FIELD] = times
    msg = pointcloud_to_msg(table.reshape(-1), 0.0, "joint_space")
    msg.height, msg.width, msg.row_step = rows, width, width * msg.point_step
    return msg


def test_candidate_table_rejects_malformed_fields():
    with pytest.raises(ConversionError, match=TIME_FIELD):
        candidates_from_msg(table_msg([("a", "<f8")], 2, 3))
    with pytest.raises(ConversionError, match="float64"):
        candidates_from_msg(table_msg([(TIME_FIELD, "<f8"), ("a", "<f4")], 2, 3))
    with pytest.raises(ConversionError, match="differs"):
        candidates_from_msg(table_msg([(TIME_FIELD, "<f8"), ("a", "<f8")], 2, 3, times=[[0.1, 0.2, 0.3], [0.1, 0.2, 0.4]]))


# --- perturbed proposer ---------------------------------------------------------------------------------------------

class FixedPolicy:
    """A policy that always proposes the same slow chunk."""

    horizon, chunk_dt = 10, 0.1

    def __init__(self) -> None:
        self.chunk = ramp(HOME_POSITION, 1, [0.01] * self.horizon, self.chunk_dt)[1]

    def reset(self) -> None:
        pass

    def predict_action_chunk(self, observation) -> np.ndarray:
        return self.chunk.copy()


def test_proposer_noise_only_on_arm_joints():
    policy = FixedPolicy()
    proposer = PerturbedProposer(policy, ProposerConfig(num_candidates=8, noise_std=0.02, seed=5))
    cands = proposer.propose(None)
    assert cands.shape == (8, 10, 7)
    shift = cands - policy.chunk
    assert np.all(shift[..., 6] == 0) and np.all(np.abs(shift[..., :6]) > 0)
    assert np.allclose(shift, shift[:, :1])  # one constant offset per candidate


@pytest.mark.parametrize("probability", [0.0, 0.2, 0.6])
def test_proposer_bad_candidate_rate(probability):
    policy = FixedPolicy()
    proposer = PerturbedProposer(policy, ProposerConfig(num_candidates=20, noise_std=0.01, bad_probability=probability,
                                                        seed=6))
    cands = np.concatenate([proposer.propose(None) for _ in range(100)])  # 2000 candidates
    shift = cands - policy.chunk
    bad = ~np.all(np.isclose(shift, shift[:, :1]), axis=(1, 2))  # NaN, jumps and ramps are not a constant offset
    assert abs(bad.mean() - probability) < 0.035
    if probability:
        assert 0.15 < np.isnan(cands).any(axis=(1, 2)).sum() / bad.sum() < 0.35  # a quarter are malformed
