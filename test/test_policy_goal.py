"""The task goal from real inputs: ``EpisodeGoal`` (pure) and the policy node on a real arm's graph.

On the real graph nothing publishes ``/sim/episode``: the policy node runs one continuous episode from
start-up, takes the push goal from ``/policy/goal`` (refusing another frame) and derives a reach goal
from the object.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from geometry_msgs.msg import Pose, PoseArray, PoseStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState, PointCloud2

from armpilot.graph import load_graphs, resolve
from armpilot.policies.episode_goal import EpisodeGoal
from armpilot.robot import CONTROLLED_JOINTS
from armpilot.ros_nodes import qos, topics
from armpilot.ros_nodes.candidate_conversions import candidates_from_msg
from armpilot.ros_nodes.conversions import sec_to_stamp
from armpilot.tasks import get_task
from graph_harness import running_graph

HOME = np.array([0.0, -0.3, 1.6, 0.0, 1.2, 0.0, 0.04])


def test_push_goal_comes_only_from_the_user_and_a_new_one_is_reported():
    goal = EpisodeGoal(get_task("push"))
    goal.start_episode(10.0)
    goal.object_seen(np.array([0.4, 0.0, 0.03]))
    assert not np.isfinite(goal.current()).any() and "/policy/goal" in goal.missing()
    assert goal.set_user_goal(10.0, np.array([0.5, 0.1, 0.03]))
    assert np.allclose(goal.current(), [0.5, 0.1, 0.03]) and goal.missing() == ""
    assert not goal.set_user_goal(11.0, np.array([0.5, 0.1, 0.0305]))  # the same goal again
    goal.start_episode(20.0)  # a goal stamped before the episode belongs to the last one
    assert not np.isfinite(goal.current()).any()
    with pytest.raises(ValueError, match="finite"):
        goal.set_user_goal(21.0, np.array([np.nan, 0.0, 0.0]))


def test_reach_and_pick_goals_follow_the_first_object_of_the_episode_unless_the_user_gives_one():
    for name, expected in (("reach", [0.45, 0.1, 0.2]), ("pick", [0.4, 0.1, 0.03 + get_task("pick").lift_height])):
        goal = EpisodeGoal(get_task(name))
        goal.start_episode(0.0)
        assert "no object" in goal.missing()
        goal.object_seen(np.array([0.4, 0.1, 0.03]))
        goal.object_seen(np.array([0.45, 0.1, 0.2]))  # reach: the target moved; pick: the box was lifted
        assert np.allclose(goal.current(), expected)
        goal.set_user_goal(1.0, np.array([0.3, 0.0, 0.2]))
        assert np.allclose(goal.current(), [0.3, 0.0, 0.2])
    with pytest.raises(ValueError, match="needs a goal"):
        get_task("push").goal_from_object(np.zeros(3))


def _policy_node(task: str):
    """The real graph's policy node (scripted backend) on wall-clock time."""
    node = next(n for n in resolve(load_graphs()["real"], {"policy": "scripted", "task": task}) if n.name == "policy")
    assert node.parameters["episodes"] == "continuous"
    return node


def _goal(frame: str, xyz) -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = frame  # stamp 0, as `ros2 topic pub` sends it
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = map(float, xyz)
    msg.pose.orientation.w = 1.0
    return msg


class Feed:
    """Joint states and one box for the node under test; counts the candidate tables it publishes."""

    def __init__(self, probe, goal_qos: QoSProfile = qos.LATCHED_QOS) -> None:
        self.probe = probe
        self.joints = probe.create_publisher(JointState, topics.JOINT_STATES, qos.STATE_QOS)
        self.objects = probe.create_publisher(PoseArray, topics.PERCEPTION_OBJECTS, qos.STATE_QOS)
        self.goal = probe.create_publisher(PoseStamped, topics.POLICY_GOAL, goal_qos)
        self.received: list[PointCloud2] = []
        probe.create_subscription(PointCloud2, topics.POLICY_CANDIDATES, self.received.append, qos.COMMAND_QOS)
        probe.spin_until(lambda: self.joints.get_subscription_count() > 0 and self.goal.get_subscription_count() > 0,
                         30, "the policy node's subscriptions")

    def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            now = time.time()
            state = JointState(name=list(CONTROLLED_JOINTS), position=[float(p) for p in HOME])
            state.header.stamp = sec_to_stamp(now)
            self.joints.publish(state)
            boxes = PoseArray(poses=[Pose()])
            boxes.header.stamp = sec_to_stamp(now)
            boxes.poses[0].position.x, boxes.poses[0].position.z = 0.42, 0.025
            boxes.poses[0].orientation.w = 1.0
            self.objects.publish(boxes)
            self.probe.spin_for(0.02)

    def until_candidates(self, what: str, timeout: float = 30.0) -> None:
        count = len(self.received)
        deadline = time.monotonic() + timeout
        while len(self.received) <= count:
            assert time.monotonic() < deadline, f"no candidates {what}"
            self.run(0.2)


#: What users' clients offer: a latched publisher (armpilot's sim), ``ros2 topic pub`` and RViz's goal tool
#: (reliable, volatile: the latched subscription never matched them before session 29), a best-effort one.
GOAL_PUBLISHERS = {"latched": qos.LATCHED_QOS, "volatile": QoSProfile(depth=10),
                   "best_effort": QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)}


@pytest.mark.graph
@pytest.mark.timeout(180)
@pytest.mark.parametrize("publisher", GOAL_PUBLISHERS)
def test_real_graph_policy_pushes_only_toward_a_goal_in_the_base_frame(tmp_path, publisher):
    with running_graph((_policy_node("push"),), tmp_path / "logs") as (graph, probe):
        feed = Feed(probe, GOAL_PUBLISHERS[publisher])
        feed.run(3.0)  # continuous episode from start-up, but push has no goal yet
        assert not feed.received, "proposed a push without a goal"
        feed.goal.publish(_goal("camera_link", (0.5, 0.1, 0.025)))
        feed.run(2.0)
        assert not feed.received, "took a goal in another frame"
        feed.goal.publish(_goal("base_link", (0.5, 0.1, 0.025)))
        feed.until_candidates("after a goal in base_link")
        table = candidates_from_msg(feed.received[-1])
        assert np.all(np.isfinite(table.positions))
        graph.check()
    log = (tmp_path / "logs" / "policy.log").read_text()
    assert "camera_link" in log and "episode 1 (a new goal)" in log
    assert (f"a publisher on {topics.POLICY_GOAL} offers less" in log) == (publisher != "latched")


@pytest.mark.graph
@pytest.mark.timeout(180)
def test_real_graph_policy_reaches_without_sim_episodes_or_a_goal_message(tmp_path):
    with running_graph((_policy_node("reach"),), tmp_path / "logs") as (graph, probe):
        feed = Feed(probe)
        feed.until_candidates("for reach on a graph without /sim/episode")
        graph.check()
