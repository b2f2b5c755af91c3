"""Tests of armpilot.perception.tracks (pure) and the tracks node's message helpers (no rclpy.init)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from armpilot.perception.frames import FrameError
from armpilot.perception.geometry import Deprojector, Intrinsics, camera_pose_from_urdf, project
from armpilot.perception.tracks import (TRACK_DTYPE, MotionTracker, PixelLifter, TracksConfig,
                                        empty_table, track_arrays)
from armpilot.ros_nodes.conversions import image_to_msg, pointcloud_from_msg, pointcloud_to_msg
from armpilot.ros_nodes.tracks_node import frame_arrays, gray_from_msg, markers_from_table


H, W, PAD = 240, 320, 32
INTR = Intrinsics(fx=300.0, fy=300.0, cx=159.5, cy=119.5, width=W, height=H)


def texture(seed: int, sigma: float = 2.0) -> np.ndarray:
    """Smooth random texture (H + 2 PAD, W + 2 PAD) float32 in [0, 255]."""
    noise = np.random.default_rng(seed).random((H + 2 * PAD, W + 2 * PAD)).astype(np.float32)
    img = cv2.GaussianBlur(noise, (0, 0), sigma)
    return (img - img.min()) / (img.max() - img.min()) * 255.0


def view(base: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """(H, W) uint8 crop of ``base`` with its content moved by (dx, dy) px (u right, v down)."""
    warp = np.float32([[1, 0, dx - PAD], [0, 1, dy - PAD]])
    return np.clip(cv2.warpAffine(base, warp, (W, H), flags=cv2.INTER_CUBIC) + 0.5, 0, 255).astype(np.uint8)


def newest(table: np.ndarray) -> dict[int, np.ndarray]:
    """track id -> newest (u, v)."""
    rows = table[table["step"] == 0]
    return {int(i): np.array([u, v]) for i, u, v in zip(rows["track_id"], rows["u"], rows["v"])}


@pytest.fixture(scope="module")
def base_T_camera(arm) -> np.ndarray:
    return camera_pose_from_urdf(arm)


# ------------------------------------------------------------------ tracking
def test_translation_is_tracked_with_stable_ids_and_horizon() -> None:
    config = TracksConfig(max_points=100, horizon=4)
    tracker = MotionTracker(config)
    base, step = texture(0), np.array([1.3, -0.7])
    first = tracker.update(view(base, 0.0, 0.0), 0.0)
    assert tracker.stats.seeded == len(first) == tracker.num_tracks > 50
    assert np.all(first["step"] == 0)
    start = newest(first)
    for k in range(1, 7):
        table = tracker.update(view(base, *(k * step)), 0.1 * k)
        assert tracker.stats.seeded == 0  # nearly all survive: no re-seeding
        now = newest(table)
        assert len(now) >= 0.9 * len(start) and set(now) <= set(start)  # ids stable, none new
        drift = np.array([np.linalg.norm(uv - start[i] - k * step) for i, uv in now.items()])
        assert np.median(drift) < 0.1 and np.percentile(drift, 95) < 0.3
        arrays = track_arrays(table)
        assert arrays.uv.shape == (len(now), min(k + 1, config.horizon), 2)
        assert table["step"].min() == -min(k, config.horizon - 1)
        moves = np.diff(arrays.uv, axis=1).reshape(-1, 2)  # every step in the kept history
        assert np.abs(moves - step).max() < 0.3
        assert np.isnan(arrays.xyz).all()  # no depth given


@settings(max_examples=15, deadline=None)
@given(st.floats(-6.0, 6.0), st.floats(-6.0, 6.0))
def test_any_small_shift_is_measured(dx: float, dy: float) -> None:
    tracker = MotionTracker(TracksConfig(max_points=60))
    base = texture(3)
    start = newest(tracker.update(view(base, 0.0, 0.0), 0.0))
    now = newest(tracker.update(view(base, dx, dy), 0.033))
    errors = np.array([np.linalg.norm(uv - start[i] - (dx, dy)) for i, uv in now.items()])
    assert len(errors) >= 0.8 * len(start)
    assert np.median(errors) < 0.1 and errors.max() < 0.3


def replaced_centre(base_seed: int, other_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A frame and the same frame with its centre (u 100..220, v 60..180) replaced."""
    before = view(texture(base_seed), 0.0, 0.0)
    after = before.copy()
    after[60:180, 100:220] = view(texture(other_seed), 0.0, 0.0)[60:180, 100:220]
    return before, after


