"""Offline agreement of a replayed episode with the recorded one (pure, no rclpy).

The recorded ``/arm_controller/joint_trajectory`` commands and the commands the
safety node would send during replay are compared by their first points:
each replayed command is matched to the recorded command nearest in receive
time (both on the bag's clock) and the absolute joint differences, over the
joints both name, are averaged.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Command:
    """A command's receive time (ns, bag clock) and its first point (joint name -> position, rad)."""

    t_ns: int
    first_point: dict[str, float]


def first_point(t_ns: int, joint_names: Sequence[str], points: Sequence) -> Command | None:
    """A ``Command`` from a JointTrajectory's fields (None when it has no points)."""
    if not len(points):
        return None
    return Command(t_ns, dict(zip(joint_names, (float(p) for p in points[0].positions))))


def mean_abs_difference(recorded: Sequence[Command], replayed: Sequence[Command],
                        max_gap_s: float = 0.5) -> tuple[float | None, int]:
    """Mean |replayed - recorded| first-point position over matched commands, rad, and the match count.

    Args:
        recorded: the recorded commands (any order).
        replayed: the commands produced during replay.
        max_gap_s: a replayed command with no recorded one within this time is not matched.

    Returns:
        (mean absolute difference or None when nothing matched, number of matched commands).
    """
    ordered = sorted(recorded, key=lambda c: c.t_ns)
    stamps = [c.t_ns for c in ordered]
    diffs: list[float] = []
    matched = 0
    for command in replayed:
        i = bisect.bisect_left(stamps, command.t_ns)
        near = [j for j in (i - 1, i) if 0 <= j < len(ordered)]
        if not near:
            continue
        j = min(near, key=lambda k: abs(stamps[k] - command.t_ns))
        if abs(stamps[j] - command.t_ns) > max_gap_s * 1e9:
            continue
        joints = sorted(set(command.first_point) & set(ordered[j].first_point))
        if not joints:
            continue
        matched += 1
        diffs += [abs(command.first_point[n] - ordered[j].first_point[n]) for n in joints]
    return (float(np.mean(diffs)) if diffs else None), matched
