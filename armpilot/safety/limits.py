"""Safety checks on a proposed joint trajectory chunk (pure).

A chunk is accepted only if every check passes; otherwise it is rejected with
a stable reason key and a detail naming the joint and point. Nothing is
clipped: the safety node holds the arm instead. Joints are matched by name;
the controller's order is ``limits.names``. A continuous joint's chunk is
shifted by whole turns so that its first point is nearest the measured angle
(the forwarded chunk carries the shifted values), then checked like any
other joint without position limits. Every point must leave room to brake
(within the acceleration and jerk limits, :mod:`armpilot.safety.stopping`)
inside the position limits, the box and above the table, so a hold from
anywhere in an accepted chunk stays safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from armpilot.fields import describe as _describe
from armpilot.control.trajectory import TrajectoryError, validate_trajectory
from armpilot.robot import JointLimits
from armpilot.safety.state_tracking import tracking_offset
from armpilot.safety.stopping import CLAMPED_OVERSHOOT, braking_distance, with_braking_tail
from armpilot.safety.workspace import WorkspaceChecker
from armpilot.rejections import Reason

#: Slack for rounding in limit comparisons (rad, m, rad/s).
EPS = 1e-9
#: Most samples checked on the move onto point 0 (a tiny ``max_step`` must not make the check unbounded).
MAX_WAY_SAMPLES = 64
#: Closest two points may be, s: closer ones vanish in nanosecond stamps and imply unbounded speed.
MIN_POINT_SPACING = 1e-3


@dataclass(frozen=True)
class SafetyConfig:
    """Limits the safety node enforces beyond the URDF's."""

    joint_names: tuple[str, ...] = field(
        default=(), metadata=_describe("arm controller joint order; empty = the robot profile's 'joints' "
                                       "(names must be the profile's joints)")
    )
    velocity_scale: float = field(
        default=1.0,
        metadata=_describe("fraction of the URDF velocity limits every command obeys, holds included, (0, 1]"),
    )
    max_chunk_age: float = field(default=0.5, metadata=_describe("reject chunks stamped longer ago than this, s"))
    max_future: float = field(default=0.05, metadata=_describe("reject chunks stamped further ahead than this, s"))
    max_horizon: float = field(
        default=120.0, metadata=_describe("reject chunks whose last point is due later than this after their stamp, s")
    )
    tracking_allowance: float = field(
        default=0.1, metadata=_describe("time the measured arm may lag the first point, s")
    )
    start_tolerance: float = field(
        default=0.0, metadata=_describe("with no command known (the first, or after the arm was moved), how "
                                        "far the first point may be from the measured arm beyond what the "
                                        "velocity limit reaches in the lead time, rad / m; > 0 lets that move "
                                        "exceed the limit by this / lead (a controller holding off the arm)")
    )
    joint_state_timeout: float = field(
        default=0.25, metadata=_describe("hold when /joint_states is older than this, s")
    )
    passive_state_timeout: float = field(
        default=1.0, metadata=_describe("hold when a joint the controller does not command (a separate gripper, the "
                                        "profile's passive_joints) has not been read for this long, s")
    )
    max_step: float = field(default=0.35, metadata=_describe("largest change of any joint between two points, rad / m"))
    table_clearance: float = field(default=0.003, metadata=_describe("watched points stay this far above the table, m"))
    self_collision: bool = field(default=True, metadata=_describe("check self-collision (pinocchio/coal)"))
    proposal_timeout: float = field(
        default=0.3, metadata=_describe("hold when the executing chunk gets no fresh proposal for this long, s")
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.velocity_scale <= 1.0:
            raise ValueError(f"parameter 'velocity_scale' must be in (0, 1], got {self.velocity_scale}")
        for name in ("max_chunk_age", "max_future", "max_horizon", "tracking_allowance", "start_tolerance",
                     "joint_state_timeout", "passive_state_timeout", "max_step", "proposal_timeout", "table_clearance"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):  # a NaN would turn its check off silently
                raise ValueError(f"parameter '{name}' must be a finite number >= 0, got {value}")
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"parameter 'joint_names' repeats a joint: {list(self.joint_names)}")

    def enforced(self, limits: JointLimits) -> JointLimits:
        """``limits`` as this node enforces them on every command it sends, holds included: the velocity
        limits times ``velocity_scale`` (rad/s or m/s), the rest as given."""
        return replace(limits, velocity=limits.velocity * self.velocity_scale)

    def hold_tolerance(self) -> float:
        """How far (s at the enforced velocity limit) a hold lets the measured arm be from the commanded path and
        still start on the path: ``tracking_allowance`` at the URDF limit, as ``CommandedPath`` allows, so a
        normal tracking lag under a small ``velocity_scale`` does not make a hold start from a lagging arm."""
        return self.tracking_allowance / self.velocity_scale


