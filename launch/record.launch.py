"""The record graph of config/graph.yaml (the same source ``armpilot up record`` reads).

The sim graph plus the episode recorder; drive episodes with the recorder's services
(/recorder/start, /recorder/stop, /recorder/discard). Example:
``ros2 launch armpilot record.launch.py task:=pick output:=/data/bags``.
"""

from armpilot.launch_support import graph_launch_description


def generate_launch_description():
    """The ``record`` graph of config/graph.yaml, plus an optional rviz2."""
    return graph_launch_description("record")
