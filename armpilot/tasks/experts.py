"""Scripted experts: waypoint plans in Cartesian space, solved to joint chunks by IK on the profile's TCP.

An expert reads the arm's joint positions and the task object's pose, walks a
list of tool waypoints (top-down grasps) and returns the next ``horizon``
joint targets, ``dt`` seconds apart, as an (H, J) array in the profile's
joint order. "Top-down" is the profile's home tool orientation with its
approach axis snapped straight down; waypoint yaws turn it about the vertical.
Heights and offsets are for armpilot's arm and scale with the task.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pinocchio as pin

from armpilot.robot import ArmModel
from armpilot.tasks.definitions import Task

#: Fraction of the gripper joint's URDF velocity limit the experts command.
GRIPPER_SPEED_FRACTION = 0.8
#: How much one radian of tool rotation counts against linear distance, m/rad.
ROTATION_WEIGHT = 0.15


@dataclass(frozen=True)
class ExpertObservation:
    """What an expert reads: time (s), joint positions (J,), object pose, goal (3,)."""

    time: float
    joint_positions: np.ndarray
    object_position: np.ndarray
    object_yaw: float
    goal_position: np.ndarray


@dataclass(frozen=True)
class Waypoint:
    """A tool target: position (3,), yaw (rad), gripper (m), arrival tolerance (m),
    dwell after arrival (s) and tool speed (m/s)."""

    position: np.ndarray
    yaw: float
    gripper: float
    tolerance: float = 0.01
    dwell: float = 0.0
    speed: float = 0.25


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def grasp_yaw(object_yaw: float, position: np.ndarray) -> float:
    """The box-aligned tool yaw (box yaw + k * pi/2) closest to the arm's natural wrist yaw."""
    natural = float(np.arctan2(position[1], position[0]))
    options = [object_yaw + k * np.pi / 2 for k in range(-4, 5)]
    return min(options, key=lambda yaw: abs(_wrap(yaw - natural)) + 1e-6 * abs(yaw))


def plan_waypoints(task: Task, obs: ExpertObservation, gripper_open: float = 0.04,
                   gripper_closed: float = 0.0) -> list[Waypoint]:
    """The expert's plan for ``task`` from the first observation of an episode."""
    obj, goal = obs.object_position, obs.goal_position
    natural = float(np.arctan2(obj[1], obj[0]))
    up = task.scale  # approach heights shrink with the arm
    if task.name == "reach":
        return [Waypoint(obj.copy(), natural, gripper_open, tolerance=0.004)]
    if task.name == "language":  # touch the top of the named box
        top = obj + [0.0, 0.0, task.object_half_size + 0.004]
        return [Waypoint(top + [0.0, 0.0, 0.08 * up], natural, gripper_closed, tolerance=0.01),
                Waypoint(top, natural, gripper_closed, tolerance=0.004, speed=0.15)]
    if task.name == "pick":
        yaw = grasp_yaw(obs.object_yaw, obj)
        top = obj + [0.0, 0.0, 0.12 * up]
        grasp = obj + [0.0, 0.0, 0.006]
        return [
            Waypoint(top, yaw, gripper_open, tolerance=0.01),
            Waypoint(grasp, yaw, gripper_open, tolerance=0.005, speed=0.15),
            Waypoint(grasp, yaw, gripper_closed, tolerance=0.01, dwell=0.7),
            Waypoint(obj + [0.0, 0.0, max(0.16 * up, task.lift_height + 0.03)], yaw, gripper_closed, tolerance=0.01,
                     speed=0.15),
        ]
    if task.name == "place":
        yaw = grasp_yaw(obs.object_yaw, obj)
        grasp = obj + [0.0, 0.0, 0.006]
        carry = max(0.16 * up, task.lift_height + 0.03)
        put = np.array([goal[0], goal[1], grasp[2] + 0.004])  # the box's bottom just above the table
        return [
            Waypoint(obj + [0.0, 0.0, 0.12 * up], yaw, gripper_open, tolerance=0.01),
            Waypoint(grasp, yaw, gripper_open, tolerance=0.005, speed=0.15),
            Waypoint(grasp, yaw, gripper_closed, tolerance=0.01, dwell=0.7),
            Waypoint(obj + [0.0, 0.0, carry], yaw, gripper_closed, tolerance=0.01, speed=0.15),
            Waypoint(put + [0.0, 0.0, carry], yaw, gripper_closed, tolerance=0.01, speed=0.15),
            Waypoint(put, yaw, gripper_closed, tolerance=0.006, speed=0.08),
            Waypoint(put, yaw, gripper_open, tolerance=0.01, dwell=0.3),
            Waypoint(put + [0.0, 0.0, 0.10 * up], yaw, gripper_open, tolerance=0.01),
        ]
    if task.name == "push":
        direction = np.append((goal - obj)[:2], 0.0)
        direction /= max(np.linalg.norm(direction), 1e-9)
        behind = obj - direction * (task.object_half_size + 0.035)
        behind[2] = 0.025
        contact = goal - direction * (task.object_half_size + 0.012)
        contact[2] = 0.025
        yaw = float(np.arctan2(direction[1], direction[0])) + np.pi / 2
        yaw = grasp_yaw(yaw, obj)
        return [
            Waypoint(behind + [0.0, 0.0, 0.10 * up], yaw, gripper_closed, tolerance=0.01),
            Waypoint(behind, yaw, gripper_closed, tolerance=0.006, speed=0.15),
            Waypoint(contact, yaw, gripper_closed, tolerance=0.006, speed=0.08),
            Waypoint(contact + [0.0, 0.0, 0.10 * up], yaw, gripper_closed, tolerance=0.01),
        ]
    raise KeyError(f"no scripted expert for task '{task.name}'")


