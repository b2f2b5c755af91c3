"""Decelerating stops within acceleration and jerk limits (pure).

Each joint brakes on its own with a raised-cosine velocity profile
``v(t) = v0 (1 + cos(pi t / T)) / 2`` for ``0 <= t <= T``: the acceleration
starts and ends at zero (no step at the start, as joint_trajectory_controller's
decelerate-on-cancel avoids), peaks at ``pi |v0| / (2 T)`` and the jerk at
``pi^2 |v0| / (2 T^2)``. ``T`` is the shortest time that keeps both within
the joint's limits; the joint travels ``v0 T / 2`` while braking. A joint
whose braking carries it past a position limit then comes back on a
cycloidal profile ``p(t) = p1 + d (s - sin(2 pi s) / (2 pi))``, ``s = t / R``
(velocity, acceleration and jerk zero at both ends) within its velocity,
acceleration and jerk limits, to the limit or, for a joint measured outside
its limits already, to where it was measured: a hold never ends further
outside than the joint was, and never drags a joint measured outside
(miscalibrated, pushed by contact) across its range. Times in s, positions in
rad or m.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from armpilot.robot import JointLimits

#: Spacing of the stop trajectory's points, s.
STOP_POINT_SPACING = 0.02
#: Most points in a stop command: a longer stop (limits far apart: a 10^4 rad/s placeholder velocity braking at
#: 1 rad/s^2 made 785,399 points) spaces them wider.
MAX_STOP_POINTS = 1000
#: Shortest stop command, s (a joint at rest still gets a point this far ahead).
MIN_STOP_TIME = 0.05
#: A joint whose braking would carry it at most this far past a position limit (rad or m) stops at the limit
#: instead (braking over the distance left, a little harder): a closed gripper reaches its limit at a tiny speed.
CLAMPED_OVERSHOOT = 1e-4


@dataclass(frozen=True)
class StopTrajectory:
    """A stop command: times (P,) from now, positions and velocities (P, J); ``start`` (J,) the state it brakes
    from, at time 0 (not a point of the command: the controller is there now)."""

    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    start: np.ndarray


def braking_time(velocity: np.ndarray, max_acceleration: np.ndarray, max_jerk: np.ndarray) -> np.ndarray:
    """(…, J) shortest raised-cosine braking time per joint, s."""
    speed = np.abs(velocity)
    by_accel = np.pi * speed / (2.0 * max_acceleration)
    by_jerk = np.sqrt(np.pi**2 * speed / (2.0 * max_jerk))
    return np.maximum(by_accel, by_jerk)


def braking_distance(velocity: np.ndarray, max_acceleration: np.ndarray, max_jerk: np.ndarray) -> np.ndarray:
    """(…, J) signed distance travelled while braking from ``velocity``."""
    return velocity * braking_time(velocity, max_acceleration, max_jerk) / 2.0


def stop_trajectory(
    position: np.ndarray,
    velocity: np.ndarray,
    max_acceleration: np.ndarray,
    max_jerk: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    max_velocity: np.ndarray | None = None,
) -> StopTrajectory:
    """Bring every joint from (position, velocity) to rest within its limits.

    Args:
        position, velocity: (J,) the state the controller is following now.
        max_acceleration, max_jerk: (J,) positive limits.
        lower, upper: (J,) position limits (+-inf for continuous joints).
        max_velocity: (J,) positive velocity limits of the return move (unbounded when None).

    A joint whose stop would cross a position limit still brakes within its
    acceleration and jerk limits, then returns (module doc; the caller reports
    it: :func:`crosses_limit`). Nothing here ever steps a position; the last
    point is inside the limits, or no further outside than ``position``.
    """
    position = np.asarray(position, float)
    velocity = np.asarray(velocity, float)
    max_velocity = np.full(len(position), np.inf) if max_velocity is None else np.asarray(max_velocity, float)
    duration = braking_time(velocity, max_acceleration, max_jerk)
    rest = position + np.where(duration > 0, velocity * duration / 2.0, 0.0)
    low, high = np.minimum(lower, position), np.maximum(upper, position)
    inside = np.clip(rest, low, high)
    clamped = np.abs(inside - rest) <= CLAMPED_OVERSHOOT
    # a joint that would pass its limit by at most CLAMPED_OVERSHOOT brakes on the same raised cosine over the
    # distance left, ending at the limit: positions and velocities agree, so a controller's spline through them
    # never passes it (clipping the points left the braking velocity before the limit: the spline passed it
    # by 1e-4 rad and the stop's jerk spiked); one already at the limit stops there
    short = clamped & (inside != rest)
    left = inside - position
    toward = short & (left * velocity > 0)
    duration = np.where(toward, 2.0 * left / np.where(toward, velocity, 1.0), duration)
    velocity = np.where(short & ~toward, 0.0, velocity)
    duration = np.where(short & ~toward, 0.0, duration)
    rest = np.where(short, inside, rest)
    back = return_time(np.where(clamped, 0.0, inside - rest), max_velocity, max_acceleration, max_jerk)
    braked = float(duration.max(initial=0.0))
    horizon = max(braked + float(back.max(initial=0.0)), MIN_STOP_TIME)
    count = min(max(int(np.ceil(horizon / STOP_POINT_SPACING)), 1), MAX_STOP_POINTS)
    times = np.linspace(horizon / count, horizon, count)
    t = times[:, None]
    span = np.where(duration > 0, duration, 1.0)[None, :]
    phase = np.clip(t / span, 0.0, 1.0)
    travelled = velocity * span * (phase + np.sin(np.pi * phase) / np.pi) / 2.0
    positions = position + np.where(duration[None, :] > 0, travelled, 0.0)
    velocities = np.where(phase < 1.0, velocity * (1.0 + np.cos(np.pi * phase)) / 2.0, 0.0)
    if np.any(back > 0):  # every joint is at rest by ``braked``; the ones outside their limits come back
        back_span = np.where(back > 0, back, 1.0)[None, :]
        along = np.clip((t - braked) / back_span, 0.0, 1.0)
        offset = inside - rest
        cycloid = along - np.sin(2.0 * np.pi * along) / (2.0 * np.pi)
        positions = positions + np.where(back[None, :] > 0, offset * cycloid, 0.0)
        returning = (back[None, :] > 0) & (along > 0.0) & (along < 1.0)
        velocities = velocities + np.where(
            returning, offset * (1.0 - np.cos(2.0 * np.pi * along)) / back_span, 0.0)
    positions = np.where(short[None, :], np.clip(positions, low, high), positions)  # rounding at the limit
    return StopTrajectory(times, positions, velocities, position.copy())


def return_time(offset: np.ndarray, max_velocity: np.ndarray, max_acceleration: np.ndarray,
                max_jerk: np.ndarray) -> np.ndarray:
    """(J,) shortest cycloidal move from rest over ``offset`` to rest within the limits, s (0: no move).

    The profile's peaks are ``2 d / R`` (velocity), ``2 pi d / R^2``
    (acceleration) and ``4 pi^2 d / R^3`` (jerk) for a distance ``d``.
    """
    d = np.abs(offset)
    by_velocity = 2.0 * d / max_velocity
    by_accel = np.sqrt(2.0 * np.pi * d / max_acceleration)
    by_jerk = np.cbrt(4.0 * np.pi**2 * d / max_jerk)
    return np.where(d > 0, np.maximum.reduce([by_velocity, by_accel, by_jerk]), 0.0)


def crosses_limit(stop: StopTrajectory, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """(J,) True where the stop leaves the position limits."""
    return np.any((stop.positions < lower - 1e-9) | (stop.positions > upper + 1e-9), axis=0)


def with_braking_tail(limits: "JointLimits", times: np.ndarray, positions: np.ndarray, origin: np.ndarray,
                      lead: float) -> tuple[np.ndarray, np.ndarray]:
    """A chunk as sent to the controller: its points (P,) s, (P, J) and then a stop from its last point.

    A trajectory controller holds the last point of what it was sent; a chunk that ends moving would stop
    there in one step. The tail brakes each joint from the speed it reaches the last point with (the last
    segment's; for a one-point chunk the move onto it from ``origin`` (J,), where the controller is, ``lead``
    s before it) on ``stop_trajectory``'s profile, within ``limits`` (the enforced ones: velocity, acceleration
    and jerk). ``check_chunk`` refuses a chunk whose braking from its last point would leave the position limits
    or the workspace, so the tail stays inside them. Unchanged when the chunk ends at rest or the limits name no
    acceleration.
    """
    times, positions = np.asarray(times, float), np.asarray(positions, float)
    if len(times) > 1:
        speed = (positions[-1] - positions[-2]) / (times[-1] - times[-2])
    else:
        speed = limits.difference(positions[0], origin) / max(lead, 1e-3)
    speed = np.clip(speed, -limits.velocity, limits.velocity)
    if limits.acceleration is None or limits.jerk is None or not np.any(np.abs(speed) > 1e-9):
        return times, positions
    tail = stop_trajectory(positions[-1], speed, limits.acceleration, limits.jerk, limits.lower, limits.upper,
                           limits.velocity)
    return np.concatenate([times, times[-1] + tail.times]), np.vstack([positions, tail.positions])
