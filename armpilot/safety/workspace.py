"""Kinematic checks of joint positions: workspace box, table clearance, self-collision.

Forward kinematics and collision checking with pinocchio (coal), on the robot
profile's URDF. Positions are (P, J) in the order of the ``names`` passed (any
order or subset of the profile's joints); joints not named take the measured
``passive`` values. The watched points and their heights above the table come
from the profile; lengths in metres.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pinocchio as pin

from armpilot.rejections import Reason
from armpilot.robot import ArmModel, frame_id


@dataclass(frozen=True)
class WorkspaceViolation:
    """The first failed check: reason key, point index, detail."""

    reason: str
    point: int
    detail: str


class WorkspaceChecker:
    """Checks many configurations against a box, the table and self-collision."""

    def __init__(self, arm: ArmModel, box_min: np.ndarray | None = None, box_max: np.ndarray | None = None,
                 table_z: float | None = None, table_clearance: float = 0.003, self_collision: bool = True) -> None:
        profile = arm.profile
        self.arm = arm
        self.box_min = np.asarray(profile.workspace_min if box_min is None else box_min, float)
        self.box_max = np.asarray(profile.workspace_max if box_max is None else box_max, float)
        self.table_z = profile.table_z if table_z is None else table_z
        self.table_clearance = table_clearance
        self.model = pin.Model(arm.model)  # a copy: the watched points become frames of its own
        self.watched = profile.watched_frames
        self._frames = [self._add_watch_frame(k, w.frame, w.offset_z) for k, w in enumerate(self.watched)]
        self._heights = np.array([w.min_height for w in self.watched])
        self.data = self.model.createData()
        self.geometry = None
        if self_collision:
            self.geometry = pin.buildGeomFromUrdfString(self.model, profile.urdf_xml, pin.GeometryType.COLLISION)
            _use_convex_hulls(self.geometry)
            self.geometry.addAllCollisionPairs()
            self._drop_disabled_pairs()
            self._drop_touching_pairs()
            self.geometry_data = pin.GeometryData(self.geometry)

    def _add_watch_frame(self, index: int, name: str, offset: float) -> int:
        """A frame ``offset`` m along the z axis of a joint or frame; returns its id."""
        along_z = pin.SE3(np.eye(3), np.array([0.0, 0.0, offset]))
        if self.model.existJointName(name):
            joint, parent_frame, placement = self.model.getJointId(name), 0, along_z
        elif self.model.existFrame(name):
            parent_frame = frame_id(self.model, name)
            parent = self.model.frames[parent_frame]
            joint, placement = parent.parentJoint, parent.placement * along_z
        else:
            raise KeyError(f"watched frame '{name}' of robot '{self.arm.name}' is neither a joint nor a frame "
                           f"of its URDF")
        frame = pin.Frame(f"safety_watch_{index}", joint, parent_frame, placement, pin.FrameType.OP_FRAME)
        return self.model.addFrame(frame, False)

    def _link_pair(self, pair: pin.CollisionPair) -> frozenset[str]:
        objects = self.geometry.geometryObjects
        return frozenset(self.model.frames[objects[k].parentFrame].name for k in (pair.first, pair.second))

    def _drop_disabled_pairs(self) -> None:
        """Remove the pairs of links the profile's SRDF disables, and pairs within the gripper (its hand and
        fingers touch by design; the sim excludes them too: TALOS's closing fingers were refused)."""
        disabled = {frozenset(p) for p in self.arm.profile.disabled_collisions}
        gripper = self.arm.gripper_links()
        geometry = self.geometry
        # indices first: pinocchio's pair list holds references that shift as pairs are removed (removing while
        # walking it skipped pairs: 6 of TALOS's gripper pairs stayed)
        dropped = [(pair.first, pair.second) for pair in geometry.collisionPairs
                   if (links := self._link_pair(pair)) in disabled or links <= gripper]
        for first, second in dropped:
            geometry.removeCollisionPair(pin.CollisionPair(first, second))

    def _drop_touching_pairs(self) -> None:
        """Remove pairs of geometries that touch by construction: those touching at home (fingers on their base),
        and links one joint apart touching with all joints at zero (a joint's two sides overlapping). Not other
        pairs touching only at zero: on the Panda, Z1 and Kinova that pose folds the arm onto itself at its joint
        stops, and dropping them left real collisions unchecked (Panda link 5 against a finger)."""
        geometry = self.geometry
        data = pin.GeometryData(geometry)
        parents = self.model.parents
        joint_of = [g.parentJoint for g in geometry.geometryObjects]
        adjacent = {k for k, pair in enumerate(geometry.collisionPairs)
                    if parents[joint_of[pair.first]] == joint_of[pair.second]
                    or parents[joint_of[pair.second]] == joint_of[pair.first]}
        touching: set[int] = set()
        for q, home in _neutral_samples(self.arm):
            pin.computeCollisions(self.model, self.data, geometry, data, self.arm.full_configuration(q), False)
            touching |= {k for k, result in enumerate(data.collisionResults)
                         if result.isCollision() and (home or k in adjacent)}
        # pairs no commanded joint moves apart (a humanoid's hip against its torso): the arm cannot change them, and
        # measured passive joints sagging in the sim made them refuse every chunk (iCub: l_hip_2 against torso_1)
        commanded = {self.model.getJointId(n) for n in self.arm.joint_names}
        moved = [bool(commanded & set(self.model.supports[j])) for j in joint_of]
        touching |= {k for k, pair in enumerate(geometry.collisionPairs)
                     if not moved[pair.first] and not moved[pair.second]}
        for k in sorted(touching, reverse=True):
            geometry.removeCollisionPair(geometry.collisionPairs[k])

    def _full(self, q: np.ndarray, names: tuple[str, ...] | None, passive: Mapping[str, float] | None) -> np.ndarray:
        return self.arm.full_configuration(q, passive, names)

    def points(self, positions: np.ndarray, names: tuple[str, ...] | None = None,
               passive: Mapping[str, float] | None = None) -> np.ndarray:
        """(P, K, 3) watched points at each configuration."""
        out = np.empty((len(positions), len(self._frames), 3))
        for p, q in enumerate(positions):
            pin.forwardKinematics(self.model, self.data, self._full(q, names, passive))
            for k, frame in enumerate(self._frames):
                out[p, k] = pin.updateFramePlacement(self.model, self.data, frame).translation
        return out

    def clearance(self, positions: np.ndarray, names: tuple[str, ...] | None = None,
                  passive: Mapping[str, float] | None = None) -> float:
        """Smallest margin (m) of any watched point to the box faces or its table height; < 0 = violation."""
        pts = self.points(positions, names, passive)
        table = pts[..., 2] - (self.table_z + self.table_clearance + self._heights)
        box = np.minimum(pts - self.box_min, self.box_max - pts).min(axis=-1)
        return float(min(table.min(), box.min()))

    def _violations(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P, K) masks of (P, K, 3) watched points: below their table height, outside the box."""
        below = pts[..., 2] < self.table_z + self.table_clearance + self._heights
        return below, np.any((pts < self.box_min) | (pts > self.box_max), axis=-1)

    def first_violating(self, positions: np.ndarray, names: tuple[str, ...] | None = None,
                        passive: Mapping[str, float] | None = None) -> int | None:
        """Index of the earliest of (P, J) positions with a watched point below the table clearance or outside
        the box (``check`` names the first table violation before any box one), or None."""
        below, outside = self._violations(self.points(positions, names, passive))
        bad = np.flatnonzero(np.any(below | outside, axis=-1))
        return int(bad[0]) if bad.size else None

    def check(self, positions: np.ndarray, names: tuple[str, ...] | None = None,
              passive: Mapping[str, float] | None = None, self_collision: bool = True,
              label: str = "") -> WorkspaceViolation | None:
        """The first violation in (P, J) positions, or None when all are fine.

        Args:
            positions: (P, J) in ``names`` order (default: the profile's joints).
            passive: measured values of joints not in ``names``.
            self_collision: False skips the (slower) collision check.
            label: prefix of the point description in the detail ("braking stop of ").
        """
        pts = self.points(positions, names, passive)
        heights = self._heights
        below, outside = self._violations(pts)
        if np.any(below):
            p, k = np.argwhere(below)[0]
            needed = self.table_z + self.table_clearance + heights[k]
            return WorkspaceViolation(Reason.TABLE_CLEARANCE, int(p),
                                      f"{self.watched[k].frame} at z = {pts[p, k, 2]:.3f} m "
                                      f"at {label}point {p} (needs >= {needed:.3f})")
        if np.any(outside):
            p, k = np.argwhere(outside)[0]
            return WorkspaceViolation(Reason.WORKSPACE, int(p),
                                      f"{self.watched[k].frame} at {np.round(pts[p, k], 3).tolist()} "
                                      f"outside the box at {label}point {p}")
        if self.geometry is not None and self_collision:
            for p, q in enumerate(positions):
                full = self._full(q, names, passive)
                if pin.computeCollisions(self.model, self.data, self.geometry, self.geometry_data, full, True):
                    results = self.geometry_data.collisionResults
                    pair = next(self.geometry.collisionPairs[k] for k, r in enumerate(results) if r.isCollision())
                    hit = [self.geometry.geometryObjects[i].name for i in (pair.first, pair.second)]
                    return WorkspaceViolation(Reason.SELF_COLLISION, p, f"{hit[0]} hits {hit[1]} at {label}point {p}")
        return None


def _use_convex_hulls(geometry: pin.GeometryModel) -> None:
    """Replace meshes by their convex hulls: conservative (a hull contains its mesh) and far faster."""
    for obj in geometry.geometryObjects:
        mesh = obj.geometry
        if hasattr(mesh, "buildConvexRepresentation"):
            mesh.buildConvexRepresentation(False)
            obj.geometry = mesh.convex


def _neutral_samples(arm: ArmModel) -> list[tuple[np.ndarray, bool]]:
    """(configuration, is home) at home and at zero (clipped into the limits), the gripper open and closed."""
    profile = arm.profile
    zero = np.clip(np.zeros(len(profile.joints)), arm.limits.lower, arm.limits.upper)
    bases = [(profile.home, True), (zero, False)]
    if profile.gripper.joint not in profile.joints:
        return bases
    g = profile.joints.index(profile.gripper.joint)
    samples = []
    for value in (profile.gripper.open, profile.gripper.closed):
        for base, home in bases:
            q = np.array(base, float)
            q[g] = value
            samples.append((q, home))
    return samples
