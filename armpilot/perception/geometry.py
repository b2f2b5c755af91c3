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


def camera_frame_name(arm: ArmModel, frame: str = CAMERA_OPTICAL_FRAME) -> str:
    """The URDF frame the camera is at: the profile's ``camera_frame``, else (unless the profile gives
    ``camera_extrinsics``) the node's ``frame`` where the URDF has it; "" for the profile's extrinsics.

    Raises:
        ValueError: when none of them is known (name the frame or give camera_extrinsics in the profile).
    """
    profile = arm.profile
    if profile.camera_frame and arm.model.existFrame(profile.camera_frame):
        return profile.camera_frame
    if profile.camera_extrinsics is not None:
        return ""
    if frame and arm.model.existFrame(frame):
        return frame
    raise ValueError(f"robot '{profile.name}': camera frame '{profile.camera_frame or frame}' is not in its URDF and "
                     f"its profile gives no camera_extrinsics")


def camera_pose_from_urdf(arm: ArmModel, frame: str = CAMERA_OPTICAL_FRAME) -> np.ndarray:
    """4x4 base_T_camera_optical with the arm at home, at ``camera_frame_name``'s frame or the profile's extrinsics.

    Raises:
        ValueError: when none of them is known (name the frame or give camera_extrinsics in the profile).
    """
    name = camera_frame_name(arm, frame)
    return arm.frame_pose(name) if name else arm.profile.camera_extrinsics.copy()


@dataclass(frozen=True)
class CameraMount:
    """Where the camera's optical frame is: fixed in the base frame (a camera on a tripod or the torso), or on a
    link the arm's joints move (a wrist camera), whose pose each frame takes from the joint state at its stamp."""

    arm: ArmModel
    frame: str  # the URDF frame (a camera on the arm), or "" (the fixed pose ``home_pose``)
    home_pose: np.ndarray  # 4x4 base_T_camera_optical with the arm at home
    moves: bool  # whether a controlled joint moves it

    def pose(self, q: np.ndarray | None = None) -> np.ndarray:
        """4x4 base_T_camera_optical with the controlled joints at ``q`` (the profile's order; None: home)."""
        if not self.moves or q is None:
            return self.home_pose.copy()
        return self.arm.frame_pose(self.frame, q)


def camera_mount(arm: ArmModel, frame: str = CAMERA_OPTICAL_FRAME) -> CameraMount:
    """The mount of the camera at ``camera_frame_name``; it moves when turning any controlled joint by 0.1
    rad (or m) from home moves the frame (mimic and passive joints follow as they do everywhere)."""
    home_pose = camera_pose_from_urdf(arm, frame)
    name = camera_frame_name(arm, frame)
    if not name:
        return CameraMount(arm, "", home_pose, False)
    home = np.asarray(arm.profile.home, float)
    moves = any(not np.allclose(arm.frame_pose(name, home + 0.1 * np.eye(len(home))[k]), home_pose, atol=1e-9)
                for k in range(len(home)))
    return CameraMount(arm, name, home_pose, moves)


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
        self._rays = np.ascontiguousarray(_pixel_rays(intrinsics)[::stride, ::stride].reshape(-1, 3))  # (N, 3)
        self.set_pose(base_T_camera)

    def set_pose(self, base_T_camera: np.ndarray) -> None:
        """Place the camera (4x4 base_T_camera_optical): a camera on the arm moves between frames."""
        rotation = np.asarray(base_T_camera[:3, :3], np.float32)
        self.base_rays = np.ascontiguousarray((self._rays @ rotation.T).T)  # (3, N)
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
