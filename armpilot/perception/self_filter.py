"""Spheres covering the arm at a joint configuration, to cut it out of the cloud."""

from __future__ import annotations

import numpy as np
import pinocchio as pin

from armpilot.robot import ArmModel

#: armpilot's own arm: radius (m) around each link's centre line, from the URDF's primitive geometry.
LINK_RADIUS = {
    "shoulder_pan_joint": 0.07,
    "shoulder_lift_joint": 0.05,
    "elbow_joint": 0.045,
    "wrist_1_joint": 0.04,
    "wrist_2_joint": 0.04,
    "wrist_3_joint": 0.06,
}
SPACING = 0.03
#: Other arms: link radius as a fraction of the profile's reach (armpilot's 0.06 m at 0.6 m).
RADIUS_PER_REACH = 0.1


def robot_spheres(arm: ArmModel, q: np.ndarray) -> np.ndarray:
    """(K, 4) sphere centres and radii (m) along each link, joint to joint (profile order), up to the fingertips."""
    full = arm.full_configuration(np.asarray(q, float))
    pin.forwardKinematics(arm.model, arm.data, full)
    pin.updateFramePlacements(arm.model, arm.data)
    joints = arm.profile.arm_joints
    chain = [np.zeros(3)] + [arm.data.oMi[arm.model.getJointId(n)].translation.copy() for n in joints]
    tcp = arm.data.oMf[arm.model.getFrameId(arm.tcp_frame)]
    fingertips = tcp.translation + tcp.rotation[:, 2] * 0.015
    chain.append(fingertips)
    generic = RADIUS_PER_REACH * arm.profile.reach
    radii = [LINK_RADIUS.get(n, generic) for n in (joints[0],) + joints]
    spheres = []
    for start, end, radius in zip(chain[:-1], chain[1:], radii):
        steps = max(2, int(np.ceil(np.linalg.norm(end - start) / SPACING)) + 1)
        for t in np.linspace(0.0, 1.0, steps):
            spheres.append([*(start + t * (end - start)), radius])
    return np.asarray(spheres, np.float32)
