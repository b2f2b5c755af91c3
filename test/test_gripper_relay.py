"""A gripper on a controller of its own, commanded through the safety node (``armpilot/safety/gripper_relay.py``).

Before session 31 armpilot never commanded such a gripper (a Robotiq beside a UR): grasping tasks were refused.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from armpilot.gripper_profile import DEFAULT_GRIPPER_TOPICS, GripperInterface
from armpilot.rejections import Reason
from armpilot.robot import ArmModel
from armpilot.robot_profile import RobotDescriptionError, profile_from_dict
from armpilot.safety.gripper_relay import (GripperLimits, GripperStart, GripperTimeline, separate_gripper,
                                           split_gripper, with_gripper)
from armpilot.safety.limits import SafetyConfig, Verdict
from armpilot.safety.state_tracking import controller_joints, proposal_joints
from robot_variants import ALL_PROFILES, _raw, profile

LIMITS = GripperLimits("g", 0.0, 0.04, 0.1)
TIMES = 0.1 * np.arange(1, 6)


def test_the_profile_lists_the_gripper_in_joints_and_keeps_it_off_the_arm_controller():
    own = profile("armpilot_own_gripper")
    assert own.joints[2] == "gripper_joint" and "gripper_joint" not in own.arm_controller_joints
    assert own.gripper.commanded and own.gripper.commanded_separately
    assert own.gripper.command.topic == DEFAULT_GRIPPER_TOPICS[GripperInterface.TRAJECTORY]
    assert controller_joints(own) == own.arm_controller_joints
    assert proposal_joints(own) == own.arm_controller_joints + ("gripper_joint",)
    assert proposal_joints(own, ("wrist_3_joint",)) == ("wrist_3_joint", "gripper_joint")
    with pytest.raises(RobotDescriptionError, match="arm controller"):
        controller_joints(own, ("gripper_joint",))  # the arm controller never takes it
    six = profile("armpilot_six")  # separate, no command: armpilot leaves it alone
    assert not six.gripper.commanded and proposal_joints(six) == six.joints == six.arm_controller_joints
    assert "trajectory on /gripper_controller/joint_trajectory" in own.summary()


@pytest.mark.parametrize("change, message", [
    ({"controller": "arm", "command": {"interface": "position"}}, "controller: separate"),
    ({"controller": "separate", "command": {"interface": "serial"}}, "interface must be one of"),
    ({"controller": "separate", "command": {"interface": "position", "topic": "gripper cmd"}}, "absolute ROS name"),
    ({"controller": "separate", "command": {"interface": "action", "max_effort": -1}}, "max_effort"),
    ({"controller": "separate", "command": {"interface": "position", "speed": 1}}, "unknown keys"),
    ({"controller": "separate", "command": "position"}, "must be a mapping"),
    ({"controller": "separate"}, "give the gripper a 'command'"),  # listed in joints without one
])
def test_a_wrong_gripper_command_is_refused_naming_the_fix(change, message):
    raw, folder = _raw("armpilot")
    raw["gripper"] = {**raw["gripper"], **change}
    with pytest.raises(RobotDescriptionError, match=message):
        profile_from_dict(raw, folder)


def test_a_commanded_gripper_must_be_listed_in_joints():
    raw, folder = _raw("armpilot")
    for key in ("joints", "home", "max_acceleration", "max_jerk"):
        raw[key] = raw[key][:6]
    raw["gripper"] = {**raw["gripper"], "controller": "separate", "command": {"interface": "trajectory"}}
    with pytest.raises(RobotDescriptionError, match="list it in joints"):
        profile_from_dict(raw, folder)


def test_split_takes_the_gripper_column_out_wherever_it_is():
    names = ("a", "g", "b")
    positions = np.arange(2 * 3 * 3, dtype=float).reshape(2, 3, 3)
    arm_names, arm, column = split_gripper(names, positions, "g")
    assert arm_names == ("a", "b") and np.array_equal(arm, positions[..., [0, 2]])
    assert np.array_equal(column, positions[..., 1])
    assert split_gripper(("a", "b"), positions[..., :2], "g")[2] is None  # not named: the gripper stays as it is


def test_each_bad_column_is_named_and_candidates_with_one_are_dropped():
    good = np.linspace(0.04, 0.0, 5)
    fast = np.array([0.04, 0.0, 0.0, 0.0, 0.0])  # 0.4 m/s against 0.1
    outside = np.full(5, 0.05)
    nan = np.array([0.04, np.nan, 0.0, 0.0, 0.0])
    for column, reason in ((fast, Reason.VELOCITY_LIMIT), (outside, Reason.POSITION_LIMIT), (nan, Reason.NOT_FINITE)):
        arm = np.zeros((5, 2))
        _, _, _, problem = separate_gripper(("a", "g", "b"), TIMES, np.insert(arm, 1, column, axis=1), LIMITS)
        assert problem is not None and problem[0] == reason and "gripper g" in problem[1]
    table = np.zeros((3, 5, 3))
    table[:, :, 1] = [fast, good, outside]
    table[:, :, 0] = [[1.0], [2.0], [3.0]]
    names, arm, columns, problem = separate_gripper(("a", "g", "b"), TIMES, table, LIMITS)
    assert problem is None and names == ("a", "b") and np.array_equal(columns, good[None])
    assert np.all(arm[..., 0] == 2.0), "the arm's columns stay with their own gripper column"
    table[1, :, 1] = fast
    assert separate_gripper(("a", "g", "b"), TIMES, table, LIMITS)[3][0] == Reason.VELOCITY_LIMIT


def test_a_first_point_the_gripper_cannot_reach_by_its_time_is_refused():
    """A chunk's first point due 0.1 s ahead may be 1 cm from the gripper's command at 0.1 m/s, not a snap shut."""
    def problem(column, start):
        return separate_gripper(("a", "g"), TIMES, np.column_stack([np.zeros(5), column]), LIMITS, start)[3]

    closing = np.array([0.035, 0.03, 0.025, 0.02, 0.015])
    assert problem(closing, GripperStart(0.04, 0.0, TIMES)) is None
    shut = problem(np.zeros(5), GripperStart(0.04, 0.0, TIMES))
    assert shut is not None and shut[0] == Reason.DISCONTINUITY and "gripper g" in shut[1]
    assert problem(np.zeros(5), GripperStart(0.04, 0.04, TIMES)) is None  # start_tolerance from the measured one
    # points already due are not the start: 0.25 s later the first one ahead is 0.025, 0.05 s away
    assert problem(closing, GripperStart(0.03, 0.0, TIMES - 0.25)) is None
    assert problem(closing, GripperStart(0.04, 0.0, TIMES - 0.25))[0] == Reason.DISCONTINUITY


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from([n for n in ALL_PROFILES if profile(n).gripper.commanded]),
       values=st.lists(st.floats(-1.0, 1.0) | st.just(float("nan")), min_size=10, max_size=10),
       scale=st.floats(0.0, 3.0))
def test_whatever_a_gripper_column_holds_what_passes_keeps_the_limits(name, values, scale):
    """Property over every profile whose gripper armpilot commands: a column that passes is finite, inside the
    joint's limits and no faster than its velocity limit (scaled as the safety node enforces it)."""
    p = profile(name)
    limits = GripperLimits.of(p.gripper.joint, SafetyConfig().enforced(ArmModel(p).limits))
    span = limits.upper - limits.lower
    column = limits.lower + span * (0.5 + scale * (np.array(values) - 0.5))
    names = ("x", p.gripper.joint)
    _, _, columns, problem = separate_gripper(names, 0.05 * np.arange(1, 11),
                                              np.column_stack([np.zeros(10), column])[None], limits)
    if problem is None:
        kept = columns[0]
        assert np.all(np.isfinite(kept)) and np.all((kept >= limits.lower - 1e-9) & (kept <= limits.upper + 1e-9))
        assert np.all(np.abs(np.diff(kept)) / 0.05 <= limits.velocity + 1e-9)


