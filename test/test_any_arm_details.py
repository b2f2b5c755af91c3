"""Details of running any arm that a review of session 28's change found broken: an explicit perception crop box,
the push height over small boxes, servos on uncommanded joints without a range, recordings whose /joint_states
carry more joints than the controller, and the safety node before its first /clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pinocchio as pin
import pytest

from armpilot.perception.config import PerceptionConfig, table_box
from armpilot.robot import ArmModel
from armpilot.robot_profile import load_profile, profile_from_dict
from armpilot.safety.supervisor import Supervisor
from armpilot.safety.workspace import WorkspaceChecker
from armpilot.sim.world import SimWorld
from armpilot.tasks import get_task
from armpilot.tasks.experts import ExpertObservation, ScriptedExpert, plan_waypoints, turned_about_z

ROOT = Path(__file__).resolve().parent.parent


def test_an_explicit_perception_crop_box_is_declared_as_numbers():
    """With the box left empty by default, rclpy typed the parameter as a list of strings and refused the numbers
    a user sets in perception.yaml: the node did not start."""
    import rclpy
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from armpilot.ros_nodes.params import declare_config

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = Node("perception", context=context, parameter_overrides=[
            Parameter("workspace_min", value=[0.1, -0.4, -0.05]), Parameter("workspace_max", value=[0.9, 0.4, 0.5])])
        config = declare_config(node, PerceptionConfig)
        assert config.box(1.1, 0.7) == ((0.1, -0.4, -0.05), (0.9, 0.4, 0.5)), "the given box wins"
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    assert PerceptionConfig().box() == table_box() == ((0.15, -0.45, -0.05), (0.85, 0.45, 0.40))


@pytest.mark.parametrize("scale", [0.65, 0.7, 1.0, 1.4])
def test_the_push_expert_pushes_above_the_table_clearance_for_any_box(scale):
    """Pushing at the box's own height above its bottom put the tool 1-2 mm over the table for the held-out
    scene's smallest boxes (the safety node's clearance is 3 mm): the push height is the table's."""
    arm = ArmModel()
    task = get_task("push")
    expert = ScriptedExpert(arm, task)
    checker = WorkspaceChecker(arm, self_collision=False)
    half = task.object_half_size * scale
    obs = ExpertObservation(0.0, arm.profile.home, np.array([0.38, 0.0, half]), 0.0, np.array([0.50, 0.05, half]))
    q = arm.profile.home.copy()
    for waypoint in plan_waypoints(expert.task, obs, 0.04, 0.0)[1:3]:
        q = expert._solve(pin.SE3(turned_about_z(expert.down, waypoint.yaw), waypoint.position), q)
        assert checker.check(q[None]) is None, waypoint


def test_an_uncommanded_joint_without_a_range_gets_an_unlimited_servo():
    """A pan joint beside the arm whose URDF limit gives no lower/upper (0, 0) made MuJoCo refuse the servo the
    sim now holds every uncommanded joint with ('invalid control range'); under the name 'armpilot' (a URDF given
    with urdf:=) the tuned-servo lookup returned None for it."""
    bare = load_profile("armpilot")
    tag_end = bare.urdf_xml.index(">", bare.urdf_xml.index("<robot")) + 1
    extra = ('<link name="cam_mount"/><joint name="cam_pan" type="revolute"><parent link="base_link"/>'
             '<child link="cam_mount"/><axis xyz="0 0 1"/><limit effort="5" velocity="1"/></joint>')
    xml = bare.urdf_xml[:tag_end] + extra + bare.urdf_xml[tag_end:]
    import yaml

    raw = yaml.safe_load((ROOT / "config" / "robots" / "armpilot.yaml").read_text())
    profile = profile_from_dict(raw, ROOT / "config" / "robots", robot_description=xml, source="armpilot")
    world = SimWorld(profile, get_task("reach"), render=False)
    world.reset(0)
    assert "cam_pan" in world.joint_state()[0]


def test_a_recording_whose_joint_states_carry_more_joints_converts_to_the_commanded_ones(tmp_path):
    """The sim reports a separate gripper, a torso or a head on /joint_states besides the controller's joints; the
    reader took every name of the first joint state as the columns and refused each command as lacking them."""
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    from armpilot.dataset.bag_reader import read_episode
    from armpilot.ros_nodes import topics

    store = get_typestore(Stores.ROS2_HUMBLE)
    T = store.types
    arm, extra = ["a", "b"], ["torso"]
    folder = tmp_path / "episode_000000"
    with Writer(folder, version=8) as writer:
        states = writer.add_connection(topics.JOINT_STATES, "sensor_msgs/msg/JointState", typestore=store)
        commands = writer.add_connection(topics.CONTROLLER_COMMAND, "trajectory_msgs/msg/JointTrajectory",
                                         typestore=store)
        for k in range(20):
            ns = 10**9 + k * 10**8
            header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9,
                                                                                      nanosec=ns % 10**9),
                                              frame_id="")
            msg = T["sensor_msgs/msg/JointState"](header=header, name=arm + extra,
                                                  position=np.array([0.1 * k, -0.1 * k, 0.3]),
                                                  velocity=np.zeros(3), effort=np.zeros(0))
            writer.write(states, ns, store.serialize_cdr(msg, "sensor_msgs/msg/JointState"))
            point = T["trajectory_msgs/msg/JointTrajectoryPoint"](
                positions=np.array([-0.1 * k, 0.1 * k]), velocities=np.zeros(0), accelerations=np.zeros(0),
                effort=np.zeros(0), time_from_start=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=10**8))
            command = T["trajectory_msgs/msg/JointTrajectory"](header=header, joint_names=arm[::-1], points=[point])
            writer.write(commands, ns, store.serialize_cdr(command, "trajectory_msgs/msg/JointTrajectory"))
    episode = read_episode(folder, required=(topics.JOINT_STATES, topics.CONTROLLER_COMMAND))
    assert episode.joint_names == ("a", "b")
    np.testing.assert_allclose(episode.topics[topics.JOINT_STATES].values[3], [0.3, -0.3])
    np.testing.assert_allclose(episode.topics[topics.CONTROLLER_COMMAND].values[3], [0.3, -0.3])


def test_joint_states_count_before_the_nodes_first_clock():
    """On sim time the node's clock reads 0 until /clock arrives: every stamped joint state was 'after the
    node's clock' and refused as stale (the arm never alive)."""
    supervisor = Supervisor(0.3, 0.25)
    assert supervisor.stamp_problem(0.0, 12.5) == ""
    assert "after" in supervisor.stamp_problem(1.0, 12.5)


def test_a_datasets_points_and_tracks_name_the_recording_robots_base_frame():
    """The converter labelled every dataset's clouds and tracks ``base_link``: a Panda's are in ``panda_link0``."""
    from armpilot.dataset.convert import recorded_base_frame
    from armpilot.dataset.points_feature import points_features
    from armpilot.robot_profile import ROBOT_KEY

    assert recorded_base_frame({ROBOT_KEY: "panda"}) == "panda_link0"
    assert recorded_base_frame({}) == recorded_base_frame({ROBOT_KEY: "no_such_robot"}) == "base_link"
    assert points_features("panda_link0")["observation.points"]["info"]["points.frame_id"] == "panda_link0"
