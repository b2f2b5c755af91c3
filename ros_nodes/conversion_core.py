"""Shared pieces of the ROS message conversions: the error type and stamps.

Use the public API through ``armpilot.ros_nodes.conversions``. No rclpy import.
"""

from __future__ import annotations

import array
import math
from typing import Any, Union

import numpy as np
from builtin_interfaces.msg import Duration, Time

#: A Time message, seconds (float/int), anything with ``to_msg()`` such as
#: ``rclpy.time.Time``, or None (time 0).
StampLike = Union[Time, float, int, None, Any]

_NS_PER_S = 1_000_000_000


class ConversionError(ValueError):
    """A message or array cannot be converted (bad shape, size, encoding...)."""


# ------------------------------------------------------------------ stamps
def stamp_to_sec(stamp: Union[Time, Duration]) -> float:
    """Converts a ``Time`` (or ``Duration``) message to seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def split_sec(seconds: float) -> tuple[int, int]:
    """Splits seconds into (sec, nanosec), nanosec in [0, 1e9), nearest ns."""
    seconds = float(seconds)
    if not math.isfinite(seconds):
        raise ConversionError(f"time {seconds!r} s is not finite")
    sec, nanosec = divmod(round(seconds * 1e9), _NS_PER_S)
    if not -(2**31) <= sec < 2**31:
        raise ConversionError(f"time {seconds!r} s does not fit the int32 'sec' field")
    return int(sec), int(nanosec)


def sec_to_stamp(seconds: float) -> Time:
    """Converts seconds to a ``Time``, rounded to the nearest nanosecond.

    Negative times keep nanosec in [0, 1e9): -0.25 s -> (sec=-1, nanosec=75e7).
    Raises ConversionError for non-finite values or sec outside int32.
    """
    sec, nanosec = split_sec(seconds)
    return Time(sec=sec, nanosec=nanosec)


def set_header(msg: Any, stamp: StampLike, frame_id: str) -> None:
    """Sets ``msg.header`` (stamp copied, never aliased) and its frame id."""
    if stamp is None:
        t = Time()
    elif isinstance(stamp, Time):
        t = Time(sec=stamp.sec, nanosec=stamp.nanosec)
    elif hasattr(stamp, "to_msg"):
        t = stamp.to_msg()
    else:
        t = sec_to_stamp(stamp)
    msg.header.stamp = t
    msg.header.frame_id = frame_id


def f64_array(values: Any) -> array.array:
    """Flattens ``values`` into an ``array.array('d')`` with C-level copies."""
    return array.array("d", np.ascontiguousarray(values, dtype=np.float64).tobytes())
