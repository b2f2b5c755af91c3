"""A gripper on a controller of its own, commanded through the safety node (pure, no rclpy).

Proposals carry the gripper as one more joint column (the profile lists it in ``joints``); the arm's checks run on
the other columns (``check_chunk`` and the verifier are unchanged), and the gripper's column is checked here: finite,
inside the URDF's limits, no faster than its velocity limit between points, and its first point due within reach of
where the gripper is (``GripperStart``: anywhere between its command and its measured position, for fingers closed on
a box stay where it stops them; the measured position before any command). What is sent:

- ``trajectory``: the accepted chunk's column, timed like the arm's command;
- ``position`` / ``action``: the accepted chunk's column sampled on its timeline, sent when it has moved more than
  the deadband from the last target sent (``GripperTimeline.due``).

Either way the column is taken over from where the gripper's command is (the measured gripper before any) and
clipped to its velocity limit (``GripperTimeline.follow``): the command never moves faster, even where the start
check let a chunk start from the fingers a box holds open. A hold freezes the gripper where its command is at that
instant (a position or action target: the last one sent; ``GripperTimeline.freeze``): it neither opens (a box held
stays held) nor goes on closing. A proposal without the gripper's column leaves the gripper's command as it was
(the last accepted column runs on).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from armpilot.rejections import Reason
from armpilot.robot import JointLimits
from armpilot.safety.limits import EPS, Verdict


def split_gripper(joint_names: Sequence[str], positions: np.ndarray,
                  gripper_joint: str) -> tuple[tuple[str, ...], np.ndarray, np.ndarray | None]:
    """The arm's names and (..., J - 1) positions, and the gripper's (...,) column; the positions unchanged and
    None when the message does not name the gripper. ``positions`` is (..., J) in ``joint_names`` order."""
    names = tuple(joint_names)
    if gripper_joint not in names:
        return names, positions, None
    k = names.index(gripper_joint)
    keep = [j for j in range(len(names)) if j != k]
    return names[:k] + names[k + 1:], positions[..., keep], positions[..., k]


@dataclass(frozen=True)
class GripperLimits:
    """A separately commanded gripper's joint and what its commands must keep to (rad or m, per s)."""

    joint: str
    lower: float
    upper: float
    velocity: float  # the velocity limit as enforced (velocity_scale applied)

    @classmethod
    def of(cls, joint: str, limits: JointLimits) -> "GripperLimits":
        """``joint``'s limits from ``limits`` (the velocity as it will be enforced)."""
        k = limits.names.index(joint)
        return cls(joint, float(limits.lower[k]), float(limits.upper[k]), float(limits.velocity[k]))


@dataclass(frozen=True)
class GripperStart:
    """Where the gripper is when a proposal is checked, and when its points are due.

    The first point due may be as far as the velocity limit reaches by its time (plus ``slack``) from anywhere
    between ``reference`` and ``other`` (rad or m): the accepted chunks' command now (``GripperTimeline.at``) and the
    measured gripper (fingers closed on a box stay where it stops them: a target between the two moves nothing), or
    the measured gripper alone before any command (``slack`` = ``start_tolerance`` then, else 0). ``lead`` (s): from
    now to each point, (P,) (``stamp + times - now``)."""

    reference: float
    slack: float
    lead: np.ndarray
    other: float | None = None

    def distance(self, value: float) -> float:
        """How far ``value`` is from the interval the chunk may start from."""
        low, high = sorted((self.reference, self.reference if self.other is None else self.other))
        return max(low - value, value - high, 0.0)


def gripper_problems(columns: np.ndarray, times: np.ndarray, limits: GripperLimits,
                     start: GripperStart | None = None) -> list[tuple[str, str] | None]:
    """For each of (N, P) gripper columns over the points at ``times`` (P,) s: None when it may be sent, else
    (reason, detail): not finite, outside the limits, faster than the velocity limit between points or, with
    ``start``, from where its command is to the first point still due."""
    columns = np.atleast_2d(np.asarray(columns, float))
    name, lower, upper, vmax = limits.joint, limits.lower, limits.upper, limits.velocity
    ahead = np.flatnonzero(start.lead > 0.0) if start is not None else np.zeros(0, int)
    out: list[tuple[str, str] | None] = []
    for column in columns:
        speed = np.abs(np.diff(column)) / np.diff(times) if len(column) > 1 else np.zeros(0)
        outside = (column < lower - EPS) | (column > upper + EPS)
        jump, reach = 0.0, 0.0
        if len(ahead):
            k = ahead[0]
            jump, reach = start.distance(float(column[k])), vmax * start.lead[k] + start.slack
        if not np.all(np.isfinite(column)):
            out.append((Reason.NOT_FINITE, f"gripper {name} is not finite"))
        elif np.any(outside):
            k = int(np.argmax(outside))
            out.append((Reason.POSITION_LIMIT, f"gripper {name} = {column[k]:.4f} at point {k} outside "
                                               f"[{lower}, {upper}]"))
        elif np.any(speed > vmax + EPS):
            k = int(np.argmax(speed))
            out.append((Reason.VELOCITY_LIMIT, f"gripper {name} at {speed[k]:.3f} between points {k}-{k + 1} "
                                               f"(max {vmax:.3f})"))
        elif jump > reach + EPS:
            out.append((Reason.DISCONTINUITY, f"gripper {name} first point due {jump:.4f} beyond its command and "
                                              f"measured position; reachable {reach:.4f} at the velocity limit"))
        else:
            out.append(None)
    return out


