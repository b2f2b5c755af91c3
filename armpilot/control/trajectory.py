"""Joint trajectories the way ros2_control's joint_trajectory_controller takes them.

Pure core shared by the sim's controller and the safety node: validation of an
incoming trajectory (names, lengths, finite values, increasing times) and a
follower that samples it in time. Times in seconds, positions in rad / m.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from armpilot.rejections import Reason

#: Stamps within this of each other (s) are the same instant (nanosecond rounding of float seconds).
STAMP_TOLERANCE = 1e-6


class TrajectoryError(ValueError):
    """A trajectory that must be rejected; ``reason`` is a short stable key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class JointTrajectory:
    """A validated trajectory in the controller's joint order.

    Attributes:
        start_time: absolute time (s) that ``times`` count from.
        times: time_from_start of each point (P,), strictly increasing, >= 0.
        positions: (P, J) targets in the controller's joint order.
        velocities: (P, J) or None.
    """

    start_time: float
    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray | None = None


def validate_trajectory(
    joint_names: Sequence[str],
    controller_joints: Sequence[str],
    times: np.ndarray,
    positions: np.ndarray,
    velocities: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check a trajectory and reorder it to ``controller_joints``.

    Args:
        joint_names: names in the message's order (J,).
        controller_joints: the controller's joint order (J,).
        times: (P,) time_from_start, s.
        positions: (P, J) in message order.
        velocities: (P, J) in message order, or None.

    Returns:
        times, positions and velocities in the controller's order.

    Raises:
        TrajectoryError: with reason ``empty``, ``duplicate_joint``,
            ``unknown_joint``, ``missing_joint``, ``wrong_length``,
            ``not_finite`` or ``time_not_increasing``.
    """
    names = list(joint_names)
    if len(times) == 0:
        raise TrajectoryError(Reason.EMPTY, "the trajectory has no points")
    if len(set(names)) != len(names):
        dupes = sorted(n for n, count in Counter(names).items() if count > 1)[:20]
        raise TrajectoryError(Reason.DUPLICATE_JOINT, f"joint names repeated: {dupes}")
    unknown = [n for n in names if n not in controller_joints]
    if unknown:
        raise TrajectoryError(Reason.UNKNOWN_JOINT, f"not controlled here: {unknown}")
    missing = [n for n in controller_joints if n not in names]
    if missing:
        raise TrajectoryError(Reason.MISSING_JOINT, f"joints not commanded: {missing}")
    times = np.asarray(times, dtype=float)
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 2 or positions.shape != (len(times), len(names)):
        raise TrajectoryError(
            Reason.WRONG_LENGTH,
            f"positions have shape {positions.shape}, expected ({len(times)}, {len(names)})",
        )
    if velocities is not None:
        velocities = np.asarray(velocities, dtype=float)
        if velocities.shape != positions.shape:
            raise TrajectoryError(
                Reason.WRONG_LENGTH, f"velocities have shape {velocities.shape}, expected {positions.shape}"
            )
    values = [times, positions] + ([velocities] if velocities is not None else [])
    if not all(np.all(np.isfinite(v)) for v in values):
        raise TrajectoryError(Reason.NOT_FINITE, "NaN or inf in times, positions or velocities")
    if times[0] < 0.0 or np.any(np.diff(times) <= 0.0):
        raise TrajectoryError(Reason.TIME_NOT_INCREASING, f"time_from_start must increase from >= 0: {times.tolist()}")
    order = np.array([names.index(n) for n in controller_joints])
    return times, positions[:, order], None if velocities is None else velocities[:, order]


class TrajectoryFollower:
    """Samples the active trajectory; holds the last target when there is none.

    Like joint_trajectory_controller: a new trajectory replaces the rest of the
    old one; it starts at ``header.stamp`` (or at receipt when the stamp is
    zero); the segment before the first point starts from the current desired
    state (``interpolate_from_desired_state``), anchored at receipt when the
    stamp is already past so the arm never jumps; positions-only points are
    interpolated linearly, points with velocities by cubic Hermite splines.
    """

    def __init__(self, initial_positions: np.ndarray) -> None:
        self._hold = np.asarray(initial_positions, dtype=float).copy()
        self._knots_t: np.ndarray | None = None
        self._knots_q: np.ndarray | None = None
        self._knots_v: np.ndarray | None = None

    @property
    def active(self) -> bool:
        """True while a trajectory is being followed."""
        return self._knots_t is not None

    def hold(self, positions: np.ndarray) -> None:
        """Drop any trajectory and hold ``positions`` (J,)."""
        self._hold = np.asarray(positions, dtype=float).copy()
        self._knots_t = self._knots_q = self._knots_v = None

    def set_trajectory(self, trajectory: JointTrajectory, now: float) -> None:
        """Replace whatever is executing with ``trajectory`` at time ``now`` (s)."""
        current_q, current_v = self.sample(now)
        absolute = trajectory.start_time + trajectory.times
        anchor = max(trajectory.start_time, now)
        keep = absolute > anchor
        if not np.any(keep):  # every point already past: go to the last one now
            keep[-1] = True
            absolute = absolute.copy()
            absolute[-1] = anchor + 1e-3
        self._knots_t = np.concatenate([[anchor], absolute[keep]])
        self._knots_q = np.vstack([current_q, trajectory.positions[keep]])
        if trajectory.velocities is None:
            self._knots_v = None
        else:
            self._knots_v = np.vstack([current_v, trajectory.velocities[keep]])

    def sample(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Desired positions and velocities (J,) at time ``now`` (s)."""
        if self._knots_t is None:
            return self._hold.copy(), np.zeros_like(self._hold)
        t, q = self._knots_t, self._knots_q
        if now <= t[0]:
            return q[0].copy(), np.zeros_like(q[0])
        if now >= t[-1]:
            self._hold = q[-1].copy()
            end_v = np.zeros_like(self._hold)
            self._knots_t = self._knots_q = self._knots_v = None
            return self._hold.copy(), end_v
        k = int(np.searchsorted(t, now, side="right")) - 1
        dt = t[k + 1] - t[k]
        s = (now - t[k]) / dt
        if self._knots_v is None:
            return q[k] + s * (q[k + 1] - q[k]), (q[k + 1] - q[k]) / dt
        v0, v1 = self._knots_v[k] * dt, self._knots_v[k + 1] * dt
        h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
        pos = h00 * q[k] + h10 * v0 + h01 * q[k + 1] + h11 * v1
        d00, d10, d01, d11 = 6 * s**2 - 6 * s, 3 * s**2 - 4 * s + 1, -6 * s**2 + 6 * s, 3 * s**2 - 2 * s
        vel = (d00 * q[k] + d10 * v0 + d01 * q[k + 1] + d11 * v1) / dt
        return pos, vel
