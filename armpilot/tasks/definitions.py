"""The ``reach``, ``push`` and ``pick`` tasks: what is randomised and what counts as success.

All positions are metres in the robot profile's base frame; the table top is at the profile's ``table_z``
(``Task.table_z``; the regions below are drawn for z = 0 and lifted to it by ``get_task``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from armpilot.robot_profile import RobotProfile


@dataclass(frozen=True)
class TaskInit:
    """A seeded initial state: object position (3,), object yaw (rad), goal position (3,)."""

    object_position: np.ndarray
    object_yaw: float
    goal_position: np.ndarray


@dataclass(frozen=True)
class TaskState:
    """What a success test needs: object and goal positions (3,), TCP position (3,), gripper (m)."""

    object_position: np.ndarray
    goal_position: np.ndarray
    tcp_position: np.ndarray
    gripper: float


@dataclass(frozen=True)
class Task:
    """A task: its object, how it is randomised and when it is solved.

    Attributes:
        name: task key (``reach``, ``push``, ``pick``, ``place``: pick the box and set it down on the
            user's goal, ``language``: touch the box the instruction names).
        object_kind: ``target`` (a visual marker, no collision) or ``box`` (a free body).
        object_half_size: half edge of the box or radius of the target, m.
        object_mass: kg (boxes only).
        region_low, region_high: bounds of the object position, (3,).
        tolerance: success distance, m.
        lift_height: for ``pick``, how high the box bottom must rise above the table, m.
        max_duration: seconds of sim time before an episode counts as failed.
        goal_distance, goal_angles: where a user's goal is drawn (push, place): this far from the box (m, times
            ``scale``), in this range of directions (rad about z, 0 = away from the robot).
        table_z: height of the table top, m (the regions are above it).
    """

    name: str
    object_kind: str
    object_half_size: float
    object_mass: float
    region_low: tuple[float, float, float]
    region_high: tuple[float, float, float]
    tolerance: float
    lift_height: float = 0.0
    max_duration: float = 12.0
    scale: float = 1.0  # regions are for armpilot's arm (reach 0.6 m) times this
    table_z: float = 0.0
    goal_distance: tuple[float, float] = (0.10, 0.15)
    goal_angles: tuple[float, float] = (-np.pi / 2, np.pi / 2)

    def sample(self, rng: np.random.Generator) -> TaskInit:
        """Draw an initial state from ``rng``."""
        position = rng.uniform(self.region_low, self.region_high)
        yaw = float(rng.uniform(-np.pi / 4, np.pi / 4))
        goal = (_user_goal(position, rng, self.scale, self.goal_distance, self.goal_angles) if self.needs_user_goal
                else self.goal_from_object(position))
        return TaskInit(position, yaw, goal)

    @property
    def needs_user_goal(self) -> bool:
        """True when the goal is the user's choice (push, place: where to), not a function of the object."""
        return self.name in ("push", "place")

    @property
    def goal_follows_object(self) -> bool:
        """True when the goal is the object wherever it is now (reach), not where it started (pick)."""
        return self.name in ("reach", "language")

    def goal_from_object(self, position: np.ndarray) -> np.ndarray:
        """(3,) the goal of a task whose goal follows from the object's initial position (reach: the object
        itself; pick: ``lift_height`` above it). Raises ValueError for a task that needs the user's goal."""
        if self.needs_user_goal:
            raise ValueError(f"task '{self.name}' needs a goal from the user (a PoseStamped on /policy/goal)")
        lift = self.lift_height if self.name == "pick" else 0.0
        return np.asarray(position, float) + np.array([0.0, 0.0, lift])

    def success(self, state: TaskState) -> bool:
        """True when the task is solved in ``state``."""
        if self.name == "reach":
            return bool(np.linalg.norm(state.tcp_position - state.object_position) < self.tolerance)
        if self.name == "push":
            return bool(np.linalg.norm(state.object_position[:2] - state.goal_position[:2]) < self.tolerance)
        if self.name == "language":  # the tool on top of the named box
            top = state.object_position + np.array([0.0, 0.0, self.object_half_size])
            return bool(np.linalg.norm(state.tcp_position - top) < self.tolerance)
        if self.name == "place":  # on the goal, resting on the table, let go
            on_goal = np.linalg.norm(state.object_position[:2] - state.goal_position[:2]) < self.tolerance
            resting = state.object_position[2] - self.object_half_size - self.table_z < 0.01
            released = np.linalg.norm(state.tcp_position - state.object_position) > 0.05
            return bool(on_goal and resting and released)
        lifted = state.object_position[2] - self.object_half_size - self.table_z >= self.lift_height
        near_gripper = np.linalg.norm(state.tcp_position - state.object_position) < 0.05
        return bool(lifted and near_gripper)


