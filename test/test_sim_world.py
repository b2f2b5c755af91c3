"""The MuJoCo world: reset determinism, servos, camera geometry, the JTC-like runner."""

from __future__ import annotations

import numpy as np
import pytest

from armpilot.control.trajectory import TrajectoryError
from armpilot.robot import CAMERA_OPTICAL_FRAME, CONTROLLED_JOINTS, HOME_POSITION
from armpilot.sim.runner import SimRunner
from armpilot.sim.scene import CameraConfig
from armpilot.sim.world import SimWorld
from armpilot.tasks import get_task


@pytest.fixture(scope="module")
def pick_world():
    world = SimWorld(None, get_task("pick"), CameraConfig(320, 240), render=True)
    yield world
    world.close()


def test_reset_is_deterministic_per_seed(pick_world):
    a = pick_world.reset(3).object_position
    b = pick_world.reset(4).object_position
    c = pick_world.reset(3).object_position
    assert np.array_equal(a, c) and not np.array_equal(a, b)
    assert np.allclose(pick_world.joint_positions(), HOME_POSITION)


def test_servos_hold_home_against_gravity(pick_world):
    pick_world.reset(0)
    pick_world.step(HOME_POSITION, 500)
    assert np.allclose(pick_world.joint_positions(), HOME_POSITION, atol=2e-3)
    # the box rests on the table
    assert pick_world.object_pose()[0][2] == pytest.approx(0.02, abs=2e-3)


def test_camera_sees_the_box_where_geometry_says(pick_world, arm):
    init = pick_world.reset(1)
    pick_world.step(HOME_POSITION, 10)
    color, depth = pick_world.render()
    assert color.shape == (240, 320, 3) and depth.shape == (240, 320) and depth.dtype == np.float32
    fx, fy, cx, cy = pick_world.intrinsics()
    pose = arm.frame_pose(CAMERA_OPTICAL_FRAME)
    top = init.object_position + [0, 0, 0.02]  # centre of the box's top face
    in_cam = pose[:3, :3].T @ (top - pose[:3, 3])
    u, v = fx * in_cam[0] / in_cam[2] + cx, fy * in_cam[1] / in_cam[2] + cy
    px, py = int(round(u)), int(round(v))
    r, g, b = color[py, px].astype(int)
    assert r > 2 * g and r > 2 * b, f"pixel ({px}, {py}) should be the red box, got {(r, g, b)}"
    assert depth[py, px] == pytest.approx(in_cam[2], abs=0.01)


def test_runner_follows_and_rejects(pick_world):
    runner = SimRunner(pick_world)
    runner.reset(0)
    target = HOME_POSITION.copy()
    target[0] += 0.3
    runner.command(CONTROLLED_JOINTS, 0.0, np.array([0.5]), target[None, :])
    for _ in range(150):
        runner.tick(4)
    assert runner.world.joint_positions()[0] == pytest.approx(target[0], abs=5e-3)
    before = runner.world.joint_positions()
    with pytest.raises(TrajectoryError, match="not_finite"):
        runner.command(CONTROLLED_JOINTS, 0.0, np.array([0.5]), np.full((1, 7), np.nan))
    with pytest.raises(TrajectoryError, match="before_reset"):
        # stamped at the reset instant, as a message rounds it to nanoseconds: still the old episode
        runner.command(CONTROLLED_JOINTS, runner.episode_start + 4e-10, np.array([0.5]), target[None, :])
    for _ in range(50):
        runner.tick(4)
    assert np.allclose(runner.world.joint_positions(), before, atol=2e-3), "a rejected command changes nothing"
    assert runner.rejections == {"not_finite": 1, "before_reset": 1}


