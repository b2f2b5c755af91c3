"""The arm's kinematic model from its URDF (pinocchio): names, limits, FK, IK.

Joint vectors are ordered like ``ArmModel.joint_names``: the six arm joints then
``gripper_joint`` (metres per finger, 0 = closed). Positions in rad / m.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pinocchio as pin

ARM_JOINTS: tuple[str, ...] = (
    "shoulder_pan_joint",
    "shoulder_lift_joint",
    "elbow_joint",
    "wrist_1_joint",
    "wrist_2_joint",
    "wrist_3_joint",
)
GRIPPER_JOINT = "gripper_joint"
CONTROLLED_JOINTS: tuple[str, ...] = ARM_JOINTS + (GRIPPER_JOINT,)
TCP_FRAME = "tool_tcp"
CAMERA_OPTICAL_FRAME = "camera_color_optical_frame"
GRIPPER_OPEN = 0.04
GRIPPER_CLOSED = 0.0
#: A comfortable start pose (rad): elbow bent, tool pointing down over the table.
HOME_POSITION = np.array([0.0, -0.3, 1.6, 0.0, 1.2, 0.0, GRIPPER_OPEN])


@dataclass(frozen=True)
class JointLimits:
    """Per-joint limits from the URDF, arrays of shape (J,)."""

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


@dataclass(frozen=True)
class IkResult:
    """Outcome of an IK solve: joint positions (J,), success flag, final error."""

    positions: np.ndarray
    converged: bool
    position_error: float
    rotation_error: float


class ArmModel:
    """Pinocchio model of the arm restricted to the controlled joints."""

    def __init__(self, urdf: str | Path, tcp_frame: str = TCP_FRAME) -> None:
        self.urdf = Path(urdf)
        self.model = pin.buildModelFromUrdf(str(self.urdf))
        self.data = self.model.createData()
        self.joint_names = CONTROLLED_JOINTS
        self._tcp_id = self._frame_id(tcp_frame)
        self._q_index = np.array(
            [self.model.joints[self.model.getJointId(n)].idx_q for n in self.joint_names]
        )
        self._v_index = np.array(
            [self.model.joints[self.model.getJointId(n)].idx_v for n in self.joint_names]
        )
        self._mimic_q = self.model.joints[self.model.getJointId("gripper_right_finger_joint")].idx_q
        self.limits = JointLimits(
            names=self.joint_names,
            lower=self.model.lowerPositionLimit[self._q_index].copy(),
            upper=self.model.upperPositionLimit[self._q_index].copy(),
            velocity=self.model.velocityLimit[self._v_index].copy(),
            effort=self.model.effortLimit[self._v_index].copy(),
        )

    def _frame_id(self, name: str) -> int:
        if not self.model.existFrame(name):
            raise KeyError(f"frame '{name}' is not in {self.urdf}")
        return self.model.getFrameId(name)

    def full_configuration(self, q: np.ndarray) -> np.ndarray:
        """Map controlled positions (J,) to pinocchio's configuration (nq,)."""
        full = pin.neutral(self.model)
        full[self._q_index] = q
        full[self._mimic_q] = q[-1]
        return full

    def frame_pose(self, frame: str, q: np.ndarray | None = None) -> np.ndarray:
        """4x4 pose of ``frame`` in ``base_link`` at positions ``q`` (default: home)."""
        q = HOME_POSITION if q is None else q
        full = self.full_configuration(np.asarray(q, dtype=float))
        pin.framesForwardKinematics(self.model, self.data, full)
        return self.data.oMf[self._frame_id(frame)].homogeneous.copy()

    def tcp_pose(self, q: np.ndarray) -> np.ndarray:
        """4x4 pose of the tool centre point in ``base_link``."""
        full = self.full_configuration(np.asarray(q, dtype=float))
        pin.framesForwardKinematics(self.model, self.data, full)
        return self.data.oMf[self._tcp_id].homogeneous.copy()

    def ik(
        self,
        position: np.ndarray,
        rotation: np.ndarray,
        q_init: np.ndarray,
        max_iters: int = 200,
        tol_position: float = 1e-4,
        tol_rotation: float = 1e-3,
        damping: float = 1e-4,
    ) -> IkResult:
        """Damped-least-squares IK for the TCP; the gripper joint is kept as given.

        Args:
            position: target TCP position (3,), metres, base frame.
            rotation: target TCP rotation matrix (3, 3).
            q_init: warm start (J,); its gripper value is kept.
        """
        target = pin.SE3(np.asarray(rotation, float), np.asarray(position, float))
        q = np.asarray(q_init, dtype=float).copy()
        arm = slice(0, len(ARM_JOINTS))
        err = np.full(6, np.inf)
        for _ in range(max_iters):
            full = self.full_configuration(q)
            pin.framesForwardKinematics(self.model, self.data, full)
            current = self.data.oMf[self._tcp_id]
            err = pin.log6(current.actInv(target)).vector
            if np.linalg.norm(err[:3]) < tol_position and np.linalg.norm(err[3:]) < tol_rotation:
                break
            jac = pin.computeFrameJacobian(self.model, self.data, full, self._tcp_id, pin.LOCAL)
            jac_arm = jac[:, self._v_index[arm]]
            step = jac_arm.T @ np.linalg.solve(jac_arm @ jac_arm.T + damping * np.eye(6), err)
            q[arm] = np.clip(q[arm] + step, self.limits.lower[arm], self.limits.upper[arm])
        pos_err = float(np.linalg.norm(err[:3]))
        rot_err = float(np.linalg.norm(err[3:]))
        return IkResult(q, pos_err < 10 * tol_position and rot_err < 10 * tol_rotation, pos_err, rot_err)


def top_down_rotation(yaw: float) -> np.ndarray:
    """Rotation of a tool pointing straight down (tool z = -world z), turned by ``yaw`` (rad)."""
    c, s = np.cos(yaw), np.sin(yaw)
    # yaw 0 is the natural wrist pose with the arm along +x: tool x = -world x
    x = np.array([-c, -s, 0.0])
    z = np.array([0.0, 0.0, -1.0])
    y = np.cross(z, x)
    return np.column_stack([x, y, z])
