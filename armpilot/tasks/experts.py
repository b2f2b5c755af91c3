"""Scripted experts: waypoint plans in Cartesian space, solved to joint chunks by IK on the profile's TCP.

An expert reads the arm's joint positions and the task object's pose, walks a
list of tool waypoints (top-down grasps) and returns the next ``horizon``
joint targets, ``dt`` seconds apart, as an (H, J) array in the profile's
joint order. "Top-down" is the profile's home tool orientation with its
approach axis snapped straight down; waypoint yaws turn it about the vertical.
Heights and offsets are for armpilot's arm and scale with the task.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pinocchio as pin

from armpilot.robot import ArmModel
from armpilot.tasks.definitions import Task
from armpilot.tasks.joint_space import JOINT_ARRIVED, JOINT_SPACE_TURN, joint_goal, tool_turn, toward_joint_goal

#: A tool point further than this (m) from its IK target is solved again with orientation weighted by
#: ``POSITION_FIRST_WEIGHT`` (the tool tilts instead of stopping short).
IK_POSITION_TOLERANCE, POSITION_FIRST_WEIGHT = 1e-3, 0.05
#: Fraction of the gripper joint's URDF velocity limit the experts command.
GRIPPER_SPEED_FRACTION = 0.8
#: How much one radian of tool rotation counts against linear distance, m/rad.
ROTATION_WEIGHT = 0.15
#: Push feedback: the push ends when the box centre is this close to the goal (m).
PUSH_DONE = 0.008
#: A push starts again (lift, go behind the box, descend) when the tool is this many box half sizes sideways of
#: the box-to-goal line, or no longer behind the box.
PUSH_LATERAL_LIMIT = 0.8
#: Most re-plans in one episode; after that the expert lifts away.
MAX_REPLANS = 3
#: Before contact: a box this far (m) from where the plan was made was bumped and is planned for again (more
#: than the shift of a perceived box's centre while the arm hides part of it).
MOVED_DISTANCE = 0.02
#: Push waypoint indices (see ``plan_waypoints``).
PUSH_CONTACT, PUSH_LIFT = 2, 3
#: Height of the tool's centre while it pushes (m above the table) and how far it lifts after (m, times the
#: task's scale).
PUSH_HEIGHT, PUSH_CLEARANCE = 0.025, 0.10
#: A jittered push start is drawn within this many standard deviations of the line.
JITTER_BOUND = 3.0


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


def push_direction(obj: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """(3,) unit vector in the table plane from the box ``obj`` (3,) towards the ``goal`` (3,)."""
    direction = np.append((np.asarray(goal, float) - obj)[:2], 0.0)
    return direction / max(float(np.linalg.norm(direction)), 1e-9)


def push_contact(task: Task, obj: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """(3,) where the tool stops pushing: behind the goal on the box-to-goal line, at push height."""
    contact = np.asarray(goal, float) - push_direction(obj, goal) * (task.object_half_size + 0.012)
    contact[2] = task.table_z + PUSH_HEIGHT
    return contact


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def grasp_yaw(object_yaw: float, position: np.ndarray) -> float:
    """The box-aligned tool yaw (box yaw + k * pi/2) closest to the arm's natural wrist yaw."""
    natural = float(np.arctan2(position[1], position[0]))
    options = [object_yaw + k * np.pi / 2 for k in range(-4, 5)]
    return min(options, key=lambda yaw: abs(_wrap(yaw - natural)) + 1e-6 * abs(yaw))


def plan_waypoints(task: Task, obs: ExpertObservation, gripper_open: float = 0.04,
                   gripper_closed: float = 0.0, push_offset: float = 0.0) -> list[Waypoint]:
    """The expert's plan for ``task`` from ``obs`` (an episode's first observation, or a re-plan).

    ``push_offset`` (m) shifts where a push starts sideways of the box-to-goal line (recovery data)."""
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
        direction = push_direction(obj, goal)
        side = np.array([-direction[1], direction[0], 0.0])
        behind = obj - direction * (task.object_half_size + 0.035) + side * push_offset
        behind[2] = task.table_z + PUSH_HEIGHT
        contact = push_contact(task, obj, goal)
        yaw = float(np.arctan2(direction[1], direction[0])) + np.pi / 2
        yaw = grasp_yaw(yaw, obj)
        return [
            Waypoint(behind + [0.0, 0.0, PUSH_CLEARANCE * up], yaw, gripper_closed, tolerance=0.01),
            Waypoint(behind, yaw, gripper_closed, tolerance=0.006, speed=0.15),
            Waypoint(contact, yaw, gripper_closed, tolerance=0.006, speed=0.08),
            Waypoint(contact + [0.0, 0.0, PUSH_CLEARANCE * up], yaw, gripper_closed, tolerance=0.01),
        ]
    raise KeyError(f"no scripted expert for task '{task.name}'")


