"""The arm description: parses with pinocchio, has a sane chain, limits, inertias and camera."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pinocchio as pin

from armpilot.paths import urdf_path
from armpilot.robot import ARM_JOINTS, CAMERA_OPTICAL_FRAME, CONTROLLED_JOINTS, HOME_POSITION, TCP_FRAME


def test_chain_from_base_to_tool(arm):
    model = arm.model
    names = list(model.names)[1:]
    assert names[:6] == list(ARM_JOINTS)
    tcp = model.frames[model.getFrameId(TCP_FRAME)]
    # walk the kinematic tree from the tool back to the universe: every arm joint is on the way
    chain, joint = [], tcp.parentJoint
    while joint > 0:
        chain.append(model.names[joint])
        joint = model.parents[joint]
    assert list(reversed(chain)) == list(ARM_JOINTS)


def test_limits_are_realistic(arm):
    lim = arm.limits
    assert lim.names == CONTROLLED_JOINTS
    assert np.all(lim.lower < lim.upper)
    assert np.all(lim.velocity[:6] >= 1.0) and np.all(lim.velocity[:6] <= np.pi)
    assert np.all(lim.effort > 0)
    assert lim.lower[-1] == 0.0 and lim.upper[-1] == 0.04
    assert np.all(HOME_POSITION >= lim.lower) and np.all(HOME_POSITION <= lim.upper)


def test_reach_and_link_lengths(arm):
    q = np.zeros(7)
    q[-1] = 0.04
    tcp_up = arm.tcp_pose(q)[:3, 3]
    # straight up: base 0.18 + upper arm 0.32 + forearm 0.28 + wrist/tool 0.145 m
    assert np.allclose(tcp_up, [0, 0, 0.18 + 0.32 + 0.28 + 0.145], atol=1e-6)


def test_inertias_physical(arm):
    for inertia in arm.model.inertias[1:]:
        assert inertia.mass > 0
        principal = np.linalg.eigvalsh(inertia.inertia)
        assert np.all(principal > 0)
        a, b, c = sorted(principal)
        assert a + b >= c * (1 - 1e-9), "triangle inequality of principal moments"


def test_camera_looks_at_the_table(arm):
    pose = arm.frame_pose(CAMERA_OPTICAL_FRAME)
    origin, forward = pose[:3, 3], pose[:3, 2]
    assert origin[2] > 0.3, "camera above the table"
    # the optical axis hits the table (z = 0) in the workspace in front of the arm
    hit = origin + forward * (-origin[2] / forward[2])
    assert 0.2 < hit[0] < 0.6 and abs(hit[1]) < 0.1
    # optical frame convention: x right, y down -> image "down" points toward the table
    assert pose[2, 1] < 0


def test_ros2_control_block_lists_controlled_joints():
    root = ET.parse(urdf_path()).getroot()
    block = root.find("ros2_control")
    assert block is not None
    names = [j.get("name") for j in block.findall("joint")]
    assert names == list(CONTROLLED_JOINTS)
    for joint in block.findall("joint"):
        assert joint.find("command_interface").get("name") == "position"


def test_gripper_mimic_declared():
    root = ET.parse(urdf_path()).getroot()
    right = [j for j in root.findall("joint") if j.get("name") == "gripper_right_finger_joint"][0]
    assert right.find("mimic").get("joint") == "gripper_joint"


def test_ik_round_trip(arm):
    rng = np.random.default_rng(0)
    for _ in range(10):
        q = HOME_POSITION + rng.uniform(-0.3, 0.3, 7)
        q[-1] = 0.02
        target = arm.tcp_pose(q)
        result = arm.ik(target[:3, 3], target[:3, :3], HOME_POSITION)
        assert result.converged
        assert np.allclose(arm.tcp_pose(result.positions), target, atol=1e-3)
        assert pin.neutral(arm.model).shape == (8,)
