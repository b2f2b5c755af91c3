"""The policy node's task inputs (``ros_nodes/policy_task_inputs.py``) and object poses, on stand-ins of the node:
what a stray or misconfigured publisher sends is named and ignored, never a crash or a silent misreading."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from geometry_msgs.msg import Pose, PoseArray, PoseStamped
from std_msgs.msg import String

from armpilot.sim.episode_message import encode_episode


def _logger(errors: list[str]) -> SimpleNamespace:
    return SimpleNamespace(error=lambda m, **_: errors.append(m), warning=lambda m, **_: errors.append(m),
                           info=lambda m, **_: None)


def test_the_policy_node_ignores_an_unreadable_announcement_and_names_it():
    """Before session 30 the policy node parsed /sim/episode unchecked: a stray publisher's message killed it."""
    from ros_nodes.policy_node import PolicyNode

    errors: list[str] = []
    begun: list[tuple[int, float]] = []
    node = SimpleNamespace(episode=-1, get_logger=lambda: _logger(errors),
                           begin_episode=lambda e, start, why: begun.append((e, start)))
    for data in ("not json", '{"episode": 1}', "x" * 70000):
        PolicyNode.on_episode(node, String(data=data))
    assert not begun and len(errors) == 3 and all("/sim/episode" in e for e in errors)
    PolicyNode.on_episode(node, String(data=encode_episode(1, 1, "push", 3.0, [0.5, 0.0, 0.0], {})))
    assert begun == [(1, 3.0)]


def test_object_poses_and_goals_in_another_frame_are_ignored_and_named():
    """Before session 30 the policy read /perception/objects whatever its frame: a user's detector publishing in
    the camera frame was taken as base-frame positions, silently."""
    from ros_nodes.policy_node import PolicyNode

    errors: list[str] = []
    pushed: list[np.ndarray] = []
    node = SimpleNamespace(base_frame="base_link", object_topic="/perception/objects", objects_alive=float("-inf"),
                           get_logger=lambda: _logger(errors), push=lambda topic, stamp, v: pushed.append(v) or False)
    node.in_base_frame = lambda topic, header: PolicyNode.in_base_frame(node, topic, header)
    poses = PoseArray(poses=[Pose()])
    poses.header.frame_id, poses.header.stamp.sec = "camera_color_optical_frame", 5
    PolicyNode.on_objects(node, poses)
    assert not pushed and node.objects_alive == float("-inf"), "a stream in the wrong frame is no object stream"
    assert "camera_color_optical_frame" in errors[-1] and "base_link" in errors[-1]
    for frame in ("base_link", "/base_link", ""):
        poses.header.frame_id = frame
        PolicyNode.on_objects(node, poses)
    assert len(pushed) == 3 and node.objects_alive == 5.0
    goal = PoseStamped()
    goal.header.frame_id = "map"
    PolicyNode.on_goal(node, goal)  # returns before reading anything else of the node
    assert "map" in errors[-1] and "/policy/goal" in errors[-1]
