"""Every node's robot: declare ``robot`` / ``robot_description``, load the profile, log which."""

from __future__ import annotations

from rclpy.node import Node

from armpilot.robot_profile import RobotProfile, RobotSelection
from armpilot.ros_nodes.params import declare_config


def load_robot(node: Node) -> RobotProfile:
    """The node's robot profile (RobotDescriptionError names what does not fit)."""
    profile = declare_config(node, RobotSelection).load()
    node.get_logger().info(f"loaded {profile.summary()} from {profile.source}")
    return profile
