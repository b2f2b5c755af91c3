"""Safety checks on a proposed joint trajectory chunk (pure; v0 of the safety core).

A chunk is accepted only if every check passes; otherwise it is rejected with
a stable reason key and a detail naming the joint and point. Nothing is
clipped: the safety node holds the arm instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from armpilot.fields import describe as _describe
from armpilot.control.trajectory import TrajectoryError, validate_trajectory
from armpilot.robot import CONTROLLED_JOINTS, JointLimits
from armpilot.safety.workspace import WorkspaceChecker

#: Slack for rounding in limit comparisons (rad, m, rad/s).
EPS = 1e-9
#: Closest two points may be, s: closer ones vanish in nanosecond stamps and imply unbounded speed.
MIN_POINT_SPACING = 1e-3


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
    max_acceleration: tuple[float, ...] = field(
        default=(20.0, 20.0, 20.0, 30.0, 30.0, 30.0, 2.0),
        metadata=_describe("per joint, between points, rad/s^2 (gripper m/s^2)"),
    )
    max_jerk: tuple[float, ...] = field(
        default=(400.0, 400.0, 400.0, 600.0, 600.0, 600.0, 40.0),
        metadata=_describe("per joint, between points, rad/s^3 (gripper m/s^3)"),
    )
    max_step: float = field(default=0.35, metadata=_describe("largest change of any joint between two points, rad / m"))
    workspace_min: tuple[float, ...] = field(
        default=(-0.3, -0.7, -0.05), metadata=_describe("box the elbow, wrist, tool and fingertips stay in [x, y, z], m")
    )
    workspace_max: tuple[float, ...] = field(default=(1.0, 0.7, 1.2), metadata=_describe("upper corner of that box, m"))
    table_z: float = field(default=0.0, metadata=_describe("height of the table top in base_link, m"))
    table_clearance: float = field(default=0.003, metadata=_describe("fingertips stay this far above the table, m"))
    self_collision: bool = field(default=True, metadata=_describe("check self-collision (pinocchio/coal)"))
    proposal_timeout: float = field(
        default=0.3, metadata=_describe("hold when the executing chunk gets no fresh proposal for this long, s")
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.velocity_scale <= 1.0:
            raise ValueError(f"parameter 'velocity_scale' must be in (0, 1], got {self.velocity_scale}")
        for name in ("max_chunk_age", "max_future", "tracking_allowance", "joint_state_timeout", "hold_duration",
                     "max_step", "proposal_timeout"):
            if getattr(self, name) < 0:
                raise ValueError(f"parameter '{name}' must be >= 0")
        for name in ("max_acceleration", "max_jerk"):
            if len(getattr(self, name)) != len(self.joint_names) or min(getattr(self, name)) <= 0:
                raise ValueError(f"parameter '{name}' needs one positive value per joint in joint_names")
        if any(lo >= hi for lo, hi in zip(self.workspace_min, self.workspace_max)) or len(self.workspace_min) != 3:
            raise ValueError("workspace_min must be below workspace_max, three values each")


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
    workspace: WorkspaceChecker | None = None,
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
        workspace: kinematic checks (box, table, self-collision), or None to skip them.
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
    verdict = _check_derivatives(config, names, times, positions)
    if verdict is not None:
        return verdict
    if workspace is not None:
        violation = workspace.check(positions)
        if violation is not None:
            return _reject(violation.reason, violation.detail)
    return Verdict(True, stamp=stamp, times=times, positions=positions)


def _check_derivatives(config: SafetyConfig, names: Sequence[str], times: np.ndarray,
                       positions: np.ndarray) -> Verdict | None:
    """Step size, acceleration and jerk between consecutive points (finite differences)."""
    steps = np.abs(np.diff(positions, axis=0))
    if steps.size and steps.max() > config.max_step + EPS:
        k, j = np.unravel_index(int(np.argmax(steps)), steps.shape)
        return _reject("max_step", f"{names[j]} moves {steps[k, j]:.3f} between points {k}-{k + 1} (max {config.max_step})")
    if len(times) < 3:
        return None
    velocity = np.diff(positions, axis=0) / np.diff(times)[:, None]
    mid = (times[1:] + times[:-1]) / 2
    acceleration = np.diff(velocity, axis=0) / np.diff(mid)[:, None]
    amax = np.asarray(config.max_acceleration)
    if np.any(np.abs(acceleration) > amax + EPS):
        k, j = np.argwhere(np.abs(acceleration) > amax + EPS)[0]
        return _reject("acceleration_limit", f"{names[j]} at {acceleration[k, j]:.2f} near point {k + 1} (max {amax[j]})")
    if len(times) < 4:
        return None
    jerk = np.diff(acceleration, axis=0) / np.diff((mid[1:] + mid[:-1]) / 2)[:, None]
    jmax = np.asarray(config.max_jerk)
    if np.any(np.abs(jerk) > jmax + EPS):
        k, j = np.argwhere(np.abs(jerk) > jmax + EPS)[0]
        return _reject("jerk_limit", f"{names[j]} at {jerk[k, j]:.1f} near point {k + 1} (max {jmax[j]})")
    return None
