"""Approaching a waypoint in joint space where the tool must turn over (pure; pinocchio IK).

A scripted expert moves the tool along a straight line and turns it on the way. From a home with the tool
pointing up (the Kinova Jaco's, folded) to a waypoint with the tool pointing down, that turn folds the wrist onto
the upper arm: the safety node refuses every chunk as a self-collision. Where the tool's approach axis must tilt
more than ``JOINT_SPACE_TURN``, the expert instead finds the joint positions at the waypoint by following that
line in IK only (each solve warm-started by the last: no jump to another branch) and moves there along a
straight line in joint space, continuous joints the short way round; the last centimetres are the usual straight
tool path.
"""

from __future__ import annotations

import numpy as np
import pinocchio as pin

from armpilot.robot import ArmModel, wrapped_difference

#: Tilts of the tool's approach axis (rad) beyond which a waypoint is approached in joint space.
JOINT_SPACE_TURN = np.pi / 2
#: IK steps along the tool's line when looking for the joint positions at the waypoint.
GOAL_STAGES = 20
#: Share of each joint's velocity limit the joint-space move runs at.
JOINT_SPEED_FRACTION = 0.4
#: The joint-space move ends when every joint is this close (rad or m) to its goal.
JOINT_ARRIVED = 0.02


def tool_turn(arm: ArmModel, q: np.ndarray, target: pin.SE3) -> float:
    """Angle (rad) between the tool's approach axis (its z) at ``q`` (J,) and ``target``'s: how far the tool must
    tilt (a turn about that axis, a grasp's yaw, does not count; nor does what an arm with fewer than six joints
    cannot hold)."""
    cosine = float(np.dot(arm.tcp_pose(q)[:3, 2], target.rotation[:, 2]))
    return float(np.arccos(np.clip(cosine, -1.0, 1.0)))


def joint_goal(arm: ArmModel, q: np.ndarray, target: pin.SE3, rotation_weight: float, iterations: int,
               posture: np.ndarray | None = None) -> np.ndarray:
    """(J,) joint positions with the tool at ``target``, found along the tool's straight path from ``q`` (J,),
    continuous joints shifted by whole turns to the nearest ``q``; the gripper stays as in ``q``."""
    start = pin.SE3(arm.tcp_pose(q))
    delta = pin.log6(start.actInv(target)).vector
    guess = np.asarray(q, float).copy()
    for fraction in np.arange(1, GOAL_STAGES + 1) / GOAL_STAGES:
        pose = start * pin.exp6(fraction * delta)
        guess = arm.ik(pose.translation, pose.rotation, guess, max_iters=iterations,
                       rotation_weight=rotation_weight, posture=posture).positions
    return q + wrapped_difference(guess, q, arm.limits.continuous)


def toward_joint_goal(arm: ArmModel, q: np.ndarray, goal: np.ndarray, horizon: int, dt: float) -> np.ndarray:
    """(H, J) points along the straight joint-space line from ``q`` to ``goal`` (J,), every joint at most
    ``JOINT_SPEED_FRACTION`` of its velocity limit, held at ``goal`` once there."""
    offset = np.asarray(goal, float) - q
    per_point = JOINT_SPEED_FRACTION * arm.limits.velocity * dt
    step = float(np.min(np.where(np.abs(offset) > 1e-9, per_point / np.maximum(np.abs(offset), 1e-9), np.inf)))
    fractions = np.minimum(step * np.arange(1, horizon + 1), 1.0)
    return q + fractions[:, None] * offset[None]
