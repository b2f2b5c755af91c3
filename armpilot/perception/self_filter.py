"""Spheres covering the arm at a joint configuration, to cut it out of the cloud.

Built once from the robot profile's URDF collision geometry (pinocchio): each
link geometry's local bounding box is covered by spheres along its longest
axis, padded by ``margin``; at run time they follow the geometry placements.
Works for any arm without per-link tuning.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pinocchio as pin

from armpilot.robot import ArmModel

#: Padding around each link's box, m (depth noise, the link's motion within a frame).
MARGIN = 0.015


def _box_spheres(low: np.ndarray, high: np.ndarray, margin: float) -> tuple[np.ndarray, float]:
    """Centres (k, 3) in the box's frame and one radius covering the box [low, high] (+ margin)."""
    centre, half = (low + high) / 2, (high - low) / 2
    axis = int(np.argmax(half))
    rest = np.delete(half, axis)
    cross = float(np.linalg.norm(rest))
    radius = cross + margin
    spacing = 2.0 * np.sqrt(max(radius**2 - cross**2, 1e-12))  # neighbours overlap over the whole cross-section
    count = int(np.ceil(2 * half[axis] / spacing)) + 1
    centres = np.repeat(centre[None, :], count, axis=0)
    centres[:, axis] += np.linspace(-half[axis], half[axis], count)
    return centres, radius


class RobotSpheres:
    """(K, 4) sphere centres and radii (m) covering the arm's collision geometry at positions ``q``."""

    def __init__(self, arm: ArmModel, margin: float = MARGIN) -> None:
        self.arm = arm
        self.geometry = pin.buildGeomFromUrdfString(arm.model, arm.profile.urdf_xml, pin.GeometryType.COLLISION)
        self.geometry_data = pin.GeometryData(self.geometry)
        self._local: list[np.ndarray] = []
        radii: list[np.ndarray] = []
        for obj in self.geometry.geometryObjects:
            shape = obj.geometry
            shape.computeLocalAABB()
            centres, radius = _box_spheres(np.asarray(shape.aabb_local.min_), np.asarray(shape.aabb_local.max_),
                                           margin)
            self._local.append(centres)
            radii.append(np.full(len(centres), radius))
        self._radii = np.concatenate(radii) if radii else np.zeros(0)

    def __call__(self, q: np.ndarray, passive: Mapping[str, float] | None = None) -> np.ndarray:
        """(K, 4) float32 at positions ``q`` (the profile's joint order)."""
        full = self.arm.full_configuration(np.asarray(q, float), passive)
        pin.forwardKinematics(self.arm.model, self.arm.data, full)
        pin.updateGeometryPlacements(self.arm.model, self.arm.data, self.geometry, self.geometry_data)
        placed = [(pose.rotation @ local.T).T + pose.translation
                  for pose, local in zip(self.geometry_data.oMg, self._local)]
        centres = np.concatenate(placed) if placed else np.zeros((0, 3))
        return np.column_stack([centres, self._radii]).astype(np.float32)