@dataclass(frozen=True)
class Verdict:
    """A check's outcome. On acceptance ``times``/``positions`` hold the points still
    ahead of ``now`` (P', ) and (P', J) in the controller's order, and ``sent_times``/``sent_positions`` the
    command that was checked: those points, then the stop after them (``with_braking_tail``; (P' + T,), (P' + T, J))."""

    accepted: bool
    reason: str = "ok"
    detail: str = ""
    stamp: float = 0.0
    times: np.ndarray | None = None
    positions: np.ndarray | None = None
    sent_times: np.ndarray | None = None
    sent_positions: np.ndarray | None = None
    #: (P',) a separately commanded gripper's positions at ``times`` (``gripper_relay.with_gripper``), or None
    gripper: np.ndarray | None = None


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
    passive: Mapping[str, float] | None = None,
    reference: np.ndarray | None = None,
    reference_velocity: np.ndarray | None = None,
) -> Verdict:
    """Check one chunk against limits, stamps and the measured state.

    Args:
        limits: limits in the controller's order (``limits.names``), with acceleration and jerk.
        stamp: header stamp, s (0 = now).
        times: (P,) time_from_start, s.
        positions: (P, J) in message order.
        now: current time on the same clock, s.
        measured: (J,) measured positions in controller order, or None if unknown.
        velocities: optional (P, J) in message order.
        workspace: kinematic checks (box, table, self-collision), or None to skip them.
        passive: measured positions of joints the controller does not command (a separate gripper).
        reference: (J,) where the controller is heading now (``CommandedPath.reference``): it interpolates
            from there to the first point within the lead time, so that jump must be within the velocity
            limit. None when no command is known: ``measured`` stands in, and the jump may exceed what the
            limit reaches by ``start_tolerance`` (the controller holds where it was told, off the measured
            arm by its tracking error).
        reference_velocity: (J,) the controller's velocity at ``now`` (``CommandedPath.velocity``); None = at rest.
            With the move into point 0 and the chunk's first segments it bounds the acceleration and jerk where
            the controller joins the chunk (``junction_derivatives``).
    """
    if measured is None:
        return _reject(Reason.NO_JOINT_STATE, "no fresh /joint_states: cannot check continuity")
    try:
        times, positions, velocities = validate_trajectory(
            joint_names, limits.names, times, positions, velocities
        )
    except TrajectoryError as error:
        return _reject(error.reason, error.detail)
    if len(times) > 1 and np.min(np.diff(times)) < MIN_POINT_SPACING:
        return _reject(Reason.TIME_NOT_INCREASING, f"points closer than {MIN_POINT_SPACING * 1e3:.0f} ms apart")
    if times[-1] > config.max_horizon:
        return _reject(Reason.OVERSIZED, f"its last point is due {times[-1]:.1f} s after its stamp (max_horizon "
                                         f"{config.max_horizon} s)")
    stamp = now if stamp == 0.0 else stamp
    if now - stamp > config.max_chunk_age:
        return _reject(Reason.STALE, f"stamped {now - stamp:.3f} s ago (max {config.max_chunk_age} s)")
    if stamp - now > config.max_future:
        return _reject(Reason.FUTURE_STAMP, f"stamped {stamp - now:.3f} s ahead (max {config.max_future} s)")
    ahead = stamp + times > now
    if not np.any(ahead):
        return _reject(Reason.STALE, "every point is already in the past")
    times, positions = times[ahead], positions[ahead]
    velocities = None if velocities is None else velocities[ahead]
    names = limits.names
    # continuous joints in the turn the controller follows (the reference's; the measured one's before any command)
    positions = unwrap_to(positions, measured if reference is None else reference, limits.continuous)
    below = positions < limits.lower - EPS
    above = positions > limits.upper + EPS
    if np.any(below | above):
        k, j = np.argwhere(below | above)[0]
        return _reject(
            Reason.POSITION_LIMIT,
            f"{names[j]} = {positions[k, j]:.4f} at point {k} outside [{limits.lower[j]}, {limits.upper[j]}]",
        )
    vmax = config.enforced(limits).velocity
    lead = stamp + times[0] - now
    if reference is None:
        origin, slack = measured, config.start_tolerance
    else:
        origin, slack = reference, 0.0
    for start, reach, what in ((origin, vmax * lead + slack, "where the controller is heading"),
                               (measured, vmax * lead + tracking_offset(vmax, config.tracking_allowance), "measured")):
        jump = np.abs(limits.difference(positions[0], start))
        if np.any(jump > reach + EPS):
            j = int(np.argmax(jump - reach))
            return _reject(Reason.DISCONTINUITY, f"{names[j]} first point {jump[j]:.4f} from {what}; reachable "
                                            f"{reach[j]:.4f} in {lead:.3f} s at the velocity limit")
    if len(times) > 1:
        speed = np.abs(np.diff(positions, axis=0)) / np.diff(times)[:, None]
        if np.any(speed > vmax + EPS):
            k, j = np.argwhere(speed > vmax + EPS)[0]
            return _reject(Reason.VELOCITY_LIMIT,
                           f"{names[j]} at {speed[k, j]:.3f} between points {k}-{k + 1} (max {vmax[j]:.3f})")
    if velocities is not None and np.any(np.abs(velocities) > vmax + EPS):
        k, j = np.argwhere(np.abs(velocities) > vmax + EPS)[0]
        return _reject(Reason.VELOCITY_LIMIT,
                       f"{names[j]} commanded velocity {velocities[k, j]:.3f} (max {vmax[j]:.3f})")
    # as sent: the chunk, then the stop after it (``with_braking_tail``), whose start must join the chunk's end
    # within the acceleration and jerk limits too (a chunk ending while it speeds up meets a stop starting at
    # zero acceleration)
    sent_times, sent = with_braking_tail(config.enforced(limits), times, positions, origin, lead)
    verdict = _check_derivatives(config, limits, sent_times, sent, len(times))
    if verdict is None:
        verdict = _check_junction(limits, origin, reference_velocity, lead, sent_times, sent)
    if verdict is not None:
        return verdict
    # the controller moves from ``origin`` to point 0 within ``lead``: a hold may brake at that speed too
    approach = np.clip(limits.difference(positions[0], origin) / max(lead, MIN_POINT_SPACING), -vmax, vmax)
    stops = braking_ends(limits, times, positions, vmax, approach)
    # on the way to point 0 a stop that overshoots a limit by at most CLAMPED_OVERSHOOT ends at it (stopping.py);
    # half of it here: a hold brakes from the path's state at its own instant, rounded its own way (accepting
    # up to the full margin let a stop computed 1 ulp further pass the limit and come back)
    slack = np.full((len(stops), 1), EPS)
    slack[0] = CLAMPED_OVERSHOOT / 2.0
    outside = (stops < limits.lower - slack) | (stops > limits.upper + slack)
    if np.any(outside):
        k, j = np.argwhere(outside)[0]
        where = "on the way to point 0" if k == 0 else f"from point {k - 1}"
        return _reject(Reason.BRAKING_DISTANCE, f"{names[j]} would stop at {stops[k, j]:.4f} {where}, outside "
                                           f"[{limits.lower[j]}, {limits.upper[j]}]")
    if workspace is not None:
        violation = workspace.check(positions, names, passive)
        if violation is None:  # the controller's straight move onto point 0 can be long (a far target, a long lead)
            violation = workspace.check(on_the_way(origin, positions[0], config.max_step), names, passive,
                                        label="the move onto point 0, sample ")
        if violation is None:
            violation = workspace.check(stops, names, passive, self_collision=False, label="braking stop of ")
        if violation is None:  # every point of the stop sent after the chunk (``with_braking_tail``), collisions too
            if len(sent) > len(times):
                violation = workspace.check(sent[len(times):], names, passive, label="the stop after the last point, ")
        if violation is not None:
            return _reject(violation.reason, violation.detail)
    return Verdict(True, stamp=stamp, times=times, positions=positions, sent_times=sent_times, sent_positions=sent)


