"""Profile values parsed from their YAML form (a part of ``robot_profile``): camera extrinsics and the link pairs
self-collision checks skip."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from armpilot.urdf_source import RobotDescriptionError


def extrinsics(raw: Mapping[str, Any] | None) -> np.ndarray | None:
    """4x4 base_T_camera_optical from ``{xyz: [..], rpy: [..]}`` (m, rad, fixed-axis roll-pitch-yaw)."""
    if not raw:
        return None
    from transforms3d.euler import euler2mat

    pose = np.eye(4)
    pose[:3, :3] = euler2mat(*[float(a) for a in raw.get("rpy", (0, 0, 0))], axes="sxyz")
    pose[:3, 3] = np.asarray(raw.get("xyz", (0, 0, 0)), float)
    return pose


def disabled_pairs(raw: Any, source: str) -> list[tuple[str, str]]:
    """The profile's ``disabled_collisions``: [[link, link], ...], pairs self-collision checks skip as an SRDF's
    <disable_collisions> do (without writing an SRDF)."""
    if not isinstance(raw, list) or not all(isinstance(p, list) and len(p) == 2 for p in raw):
        raise RobotDescriptionError(f"robot profile {source}: disabled_collisions must be a list of [link, link] pairs")
    return [(str(a), str(b)) for a, b in raw]
