"""Tool-space actions and observations for the diffusion policy (pinocchio FK/IK, numpy, no ROS).

With ``action_space: tool`` the network never sees a joint angle. Each action
frame is the tool centre point's position as an offset from the TCP at the
latest observation (the *anchor*, m), the TCP's rotation as its first two
columns (the continuous 6D representation of Zhou et al., 2019), and the
joints the IK does not drive (a gripper) as they are. Every position the
network observes (each state frame's TCP, the goal, the object, the cloud, the
tracks) is an offset from the same anchor. A push that starts 10 cm further
left then looks the same to the network (translation equivariance), which a
joint-space chunk of a non-linear arm cannot give. At inference the chunk goes
back to joint positions by damped-least-squares IK along the chunk,
warm-started from the measured joints; the safety node checks the result like
any chunk.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from armpilot.features import GOAL, OBJECT, POINTS, POINTS_MASK, STATE, TRACKS, TRACKS_MASK
from armpilot.policies.diffusion_config import TOOL_POSE_DIM
from armpilot.robot import ArmModel

#: IK iterations per action frame (each is warm-started from the frame before, 1/15 s earlier).
IK_ITERATIONS = 50


def rotation_from_6d(six: np.ndarray) -> np.ndarray:
    """(..., 6) two rotation columns, not necessarily orthonormal -> (..., 3, 3) by Gram-Schmidt."""
    a, b = six[..., :3], six[..., 3:]
    x = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-9)
    y = b - np.sum(x * b, axis=-1, keepdims=True) * x
    y = y / np.maximum(np.linalg.norm(y, axis=-1, keepdims=True), 1e-9)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


class ToolFrame:
    """Joint-space features <-> tool-space features for one arm and one joint order.

    Args:
        arm: the profile's kinematic model.
        joint_names: (J,) the order of the policy's state and action columns (any order of the arm's
            controlled joints).

    Raises:
        ValueError: ``joint_names`` are not the arm's controlled joints.
    """

    def __init__(self, arm: ArmModel, joint_names: tuple[str, ...]) -> None:
        if sorted(joint_names) != sorted(arm.joint_names):
            raise ValueError(f"the policy's joints {list(joint_names)} are not robot '{arm.name}''s controlled "
                             f"joints {list(arm.joint_names)}")
        self.arm = arm
        self.joint_names = tuple(joint_names)
        self._to_arm = np.array([joint_names.index(n) for n in arm.joint_names])  # q_arm = q[_to_arm]
        self._from_arm = np.array([arm.joint_names.index(n) for n in joint_names])  # q = q_arm[_from_arm]
        self.passthrough = tuple(n for n in joint_names if n not in arm.profile.arm_joints)
        self._passthrough_columns = np.array([joint_names.index(n) for n in self.passthrough], dtype=int)
        self.rotation_weight = 1.0 if len(arm.profile.arm_joints) >= 6 else 0.05  # as the task experts

    @property
    def dim(self) -> int:
        """Size of one tool-space frame: the pose and the passthrough joints."""
        return TOOL_POSE_DIM + len(self.passthrough)

    def poses(self, q: np.ndarray) -> np.ndarray:
        """(..., J) joint positions -> (..., dim) absolute TCP position (m), 6D rotation, passthrough joints.

        Equal rows are computed once (consecutive action chunks overlap)."""
        q = np.asarray(q, np.float64)
        rows, inverse = np.unique(q.reshape(-1, q.shape[-1]), axis=0, return_inverse=True)
        out = np.empty((len(rows), self.dim))
        for k, row in enumerate(rows):
            pose = self.arm.tcp_pose(row[self._to_arm])
            out[k, :3] = pose[:3, 3]
            out[k, 3:9] = pose[:3, :2].T.reshape(6)
        out[:, 9:] = rows[:, self._passthrough_columns]
        return out[inverse.reshape(-1)].reshape(*q.shape[:-1], self.dim)

    def observation(self, features: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Batched features in joint space -> (the same features in tool space, anchors (B, 3) m).

        ``features``: STATE (B, S, J) rad/m (required); where present GOAL (B, S, 3), OBJECT (B, S, 7),
        POINTS (B, P, 3) with POINTS_MASK (B, P), TRACKS (B, S, K, T, 3) with TRACKS_MASK (B, S, K, T), m in
        the base frame. Other features (images, masks, actions) are returned as they are.
        """
        out = dict(features)
        state = self.poses(features[STATE])
        anchor = state[:, -1, :3].copy()
        state[..., :3] -= anchor[:, None]
        out[STATE] = state.astype(np.float32)
        if GOAL in features:
            out[GOAL] = (features[GOAL] - anchor[:, None]).astype(np.float32)
        if OBJECT in features:
            obj = np.array(features[OBJECT], np.float32)
            obj[..., :3] -= anchor[:, None]
            out[OBJECT] = obj
        if POINTS in features:
            shift = anchor[:, None] * features[POINTS_MASK][..., None]
            out[POINTS] = (features[POINTS] - shift).astype(np.float32)
        if TRACKS in features:
            shift = anchor[:, None, None, None] * features[TRACKS_MASK][..., None]
            out[TRACKS] = (features[TRACKS] - shift).astype(np.float32)
        return out, anchor

    def actions(self, joints: np.ndarray, anchor: np.ndarray) -> np.ndarray:
        """(B, H, J) joint positions -> (B, H, dim) tool-space frames, positions offset from ``anchor`` (B, 3)."""
        tool = self.poses(joints)
        tool[..., :3] -= np.asarray(anchor)[:, None]
        return tool.astype(np.float32)

    def joints(self, tool: np.ndarray, anchor: np.ndarray, q_now: np.ndarray) -> np.ndarray:
        """(N, H, dim) tool-space frames -> (N, H, J) joint positions, by IK along each chunk.

        Args:
            tool: frames as ``actions`` returns them.
            anchor: (3,) m, the TCP the positions are offsets from.
            q_now: (J,) measured joints, the first frame's warm start (and the passthrough joints' values
                where the frames carry none).
        An unreachable frame gets the IK's best effort; the safety node judges the chunk.
        """
        tool = np.asarray(tool, np.float64)
        rotations = rotation_from_6d(tool[..., 3:9])
        positions = tool[..., :3] + np.asarray(anchor)[None, None]
        posture = self.arm.profile.home
        out = np.empty((*tool.shape[:2], len(self.joint_names)))
        for n in range(tool.shape[0]):
            guess = np.asarray(q_now, np.float64)[self._to_arm]
            for h in range(tool.shape[1]):
                guess = self.arm.ik(positions[n, h], rotations[n, h], guess, max_iters=IK_ITERATIONS,
                                    rotation_weight=self.rotation_weight, posture=posture).positions
                out[n, h] = guess[self._from_arm]
            out[n][:, self._passthrough_columns] = tool[n, :, 9:]
        return out