def _user_goal(position: np.ndarray, rng: np.random.Generator, scale: float, distance: tuple[float, float],
               angles: tuple[float, float]) -> np.ndarray:
    """A goal ``distance`` m (times ``scale``) from the box in a direction drawn from ``angles``."""
    angle = rng.uniform(*angles)
    distance = rng.uniform(*distance) * scale
    goal = position + distance * np.array([np.cos(angle), np.sin(angle), 0.0])
    goal[:2] = np.clip(goal[:2], np.array([0.30, -0.22]) * scale, np.array([0.58, 0.22]) * scale)
    return goal


TASKS: dict[str, Task] = {
    "reach": Task("reach", "target", 0.015, 0.0, (0.30, -0.20, 0.05), (0.50, 0.20, 0.25), 0.02),
    "push": Task("push", "box", 0.025, 0.15, (0.34, -0.10, 0.025), (0.42, 0.10, 0.025), 0.03),
    "pick": Task("pick", "box", 0.02, 0.08, (0.32, -0.15, 0.02), (0.50, 0.15, 0.02), 0.0, lift_height=0.06),
    # pick-and-place: the box onto the user's goal pad, among distractors in the randomized scenes
    "place": Task("place", "box", 0.02, 0.08, (0.32, -0.15, 0.02), (0.50, 0.15, 0.02), 0.03, lift_height=0.06,
                  max_duration=16.0, goal_distance=(0.12, 0.20), goal_angles=(-np.pi, np.pi)),
    # the instruction names the box to touch among others of other colours (armpilot.sim.scenes)
    "language": Task("language", "box", 0.02, 0.08, (0.32, -0.15, 0.02), (0.50, 0.15, 0.02), 0.025),
}


#: Reach (m) the task regions were drawn for: armpilot's own arm.
REFERENCE_REACH = 0.6


def get_task(name: str, reach: float = REFERENCE_REACH, table_z: float = 0.0) -> Task:
    """The task called ``name``, its regions scaled to an arm of ``reach`` m over a table top at ``table_z`` m; a
    KeyError lists the known tasks."""
    if name not in TASKS:
        raise KeyError(f"unknown task '{name}'; known tasks: {sorted(TASKS)}")
    task = TASKS[name]
    if reach == REFERENCE_REACH and table_z == 0.0:
        return task
    scale = reach / REFERENCE_REACH
    low, high = np.array(task.region_low), np.array(task.region_high)
    height = np.array([scale, scale, scale if task.object_kind == "target" else 1.0])  # boxes rest on the table
    up = np.array([0.0, 0.0, table_z])
    return replace(task, region_low=tuple(low * height + up), region_high=tuple(high * height + up), scale=scale,
                   table_z=table_z)


#: Tasks that close a gripper on the box.
GRASPING_TASKS = ("pick", "place")


class TaskNotSupported(ValueError):
    """A task the robot profile's arm cannot do as configured (named, with the fix)."""


def task_for_robot(name: str, profile: "RobotProfile") -> Task:
    """The task called ``name`` sized to the robot profile's arm and table (its ``reach`` and ``table_z``).

    Raises:
        TaskNotSupported: a grasping task for an arm whose gripper armpilot does not command (none, or one on a
            controller of its own with no ``command`` in the profile): every episode would run to its time limit
            with nothing refused.
    """
    if name in GRASPING_TASKS and not profile.gripper.commanded:
        where = ("has no gripper" if not profile.gripper.joint else
                 f"has its gripper '{profile.gripper.joint}' on a separate controller that armpilot does not command")
        raise TaskNotSupported(f"task '{name}' closes a gripper, and robot '{profile.name}' {where}; give the gripper "
                               "a command (gripper: {controller: separate, command: {interface: trajectory|position|"
                               "action, topic: ...}}, its joint listed in joints), put it on the arm controller, or "
                               "run reach or push")
    return get_task(name, profile.reach, profile.table_z)
