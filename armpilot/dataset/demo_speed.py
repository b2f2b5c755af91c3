"""Demonstrations that move faster than the arm's velocity limits (numpy; the profile for the limits).

A policy imitates its demonstrations, speed included: one trained on motions
faster than the safety node allows proposes chunks that are refused
(``discontinuity``, ``velocity_limit``) and the arm stands. Converting checks
the recorded joint states against the recorded robot's URDF velocity limits
and names the joints that exceed them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from armpilot.robot_profile import ROBOT_KEY, URDF_HASH_KEY, RobotDescriptionError, load_recorded_profile

#: A joint counts as too fast above this multiple of its velocity limit: room for tracking overshoot and
#: stamp jitter. Frame-to-frame differences on the dataset clock underestimate peaks, so this check finds
#: demonstrations clearly over the limit, not every brief excursion.
SPEED_TOLERANCE = 1.05


def max_joint_speeds(timestamp: np.ndarray, state: np.ndarray) -> np.ndarray:
    """Largest |dq/dt| of each joint over one episode's frames.

    Args:
        timestamp: (T,) s, increasing. state: (T, J) positions.

    Returns:
        (J,) rad/s (or m/s); zeros for fewer than two frames.
    """
    if len(timestamp) < 2:
        return np.zeros(state.shape[1])
    dt = np.diff(np.asarray(timestamp, float))
    speeds = np.abs(np.diff(np.asarray(state, float), axis=0)) / np.maximum(dt, 1e-6)[:, None]
    return speeds.max(axis=0)


def too_fast(max_speed: Mapping[str, float], limits: Mapping[str, float],
             tolerance: float = SPEED_TOLERANCE) -> dict[str, tuple[float, float]]:
    """Joints whose recorded speed exceeds ``tolerance`` x their limit (joints without one are not judged):
    name -> (speed, limit)."""
    return {name: (speed, limits[name]) for name, speed in max_speed.items()
            if name in limits and speed > tolerance * limits[name]}


def recorded_velocity_limits(robot: Mapping[str, str]) -> tuple[dict[str, float], str]:
    """The recorded robot's URDF velocity limits by joint name, or ({}, why they are unknown).

    Args:
        robot: the identity ``recorded_robot`` read from the bags ({} for bags that name none).
    """
    if ROBOT_KEY not in robot:
        return {}, "the bags name no robot"
    try:
        profile = load_recorded_profile(robot)
    except (RobotDescriptionError, OSError) as error:
        return {}, f"robot '{robot[ROBOT_KEY]}' could not be loaded here ({error})"
    if robot.get(URDF_HASH_KEY) and robot[URDF_HASH_KEY] != profile.urdf_hash:
        return {}, f"the bags' URDF ({robot[URDF_HASH_KEY]}) is not the profile's ({profile.urdf_hash})"
    limits = {name: float(joint.velocity) for name, joint in profile.urdf_joints.items() if joint.velocity > 0}
    return {**limits, **dict(zip(profile.joints, profile.max_velocity.tolist()))}, ""


def speed_warning(fast: Mapping[str, tuple[float, float]]) -> str:
    """One line for the conversion summary ("" when nothing is too fast)."""
    if not fast:
        return ""
    joints = ", ".join(f"{name} {speed:.2f} (limit {limit:.3g})" for name, (speed, limit) in fast.items())
    return (f"WARNING: the demonstrations move faster than the arm's velocity limits (rad/s, m/s for a prismatic "
            f"joint): {joints}; a policy trained "
            f"on them proposes chunks the safety node refuses. Record behind the safety node you will run.")
