"""The point-cloud pipeline: known geometry, sim scenes against ground truth, bad frames."""

from __future__ import annotations

import numpy as np
import pytest
from transforms3d.euler import quat2euler

from armpilot.perception.cloud import CloudPipeline, fit_plane_ransac, pack_rgb
from armpilot.perception.config import PerceptionConfig
from armpilot.perception.frames import FrameError, check_sizes, depth_to_metres
from armpilot.perception.geometry import Deprojector, Intrinsics, camera_pose_from_urdf, project
from armpilot.perception.self_filter import PlacedBoxes, RobotBoxes
from armpilot.robot import HOME_POSITION
from armpilot.sim.scene import CameraConfig
from armpilot.sim.world import SimWorld
from armpilot.tasks import get_task
from synthetic_depth import render_depth

INTR = Intrinsics(460.0, 460.0, 319.5, 239.5, 640, 480)


@pytest.fixture(scope="module")
def camera_pose(arm):
    return camera_pose_from_urdf(arm)


def test_deprojection_inverts_projection(camera_pose):
    rng = np.random.default_rng(0)
    points = rng.uniform([0.2, -0.3, 0.0], [0.7, 0.3, 0.3], (50, 3))
    uv = project(points, INTR, camera_pose)
    pixels = np.round(uv).astype(int)
    depth = np.zeros((480, 640), np.float32)
    cam = (points - camera_pose[:3, 3]) @ camera_pose[:3, :3]
    depth[pixels[:, 1], pixels[:, 0]] = cam[:, 2]
    back, flat = Deprojector(INTR, camera_pose).points(depth)
    order = np.argsort(pixels[:, 1] * 640 + pixels[:, 0])
    # pixel rounding moves a point by < half a pixel at ~1 m: < 1.5 mm
    assert np.allclose(back, points[order], atol=1.5e-3)