@pytest.mark.parametrize("fb_threshold, most_surviving", [(1.0, 0.4), (0.5, 0.2), (1e6, 1.0)])
def test_forward_backward_check_drops_replaced_region(fb_threshold: float, most_surviving: float) -> None:
    tracker = MotionTracker(TracksConfig(max_points=200, fb_threshold_px=fb_threshold))
    before, after = replaced_centre(0, 1)
    start = newest(tracker.update(before, 0.0))
    now = newest(tracker.update(after, 0.1))
    inside = [i for i, (u, v) in start.items() if 115 < u < 205 and 75 < v < 165]
    far = [i for i, (u, v) in start.items() if not (70 < u < 250 and 30 < v < 210)]
    assert len(inside) >= 15 and len(far) >= 40
    survived = sum(i in now for i in inside)
    assert survived <= most_surviving * len(inside)
    if most_surviving == 1.0:  # without the check LK happily "tracks" into unrelated texture
        assert survived == len(inside)
    assert sum(i in now for i in far) >= 0.95 * len(far)  # unaffected texture keeps its tracks
    assert all(np.linalg.norm(now[i] - start[i]) < 0.3 for i in far if i in now)
    assert tracker.stats.seeded == 0  # fewer than half lost: no re-seeding yet


def test_reseeds_after_a_big_change_away_from_live_tracks() -> None:
    config = TracksConfig(max_points=100)
    tracker = MotionTracker(config)
    first = tracker.update(view(texture(0), 0.0, 0.0), 0.0)
    frame = view(texture(5), 0.0, 0.0)
    frame[:, :40] = view(texture(0), 0.0, 0.0)[:, :40]  # a strip survives
    table = tracker.update(frame, 0.1)
    stats = tracker.stats
    assert stats.kept < config.reseed_fraction * config.max_points and stats.seeded > 0
    assert tracker.num_tracks == stats.kept + stats.seeded <= config.max_points
    now = newest(table)
    old_ids = set(first["track_id"].tolist())
    new = [i for i in now if i not in old_ids]
    kept = [i for i in now if i in old_ids]
    assert len(new) == stats.seeded and min(new) > max(old_ids)  # fresh ids, never reused
    assert np.all(table["step"][np.isin(table["track_id"], new)] == 0)
    if kept:
        gaps = np.linalg.norm(np.array([now[i] for i in new])[:, None] - np.array([now[i] for i in kept])[None], axis=2)
        assert gaps.min() >= config.min_distance_px - 1.0


