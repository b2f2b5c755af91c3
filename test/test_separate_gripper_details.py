"""Details of a gripper on a controller of its own that a review found untested: the profile's checks of the
gripper's range and topic, the learned scorer it cannot serve, candidates after perturbation, the command timeline
under repeated chunks, and /joint_states shared by the arm's and the gripper's drivers."""

from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from armpilot.robot_profile import RobotDescriptionError, profile_from_dict
from armpilot.safety.gripper_relay import GripperTimeline
from armpilot.safety.verifier import perturb, source_index
from robot_variants import own_gripper_raw, profile


@pytest.mark.parametrize("change, message", [
    ({"open": 0.5}, "gripper open = 0.5 is outside the limits"),
    ({"closed": -0.1}, "gripper closed = -0.1 is outside the limits"),
    ({"open": 0.02, "closed": 0.02}, "open and closed are both 0.02"),
])
def test_a_commanded_grippers_open_and_closed_must_lie_apart_inside_its_urdf_limits(change, message):
    raw, folder = own_gripper_raw("armpilot_own_gripper")
    raw["gripper"] = {**raw["gripper"], **change}
    with pytest.raises(RobotDescriptionError, match=message):
        profile_from_dict(raw, folder)


@pytest.mark.parametrize("topic", ["/arm_controller/joint_trajectory", "/safety/commanded", "/joint_states"])
def test_a_gripper_command_may_not_take_over_one_of_armpilots_topics(topic):
    raw, folder = own_gripper_raw("armpilot_own_gripper")
    raw["gripper"]["command"] = {"interface": "trajectory", "topic": topic}
    with pytest.raises(RobotDescriptionError, match=f"{topic} is one of armpilot's own topics"):
        profile_from_dict(raw, folder)


def test_max_effort_is_for_the_action_interface_only():
    raw, folder = own_gripper_raw("armpilot_gripper_position")
    raw["gripper"]["command"]["max_effort"] = 20.0
    with pytest.raises(RobotDescriptionError, match="for interface 'action' only"):
        profile_from_dict(raw, folder)
    raw["gripper"]["command"] = {"interface": "action"}
    with pytest.raises(RobotDescriptionError, match="needs max_effort > 0"):
        profile_from_dict(raw, folder)
    raw["gripper"]["controller"] = "robotiq"
    with pytest.raises(RobotDescriptionError, match="controller must be one of"):
        profile_from_dict(raw, folder)


def test_a_learned_scorer_is_refused_beside_a_separately_checked_gripper():
    from ros_nodes.safety_gripper import SafetyGripper

    own = profile("armpilot_own_gripper")
    node = types.SimpleNamespace(gripper=object(), learned=object(), profile=own)
    with pytest.raises(RobotDescriptionError, match="learned_scorer .* 'gripper_joint'"):
        SafetyGripper.check_gripper_setup(node)
    SafetyGripper.check_gripper_setup(types.SimpleNamespace(gripper=object(), learned=None, profile=own))
    SafetyGripper.check_gripper_setup(types.SimpleNamespace(gripper=None, learned=object(), profile=own))


@pytest.mark.parametrize("count, samples", [(1, 0), (3, 0), (3, 2), (4, 5)])
def test_each_perturbed_row_maps_back_to_the_proposal_it_was_made_from(count, samples):
    """The gripper's column goes with the arm's candidate it came with, perturbed copies included."""
    candidates = np.arange(count, dtype=float)[:, None, None] * np.ones((count, 3, 2)) * 10.0
    rows = perturb(candidates, samples, 0.01, np.random.default_rng(0))
    assert len(rows) == count * (1 + samples)
    for index in range(len(rows)):
        assert np.allclose(rows[index], candidates[source_index(index, count, samples)], atol=0.1)


@settings(max_examples=80, deadline=None)
@given(chunks=st.lists(st.tuples(st.floats(0.0, 0.3), st.floats(0.02, 0.2), st.floats(0.0, 0.04),
                                 st.lists(st.floats(-1.0, 1.0), max_size=4)), min_size=1, max_size=6))
def test_a_new_chunk_takes_over_the_timeline_from_where_its_command_is(chunks):
    """Property: repeated proposals never move the command at the instant they are taken over (a trajectory
    controller's replacement; the measured gripper before any command) nor faster than its velocity limit after,
    and it ends where the chunk ends."""
    timeline, now = GripperTimeline(0.001, velocity=0.1), 10.0
    for delay, dt, first, steps in chunks:  # each chunk within the limit between its points, as checked
        positions = list(first + 0.1 * dt * np.cumsum([0.0, *steps]))
        before = timeline.at(now)
        times = delay + dt * np.arange(len(positions))
        timeline.follow(now, times, np.array(positions), now, measured=0.02)
        assert timeline.at(now) == pytest.approx(0.02 if before is None else before)
        assert np.all(np.abs(np.diff(timeline.positions)) <= 0.1 * np.diff(timeline.absolute) + 1e-12), \
            "never faster than the limit"
        assert timeline.at(now + 10.0) == pytest.approx(positions[-1]), "it ends where the chunk ends"
        now += 0.05


def test_the_timeline_before_its_first_point_holds_the_first_point_and_a_late_chunk_moves_at_the_limit():
    timeline = GripperTimeline(0.001, velocity=0.1)
    timeline.follow(10.0, np.array([0.2, 0.3]), np.array([0.03, 0.02]), 10.0)  # nothing known: from its first point
    assert timeline.at(10.0) == pytest.approx(0.03)
    timeline.follow(11.0, np.array([0.1, 0.2]), np.array([0.01, 0.0]), 12.0)  # every point already due
    assert timeline.at(12.0) == pytest.approx(0.02) and timeline.at(12.1) == pytest.approx(0.01)
    assert timeline.due(12.2) == pytest.approx(0.0)


