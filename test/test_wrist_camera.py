"""A camera the arm moves (a wrist camera): the sim carries it on its link, and perception and tracks place each
frame with the joint state at its stamp (``perception/geometry.py`` ``CameraMount``).

Before session 30 every node took the camera's pose once, at home: a user's wrist camera was deprojected as if the
arm never moved, and every point and object was wrong by as much as the arm had moved, silently."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import pytest

from armpilot.perception.cloud import CloudPipeline
from armpilot.perception.config import PerceptionConfig
from armpilot.perception.geometry import Intrinsics, camera_mount
from armpilot.perception.self_filter import RobotBoxes
from armpilot.robot import ArmModel
from armpilot.robot_profile import RobotProfile, load_profile, profile_from_dict, shipped_profiles
from armpilot.sim.scene import CameraConfig
from armpilot.sim.world import SimWorld
from armpilot.tasks import get_task

WRIST_CAMERA = "wrist_camera_optical_frame"


def wrist_camera_profile() -> RobotProfile:
    """armpilot's arm with a camera 6 cm beside the gripper, looking along the tool, named by the profile."""
    import yaml

    path = shipped_profiles()["armpilot"]
    raw = yaml.safe_load(path.read_text())
    root = ET.fromstring(load_profile("armpilot").urdf_xml)
    joint = ET.SubElement(root, "joint", name="wrist_camera_joint", type="fixed")
    ET.SubElement(joint, "parent", link="gripper_base_link")
    ET.SubElement(joint, "child", link=WRIST_CAMERA)
    ET.SubElement(joint, "origin", xyz="-0.06 0 0.0", rpy="0 0.12 0")
    ET.SubElement(root, "link", name=WRIST_CAMERA)
    return profile_from_dict({**raw, "camera_frame": WRIST_CAMERA}, path.parent,
                             ET.tostring(root, encoding="unicode"), source="armpilot_wrist_camera")


def test_a_camera_on_the_arm_moves_and_one_beside_it_does_not():
    wrist = ArmModel(wrist_camera_profile())
    mount = camera_mount(wrist)
    assert mount.moves and mount.frame == WRIST_CAMERA, "the profile's camera_frame wins over the node's default"
    q = np.array(wrist.profile.home) + np.array([0.3, -0.2, 0.1, 0.0, 0.2, 0.4, 0.0])
    assert np.allclose(mount.pose(q), wrist.frame_pose(WRIST_CAMERA, q))
    assert not np.allclose(mount.pose(q), mount.pose(), atol=0.01)
    fixed = camera_mount(ArmModel(load_profile("armpilot")))
    assert not fixed.moves and np.allclose(fixed.pose(q), fixed.pose())


@pytest.mark.parametrize("seed", [3, 11])
def test_the_sim_carries_a_wrist_camera_and_perception_finds_the_box_from_two_poses(seed):
    profile = wrist_camera_profile()
    arm = ArmModel(profile)
    mount = camera_mount(arm)
    world = SimWorld(profile, get_task("push"), CameraConfig(320, 240))
    world.reset(seed)
    box = world.object_pose()[0]
    fx, fy, cx, cy = world.intrinsics()
    home = np.array(profile.home)
    down = arm.tcp_pose(home)[:3, :3]
    errors, stale_errors = [], []
    for offset in ([0.0, 0.0, 0.30], [-0.10, 0.08, 0.22]):
        q = arm.ik(box + np.array(offset), down, home).positions
        world.data.qpos[world._qpos] = q
        mujoco.mj_forward(world.model, world.data)
        assert np.allclose(world.camera_optical_pose(), mount.pose(q), atol=1e-5), "the sim's camera is the URDF's"
        color, depth = world.render()
        pipeline = CloudPipeline(PerceptionConfig(), Intrinsics(fx, fy, cx, cy, 320, 240), mount.pose(),
                                 reach=profile.reach, table_z=profile.table_z)
        result = pipeline.process(depth, color, RobotBoxes(arm)(q), mount.pose(q))
        assert result.objects, f"pose {offset}: no object seen"
        errors.append(float(np.linalg.norm(result.objects[0].position[:2] - box[:2])))  # the top alone, seen from
        # straight above, puts z at the box's top face: the table-plane position is what the tasks use
        stale = pipeline.process(depth, color, RobotBoxes(arm)(q), mount.pose(home))  # the old behaviour
        stale_errors.append(np.linalg.norm(stale.objects[0].position[:2] - box[:2]) if stale.objects else np.inf)
    world.close()
    assert max(errors) < 0.015, errors
    assert max(stale_errors) > 0.05, "placed where the camera was at home, the box is elsewhere: the test can fail"


def test_the_perception_node_uses_joint_states_at_each_frames_stamp():
    """The node (in-process, its callbacks called directly): a camera alone, before any joint state, is processed
    unfiltered (a recording, a bench test); once joint states come, a frame newer than every one waits for the
    next, and a frame with none within joint_state_timeout is skipped, never published with the arm in it."""
    import rclpy

    from armpilot.ros_nodes import conversions as conv
    from ros_nodes.perception_node import PerceptionNode

    world = SimWorld(None, get_task("push"), CameraConfig(320, 240))
    world.reset(3)
    color, depth = world.render()
    world.close()
    fx, fy, cx, cy = world.intrinsics()
    depth_mm = np.round(depth * 1000).astype(np.uint16)
    frame = lambda t: (t, conv.image_to_msg(depth_mm, "16UC1", t), conv.image_to_msg(color, "rgb8", t))  # noqa: E731
    names, home = world.profile.joints, np.array(world.profile.home)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = PerceptionNode(context=context)
        published: list[float] = []
        node.publish = lambda result, stamp: published.append(conv.stamp_to_sec(stamp))
        node.on_info(conv.camera_info_msg(320, 240, fx, fy, cx, cy, 1.0))
        node.process(*frame(1.0))
        assert published == [1.0], "no joint state yet: processed without the self filter"
        node.on_joints(conv.joint_state_to_msg(names, home, stamp=1.0))
        node.process(*frame(1.2))
        assert published == [1.0], "newer than every joint state: it waits"
        node.on_joints(conv.joint_state_to_msg(names, home, stamp=1.25))
        assert published == [1.0, 1.2], "its joint state came: processed"
        node.process(*frame(3.0))
        node.on_joints(conv.joint_state_to_msg(names, home, stamp=1.3))
        assert published == [1.0, 1.2] and node.problems.counts["no_joint_state"] == 1
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
