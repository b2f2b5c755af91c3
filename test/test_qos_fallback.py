"""Subscriptions that also hear users' publishers offering less than armpilot's QoS asks.

Before session 29 a goal from ``ros2 topic pub`` or RViz's goal tool (reliable, volatile) never reached the
policy node's latched ``/policy/goal`` subscription, and a Gazebo camera (best effort) never reached
perception: DDS matches no publisher that offers less than a subscription requests.
"""

from __future__ import annotations

import pytest
from rclpy.qos import DurabilityPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from armpilot.ros_nodes import qos
from graph_harness import running_graph

VOLATILE = QoSProfile(depth=10)
BEST_EFFORT = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)


def test_relaxed_asks_less_of_only_the_incompatible_policy():
    volatile = qos.relaxed(qos.LATCHED_QOS, QoSPolicyKind.DURABILITY)
    assert volatile.durability == DurabilityPolicy.VOLATILE and volatile.reliability == ReliabilityPolicy.RELIABLE
    assert volatile.depth == qos.LATCHED_QOS.depth
    best_effort = qos.relaxed(qos.CAMERA_QOS, QoSPolicyKind.RELIABILITY)
    assert best_effort.reliability == ReliabilityPolicy.BEST_EFFORT and best_effort.depth == qos.CAMERA_QOS.depth
    assert qos.relaxed(best_effort, QoSPolicyKind.RELIABILITY) is None, "nothing less to ask"
    assert qos.relaxed(qos.CAMERA_QOS, QoSPolicyKind.DEADLINE) is None


@pytest.mark.graph
@pytest.mark.timeout(120)
@pytest.mark.parametrize("asked, offered, msg_type", [
    (qos.LATCHED_QOS, VOLATILE, String),  # ros2 topic pub / RViz on /policy/goal or /policy/instruction
    (qos.LATCHED_QOS, BEST_EFFORT, String),  # two policies less: two fallbacks
    (qos.CAMERA_QOS, BEST_EFFORT, Image),  # gazebo_ros_camera's sensor-data QoS
], ids=["volatile_goal", "best_effort_goal", "best_effort_camera"])
def test_a_publisher_offering_less_is_heard_once_its_incompatibility_is_seen(tmp_path, asked, offered, msg_type):
    with running_graph((), tmp_path) as (_graph, probe):
        received = []
        subscriptions = qos.subscribe_any_publisher(probe, msg_type, "/offered", received.append, asked)
        publisher = probe.create_publisher(msg_type, "/offered", offered)
        probe.spin_until(lambda: publisher.publish(msg_type()) or received, 30, "a message from the publisher")
        assert len(subscriptions) >= 2, "a fallback subscription was added"
        assert subscriptions[-1].qos_profile.reliability == offered.reliability


@pytest.mark.graph
@pytest.mark.timeout(120)
def test_a_latched_value_still_reaches_a_late_subscriber(tmp_path):
    """The fallback changes nothing for publishers that match: a latched goal published before the policy node
    started is still received, once (no fallback is added)."""
    with running_graph((), tmp_path) as (_graph, probe):
        publisher = probe.create_publisher(String, "/latched", qos.LATCHED_QOS)
        publisher.publish(String(data="goal"))
        received = []
        subscriptions = qos.subscribe_any_publisher(probe, String, "/latched", received.append, qos.LATCHED_QOS)
        probe.spin_until(lambda: received, 30, "the latched value")
        probe.spin_for(0.5)
        assert [m.data for m in received] == ["goal"] and len(subscriptions) == 1


@pytest.mark.graph
@pytest.mark.timeout(120)
def test_the_recorder_names_a_topic_whose_publisher_it_cannot_hear(tmp_path):
    """The recorder keeps its presets (a fallback could record a message twice) but says which topic stays empty
    and which preset hears it; before, rclpy's generic warning was all, and the episodes lacked the camera."""
    import time

    from armpilot.graph import NodeSpec

    spec = NodeSpec("recorder", "recorder_node", parameters={
        "output_dir": str(tmp_path / "episodes"), "topics": "['/camera/image']",
        "types": "['sensor_msgs/msg/Image']", "qos_profiles": "['camera']"})
    log = tmp_path / "logs" / "recorder.log"
    with running_graph((spec,), tmp_path / "logs") as (_graph, probe):
        probe.create_publisher(Image, "/camera/image", BEST_EFFORT)
        deadline = time.monotonic() + 60
        while not (log.exists() and "NOT recorded" in log.read_text()):
            assert time.monotonic() < deadline, "no error naming the topic the recorder cannot hear"
            probe.spin_for(0.2)
    text = log.read_text()
    assert "/camera/image" in text and "'sensor'" in text


@pytest.mark.graph
@pytest.mark.timeout(120)
def test_the_safety_node_names_a_joint_state_publisher_it_cannot_hear(tmp_path):
    """The safety node keeps reliable joint states; a best-effort driver left it refusing everything as
    ``no_joint_state`` while `ros2 topic echo` showed the states, with rclpy's generic warning only."""
    import time

    from sensor_msgs.msg import JointState

    from armpilot.graph import NodeSpec

    log = tmp_path / "logs" / "safety.log"
    safety = (NodeSpec("safety", "safety_node", parameter_files=("safety.yaml",)),)
    with running_graph(safety, tmp_path / "logs") as (_graph, probe):
        probe.create_publisher(JointState, "/joint_states", BEST_EFFORT)
        deadline = time.monotonic() + 60
        while not (log.exists() and "nothing it sends arrives" in log.read_text()):
            assert time.monotonic() < deadline, "no error naming /joint_states and its QoS"
            probe.spin_for(0.2)
    assert "/joint_states" in log.read_text() and "reliab" in log.read_text()