def separate_gripper(names: Sequence[str], times: np.ndarray, positions: np.ndarray, limits: GripperLimits | None,
                     start: GripperStart | None = None
                     ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray | None, tuple[str, str] | None]:
    """Split a proposal's gripper column off and check it: (arm names, arm positions, gripper columns, problem).

    ``positions`` is (N, P, J) candidates or one (P, J) chunk, in ``names`` order; the columns come back (N, P) or
    (P,), None when there is no separately commanded gripper (``limits`` None) or the proposal does not name it.
    Candidates whose column fails are dropped; when none is left, ``problem`` is the first one's (reason, detail).
    ``start``: where the gripper's command is (``gripper_problems``); None checks the columns alone.
    """
    names = tuple(names)
    if limits is None or limits.joint not in names:
        return names, positions, None, None
    arm_names, arm, columns = split_gripper(names, np.asarray(positions, float), limits.joint)
    problems = gripper_problems(columns, np.asarray(times, float), limits, start)
    if arm.ndim == 2:
        return arm_names, arm, columns, problems[0]
    ok = np.array([p is None for p in problems])
    if not ok.any():
        return arm_names, arm, columns, problems[0]
    return arm_names, arm[ok], columns[ok], None


def with_gripper(verdict: Verdict, columns: np.ndarray | None, index: int | None = None) -> Verdict:
    """The verdict with the gripper's column at its points still ahead (``Verdict.gripper``). ``columns`` is the
    proposal's (P,) column, or (N, P) for candidates of which ``index`` was chosen; the accepted points are the
    column's last."""
    if not verdict.accepted or columns is None or verdict.times is None:
        return verdict
    column = np.asarray(columns if index is None else columns[index], float)
    return replace(verdict, gripper=column[len(column) - len(verdict.times):])


class GripperTimeline:
    """Where the gripper's command is on the timeline of the accepted chunks, and what to send when.

    The command never moves faster than ``velocity``: a chunk is taken over from where the command is (the measured
    gripper before any) and its points are clipped to what that speed reaches by their time (a chunk starting from
    the fingers held open by a box ramps the command there; the fingers move only once it passes them).

    Args:
        deadband: a target closer than this (rad or m) to the last one sent is not sent again (``due``).
        velocity: the gripper's enforced velocity limit (rad/s or m/s).
    """

    def __init__(self, deadband: float, velocity: float = np.inf) -> None:
        self.deadband, self.velocity = deadband, velocity
        self.absolute: np.ndarray | None = None  # (P,) s: the accepted column's points
        self.positions: np.ndarray | None = None  # (P,)
        self.frozen: float | None = None  # set by a hold until the next chunk
        self.sent: float | None = None  # the last target sent

    def follow(self, stamp: float, times: np.ndarray, positions: np.ndarray, now: float,
               measured: float | None = None) -> None:
        """An accepted chunk's column: (P,) ``positions`` at ``stamp + times`` (s), taken over at ``now`` from
        where the command is then (``measured`` before any command), as a trajectory controller does: points
        already due are dropped (a chunk all due moves to its last value), the rest clipped to ``velocity``."""
        absolute, positions = stamp + np.asarray(times, float), np.asarray(positions, float)
        current = self.at(now)
        current = measured if current is None else current
        ahead = absolute > now if current is not None else absolute >= now  # else a point due now starts it
        if not np.any(ahead):  # late: its last value, at the velocity limit
            travel = 0.0 if current is None else abs(positions[-1] - current) / self.velocity
            absolute, positions, ahead = np.array([now + max(travel, EPS)]), positions[-1:], np.ones(1, bool)
        absolute, positions = absolute[ahead], positions[ahead]
        if current is not None:
            reach = self.velocity * (absolute - now)
            clipped = np.clip(positions, current - reach, current + reach)
            if clipped[-1] != positions[-1]:  # then on to the chunk's last value at the limit
                absolute = np.r_[absolute, absolute[-1] + abs(positions[-1] - clipped[-1]) / self.velocity]
                clipped = np.r_[clipped, positions[-1]]
            positions = clipped
            absolute, positions = np.r_[now, absolute], np.r_[current, positions]
        self.absolute, self.positions, self.frozen = absolute, positions, None

    def ahead(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """(absolute times (K,) s, positions (K,)) of the command's points after ``now`` (none when frozen)."""
        if self.absolute is None or self.frozen is not None:
            return np.zeros(0), np.zeros(0)
        later = self.absolute > now
        return self.absolute[later], self.positions[later]

    def at(self, now: float) -> float | None:
        """The command at ``now`` (linear between points, held after the last); None before any chunk."""
        if self.frozen is not None or self.positions is None:
            return self.frozen
        return float(np.interp(now, self.absolute, self.positions))

    def freeze(self, now: float, value: float | None = None) -> float | None:
        """A hold: the command stays at ``value`` (a position target already sent), else where it is at ``now``
        (returned; None before any chunk)."""
        self.frozen = self.at(now) if value is None else value
        self.absolute = self.positions = None
        return self.frozen

    def due(self, now: float, exact: bool = False) -> float | None:
        """The target to send now, or None: unchanged within the deadband (``exact``: any change) since the last
        one sent, or no chunk yet. What it returns counts as sent."""
        target = self.at(now)
        if target is None:
            return None
        exact = exact or self.frozen is not None or now >= self.absolute[-1]  # its last value goes out exactly
        if self.sent is not None and abs(target - self.sent) <= (EPS if exact else self.deadband):
            return None
        self.sent = target
        return target

    def clear(self) -> None:
        """The gripper's controller was put back by someone else (the simulator reset its world): no command is
        known until the next chunk's."""
        self.absolute = self.positions = self.frozen = self.sent = None