def on_the_way(origin: np.ndarray, target: np.ndarray, spacing: float) -> np.ndarray:
    """(K, J) points strictly between ``origin`` and ``target`` (J,) on the straight joint-space line a trajectory
    controller follows, no joint more than ``spacing`` apart from one to the next (K = 0 for a short move)."""
    count = min(int(np.ceil(np.max(np.abs(target - origin), initial=0.0) / max(spacing, 1e-6))), MAX_WAY_SAMPLES)
    fractions = np.arange(1, count)[:, None] / max(count, 1)
    return origin + fractions * (target - origin)


def unwrap_to(positions: np.ndarray, measured: np.ndarray, continuous: np.ndarray) -> np.ndarray:
    """(P, J) with continuous joints shifted by whole turns so the first point is nearest ``measured`` (J,)."""
    if not np.any(continuous):
        return positions
    turns = np.where(continuous, np.round((measured - positions[0]) / (2 * np.pi)), 0.0)
    return positions + 2 * np.pi * turns


def braking_ends(limits: JointLimits, times: np.ndarray, positions: np.ndarray, vmax: np.ndarray,
                 approach: np.ndarray | None = None) -> np.ndarray:
    """(P, J) where each joint comes to rest if a hold brakes just after point 0 (at the speed of the segment
    leaving it) and just before each later point k (at the speed of the segment reaching it: the arm is as far
    along as it gets in that segment, still at its speed), velocities capped at the velocity limit. With
    ``approach`` (J,), the speed of the move into point 0 (from where the controller is), one more row comes
    first: braking just before point 0 at that speed ((P + 1, J) in all; a one-point chunk is checked too).
    """
    rows = [] if approach is None else [positions[:1] + braking_distance(approach[None], limits.acceleration,
                                                                         limits.jerk)]
    if len(times) < 2:
        return np.vstack([*rows, positions])
    segment = np.clip(np.diff(positions, axis=0) / np.diff(times)[:, None], -vmax, vmax)
    brake = braking_distance(segment, limits.acceleration, limits.jerk)
    return np.vstack([*rows, positions[:1] + brake[:1], positions[1:] + brake])


