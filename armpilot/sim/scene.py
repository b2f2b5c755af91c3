"""Compose the MuJoCo scene around the arm's URDF with ``mujoco.MjSpec``.

The URDF is the single source of truth for the arm and the camera pose; this
module adds the table, the task object, lights, position servos and the RGB-D
camera at the URDF's ``camera_color_optical_frame``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np
from transforms3d.quaternions import mat2quat

from armpilot.robot import CAMERA_OPTICAL_FRAME, CONTROLLED_JOINTS, ArmModel
from armpilot.tasks import Task

CAMERA_NAME = "rgbd"
OBJECT_BODY = "task_object"
GOAL_BODY = "task_goal"
TCP_BODY = "tool_tcp"
TABLE_SIZE = (0.6, 0.5, 0.02)  # half extents, m
TABLE_CENTRE = (0.35, 0.0)
#: Position-servo stiffness (N m/rad or N/m) and damping per controlled joint.
SERVO_KP = (3000.0, 3000.0, 2000.0, 500.0, 500.0, 300.0, 800.0)
SERVO_KV = (120.0, 120.0, 80.0, 20.0, 20.0, 10.0, 20.0)
ARMATURE = (0.2, 0.2, 0.1, 0.02, 0.02, 0.01, 0.01)
LINK_COLOURS = {
    "base_link": (0.15, 0.15, 0.17, 1),
    "upper_arm_link": (0.95, 0.5, 0.1, 1),
    "wrist_1_link": (0.95, 0.5, 0.1, 1),
    "gripper_base_link": (0.15, 0.15, 0.17, 1),
}


@dataclass(frozen=True)
class CameraConfig:
    """Render settings of the RGB-D camera: pixels and vertical field of view (deg)."""

    width: int = 640
    height: int = 480
    fovy_deg: float = 55.0


def camera_pose_in_mujoco(arm: ArmModel) -> tuple[np.ndarray, np.ndarray]:
    """Position (3,) and MuJoCo quaternion (w, x, y, z) of the URDF's optical frame.

    MuJoCo cameras look along -z with y up; ROS optical frames look along +z
    with y down, so the rotation is the optical one turned pi about x.
    """
    pose = arm.frame_pose(CAMERA_OPTICAL_FRAME)
    rotation = pose[:3, :3] @ np.diag([1.0, -1.0, -1.0])
    return pose[:3, 3].copy(), mat2quat(rotation)


def build_scene(urdf: str | Path, task: Task, camera: CameraConfig) -> mujoco.MjSpec:
    """The full scene spec: arm from ``urdf``, table, ``task``'s object, camera, lights."""
    arm = ArmModel()  # armpilot's own profile: the only arm the scene is built for so far
    spec = mujoco.MjSpec.from_file(str(urdf))
    # the URDF's own visuals were dropped at parse time; keep the scene's visual-only markers
    spec.compiler.discardvisual = False
    spec.option.timestep = 0.002
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.noslip_iterations = 3
    spec.visual.global_.offwidth = max(camera.width, 640)
    spec.visual.global_.offheight = max(camera.height, 480)
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    _configure_arm(spec)
    world = spec.worldbody
    table_top = world.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=list(TABLE_SIZE),
        pos=[TABLE_CENTRE[0], TABLE_CENTRE[1], -TABLE_SIZE[2]],
        rgba=[0.72, 0.6, 0.45, 1],
    )
    table_top.friction = [0.8, 0.005, 0.0001]
    world.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3, 3, 0.1], pos=[0, 0, -0.75], rgba=[0.3, 0.32, 0.35, 1]
    )
    world.add_light(name="key", pos=[0.4, -0.6, 1.6], dir=[0, 0.3, -1], diffuse=[0.7, 0.7, 0.7], castshadow=False)
    world.add_light(name="fill", pos=[0.9, 0.6, 1.2], dir=[-0.4, -0.3, -1], diffuse=[0.3, 0.3, 0.3], castshadow=False)
    cam_pos, cam_quat = camera_pose_in_mujoco(arm)
    world.add_camera(name=CAMERA_NAME, pos=cam_pos, quat=cam_quat, fovy=camera.fovy_deg)
    _add_task_bodies(spec, task)
    return spec


def _configure_arm(spec: mujoco.MjSpec) -> None:
    """Gravity compensation, colours, servos and contact exclusions for the arm."""
    for body in spec.bodies:
        if body.name not in ("world",):
            body.gravcomp = 1.0
        for geom in body.geoms:
            geom.rgba = list(LINK_COLOURS.get(body.name, (0.55, 0.57, 0.6, 1)))
            if "finger" in body.name:
                geom.friction = [1.5, 0.01, 0.0001]
                geom.condim = 4
    for name, kp, kv, armature in zip(CONTROLLED_JOINTS, SERVO_KP, SERVO_KV, ARMATURE):
        joint = spec.joint(name)
        joint.armature = armature
        actuator = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        actuator.set_to_position(kp=kp, kv=kv)
        actuator.ctrlrange = list(joint.range)
        actuator.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        effort = joint.actfrcrange[1] if joint.actfrcrange[1] > 0 else 100.0
        actuator.forcerange = [-effort, effort]
        actuator.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
    spec.joint("gripper_right_finger_joint").armature = ARMATURE[-1]
    spec.add_exclude(bodyname1="gripper_left_finger", bodyname2="gripper_right_finger")
    spec.add_exclude(bodyname1="base_link", bodyname2="shoulder_link")
    spec.add_exclude(bodyname1="world", bodyname2="base_link")


def _add_task_bodies(spec: mujoco.MjSpec, task: Task) -> None:
    """The task's object (free box or mocap target) and a goal marker (mocap, no collision)."""
    world = spec.worldbody
    size = task.object_half_size
    if task.object_kind == "box":
        body = world.add_body(name=OBJECT_BODY, pos=[0.4, 0.0, size])
        body.add_freejoint(name="task_object_free")
        geom = body.add_geom(
            name="task_object_geom",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[size, size, size],
            mass=task.object_mass,
            rgba=[0.85, 0.15, 0.15, 1],
        )
        geom.friction = [1.2, 0.01, 0.0001]
        geom.condim = 4
    else:
        body = world.add_body(name=OBJECT_BODY, pos=[0.4, 0.0, 0.15], mocap=True)
        body.add_geom(
            type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[size, 0, 0], rgba=[0.9, 0.1, 0.1, 1], contype=0, conaffinity=0
        )
    goal = world.add_body(name=GOAL_BODY, pos=[0.4, 0.0, 0.001], mocap=True)
    if task.name == "push":
        goal.add_geom(
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[task.tolerance + size, 0.001, 0],
            rgba=[0.1, 0.8, 0.2, 0.6],
            contype=0,
            conaffinity=0,
        )
