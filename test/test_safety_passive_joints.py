"""Joints the controller does not command (a separate gripper, a torso) feed the safety checks; their readings
expire. Before session 29 the last position a separate gripper's driver sent was checked against forever: its
driver could die and every chunk was still judged with the hand as it was then, and nothing held the arm."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from sensor_msgs.msg import JointState

from armpilot.graph import NodeSpec
from armpilot.rejections import Reason
from armpilot.robot import CONTROLLED_JOINTS, HOME_POSITION, ArmModel
from armpilot.ros_nodes import conversions as conv
from armpilot.ros_nodes import qos, topics
from armpilot.safety.limits import SafetyConfig
from armpilot.safety.state_tracking import ArmState
from armpilot.safety.supervisor import Supervisor
from graph_harness import running_graph
from test_safety_faults import Commands, FakeArm, held_once_after

CFG = SafetyConfig()
GRIPPER = "gripper_joint"
ARM_JOINTS = tuple(n for n in CONTROLLED_JOINTS if n != GRIPPER)


def _supervisor() -> Supervisor:
    return Supervisor(CFG.proposal_timeout, CFG.joint_state_timeout, (GRIPPER,), CFG.passive_state_timeout)


def test_a_passive_joint_unread_for_its_timeout_refuses_and_holds_once():
    sup = _supervisor()
    sup.joint_state(0.0, 100.0)
    refusal = sup.refusal(0.01, 100.01)
    assert refusal is not None and GRIPPER in refusal[1], "never read: nothing to check the hand against"
    sup.passive_state([GRIPPER], 0.0, 100.0)
    assert sup.refusal(0.01, 100.01) is None
    late = CFG.passive_state_timeout + 0.1
    sup.joint_state(late, 100.0 + late)  # the arm's driver goes on, the gripper's stopped
    reason, detail = sup.refusal(late, 100.0 + late)
    assert reason == Reason.NO_JOINT_STATE and GRIPPER in detail and "passive_state_timeout" in detail
    assert sup.watchdog(100.0 + late, late)[0] == Reason.JOINT_STATE_TIMEOUT
    sup.held()
    assert sup.watchdog(100.0 + late, late) is None, "one hold, not a stream of them"
    sup.passive_state([GRIPPER], late, 100.0 + late)
    assert sup.refusal(late, 100.0 + late) is None, "the gripper's driver is back"


def test_a_paused_sim_clock_is_not_silence_but_a_dead_driver_is():
    sup = _supervisor()
    sup.joint_state(0.0, 5.0)
    sup.passive_state([GRIPPER], 0.0, 5.0)
    wall = max(CFG.passive_state_timeout, Supervisor.PAUSED_CLOCK_TIMEOUT_S) - 0.1
    assert sup.passive_problem(wall, 5.0) == "", "the sim's clock stood still: so did its gripper"
    wall = max(CFG.passive_state_timeout, Supervisor.PAUSED_CLOCK_TIMEOUT_S) + 0.1
    assert GRIPPER in sup.passive_problem(wall, 5.0)


def test_a_passive_reading_stamped_long_ago_does_not_count_as_fresh():
    sup = _supervisor()
    assert sup.passive_state([GRIPPER], 0.0, 100.0, stamp=50.0), "a replayed gripper state is named stale"
    assert GRIPPER in sup.passive_problem(0.01, 100.01)


def _fake_node(now: list[float]):
    """What ``SafetyNode.on_joint_state`` touches: the arm's six joints commanded, the gripper separate."""
    lim = ArmModel().limits.reordered(list(ARM_JOINTS))
    rejected: list[tuple[str, str]] = []
    node = SimpleNamespace(
        lock=threading.RLock(), config=CFG, limits=lim, state=ArmState(ARM_JOINTS, (GRIPPER,), lim.continuous),
        supervisor=_supervisor(), now=lambda: now[0], reject=lambda r, d: rejected.append((r, d)),
        hold=lambda r, d: None, early_episode=None)
    return node, rejected


def test_the_node_counts_a_separate_grippers_messages_and_refuses_when_they_stop():
    from ros_nodes.safety_node import SafetyNode

    clock = [time.time()]
    node, _rejected = _fake_node(clock)
    arm = HOME_POSITION[[CONTROLLED_JOINTS.index(n) for n in ARM_JOINTS]]

    def publish(names, values) -> None:
        SafetyNode.on_joint_state(node, conv.joint_state_to_msg(list(names), np.asarray(values), stamp=clock[0]))

    publish(ARM_JOINTS + (GRIPPER,), np.append(arm, 0.02))
    assert node.supervisor.refusal(time.monotonic(), clock[0]) is None
    start = time.monotonic()
    while time.monotonic() - start < CFG.passive_state_timeout + 0.2:  # the arm's driver alone
        clock[0] = time.time()
        publish(ARM_JOINTS, arm)
        time.sleep(0.02)
    refusal = node.supervisor.refusal(time.monotonic(), clock[0])
    assert refusal is not None and GRIPPER in refusal[1], "the gripper's last reading is too old to check against"
    publish((GRIPPER,), [0.03])  # its driver is back
    assert node.supervisor.refusal(time.monotonic(), clock[0]) is None and node.state.passive[GRIPPER] == 0.03


class ArmWithSeparateGripper(FakeArm):
    """The arm's driver publishes the six arm joints; a gripper driver publishes its own joint at 20 Hz."""

    def __init__(self, probe) -> None:
        super().__init__(probe)
        self.gripper = probe.create_publisher(JointState, topics.JOINT_STATES, qos.STATE_QOS)
        self.publish_gripper = True
        probe.create_timer(0.05, self.tick_gripper)

    def tick_joints(self) -> None:
        if self.publish_joints:
            home = HOME_POSITION[[CONTROLLED_JOINTS.index(n) for n in ARM_JOINTS]]
            self.joints.publish(conv.joint_state_to_msg(list(ARM_JOINTS), home, stamp=self.now()))

    def tick_gripper(self) -> None:
        if self.publish_gripper:
            self.gripper.publish(conv.joint_state_to_msg([GRIPPER], np.array([0.02]), stamp=self.now()))

    def valid_candidates(self):
        from armpilot.ros_nodes.candidate_conversions import candidates_to_msg

        times = 0.1 * np.arange(1, 11)
        home = HOME_POSITION[[CONTROLLED_JOINTS.index(n) for n in ARM_JOINTS]]
        chunk = home + np.outer(np.arange(1, 11), [0.01, 0, 0, 0, 0, 0])
        return candidates_to_msg(list(ARM_JOINTS), times, chunk[None], self.now())


@pytest.mark.graph
@pytest.mark.timeout(120)
def test_over_dds_a_dead_gripper_driver_holds_the_arm_once_and_nothing_moves_until_it_is_back(tmp_path):
    safety = (NodeSpec("safety", "safety_node", parameter_files=("safety.yaml",),
                       parameters={"joint_names": list(ARM_JOINTS)}),)
    with running_graph(safety, tmp_path) as (_graph, probe):
        arm, commands = ArmWithSeparateGripper(probe), Commands(probe)
        probe.spin_until(lambda: commands.moves_after(0) >= 3, 30, "proposals passing with both drivers alive")
        stopped, held = held_once_after(probe, commands, lambda: setattr(arm, "publish_gripper", False),
                                        "the gripper's driver stopping", timeout=10.0)
        assert held - stopped >= CFG.passive_state_timeout - 0.05, "held only once the reading expired"
        arm.publish_gripper = True
        back = time.monotonic()
        probe.spin_until(lambda: commands.moves_after(back) >= 2, 30, "proposals passing again")
