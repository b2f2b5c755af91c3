"""``diffusion`` backend: a trained diffusion policy behind the policy interface (PyTorch, no ROS).

The network predicts ``config.horizon`` action frames ``action_dt`` apart, the
first ``action_delay`` after the observation (the recorded command's lead).
The backend resamples them onto the node's grid ``chunk_dt * (1..H)`` and,
for N candidates, draws N chunks in one batch. Observation history: the
node passes ``history`` observations at ``history_offsets`` seconds before
the current one (oldest first), as the dataset's ``n_obs_steps`` frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transforms3d.euler import euler2quat

from armpilot.dataset.points_feature import valid_points
from armpilot.features import POINTS, POINTS_MASK, TRACKS, TRACKS_MASK, unfed_features
from armpilot.policies.base import Capabilities, Observation, Policy, node_feeds
from armpilot.policies.chunking import resample_in_time
from armpilot.policies.diffusion_checkpoint import CheckpointError, load_policy
from armpilot.policies.diffusion_config import ACTION, GOAL, OBJECT, SAMPLERS, STATE
from armpilot.policies.diffusion_sampling import ChunkSampler
from armpilot.policies.realtime import CommittedPrefix
from armpilot.policies.tool_frame import ToolFrame
from armpilot.policies.vision_encoders import square_frames
from armpilot.robot import ArmModel
from armpilot.robot_profile import DEFAULT_ROBOT, load_profile


def object_vector(position: np.ndarray, yaw: float) -> np.ndarray:
    """(7,) x, y, z, qx, qy, qz, qw as the dataset stores a perceived object (yaw about z, qw >= 0)."""
    w, x, y, z = euler2quat(0.0, 0.0, yaw)
    return np.array([*position, x, y, z, w], np.float32)


class DiffusionPolicy(Policy):
    """Loads a checkpoint folder; (J,) observation -> (H, J) or (N, H, J) joint targets.

    Capabilities: N samples in one batch, several observations in one batch
    (``sample_batch``), committed prefixes (Real-Time Chunking) inpainted at the
    network's own frame times, or conditioned on by a checkpoint trained with
    ``--prefix-frames``.

    Raises:
        CheckpointError: missing/corrupt checkpoint, or joint names that differ from the node's.
    """

    def __init__(self, checkpoint: Path, joint_names: tuple[str, ...], horizon: int = 10, chunk_dt: float = 0.1,
                 sampler: str = "dpm", steps: int = 3, seed: int = 0, start_fraction: float = 0.25,
                 device: str = "cpu", robot: str = "", arm: ArmModel | None = None) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; use one of {SAMPLERS}")
        self.model, meta = load_policy(Path(checkpoint))
        self.device = torch.device(device)
        self.model.to(self.device)
        self.config = cfg = self.model.config
        if sorted(cfg.joint_names) != sorted(joint_names):
            raise CheckpointError(
                f"checkpoint '{checkpoint}' was trained on joints {list(cfg.joint_names)} ({cfg.action_dim}) "
                f"but the node runs {list(joint_names)} ({len(joint_names)})")
        self.joint_order = tuple(cfg.joint_names)  # the node feeds it in the dataset's order
        if cfg.robot and robot and cfg.robot != robot:
            raise CheckpointError(f"checkpoint '{checkpoint}' was trained on robot '{cfg.robot}' but the node runs "
                                  f"robot '{robot}' (set the robot parameter, or train on this robot's data)")
        self.meta = meta
        unfed = unfed_features(self.required_features(), node_feeds(self.capabilities), {"J": len(joint_names)})
        if unfed:
            raise CheckpointError(f"checkpoint '{checkpoint}' needs features this graph cannot feed: "
                                  f"{'; '.join(unfed)}")
        self.horizon, self.chunk_dt = horizon, chunk_dt
        self.action_delay = cfg.action_delay
        stats = meta["stats"][ACTION]
        self.action_low, self.action_high = np.asarray(stats["min"], np.float32), np.asarray(stats["max"], np.float32)
        self.tool = None if cfg.action_space == "joint" else self._tool_frame(checkpoint, arm, robot)
        self.history_offsets = tuple(k * cfg.action_dt for k in range(cfg.n_obs_steps - 1, 0, -1))
        self.sampler = ChunkSampler(cfg, sampler, steps, start_fraction)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self._previous: tuple[float, np.ndarray] | None = None  # (stamp, native (H, A) chunk) for streaming

    def _tool_frame(self, checkpoint: Path, arm: ArmModel | None, robot: str) -> ToolFrame:
        """The FK/IK between the network's tool space and the node's joints (the node's arm, else the profile
        the checkpoint names)."""
        arm = arm if arm is not None else ArmModel(load_profile(self.config.robot or robot or DEFAULT_ROBOT))
        tool = ToolFrame(arm, self.config.joint_names)
        if tool.passthrough != tuple(self.config.tool_passthrough):
            raise CheckpointError(f"checkpoint '{checkpoint}' carries joints {list(self.config.tool_passthrough)} "
                                  f"as they are, robot '{arm.name}' has {list(tool.passthrough)} outside its arm")
        return tool

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        """Prefix conditioning only for a checkpoint trained with committed prefixes (``--prefix-frames``);
        the camera image, the cloud and the tracks only for one trained on them."""
        return Capabilities(needs_image=bool(self.config.image_keys), needs_points=self.config.use_points,
                            needs_tracks=self.config.use_tracks,
                            stochastic=True, batches_observations=True, inpaints=True,
                            prefix_conditioned=self.config.prefix_frames > 0)

    @property
    def native_times(self) -> np.ndarray:
        """(H_native,) s after the observation of the network's frames."""
        return self.action_delay + self.config.action_dt * np.arange(self.config.horizon)

    def reset(self) -> None:
        self._previous = None

    @property
    def input_features(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(key for key in self.meta["features"] if key != ACTION)

    def required_features(self) -> dict[str, dict]:
        """The contract entries stored in the checkpoint, the action's left out."""
        return {key: entry for key, entry in self.meta["features"].items() if key != ACTION}

    def _arrays(self, observation: Observation) -> dict[str, np.ndarray]:
        """The network's inputs in joint space, each with a batch dimension of 1."""
        frames = (*observation.history, observation)
        if len(frames) != self.config.n_obs_steps:
            raise ValueError(f"{len(frames)} observation frames for a policy with n_obs_steps "
                             f"{self.config.n_obs_steps}")
        rows = {STATE: [f.joint_positions for f in frames],
                OBJECT: [object_vector(f.object_position, f.object_yaw) for f in frames],
                GOAL: [f.goal_position for f in frames]}
        arrays = {k: np.asarray(rows[k], np.float32)[None] for k in self.config.obs_keys}
        for key in self.config.image_keys:  # the latest frame only
            if observation.image is None:
                raise ValueError(f"the policy needs '{key}' and no camera frame has arrived yet")
            arrays[key] = square_frames(observation.image, self.config.image_size, self.config.image_region)[None]
        if self.config.use_points:  # the latest cloud
            if observation.points is None:
                raise ValueError(f"the policy needs '{POINTS}' and no cloud has arrived yet")
            xyz, mask = valid_points(np.asarray(observation.points, np.float32))
            arrays[POINTS], arrays[POINTS_MASK] = xyz[None], mask[None]
        if self.config.use_tracks:  # every frame's own tracks, as the dataset holds them
            if any(f.tracks is None for f in frames):
                raise ValueError(f"the policy needs '{TRACKS}' and no tracks have arrived yet")
            tracks = np.asarray([f.tracks for f in frames], np.float32)  # (S, K, T, 3)
            mask = np.isfinite(tracks).all(-1)
            arrays[TRACKS], arrays[TRACKS_MASK] = np.where(mask[..., None], tracks, 0.0)[None], mask[None]
        return arrays

    def _tensors(self, observation: Observation) -> tuple[dict[str, torch.Tensor], np.ndarray | None]:
        """(the network's inputs, the anchor (3,) m their positions are offsets from, or None in joint space)."""
        arrays, anchor = self._arrays(observation), None
        if self.tool is not None:
            arrays, anchors = self.tool.observation(arrays)
            anchor = anchors[0]
        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device) for k, v in arrays.items()}, anchor

    def _to_network_space(self, joints: np.ndarray, anchor: np.ndarray | None) -> np.ndarray:
        """(H, J) joint positions -> (H, A) frames as the network predicts them."""
        return joints if self.tool is None else self.tool.actions(joints[None], anchor[None])[0]

    def _to_joints(self, native: np.ndarray, anchor: np.ndarray | None, q_now: np.ndarray) -> np.ndarray:
        """(N, H, A) network frames (clipped to the demonstrated range) -> (N, H, J) joint positions."""
        native = np.clip(native, self.action_low, self.action_high)
        return native if self.tool is None else self.tool.joints(native, anchor, q_now)

    def _warm_start(self, stamp: float, anchor: np.ndarray | None) -> torch.Tensor | None:
        """The previous native chunk advanced to ``stamp`` (padded with its last frame), for streaming."""
        if self.sampler.name != "streaming" or self._previous is None:
            return None
        previous_stamp, chunk = self._previous
        shift = int(round((stamp - previous_stamp) / self.config.action_dt))
        if not 0 <= shift < len(chunk):
            return None
        rolled = np.concatenate([chunk[shift:], np.repeat(chunk[-1:], shift, axis=0)])
        return torch.as_tensor(self._to_network_space(rolled, anchor), dtype=torch.float32, device=self.device)

    def _guide(self, stamp: float, prefix: CommittedPrefix | None,
               anchor: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        if prefix is None:
            return None
        targets, weights = prefix.guide(stamp, self.native_times)
        if not weights.any():
            return None
        targets = self._to_network_space(np.asarray(targets, np.float64), anchor)
        return (torch.as_tensor(targets, dtype=torch.float32, device=self.device),
                torch.as_tensor(weights, dtype=torch.float32, device=self.device))

    def sample_candidates(self, observation: Observation, num_samples: int,
                          prefix: CommittedPrefix | None = None) -> np.ndarray:
        """(N, H, J) joint targets at ``stamp + chunk_dt * (1..H)``, N chunks drawn in one batch.

        ``prefix``: the executing chunk to continue (frozen frames kept, overlap inpainted).
        """
        if prefix is not None and prefix.conditioned and not self.capabilities.prefix_conditioned:
            raise CheckpointError("this checkpoint was not trained with committed prefixes (armpilot train "
                                  "--prefix-frames); use transition rtc, or a checkpoint trained for prefix")
        obs, anchor = self._tensors(observation)
        native = self.model.sample(obs, num_samples, self.sampler, self._warm_start(observation.stamp, anchor),
                                   self.generator, self._guide(observation.stamp, prefix, anchor),
                                   condition=prefix is not None and prefix.conditioned).cpu().numpy()
        # never extrapolate beyond what was demonstrated (e.g. a gripper held fully open at its limit)
        native = self._to_joints(native, anchor, np.asarray(observation.joint_positions))
        self._previous = (observation.stamp, native[0].copy())
        return resample_in_time(self.chunk_dt * np.arange(1, self.horizon + 1), self.native_times, native)

    def sample_batch(self, observations: list[Observation], counts: list[int]) -> list[np.ndarray]:
        """B observations -> B arrays (N_b, H, J): one batched denoising loop (``batches_observations``).

        No warm start and no committed prefix (the observations may come from different robots).
        """
        if len(observations) != len(counts) or min(counts, default=1) < 1:
            raise ValueError(f"{len(observations)} observations with counts {counts[:16]}")
        rows = [self._tensors(o) for o in observations]
        obs = {k: torch.cat([r[0][k] for r in rows]) for k in rows[0][0]}
        native = self.model.sample_batch(obs, counts, self.sampler, self.generator).cpu().numpy()
        times = self.chunk_dt * np.arange(1, self.horizon + 1)
        return [resample_in_time(times, self.native_times,
                                 self._to_joints(part, anchor, np.asarray(o.joint_positions)))
                for part, (_, anchor), o in zip(np.split(native, np.cumsum(counts)[:-1]), rows, observations)]

    def predict_action_chunk(self, observation: Observation) -> np.ndarray:
        """(J,) observation -> (H, J) joint targets."""
        return self.sample_candidates(observation, 1)[0]
