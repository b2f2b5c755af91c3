"""Chunk-switch metrics (pure numpy): how far a new command disagrees with the one it replaces.

At a switch the controller leaves the trajectory it was following for the new
one. Compared at the new trajectory's first point ``t0`` (the first instant
both define), each trajectory's position (linear), velocity (slope of the
segment at ``t0``) and acceleration (change of slope over that segment's
start) are differenced; the largest absolute difference over the joints is the
switch's jump. Holds and other commands with fewer than three points carry no
acceleration and are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from armpilot.policies.chunking import resample_in_time

#: Fewest points a command needs for a position, velocity and acceleration.
MIN_POINTS = 3


def kinematics_at(times: np.ndarray, positions: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Position, velocity and acceleration (each (J,)) of a piecewise-linear trajectory at ``t``.

    Args:
        times: (P,) increasing absolute times, s, P >= 3. positions: (P, J).
        t: s; held at the ends (velocity/acceleration of the first/last segment).
    """
    times, positions = np.asarray(times, float), np.asarray(positions, float)
    slopes = np.diff(positions, axis=0) / np.diff(times)[:, None]  # (P-1, J)
    k = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(slopes) - 1))
    position = resample_in_time(np.array([t]), times, positions)[0]
    if k == 0:
        acceleration = (slopes[1] - slopes[0]) / (0.5 * (times[2] - times[0]))
    else:
        acceleration = (slopes[k] - slopes[k - 1]) / (0.5 * (times[k + 1] - times[k - 1]))
    return position, slopes[k], acceleration


def switch_jump(old: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray]) -> tuple[float, float, float]:
    """(position rad, velocity rad/s, acceleration rad/s^2) jump from ``old`` to ``new`` at new's first point.

    Args:
        old, new: (times (P,) absolute s, positions (P, J)), each with P >= 3.
    """
    t0 = float(new[0][0])
    before = kinematics_at(*old, t0)
    after = kinematics_at(*new, t0)
    return tuple(float(np.max(np.abs(a - b))) for a, b in zip(after, before))  # type: ignore[return-value]


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": float(p50), "p95": float(p95), "max": float(np.max(values))}


@dataclass
class SwitchLog:
    """Collects the jump of every switch between commands of >= 3 points."""

    previous: tuple[np.ndarray, np.ndarray] | None = None
    jumps: list[tuple[float, float, float]] = field(default_factory=list)

    def add(self, times: np.ndarray, positions: np.ndarray) -> None:
        """A command as absolute times (P,), s, and positions (P, J); a short one (a hold) ends the chain."""
        times, positions = np.asarray(times, float), np.asarray(positions, float)
        if len(times) < MIN_POINTS or not np.all(np.diff(times) > 0) or not np.all(np.isfinite(positions)):
            self.previous = None
            return
        if self.previous is not None and self.previous[1].shape[1] == positions.shape[1]:
            self.jumps.append(switch_jump(self.previous, (times, positions)))
        self.previous = (times, positions)

    def reset(self) -> None:
        """A new episode: the next command is no switch."""
        self.previous = None

    def summary(self) -> dict[str, object]:
        """count and p50/p95/max of the position (rad), velocity (rad/s) and acceleration (rad/s^2) jumps."""
        columns = list(zip(*self.jumps)) if self.jumps else [[], [], []]
        return {"count": len(self.jumps), "position_rad": _percentiles(list(columns[0])),
                "velocity_rad_s": _percentiles(list(columns[1])),
                "acceleration_rad_s2": _percentiles(list(columns[2]))}
