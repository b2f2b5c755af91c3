"""Motion tracks: short-horizon 2D keypoint tracks lifted to 3D (pure, no rclpy).

The Motion Tracks representation: image keypoints followed over the last few
frames, each observation also lifted to ``base_link`` with the aligned depth.
Keypoints are Shi-Tomasi corners tracked by pyramidal Lucas-Kanade with a
forward-backward check; corners are re-seeded away from live tracks when too
many tracks have died.

Shapes: ``gray`` (H, W) uint8; ``depth_m`` (H, W) float32 metres, 0 or NaN for
"no return"; a ``TrackTable`` is a structured (R,) array of ``TRACK_DTYPE``
with one row per (track, step), step 0 the newest observation, -1 the one
before, down to ``1 - horizon``. Pixel coordinates: u right, v down, pixel
centres at integers (like ``geometry.Deprojector``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np

from armpilot.fields import describe as _describe
from armpilot.perception.geometry import Intrinsics

TRACK_DTYPE = np.dtype([("track_id", "<u4"), ("step", "<i4"), ("u", "<f4"), ("v", "<f4"),
                        ("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
TrackTable = np.ndarray
"""Structured (R,) array of ``TRACK_DTYPE``: one row per (track, step)."""


@dataclass(frozen=True)
class TracksConfig:
    """Tracking, forward-backward check and re-seeding settings. Lengths in pixels."""

    max_points: int = field(default=200, metadata=_describe("most tracks alive at once"))
    horizon: int = field(default=8, metadata=_describe("observations kept per track (steps 0 .. 1-horizon)"))
    fb_threshold_px: float = field(
        default=1.0, metadata=_describe("largest forward-backward LK error of a kept track, px"))
    win_size: int = field(default=21, metadata=_describe("Lucas-Kanade window edge, px (odd, >= 5)"))
    pyramid_levels: int = field(default=3, metadata=_describe("Lucas-Kanade pyramid levels above full size"))
    lk_iterations: int = field(default=30, metadata=_describe("Lucas-Kanade iterations per level, at most"))
    lk_epsilon_px: float = field(default=0.01, metadata=_describe("Lucas-Kanade convergence step, px"))
    reseed_fraction: float = field(
        default=0.5, metadata=_describe("detect new corners when alive tracks < fraction * max_points (0-1]"))
    min_distance_px: float = field(
        default=8.0, metadata=_describe("spacing of new corners from each other and from live tracks, px"))
    quality_level: float = field(
        default=0.01, metadata=_describe("Shi-Tomasi corner score relative to the frame's best corner (0-1)"))
    block_size: int = field(default=7, metadata=_describe("Shi-Tomasi corner window edge, px"))
    edge_margin_px: float = field(default=10.0, metadata=_describe(
        "tracks and new corners closer than this to the image edge are dropped, px (win_size/2 keeps LK inside)"))
    max_gap_s: float = field(
        default=0.5, metadata=_describe("a longer gap between frames drops all tracks (restart), s"))

    def __post_init__(self) -> None:
        if self.max_points < 1 or self.horizon < 1:
            raise ValueError("parameters 'max_points' and 'horizon' must be >= 1")
        if self.win_size < 5 or self.win_size % 2 == 0:
            raise ValueError(f"parameter 'win_size' must be odd and >= 5, got {self.win_size}")
        if self.pyramid_levels < 0 or self.lk_iterations < 1 or self.block_size < 3:
            raise ValueError("need pyramid_levels >= 0, lk_iterations >= 1 and block_size >= 3")
        if not 0.0 < self.reseed_fraction <= 1.0:
            raise ValueError(f"parameter 'reseed_fraction' must be in (0, 1], got {self.reseed_fraction}")
        if not 0.0 < self.quality_level < 1.0:
            raise ValueError(f"parameter 'quality_level' must be in (0, 1), got {self.quality_level}")
        for name in ("fb_threshold_px", "lk_epsilon_px", "min_distance_px", "max_gap_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"parameter '{name}' must be > 0, got {getattr(self, name)}")
        if self.edge_margin_px < 0:
            raise ValueError("parameter 'edge_margin_px' must be >= 0")


@dataclass(frozen=True)
class TrackStats:
    """What the last ``update`` did: tracks kept, lost (LK failure, FB error, edge), seeded."""

    kept: int = 0
    lost: int = 0
    seeded: int = 0
    restarted: str = ""  # why all tracks were dropped first ("" = they were not)


class TrackArrays(NamedTuple):
    """A table as dense arrays; time index t is step ``t - (T - 1)`` (oldest first, newest last).

    ``track_ids`` (N,) uint32 sorted; ``uv`` (N, T, 2) px; ``xyz`` (N, T, 3) m;
    NaN where a track has no observation (younger than T) or no depth.
    """

    track_ids: np.ndarray
    uv: np.ndarray
    xyz: np.ndarray


def empty_table() -> TrackTable:
    """A table without rows."""
    return np.empty(0, TRACK_DTYPE)


def track_arrays(table: TrackTable, horizon: int | None = None) -> TrackArrays:
    """Turns a table into (N, T, 2) pixel and (N, T, 3) base-frame arrays.

    Args:
        table: rows of ``TRACK_DTYPE``.
        horizon: T; default the longest history in the table. Older rows are dropped.
    """
    steps = table["step"].astype(np.int64)
    if horizon is None:
        horizon = int(1 - steps.min()) if len(table) else 1
    table, steps = table[steps > -horizon], steps[steps > -horizon]
    ids, track = np.unique(table["track_id"], return_inverse=True)
    t = steps + horizon - 1
    uv = np.full((len(ids), horizon, 2), np.nan, np.float32)
    xyz = np.full((len(ids), horizon, 3), np.nan, np.float32)
    for i, name in enumerate("uv"):
        uv[track, t, i] = table[name]
    for i, name in enumerate("xyz"):
        xyz[track, t, i] = table[name]
    return TrackArrays(ids, uv, xyz)


class PixelLifter:
    """Sub-pixel image points + aligned depth -> ``base_link`` points.

    Depth is read at the nearest pixel (no interpolation across depth edges);
    the ray goes through the sub-pixel point, so at integer pixels the result
    equals ``Deprojector`` and ``geometry.project`` maps it back to (u, v).
    """

    def __init__(self, intrinsics: Intrinsics, base_T_camera: np.ndarray) -> None:
        self.intrinsics = intrinsics
        self.rotation = np.asarray(base_T_camera[:3, :3], np.float64)
        self.origin = np.asarray(base_T_camera[:3, 3], np.float64)

    def lift(self, uv: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
        """Base-frame points (N, 3) float32 of pixels ``uv`` (N, 2); NaN rows where depth is missing.

        Raises:
            ValueError: depth size differs from the intrinsics' image size.
        """
        intr = self.intrinsics
        if depth_m.shape != (intr.height, intr.width):
            raise ValueError(f"depth image is {depth_m.shape[1]}x{depth_m.shape[0]}, "
                             f"camera intrinsics are for {intr.width}x{intr.height}")
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        col = np.rint(uv[:, 0]).astype(np.int64)
        row = np.rint(uv[:, 1]).astype(np.int64)
        inside = (col >= 0) & (col < intr.width) & (row >= 0) & (row < intr.height)
        z = np.full(len(uv), np.nan)
        z[inside] = depth_m[row[inside], col[inside]]
        z[~(z > 0)] = np.nan  # 0, negative and NaN: no return
        rays = np.column_stack([(uv[:, 0] - intr.cx) / intr.fx, (uv[:, 1] - intr.cy) / intr.fy,
                                np.ones(len(uv))])
        return (self.origin + z[:, None] * (rays @ self.rotation.T)).astype(np.float32)


class MotionTracker:
    """KLT keypoint tracks with a forward-backward check, stable ids and a short history.

    Call ``update`` once per frame with increasing stamps. History is kept as
    (N, horizon, ...) arrays with index 0 the newest observation.
    """

    def __init__(self, config: TracksConfig = TracksConfig(), lifter: PixelLifter | None = None) -> None:
        self.config = config
        self.lifter = lifter
        self.stats = TrackStats()
        self._next_id = 0
        self._lk = {"winSize": (config.win_size, config.win_size), "maxLevel": config.pyramid_levels,
                    "criteria": (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS,
                                 config.lk_iterations, config.lk_epsilon_px)}
        self.reset()

    def reset(self) -> None:
        """Drops every track and the previous frame; ids keep counting up (never reused)."""
        horizon = self.config.horizon
        self._prev: np.ndarray | None = None
        self._stamp = float("-inf")
        self._ids = np.empty(0, np.uint32)
        self._uv = np.empty((0, horizon, 2), np.float32)
        self._xyz = np.empty((0, horizon, 3), np.float32)
        self._age = np.empty(0, np.int32)

    @property
    def num_tracks(self) -> int:
        """Tracks alive after the last update."""
        return len(self._ids)

    def update(self, gray: np.ndarray, stamp: float, depth_m: np.ndarray | None = None) -> TrackTable:
        """Tracks the live points into ``gray``, re-seeds if needed and returns the table.

        Args:
            gray: (H, W) uint8 image. A different size than the last frame restarts.
            stamp: frame time, s; must increase. A gap > ``max_gap_s`` restarts.
            depth_m: (H, W) aligned depth, m, or None (x, y, z are then NaN).

        Raises:
            ValueError: wrong image shape/dtype, an empty image, a stamp not after
                the last one, or depth without a lifter / of another size.
        """
        gray = np.asarray(gray)
        if gray.ndim != 2 or gray.dtype != np.uint8 or gray.size == 0:
            raise ValueError(f"need a non-empty (H, W) uint8 image, got {gray.shape} {gray.dtype}")
        if depth_m is not None:
            lifter_size = None if self.lifter is None else (self.lifter.intrinsics.height, self.lifter.intrinsics.width)
            if depth_m.shape != gray.shape or lifter_size != gray.shape:
                raise ValueError(f"depth needs a lifter (intrinsics) of the image's size: image {gray.shape}, "
                                 f"depth {depth_m.shape}, intrinsics {lifter_size}")
        if not np.isfinite(stamp) or stamp <= self._stamp:
            raise ValueError(f"frame stamp {stamp:.6f} s is not after the last frame's {self._stamp:.6f} s")
        restarted = ""
        if self._prev is not None and self._prev.shape != gray.shape:
            restarted = f"image size changed from {self._prev.shape} to {gray.shape}"
        elif self._prev is not None and stamp - self._stamp > self.config.max_gap_s:
            restarted = f"{stamp - self._stamp:.3f} s since the last frame"
        if restarted:
            self.reset()
        gray = np.array(gray, order="C", copy=True)  # kept as the next frame's previous image
        lost = self._track(gray) if self._prev is not None else 0
        kept = len(self._ids)
        seeded = self._reseed(gray)
        if len(self._ids):
            self._xyz[:, 0] = np.nan if depth_m is None else self.lifter.lift(self._uv[:, 0], depth_m)
        self._prev, self._stamp = gray, float(stamp)
        self.stats = TrackStats(kept, lost, seeded, restarted)
        return self.table()

    def _track(self, gray: np.ndarray) -> int:
        """LK forward then backward; keeps consistent tracks inside the image. Returns tracks lost."""
        n = len(self._ids)
        if n == 0:
            return 0
        p0 = np.ascontiguousarray(self._uv[:, 0]).reshape(-1, 1, 2)
        p1, status, _ = cv2.calcOpticalFlowPyrLK(self._prev, gray, p0, None, **self._lk)
        p1 = p1.reshape(-1, 2)
        h, w = gray.shape
        m = self.config.edge_margin_px
        ok = (status.ravel() == 1) & np.isfinite(p1).all(axis=1)
        ok &= (p1[:, 0] >= m) & (p1[:, 0] <= w - 1 - m) & (p1[:, 1] >= m) & (p1[:, 1] <= h - 1 - m)
        idx = np.flatnonzero(ok)
        if len(idx):
            back, status_b, _ = cv2.calcOpticalFlowPyrLK(gray, self._prev, p1[idx].reshape(-1, 1, 2),
                                                         None, **self._lk)
            fb = np.linalg.norm(back.reshape(-1, 2) - p0[idx, 0], axis=1)
            idx = idx[(status_b.ravel() == 1) & (fb <= self.config.fb_threshold_px)]
        uv, xyz = self._uv[idx], self._xyz[idx]
        uv[:, 1:], xyz[:, 1:] = uv[:, :-1].copy(), xyz[:, :-1].copy()
        uv[:, 0] = p1[idx]
        self._ids, self._uv, self._xyz = self._ids[idx], uv, xyz
        self._age = np.minimum(self._age[idx] + 1, self.config.horizon)
        return n - len(idx)

    def _reseed(self, gray: np.ndarray) -> int:
        """Detects corners away from live tracks when too few are alive. Returns tracks added."""
        cfg = self.config
        alive = len(self._ids)
        if alive >= cfg.reseed_fraction * cfg.max_points or alive >= cfg.max_points:
            return 0
        mask = np.full(gray.shape, 255, np.uint8)
        radius = int(np.ceil(cfg.min_distance_px))
        for u, v in np.rint(self._uv[:, 0]).astype(int):
            cv2.circle(mask, (int(u), int(v)), radius, 0, -1)
        corners = cv2.goodFeaturesToTrack(gray, cfg.max_points - alive, cfg.quality_level,
                                          cfg.min_distance_px, mask=mask, blockSize=cfg.block_size)
        if corners is None:
            return 0
        new = corners.reshape(-1, 2).astype(np.float32)
        h, w = gray.shape
        m = cfg.edge_margin_px
        new = new[(new[:, 0] >= m) & (new[:, 0] <= w - 1 - m) & (new[:, 1] >= m) & (new[:, 1] <= h - 1 - m)]
        k = len(new)
        uv = np.full((k, cfg.horizon, 2), np.nan, np.float32)
        uv[:, 0] = new
        ids = (self._next_id + np.arange(k, dtype=np.int64)) % 2**32
        self._next_id = (self._next_id + k) % 2**32
        self._ids = np.concatenate([self._ids, ids.astype(np.uint32)])
        self._uv = np.concatenate([self._uv, uv])
        self._xyz = np.concatenate([self._xyz, np.full((k, cfg.horizon, 3), np.nan, np.float32)])
        self._age = np.concatenate([self._age, np.ones(k, np.int32)])
        return k

    def table(self) -> TrackTable:
        """The live tracks' observations, one row per (track, step), newest step first per track."""
        track, back = np.nonzero(np.arange(self.config.horizon)[None, :] < self._age[:, None])
        table = np.empty(len(track), TRACK_DTYPE)
        table["track_id"] = self._ids[track]
        table["step"] = -back
        for i, name in enumerate("uv"):
            table[name] = self._uv[track, back, i]
        for i, name in enumerate("xyz"):
            table[name] = self._xyz[track, back, i]
        return table
