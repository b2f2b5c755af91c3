"""Kinematic checks of joint positions: tool workspace box, table clearance, self-collision.

Forward kinematics and collision checking with pinocchio (coal). Positions are
(P, J) in the controller's joint order; lengths in metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pinocchio as pin

from armpilot.robot import ArmModel

#: Points watched against the box and the table: (pinocchio joint or frame, offset along its z (m), min height above the table (m)).
WATCHED_POINTS = (
    ("elbow_joint", 0.0, 0.05),
    ("wrist_2_joint", 0.0, 0.04),
    ("tool_tcp", 0.0, 0.0),
    ("tool_tcp", 0.015, 0.0),  # fingertips
)


@dataclass(frozen=True)
class WorkspaceViolation:
    """The first failed check: reason key, point index, detail."""

    reason: str
    point: int
    detail: str


class WorkspaceChecker:
    """Checks many configurations against a box, the table and self-collision."""

    def __init__(self, arm: ArmModel, box_min: np.ndarray, box_max: np.ndarray, table_z: float,
                 table_clearance: float, self_collision: bool = True) -> None:
        self.arm = arm
        self.box_min = np.asarray(box_min, float)
        self.box_max = np.asarray(box_max, float)
        self.table_z = table_z
        self.table_clearance = table_clearance
        self.model = pin.Model(arm.model)  # a copy: the watched points become frames of its own
        self._frames = [self._add_watch_frame(k, name, offset) for k, (name, offset, _) in enumerate(WATCHED_POINTS)]
        self._heights = np.array([height for _, _, height in WATCHED_POINTS])
        self.data = self.model.createData()
        self.geometry = None
        if self_collision:
            self.geometry = pin.buildGeomFromUrdf(self.model, str(arm.urdf), pin.GeometryType.COLLISION)
            self.geometry.addAllCollisionPairs()
            self._drop_touching_pairs()
            self.geometry_data = pin.GeometryData(self.geometry)

    def _add_watch_frame(self, index: int, name: str, offset: float) -> int:
        """A frame ``offset`` m along the z axis of a joint or frame; returns its id."""
        along_z = pin.SE3(np.eye(3), np.array([0.0, 0.0, offset]))
        if self.model.existJointName(name):
            joint, parent_frame, placement = self.model.getJointId(name), 0, along_z
        else:
            parent = self.model.frames[self.model.getFrameId(name)]
            joint, parent_frame, placement = parent.parentJoint, self.model.getFrameId(name), parent.placement * along_z
        frame = pin.Frame(f"safety_watch_{index}", joint, parent_frame, placement, pin.FrameType.OP_FRAME)
        return self.model.addFrame(frame, False)

    def _drop_touching_pairs(self) -> None:
        """Remove pairs of geometries that touch by construction (neighbours, fingers on their base)."""
        geometry = self.geometry
        data = pin.GeometryData(geometry)
        samples = [self.arm.full_configuration(q) for q in _neutral_samples(self.arm)]
        touching = set()
        for q in samples:
            pin.computeCollisions(self.model, self.data, geometry, data, q, False)
            touching |= {k for k, result in enumerate(data.collisionResults) if result.isCollision()}
        for k in sorted(touching, reverse=True):
            geometry.removeCollisionPair(geometry.collisionPairs[k])

    def points(self, positions: np.ndarray) -> np.ndarray:
        """(P, K, 3) watched points at each configuration."""
        out = np.empty((len(positions), len(self._frames), 3))
        for p, q in enumerate(positions):
            pin.forwardKinematics(self.model, self.data, self.arm.full_configuration(q))
            for k, frame in enumerate(self._frames):
                out[p, k] = pin.updateFramePlacement(self.model, self.data, frame).translation
        return out

    def clearance(self, positions: np.ndarray) -> float:
        """Smallest margin (m) of any watched point to the box faces or its table height; < 0 = violation."""
        pts = self.points(positions)
        table = pts[..., 2] - (self.table_z + self.table_clearance + self._heights)
        box = np.minimum(pts - self.box_min, self.box_max - pts).min(axis=-1)
        return float(min(table.min(), box.min()))

    def check(self, positions: np.ndarray) -> WorkspaceViolation | None:
        """The first violation in (P, J) positions, or None when all are fine."""
        pts = self.points(positions)
        heights = self._heights
        below = pts[..., 2] < self.table_z + self.table_clearance + heights
        if np.any(below):
            p, k = np.argwhere(below)[0]
            return WorkspaceViolation("table_clearance", int(p), f"{WATCHED_POINTS[k][0]} at z = {pts[p, k, 2]:.3f} m "
                                      f"at point {p} (needs >= {self.table_z + self.table_clearance + heights[k]:.3f})")
        outside = np.any((pts < self.box_min) | (pts > self.box_max), axis=-1)
        if np.any(outside):
            p, k = np.argwhere(outside)[0]
            return WorkspaceViolation("workspace", int(p), f"{WATCHED_POINTS[k][0]} at {np.round(pts[p, k], 3).tolist()} "
                                      f"outside the box at point {p}")
        if self.geometry is not None:
            for p, q in enumerate(positions):
                full = self.arm.full_configuration(q)
                if pin.computeCollisions(self.model, self.data, self.geometry, self.geometry_data, full, True):
                    pair = next(self.geometry.collisionPairs[k] for k, r in enumerate(self.geometry_data.collisionResults)
                                if r.isCollision())
                    names = [self.geometry.geometryObjects[i].name for i in (pair.first, pair.second)]
                    return WorkspaceViolation("self_collision", p, f"{names[0]} hits {names[1]} at point {p}")
        return None


def _neutral_samples(arm: ArmModel) -> list[np.ndarray]:
    """Configurations where only constructive contacts exist: the gripper open and closed, wrist straight."""
    from armpilot.robot import HOME_POSITION

    samples = []
    for gripper in (arm.limits.lower[-1], arm.limits.upper[-1]):
        for base in (HOME_POSITION, np.zeros(len(HOME_POSITION))):
            q = np.array(base, float)
            q[-1] = gripper
            samples.append(q)
    return samples
