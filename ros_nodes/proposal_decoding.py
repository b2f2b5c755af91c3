"""The safety node's inputs decoded within bounds: raw proposal bytes -> a message within ``InputBounds`` (or why it
is refused)."""

from __future__ import annotations

from typing import Any

from rclpy.serialization import deserialize_message
from sensor_msgs.msg import PointCloud2

from armpilot.rejections import Reason
from armpilot.safety.input_bounds import InputBounds, oversized_chunk, oversized_message


def decode_proposal(bounds: InputBounds, raw: bytes, msg_type: type) -> tuple[Any, str, str]:
    """(message, "", "") or (None, reason, detail): ``oversized`` beyond ``bounds`` (bytes before decoding, then
    N x H x J), ``malformed`` for bytes that do not deserialize as ``msg_type`` (a PointCloud2 candidate table or a
    JointTrajectory)."""
    problem = oversized_message(bounds, len(raw))
    if problem is None:
        try:
            msg = deserialize_message(raw, msg_type)
        except Exception as error:  # noqa: BLE001 - rclpy raises RMWError (a RuntimeError) for any bad CDR
            return None, Reason.MALFORMED, f"{msg_type.__name__} does not deserialize: {error}"
        shape = ((msg.height, msg.width, len(msg.fields) - 1) if msg_type is PointCloud2
                 else (1, len(msg.points), len(msg.joint_names)))
        problem = oversized_chunk(bounds, *shape)
    if problem is not None:
        return None, Reason.OVERSIZED, f"{msg_type.__name__}: {problem}"
    return msg, "", ""
