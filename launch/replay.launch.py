"""The replay graph of config/graph.yaml (the same source ``armpilot replay`` reads).

A recorded episode played into perception -> policy -> safety on the bag's time; the
safety node's commands go to /replay/arm_controller/joint_trajectory (no arm moves). Example:
``ros2 launch armpilot replay.launch.py bag:=/data/bags/episode_000003 task:=pick``.
"""

from armpilot.launch_support import graph_launch_description


def generate_launch_description():
    """The ``replay`` graph of config/graph.yaml, plus an optional rviz2."""
    return graph_launch_description("replay")
