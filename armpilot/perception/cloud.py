"""Depth -> filtered base-frame cloud -> objects on the table (pure numpy/scipy).

Pipeline per frame: deproject (precomputed rays) -> workspace crop -> voxel
grid by ``bincount`` (no sorting) -> arm self-filter -> table plane by
RANSAC -> 26-connected clustering on the voxel grid -> per-object pose from
the full-resolution points of each cluster (footprint rectangle for x, y, yaw;
vertical extent for z and height).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
from scipy import ndimage

from armpilot.perception.config import REFERENCE_REACH, PerceptionConfig
from armpilot.perception.geometry import Deprojector, Intrinsics

if TYPE_CHECKING:  # pinocchio stays out of the pure cloud pipeline
    from armpilot.perception.self_filter import PlacedBoxes

#: Points used to score RANSAC hypotheses (the winner is refined on all points).
SCORE_SAMPLE = 800
CLOUD_DTYPE = np.dtype([("x", np.float32), ("y", np.float32), ("z", np.float32), ("rgb", np.uint32)])


@dataclass(frozen=True)
class DetectedObject:
    """An object: centre (3,) m, yaw about z (rad, in [-pi/4, pi/4) for boxes), size (3,) m
    along its own x, y and z, mean colour (3,) in 0..1, number of points."""

    position: np.ndarray
    yaw: float
    size: np.ndarray
    color: np.ndarray
    num_points: int


@dataclass(frozen=True)
class PerceptionResult:
    """One frame's output: filtered cloud (structured CLOUD_DTYPE), objects (largest first),
    table plane (a, b, c, d) with a x + b y + c z + d = 0 (or None when not found)."""

    cloud: np.ndarray
    objects: list[DetectedObject]
    plane: np.ndarray | None


def pack_rgb(color: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 or float 0..255 -> (N,) uint32 0x00RRGGBB (PCL's packed rgb)."""
    c = np.clip(color, 0, 255).astype(np.uint32)
    return (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


def fit_plane_ransac(points: np.ndarray, threshold: float, iterations: int, max_tilt_deg: float,
                     rng: np.random.Generator) -> np.ndarray | None:
    """Best plane (a, b, c, d), normal up, through (N, 3) points; None if nothing near-horizontal fits."""
    if len(points) < 3:
        return None
    picks = rng.integers(0, len(points), size=(iterations, 3))
    p0, p1, p2 = points[picks[:, 0]], points[picks[:, 1]], points[picks[:, 2]]
    normals = np.cross(p1 - p0, p2 - p0)
    norms = np.linalg.norm(normals, axis=1)
    ok = norms > 1e-9
    normals[ok] /= norms[ok, None]
    normals *= np.where(normals[:, 2:3] < 0, -1.0, 1.0)
    ok &= normals[:, 2] >= np.cos(np.deg2rad(max_tilt_deg))
    if not np.any(ok):
        return None
    normals, p0 = normals[ok], p0[ok]
    d = -np.einsum("ij,ij->i", normals, p0)
    # score hypotheses on a subset, then take every inlier of the winner
    sample = points if len(points) <= SCORE_SAMPLE else points[rng.integers(0, len(points), SCORE_SAMPLE)]
    best = int(np.argmax((np.abs(sample @ normals.T + d) < threshold).sum(axis=0)))
    support = points[np.abs(points @ normals[best] + d[best]) < threshold]
    if len(support) < 3:
        return None
    centre = support.mean(axis=0)
    normal = np.linalg.svd(support - centre, full_matrices=False)[2][-1]
    normal = normal if normal[2] >= 0 else -normal
    return np.append(normal, -normal @ centre)


def describe_object(points: np.ndarray, colors: np.ndarray | None, plane: np.ndarray | None,
                    touch_distance: float) -> DetectedObject:
    """Pose and size of one cluster's (N, 3) points: footprint rectangle + vertical extent.

    Points near the table were cut with the plane, so an object whose lowest
    point is within ``touch_distance`` of the plane is taken to stand on it.
    """
    (cx, cy), (w, h), angle = cv2.minAreaRect(points[:, :2].astype(np.float32))
    yaw = float(np.deg2rad(angle))
    yaw = (yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4
    z_low, z_high = np.percentile(points[:, 2], [1, 99])
    if plane is not None and abs(plane[2]) > 1e-6:
        table_z = -(plane[0] * cx + plane[1] * cy + plane[3]) / plane[2]
        if z_low - table_z < touch_distance:
            z_low = table_z
    color = colors.mean(axis=0) / 255.0 if colors is not None and len(colors) else np.full(3, 0.5)
    return DetectedObject(np.array([cx, cy, (z_low + z_high) / 2]), yaw, np.array([w, h, z_high - z_low]),
                          color, len(points))


class CloudPipeline:
    """Turns depth (+ colour) frames of one camera (fixed, or placed per frame) into a filtered cloud and objects."""

    def __init__(self, config: PerceptionConfig, intrinsics: Intrinsics, base_T_camera: np.ndarray,
                 seed: int = 0, reach: float = REFERENCE_REACH, table_z: float = 0.0) -> None:
        """``reach`` and ``table_z``: the robot profile's, sizing the crop box where ``config`` gives none."""
        self.config = config
        self.deprojector = Deprojector(intrinsics, base_T_camera, config.pixel_stride)
        low, high = config.box(reach, table_z)
        self.low = np.asarray(low, np.float32)
        self.high = np.asarray(high, np.float32)
        self.shape = tuple(int(np.ceil(s)) for s in (self.high - self.low) / config.voxel_size)
        self._strides = (self.shape[1] * self.shape[2], self.shape[2], 1)
        self.rng = np.random.default_rng(seed)

    def process(self, depth_m: np.ndarray, color: np.ndarray | None = None,
                robot: PlacedBoxes | None = None, base_T_camera: np.ndarray | None = None) -> PerceptionResult:
        """Run the pipeline on one frame.

        Args:
            depth_m: (H, W) depth in metres (0 / NaN = no return).
            color: (H, W, 3) uint8 RGB aligned with the depth, or None.
            robot: the arm's collision boxes at this frame's joint positions (``RobotBoxes``), or None:
                voxels inside them, grown by ``robot_padding``, are the arm's and left out.
            base_T_camera: 4x4 camera pose at this frame (a camera on the arm), or None: where it was.
        """
        cfg = self.config
        if base_T_camera is not None:
            self.deprojector.set_pose(base_T_camera)
        x, y, z, depth = self.deprojector.xyz(depth_m)
        lo, hi = self.low, self.high
        inside = (depth > 0) & (x >= lo[0]) & (x < hi[0]) & (y >= lo[1]) & (y < hi[1]) & (z >= lo[2]) & (z < hi[2])
        pixels = np.flatnonzero(inside)
        px, py, pz = x[pixels], y[pixels], z[pixels]
        points = np.column_stack([px, py, pz])
        colors = None
        if color is not None:
            strided = color[:: cfg.pixel_stride, :: cfg.pixel_stride].reshape(-1, 3)
            colors = np.take(strided, pixels, axis=0).astype(np.float32)
        flat = self._voxel_index(px, py, pz)
        occupied, inverse = np.unique(flat, return_inverse=True) if len(flat) < 20000 else self._unique(flat)
        n = np.bincount(inverse, minlength=len(occupied)).astype(np.float32)[:, None]
        centroids = np.column_stack([np.bincount(inverse, points[:, k], len(occupied)) for k in range(3)]) / n
        keep = np.ones(len(occupied), bool)
        if robot is not None and len(robot):
            keep &= ~robot.contains(centroids, cfg.robot_padding)
        plane = fit_plane_ransac(centroids[keep], cfg.plane_distance, cfg.ransac_iterations,
                                 cfg.plane_max_tilt_deg, self.rng)
        if plane is not None:
            keep &= centroids @ plane[:3] + plane[3] > cfg.plane_distance
        objects = self._cluster(occupied, keep, inverse, points, colors, plane)
        cloud = np.empty(int(keep.sum()), CLOUD_DTYPE)
        for k, axis in enumerate("xyz"):
            cloud[axis] = centroids[keep, k]
        if colors is not None:
            rgb = np.column_stack([np.bincount(inverse, colors[:, k], len(occupied)) for k in range(3)]) / n
            cloud["rgb"] = pack_rgb(rgb[keep])
        else:
            cloud["rgb"] = 0x808080
        return PerceptionResult(cloud, objects, plane)

    def _voxel_index(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Flat voxel index (N,) of points (already inside the workspace) in the grid."""
        inverse_size = np.float32(1.0 / self.config.voxel_size)
        flat = np.zeros(len(x), np.int64)
        for values, low, cells, stride in zip((x, y, z), self.low, self.shape, self._strides):
            index = ((values - low) * inverse_size).astype(np.int64)
            np.minimum(index, cells - 1, out=index)  # float rounding at the upper edge
            flat += index * stride
        return flat

    def _unique(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``np.unique(flat, return_inverse=True)`` by counting over the grid (no sort)."""
        size = int(np.prod(self.shape))
        present = np.bincount(flat, minlength=size) > 0
        occupied = np.flatnonzero(present)
        lookup = np.empty(size, np.int64)
        lookup[occupied] = np.arange(len(occupied))
        return occupied, lookup[flat]

    def _cluster(self, occupied: np.ndarray, keep: np.ndarray, inverse: np.ndarray, points: np.ndarray,
                 colors: np.ndarray | None, plane: np.ndarray | None) -> list[DetectedObject]:
        """26-connected components of the kept voxels, labelled on their bounding box only."""
        voxels = occupied[keep]
        if len(voxels) == 0:
            return []
        nx, ny, nz = self.shape
        cells = np.column_stack([voxels // (ny * nz), (voxels // nz) % ny, voxels % nz])
        low = cells.min(axis=0)
        box = np.zeros(tuple(cells.max(axis=0) - low + 1), bool)
        box[tuple((cells - low).T)] = True
        labels, count = ndimage.label(box, structure=np.ones((3, 3, 3), bool))
        voxel_label = np.zeros(len(occupied), np.int64)
        voxel_label[keep] = labels[tuple((cells - low).T)]
        sizes = np.bincount(voxel_label[keep], minlength=count + 1)
        point_labels = voxel_label[inverse]
        touch = self.config.plane_distance + self.config.voxel_size
        objects = []
        for label in range(1, count + 1):
            if sizes[label] < self.config.min_cluster_voxels:
                continue
            members = point_labels == label
            objects.append(describe_object(points[members], None if colors is None else colors[members], plane, touch))
        return sorted(objects, key=lambda o: -o.num_points)
