"""The task goal a policy observes, from real inputs only (no ROS, no simulator topics).

Where the task's goal is the user's choice (push: where to), it comes from a
goal message (``geometry_msgs/PoseStamped`` on ``/policy/goal``: a user, an
RViz "2D Goal Pose" remapped there, or the sim playing the user). Where it
follows from the object (reach: the object, wherever it is; pick: above
where it first was), a goal message still wins, else it is derived from the
object positions seen in the episode. Positions (3,) in the robot's base frame, m; stamps in s.
"""

from __future__ import annotations

import numpy as np

from armpilot.tasks.definitions import Task

#: Goals closer than this (m) are the same goal.
SAME_GOAL_M = 1e-3


class EpisodeGoal:
    """The goal of the current episode."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.episode_start = float("-inf")
        self.user: tuple[float, np.ndarray] | None = None  # (stamp, position) of the last goal message
        self.derived: np.ndarray | None = None

    def start_episode(self, start: float) -> None:
        """A new episode began at ``start``: goals stamped before it and the derived goal are forgotten."""
        self.episode_start = start
        self.derived = None

    def set_user_goal(self, stamp: float, position: np.ndarray) -> bool:
        """A goal message; True when it differs from the goal in force (a new task for the same episode)."""
        position = np.asarray(position, float)
        if position.shape != (3,) or not np.all(np.isfinite(position)):
            raise ValueError(f"goal position {position.tolist()} is not 3 finite numbers")
        before = self.current()
        self.user = (stamp, position)
        return not (np.all(np.isfinite(before)) and np.linalg.norm(before - position) < SAME_GOAL_M)

    def object_seen(self, position: np.ndarray) -> None:
        """An object position of this episode: the derived goal follows it (reach) or is fixed by the first one
        (pick: the box is lifted away from where it started)."""
        if self.task.needs_user_goal or not np.all(np.isfinite(position)):
            return
        if self.derived is None or self.task.goal_follows_object:
            self.derived = self.task.goal_from_object(position)

    def current(self) -> np.ndarray:
        """(3,) the goal now: the episode's goal message, else the derived goal, else NaN (none yet)."""
        if self.user is not None and self.user[0] >= self.episode_start - 1e-6:
            return self.user[1].copy()
        return np.full(3, np.nan) if self.derived is None else self.derived.copy()

    def missing(self) -> str:
        """Why there is no goal ("" when there is one)."""
        if np.all(np.isfinite(self.current())):
            return ""
        if self.task.needs_user_goal:
            return f"task '{self.task.name}' needs a goal: publish a geometry_msgs/PoseStamped on /policy/goal"
        return "no object seen yet this episode (the goal follows from it)"
