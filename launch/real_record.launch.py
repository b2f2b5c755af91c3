"""The real_record graph of config/graph.yaml (the same source ``armpilot up real_record`` reads).

A real arm's driver and camera, armpilot's perception and safety node, and the episode recorder:
teleoperate from a terminal (``ros2 run armpilot teleop_node``) and start/stop episodes with
``ros2 service call /recorder/start std_srvs/srv/Trigger``. Example:
``ros2 launch armpilot real_record.launch.py robot:=my_panda.yaml output:=/data/bags
controller_topic:=/joint_trajectory_controller/joint_trajectory``.
"""

from armpilot.launch_support import graph_launch_description


def generate_launch_description():
    """The ``real_record`` graph of config/graph.yaml, plus an optional rviz2."""
    return graph_launch_description("real_record")
