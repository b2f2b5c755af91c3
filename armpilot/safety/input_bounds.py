"""Size bounds on what the safety node accepts, checked before anything is decoded (pure).

A proposal's cost in the verifier grows with N x H x J (and the vote with N^2
in time); these bounds keep one message from blinding supervision or
exhausting memory. Oversized input is refused with reason ``oversized``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from armpilot.fields import describe as _describe


@dataclass(frozen=True)
class InputBounds:
    """Largest proposal the safety node decodes."""

    max_message_bytes: int = field(
        default=1_048_576, metadata=_describe("largest serialized candidate table or teleop trajectory, bytes"))
    max_candidates: int = field(default=64, metadata=_describe("largest N (candidates per table)"))
    max_points: int = field(default=100, metadata=_describe("largest H (points per chunk)"))
    max_joints: int = field(default=32, metadata=_describe("largest J (joints per chunk)"))

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_candidates", "max_points", "max_joints"):
            if getattr(self, name) < 1:
                raise ValueError(f"parameter '{name}' must be >= 1")


def oversized_message(bounds: InputBounds, size: int) -> str | None:
    """Why a serialized message of ``size`` bytes is refused, or None."""
    if size > bounds.max_message_bytes:
        return f"{size} bytes > max_message_bytes {bounds.max_message_bytes}"
    return None


def oversized_chunk(bounds: InputBounds, candidates: int, points: int, joints: int) -> str | None:
    """Why an N x H x J proposal is refused, or None (a single trajectory is N = 1)."""
    for value, limit, name in ((candidates, bounds.max_candidates, "max_candidates"),
                               (points, bounds.max_points, "max_points"),
                               (joints, bounds.max_joints, "max_joints")):
        if value > limit:
            return f"{candidates} x {points} x {joints} (N x H x J): {value} > {name} {limit}"
    return None
