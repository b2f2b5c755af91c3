"""Multi-process tests over real DDS: the sim graph comes up, flows, moves, rejects, fails loudly."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from trajectory_msgs.msg import JointTrajectory

from armpilot.bringup import NodeFailed
from armpilot.robot import CONTROLLED_JOINTS, HOME_POSITION
from armpilot.ros_nodes import conversions as conv
from armpilot.ros_nodes import qos, topics
from graph_harness import command_topic, running_graph, sim_graph_nodes

pytestmark = [pytest.mark.graph, pytest.mark.timeout(180)]


def test_full_graph_flows_at_configured_rates_and_is_wired(tmp_path):
    nodes = sim_graph_nodes(task="reach")
    command = command_topic(nodes)
    assert command != topics.CONTROLLER_COMMAND, "the sim graph names the arm's command topic privately"
    with running_graph(nodes, tmp_path) as (graph, probe):
        probe.count(Image, topics.COLOR_IMAGE, qos.CAMERA_QOS)
        probe.count(Image, topics.DEPTH_IMAGE, qos.CAMERA_QOS)
        probe.count(Clock, topics.CLOCK, qos.CLOCK_QOS)
        probe.count(JointTrajectory, command, qos.COMMAND_QOS)
        probe.spin_until(lambda: command in probe.arrivals, 60, "a command at the controller")
        graph.check()
        # rates on the sim's clock (the joint states' stamps): a loaded machine slows the sim's wall rate, not this
        since, sim_since = time.monotonic(), probe.stamp
        probe.spin_for(4.0)
        sim_elapsed = probe.stamp - sim_since
        assert sim_elapsed > 1.0, f"the sim advanced only {sim_elapsed:.2f} s in 4 s"
        rates = {t: sum(1 for a in probe.arrivals.get(t, []) if a >= since) / sim_elapsed
                 for t in (topics.JOINT_STATES, topics.COLOR_IMAGE, topics.DEPTH_IMAGE, command)}
        expected = {topics.JOINT_STATES: 125.0, topics.COLOR_IMAGE: 1 / (8 * 0.008),
                    topics.DEPTH_IMAGE: 1 / (8 * 0.008), command: 5.0}
        # the sim publishes each stream at its configured period of sim time (stamps); this process, beside
        # a CPU hog, may take only half of the 125 Hz joint states (66 Hz measured), so what arrives must
        # flow, and the stamps show the period
        for topic in (topics.JOINT_STATES, topics.COLOR_IMAGE, topics.DEPTH_IMAGE):
            assert probe.publish_period(topic) == pytest.approx(1 / expected[topic], rel=0.05), topic
            assert rates[topic] > 0.3 * expected[topic], f"{topic}: {rates}"
        assert rates[command] == pytest.approx(expected[command], rel=0.2), f"{command}: {rates}"
        # every topic a graph node subscribes to has a publisher (teleop commands and the language instruction
        # are optional inputs from people)
        optional_inputs = {topics.TELEOP_COMMAND, topics.POLICY_INSTRUCTION}
        for name in ("sim", "perception", "tracks", "policy", "safety"):
            for topic, _types in probe.get_subscriber_names_and_types_by_node(name, "/"):
                if topic in optional_inputs:
                    continue
                assert probe.count_publishers(topic) > 0, f"{name} subscribes to {topic}, which nobody publishes"
        # nothing in the graph listens on the stock controller name: a stock tool publishing there moves nothing
        assert probe.count_subscribers(topics.CONTROLLER_COMMAND) == 0
        # a dead proposer is respawned (the safety node holds meanwhile); a dead required node stops the graph
        first = graph.pids()["policy"]
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while graph.pids()["policy"] == first and time.monotonic() < deadline:
            graph.check()
            probe.spin_for(0.1)
        assert graph.pids()["policy"] != first, "the policy node was not respawned"
        os.kill(graph.pids()["safety"], signal.SIGKILL)
        probe.spin_for(0.5)
        with pytest.raises(NodeFailed, match="safety"):
            graph.check()


def _command(probe, positions, stamp=None, topic=topics.TELEOP_COMMAND, names=CONTROLLED_JOINTS, times=None):
    publisher = probe.create_publisher(JointTrajectory, topic, qos.COMMAND_QOS)
    probe.spin_for(0.5)  # discovery
    msg = conv.joint_trajectory_to_msg(names, np.array([1.0]) if times is None else times, positions, None, stamp)
    publisher.publish(msg)
    return publisher, msg


def test_command_moves_arm_and_malformed_is_rejected(tmp_path):
    nodes = sim_graph_nodes(drop=("policy",))
    with running_graph(nodes, tmp_path) as (graph, probe):
        probe.spin_until(lambda: probe.joints is not None, 60, "/joint_states")
        start = probe.joints[:7].copy()
        assert np.allclose(start, HOME_POSITION, atol=5e-3)
        target = HOME_POSITION.copy()
        target[0] += 0.4
        # through the safety node, stamped now (zero stamp), re-sent at 5 Hz as a proposer must
        # (the safety node holds a chunk that is not refreshed within proposal_timeout)
        publisher, msg = _command(probe, target[None, :], stamp=None)
        deadline = time.monotonic() + 20
        while abs(probe.joints[0] - target[0]) >= 0.01:
            assert time.monotonic() < deadline, "the arm did not reach the target"
            publisher.publish(msg)
            probe.spin_for(0.2)
        probe.spin_for(1.0)  # settle
        held = probe.joints[:7].copy()
        assert np.allclose(held, target, atol=0.015)
        # through safety: beyond the joint limit -> rejected, hold
        too_far = held.copy()
        too_far[2] = 3.5
        publisher.publish(conv.joint_trajectory_to_msg(CONTROLLED_JOINTS, np.array([1.0]), too_far[None, :]))
        probe.spin_for(1.5)
        # malformed, straight to the controller: a missing joint, a NaN -> rejected by the sim, the arm holds
        # (after the refusal above: a second node on the controller topic makes safety refuse everything)
        direct = probe.create_publisher(JointTrajectory, command_topic(nodes), qos.COMMAND_QOS)
        probe.spin_for(0.5)
        direct.publish(conv.joint_trajectory_to_msg(CONTROLLED_JOINTS[:6], np.array([0.5]), HOME_POSITION[None, :6]))
        nan_msg = conv.joint_trajectory_to_msg(CONTROLLED_JOINTS, np.array([0.5]), target[None, :])
        nan_msg.points[0].positions[1] = float("nan")
        direct.publish(nan_msg)
        probe.spin_for(1.5)
        assert np.allclose(probe.joints[:7], held, atol=5e-3), "the arm must hold after rejected commands"
        sim_log = (tmp_path / "sim.log").read_text()
        assert "missing_joint" in sim_log and "not_finite" in sim_log
        assert "position_limit" in (tmp_path / "safety.log").read_text()
        graph.check()
