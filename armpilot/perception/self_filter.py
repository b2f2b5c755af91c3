"""Oriented boxes covering the arm at a joint configuration, to cut it out of the cloud.

Built once from the robot profile's URDF collision geometry (pinocchio): each link geometry is
covered by its local bounding box (exact for boxes, the tight box around a cylinder or mesh); at run
time the boxes follow the geometry placements. A point is the arm's when it lies inside a box grown
by the perception ``robot_padding`` on every side. Works for any arm without per-link tuning.

Spheres along each box's longest axis (before session 19) reached as far as the box's half diagonal
beyond its thin sides: around the gripper, 4.7-6 cm from the fingers, so a pushed box lost its rear
half to the filter and its perceived centre moved about 2 cm toward the goal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pinocchio as pin

from armpilot.robot import ArmModel


@dataclass(frozen=True)
class PlacedBoxes:
    """K oriented boxes in the base frame: ``rotations`` (K, 3, 3) base <- box axes, ``centres`` (K, 3) m,
    ``half_extents`` (K, 3) m along the box axes."""

    rotations: np.ndarray
    centres: np.ndarray
    half_extents: np.ndarray

    def __len__(self) -> int:
        return len(self.centres)

    def contains(self, points: np.ndarray, padding: float = 0.0) -> np.ndarray:
        """(M,) True for points (M, 3) in the base frame inside any box grown by ``padding`` m per side."""
        points = np.asarray(points, np.float64)
        inside = np.zeros(len(points), bool)
        reach = np.linalg.norm(self.half_extents, axis=1) + padding  # each box's bounding sphere
        for rotation, centre, half, radius in zip(self.rotations, self.centres, self.half_extents, reach):
            offset = points - centre
            candidates = np.flatnonzero(~inside & np.all(np.abs(offset) <= radius, axis=1))
            if len(candidates):
                local = np.abs(offset[candidates] @ rotation)  # coordinates along the box's axes
                inside[candidates[np.all(local <= half + padding, axis=1)]] = True
        return inside


class RobotBoxes:
    """The arm's collision geometry as oriented boxes (``PlacedBoxes``) at positions ``q``."""

    def __init__(self, arm: ArmModel) -> None:
        self.arm = arm
        self.geometry = pin.buildGeomFromUrdfString(arm.model, arm.profile.urdf_xml, pin.GeometryType.COLLISION)
        self.geometry_data = pin.GeometryData(self.geometry)
        centres, halves = [], []
        for obj in self.geometry.geometryObjects:
            shape = obj.geometry
            shape.computeLocalAABB()
            low, high = np.asarray(shape.aabb_local.min_), np.asarray(shape.aabb_local.max_)
            centres.append((low + high) / 2)
            halves.append((high - low) / 2)
        self._local_centres = np.array(centres).reshape(-1, 3)
        self._half_extents = np.array(halves).reshape(-1, 3)

    def __call__(self, q: np.ndarray, passive: Mapping[str, float] | None = None) -> PlacedBoxes:
        """The boxes at positions ``q`` (the profile's joint order)."""
        full = self.arm.full_configuration(np.asarray(q, float), passive)
        pin.forwardKinematics(self.arm.model, self.arm.data, full)
        pin.updateGeometryPlacements(self.arm.model, self.arm.data, self.geometry, self.geometry_data)
        poses = list(self.geometry_data.oMg)
        rotations = np.array([pose.rotation for pose in poses]).reshape(-1, 3, 3)
        centres = np.array([pose.rotation @ local + pose.translation
                            for pose, local in zip(poses, self._local_centres)]).reshape(-1, 3)
        return PlacedBoxes(rotations, centres, self._half_extents.copy())
