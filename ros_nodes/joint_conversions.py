"""JointState / JointTrajectory <-> numpy conversions (see ``conversions``)."""

from __future__ import annotations

import array
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
from builtin_interfaces.msg import Duration
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from .conversion_core import (ConversionError, StampLike, f64_array, set_header,
                              split_sec, stamp_to_sec)


def joint_state_to_msg(names: Sequence[str], positions: Any, velocities: Any = None,
                       efforts: Any = None, stamp: StampLike = None) -> JointState:
    """Builds a ``JointState``.

    Args:
        names: J joint names. positions: (J,) rad or m.
        velocities: (J,) rad/s or m/s, or None. efforts: (J,) N*m or N, or None.
        stamp: Header stamp.

    Raises:
        ConversionError: An array's length differs from ``len(names)``.
    """
    msg = JointState()
    set_header(msg, stamp, "")
    msg.name = [str(n) for n in names]
    for field, values in (("position", positions), ("velocity", velocities),
                          ("effort", efforts)):
        if values is not None:
            arr = f64_array(values)
            if len(arr) != len(msg.name):
                raise ConversionError(f"JointState {field} has {len(arr)} values for "
                                      f"{len(msg.name)} joint names")
            setattr(msg, field, arr)
    return msg


def joint_state_from_msg(msg: JointState) -> tuple[
        tuple[str, ...], np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """Reads (names, positions (J,), velocities (J,) | None, efforts (J,) | None).

    Arrays are float64 views of the message; empty velocity/effort -> None
    (empty position -> a (0,) array). Raises ConversionError for a length that
    is neither 0 nor ``len(names)``.
    """
    names = tuple(msg.name)
    out = []
    for field in ("position", "velocity", "effort"):
        values = np.frombuffer(getattr(msg, field), dtype=np.float64)
        if values.size not in (0, len(names)):
            raise ConversionError(f"JointState {field} has {values.size} values for "
                                  f"{len(names)} joint names")
        out.append(values)
    return names, out[0], (out[1] if out[1].size else None), (out[2] if out[2].size else None)


def positions_by_name(msg: JointState, joint_names: Sequence[str]) -> np.ndarray:
    """(len(joint_names),) positions of ``joint_names`` from a JointState, in that order (a copy).

    Raises ConversionError naming what is wrong: lengths that do not match, no positions, a joint missing.
    """
    names, positions, _, _ = joint_state_from_msg(msg)
    if len(positions) != len(names):
        raise ConversionError(f"JointState has no positions for its {len(names)} joint names")
    index = {n: k for k, n in enumerate(names)}
    missing = [n for n in joint_names if n not in index]
    if missing:
        raise ConversionError(f"JointState lacks joints {missing} (it has {list(names)[:20]})")
    return positions[[index[n] for n in joint_names]].copy()


def positions_merged(msg: JointState, joint_names: Sequence[str], latest: dict[str, float]) -> np.ndarray | None:
    """``positions_by_name`` for /joint_states that several drivers share (an arm's, a gripper's on a controller of
    its own): ``latest`` (name -> position, updated here) keeps each of ``joint_names``' last reading. The (J,)
    positions in ``joint_names`` order once every one was read, else None.

    Raises ConversionError for a message whose lengths do not match.
    """
    names, positions, _, _ = joint_state_from_msg(msg)
    if len(positions) != len(names):
        raise ConversionError(f"JointState has no positions for its {len(names)} joint names")
    wanted = set(joint_names)
    latest.update((n, float(p)) for n, p in zip(names, positions) if n in wanted)
    if len(latest) < len(wanted):
        return None
    return np.array([latest[n] for n in joint_names])


@dataclass(frozen=True, eq=False)
class TrajectoryArrays:
    """A ``JointTrajectory`` as read-only arrays.

    Attributes:
        joint_names: J names.
        stamp_sec: Header stamp, seconds (0 means "start now").
        times: (P,) time_from_start, seconds.
        positions: (P, J) rad or m.
        velocities: (P, J) rad/s or m/s, or None when the points have none.
    """

    joint_names: tuple[str, ...]
    stamp_sec: float
    times: np.ndarray
    positions: np.ndarray
    velocities: Optional[np.ndarray]


def joint_trajectory_to_msg(joint_names: Sequence[str], times: Any, positions: Any,
                            velocities: Any = None, stamp: StampLike = None,
                            frame_id: str = "") -> JointTrajectory:
    """Builds a ``JointTrajectory`` from arrays.

    Args:
        joint_names: J names.
        times: (P,) time_from_start, seconds, finite and strictly increasing.
        positions: (P, J) rad or m. velocities: (P, J) rad/s or m/s, or None.
        stamp, frame_id: Header fields.

    Raises:
        ConversionError: Shape mismatch, non-finite values or unordered times.
    """
    names = [str(n) for n in joint_names]
    t = np.asarray(times, dtype=np.float64)
    q = np.ascontiguousarray(positions, dtype=np.float64)
    if t.ndim != 1 or q.shape != (t.shape[0], len(names)):
        raise ConversionError(f"expected times (P,) and positions (P, {len(names)}), "
                              f"got {t.shape} and {q.shape}")
    qd = None if velocities is None else np.ascontiguousarray(velocities, dtype=np.float64)
    if qd is not None and qd.shape != q.shape:
        raise ConversionError(f"velocities shape {qd.shape} != positions shape {q.shape}")
    if not (np.isfinite(t).all() and np.isfinite(q).all()
            and (qd is None or np.isfinite(qd).all())):
        raise ConversionError("trajectory contains non-finite values")
    if t.size > 1 and not (np.diff(t) > 0.0).all():
        raise ConversionError("trajectory times must be strictly increasing")
    msg = JointTrajectory()
    set_header(msg, stamp, frame_id)
    msg.joint_names = names
    points = []
    for i in range(t.shape[0]):
        pt = JointTrajectoryPoint()
        pt.positions = array.array("d", q[i].tobytes())
        if qd is not None:
            pt.velocities = array.array("d", qd[i].tobytes())
        sec, nanosec = split_sec(t[i])
        pt.time_from_start = Duration(sec=sec, nanosec=nanosec)
        points.append(pt)
    msg.points = points
    return msg


def joint_trajectory_from_msg(msg: JointTrajectory) -> TrajectoryArrays:
    """Reads a ``JointTrajectory`` into ``TrajectoryArrays`` (one copy).

    Raises:
        ConversionError: Naming the point index, when a point's positions or
            velocities length differs from the joint names, or only some points
            carry velocities.
    """
    names = tuple(msg.joint_names)
    n_joints, n_points = len(names), len(msg.points)
    times = np.empty(n_points)
    q = np.empty((n_points, n_joints))
    qd = np.empty((n_points, n_joints))
    has_vel = n_points > 0 and len(msg.points[0].velocities) > 0
    for i, pt in enumerate(msg.points):
        if len(pt.positions) != n_joints:
            raise ConversionError(f"trajectory point {i} has {len(pt.positions)} "
                                  f"positions for {n_joints} joint names")
        n_vel = len(pt.velocities)
        if n_vel != (n_joints if has_vel else 0):
            raise ConversionError(f"trajectory point {i} has {n_vel} velocities; expected "
                                  f"{n_joints if has_vel else 0} (joint names: {n_joints}, "
                                  "all points alike)")
        q[i] = np.frombuffer(pt.positions, dtype=np.float64)
        if has_vel:
            qd[i] = np.frombuffer(pt.velocities, dtype=np.float64)
        times[i] = stamp_to_sec(pt.time_from_start)
    vel = qd if has_vel else None
    for arr in (times, q, vel):
        if arr is not None:
            arr.flags.writeable = False
    return TrajectoryArrays(names, stamp_to_sec(msg.header.stamp), times, q, vel)
