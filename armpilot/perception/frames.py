"""Checks and decoding of one RGB-D frame before the pipeline sees it (pure)."""

from __future__ import annotations

import numpy as np

from armpilot.perception.geometry import Intrinsics


class FrameError(ValueError):
    """A frame to skip; ``reason`` is a short stable key for counting."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def depth_to_metres(depth: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W) depth as float32 metres: ``16UC1`` millimetres or ``32FC1`` metres.

    Raises:
        FrameError: ``unsupported_encoding`` or ``empty_depth`` (no finite, positive value).
    """
    if encoding in ("16UC1", "mono16"):
        metres = depth.astype(np.float32) * np.float32(0.001)
    elif encoding == "32FC1":
        metres = np.asarray(depth, np.float32)
    else:
        raise FrameError("unsupported_encoding", f"depth encoding '{encoding}' (expected 16UC1 mm or 32FC1 m)")
    if not np.any(np.isfinite(metres) & (metres > 0)):
        raise FrameError("empty_depth", "the depth image is all zero or NaN")
    return metres


def check_sizes(intrinsics: Intrinsics, depth: np.ndarray, color: np.ndarray | None) -> None:
    """Depth (and colour) must have camera_info's size.

    Raises:
        FrameError: ``size_mismatch`` naming both sizes.
    """
    expected = (intrinsics.height, intrinsics.width)
    if depth.shape[:2] != expected:
        raise FrameError("size_mismatch", f"depth is {depth.shape[1]}x{depth.shape[0]}, "
                                          f"camera_info says {intrinsics.width}x{intrinsics.height}")
    if color is not None and color.shape[:2] != expected:
        raise FrameError("size_mismatch", f"colour is {color.shape[1]}x{color.shape[0]}, "
                                          f"camera_info says {intrinsics.width}x{intrinsics.height}")