class ScriptedExpert:
    """Walks a task's waypoint plan; ``act`` returns the next chunk of joint targets."""

    def __init__(self, arm: ArmModel, task: Task, horizon: int = 10, dt: float = 0.1) -> None:
        self.arm = arm
        self.task = task
        self.horizon = horizon
        self.dt = dt
        profile = arm.profile
        gripper = profile.gripper
        self.gripper = profile.joints.index(gripper.joint) if gripper.joint in profile.joints else None
        self.gripper_open, self.gripper_closed = gripper.open, gripper.closed
        self.gripper_speed = (GRIPPER_SPEED_FRACTION * profile.urdf_joints[gripper.joint].velocity
                              if self.gripper is not None else 0.0)
        self.down = down_reference(arm)
        #: arms with fewer than six joints cannot hold every orientation: position first
        full = len(profile.arm_joints) >= 6
        self.rotation_weight = 1.0 if full else 0.05
        self.ik_iterations = 50
        self.reset()

    def reset(self) -> None:
        """Forget the plan; the next observation starts a new episode."""
        self._plan: list[Waypoint] | None = None
        self._index = 0
        self._arrived_at: float | None = None

    @property
    def phase(self) -> int:
        """Index of the waypoint being approached (== len(plan) when done)."""
        return self._index

    def act(self, obs: ExpertObservation) -> np.ndarray:
        """Next ``horizon`` joint targets (H, J), the first ``dt`` after ``obs.time``."""
        if self._plan is None:
            self._plan = plan_waypoints(self.task, obs, self.gripper_open, self.gripper_closed)
        q = np.asarray(obs.joint_positions, dtype=float)
        self._advance(obs.time, q)
        waypoint = self._plan[min(self._index, len(self._plan) - 1)]
        return self._chunk_towards(q, waypoint)

    def _advance(self, now: float, q: np.ndarray) -> None:
        assert self._plan is not None
        while self._index < len(self._plan):
            waypoint = self._plan[self._index]
            tcp = self.arm.tcp_pose(q)[:3, 3]
            close = np.linalg.norm(tcp - waypoint.position) < waypoint.tolerance
            gripper_done = (self.gripper is None or waypoint.gripper == self.gripper_closed
                            or abs(q[self.gripper] - waypoint.gripper)
                            < 0.1 * abs(self.gripper_open - self.gripper_closed))
            if not (close and gripper_done):
                self._arrived_at = None
                return
            if self._arrived_at is None:
                self._arrived_at = now
            if now - self._arrived_at < waypoint.dwell:
                return
            self._index += 1
            self._arrived_at = None

    def _chunk_towards(self, q: np.ndarray, waypoint: Waypoint) -> np.ndarray:
        start = pin.SE3(self.arm.tcp_pose(q))
        target = pin.SE3(turned_about_z(self.down, waypoint.yaw), np.asarray(waypoint.position, float))
        delta = pin.log6(start.actInv(target)).vector
        distance = np.linalg.norm(delta[:3]) + ROTATION_WEIGHT * np.linalg.norm(delta[3:])
        chunk = np.empty((self.horizon, len(q)))
        guess = q.copy()
        gripper = None if self.gripper is None else q[self.gripper]
        limit = self.gripper_speed * self.dt
        for k in range(self.horizon):
            fraction = min(1.0, waypoint.speed * self.dt * (k + 1) / max(distance, 1e-9))
            pose = start * pin.exp6(fraction * delta)
            guess = self.arm.ik(pose.translation, pose.rotation, guess, max_iters=self.ik_iterations,
                                rotation_weight=self.rotation_weight, posture=self.arm.profile.home).positions
            chunk[k] = guess
            if gripper is not None:
                gripper = gripper + np.clip(waypoint.gripper - gripper, -limit, limit)
                chunk[k, self.gripper] = gripper
        return chunk


def down_reference(arm: ArmModel) -> np.ndarray:
    """(3, 3) the home tool rotation with its z axis snapped to world -z, turned to yaw 0 (tool x along -x).

    For armpilot's arm this is ``top_down_rotation(0)``; waypoint yaw 0 points along the base's +x.
    """
    home = arm.frame_pose(arm.tcp_frame)[:3, :3]
    z = np.array([0.0, 0.0, -1.0])
    x = home[:, 0] - home[:, 0] @ z * z
    if np.linalg.norm(x) < 1e-6:  # tool x vertical at home: use its y instead
        x = np.cross(home[:, 1] - home[:, 1] @ z * z, z)
    x /= np.linalg.norm(x)
    rotation = np.column_stack([x, np.cross(z, x), z])
    # turn so that yaw 0 matches the natural yaw of a point straight ahead of the base (+x)
    tcp = arm.frame_pose(arm.tcp_frame)[:3, 3]
    heading = float(np.arctan2(tcp[1], tcp[0])) if np.linalg.norm(tcp[:2]) > 1e-6 else 0.0
    return turned_about_z(rotation, -heading)


def turned_about_z(rotation: np.ndarray, yaw: float) -> np.ndarray:
    """``rotation`` turned by ``yaw`` rad about the world z axis."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ rotation