# ------------------------------------------------------------------ 3D
def test_lifter_matches_deprojector_and_projects_back(base_T_camera: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.3, 1.5, (H, W)).astype(np.float32)
    lifter = PixelLifter(INTR, base_T_camera)
    pix = np.column_stack([rng.integers(0, W, 50), rng.integers(0, H, 50)]).astype(np.float64)
    points, flat = Deprojector(INTR, base_T_camera).points(depth)
    expected = points[np.searchsorted(flat, pix[:, 1].astype(int) * W + pix[:, 0].astype(int))]
    np.testing.assert_allclose(lifter.lift(pix, depth), expected, atol=1e-5)
    sub = pix + rng.uniform(-0.45, 0.45, pix.shape)
    np.testing.assert_allclose(project(lifter.lift(sub, depth), INTR, base_T_camera), sub, atol=1e-3)
    depth[:, : W // 2] = 0.0
    depth[0, :] = np.nan
    lifted = lifter.lift(np.array([[10.0, 50.0], [300.0, 0.2], [300.0, 50.0], [-3.0, 5.0]]), depth)
    assert np.isnan(lifted[:2]).all() and np.isfinite(lifted[2]).all() and np.isnan(lifted[3]).all()
    with pytest.raises(ValueError, match="intrinsics"):
        lifter.lift(pix, depth[:, :-1])


def test_tracks_are_lifted_onto_a_flat_plane(base_T_camera: np.ndarray) -> None:
    # depth of the table plane z = 0 in base_link, seen by the camera
    rays = np.stack(np.meshgrid((np.arange(W) - INTR.cx) / INTR.fx, (np.arange(H) - INTR.cy) / INTR.fy), -1)
    rays = np.concatenate([rays, np.ones((H, W, 1))], -1) @ base_T_camera[:3, :3].T
    depth = (-base_T_camera[2, 3] / rays[..., 2]).astype(np.float32)
    assert np.all(depth > 0)
    depth[:, 250:] = 0.0  # no return on the right
    tracker = MotionTracker(TracksConfig(max_points=100), PixelLifter(INTR, base_T_camera))
    base = texture(0)
    for k in range(3):
        table = tracker.update(view(base, 1.0 * k, 0.5 * k), 0.1 * k, depth)
    has_depth = np.rint(table["u"]) < 250
    assert has_depth.sum() > 20 and (~has_depth).sum() > 5
    xyz = np.column_stack([table[n] for n in "xyz"])
    assert np.isnan(xyz[~has_depth]).all()
    assert np.abs(xyz[has_depth, 2]).max() < 3e-3  # nearest-pixel depth on a tilted plane: mm
    uv = np.column_stack([table["u"], table["v"]])
    np.testing.assert_allclose(project(xyz[has_depth], INTR, base_T_camera), uv[has_depth], atol=0.6)
    with pytest.raises(ValueError, match="depth"):
        MotionTracker().update(view(base, 0, 0), 0.0, depth)  # no lifter
    with pytest.raises(ValueError, match="intrinsics"):  # checked before any state changes
        tracker.update(np.ascontiguousarray(view(base, 3, 1.5)[:200]), 0.3, np.ascontiguousarray(depth[:200]))
    before, after = newest(table), newest(tracker.update(view(base, 3.0, 1.5), 0.3, depth))
    assert len(after) >= 0.9 * len(before) and set(after) <= set(before)
    assert all(np.linalg.norm(after[i] - before[i] - (1.0, 0.5)) < 0.3 for i in after)


# ------------------------------------------------------------------ edge cases
def test_all_zero_image_gives_an_empty_table() -> None:
    tracker = MotionTracker()
    zeros = np.zeros((H, W), np.uint8)
    for k in range(2):
        table = tracker.update(zeros, 0.1 * k)
        assert table.dtype == TRACK_DTYPE and len(table) == 0
    assert len(tracker.update(view(texture(0), 0, 0), 0.2)) > 0
    table = tracker.update(zeros, 0.3)  # everything lost, nothing to re-seed
    assert len(table) == 0 and tracker.stats.lost > 0
    arrays = track_arrays(table, horizon=8)
    assert arrays.uv.shape == (0, 8, 2) and arrays.xyz.shape == (0, 8, 3)
    assert track_arrays(empty_table()).track_ids.shape == (0,)


def test_size_change_and_long_gap_restart_but_reversed_stamps_raise() -> None:
    tracker = MotionTracker(TracksConfig(max_points=50, max_gap_s=0.5))
    frame = view(texture(0), 0, 0)
    ids = set(tracker.update(frame, 0.0)["track_id"].tolist())
    table = tracker.update(np.ascontiguousarray(frame[:200, :300]), 0.1)
    assert "size" in tracker.stats.restarted and np.all(table["step"] == 0)
    assert min(table["track_id"]) > max(ids)
    tracker.update(np.ascontiguousarray(frame[:200, :300]), 0.2)
    assert tracker.stats.restarted == "" and tracker.stats.kept > 0
    tracker.update(np.ascontiguousarray(frame[:200, :300]), 1.5)
    assert "since the last frame" in tracker.stats.restarted
    for stamp in (1.5, float("nan")):
        with pytest.raises(ValueError, match="not after"):
            tracker.update(frame, stamp)
    for bad in (np.zeros((0, 5), np.uint8), np.zeros((H, W, 3), np.uint8), np.zeros((H, W), np.float32)):
        with pytest.raises(ValueError, match="uint8"):
            tracker.update(bad, 9.0)


@pytest.mark.parametrize("change", [{"win_size": 4}, {"win_size": 20}, {"horizon": 0}, {"reseed_fraction": 0.0},
                                    {"quality_level": 1.0}, {"fb_threshold_px": 0.0}, {"max_points": 0}])
def test_config_validation(change: dict) -> None:
    with pytest.raises(ValueError):
        TracksConfig(**change)
    assert all(f.metadata.get("description") for f in dataclasses.fields(TracksConfig))


# ------------------------------------------------------------------ messages
def test_table_round_trips_through_pointcloud2() -> None:
    tracker = MotionTracker(TracksConfig(max_points=40))
    base = texture(0)
    for k in range(3):
        table = tracker.update(view(base, k, 0), 0.1 * k)
    msg = pointcloud_to_msg(table, 12.5, "base_link")
    assert [f.name for f in msg.fields] == ["track_id", "step", "u", "v", "x", "y", "z"]
    assert msg.header.frame_id == "base_link" and not msg.is_dense  # NaN x y z: no depth
    back = pointcloud_from_msg(msg)
    assert back.dtype.names == TRACK_DTYPE.names
    for name in ("track_id", "step", "u", "v"):
        np.testing.assert_array_equal(back[name], table[name])
    np.testing.assert_array_equal(np.isnan(back["x"]), np.isnan(table["x"]))


def test_frame_arrays_convert_and_reject() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    mm = np.full((H, W), 750, np.uint16)
    gray, depth = frame_arrays(image_to_msg(rgb, "rgb8"), image_to_msg(mm, "16UC1"), INTR)
    np.testing.assert_array_equal(gray, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    np.testing.assert_array_equal(gray_from_msg(image_to_msg(rgb[..., ::-1].copy(), "bgr8")), gray)
    assert depth.dtype == np.float32 and np.allclose(depth, 0.75)
    metres = np.full((H, W), 0.75, np.float32)
    cases = {
        "no_camera_info": (image_to_msg(rgb, "rgb8"), image_to_msg(metres, "32FC1"), None),
        "unsupported_encoding": (image_to_msg(mm, "16UC1"), image_to_msg(metres, "32FC1"), INTR),
        "size_mismatch": (image_to_msg(rgb[:-2], "rgb8"), image_to_msg(metres[:-2], "32FC1"), INTR),
        "empty_depth": (image_to_msg(rgb, "rgb8"), image_to_msg(np.full((H, W), np.nan, np.float32), "32FC1"), INTR),
    }
    for reason, args in cases.items():
        with pytest.raises(FrameError) as error:
            frame_arrays(*args)
        assert error.value.reason == reason


def test_markers_one_line_strip_per_track_skipping_nan() -> None:
    table = np.zeros(7, TRACK_DTYPE)
    table["track_id"] = [4, 4, 4, 9, 9, 11, 11]
    table["step"] = [0, -1, -2, 0, -1, 0, -1]
    table["x"] = [0.3, 0.2, 0.1, 0.5, np.nan, np.nan, np.nan]
    markers = markers_from_table(table, Header(frame_id="base_link"), 0.003).markers
    assert markers[0].action == Marker.DELETEALL
    assert [m.id for m in markers[1:]] == [4]  # 9 has one finite point, 11 none
    strip = markers[1]
    assert strip.type == Marker.LINE_STRIP and strip.header.frame_id == "base_link"
    assert [p.x for p in strip.points] == pytest.approx([0.1, 0.2, 0.3])  # oldest first
