"""The real graph: policy -> safety -> a real arm's ros2_control joint_trajectory_controller.

Start the arm's ros2_control driver (with joint_state_broadcaster and a
JointTrajectoryController, e.g. config/ros2_controllers.yaml) yourself first.
Nodes, parameter files, remappings and arguments come from config/graph.yaml
(graph ``real``). Example: ``ros2 launch armpilot real.launch.py
robot:=ur5 controller_topic:=/scaled_joint_trajectory_controller/joint_trajectory
camera:=realsense2_camera``; ``robot:=/path/my_arm.yaml`` for your own profile, ``urdf:=`` for
your own URDF or xacro with a shipped profile (docs/real-arm.md).
"""

from armpilot.launch_support import camera_actions, graph_launch_description, real_arguments


def generate_launch_description():
    """The ``real`` graph of config/graph.yaml for the ``robot`` profile, a camera driver and rviz2."""
    return graph_launch_description("real", extra_arguments=real_arguments(), extras=camera_actions)