def test_joint_states_of_two_drivers_are_merged_by_name():
    from armpilot.ros_nodes.conversions import ConversionError, joint_state_to_msg, positions_merged

    names, latest = ("a", "g", "b"), {}
    assert positions_merged(joint_state_to_msg(("b", "a"), [2.0, 1.0]), names, latest) is None  # no gripper yet
    merged = positions_merged(joint_state_to_msg(("g", "x"), [0.03, 9.0]), names, latest)
    assert np.array_equal(merged, [1.0, 0.03, 2.0]) and "x" not in latest
    assert np.array_equal(positions_merged(joint_state_to_msg(("a", "b"), [1.5, 2.5]), names, latest),
                          [1.5, 0.03, 2.5]), "the arm's driver moves on, the gripper's last reading stays"
    broken = joint_state_to_msg(("a", "b"), [1.0, 2.0])
    broken.position = [1.0]
    with pytest.raises(ConversionError, match="position has 1 values for 2 joint names"):
        positions_merged(broken, names, latest)


def test_a_bags_two_drivers_are_merged_in_stamp_order_whatever_order_they_were_written_in():
    """A gripper driver's messages written late (another process, another queue) still complete the arm's."""
    from armpilot.dataset.bag_reader import _merged_joint_states

    arm, gripper = ("a", "b"), ("g",)
    samples = [(100, (arm, np.array([1.0, 2.0]))), (300, (arm, np.array([1.1, 2.1]))),
               (50, (gripper, np.array([0.04]))), (200, (gripper, np.array([0.03])))]  # recorded after the arm's
    merged = _merged_joint_states(samples, ("a", "g", "b"))
    assert [stamp for stamp, _ in merged] == [100, 200, 300]
    assert [list(values) for _, (_, values) in merged] == [[1.0, 0.04, 2.0], [1.0, 0.03, 2.0], [1.1, 0.03, 2.1]]


def test_the_policy_node_keeps_its_buffers_when_two_drivers_stamps_interleave():
    """A gripper driver's message stamped just before the arm's last one is merged, not pushed (the resampler
    would call it a clock jump and start its buffers again); a stamp far back still is one."""
    from armpilot.ros_nodes.conversions import joint_state_to_msg, sec_to_stamp
    from ros_nodes.policy_node import INTERLEAVE_S, PolicyNode

    pushed: list[tuple[float, list[float]]] = []
    node = types.SimpleNamespace(config=types.SimpleNamespace(joint_names=("a", "g")), latest_joints={}, joints=None,
                                 push=lambda _topic, stamp, values: pushed.append((stamp, list(values))),
                                 get_logger=lambda: types.SimpleNamespace(warning=lambda *_, **__: None))

    def receive(names, values, stamp):
        msg = joint_state_to_msg(names, values)
        msg.header.stamp = sec_to_stamp(stamp)
        PolicyNode.on_joint_state(node, msg)

    receive(("g",), [0.04], 9.99)
    receive(("a",), [1.0], 10.0)
    receive(("g",), [0.03], 9.995)  # the gripper's driver, a little behind
    receive(("a",), [1.1], 10.01)
    assert pushed == [(10.0, [1.0, 0.04]), (10.01, [1.1, 0.03])]
    receive(("a",), [1.2], 10.01 - 2 * INTERLEAVE_S)  # a real jump back: pushed, for the resampler to name
    assert pushed[-1][0] == pytest.approx(10.01 - 2 * INTERLEAVE_S)


def test_the_chunk_as_sent_is_checked_with_the_fingers_where_its_column_puts_them():
    """The candidates were checked with the measured gripper; the accepted one is checked again with its column
    (an opening finger may leave the workspace or reach the table where the closed one did not)."""
    from armpilot.rejections import Reason
    from armpilot.safety.gripper_relay import GripperLimits, GripperStart
    from armpilot.safety.limits import Verdict
    from armpilot.safety.workspace import WorkspaceViolation
    from ros_nodes.safety_gripper import SafetyGripper

    own = profile("armpilot_own_gripper")
    seen: list[tuple[np.ndarray, tuple[str, ...]]] = []

    def check(positions, names, passive):
        seen.append((positions, names))
        return WorkspaceViolation(Reason.WORKSPACE, 1, "left_finger outside the box") if positions[1, -1] > 0.03 \
            else None

    arm = own.arm_controller_joints
    node = types.SimpleNamespace(
        gripper=object(), profile=own, joint_names=arm, state=types.SimpleNamespace(passive={"gripper_joint": 0.0}),
        gripper_limits=GripperLimits("gripper_joint", 0.0, 0.04, 0.1), workspace=types.SimpleNamespace(check=check),
        gripper_start=lambda now, stamp, times: GripperStart(0.0, 0.0, times - (now - stamp)))
    times, positions = np.array([0.1, 0.2]), np.zeros((2, len(arm)))
    opening = Verdict(True, stamp=1.0, times=times, positions=positions, gripper=np.array([0.01, 0.02]))
    assert SafetyGripper.gripper_recheck(node, opening, 1.0) is None
    assert seen[-1][1] == arm + ("gripper_joint",) and np.array_equal(seen[-1][0][:, -1], [0.01, 0.02])
    wide = Verdict(True, stamp=1.0, times=times, positions=positions, gripper=np.array([0.01, 0.035]))
    limits = node.gripper_limits
    node.gripper_limits = GripperLimits(limits.joint, limits.lower, limits.upper, 1.0)  # fast enough for the test
    assert SafetyGripper.gripper_recheck(node, wide, 1.0) == (Reason.WORKSPACE,
                                                              "with the gripper's column: left_finger outside the box")
