"""The simulated arm behind a joint_trajectory_controller-like interface (no ROS).

Keeps a clock that never runs backwards across episode resets, validates and
follows incoming trajectories, and steps the world.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from armpilot.control.trajectory import (
    STAMP_TOLERANCE,
    JointTrajectory,
    TrajectoryError,
    TrajectoryFollower,
    validate_trajectory,
)
from armpilot.sim.world import SimWorld
from armpilot.tasks import TaskInit



class SimRunner:
    """World + trajectory follower + monotonic sim clock."""

    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self.joint_names = world.joint_names
        self.follower = TrajectoryFollower(world.joint_positions())
        self._clock_offset = 0.0
        self.episode = -1
        self.seed = -1
        self.episode_start = 0.0
        self.rejections: dict[str, int] = {}
        self.broken = False  # MuJoCo reset this episode's state (``tick``)

    @property
    def now(self) -> float:
        """Sim time, s, monotonic over the whole run (resets do not rewind it)."""
        return self._clock_offset + self.world.time

    def reset(self, seed: int) -> TaskInit:
        """Start a new episode drawn from ``seed``; the arm holds its home pose."""
        self._clock_offset += self.world.time
        init = self.world.reset(seed)
        self.broken = False
        self.follower.hold(self.world.joint_positions())
        self.episode += 1
        self.seed = seed
        self.episode_start = self.now
        return init

    def command(
        self,
        joint_names: Sequence[str],
        stamp: float,
        times: np.ndarray,
        positions: np.ndarray,
        velocities: np.ndarray | None = None,
    ) -> None:
        """Take a trajectory (JTC semantics: stamp 0 means "start on receipt").

        Raises:
            TrajectoryError: the trajectory is rejected and the arm keeps doing
                what it did (reasons of ``validate_trajectory`` plus
                ``before_reset`` for a trajectory stamped before this episode).
        """
        try:
            times, positions, velocities = validate_trajectory(
                joint_names, self.joint_names, times, positions, velocities
            )
            if stamp != 0.0 and stamp <= self.episode_start + STAMP_TOLERANCE:
                raise TrajectoryError(
                    "before_reset", f"stamped {stamp:.3f} s, not after this episode began at {self.episode_start:.3f} s"
                )
        except TrajectoryError as error:
            self.rejections[error.reason] = self.rejections.get(error.reason, 0) + 1
            raise
        start = self.now if stamp == 0.0 else stamp
        self.follower.set_trajectory(JointTrajectory(start, times, positions, velocities), self.now)

    def tick(self, n_steps: int) -> str:
        """Send the follower's current target to the servos and step ``n_steps`` times; "" or what went
        wrong in the physics (``SimWorld.step``). After MuJoCo's reset of an unstable state the clock still
        runs on (a clock running back made perception drop every frame for up to a minute), the arm holds
        where the reset left it, the goal pad goes back, and the episode runs on to its time limit as a
        failure (``success``: the reset moved the box)."""
        targets, _ = self.follower.sample(self.now)
        before = self.now
        unstable = self.world.step(targets, n_steps)
        if unstable:  # MuJoCo reset the state: its time to 0, the arm, box and goal pad to the model's defaults
            self._clock_offset = before + n_steps * self.world.timestep - self.world.time
            self.follower.hold(self.world.joint_positions())  # hold where the arm now is, no lunge back
            self.world.place_goal_pad(self.world.episode_init.goal_position)
            self.broken = True
        return unstable

    def success(self) -> bool:
        """The task's success test, False for the rest of an episode MuJoCo reset (its box was moved)."""
        return not self.broken and self.world.success()