def junction_derivatives(origin: np.ndarray, velocity: np.ndarray | None, lead: float, times: np.ndarray,
                         positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Acceleration (<= 2, J) and jerk (<= 3, J) where the controller joins a chunk, by the finite differences
    the chunk's own points are checked with, on the sequence the controller follows: its velocity at ``now``
    (``velocity`` (J,), None = at rest) held for two ``lead`` s before ``now`` (at zero acceleration), ``origin``
    (J,) at ``now``, then the chunk's points (P, J) at ``now + lead + times - times[0]`` (as sent: with the stop
    after it). Rows: acceleration at ``origin`` and at point 0; jerk into ``origin`` (from the steady velocity
    before), between them, and from point 0 on (fewer rows for a one-point sequence)."""
    h = max(lead, MIN_POINT_SPACING)
    before = np.zeros_like(origin) if velocity is None else np.asarray(velocity, float)
    t = np.concatenate([[-2 * h, -h, 0.0], h + times[:3] - times[0]])
    q = np.vstack([origin - 2 * before * h, origin - before * h, origin, positions[:3]])
    acceleration, jerk = finite_derivatives(t, q)
    return acceleration[1:3], jerk[:3]


def finite_derivatives(times: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P - 2, J) acceleration and (P - 3, J) jerk of points (P, J) at ``times`` (P,): 2 and 6 times the second
    and third divided differences (segment slopes differenced at their midpoints; for evenly spaced points the
    plain finite differences). A divided difference is a weighted mean of the derivative of any smooth path through
    the points, so neither value exceeds what a path within the limits reaches, however uneven the spacing (a
    chunk's 1 ms segments then a stop's 20 ms ones; empty rows when there are too few points)."""
    velocity = np.diff(positions, axis=0) / np.diff(times)[:, None]
    acceleration = 2.0 * np.diff(velocity, axis=0) / (times[2:] - times[:-2])[:, None]
    jerk = 3.0 * np.diff(acceleration, axis=0) / (times[3:] - times[:-3])[:, None]
    return acceleration, jerk