class ScriptedExpert:
    """Walks a task's waypoint plan; ``act`` returns the next chunk of joint targets.

    With ``closed_loop`` (for a box pose it can trust: the sim's ground truth) a push steers at the box's
    current line to the goal, ends when the box is on the goal, and starts again from behind the box when the
    box slips sideways (up to ``MAX_REPLANS`` times); without, it pushes along the line planned at the start.
    ``push_jitter`` (m, standard deviation; closed-loop only) starts each episode's push that far sideways of
    the line, so that recorded demonstrations show the correction."""

    def __init__(self, arm: ArmModel, task: Task, horizon: int = 10, dt: float = 0.1, push_jitter: float = 0.0,
                 seed: int = 0, closed_loop: bool = True) -> None:
        self.arm = arm
        self.task = replace(task, table_z=arm.profile.table_z)  # pushes at its height above the arm's table
        self.horizon = horizon
        self.dt = dt
        profile = arm.profile
        gripper = profile.gripper
        self.gripper = profile.joints.index(gripper.joint) if gripper.joint in profile.joints else None
        self.gripper_open, self.gripper_closed = gripper.open, gripper.closed
        self.gripper_speed = (GRIPPER_SPEED_FRACTION * profile.max_velocity[self.gripper]
                              if self.gripper is not None else 0.0)
        self.down = down_reference(arm)
        #: arms with fewer than six joints cannot hold every orientation: position first
        full = len(profile.arm_joints) >= 6
        self.rotation_weight = 1.0 if full else POSITION_FIRST_WEIGHT
        self.ik_iterations = 50
        if not push_jitter >= 0 or (push_jitter > 0 and not closed_loop):
            raise ValueError(f"push_jitter must be >= 0 m, and 0 for an open-loop expert, got {push_jitter}")
        self.closed_loop = closed_loop
        self.push_jitter = push_jitter
        self._rng = np.random.default_rng(seed)  # one jitter draw per episode (reset)
        self.reset()

    def reset(self) -> None:
        """Forget the plan; the next observation starts a new episode."""
        self._plan: list[Waypoint] | None = None
        self._index = 0
        self._arrived_at: float | None = None
        self._planned_for = np.zeros(3)  # object position (3,) the plan was made for
        self._retreat: Waypoint | None = None  # straight up from where a push was given up, before the new plan
        self._turning: tuple[Waypoint, np.ndarray] | None = None  # a waypoint approached in joint space, its goal
        self.replans = 0
        draw = float(np.clip(self._rng.normal(), -JITTER_BOUND, JITTER_BOUND))
        self._offset = draw * self.push_jitter

    @property
    def phase(self) -> int:
        """Index of the waypoint being approached (== len(plan) when done; a push's re-plan starts again at 0)."""
        return self._index

    def act(self, obs: ExpertObservation) -> np.ndarray:
        """Next ``horizon`` joint targets (H, J), the first ``dt`` after ``obs.time``."""
        q = np.asarray(obs.joint_positions, dtype=float)
        if self._plan is None:
            self._make_plan(obs, self._offset)
            self._lift_first(obs, q)
        elif (self.closed_loop and self.task.name == "push" and self._retreat is None
              and np.all(np.isfinite(obs.object_position))):
            self._push_feedback(obs, q)
        if self._retreat is not None:  # lift straight up first, clear of the box
            if np.linalg.norm(self.arm.tcp_pose(q)[:3, 3] - self._retreat.position) > self._retreat.tolerance:
                return self._chunk_towards(q, self._retreat)
            self._retreat = None
        self._advance(obs.time, q)
        waypoint = self._plan[min(self._index, len(self._plan) - 1)]
        return self._chunk_towards(q, waypoint)

    def _make_plan(self, obs: ExpertObservation, push_offset: float = 0.0) -> None:
        self._plan = plan_waypoints(self.task, obs, self.gripper_open, self.gripper_closed, push_offset)
        self._index, self._arrived_at = 0, None
        self._planned_for = np.asarray(obs.object_position, float).copy()

    def _replan(self, obs: ExpertObservation, q: np.ndarray) -> None:
        """Lift straight up from a push (or the approach's low point), then start again from behind the box; or,
        out of re-plans, only lift away."""
        lifting = self._index >= PUSH_LIFT
        low = self._index >= PUSH_CONTACT - 1 and not lifting
        yaw = self._plan[min(self._index, len(self._plan) - 1)].yaw if self._plan else 0.0
        if self.replans >= MAX_REPLANS:
            if not lifting:
                self._lift_here(q)
            return
        self.replans += 1
        self._make_plan(obs)
        if low:
            self._retreat = Waypoint(self._raised(self.arm.tcp_pose(q)[:3, 3]), yaw, self.gripper_closed,
                                     tolerance=0.01)

    def _lift_first(self, obs: ExpertObservation, q: np.ndarray) -> None:
        """A push planned with the tool low beside the box (an episode handed over from another policy): lift
        straight up to the first waypoint's height before going there, instead of sweeping through the box."""
        assert self._plan is not None
        tcp, first = self.arm.tcp_pose(q)[:3, 3], self._plan[0]
        near = np.linalg.norm((tcp - np.asarray(obs.object_position, float))[:2]) < PUSH_CLEARANCE * self.task.scale
        if self.task.name == "push" and near and tcp[2] < first.position[2] - first.tolerance:
            self._retreat = Waypoint(np.array([tcp[0], tcp[1], first.position[2]]), first.yaw, self.gripper_closed,
                                     tolerance=first.tolerance)

    def _lift_here(self, q: np.ndarray) -> None:
        """End the push: the next waypoint is straight above the tool."""
        assert self._plan is not None
        self._plan[PUSH_LIFT] = replace(self._plan[PUSH_LIFT], position=self._raised(self.arm.tcp_pose(q)[:3, 3]))
        self._index, self._arrived_at = PUSH_LIFT, None

    def _raised(self, point: np.ndarray) -> np.ndarray:
        """(3,) ``point`` lifted by the push's clearance (m, times the task's scale)."""
        return np.asarray(point, float) + [0.0, 0.0, PUSH_CLEARANCE * self.task.scale]

    def _push_feedback(self, obs: ExpertObservation, q: np.ndarray) -> None:
        """Steer, end or restart the push from the box's pose now."""
        assert self._plan is not None
        obj, goal = np.asarray(obs.object_position, float), np.asarray(obs.goal_position, float)
        remaining = float(np.linalg.norm((goal - obj)[:2]))
        if self._index < PUSH_CONTACT:  # approaching: the box was bumped (or the plan was made without one)
            moved = np.linalg.norm((obj - self._planned_for)[:2])
            if not moved <= MOVED_DISTANCE:
                self._replan(obs, q)
            return
        if self._index > PUSH_CONTACT:  # lifted (or lifting) with the box short of the goal: push again
            if self._index == len(self._plan) and remaining > PUSH_DONE:
                self._replan(obs, q)
            return
        if remaining < PUSH_DONE:
            self._lift_here(q)
            return
        direction = push_direction(obj, goal)
        tool = (self.arm.tcp_pose(q)[:3, 3] - obj)[:2]
        sideways = abs(direction[0] * tool[1] - direction[1] * tool[0])
        half = self.task.object_half_size
        if sideways > PUSH_LATERAL_LIMIT * half or direction[:2] @ tool > -0.5 * half:
            self._replan(obs, q)
            return
        contact = push_contact(self.task, obj, goal)
        self._plan[PUSH_CONTACT] = replace(self._plan[PUSH_CONTACT], position=contact)
        self._plan[PUSH_LIFT] = replace(self._plan[PUSH_LIFT], position=self._raised(contact))

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
        if self._turning is not None and self._turning[0] is not waypoint:
            self._turning = None
        if self._turning is None and tool_turn(self.arm, q, target) > JOINT_SPACE_TURN:
            self._turning = (waypoint, joint_goal(self.arm, q, target, self.rotation_weight, self.ik_iterations,
                                                  self.arm.profile.home))
        if self._turning is not None:  # the tool turns over on the way: joint space (``joint_space``)
            goal = self._turning[1]
            if np.max(np.abs(goal - q)) > JOINT_ARRIVED:
                return toward_joint_goal(self.arm, q, goal, self.horizon, self.dt)
        delta = pin.log6(start.actInv(target)).vector
        distance = np.linalg.norm(delta[:3]) + ROTATION_WEIGHT * np.linalg.norm(delta[3:])
        chunk = np.empty((self.horizon, len(q)))
        guess = q.copy()
        gripper = None if self.gripper is None else q[self.gripper]
        limit = self.gripper_speed * self.dt
        for k in range(self.horizon):
            fraction = min(1.0, waypoint.speed * self.dt * (k + 1) / max(distance, 1e-9))
            pose = start * pin.exp6(fraction * delta)
            guess = self._solve(pose, guess)
            chunk[k] = guess
            if gripper is not None:
                gripper = gripper + np.clip(waypoint.gripper - gripper, -limit, limit)
                chunk[k, self.gripper] = gripper
        return chunk

    def _solve(self, pose: pin.SE3, guess: np.ndarray) -> np.ndarray:
        """(J,) IK for ``pose`` from ``guess``; where the tool cannot point straight down there (a wrist at its
        limit: the Unitree Z1 far out), the position comes first, the tool tilted as little as the arm allows."""
        home = self.arm.profile.home
        result = self.arm.ik(pose.translation, pose.rotation, guess, max_iters=self.ik_iterations,
                             rotation_weight=self.rotation_weight, posture=home)
        if result.position_error > IK_POSITION_TOLERANCE and self.rotation_weight > POSITION_FIRST_WEIGHT:
            result = self.arm.ik(pose.translation, pose.rotation, result.positions, max_iters=self.ik_iterations,
                                 rotation_weight=POSITION_FIRST_WEIGHT, posture=home)
        return result.positions


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
