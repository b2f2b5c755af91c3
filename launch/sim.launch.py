"""The sim graph (MuJoCo arm and camera -> policy -> safety -> sim, on sim time).

Nodes, parameter files, remappings and arguments come from config/graph.yaml
(graph ``sim``), the same source ``armpilot up sim`` reads. Example:
``ros2 launch armpilot sim.launch.py task:=pick rviz:=true``.
"""

from armpilot.launch_support import graph_launch_description


def generate_launch_description():
    """The ``sim`` graph of config/graph.yaml, plus an optional rviz2."""
    return graph_launch_description("sim")
