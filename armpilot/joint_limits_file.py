"""Per-joint limits from a MoveIt / ros2_control ``joint_limits.yaml`` (no ROS).

The file nests a ``joint_limits:`` mapping of joint -> ``has_velocity_limits`` /
``max_velocity`` (rad/s or m/s), ``has_acceleration_limits`` / ``max_acceleration``
(/s^2), ``has_jerk_limits`` / ``max_jerk`` (/s^3), anywhere in its tree (MoveIt
puts it at the top, a ros2_control parameter file under a node's
``ros__parameters``). A limit counts only where its ``has_*`` flag is true.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

#: The limits read, as (key in the file, flag that enables it).
LIMIT_KEYS = (("max_velocity", "has_velocity_limits"), ("max_acceleration", "has_acceleration_limits"),
              ("max_jerk", "has_jerk_limits"))


class JointLimitsFileError(ValueError):
    """A joint_limits file that is missing or unreadable."""


def read_joint_limits(path: Path, joints: Sequence[str]) -> dict[str, np.ndarray]:
    """``{"max_velocity": (J,), "max_acceleration": (J,), "max_jerk": (J,)}`` in ``joints`` order, NaN where the
    file gives none."""
    if not path.is_file():
        raise JointLimitsFileError(f"joint_limits file {path} does not exist")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise JointLimitsFileError(f"joint_limits file {path} is not YAML: {error}") from error
    limits = _find_joint_limits(tree) or {}
    out = {key: np.full(len(joints), np.nan) for key, _ in LIMIT_KEYS}
    for k, joint in enumerate(joints):
        entry = limits.get(joint) or {}
        for key, flag in LIMIT_KEYS:
            if entry.get(flag) and entry.get(key):
                out[key][k] = float(entry[key])
    return out


def _find_joint_limits(tree: Any) -> Mapping[str, Any] | None:
    if isinstance(tree, Mapping):
        if isinstance(tree.get("joint_limits"), Mapping):
            return tree["joint_limits"]
        for child in tree.values():
            found = _find_joint_limits(child)
            if found is not None:
                return found
    return None
