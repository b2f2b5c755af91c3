"""Benchmark armpilot.perception.tracks.MotionTracker against two baselines, one core.

A 640x480 synthetic texture moves on a circle (radius 20 px, 64 frames per turn,
about 2 px per frame, known exactly). Timed in the same process, with
``cv2.setNumThreads(1)``:

* ``tracker``: ``MotionTracker.update`` (forward-backward LK on up to 200
  tracks, re-seeding, lifting with a depth image, building the table);
* ``redetect``: ``goodFeaturesToTrack`` (200 corners) every frame plus
  forward-only LK with the same window and pyramid (no FB check, no ids);
* ``farneback``: dense Farneback flow (OpenCV's usual parameters).

Frame rates are 1 / the median per-frame time (robust to other processes on
the machine); ``*_mean_ms`` are plain means. Also reports the per-frame
displacement error against the known motion, the cost of a frame where every
track is lost and re-seeded (a scene cut), and of turning one table into a
PointCloud2 and a MarkerArray.

    python bench/tracks.py            # table
    python bench/tracks.py --json     # one JSON object of figures
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from std_msgs.msg import Header

from figures import print_figures  # bench/ is on sys.path when run as a script
from armpilot.perception.geometry import Intrinsics
from armpilot.perception.tracks import MotionTracker, PixelLifter, TracksConfig, track_arrays
from armpilot.ros_nodes.conversions import pointcloud_to_msg
from armpilot.ros_nodes.tracks_node import markers_from_table


H, W, PAD = 480, 640, 40
RADIUS, PERIOD = 20.0, 64


def motion(t: int) -> np.ndarray:
    """Content offset (dx, dy) px of frame ``t``."""
    angle = 2.0 * np.pi * t / PERIOD
    return RADIUS * np.array([np.cos(angle), np.sin(angle)])


def make_frames(seed: int = 0) -> list[np.ndarray]:
    """One turn of the circle: PERIOD (H, W) uint8 frames of a smooth random texture."""
    noise = np.random.default_rng(seed).random((H + 2 * PAD, W + 2 * PAD)).astype(np.float32)
    texture = cv2.GaussianBlur(noise, (0, 0), 2.0)
    texture = (texture - texture.min()) / (texture.max() - texture.min()) * 255.0
    frames = []
    for t in range(PERIOD):
        dx, dy = motion(t)
        warp = np.float32([[1, 0, dx - PAD], [0, 1, dy - PAD]])
        frames.append(np.clip(cv2.warpAffine(texture, warp, (W, H), flags=cv2.INTER_CUBIC) + 0.5, 0, 255)
                      .astype(np.uint8))
    return frames


def step_errors(uv_now: np.ndarray, uv_before: np.ndarray, t: int) -> np.ndarray:
    """|measured - true| displacement (px) of points seen in frames t-1 and t."""
    return np.linalg.norm(uv_now - uv_before - (motion(t) - motion(t - 1)), axis=1)


def _rates(name: str, times: list[float]) -> dict[str, float]:
    return {f"{name}_fps": 1.0 / float(np.median(times)), f"{name}_mean_ms": 1e3 * float(np.mean(times))}


def _lifting_tracker(config: TracksConfig) -> MotionTracker:
    intr = Intrinsics(fx=600.0, fy=600.0, cx=319.5, cy=239.5, width=W, height=H)
    base_T_camera = np.eye(4)
    base_T_camera[2, 3] = 0.8
    return MotionTracker(config, PixelLifter(intr, base_T_camera))


def run_tracker(frames: list[np.ndarray], n: int) -> dict[str, float]:
    tracker = _lifting_tracker(TracksConfig())
    depth = np.full((H, W), 0.8, np.float32)
    tracker.update(frames[0], 0.0, depth)  # seed (not timed)
    alive, seeded_frames, errors, tables, times = [], 0, [], [], []
    for t in range(1, n + 1):
        start = time.perf_counter()
        tables.append(tracker.update(frames[t % PERIOD], t / 30.0, depth))
        times.append(time.perf_counter() - start)
        alive.append(tracker.num_tracks)
        seeded_frames += tracker.stats.seeded > 0
    for t, table in enumerate(tables, start=1):
        arrays = track_arrays(table, 2)
        both = np.isfinite(arrays.uv).all(axis=(1, 2))
        errors.append(step_errors(arrays.uv[both, 1], arrays.uv[both, 0], t))
    errors_px = np.concatenate(errors)
    return {**_rates("tracker", times),
            "tracker_mean_tracks": float(np.mean(alive)), "tracker_reseed_frame_fraction": seeded_frames / n,
            "tracker_step_error_px_median": float(np.median(errors_px)),
            "tracker_step_error_px_p99": float(np.percentile(errors_px, 99)),
            "table_rows": len(tables[-1]), "_table": tables[-1]}


def run_scene_cuts(frames: list[np.ndarray], other: list[np.ndarray], n: int) -> dict[str, float]:
    """Every frame shows the other texture: all tracks lost, 200 re-seeded."""
    tracker = _lifting_tracker(TracksConfig())
    depth = np.full((H, W), 0.8, np.float32)
    times = []
    for t in range(n + 1):
        start = time.perf_counter()
        tracker.update((frames if t % 2 else other)[t % PERIOD], t / 30.0, depth)
        times.append(time.perf_counter() - start)
    return {"scene_cut_ms": 1e3 * float(np.median(times[1:]))}


def run_redetect(frames: list[np.ndarray], n: int) -> dict[str, float]:
    config = TracksConfig()
    lk = {"winSize": (config.win_size, config.win_size), "maxLevel": config.pyramid_levels}
    errors, times = [], []
    for t in range(1, n + 1):
        prev, cur = frames[(t - 1) % PERIOD], frames[t % PERIOD]
        start = time.perf_counter()
        p0 = cv2.goodFeaturesToTrack(prev, config.max_points, config.quality_level, config.min_distance_px)
        p1, status, _ = cv2.calcOpticalFlowPyrLK(prev, cur, p0, None, **lk)
        times.append(time.perf_counter() - start)
        ok = status.ravel() == 1
        errors.append(step_errors(p1.reshape(-1, 2)[ok], p0.reshape(-1, 2)[ok], t))
    errors_px = np.concatenate(errors)
    return {**_rates("redetect", times),
            "redetect_step_error_px_median": float(np.median(errors_px)),
            "redetect_step_error_px_p99": float(np.percentile(errors_px, 99))}


def run_farneback(frames: list[np.ndarray], n: int) -> dict[str, float]:
    times = []
    for t in range(1, n + 1):
        start = time.perf_counter()
        cv2.calcOpticalFlowFarneback(frames[t - 1], frames[t], None, 0.5, 3, 15, 3, 5, 1.2, 0)
        times.append(time.perf_counter() - start)
    return _rates("farneback", times)


def run_messages(table: np.ndarray, repeats: int = 20) -> dict[str, float]:
    header = Header(frame_id="base_link")
    start = time.perf_counter()
    for _ in range(repeats):
        pointcloud_to_msg(table, 0.0, "base_link")
    cloud = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        markers_from_table(table, header, 0.003)
    markers = time.perf_counter() - start
    return {"cloud_msg_ms": 1e3 * cloud / repeats, "markers_msg_ms": 1e3 * markers / repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--frames", type=int, default=300, help="frames timed for tracker and redetect")
    parser.add_argument("--farneback-frames", type=int, default=10, help="frames timed for Farneback")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    frames = make_frames()
    figures: dict[str, float] = {"width": W, "height": H, "max_points": TracksConfig().max_points,
                                 "opencv_threads": cv2.getNumThreads()}
    figures.update(run_tracker(frames, args.frames))
    table = figures.pop("_table")
    figures.update(run_scene_cuts(frames, make_frames(seed=1), 20))
    figures.update(run_redetect(frames, args.frames))
    figures.update(run_farneback(frames, min(args.farneback_frames, PERIOD - 1)))
    figures.update(run_messages(table))
    figures["speedup_vs_redetect"] = figures["tracker_fps"] / figures["redetect_fps"]
    figures["speedup_vs_farneback"] = figures["tracker_fps"] / figures["farneback_fps"]
    print_figures(figures, args.json)


if __name__ == "__main__":
    main()
