"""Over DDS, a gripper on a controller of its own: the safety node splits each accepted chunk between the arm's
controller and the gripper's, refuses a bad gripper column, and a hold freezes the gripper; the sim plays that
controller and the scripted pick closes it."""

from __future__ import annotations

import time

import numpy as np
import pytest
from trajectory_msgs.msg import JointTrajectory

from armpilot.graph import NodeSpec
from armpilot.robot import CONTROLLED_JOINTS, HOME_POSITION
from armpilot.ros_nodes import qos, topics
from armpilot.ros_nodes.candidate_conversions import candidates_to_msg
from graph_harness import running_graph
from robot_variants import profile, profile_file
from test_demo_cli import run_demo
from test_safety_faults import Commands, FakeArm

pytestmark = [pytest.mark.graph, pytest.mark.timeout(240)]
GRIPPER = "gripper_joint"
GRIPPER_TOPIC = "/gripper_controller/joint_trajectory"


class ArmClosingItsGripper(FakeArm):
    """Joint states at home (the gripper open, 0.04 m); chunks that turn the base and close the gripper 1 cm per
    second from there. With ``bad_gripper`` the gripper's column leaves its 0.04 m limit (the arm's columns are as
    good as before)."""

    def __init__(self, probe) -> None:
        super().__init__(probe)
        self.bad_gripper = False

    def valid_candidates(self):
        times = 0.1 * np.arange(1, 11)
        chunk = HOME_POSITION + np.outer(np.arange(1, 11), [0.002, 0, 0, 0, 0, 0, 0])
        g = list(CONTROLLED_JOINTS).index(GRIPPER)
        chunk[:, g] = 0.04 - 0.01 * times
        if self.bad_gripper:
            chunk[:, g] = 0.05
        return candidates_to_msg(CONTROLLED_JOINTS, times, chunk[None], self.now())


def test_the_arm_and_its_gripper_each_get_their_command_a_bad_column_is_refused_and_a_hold_freezes_it(tmp_path):
    own = profile("armpilot_own_gripper")
    safety = (NodeSpec("safety", "safety_node", parameter_files=("safety.yaml",),
                       parameters={"robot": str(profile_file("armpilot_own_gripper", tmp_path))}),)
    with running_graph(safety, tmp_path) as (_graph, probe):
        arm, commands = ArmClosingItsGripper(probe), Commands(probe)
        gripper: list[JointTrajectory] = []
        commanded: list[JointTrajectory] = []
        probe.create_subscription(JointTrajectory, GRIPPER_TOPIC, gripper.append, qos.COMMAND_QOS)
        probe.create_subscription(JointTrajectory, topics.SAFETY_COMMANDED, commanded.append, qos.COMMAND_QOS)
        probe.spin_until(lambda: commands.moves_after(0) >= 4 and len(gripper) >= 4, 40,
                         "arm and gripper commands from valid proposals")
        sent = [msg for msg in gripper if msg.header.stamp.sec]
        assert all(list(msg.joint_names) == [GRIPPER] for msg in sent)
        values = np.concatenate([[p.positions[0] for p in msg.points] for msg in sent])
        assert np.all((values <= 0.04) & (values >= 0.0)) and values[-1] < 0.04, "the gripper closes"
        probe.spin_for(0.3)
        arm_msgs = [msg for msg in commanded if GRIPPER not in msg.joint_names]
        assert not arm_msgs, "/safety/commanded carries the gripper's column for the policy"
        arm.bad_gripper = True
        switched = time.monotonic()
        probe.spin_until(lambda: commands.holds_after(switched), 10, "a hold once only bad proposals come")
        hold = commands.holds[-1]
        assert GRIPPER not in hold.joint_names and set(hold.joint_names) == set(own.arm_controller_joints)
        assert commands.moves_after(switched + 0.15) == 0, "no chunk with a bad gripper column passes"
        probe.spin_for(0.3)
        frozen = [msg for msg in gripper if not msg.header.stamp.sec and not msg.header.stamp.nanosec]
        assert frozen, "the hold stops the gripper's trajectory too"
        last_sent = sent[-1].points[-1].positions[0]
        assert last_sent - 1e-9 <= frozen[-1].points[0].positions[0] <= 0.04, "frozen where it was, not opened"
        assert len(frozen[-1].points) == 1
        after = [p.positions[0] for msg in gripper for p in msg.points]
        assert max(after) <= 0.04 + 1e-9, "0.05 never reached the gripper"


@pytest.mark.timeout(420)
def test_the_sim_plays_a_forward_command_gripper_and_the_scripted_pick_closes_it(tmp_path):
    """Before session 31 the task was refused: nothing commanded a separate gripper."""
    path = profile_file("armpilot_gripper_position", tmp_path)
    report = run_demo(tmp_path, "pick", 2, "--robot", str(path), "--width", "160", "--height", "120", "--no-video",
                      "--policy", "scripted")
    assert report["successes"] >= 1, report["per_episode"]


@pytest.mark.timeout(240)
def test_a_policy_node_given_another_joint_order_publishes_it_and_its_backend_still_reaches(tmp_path):
    """Before session 31 the policy node fed its backend the observation in the ``joint_names`` order while every
    backend (experts, datasets, checkpoints) works in the profile's: with a controller's own order given, the
    scripted reach read the elbow as the base and never arrived."""
    from dataclasses import replace

    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import Bool

    from armpilot.ros_nodes.candidate_conversions import candidates_from_msg
    from graph_harness import sim_graph_nodes

    order = list(reversed(CONTROLLED_JOINTS))
    nodes = tuple(replace(n, parameters={**n.parameters, "joint_names": order}) if n.name == "policy" else n
                  for n in sim_graph_nodes(task="reach", object_source="privileged"))
    with running_graph(nodes, tmp_path) as (_graph, probe):
        names: list[tuple[str, ...]] = []
        success: list[bool] = []
        probe.create_subscription(PointCloud2, topics.POLICY_CANDIDATES,
                                  lambda msg: names.append(tuple(candidates_from_msg(msg).joint_names)),
                                  qos.COMMAND_QOS)
        probe.create_subscription(Bool, topics.SIM_TASK_SUCCESS, lambda msg: success.append(msg.data), qos.STATE_QOS)
        probe.spin_until(lambda: any(success), 90, "the scripted reach arriving")
        assert names and set(names) == {tuple(order)}
