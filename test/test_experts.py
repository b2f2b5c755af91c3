"""Scripted experts solve their tasks in the pure simulation (no ROS), through the follower."""

from __future__ import annotations

import numpy as np
import pytest
from transforms3d.euler import quat2euler

from armpilot.sim.world import SimWorld
from armpilot.tasks import get_task
from armpilot.tasks.demonstrations import run_expert_episode
from armpilot.tasks.experts import ExpertObservation, ScriptedExpert, grasp_yaw


def run_episode(world, expert, seed):
    return run_expert_episode(world, expert, seed).success


@pytest.mark.parametrize("task, seeds, needed", [("reach", range(6), 6), ("pick", range(6), 5), ("push", range(4), 3),
                                                 ("place", range(4), 3)])
def test_expert_solves_task(arm, task, seeds, needed):
    world = SimWorld(None, get_task(task), render=False)
    expert = ScriptedExpert(arm, get_task(task))
    successes = sum(run_episode(world, expert, seed) for seed in seeds)
    assert successes >= needed


def test_chunks_respect_joint_limits(arm):
    world = SimWorld(None, get_task("pick"), render=False)
    expert = ScriptedExpert(arm, get_task("pick"))
    world.reset(0)
    pos, quat = world.object_pose()
    chunk = expert.act(ExpertObservation(0.0, world.joint_positions(), pos, quat2euler(quat)[2], world.goal_position()))
    assert chunk.shape == (10, 7)
    assert np.all(chunk >= arm.limits.lower) and np.all(chunk <= arm.limits.upper)
    speed = np.abs(np.diff(chunk, axis=0)) / expert.dt
    assert np.all(speed <= arm.limits.velocity)


def test_grasp_yaw_is_box_aligned_and_near_natural():
    yaw = grasp_yaw(0.3, np.array([0.4, 0.0, 0.02]))
    turned = (yaw - 0.3) % (np.pi / 2)
    assert turned == pytest.approx(0.0, abs=1e-9) or turned == pytest.approx(np.pi / 2)
    assert abs(yaw) <= np.pi / 4 + 1e-9
