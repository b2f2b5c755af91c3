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
