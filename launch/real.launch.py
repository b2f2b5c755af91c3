"""The real graph: policy -> safety -> a real arm's ros2_control joint_trajectory_controller.

Start the arm's ros2_control driver (with joint_state_broadcaster and a
JointTrajectoryController, e.g. config/ros2_controllers.yaml) yourself first.
Nodes, parameter files, remappings and arguments come from config/graph.yaml
(graph ``real``). Example: ``ros2 launch armpilot real.launch.py
controller_topic:=/scaled_joint_trajectory_controller/joint_trajectory urdf:=/path/arm.urdf
camera:=realsense2_camera``.
"""

from armpilot.launch_support import camera_actions, graph_launch_description, real_arguments, urdf_from_argument


def generate_launch_description():
    """The ``real`` graph of config/graph.yaml, a URDF of your choice, a camera driver and rviz2."""
    return graph_launch_description("real", extra_arguments=real_arguments(), extras=camera_actions,
                                    urdf=urdf_from_argument)
