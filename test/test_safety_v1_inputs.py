"""Safety core v1 inputs: the supervisor's latches and watchdog, N x H x J candidate tables, the perturbed proposer."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import PointCloud2

from armpilot.policies.base import Policy
from armpilot.policies.perturbed import PerturbedProposer, ProposerConfig
from armpilot.robot import CONTROLLED_JOINTS, HOME_POSITION
from armpilot.ros_nodes.candidate_conversions import TIME_FIELD, candidates_from_msg, candidates_to_msg
from armpilot.ros_nodes.conversion_core import ConversionError
from armpilot.ros_nodes.conversions import pointcloud_to_msg
from armpilot.safety.supervisor import Supervisor, proposer_fault


# --- supervisor -----------------------------------------------------------------------------------------------------

def test_a_joint_state_stamped_long_ago_does_not_say_the_arm_is_alive():
    sup = Supervisor(proposal_timeout=0.3, joint_state_timeout=0.25)
    assert sup.joint_state(10.0, now=100.0, stamp=99.9) == "" and sup.refusal(10.0, 100.0) is None
    replayed = sup.joint_state(10.2, now=100.2, stamp=97.0)
    assert "3.200 s" in replayed and "joint_state_timeout" in replayed
    assert sup.joint_state(10.2, now=100.2, stamp=0.0) == "", "an unstamped state counts on arrival"
    for wall in (10.3, 10.5):  # only replayed states from here on: silence, then the hold
        assert sup.joint_state(wall, now=100.0 + wall - 10.0, stamp=97.0)
    assert sup.refusal(10.5, 100.5)[0] == "no_joint_state"
    assert sup.watchdog(100.5, 10.5)[0] == "joint_state_timeout"


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
    assert sup.watchdog(5.0, 0.0) is None  # idle: silence is fine
    sup.accepted(1.0, ends_at=2.0)
    assert sup.watchdog(1.2, 0.0) is None
    assert sup.watchdog(1.4, 0.0)[0] == "proposal_timeout"
    sup.held()
    assert sup.watchdog(1.5, 0.0) is None and sup.watchdog(1.9, 0.0) is None
    sup.accepted(3.0, ends_at=3.2)
    assert sup.watchdog(3.5, 0.0) is None  # the chunk ended before the timeout: nothing moves


def test_joint_state_silence_on_a_paused_sim_clock_waits_for_the_wall_cap():
    """A sim that pauses (its clock and arm stand still) is not silent; a dead one is, after the wall cap."""
    sup = Supervisor(proposal_timeout=0.3, joint_state_timeout=0.25)
    sup.joint_state(wall=1.0, now=50.0)
    sup.accepted(50.0, ends_at=51.0)
    assert sup.watchdog(50.0, 1.5) is None and sup.refusal(1.5, 50.0) is None  # paused 0.5 s wall: no hold
    assert sup.watchdog(50.3, 1.6)[0] == "joint_state_timeout"  # the clock ran on: silence
    sup = Supervisor(proposal_timeout=0.3, joint_state_timeout=0.25)
    sup.joint_state(wall=1.0, now=50.0)
    cap = Supervisor.PAUSED_CLOCK_TIMEOUT_S
    assert sup.watchdog(50.0, 1.0 + cap - 0.1) is None
    assert sup.watchdog(50.0, 1.0 + cap + 0.1)[0] == "joint_state_timeout"  # nothing for the wall cap: dead
    assert sup.refusal(1.0 + cap + 0.1, 50.0)[0] == "no_joint_state"


def test_joint_state_timeout():
    sup = Supervisor(proposal_timeout=0.3, joint_state_timeout=0.25)
    assert sup.refusal(0.0)[0] == "no_joint_state"
    sup.joint_state(1.0)
    assert sup.watchdog(0.0, 1.2) is None and sup.refusal(1.2) is None
    assert sup.watchdog(0.0, 1.3)[0] == "joint_state_timeout" and sup.refusal(1.3)[0] == "no_joint_state"
    sup.held()
    assert sup.watchdog(0.0, 1.4) is None
    sup.joint_state(1.5)
    assert sup.refusal(1.5) is None


def test_joint_state_timeout_is_judged_in_wall_time_while_the_node_clock_is_frozen():
    sup = Supervisor(proposal_timeout=0.3, joint_state_timeout=0.25)
    sup.joint_state(10.0)
    assert sup.watchdog(now=5.0, wall=10.3)[0] == "joint_state_timeout"  # /clock stuck at 5.0


def test_second_proposer_holds_once_and_refuses_until_one_is_left():
    sup = Supervisor(0.3, 0.25)
    sup.joint_state(0.0)
    assert sup.proposers("2 nodes publish on /policy/candidates: ['/policy', '/intruder']")
    assert not sup.proposers("2 nodes publish on /policy/candidates: ['/policy', '/intruder']")  # once
    assert sup.refusal(0.1)[0] == "second_proposer" and "/intruder" in sup.refusal(0.1)[1]
    assert not sup.proposers("")
    assert sup.refusal(0.1) is None


def test_a_second_node_on_the_controller_topic_is_a_fault_the_safety_node_alone_is_not():
    controller = "/arm_controller/joint_trajectory"
    alone = {"/policy/candidates": ["/policy (participant 1)"], controller: ["/safety (participant 2)"] * 2}
    assert proposer_fault(alone, controller) == ""
    bypass = {controller: ["/safety (participant 2)", "/safety (participant 3)"]}  # a second node takes its name
    fault = proposer_fault(bypass, controller)
    assert "bypass the safety node" in fault and "participant 3" in fault
    assert "bypass" not in proposer_fault({"/policy/candidates": ["/policy", "/intruder"]}, controller)


def test_a_clock_jump_back_holds_and_either_jump_is_reported_for_a_while():
    sup = Supervisor(0.3, 0.25)
    assert sup.clock_jumped(-3.0, wall=100.0)
    assert "back by 3.000 s" in sup.clock_problem(101.0)
    assert not sup.clock_jumped(2.0, wall=102.0)
    assert "forward" in sup.clock_problem(102.0)
    assert sup.clock_problem(102.0 + Supervisor.CLOCK_FAULT_S + 0.1) == ""


def test_a_stalled_node_refuses_from_the_moment_its_watchdog_is_late_until_it_has_settled():
    """A check finishing right after a stall, before the watchdog ran again, judges a stale clock: refused."""
    sup = Supervisor(proposal_timeout=0.3, joint_state_timeout=0.25)
    sup.joint_state(wall=10.0, now=50.0)
    assert sup.tick(10.0) == 0.0 and sup.refusal(10.0, 50.0) is None and not sup.catching_up(10.0)
    # stopped 1.5 s: the node's clock stood still with it, so the joint states do not look silent
    assert sup.refusal(11.5, 50.0)[0] == "catching_up" and "has not run for 1.50 s" in sup.catching_up(11.5)
    assert sup.tick(11.5) == pytest.approx(1.5)
    for wall in (11.52, 11.6, 11.7, 11.8 - 0.01):  # the watchdog runs again, queued states arrive
        sup.joint_state(wall=wall, now=51.5)
        assert sup.tick(wall) == 0.0 and sup.refusal(wall, 51.5)[0] == "catching_up"
        assert "did not run for 1.50 s" in sup.catching_up(wall)  # a hold now starts from the measured arm
    settled = 11.5 + Supervisor.SETTLE_AFTER_STALL_S
    sup.joint_state(wall=settled, now=51.8)
    assert sup.tick(settled) == 0.0 and sup.refusal(settled, 51.8) is None and not sup.catching_up(settled)


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
    msg = candidates_to_msg(("a",), times, np.zeros((2, 4, 1)), 0.0)
    msg.height = 3  # claims a third candidate the data does not hold
    with pytest.raises(ConversionError, match="expected height"):
        candidates_from_msg(msg)


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
    with pytest.raises(ConversionError, match="no joint"):  # was a bare ValueError that the safety node let through
        candidates_from_msg(table_msg([(TIME_FIELD, "<f8")], 2, 3))
    with pytest.raises(ConversionError, match="float64"):
        candidates_from_msg(table_msg([(TIME_FIELD, "<f8"), ("a", "<f4")], 2, 3))
    times = [[0.1, 0.2, 0.3], [0.1, 0.2, 0.4]]
    with pytest.raises(ConversionError, match="differs"):
        candidates_from_msg(table_msg([(TIME_FIELD, "<f8"), ("a", "<f8")], 2, 3, times=times))


# --- perturbed proposer ---------------------------------------------------------------------------------------------

class FixedPolicy(Policy):
    """A policy that always proposes the same slow chunk."""

    horizon, chunk_dt = 10, 0.1

    def __init__(self) -> None:
        self.chunk = np.tile(HOME_POSITION, (self.horizon, 1))
        self.chunk[:, 1] += 0.01 * np.arange(1, self.horizon + 1)

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


def test_commanded_path_is_the_reference_until_the_arm_is_moved_by_something_else():
    from armpilot.safety.state_tracking import CommandedPath

    path = CommandedPath(np.array([0.2, 0.2]))
    measured = np.array([0.0, 0.0])
    assert path.reference(10.0, measured) is None  # nothing commanded yet: the measured state stands in
    path.command(10.0, 10.0, np.array([0.1, 0.2]), np.array([[0.1, 0.0], [0.2, 0.0]]), measured)
    assert np.allclose(path.reference(10.05, measured), [0.05, 0.0])  # from where it was, to the first point
    assert np.allclose(path.reference(10.15, measured), [0.15, 0.0])
    assert np.allclose(path.reference(11.0, np.array([0.19, 0.0])), [0.2, 0.0])  # held after the last point
    assert path.reference(11.0, np.array([0.9, 0.0])) is None  # reset by someone else: the path is dropped
    assert path.times is None


def test_the_first_point_is_reachable_from_where_the_controller_heads_at_the_velocity_limit():
    """A chunk may start no further from where the controller heads than vmax * lead (from the measured arm,
    with no command known: + start_tolerance, 0 by default: the move from the measured arm obeys the limit)."""
    from armpilot.robot import CONTROLLED_JOINTS, HOME_POSITION, ArmModel
    from armpilot.safety.limits import SafetyConfig, check_chunk

    import dataclasses

    # the velocity bound alone: the acceleration of this step (a chunk standing at the offset) is checked apart
    limits = ArmModel().limits.reordered(list(CONTROLLED_JOINTS))
    unbounded = np.full(len(limits.names), np.inf)
    limits = dataclasses.replace(limits, acceleration=unbounded, jerk=unbounded)
    lead = 0.05
    times = lead + 0.1 * np.arange(5)

    def chunk(offset: float) -> np.ndarray:
        return HOME_POSITION + np.outer(np.ones(5), np.eye(7)[1] * offset)

    # by default nothing lets the move onto point 0 exceed the velocity limit, even with no command known
    default = SafetyConfig()
    assert default.start_tolerance == 0.0
    exact = limits.velocity[1] * lead
    assert check_chunk(default, limits, CONTROLLED_JOINTS, 100.0, times, chunk(exact), 100.0, HOME_POSITION).accepted
    over = check_chunk(default, limits, CONTROLLED_JOINTS, 100.0, times, chunk(1.01 * exact), 100.0, HOME_POSITION)
    assert over.reason == "discontinuity", over.detail
    config = SafetyConfig(start_tolerance=0.01)  # a controller holding off the measured arm (opt-in)

    reach = limits.velocity[1] * lead + config.start_tolerance
    ok = check_chunk(config, limits, CONTROLLED_JOINTS, 100.0, times, chunk(0.9 * reach), 100.0, HOME_POSITION)
    assert ok.accepted, ok.detail
    far = check_chunk(config, limits, CONTROLLED_JOINTS, 100.0, times, chunk(1.2 * reach), 100.0, HOME_POSITION)
    assert far.reason == "discontinuity" and "where the controller is heading" in far.detail
    # heading elsewhere (an executing chunk): the same chunk measured against that reference
    heading = HOME_POSITION + np.eye(7)[1] * reach
    moving = check_chunk(config, limits, CONTROLLED_JOINTS, 100.0, times, chunk(1.2 * reach), 100.0, HOME_POSITION,
                         reference=heading)
    assert moving.accepted, moving.detail
    # a known heading is exact: no tolerance, the junction's speed stays within the limit
    beyond = limits.velocity[1] * lead + 0.5 * config.start_tolerance
    assert check_chunk(config, limits, CONTROLLED_JOINTS, 100.0, times, chunk(beyond), 100.0, HOME_POSITION).accepted
    strict = check_chunk(config, limits, CONTROLLED_JOINTS, 100.0, times, chunk(beyond), 100.0, HOME_POSITION,
                         reference=HOME_POSITION)
    assert strict.reason == "discontinuity", strict.detail


def test_every_rejection_reason_is_one_enum_documented_once():
    """Reasons in code are ``Reason`` members; every member is documented in docs/interfaces.md."""
    import re
    from pathlib import Path

    from armpilot.rejections import Reason

    root = Path(__file__).resolve().parent.parent
    sources = [*root.glob("armpilot/safety/*.py"), root / "armpilot/control/trajectory.py",
               root / "ros_nodes/safety_node.py"]
    literal = re.compile(r'(?:_reject|reject|hold|Violation|TrajectoryError)\(\s*"([a-z_]+)"|return "([a-z_]+)", ')
    strays = {m for path in sources for pair in literal.findall(path.read_text()) for m in pair if m}
    assert not strays, f"reasons written as strings, not Reason members: {sorted(strays)}"
    docs = (root / "docs" / "interfaces.md").read_text()
    undocumented = [r.value for r in Reason if f"`{r.value}`" not in docs]
    assert not undocumented, f"reasons missing from docs/interfaces.md: {undocumented}"