@pytest.mark.parametrize("seed", range(5))
def test_known_boxes_centroid_within_5mm(camera_pose, seed):
    rng = np.random.default_rng(seed)
    boxes = []
    for k in range(2):
        half = np.array([0.02 + 0.01 * k, 0.025, 0.02 + 0.005 * k])
        centre = np.array([0.32 + 0.2 * k + rng.uniform(-0.03, 0.03), rng.uniform(-0.15, 0.15), half[2]])
        boxes.append((centre, float(rng.uniform(-0.7, 0.7)), half))
    depth = render_depth(INTR, camera_pose, boxes)
    result = CloudPipeline(PerceptionConfig(), INTR, camera_pose).process(depth)
    assert len(result.objects) == 2
    assert result.plane is not None and abs(result.plane[3]) < 2e-3 and result.plane[2] > 0.999
    for centre, yaw, half in boxes:
        found = min(result.objects, key=lambda o: np.linalg.norm(o.position - centre))
        assert np.linalg.norm(found.position - centre) <= 0.005
        assert np.allclose(np.sort(found.size[:2]), np.sort(2 * half[:2]), atol=0.006)
        assert found.size[2] == pytest.approx(2 * half[2], abs=0.006)
        assert abs((found.yaw - yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4) < 0.05


def test_empty_table_has_no_objects(camera_pose):
    result = CloudPipeline(PerceptionConfig(), INTR, camera_pose).process(render_depth(INTR, camera_pose, []))
    assert result.objects == [] and len(result.cloud) == 0


def test_ransac_recovers_tilted_plane():
    rng = np.random.default_rng(1)
    xy = rng.uniform(-0.3, 0.3, (2000, 2))
    normal = np.array([0.1, -0.05, 1.0]) / np.linalg.norm([0.1, -0.05, 1.0])
    z = -(normal[0] * xy[:, 0] + normal[1] * xy[:, 1] + 0.02) / normal[2]
    points = np.column_stack([xy, z]) + rng.normal(0, 0.001, (2000, 3))
    outliers = rng.uniform(-0.3, 0.3, (300, 3))
    plane = fit_plane_ransac(np.vstack([points, outliers]), 0.005, 64, 20.0, rng)
    assert np.allclose(plane[:3], normal, atol=0.01) and plane[3] == pytest.approx(0.02, abs=0.002)


@pytest.mark.parametrize("task", ["pick", "push", "reach"])
def test_sim_scenes_median_error_below_1cm(arm, camera_pose, task):
    """17 random scenes per task (51 in all): perceived vs ground-truth object position."""
    world = SimWorld(None, get_task(task), CameraConfig(640, 480))
    fx, fy, cx, cy = world.intrinsics()
    pipeline = CloudPipeline(PerceptionConfig(), Intrinsics(fx, fy, cx, cy, 640, 480), camera_pose)
    errors = []
    for seed in range(100, 117):
        world.reset(seed)
        world.step(HOME_POSITION, 5)
        color, depth = world.render()
        result = pipeline.process(depth, color, RobotBoxes(arm)(world.joint_positions()))
        assert len(result.objects) == 1, f"seed {seed}: {len(result.objects)} objects"
        errors.append(np.linalg.norm(result.objects[0].position - world.object_pose()[0]))
        assert result.objects[0].color[0] > 2 * result.objects[0].color[1], "the task object is red"
    world.close()
    assert np.median(errors) <= 0.01 and max(errors) <= 0.02


def _frame_with_tool_at(world: SimWorld, arm, camera_pose, tcp: np.ndarray):
    """Pose the arm (IK, the home orientation) with its TCP at ``tcp`` (3,) m, render one frame; returns
    the joint positions, colour, depth and a pipeline for the world's camera."""
    q = arm.ik(tcp, arm.tcp_pose(HOME_POSITION)[:3, :3], HOME_POSITION).positions
    world.data.qpos[:7] = q
    world.data.qpos[7] = q[6]
    __import__("mujoco").mj_forward(world.model, world.data)
    color, depth = world.render()
    fx, fy, cx, cy = world.intrinsics()
    intrinsics = Intrinsics(fx, fy, cx, cy, world.camera.width, world.camera.height)
    return q, color, depth, CloudPipeline(PerceptionConfig(), intrinsics, camera_pose)


def test_self_filter_removes_the_arm_reaching_into_the_workspace(arm, camera_pose):
    world = SimWorld(None, get_task("pick"), CameraConfig(640, 480))
    world.reset(0)
    q, color, depth, pipeline = _frame_with_tool_at(world, arm, camera_pose, np.array([0.45, 0.15, 0.12]))
    unfiltered = pipeline.process(depth, color)
    filtered = pipeline.process(depth, color, RobotBoxes(arm)(q))
    world.close()
    assert len(unfiltered.objects) >= 2, "the arm shows up as an object without the filter"
    assert len(filtered.objects) == 1


def test_frame_checks():
    with pytest.raises(FrameError, match="unsupported_encoding"):
        depth_to_metres(np.zeros((4, 4), np.uint8), "mono8")
    with pytest.raises(FrameError, match="empty_depth"):
        depth_to_metres(np.zeros((4, 4), np.uint16), "16UC1")
    with pytest.raises(FrameError, match="empty_depth"):
        depth_to_metres(np.full((4, 4), np.nan, np.float32), "32FC1")
    assert depth_to_metres(np.full((2, 2), 1500, np.uint16), "16UC1")[0, 0] == pytest.approx(1.5)
    with pytest.raises(FrameError, match="size_mismatch"):
        check_sizes(INTR, np.zeros((240, 320), np.float32), None)
    with pytest.raises(ValueError):
        Intrinsics(0.0, 460.0, 319.5, 239.5, 640, 480)


def test_pack_rgb():
    assert pack_rgb(np.array([[255, 0, 16]]))[0] == 0xFF0010


@pytest.mark.parametrize("seed", [0, 2])
def test_self_filter_keeps_a_box_the_tool_pushes(arm, camera_pose, seed):
    """The tool 8 mm behind the box, as in a push: the box keeps its rear face, so its centre stays
    within 4 mm (chains of spheres around the links cut its rear off: 10-11 mm here, about 2 cm
    toward the goal on average while a push is under way)."""
    world = SimWorld(None, get_task("push"), CameraConfig(320, 240))
    world.reset(seed)
    box, quat = world.object_pose()
    yaw = quat2euler(quat)[2]  # MuJoCo's (w, x, y, z), as transforms3d's
    behind = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    half = world.episode_task.object_half_size
    q, color, depth, pipeline = _frame_with_tool_at(world, arm, camera_pose, box - (half + 0.008) * behind)
    result = pipeline.process(depth, color, RobotBoxes(arm)(q))
    world.close()
    assert len(result.objects) == 1, f"{len(result.objects)} objects: the arm left pieces in the cloud"
    assert np.linalg.norm(result.objects[0].position[:2] - box[:2]) < 0.004


def test_placed_boxes_grow_by_the_padding_on_every_side():
    turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 deg about z
    boxes = PlacedBoxes(turn[None], np.array([[0.5, 0.0, 0.1]]), np.array([[0.05, 0.01, 0.02]]))
    # the box's long axis now points along base y
    points = np.array([[0.5, 0.055, 0.1], [0.5, 0.065, 0.1], [0.516, 0.0, 0.1], [0.5, 0.0, 0.131]])
    assert boxes.contains(points, padding=0.0).tolist() == [False, False, False, False]
    assert boxes.contains(points, padding=0.01).tolist() == [True, False, True, False]
    assert boxes.contains(np.array([[0.5, 0.049, 0.1]])).tolist() == [True]
