"""armpilot: run learned policies on robot arms, safely (ROS 2).

Pure cores live in this package and never import rclpy; ROS node shells live in
``armpilot.ros_nodes`` (the repository's top-level ``ros_nodes/``) and PyTorch
policies in ``armpilot.policies`` (top-level ``policies/``).
"""

__version__ = "0.1.0"
