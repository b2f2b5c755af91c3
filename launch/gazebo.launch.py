"""The gazebo graph: gz sim (Harmonic) arm and RGB-D camera with gz_ros2_control -> policy -> safety.

Needs ros_gz_sim, ros_gz_bridge, gz_ros2_control and ros2_controllers. The URDF's
ros2_control hardware is swapped for gz_ros2_control/GazeboSimSystem, the
controllers of config/ros2_controllers.yaml are spawned, and /clock and the
camera are bridged to realsense2_camera's topic names. Nodes of the armpilot
graph come from config/graph.yaml (graph ``gazebo``).
"""

from armpilot.gazebo_support import gazebo_actions, gazebo_robot_description
from armpilot.launch_support import graph_launch_description


def generate_launch_description():
    """The ``gazebo`` graph of config/graph.yaml with gz sim, the bridge, controllers and rviz2."""
    return graph_launch_description("gazebo", extras=gazebo_actions, urdf=gazebo_robot_description)
