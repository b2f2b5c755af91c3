"""Gazebo (gz sim Harmonic, ros_gz, gz_ros2_control) pieces of ``launch/gazebo.launch.py``.

:func:`gazebo_urdf` is pure and tested here; :func:`gazebo_actions` imports
``launch``/``launch_ros`` inside, for machines that have them.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Mapping, Sequence

from armpilot.graph import NodeSpec
from armpilot.paths import config_path

CONTROLLERS_FILE = "ros2_controllers.yaml"
ROBOT_NAME = "armpilot_arm"

#: ``ros_gz_bridge`` arguments (gz -> ROS) and the ROS names the gz topics take.
GZ_CAMERA_TOPIC = "/gz/camera"
GZ_BRIDGES: tuple[tuple[str, str, str, str], ...] = (
    # gz topic, ROS type, gz type, ROS topic
    ("/clock", "rosgraph_msgs/msg/Clock", "gz.msgs.Clock", "/clock"),
    (f"{GZ_CAMERA_TOPIC}/image", "sensor_msgs/msg/Image", "gz.msgs.Image", "/camera/camera/color/image_raw"),
    (f"{GZ_CAMERA_TOPIC}/depth_image", "sensor_msgs/msg/Image", "gz.msgs.Image",
     "/camera/camera/aligned_depth_to_color/image_raw"),
    (f"{GZ_CAMERA_TOPIC}/camera_info", "sensor_msgs/msg/CameraInfo", "gz.msgs.CameraInfo",
     "/camera/camera/color/camera_info"),
)
#: Controllers the Gazebo graph spawns, in order (names from config/ros2_controllers.yaml).
CONTROLLERS = ("joint_state_broadcaster", "arm_controller")
GZ_SYSTEM_PLUGIN = "gz_ros2_control/GazeboSimSystem"


def gz_bridge_arguments() -> list[str]:
    """``parameter_bridge`` arguments: ``TOPIC@ROS_TYPE[GZ_TYPE`` (gz -> ROS only)."""
    return [f"{gz}@{ros_type}[{gz_type}" for gz, ros_type, gz_type, _ in GZ_BRIDGES]


def gz_bridge_remappings() -> list[tuple[str, str]]:
    """Remappings from the bridged gz topic names to the realsense2_camera names."""
    return [(gz, ros) for gz, _, _, ros in GZ_BRIDGES if gz != ros]


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    element.text = text
    return element


def _camera_sensor(width: int, height: int, fovy_deg: float, rate_hz: float) -> ET.Element:
    """``<gazebo reference="camera_link">`` with an RGB-D camera looking along camera_link's +x."""
    gazebo = ET.Element("gazebo", reference="camera_link")
    sensor = _sub(gazebo, "sensor", name="camera", type="rgbd_camera")
    _sub(sensor, "always_on", "true")
    _sub(sensor, "update_rate", f"{rate_hz:g}")  # Hz
    _sub(sensor, "visualize", "false")
    _sub(sensor, "topic", GZ_CAMERA_TOPIC)
    _sub(sensor, "gz_frame_id", "camera_color_optical_frame")
    camera = _sub(sensor, "camera", name="camera")
    hfov = 2.0 * math.atan(math.tan(math.radians(fovy_deg) / 2.0) * width / height)
    _sub(camera, "horizontal_fov", f"{hfov:.6f}")  # rad
    image = _sub(camera, "image")
    _sub(image, "width", str(width))  # px
    _sub(image, "height", str(height))  # px
    _sub(image, "format", "R8G8B8")
    clip = _sub(camera, "clip")
    _sub(clip, "near", "0.1")  # m
    _sub(clip, "far", "5.0")  # m
    _sub(camera, "optical_frame_id", "camera_color_optical_frame")
    return gazebo


def gazebo_urdf(urdf_text: str, controllers_yaml_path: str | Path, *, width: int = 640, height: int = 480,
                fovy_deg: float = 55.0, camera_rate_hz: float = 15.0) -> str:
    """The arm's URDF made ready for Gazebo (gz sim Harmonic + gz_ros2_control).

    Swaps the ``<ros2_control>`` hardware plugin for ``gz_ros2_control/GazeboSimSystem``,
    fixes ``base_link`` to the world, and appends the gz_ros2_control system plugin
    (reading ``controllers_yaml_path``, made absolute), the gz Sensors system and an
    RGB-D camera on ``camera_link``.

    Raises:
        ValueError: when the URDF has no ``<ros2_control>`` hardware plugin.
    """
    robot = ET.fromstring(urdf_text)
    plugins = robot.findall("./ros2_control/hardware/plugin")
    if not plugins:
        raise ValueError("URDF has no <ros2_control><hardware><plugin> to swap for Gazebo")
    for plugin in plugins:
        plugin.text = GZ_SYSTEM_PLUGIN
    if robot.find("./link[@name='world']") is None:
        _sub(robot, "link", name="world")
        joint = _sub(robot, "joint", name="world_to_base_link", type="fixed")
        _sub(joint, "parent", link="world")
        _sub(joint, "child", link="base_link")
    control = _sub(robot, "gazebo")
    plugin = _sub(control, "plugin", filename="gz_ros2_control-system",
                  name="gz_ros2_control::GazeboSimROS2ControlPlugin")
    _sub(plugin, "parameters", str(Path(controllers_yaml_path).resolve()))
    sensors = _sub(robot, "gazebo")  # empty.sdf loads no Sensors system; cameras need one
    sensors_plugin = _sub(sensors, "plugin", filename="gz-sim-sensors-system", name="gz::sim::systems::Sensors")
    _sub(sensors_plugin, "render_engine", "ogre2")
    robot.append(_camera_sensor(width, height, fovy_deg, camera_rate_hz))
    ET.indent(robot)
    return ET.tostring(robot, encoding="unicode")


def gazebo_robot_description(configurations: Mapping[str, str]) -> str:
    """The ``robot`` profile's URDF (its ``<ros2_control>`` block required), via :func:`gazebo_urdf`,
    with the installed controllers file."""
    from armpilot.launch_support import robot_description_text

    return gazebo_urdf(robot_description_text(configurations), config_path(CONTROLLERS_FILE))


def gazebo_actions(configurations: Mapping[str, str], nodes: Sequence[NodeSpec]) -> list:
    """gz sim (empty world), spawn from ``robot_description``, bridge, controller spawners.

    The spawners run one after the other once the robot is spawned (its
    gz_ros2_control plugin starts the controller manager).
    """
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnProcessExit
    from launch_ros.actions import Node

    from armpilot.launch_support import include_launch

    gz_sim = include_launch("ros_gz_sim", "launch/gz_sim.launch.py", {"gz_args": "-r empty.sdf"})
    spawn = Node(package="ros_gz_sim", executable="create", output="screen",
                 arguments=["-topic", "robot_description", "-name", ROBOT_NAME])
    bridge = Node(package="ros_gz_bridge", executable="parameter_bridge", name="gz_bridge", output="screen",
                  arguments=gz_bridge_arguments(), remappings=gz_bridge_remappings())
    spawners = [Node(package="controller_manager", executable="spawner", output="screen",
                     arguments=[c, "--controller-manager", "/controller_manager"]) for c in CONTROLLERS]
    chain: list[Any] = []
    previous = spawn
    for spawner in spawners:
        chain.append(RegisterEventHandler(OnProcessExit(target_action=previous, on_exit=[spawner])))
        previous = spawner
    return [gz_sim, spawn, bridge, *chain]
