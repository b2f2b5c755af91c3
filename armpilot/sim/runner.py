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

#: How far (s at each joint's velocity limit, and rad or m) a trajectory's first point may be beyond what the arm can
#: reach from where the controller is by that point's time: the tracking lag a command checked on a slightly older
#: state carries.
START_SLACK_S, START_SLACK = 0.25, 0.05


class SimRunner:
    """World + trajectory follower + monotonic sim clock; a gripper on a controller of its own has a follower of its
    own (``command_gripper``)."""

    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self.joint_names = world.profile.arm_controller_joints  # what the arm's controller takes
        self._arm = np.array([world.joint_names.index(n) for n in self.joint_names])
        gripper = world.profile.gripper
        self.gripper_joint = gripper.joint if gripper.commanded_separately else ""
        self._gripper = world.joint_names.index(self.gripper_joint) if self.gripper_joint else None
        self.follower = TrajectoryFollower(world.joint_positions()[self._arm])
        self.gripper_follower = (None if self._gripper is None
                                 else TrajectoryFollower(world.joint_positions()[[self._gripper]]))
        self._clock_offset = 0.0
        self.episode = -1
        self.seed = -1
        self.episode_start = 0.0
        self.rejections: dict[str, int] = {}
        self.broken = False  # MuJoCo reset this episode's state (``tick``)
        self._since_reset = False  # no command accepted since the last reset yet (``_check_reachable_start``)
        joints = world.profile.urdf_joints
        self._vmax = world.profile.max_velocity[self._arm]
        self._continuous = np.array([not np.isfinite(joints[n].lower) and not np.isfinite(joints[n].upper)
                                     for n in self.joint_names])

    @property
    def now(self) -> float:
        """Sim time, s, monotonic over the whole run (resets do not rewind it)."""
        return self._clock_offset + self.world.time

    def reset(self, seed: int) -> TaskInit:
        """Start a new episode drawn from ``seed``; the arm holds its home pose."""
        self._clock_offset += self.world.time
        init = self.world.reset(seed)
        self.broken = False
        self._hold_where_the_arm_is()
        self._since_reset = True
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
                ``before_reset`` for a trajectory stamped before this episode,
                ``unreachable_start`` for one that starts out of the arm's reach).
        """
        try:
            times, positions, velocities = validate_trajectory(
                joint_names, self.joint_names, times, positions, velocities
            )
            start = self._start(stamp)
            if self._since_reset:
                self._check_reachable_start(start, times, positions)
        except TrajectoryError as error:
            self.rejections[error.reason] = self.rejections.get(error.reason, 0) + 1
            raise
        self._since_reset = False
        self.follower.set_trajectory(JointTrajectory(start, times, positions, velocities), self.now)

    def command_gripper(self, joint_names: Sequence[str], stamp: float, times: np.ndarray,
                        positions: np.ndarray) -> None:
        """A trajectory for the gripper on a controller of its own (a forward command controller's position is one
        point at 0 s, stamped 0). Raises TrajectoryError as ``command`` does (no reachability test: a gripper's
        controller closes on what it meets)."""
        if self.gripper_follower is None:
            raise TrajectoryError("unknown_joint", "this arm has no gripper on a controller of its own")
        try:
            times, positions, _ = validate_trajectory(joint_names, (self.gripper_joint,), times, positions)
            start = self._start(stamp)
        except TrajectoryError as error:
            self.rejections[error.reason] = self.rejections.get(error.reason, 0) + 1
            raise
        self.gripper_follower.set_trajectory(JointTrajectory(start, times, positions, None), self.now)

    def move_gripper_to(self, position: float) -> None:
        """A forward command controller's position for the gripper, reached at its velocity limit from where its
        command is now (a real gripper moves at a speed of its own, not in one step)."""
        if self.gripper_follower is None:
            raise TrajectoryError("unknown_joint", "this arm has no gripper on a controller of its own")
        desired = float(self.gripper_follower.sample(self.now)[0][0])
        vmax = float(self.world.profile.max_velocity[self._gripper])
        duration = max(abs(position - desired) / vmax, self.world.timestep)
        self.command_gripper((self.gripper_joint,), 0.0, np.array([duration]), np.array([[position]]))

    def _start(self, stamp: float) -> float:
        """When a trajectory stamped ``stamp`` starts (0: now); TrajectoryError ``before_reset`` for one stamped before
        this episode."""
        if stamp != 0.0 and stamp <= self.episode_start + STAMP_TOLERANCE:
            raise TrajectoryError(
                "before_reset", f"stamped {stamp:.3f} s, not after this episode began at {self.episode_start:.3f} s"
            )
        return self.now if stamp == 0.0 else stamp

    def _hold_where_the_arm_is(self) -> None:
        positions = self.world.joint_positions()
        self.follower.hold(positions[self._arm])
        if self.gripper_follower is not None:
            self.gripper_follower.hold(positions[[self._gripper]])

    def _targets(self) -> np.ndarray:
        """(J,) servo targets in the world's joint order: the arm's follower, and the gripper's."""
        targets = np.empty(len(self.world.joint_names))
        targets[self._arm] = self.follower.sample(self.now)[0]
        if self.gripper_follower is not None:
            targets[self._gripper] = self.gripper_follower.sample(self.now)[0][0]
        return targets

    def _check_reachable_start(self, start: float, times: np.ndarray, positions: np.ndarray) -> None:
        """Until the first command of an episode: TrajectoryError ``unreachable_start`` for a first point the arm
        cannot reach from where the controller is by that point's time (``START_SLACK`` allowed). The sim's resets
        move the arm at once, which no real arm does: a command built from the state before a reset (a hold
        stamped 0, "on receipt", that crossed it) would otherwise fling the arm back to where the last episode
        left it. Later commands are followed as a trajectory controller would (the safety node judges them)."""
        desired, _ = self.follower.sample(self.now)
        gap = positions[0] - desired
        gap = np.where(self._continuous, (gap + np.pi) % (2 * np.pi) - np.pi, gap)
        reach = self._vmax * (max(start + times[0] - self.now, 0.0) + START_SLACK_S) + START_SLACK
        far = np.abs(gap) > reach
        if np.any(far):
            worst = int(np.argmax(np.abs(gap) - reach))
            raise TrajectoryError("unreachable_start", f"the first point is {abs(gap[worst]):.3f} from where "
                                  f"'{self.joint_names[worst]}' is (it can move {reach[worst]:.3f} by then)")

    def tick(self, n_steps: int) -> str:
        """Send the follower's current target to the servos and step ``n_steps`` times; "" or what went
        wrong in the physics (``SimWorld.step``). After MuJoCo's reset of an unstable state the clock still
        runs on (a clock running back made perception drop every frame for up to a minute), the arm holds
        where the reset left it, the goal pad goes back, and the episode runs on to its time limit as a
        failure (``success``: the reset moved the box)."""
        targets = self._targets()
        before = self.now
        unstable = self.world.step(targets, n_steps)
        if unstable:  # MuJoCo reset the state: its time to 0, the arm, box and goal pad to the model's defaults
            self._clock_offset = before + n_steps * self.world.timestep - self.world.time
            self._hold_where_the_arm_is()  # no lunge back
            self.world.place_goal_pad(self.world.episode_init.goal_position)
            self.broken = True
        return unstable

    def success(self) -> bool:
        """The task's success test, False for the rest of an episode MuJoCo reset (its box was moved)."""
        return not self.broken and self.world.success()
