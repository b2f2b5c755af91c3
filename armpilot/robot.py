"""The arm's kinematic model from its robot profile (pinocchio): names, limits, FK, IK.

Joint vectors are ordered like ``ArmModel.joint_names`` (the profile's
controller order). Joints the arm controller does not command (a gripper on
its own controller, any other movable joint) take their measured value where
one is given, otherwise a default; mimic joints follow their master; a
continuous joint's angle is unbounded (pinocchio's cos/sin pair is filled
from it). Positions in rad / m.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pinocchio as pin
from transforms3d.euler import euler2mat

from armpilot.robot_profile import GripperController, RobotProfile, load_profile
from armpilot.urdf_source import gripper_link_names

# armpilot's own arm (the default profile); only modules specific to that arm use these
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
#: Name of the frame added at the profile's ``tcp_offset`` (turned by its ``tcp_rpy``) from its ``tcp_frame``.
TCP_OFFSET_FRAME = "armpilot_tcp"
#: A comfortable start pose (rad): elbow bent, tool pointing down over the table.
HOME_POSITION = np.array([0.0, -0.3, 1.6, 0.0, 1.2, 0.0, GRIPPER_OPEN])


def wrapped_difference(a: np.ndarray, b: np.ndarray, continuous: np.ndarray) -> np.ndarray:
    """(…, J) ``a - b``, where ``continuous`` (J,) the shortest way round: angles that differ by whole turns
    are the same joint position."""
    d = np.asarray(a, float) - np.asarray(b, float)
    return np.where(continuous, np.pi - np.mod(np.pi - d, 2 * np.pi), d)


@dataclass(frozen=True)
class JointLimits:
    """Per-joint limits from the URDF, arrays of shape (J,); +-inf position for continuous joints."""

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray
    acceleration: np.ndarray | None = None  # from the profile, rad/s^2 or m/s^2
    jerk: np.ndarray | None = None  # rad/s^3 or m/s^3

    @property
    def continuous(self) -> np.ndarray:
        """(J,) True where the joint has no position limits."""
        return ~np.isfinite(self.lower) & ~np.isfinite(self.upper)

    def difference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(…, J) ``a - b``, on continuous joints the shortest way round, in (-pi, pi] (rad)."""
        return wrapped_difference(a, b, self.continuous)

    def reordered(self, names: tuple[str, ...] | list[str]) -> "JointLimits":
        """These limits for ``names`` (any order or subset; KeyError naming an unknown joint)."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise KeyError(f"joints {missing} are not among {list(self.names)}")
        idx = [self.names.index(n) for n in names]
        return JointLimits(tuple(names), self.lower[idx], self.upper[idx], self.velocity[idx], self.effort[idx],
                           None if self.acceleration is None else self.acceleration[idx],
                           None if self.jerk is None else self.jerk[idx])


@dataclass(frozen=True)
class IkResult:
    """Outcome of an IK solve: joint positions (J,), success flag, final error."""

    positions: np.ndarray
    converged: bool
    position_error: float
    rotation_error: float


class ArmModel:
    """Pinocchio model of the profile's arm, addressed by the controlled joints."""

    def __init__(self, profile: RobotProfile | None = None) -> None:
        self.profile = profile if profile is not None else load_profile()
        self.model = pin.buildModelFromXML(self.profile.urdf_xml)
        self.root_from_base = express_in_frame(self.model, self.profile.base_frame, self.profile.name)
        self.data = self.model.createData()
        self.joint_names = self.profile.joints
        self.tcp_frame = self._add_tcp_frame()
        self._tcp_id = self._frame_id(self.tcp_frame)
        urdf = self.profile.urdf_joints
        #: every movable URDF joint pinocchio knows, in one order: (name, idx_q, nq, idx_v)
        self._movable = [(n, self.model.joints[self.model.getJointId(n)].idx_q,
                          self.model.joints[self.model.getJointId(n)].nq,
                          self.model.joints[self.model.getJointId(n)].idx_v)
                         for n in urdf if self.model.existJointName(n)]
        names = [m[0] for m in self._movable]
        self._slot = {n: k for k, n in enumerate(names)}
        self._controlled_slots = np.array([self._slot[n] for n in self.joint_names])
        self._mimic = [(self._slot[n], self._slot[j.mimic], j.multiplier, j.offset)
                       for n, j in urdf.items() if j.mimic and n in self._slot and j.mimic in self._slot]
        self._v_index = np.array([self._movable[self._slot[n]][3] for n in self.joint_names])
        self._one_q = np.array([m[1] for m in self._movable if m[2] == 1], dtype=int)
        self._one_slot = np.array([k for k, m in enumerate(self._movable) if m[2] == 1], dtype=int)
        self._two_q = np.array([m[1] for m in self._movable if m[2] == 2], dtype=int)
        self._two_slot = np.array([k for k, m in enumerate(self._movable) if m[2] == 2], dtype=int)
        self.passive_defaults = self._passive_defaults()
        self._slot_cache: dict[tuple[str, ...], np.ndarray] = {}
        self.limits = JointLimits(
            names=self.joint_names,
            lower=np.array([urdf[n].lower for n in self.joint_names]),
            upper=np.array([urdf[n].upper for n in self.joint_names]),
            velocity=self.profile.max_velocity.copy(),
            effort=np.array([urdf[n].effort for n in self.joint_names]),
            acceleration=self.profile.max_acceleration.copy(),
            jerk=self.profile.max_jerk.copy(),
        )

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def passive_joints(self) -> tuple[str, ...]:
        """Movable, non-mimic joints the arm controller does not command (e.g. a separate gripper)."""
        return tuple(self.passive_defaults)

    def home_of_every_joint(self) -> dict[str, float]:
        """Joint name -> position at home (rad / m) of every commanded, passive (a separate gripper open) and
        mimic joint: the pose the sim starts each episode in."""
        values = {**dict(zip(self.joint_names, self.profile.home)), **self.passive_defaults}
        for name, joint in self.profile.urdf_joints.items():
            if joint.mimic in values:
                values[name] = joint.multiplier * values[joint.mimic] + joint.offset
        return values

    def _passive_defaults(self) -> dict[str, float]:
        urdf, gripper = self.profile.urdf_joints, self.profile.gripper
        out = {}
        for name, _, _, _ in self._movable:
            joint = urdf[name]
            if name in self.joint_names or joint.mimic:
                continue
            if name == gripper.joint and gripper.controller is GripperController.SEPARATE:
                out[name] = gripper.open
            else:
                out[name] = self.profile.passive_positions.get(name, float(np.clip(0.0, joint.lower, joint.upper)))
        return out

    def _add_tcp_frame(self) -> str:
        """The TCP frame: the profile's ``tcp_frame``, moved by ``tcp_offset`` and turned by ``tcp_rpy`` when given."""
        name = self.profile.tcp_frame
        parent_id = self._frame_id(name)
        if not (np.any(self.profile.tcp_offset) or np.any(self.profile.tcp_rpy)):
            return name
        parent = self.model.frames[parent_id]
        turn = euler2mat(*self.profile.tcp_rpy, axes="sxyz")
        placement = parent.placement * pin.SE3(turn, self.profile.tcp_offset)
        self.model.addFrame(pin.Frame(TCP_OFFSET_FRAME, parent.parentJoint, parent_id, placement,
                                      pin.FrameType.OP_FRAME), False)
        self.data = self.model.createData()
        return TCP_OFFSET_FRAME

    def _frame_id(self, name: str) -> int:
        return frame_id(self.model, name, self.profile.name)

    def slots(self, names: tuple[str, ...]) -> np.ndarray:
        """Positions of ``names`` in the movable-joint vector (KeyError naming an unknown joint)."""
        cached = self._slot_cache.get(names)
        if cached is None:
            unknown = [n for n in names if n not in self._slot or n not in self.profile.joints + self.passive_joints]
            if unknown:
                raise KeyError(f"joints {unknown} are not commandable joints of robot '{self.profile.name}'")
            cached = self._slot_cache[names] = np.array([self._slot[n] for n in names], dtype=int)
        return cached

    def gripper_links(self) -> set[str]:
        """Links moved by the gripper joint or a joint mimicking it, and the hand they hang from: they touch each
        other by design (a closed gripper's fingers), so neither the sim nor the safety node counts it."""
        return gripper_link_names(self.profile.urdf_xml, self.profile.urdf_joints, self.profile.gripper.joint)

    def tcp_moves_in_3d(self, samples: int = 4) -> bool:
        """Whether the arm joints (not the gripper) move the TCP in three independent directions at home or at one
        of ``samples`` seeded random poses within the limits (a planar arm's never does)."""
        arm = np.array([k for k, n in enumerate(self.joint_names) if n != self.profile.gripper.joint], dtype=int)
        lower = np.where(np.isfinite(self.limits.lower), self.limits.lower, -np.pi)
        upper = np.where(np.isfinite(self.limits.upper), self.limits.upper, np.pi)
        rng = np.random.default_rng(0)
        for q in [self.profile.home, *(rng.uniform(lower, upper) for _ in range(samples))]:
            full = self.full_configuration(q)
            jac = pin.computeFrameJacobian(self.model, self.data, full, self._tcp_id, pin.LOCAL_WORLD_ALIGNED)
            if np.linalg.matrix_rank(jac[:3, self._v_index[arm]], tol=1e-6) == 3:
                return True
        return False

    def full_configuration(self, q: np.ndarray, passive: Mapping[str, float] | None = None,
                           names: tuple[str, ...] | None = None) -> np.ndarray:
        """Map joint positions (J,) to pinocchio's configuration (nq,), by joint name.

        Args:
            q: positions in ``names`` order (default ``joint_names``).
            passive: measured values of joints not in ``names`` (default: ``passive_defaults``).
            names: the order of ``q``: any order or subset of the commandable joints.
        """
        values = np.zeros(len(self._movable))
        for name, value in self.passive_defaults.items():
            values[self._slot[name]] = value if passive is None else passive.get(name, value)
        if names is None:
            values[self._controlled_slots] = q
        else:
            if len(names) < len(self.joint_names):
                values[self._controlled_slots] = [self.profile.home[k] if passive is None else
                                                  passive.get(n, self.profile.home[k])
                                                  for k, n in enumerate(self.joint_names)]
            values[self.slots(names)] = q
        for slot, master, multiplier, offset in self._mimic:
            values[slot] = multiplier * values[master] + offset
        full = pin.neutral(self.model)
        full[self._one_q] = values[self._one_slot]
        full[self._two_q] = np.cos(values[self._two_slot])
        full[self._two_q + 1] = np.sin(values[self._two_slot])
        return full

    def frame_pose(self, frame: str, q: np.ndarray | None = None) -> np.ndarray:
        """4x4 pose of ``frame`` in the base frame at positions ``q`` (default: home)."""
        q = self.profile.home if q is None else q
        full = self.full_configuration(np.asarray(q, dtype=float))
        pin.framesForwardKinematics(self.model, self.data, full)
        return self.data.oMf[self._frame_id(frame)].homogeneous.copy()

    def tcp_pose(self, q: np.ndarray) -> np.ndarray:
        """4x4 pose of the tool centre point in the base frame."""
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
        rotation_weight: float = 1.0,
        posture: np.ndarray | None = None,
        posture_gain: float = 0.1,
    ) -> IkResult:
        """Damped-least-squares IK for the TCP over the arm joints; the gripper is kept as given.

        Args:
            position: target TCP position (3,), metres, base frame.
            rotation: target TCP rotation matrix (3, 3).
            q_init: warm start (J,); its gripper value is kept.
            rotation_weight: < 1 trades orientation for position (arms with fewer than six joints).
            posture: (J,) joint positions the redundant joints drift toward in the task's null space
                (arms with more than six joints: the same TCP pose gets the same posture, whatever
                the path), or None.
            posture_gain: fraction of the posture error corrected per iteration.
        """
        target = pin.SE3(np.asarray(rotation, float), np.asarray(position, float))
        q = np.asarray(q_init, dtype=float).copy()
        arm = np.array([k for k, n in enumerate(self.joint_names) if n != self.profile.gripper.joint])
        err = np.full(6, np.inf)
        for _ in range(max_iters):
            full = self.full_configuration(q)
            pin.framesForwardKinematics(self.model, self.data, full)
            current = self.data.oMf[self._tcp_id]
            err = pin.log6(current.actInv(target)).vector
            if np.linalg.norm(err[:3]) < tol_position and np.linalg.norm(err[3:]) < tol_rotation:
                break
            jac = pin.computeFrameJacobian(self.model, self.data, full, self._tcp_id, pin.LOCAL)
            weights = np.array([1.0, 1.0, 1.0, rotation_weight, rotation_weight, rotation_weight])
            jac_arm = weights[:, None] * jac[:, self._v_index[arm]]
            weighted = weights * err
            step = jac_arm.T @ np.linalg.solve(jac_arm @ jac_arm.T + damping * np.eye(6), weighted)
            lower, upper = self.limits.lower[arm], self.limits.upper[arm]
            blocked = ((q[arm] <= lower + 1e-9) & (step < 0)) | ((q[arm] >= upper - 1e-9) & (step > 0))
            if np.any(blocked) and not np.all(blocked):  # a joint at its limit: solve with the others
                free = jac_arm * ~blocked
                step = free.T @ np.linalg.solve(free @ free.T + damping * np.eye(6), weighted)
            if posture is not None and len(arm) > 6:
                pinv = jac_arm.T @ np.linalg.inv(jac_arm @ jac_arm.T + damping * np.eye(6))
                step = step + (np.eye(len(arm)) - pinv @ jac_arm) @ (posture_gain * (posture[arm] - q[arm]))
            q[arm] = np.clip(q[arm] + step, lower, upper)
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


