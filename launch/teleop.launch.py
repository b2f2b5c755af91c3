"""The teleop graph of config/graph.yaml (the same source ``armpilot up teleop`` reads).

The sim arm, perception, safety and the recorder; teleoperate from a terminal with
``ros2 run armpilot teleop_node`` (keyboard) or ``--ros-args -p device:=joy``. Example:
``ros2 launch armpilot teleop.launch.py output:=/data/bags``.
"""

from armpilot.launch_support import graph_launch_description


def generate_launch_description():
    """The ``teleop`` graph of config/graph.yaml, plus an optional rviz2."""
    return graph_launch_description("teleop")
