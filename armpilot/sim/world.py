"""The simulated world: arm, task object, RGB-D camera (MuJoCo, no ROS).

Joint vectors follow the robot profile's ``joints``; depth images are float32 metres
along the optical axis (0 where nothing was hit); colour images are RGB uint8.
"""

from __future__ import annotations

from dataclasses import replace

import mujoco
import numpy as np

from armpilot.robot import ArmModel
from armpilot.robot_profile import RobotDescriptionError, RobotProfile, load_profile
from armpilot.sim.scene import (CAMERA_NAME, GOAL_BODY, OBJECT_BODY, OPTICAL_TO_MUJOCO_CAMERA, CameraConfig,
                                build_scene)
from armpilot.sim.scene_variator import SceneVariator
from armpilot.sim.scenes import (MAX_DISTRACTORS, SCENES, SceneVariation, distractor_height, draw_variation,
                                 instruction_for)
from armpilot.tasks import Task, TaskInit, TaskState

#: Depth beyond this (m) is reported as 0 (no return), as a RealSense does.
MAX_DEPTH = 4.0


#: MuJoCo warnings after which it resets the simulation state.
UNSTABLE_WARNINGS = (mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADQVEL,
                     mujoco.mjtWarning.mjWARN_BADQPOS)


class SimWorld:
    """One MuJoCo world for one task; ``reset(seed)`` starts an episode."""

    def __init__(self, robot: RobotProfile | None, task: Task, camera: CameraConfig | None = None,
                 render: bool = True, scene: str = "nominal"):
        """``robot``: the arm's profile (None: armpilot's own); ``task`` as ``task_for_robot(name, robot)``;
        ``scene``: what varies per episode (``armpilot.sim.scenes``)."""
        if scene not in SCENES:
            raise ValueError(f"unknown scene '{scene}'; use one of {SCENES}")
        self.profile = robot if robot is not None else load_profile()
        self.task = self.episode_task = task
        self.scene = scene
        self.camera = camera or CameraConfig()
        self.named = task.name == "language"  # boxes of several colours, one named by the instruction
        varies = scene != "nominal" or self.named
        distractors = MAX_DISTRACTORS if varies else 0
        self.model = build_scene(self.profile, task, self.camera, distractors,
                                 distractor_height(self.named)).compile()
        self.data = mujoco.MjData(self.model)
        self.joint_names = self.profile.joints
        self._qpos = np.array([self.model.joint(n).qposadr[0] for n in self.joint_names])
        self._dof = np.array([self.model.joint(n).dofadr[0] for n in self.joint_names])
        self._actuators = np.array([self.model.actuator(n).id for n in self.joint_names])
        arm = ArmModel(self.profile)
        if not arm.tcp_moves_in_3d():  # the asr_twodof arm ran every episode to its time limit, silently
            raise RobotDescriptionError(
                f"robot '{self.profile.name}': its arm joints move the TCP '{self.profile.tcp_frame}' in fewer than "
                f"three directions (a planar arm): the sim's tasks put targets in a volume over the table")
        self._passive = arm.passive_defaults  # held by servos of their own (scene.py)
        #: what /joint_states reports: the profile's joints, then every other movable, non-mimic joint
        self.state_names = self.joint_names + tuple(self._passive)
        self._state_qpos = np.array([self.model.joint(n).qposadr[0] for n in self.state_names])
        self._state_dof = np.array([self.model.joint(n).dofadr[0] for n in self.state_names])
        self._state_actuators = np.array([self.model.actuator(n).id for n in self.state_names])
        gripper = self.profile.gripper
        self._gripper_slot = self.joint_names.index(gripper.joint) if gripper.joint in self.joint_names else None
        home = arm.home_of_every_joint()
        self._home_ctrl = [(k, home[self.model.actuator(k).name]) for k in range(self.model.nu)]
        self._home_all = [(self.model.joint(n).qposadr[0], v) for n, v in home.items()]
        self._object_body = self.model.body(OBJECT_BODY).id
        self._goal_mocap = self.model.body(GOAL_BODY).mocapid[0]
        self._object_mocap = self.model.body(OBJECT_BODY).mocapid[0]
        self._object_free_qpos = (
            self.model.joint("task_object_free").qposadr[0] if task.object_kind == "box" else None
        )
        self._tcp_body = self.model.body(self.profile.tcp_frame).id
        self._renderer: mujoco.Renderer | None = None
        if render:
            self._renderer = mujoco.Renderer(self.model, self.camera.height, self.camera.width)
        self.episode_init: TaskInit | None = None
        self.variation = SceneVariation()
        self._variator = SceneVariator(self.model, task.object_half_size) if varies else None
        self.instruction = ""

    @property
    def time(self) -> float:
        """Simulated seconds since this episode's reset."""
        return float(self.data.time)

    @property
    def timestep(self) -> float:
        """Physics step, s."""
        return float(self.model.opt.timestep)

    def reset(self, seed: int) -> TaskInit:
        """Put the arm at home and the task object at a pose drawn from ``seed``."""
        init = self.task.sample(np.random.default_rng(seed))
        mujoco.mj_resetData(self.model, self.data)
        if self._variator is not None:
            self.variation = draw_variation(self.scene, seed, init.object_position, init.goal_position,
                                            self.task.object_half_size, np.asarray(self.task.region_low),
                                            np.asarray(self.task.region_high), self.task.scale, self.named,
                                            self.task.table_z)
            self.instruction = instruction_for(self.task.name, self.variation)
            half = self.task.object_half_size * self.variation.object_scale
            self.episode_task = replace(self.task, object_half_size=half)
            if self.task.object_kind == "box":  # a resized box still rests on the table
                position = np.array([*init.object_position[:2], self.task.table_z + half])
                goal = init.goal_position if self.task.needs_user_goal else self.task.goal_from_object(position)
                init = replace(init, object_position=position, goal_position=goal)
            self._variator.apply(self.data, self.variation)
        for adr, value in self._home_all:
            self.data.qpos[adr] = value
        self.data.ctrl[:] = [value for _, value in self._home_ctrl]
        half_yaw = init.object_yaw / 2
        quat = np.array([np.cos(half_yaw), 0.0, 0.0, np.sin(half_yaw)])
        if self._object_free_qpos is not None:
            adr = self._object_free_qpos
            self.data.qpos[adr : adr + 3] = init.object_position
            self.data.qpos[adr + 3 : adr + 7] = quat
        else:
            self.data.mocap_pos[self._object_mocap] = init.object_position
        self.place_goal_pad(init.goal_position)
        mujoco.mj_forward(self.model, self.data)
        self.episode_init = init
        return init

    def place_goal_pad(self, goal: np.ndarray) -> None:
        """Put the goal pad (a mocap body) under ``goal`` (3,), m; MuJoCo's reset of an unstable state moves it."""
        self.data.mocap_pos[self._goal_mocap] = [*goal[:2], self.task.table_z + 0.001]

    def step(self, targets: np.ndarray, n_steps: int = 1) -> str:
        """Command position targets (J,) in ``joint_names`` order and advance ``n_steps`` physics steps.

        Returns "" or, when MuJoCo found the simulation unstable in these steps (NaN, inf or huge
        accelerations; it then resets the state to the model's defaults), what happened and where.
        """
        self.data.ctrl[self._actuators] = targets
        for warning in UNSTABLE_WARNINGS:  # counted from 0 each call: MuJoCo's reset leaves a count of 1 behind
            self.data.warning[warning].number = 0
        mujoco.mj_step(self.model, self.data, nstep=n_steps)
        for warning in UNSTABLE_WARNINGS:
            if int(self.data.warning[warning].number) > 0:
                dof = int(self.data.warning[warning].lastinfo)
                body = self.model.body(self.model.dof_bodyid[dof]).name if 0 <= dof < self.model.nv else "?"
                return (f"the simulation became unstable ({warning.name}) at DOF {dof} (body '{body}') at "
                        f"{self.time:.3f} s; MuJoCo reset the state")
        return ""

    def joint_positions(self) -> np.ndarray:
        """Measured positions (J,), rad / m."""
        return self.data.qpos[self._qpos].copy()

    def joint_state(self) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
        """``state_names`` and their measured positions, velocities and actuator forces (each (S,))."""
        return (self.state_names, self.data.qpos[self._state_qpos].copy(), self.data.qvel[self._state_dof].copy(),
                self.data.actuator_force[self._state_actuators].copy())

    def joint_velocities(self) -> np.ndarray:
        """Measured velocities (J,), rad/s / m/s."""
        return self.data.qvel[self._dof].copy()

    def joint_efforts(self) -> np.ndarray:
        """Actuator forces (J,), N m / N."""
        return self.data.actuator_force[self._actuators].copy()

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Task object position (3,) and quaternion (w, x, y, z) in the profile's base frame."""
        return self.data.xpos[self._object_body].copy(), self.data.xquat[self._object_body].copy()

    def goal_position(self) -> np.ndarray:
        """Task goal position (3,)."""
        assert self.episode_init is not None, "call reset() first"
        return self.episode_init.goal_position.copy()

    def tcp_position(self) -> np.ndarray:
        """Tool centre point position (3,): the profile's TCP body moved by its ``tcp_offset``."""
        body = self._tcp_body
        return self.data.xpos[body] + self.data.xmat[body].reshape(3, 3) @ self.profile.tcp_offset

    def task_state(self) -> TaskState:
        """Everything the task's success test reads."""
        slot = self._gripper_slot
        gripper = self.profile.gripper.open if slot is None else self.joint_positions()[slot]
        return TaskState(self.object_pose()[0], self.goal_position(), self.tcp_position(), float(gripper))

    def success(self) -> bool:
        """True when the current episode's task is solved."""
        return self.episode_task.success(self.task_state())

    def intrinsics(self) -> tuple[float, float, float, float]:
        """Pinhole fx, fy, cx, cy (px) of the rendered images (square pixels, centred)."""
        fovy = np.deg2rad(self.model.cam_fovy[self.model.camera(CAMERA_NAME).id])
        fy = 0.5 * self.camera.height / np.tan(fovy / 2)
        return fy, fy, (self.camera.width - 1) / 2, (self.camera.height - 1) / 2

    def camera_optical_pose(self) -> np.ndarray:
        """4x4 base_T_optical of the rendered camera as it is now (with a scene's jitter; perception uses the
        URDF's pose, ``camera_pose_from_urdf``, which the nominal scene renders from)."""
        camera = self.model.camera(CAMERA_NAME).id
        pose = np.eye(4)
        pose[:3, :3] = self.data.cam_xmat[camera].reshape(3, 3) @ OPTICAL_TO_MUJOCO_CAMERA.T
        pose[:3, 3] = self.data.cam_xpos[camera]
        return pose

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        """Colour (H, W, 3) uint8 and depth (H, W) float32 metres from the RGB-D camera."""
        if self._renderer is None:
            raise RuntimeError("this SimWorld was created with render=False")
        self._renderer.update_scene(self.data, camera=CAMERA_NAME)
        self._renderer.disable_depth_rendering()
        color = self._renderer.render().copy()
        self._renderer.enable_depth_rendering()
        depth = self._renderer.render().astype(np.float32)
        self._renderer.disable_depth_rendering()
        depth[(depth <= 0) | (depth > MAX_DEPTH)] = 0.0
        return color, depth

    def close(self) -> None:
        """Release the renderer (its GL context)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
