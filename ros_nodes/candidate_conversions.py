"""N x H x J candidate chunks <-> sensor_msgs/PointCloud2 used as a stamped table.

Layout (documented in docs/interfaces.md): an organized cloud, ``height`` =
N candidates, ``width`` = H steps; one float64 field ``time_from_start`` (s,
the same for every candidate) and one float64 field per joint, named after
the joint. ``header.stamp`` is the observation time the chunks are anchored
on; ``header.frame_id`` is ``joint_space``. No rclpy import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sensor_msgs.msg import PointCloud2

from .conversion_core import ConversionError, StampLike, stamp_to_sec
from .conversions import pointcloud_from_msg, pointcloud_to_msg

TIME_FIELD = "time_from_start"
FRAME_ID = "joint_space"


@dataclass(frozen=True)
class CandidateArrays:
    """Candidates read from a message: joint names (J,), stamp (s), times (H,), positions (N, H, J)."""

    joint_names: tuple[str, ...]
    stamp_sec: float
    times: np.ndarray
    positions: np.ndarray


def candidates_to_msg(joint_names: Sequence[str], times: np.ndarray, positions: np.ndarray,
                      stamp: StampLike) -> PointCloud2:
    """Pack (N, H, J) joint positions at (H,) times into the candidate table."""
    positions = np.asarray(positions, np.float64)
    times = np.asarray(times, np.float64)
    if positions.ndim != 3 or positions.shape[1:] != (len(times), len(joint_names)):
        raise ConversionError(f"positions have shape {positions.shape}, expected (N, {len(times)}, {len(joint_names)})")
    if TIME_FIELD in joint_names or len(set(joint_names)) != len(joint_names):
        raise ConversionError(f"joint names must be unique and not '{TIME_FIELD}': {list(joint_names)}")
    n, h, j = positions.shape
    table = np.empty((n, h), [(TIME_FIELD, np.float64)] + [(name, np.float64) for name in joint_names])
    table[TIME_FIELD] = times[None, :]
    for k, name in enumerate(joint_names):
        table[name] = positions[:, :, k]
    msg = pointcloud_to_msg(table.reshape(-1), stamp, FRAME_ID, is_dense=True)
    msg.height, msg.width = n, h
    msg.row_step = h * msg.point_step
    return msg


def candidates_from_msg(msg: PointCloud2) -> CandidateArrays:
    """Read the candidate table.

    Raises:
        ConversionError: no ``time_from_start`` field, no joint field, a
            non-float64 joint field, an empty table, or times that differ
            between candidates.
    """
    if msg.height == 0 or msg.width == 0:
        raise ConversionError("the candidate table is empty")
    table = pointcloud_from_msg(msg).reshape(msg.height, msg.width)
    names = [n for n in table.dtype.names if n != TIME_FIELD]
    if TIME_FIELD not in table.dtype.names:
        raise ConversionError(f"the candidate table has no '{TIME_FIELD}' field")
    if not names:
        raise ConversionError("the candidate table has no joint fields")
    for name in names + [TIME_FIELD]:
        if table.dtype[name] != np.dtype("<f8") and table.dtype[name] != np.dtype(">f8"):
            raise ConversionError(f"field '{name}' is {table.dtype[name]}, expected float64")
    times = np.asarray(table[TIME_FIELD], np.float64)
    if not np.array_equal(times, np.broadcast_to(times[0], times.shape), equal_nan=True):
        raise ConversionError("time_from_start differs between candidates")
    positions = np.stack([np.asarray(table[name], np.float64) for name in names], axis=-1)
    return CandidateArrays(tuple(names), stamp_to_sec(msg.header.stamp), times[0].copy(), positions)