def test_a_command_built_before_a_reset_does_not_fling_the_arm(pick_world):
    """A hold stamped 0 ("on receipt") toward where the last episode left the arm, received after the reset put
    the arm home: out of reach in its time, so refused, and the arm stays home; a reachable one is followed."""
    runner = SimRunner(pick_world)
    runner.reset(0)
    away = HOME_POSITION.copy()
    away[1] += 1.0  # 1 rad on the shoulder: 0.5 s at its 2 rad/s
    with pytest.raises(TrajectoryError, match="unreachable_start.*shoulder_lift_joint"):
        runner.command(CONTROLLED_JOINTS, 0.0, np.array([0.02, 0.04]), np.stack([away, away]))
    for _ in range(50):
        runner.tick(4)
    assert np.allclose(runner.world.joint_positions(), HOME_POSITION, atol=2e-3)
    runner.command(CONTROLLED_JOINTS, 0.0, np.array([0.6, 1.0]), np.stack([away, away]))  # reachable by 0.6 s
    # once the episode's first command is taken, later ones are followed as a trajectory controller would
    further = away.copy()
    further[1] += 1.0
    runner.command(CONTROLLED_JOINTS, 0.0, np.array([0.02, 0.04]), np.stack([further, further]))
    assert runner.rejections == {"unreachable_start": 1}


def test_clock_is_monotonic_across_resets(pick_world):
    runner = SimRunner(pick_world)
    runner.reset(0)
    runner.tick(100)
    t = runner.now
    runner.reset(1)
    assert runner.now >= t and runner.episode_start == pytest.approx(t)


def test_an_unstable_simulation_is_reported_naming_the_body():
    world = SimWorld(None, get_task("push"), render=False)
    world.reset(0)
    home = world.joint_positions()
    assert world.step(home, 2) == ""
    world.data.qvel[world.model.body("task_object").dofadr[0]] = np.nan  # what a blown-up contact leaves
    report = world.step(home, 2)
    assert "unstable" in report and "task_object" in report, report
    assert world.step(home, 2) == ""  # reported once, when it happens


def test_after_an_unstable_step_the_clock_runs_on_the_arm_holds_and_the_episode_fails(monkeypatch):
    world = SimWorld(None, get_task("push"), render=False)
    runner = SimRunner(world)
    runner.reset(0)
    runner.tick(50)
    pad = world.data.mocap_pos.copy()
    for _ in range(2):  # a second reset in the same episode is caught too (MuJoCo leaves its count at 1)
        before = runner.now
        world.data.qvel[world.model.body("task_object").dofadr[0]] = np.nan
        assert "unstable" in runner.tick(2)
        assert runner.now == pytest.approx(before + 2 * world.model.opt.timestep)  # not back to 0
        assert np.allclose(runner.follower.sample(runner.now)[0], world.joint_positions())
        assert np.allclose(world.data.mocap_pos, pad)  # the goal pad is back under the goal
        runner.tick(10)
    monkeypatch.setattr(world, "success", lambda: True)  # even if the moved box happened to sit on the goal
    assert not runner.success()  # the episode counts as failed
    runner.reset(1)
    assert runner.success()


@pytest.mark.parametrize("name", ["kinova_j2s6s200", "z1", "xarm7"])
def test_an_arm_from_its_vendors_urdf_is_simulated_where_its_kinematics_say(name):
    """Arms armpilot ships no profile for (``test/profiles/``): the Kinova's meshes are COLLADA, which MuJoCo
    cannot read (the sim refused to start); the Z1 names a fixed joint like its link. Each builds, and at home
    the simulated TCP is where pinocchio's forward kinematics put it."""
    from pathlib import Path

    from armpilot.robot import ArmModel
    from armpilot.robot_profile import load_profile

    profile = load_profile(str(Path(__file__).parent / "profiles" / f"{name}.yaml"))
    world = SimWorld(profile, get_task("reach", profile.reach), render=False)
    try:
        world.reset(0)
        home = np.asarray(profile.home, float)
        assert np.allclose(world.joint_positions(), home, atol=1e-6)
        np.testing.assert_allclose(world.tcp_position(), ArmModel(profile).tcp_pose(home)[:3, 3], atol=1e-4)
        assert world.model.nmesh > 0
    finally:
        world.close()
