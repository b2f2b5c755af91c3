"""An independent forward-kinematics oracle: the URDF's joint chain in plain numpy (no pinocchio).

Used by the safety property tests to re-derive where watched points are.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
from transforms3d.axangles import axangle2mat
from transforms3d.euler import euler2mat


def _origin(element: ET.Element | None) -> np.ndarray:
    pose = np.eye(4)
    if element is None:
        return pose
    xyz = [float(v) for v in element.get("xyz", "0 0 0").split()]
    rpy = [float(v) for v in element.get("rpy", "0 0 0").split()]
    pose[:3, :3] = euler2mat(*rpy, axes="sxyz")
    pose[:3, 3] = xyz
    return pose


class UrdfChain:
    """FK of every link and joint frame of a URDF from joint values by name, in the link ``base`` (default: the
    URDF's root)."""

    def __init__(self, xml: str, base: str = "") -> None:
        root = ET.fromstring(xml)
        self.base = base
        self.joints = {}
        children = set()
        for j in root.findall("joint"):
            axis = j.find("axis")
            mimic = j.find("mimic")
            self.joints[j.get("name")] = dict(
                type=j.get("type"), parent=j.find("parent").get("link"), child=j.find("child").get("link"),
                origin=_origin(j.find("origin")),
                axis=np.array([float(v) for v in (axis.get("xyz") if axis is not None else "1 0 0").split()]),
                mimic=None if mimic is None else (mimic.get("joint"), float(mimic.get("multiplier", 1)),
                                                  float(mimic.get("offset", 0))))
            children.add(j.find("child").get("link"))
        self.by_child = {j["child"]: name for name, j in self.joints.items()}

    def _motion(self, joint: dict, value: float) -> np.ndarray:
        motion = np.eye(4)
        if joint["type"] == "fixed":
            return motion
        axis = joint["axis"] / np.linalg.norm(joint["axis"])
        if joint["type"] in ("revolute", "continuous"):
            motion[:3, :3] = axangle2mat(axis, value)
        elif joint["type"] == "prismatic":
            motion[:3, 3] = axis * value
        return motion

    def _value(self, name: str, values: dict[str, float]) -> float:
        mimic = self.joints[name]["mimic"]
        if mimic is not None:
            master, multiplier, offset = mimic
            return multiplier * self._value(master, values) + offset
        return values.get(name, 0.0)

    def joint_pose(self, name: str, values: dict[str, float]) -> np.ndarray:
        joint = self.joints[name]
        motion = self._motion(joint, self._value(name, values))
        return self.link_pose(joint["parent"], values) @ joint["origin"] @ motion

    def link_pose(self, link: str, values: dict[str, float]) -> np.ndarray:
        if link not in self.by_child:
            return np.eye(4)  # the root
        return self.joint_pose(self.by_child[link], values)

    def point(self, frame: str, values: dict[str, float], offset_z: float = 0.0) -> np.ndarray:
        """Position (3,) of a joint or link frame, ``offset_z`` m along its z axis."""
        pose = self.joint_pose(frame, values) if frame in self.joints else self.link_pose(frame, values)
        if self.base:
            pose = np.linalg.inv(self.link_pose(self.base, values)) @ pose
        return pose[:3, 3] + offset_z * pose[:3, 2]
