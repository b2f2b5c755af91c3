"""Analytic depth images of a table plane and yawed boxes, by vectorised ray casting."""

from __future__ import annotations

import numpy as np

from armpilot.perception.geometry import Intrinsics


def render_depth(intrinsics: Intrinsics, base_T_camera: np.ndarray, boxes: list[tuple[np.ndarray, float, np.ndarray]],
                 table_z: float = 0.0) -> np.ndarray:
    """(H, W) float32 depth (m along the optical axis) of the plane z = table_z and boxes.

    Args:
        boxes: (centre (3,), yaw rad, half extents (3,)) per box, in base_link.
    """
    u = (np.arange(intrinsics.width) - intrinsics.cx) / intrinsics.fx
    v = (np.arange(intrinsics.height) - intrinsics.cy) / intrinsics.fy
    rays_cam = np.stack(list(np.meshgrid(u, v)) + [np.ones((intrinsics.height, intrinsics.width))], axis=-1)
    rotation, origin = base_T_camera[:3, :3], base_T_camera[:3, 3]
    rays = rays_cam.reshape(-1, 3) @ rotation.T  # base frame, camera z = 1 per ray: t is the depth
    best = np.full(len(rays), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_plane = (table_z - origin[2]) / rays[:, 2]
    best = np.where(t_plane > 0, t_plane, best)
    for centre, yaw, half in boxes:
        c, s = np.cos(yaw), np.sin(yaw)
        to_box = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1.0]])
        o = to_box @ (origin - centre)
        d = rays @ to_box.T
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (-half - o) / d, (half - o) / d
        t_near = np.nanmax(np.minimum(t1, t2), axis=1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=1)
        hit = (t_near <= t_far) & (t_near > 0)
        best = np.where(hit & (t_near < best), t_near, best)
    depth = np.where(np.isfinite(best), best, 0.0)
    return depth.reshape(intrinsics.height, intrinsics.width).astype(np.float32)