#: Which frame a name means when several share it (a URDF may name a fixed joint like its child link): the link.
FRAME_PREFERENCE = (pin.FrameType.BODY, pin.FrameType.OP_FRAME, pin.FrameType.FIXED_JOINT, pin.FrameType.JOINT,
                    pin.FrameType.SENSOR)


def express_in_frame(model: pin.Model, frame: str, robot: str = "") -> np.ndarray:
    """Make ``frame`` (a frame fixed to the URDF's root) the world of ``model``, in place, so that every
    placement pinocchio computes (frames, joints, geometries built from the model afterwards) is in it.
    Returns the frame's 4x4 pose in the URDF's root. ``RobotProfile`` checks that no joint moves it."""
    found = model.frames[frame_id(model, frame, robot)]
    if found.parentJoint != 0:
        raise ValueError(f"frame '{frame}' of robot '{robot}' moves with joint '{model.names[found.parentJoint]}'")
    root_from_frame = found.placement.copy()
    frame_from_root = root_from_frame.inverse()
    for joint in range(1, model.njoints):
        if model.parents[joint] == 0:
            model.jointPlacements[joint] = frame_from_root * model.jointPlacements[joint]
    for index, placed in enumerate(model.frames):
        if placed.parentJoint == 0:
            placed.placement = frame_from_root * placed.placement
            model.frames[index] = placed
    return root_from_frame.homogeneous


def frame_id(model: pin.Model, name: str, robot: str = "") -> int:
    """Id of the frame ``name`` in ``model``: the link of that name, else an operational frame, a fixed joint, a
    joint (pinocchio's ``getFrameId`` refuses a name several frames share). KeyError naming it when absent."""
    for kind in FRAME_PREFERENCE:
        if model.existFrame(name, kind):
            return model.getFrameId(name, kind)
    raise KeyError(f"frame '{name}' is not in the URDF of robot '{robot}'")
