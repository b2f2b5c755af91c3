"""Safety checks on a proposed joint trajectory chunk (pure; v0 of the safety core).

A chunk is accepted only if every check passes; otherwise it is rejected with
a stable reason key and a detail naming the joint and point. Nothing is
clipped: the safety node holds the arm instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from armpilot.control.trajectory import TrajectoryError, validate_trajectory
from armpilot.robot import CONTROLLED_JOINTS, JointLimits

#: Slack for rounding in limit comparisons (rad, m, rad/s).
EPS = 1e-9
#: Closest two points may be, s: closer ones vanish in nanosecond stamps and imply unbounded speed.
MIN_POINT_SPACING = 1e-3


def _describe(text: str) -> dict[str, str]:
    return {"description": text}


@dataclass(frozen=True)
class SafetyConfig:
    """Limits the safety node enforces beyond the URDF's."""

    joint_names: tuple[str, ...] = field(
        default=CONTROLLED_JOINTS, metadata=_describe("controller joint order (names must match the URDF)")
    )
    velocity_scale: float = field(
        default=1.0, metadata=_describe("fraction of the URDF velocity limits allowed, (0, 1]")
    )
    max_chunk_age: float = field(default=0.5, metadata=_describe("reject chunks stamped longer ago than this, s"))
    max_future: float = field(default=0.05, metadata=_describe("reject chunks stamped further ahead than this, s"))
    tracking_allowance: float = field(
        default=0.1, metadata=_describe("time the arm may take to catch up with the first point, s")
    )
    joint_state_timeout: float = field(
        default=0.25, metadata=_describe("hold when /joint_states is older than this, s")
    )
    hold_duration: float = field(default=0.1, metadata=_describe("time_from_start of the hold command, s"))

    def __post_init__(self) -> None:
        if not 0.0 < self.velocity_scale <= 1.0:
            raise ValueError(f"parameter 'velocity_scale' must be in (0, 1], got {self.velocity_scale}")
        for name in ("max_chunk_age", "max_future", "tracking_allowance", "joint_state_timeout", "hold_duration"):
            if getattr(self, name) < 0:
                raise ValueError(f"parameter '{name}' must be >= 0")


@dataclass(frozen=True)
class Verdict:
    """A check's outcome. On acceptance ``times``/``positions`` hold the points still
    ahead of ``now`` (P', ) and (P', J) in the controller's order."""

    accepted: bool
    reason: str = "ok"
    detail: str = ""
    stamp: float = 0.0
    times: np.ndarray | None = None
    positions: np.ndarray | None = None


def _reject(reason: str, detail: str) -> Verdict:
    return Verdict(False, reason, detail)


def check_chunk(
    config: SafetyConfig,
    limits: JointLimits,
    joint_names: Sequence[str],
    stamp: float,
    times: np.ndarray,
    positions: np.ndarray,
    now: float,
    measured: np.ndarray | None,
    velocities: np.ndarray | None = None,
) -> Verdict:
    """Check one chunk against limits, stamps and the measured state.

    Args:
        limits: URDF limits in ``config.joint_names`` order.
        stamp: header stamp, s (0 = now).
        times: (P,) time_from_start, s.
        positions: (P, J) in message order.
        now: current time on the same clock, s.
        measured: (J,) measured positions in controller order, or None if unknown.
        velocities: optional (P, J) in message order.
    """
    if measured is None:
        return _reject("no_joint_state", "no fresh /joint_states: cannot check continuity")
    try:
        times, positions, velocities = validate_trajectory(
            joint_names, config.joint_names, times, positions, velocities
        )
    except TrajectoryError as error:
        return _reject(error.reason, error.detail)
    if len(times) > 1 and np.min(np.diff(times)) < MIN_POINT_SPACING:
        return _reject("time_not_increasing", f"points closer than {MIN_POINT_SPACING * 1e3:.0f} ms apart")
    stamp = now if stamp == 0.0 else stamp
    if now - stamp > config.max_chunk_age:
        return _reject("stale", f"stamped {now - stamp:.3f} s ago (max {config.max_chunk_age} s)")
    if stamp - now > config.max_future:
        return _reject("future_stamp", f"stamped {stamp - now:.3f} s ahead (max {config.max_future} s)")
    ahead = stamp + times > now
    if not np.any(ahead):
        return _reject("stale", "every point is already in the past")
    times, positions = times[ahead], positions[ahead]
    velocities = None if velocities is None else velocities[ahead]
    names = config.joint_names
    below = positions < limits.lower - EPS
    above = positions > limits.upper + EPS
    if np.any(below | above):
        k, j = np.argwhere(below | above)[0]
        return _reject(
            "position_limit",
            f"{names[j]} = {positions[k, j]:.4f} at point {k} outside [{limits.lower[j]}, {limits.upper[j]}]",
        )
    vmax = limits.velocity * config.velocity_scale
    lead = stamp + times[0] - now
    reach = vmax * (lead + config.tracking_allowance)
    jump = np.abs(positions[0] - measured)
    if np.any(jump > reach + EPS):
        j = int(np.argmax(jump - reach))
        return _reject(
            "discontinuity",
            f"{names[j]} first point {jump[j]:.4f} away from measured; reachable {reach[j]:.4f} in {lead:.3f} s",
        )
    if len(times) > 1:
        speed = np.abs(np.diff(positions, axis=0)) / np.diff(times)[:, None]
        if np.any(speed > vmax + EPS):
            k, j = np.argwhere(speed > vmax + EPS)[0]
            return _reject("velocity_limit", f"{names[j]} at {speed[k, j]:.3f} between points {k}-{k + 1} (max {vmax[j]:.3f})")
    if velocities is not None and np.any(np.abs(velocities) > vmax + EPS):
        k, j = np.argwhere(np.abs(velocities) > vmax + EPS)[0]
        return _reject("velocity_limit", f"{names[j]} commanded velocity {velocities[k, j]:.3f} (max {vmax[j]:.3f})")
    return Verdict(True, stamp=stamp, times=times, positions=positions)
