"""Pinhole camera geometry: intrinsics, extrinsics and vectorised deprojection.

Depth images are (H, W) in metres (float32) with 0 or NaN for "no return";
points are (N, 3) float32 in metres. ``base_T_camera`` is the 4x4 pose of the
optical frame (z forward, x right, y down) in ``base_link``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from armpilot.robot import CAMERA_OPTICAL_FRAME, ArmModel


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics: focal lengths and principal point (px), image size (px)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0 and self.width > 0 and self.height > 0):
            raise ValueError(f"invalid intrinsics {self}: focal lengths and size must be > 0")


def camera_pose_from_urdf(arm: ArmModel, frame: str = CAMERA_OPTICAL_FRAME) -> np.ndarray:
    """4x4 base_T_camera_optical: ``frame`` where the URDF has it, else the profile's camera frame or extrinsics.

    Raises:
        ValueError: when none of them is known (name the frame or give camera_extrinsics in the profile).
    """
    profile = arm.profile
    for name in (frame, profile.camera_frame):
        if name and arm.model.existFrame(name):
            return arm.frame_pose(name)
    if profile.camera_extrinsics is not None:
        return profile.camera_extrinsics.copy()
    raise ValueError(f"robot '{profile.name}': camera frame '{frame}' is not in its URDF and its profile gives no "
                     f"camera_frame or camera_extrinsics")


@lru_cache(maxsize=8)
def _pixel_rays(intr: Intrinsics) -> np.ndarray:
    """(H, W, 3) float32 camera-frame rays with z = 1 for every pixel."""
    u = (np.arange(intr.width, dtype=np.float32) - intr.cx) / intr.fx
    v = (np.arange(intr.height, dtype=np.float32) - intr.cy) / intr.fy
    rays = np.empty((intr.height, intr.width, 3), np.float32)
    rays[..., 0] = u[None, :]
    rays[..., 1] = v[:, None]
    rays[..., 2] = 1.0
    return rays


class Deprojector:
    """Depth image -> base-frame points, with the per-pixel rays precomputed.

    A pixel's point is ``t + depth * (R @ ray)``: three multiply-adds per
    pixel, no per-frame trigonometry. Arrays are kept per axis (structure of
    arrays) so crops are contiguous comparisons.
    """

    def __init__(self, intrinsics: Intrinsics, base_T_camera: np.ndarray, stride: int = 1) -> None:
        self.intrinsics = intrinsics
        self.stride = stride
        rays = _pixel_rays(intrinsics)[::stride, ::stride]
        rotation = np.asarray(base_T_camera[:3, :3], np.float32)
        self.base_rays = np.ascontiguousarray((rays.reshape(-1, 3) @ rotation.T).T)  # (3, N)
        self.origin = np.asarray(base_T_camera[:3, 3], np.float32)

    def xyz(self, depth_m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Base-frame x, y, z (N,) of every (strided) pixel, and the depth (N,) (0/NaN = invalid)."""
        depth = np.ascontiguousarray(depth_m[:: self.stride, :: self.stride], dtype=np.float32).reshape(-1)
        x, y, z = (self.base_rays[k] * depth + self.origin[k] for k in range(3))
        return x, y, z, depth

    def points(self, depth_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Base-frame points (N, 3) of the valid pixels and their flat (strided) pixel indices (N,)."""
        x, y, z, depth = self.xyz(depth_m)
        valid = np.flatnonzero(depth > 0)  # NaN compares False: dropped too
        return np.column_stack([x[valid], y[valid], z[valid]]), valid


def project(points_base: np.ndarray, intrinsics: Intrinsics, base_T_camera: np.ndarray) -> np.ndarray:
    """Pixel coordinates (N, 2) of base-frame points (N, 3) (u right, v down)."""
    camera_T_base = np.linalg.inv(base_T_camera)
    cam = points_base @ camera_T_base[:3, :3].T + camera_T_base[:3, 3]
    return np.column_stack([intrinsics.fx * cam[:, 0] / cam[:, 2] + intrinsics.cx,
                            intrinsics.fy * cam[:, 1] / cam[:, 2] + intrinsics.cy])