def _check_junction(limits: JointLimits, origin: np.ndarray, velocity: np.ndarray | None, lead: float,
                    times: np.ndarray, positions: np.ndarray) -> Verdict | None:
    """The controller's step onto the chunk (``junction_derivatives``) within the acceleration and jerk limits."""
    acceleration, jerk = junction_derivatives(origin, velocity, lead, times, positions)
    leaving, joining = "where the controller leaves its path for point 0", "at point 0, joining the chunk"
    for values, bound, reason, unit, where in (
            (acceleration, limits.acceleration, Reason.ACCELERATION_LIMIT, "rad/s^2", (leaving, joining)),
            (jerk, limits.jerk, Reason.JERK_LIMIT, "rad/s^3", (leaving, joining, "just after point 0"))):
        if bound is None:
            continue
        over = np.abs(values) > np.asarray(bound) + EPS
        if np.any(over):
            k, j = np.argwhere(over)[0]
            return _reject(reason, f"{limits.names[j]} at {values[k, j]:.2f} {unit} {where[k]} "
                                   f"(max {np.asarray(bound)[j]}; lead {lead:.3f} s)")
    return None


def _check_derivatives(config: SafetyConfig, limits: JointLimits, times: np.ndarray, positions: np.ndarray,
                       chunk_points: int | None = None) -> Verdict | None:
    """Step size, acceleration and jerk between consecutive points (finite differences); points from
    ``chunk_points`` on are the stop sent after the chunk (named so in the detail)."""
    names = limits.names
    end = len(times) if chunk_points is None else chunk_points

    def near(k: int) -> str:
        return f"point {k}" if k < end else f"the stop after the chunk, {k - end + 1} points past its end"

    steps = np.abs(np.diff(positions, axis=0))
    if steps.size and steps.max() > config.max_step + EPS:
        k, j = np.unravel_index(int(np.argmax(steps)), steps.shape)
        return _reject(Reason.MAX_STEP,
                       f"{names[j]} moves {steps[k, j]:.3f} between points {k}-{k + 1} (max {config.max_step})")
    if len(times) < 3:
        return None
    acceleration, jerk = finite_derivatives(times, positions)
    amax = np.asarray(limits.acceleration)
    if np.any(np.abs(acceleration) > amax + EPS):
        k, j = np.argwhere(np.abs(acceleration) > amax + EPS)[0]
        return _reject(Reason.ACCELERATION_LIMIT,
                       f"{names[j]} at {acceleration[k, j]:.2f} near {near(k + 1)} (max {amax[j]})")
    jmax = np.asarray(limits.jerk)
    if np.any(np.abs(jerk) > jmax + EPS):
        k, j = np.argwhere(np.abs(jerk) > jmax + EPS)[0]
        return _reject(Reason.JERK_LIMIT, f"{names[j]} at {jerk[k, j]:.1f} near {near(k + 1)} (max {jmax[j]})")
    return None
