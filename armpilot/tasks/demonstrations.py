"""Scripted-expert rollouts in the pure simulation (no ROS): success checks and demonstration chunks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from transforms3d.euler import quat2euler

from armpilot.control.trajectory import JointTrajectory, TrajectoryFollower
from armpilot.sim.world import SimWorld
from armpilot.tasks.experts import ExpertObservation, ScriptedExpert


#: Physics steps per control tick of an expert rollout (the follower is sampled once per tick).
CONTROL_SUBSTEPS = 4


@dataclass
class Rollout:
    """One episode: success, and every chunk (H, J) the expert proposed with the measured state (J,)."""

    success: bool
    chunks: list[np.ndarray] = field(default_factory=list)
    measured: list[np.ndarray] = field(default_factory=list)


def run_expert_episode(world: SimWorld, expert: ScriptedExpert, seed: int, replan_every: float = 0.2,
                       after_step: Callable[[SimWorld], None] | None = None) -> Rollout:
    """Reset ``world`` with ``seed`` and let ``expert`` act every ``replan_every`` s until success or time out;
    ``after_step(world)`` runs after every control tick (``CONTROL_SUBSTEPS`` physics steps), e.g. to render
    and measure."""
    world.reset(seed)
    expert.reset()
    follower = TrajectoryFollower(world.joint_positions())
    rollout = Rollout(False)
    next_plan, substeps = 0.0, CONTROL_SUBSTEPS
    # counted steps, not world.time: MuJoCo's reset of an unstable state sets the time back to 0
    for _ in range(int(np.ceil(world.task.max_duration / (substeps * world.timestep)))):
        if world.time >= next_plan - 1e-9:
            position, quat = world.object_pose()
            q = world.joint_positions()
            chunk = expert.act(ExpertObservation(world.time, q, position, quat2euler(quat)[2], world.goal_position()))
            rollout.chunks.append(chunk)
            rollout.measured.append(q)
            times = expert.dt * np.arange(1, len(chunk) + 1)
            follower.set_trajectory(JointTrajectory(world.time, times, chunk), world.time)
            next_plan += replan_every
        if world.step(follower.sample(world.time)[0], substeps):
            break  # MuJoCo reset the state: the episode failed
        if after_step is not None:
            after_step(world)
        if world.success():
            rollout.success = True
            break
    return rollout


def collect_demonstrations(world: SimWorld, expert: ScriptedExpert, seeds,
                           progress=None) -> tuple[np.ndarray, np.ndarray, float]:
    """Chunks (M, H, J) and measured states (M, J) of the successful episodes, and the success rate."""
    chunks, measured, successes = [], [], 0
    seeds = list(seeds)
    for seed in (progress(seeds) if progress else seeds):
        rollout = run_expert_episode(world, expert, seed)
        if rollout.success:
            successes += 1
            chunks += rollout.chunks
            measured += rollout.measured
    return np.asarray(chunks), np.asarray(measured), successes / max(len(seeds), 1)