def test_the_verdict_carries_the_chosen_candidates_column_at_its_points_still_ahead():
    columns = np.array([[0.04, 0.03, 0.02, 0.01, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    accepted = Verdict(True, stamp=1.0, times=TIMES[2:], positions=np.zeros((3, 2)))
    assert np.array_equal(with_gripper(accepted, columns, 0).gripper, [0.02, 0.01, 0.0])
    assert np.array_equal(with_gripper(accepted, columns[1]).gripper, [0.0, 0.0, 0.0])
    refused = Verdict(False, Reason.VELOCITY_LIMIT, "x")
    assert with_gripper(refused, columns, 0).gripper is None
    assert with_gripper(accepted, None).gripper is None


def test_the_timeline_sends_targets_past_the_deadband_and_a_hold_freezes_it():
    timeline = GripperTimeline(deadband=0.004)
    assert timeline.due(0.0) is None and timeline.freeze(0.0) is None  # nothing before the first chunk
    timeline.follow(10.0, np.array([0.0, 1.0]), np.array([0.04, 0.0]), 10.0)  # closing at 0.04 m/s
    assert timeline.due(10.0) == pytest.approx(0.04)
    assert timeline.due(10.05) is None  # 2 mm: within the deadband
    assert timeline.due(10.15) == pytest.approx(0.034)
    assert timeline.freeze(10.5) == pytest.approx(0.02)
    assert timeline.at(20.0) == pytest.approx(0.02), "a hold neither opens nor goes on closing"
    assert timeline.due(10.5, exact=True) == pytest.approx(0.02)  # a hold sends exactly where it froze
    assert timeline.due(11.0, exact=True) is None
    timeline.follow(12.0, np.array([0.1]), np.array([0.04]), 12.0)
    assert timeline.at(12.0) == pytest.approx(0.02), "a new chunk takes over from where the command is"
    assert timeline.at(12.05) == pytest.approx(0.03) and timeline.at(12.5) == pytest.approx(0.04)
    timeline.clear()  # the sim reset its world: the last episode's closed gripper is not sent again
    assert timeline.due(13.0) is None and timeline.freeze(13.0) is None


def test_the_action_interface_without_control_msgs_names_what_to_install():
    from ros_nodes.gripper_sender import gripper_action_type

    try:
        import control_msgs  # noqa: F401
    except ImportError:
        with pytest.raises(RobotDescriptionError, match="control-msgs.*'position'.*'trajectory'"):
            gripper_action_type()
    else:
        assert gripper_action_type().__name__ == "GripperCommand"


def test_the_sim_runner_takes_the_arm_and_its_gripper_on_commands_of_their_own():
    from armpilot.control.trajectory import TrajectoryError
    from armpilot.sim.runner import SimRunner
    from armpilot.sim.world import SimWorld
    from armpilot.tasks import task_for_robot

    own = profile("armpilot_own_gripper")
    world = SimWorld(own, task_for_robot("pick", own), render=False)
    try:
        runner = SimRunner(world)
        runner.reset(0)
        home = dict(zip(own.joints, own.home))
        arm_home = np.array([[home[n] for n in own.arm_controller_joints]])
        with pytest.raises(TrajectoryError, match="not controlled here"):  # the arm's controller never takes it
            runner.command(own.joints, 0.0, np.array([0.5]), own.home[None])
        runner.command(own.arm_controller_joints, 0.0, np.array([0.5]), arm_home)
        runner.command_gripper(("gripper_joint",), 0.0, np.array([0.4]), np.array([[0.0]]))
        with pytest.raises(TrajectoryError, match="not controlled here"):
            runner.command_gripper(("wrist_3_joint",), 0.0, np.array([0.4]), np.array([[0.0]]))
        for _ in range(150):
            runner.tick(4)
        positions = dict(zip(world.joint_names, world.joint_positions()))
        assert positions["gripper_joint"] < 0.005, "the gripper's own follower closed it"
        assert np.allclose([positions[n] for n in own.arm_controller_joints], arm_home[0], atol=0.02)
    finally:
        world.close()
    six = profile("armpilot_six")
    world = SimWorld(six, task_for_robot("reach", six), render=False)
    try:
        with pytest.raises(TrajectoryError, match="no gripper on a controller of its own"):
            SimRunner(world).command_gripper(("gripper_joint",), 0.0, np.array([0.4]), np.array([[0.0]]))
    finally:
        world.close()


class _Recorder:
    """Stands in for a publisher or an action client: keeps what was sent."""

    def __init__(self, *args) -> None:
        self.sent: list = []
        self.topic_name = args[-1] if args else ""

    def publish(self, msg) -> None:
        self.sent.append(msg)

    def send_goal_async(self, goal) -> None:
        self.sent.append(goal)

    def server_is_ready(self) -> bool:
        return self.ready

    ready = True


def _sender(monkeypatch, interface: str):
    """A GripperSender on a stand-in node, for armpilot's arm with its gripper on ``interface``; the action type
    and client are stand-ins too (control_msgs has no PyPI wheel): what reaches the device boundary is checked."""
    import types

    import rclpy.action

    import ros_nodes.gripper_sender as module
    from robot_variants import own_gripper_raw

    raw, folder = own_gripper_raw("armpilot_own_gripper")
    raw["gripper"]["command"] = {"interface": interface, "deadband": 0.1}
    if interface == "action":
        raw["gripper"]["command"]["max_effort"] = 40.0
    own = profile_from_dict(raw, folder)

    class Goal:
        def __init__(self) -> None:
            self.command = types.SimpleNamespace(position=None, max_effort=None)

    monkeypatch.setattr(module, "gripper_action_type", lambda: types.SimpleNamespace(Goal=Goal))
    monkeypatch.setattr(rclpy.action, "ActionClient", _Recorder)
    logs: list[str] = []
    node = types.SimpleNamespace(create_publisher=lambda _type, topic, _qos: _Recorder(topic),
                                 get_logger=lambda: types.SimpleNamespace(
                                     info=logs.append, error=lambda text, **_: logs.append("ERROR " + text)))
    return module.GripperSender(node, own, SafetyConfig().enforced(ArmModel(own).limits)), logs


@pytest.mark.parametrize("interface", ["position", "action"])
def test_position_and_action_targets_follow_the_chunk_past_the_deadband_and_a_hold_keeps_the_last_one(
        monkeypatch, interface):
    sender, logs = _sender(monkeypatch, interface)
    assert f"({interface})" in logs[0]
    sender.chunk(10.0, np.array([0.0, 1.0]), np.array([0.04, 0.0]), 10.0, 0.04)  # closing over 1 s; deadband 4 mm
    for now in np.arange(10.0, 10.52, 0.02):  # the watchdog's ticks
        sender.tick(float(now))
    sender.hold(10.51)
    sender.tick(11.0)  # frozen: nothing more
    values = [m.data[0] if interface == "position" else m.command.position for m in sender.publisher.sent]
    assert values[0] == pytest.approx(0.04) and np.all(np.diff(values) < 0)
    assert np.all(np.abs(np.diff(values)) > 0.004 - 1e-9)
    assert len(values) == 5  # 0.04 at 10.0 s, then every 0.12 s (4.8 mm, ticks 20 ms apart) to 10.48 s
    assert sender.timeline.at(11.0) == pytest.approx(values[-1]), "a hold keeps the last target, it closes no further"
    if interface == "action":
        assert all(goal.command.max_effort == 40.0 for goal in sender.publisher.sent)


def test_a_hold_before_any_target_was_sent_sends_where_the_command_is(monkeypatch):
    sender, _ = _sender(monkeypatch, "position")
    sender.chunk(10.0, np.array([0.1, 0.2]), np.array([0.035, 0.03]), 10.0, 0.04)
    sender.hold(10.05)  # no tick yet
    assert [m.data[0] for m in sender.publisher.sent] == [pytest.approx(0.0375)]


def test_the_command_never_moves_faster_than_the_velocity_limit_whatever_the_start_allowed(monkeypatch):
    """A chunk starting from the fingers (held by a box, or lagging) ramps the command there at the limit, and a
    first chunk starts from the measured gripper instead of stepping to its first point."""
    sender, _ = _sender(monkeypatch, "trajectory")
    sender.chunk(10.0, np.array([0.3, 0.4]), np.array([0.012, 0.01]), 10.0, 0.04)  # first chunk, fingers at 0.04
    chunk = sender.publisher.sent[-1]
    assert [p.positions[0] for p in chunk.points] == [pytest.approx(0.012), pytest.approx(0.01)]
    assert sender.timeline.at(10.0) == pytest.approx(0.04) and sender.timeline.at(10.15) == pytest.approx(0.026)
    sender.hold(10.3)
    sender.chunk(10.3, np.array([0.05, 0.15]), np.array([0.034, 0.04]), 10.3, 0.03)  # command 0.012, fingers 0.03
    values = [p.positions[0] for p in sender.publisher.sent[-1].points]
    assert values == [pytest.approx(0.017), pytest.approx(0.027), pytest.approx(0.04)], \
        "clipped to 0.1 m/s from the command, then on to the chunk's last value at that speed"
    times, positions = np.r_[10.3, sender.timeline.absolute[1:]], sender.timeline.positions
    assert np.all(np.abs(np.diff(positions)) / np.diff(times) <= 0.1 + 1e-9)


def test_a_trajectory_gripper_gets_each_chunk_timed_and_a_one_point_stop_on_a_hold(monkeypatch):
    from armpilot.ros_nodes import conversions as conv

    sender, _ = _sender(monkeypatch, "trajectory")
    sender.chunk(10.0, np.array([0.1, 0.2]), np.array([0.03, 0.02]), 10.0, 0.03)
    sender.tick(10.15)  # a trajectory is not re-sent by the watchdog
    sender.hold(10.15)
    chunk, stop = sender.publisher.sent
    assert list(chunk.joint_names) == ["gripper_joint"] and conv.stamp_to_sec(chunk.header.stamp) == 10.0
    assert [p.positions[0] for p in chunk.points] == [0.03, 0.02]
    assert conv.stamp_to_sec(stop.header.stamp) == 0.0 and [p.positions[0] for p in stop.points] == [
        pytest.approx(0.025)]
    command = conv.joint_trajectory_to_msg(("a",), np.array([0.0, 1.0]), np.array([[1.0], [2.0]]), None, None)
    full = sender.add_column(command, 10.2)  # /safety/commanded: the frozen gripper beside the arm's hold
    assert list(full.joint_names) == ["a", "gripper_joint"] and [p.positions[1] for p in full.points] == [
        pytest.approx(0.025)] * 2


def test_a_chunk_starts_anywhere_between_the_grippers_command_and_where_the_fingers_are(monkeypatch):
    sender, _ = _sender(monkeypatch, "position")
    times = np.array([0.1, 0.2])
    assert sender.start(5.0, 0.0, times, None, 0.01) is None  # nothing known: refused by the node
    measured = sender.start(5.0, 0.0, times, 0.03, 0.002)  # before any command: the measured gripper
    assert measured.reference == 0.03 and measured.slack == 0.002 and np.allclose(measured.lead, times)
    assert measured.distance(0.03) == 0.0 and measured.distance(0.035) == pytest.approx(0.005)
    sender.chunk(4.0, np.array([0.0, 1.0]), np.array([0.04, 0.0]), 4.0)  # its command is 0.0 from 5 s on
    tracking = sender.start(5.0, 5.05, times, 0.005, 0.002)
    assert tracking.reference == 0.0 and tracking.other == 0.005 and tracking.slack == 0.0
    assert np.allclose(tracking.lead, times + 0.05)
    held = sender.start(5.0, 0.0, times, 0.02, 0.002)  # fingers 2 cm apart on a box: stay anywhere in between
    assert held.distance(0.0) == held.distance(0.012) == held.distance(0.02) == 0.0
    assert held.distance(0.03) == pytest.approx(0.01) and held.distance(-0.001) == pytest.approx(0.001)


def test_an_action_goal_with_no_server_to_take_it_is_named_in_an_error(monkeypatch):
    sender, logs = _sender(monkeypatch, "action")
    sender.publisher.ready = False
    sender.chunk(10.0, np.array([0.0]), np.array([0.03]), 10.0)
    sender.tick(10.0)
    assert any(line.startswith("ERROR") and "no action server" in line and "0.0300" in line for line in logs)
    assert sender.publisher.sent[0].command.position == pytest.approx(0.03)  # sent anyway, and named
