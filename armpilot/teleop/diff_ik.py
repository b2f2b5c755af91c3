"""Damped-least-squares differential IK for the arm's tool centre point (pure).

A twist ``(vx, vy, vz, wx, wy, wz)`` is the TCP's linear velocity (m/s) and
angular velocity (rad/s), both expressed in ``base_link``. ``DiffIk.step``
turns it into the next positions of the six arm joints; the gripper joint is
passed through unchanged (``streamer`` rate-limits it separately).

Joint limits are respected three ways: a null-space term pushes joints out of a
band near their limits while the arm moves, joints that would cross the limit
(less ``limit_margin``) are locked and the task is re-solved with the rest, and
the joint velocity is scaled uniformly (direction kept) to the URDF velocity
limits times ``velocity_scale``. Damping grows near singularities so the step
stays finite.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pinocchio as pin

from armpilot.fields import describe as _describe
from armpilot.robot import ArmModel, frame_id


@dataclass(frozen=True)
class DiffIkConfig:
    """Tuning of the differential IK."""

    damping: float = field(default=0.05, metadata=_describe("largest DLS damping, reached at a singularity, m"))
    singular_threshold: float = field(
        default=0.04, metadata=_describe("smallest singular value below which damping ramps in, m"))
    limit_margin: float = field(default=0.05, metadata=_describe("distance kept from each joint limit, rad"))
    limit_band: float = field(
        default=0.3, metadata=_describe("width of the zone near a limit where the null space pushes away, rad"))
    nullspace_gain: float = field(default=1.0, metadata=_describe("null-space joint-limit avoidance speed, rad/s"))
    velocity_scale: float = field(default=0.5, metadata=_describe("fraction of the URDF velocity limits, (0, 1]"))
    pose_gain: float = field(default=10.0, metadata=_describe("drift correction toward the integrated pose, 1/s"))
    max_position_error: float = field(
        default=0.02, metadata=_describe("re-sync the target pose to the arm beyond this position error, m"))
    max_rotation_error: float = field(
        default=0.1, metadata=_describe("re-sync the target pose to the arm beyond this rotation error, rad"))

    def __post_init__(self) -> None:
        if not 0.0 < self.velocity_scale <= 1.0:
            raise ValueError(f"parameter 'velocity_scale' must be in (0, 1], got {self.velocity_scale}")
        for name in ("damping", "singular_threshold", "limit_margin", "limit_band", "nullspace_gain", "pose_gain",
                     "max_position_error", "max_rotation_error"):
            if getattr(self, name) < 0:
                raise ValueError(f"parameter '{name}' must be >= 0, got {getattr(self, name)}")


def integrate_pose(pose: np.ndarray, twist: np.ndarray, dt: float) -> np.ndarray:
    """Move a 4x4 pose by a base-frame twist (6,) for ``dt`` s (rotation about the TCP origin)."""
    out = np.array(pose, dtype=float, copy=True)
    out[:3, 3] += np.asarray(twist[:3], float) * dt
    out[:3, :3] = pin.exp3(np.asarray(twist[3:], float) * dt) @ out[:3, :3]
    return out


def pose_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """(6,) error from ``current`` to ``target`` (4x4 poses): position (m) and rotation vector (rad), base frame."""
    rot = pin.log3(target[:3, :3] @ current[:3, :3].T)
    return np.concatenate([target[:3, 3] - current[:3, 3], rot])


class DiffIk:
    """Twist -> joint targets for the arm joints of an ``ArmModel`` (its profile's ``arm_joints``).

    Joint vectors here are the arm joints first (profile order), then anything else (a gripper), copied.
    """

    def __init__(self, arm: ArmModel, config: DiffIkConfig | None = None) -> None:
        self.arm = arm
        self.config = config or DiffIkConfig()
        model = arm.model
        self.arm_joints = arm.profile.arm_joints
        self.n = len(self.arm_joints)
        self._tcp = frame_id(model, arm.tcp_frame, arm.name)
        self._v_index = np.array([model.joints[model.getJointId(n)].idx_v for n in self.arm_joints])
        lim = arm.limits.reordered(self.arm_joints)
        margin = self.config.limit_margin
        self.lower = lim.lower + margin
        self.upper = lim.upper - margin
        self.vmax = lim.velocity * self.config.velocity_scale

    def _full(self, q: np.ndarray) -> np.ndarray:
        return self.arm.full_configuration(np.asarray(q, dtype=float)[: self.n], names=self.arm_joints)

    def tcp_pose(self, q: np.ndarray) -> np.ndarray:
        """4x4 TCP pose at (arm joints first) positions ``q``."""
        pin.framesForwardKinematics(self.arm.model, self.arm.data, self._full(q))
        return self.arm.data.oMf[self._tcp].homogeneous.copy()

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """(6, n) TCP Jacobian of the arm joints, base-aligned (linear rows first)."""
        jac = pin.computeFrameJacobian(self.arm.model, self.arm.data, self._full(q), self._tcp,
                                       pin.LOCAL_WORLD_ALIGNED)
        return jac[:, self._v_index]

    def _dls(self, jac: np.ndarray, task: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Damped pseudo-inverse solution (n,) and the damped pseudo-inverse (n, 6)."""
        u, s, vt = np.linalg.svd(jac, full_matrices=False)
        cfg = self.config
        smin = s[-1] if s.size else 0.0
        lam2 = 1e-8
        if cfg.singular_threshold > 0 and smin < cfg.singular_threshold:
            lam2 += cfg.damping ** 2 * (1.0 - (smin / cfg.singular_threshold) ** 2)
        pinv = vt.T @ np.diag(s / (s ** 2 + lam2)) @ u.T
        return pinv @ task, pinv

    def _avoidance(self, q: np.ndarray) -> np.ndarray:
        """(n,) joint velocity pushing joints inside ``limit_band`` of a limit toward the middle, rad/s."""
        band = max(self.config.limit_band, 1e-9)
        push_up = np.clip((self.lower + band - q) / band, 0.0, 1.0)
        push_down = np.clip((q - (self.upper - band)) / band, 0.0, 1.0)
        return self.config.nullspace_gain * (push_up - push_down)

    def joint_velocity(self, q: np.ndarray, velocity: np.ndarray, dt: float) -> np.ndarray:
        """(n,) arm joint velocity (rad/s) realising a TCP ``velocity`` (6,) within limits for ``dt`` s."""
        q = np.asarray(q, dtype=float)[: self.n]
        jac = self.jacobian(q)
        # allowed velocity so that q + dq*dt stays inside the margins (or does not go further out)
        lo = np.maximum(-self.vmax, np.minimum(0.0, (self.lower - q) / dt))
        hi = np.minimum(self.vmax, np.maximum(0.0, (self.upper - q) / dt))
        avoid = self._avoidance(q)
        free = np.ones(self.n, dtype=bool)
        dq = np.zeros(self.n)
        for _ in range(self.n):
            task = velocity - jac[:, ~free] @ dq[~free]
            sol, pinv = self._dls(jac[:, free], task)
            null = np.eye(int(free.sum())) - pinv @ jac[:, free]
            sol = sol + null @ avoid[free]
            peak = np.max(np.abs(sol) / self.vmax[free]) if sol.size else 0.0
            if peak > 1.0:
                sol = sol / peak
            dq[free] = sol
            crossing = free & ((dq < lo) | (dq > hi))
            if not crossing.any():
                break
            dq[crossing] = np.clip(dq[crossing], lo[crossing], hi[crossing])
            free &= ~crossing
            if not free.any():
                break
        return np.clip(dq, lo, hi)

    def step(self, q: np.ndarray, twist: np.ndarray, dt: float,
             target: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Next joint positions (J,) and the next target pose after moving by ``twist`` for ``dt`` s.

        Args:
            q: current commanded positions, arm joints first; the rest is copied.
            twist: (6,) TCP velocity in ``base_link``: m/s then rad/s.
            dt: step, s (> 0).
            target: the integrated TCP pose (4x4) the arm should be at now, or None to start
                from the pose at ``q``. Following it (``pose_gain``) keeps orientation from drifting.

        Returns:
            (q_next, target_next); target_next is None when the twist is zero and no target was given.
        """
        q = np.asarray(q, dtype=float)
        twist = np.asarray(twist, dtype=float)
        if dt <= 0:
            raise ValueError(f"dt must be > 0, got {dt}")
        if target is None and not np.any(twist):
            return q.copy(), None
        current = self.tcp_pose(q)
        if target is None:
            target = current
        error = pose_error(target, current)
        cfg = self.config
        if np.linalg.norm(error[:3]) > cfg.max_position_error or np.linalg.norm(error[3:]) > cfg.max_rotation_error:
            target, error = current, np.zeros(6)
        velocity = twist + cfg.pose_gain * error
        out = q.copy()
        if np.any(velocity):
            out[: self.n] = q[: self.n] + self.joint_velocity(q, velocity, dt) * dt
        return out, integrate_pose(target, twist, dt)
