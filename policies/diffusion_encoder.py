"""Observation encoder and normalisation for the diffusion policy (PyTorch, no ROS).

Low-dim features (joint state, perceived object pose, task goal), each
(B, n_obs_steps, D), are normalised with dataset statistics, flattened and
embedded by an MLP. Motion tracks (B, n_obs_steps, K, T, 3) with a mask
(B, n_obs_steps, K, T) are encoded one token per track (its T positions and
step mask) by a PointNet with a masked max pool, so missing tracks cost nothing. Each camera's latest
frame, (B, 3, S, S) uint8 (``image_size`` S), goes through its own
ResNet-18-style encoder (``vision_encoders.ImageEncoder``); the latest cloud,
(B, P, 3) m with a (B, P) mask, through a DP3-style PointNet or the soft-keypoint
encoder (``point_keypoints``).
"""

from __future__ import annotations

import torch
from torch import nn

from armpilot.dataset.tracks_feature import NUM_STEPS
from armpilot.features import POINTS, POINTS_MASK
from armpilot.policies.diffusion_config import STATE_STEP, TRACKS, TRACKS_MASK, DiffusionConfig
from armpilot.policies.point_keypoints import point_encoder
from armpilot.policies.vision_encoders import ImageEncoder, ImageEncoderConfig, PointCloudEncoder

#: Features whose range (min_max) or std (mean_std) is below this are only centred.
CONSTANT_SPAN = 1e-3


def cloud_in_frame(points: torch.Tensor, goal: torch.Tensor, frame: str) -> torch.Tensor:
    """(B, P, 3) cloud, m, in the base frame -> the same in ``points_frame`` ``frame``: as it is ("world") or
    each point minus the latest goal of (B, n_obs_steps, 3) ``goal`` ("goal")."""
    return points if frame == "world" else points - goal[:, -1:, :]


class FeatureNormalizer(nn.Module):
    """Per-feature affine map to [-1, 1] (min_max) or zero mean / unit std, stored as buffers.

    ``stats``: key -> {"min", "max", "mean", "std"} tensors of the feature's last dimension.
    """

    def __init__(self, stats: dict[str, dict[str, torch.Tensor]], mode: str) -> None:
        super().__init__()
        if mode not in ("min_max", "mean_std"):
            raise ValueError(f"unknown normalisation {mode!r}")
        self.keys = sorted(stats)
        for i, key in enumerate(self.keys):
            s = stats[key]
            if mode == "min_max":
                span = s["max"] - s["min"]
                scale, offset = 2.0 / span, -1.0 - 2.0 * s["min"] / span
                centre = (s["max"] + s["min"]) / 2
            else:
                span = s["std"]
                scale, offset = 1.0 / span, -s["mean"] / span
                centre = s["mean"]
            constant = span < CONSTANT_SPAN  # a feature that never varied: centre it, do not blow it up
            scale = torch.where(constant, torch.ones_like(scale), scale)
            offset = torch.where(constant, -centre, offset)
            self.register_buffer(f"scale_{i}", scale.float().clone())
            self.register_buffer(f"offset_{i}", offset.float().clone())

    def _affine(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        i = self.keys.index(key)
        return getattr(self, f"scale_{i}"), getattr(self, f"offset_{i}")

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        scale, offset = self._affine(key)
        return x * scale + offset

    def unnormalize(self, key: str, y: torch.Tensor) -> torch.Tensor:
        scale, offset = self._affine(key)
        return (y - offset) / scale


class TracksEncoder(nn.Module):
    """(B, S, K, T, 3) tracks + (B, S, K, T) mask -> (B, out_dim): each track is one token, its T positions
    (0 where missing) and its step mask, pooled over the S x K tracks with at least one step (PointNet)."""

    def __init__(self, track_steps: int, out_dim: int = 64) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.tokens = PointCloudEncoder(out_dim, in_dim=4 * track_steps)

    def forward(self, tracks: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, steps = tracks.shape[0], tracks.shape[-2]
        positions = torch.where(mask[..., None], tracks, torch.zeros_like(tracks)).reshape(batch, -1, steps * 3)
        step_mask = mask.reshape(batch, -1, steps)
        tokens = torch.cat([positions, step_mask.to(tracks.dtype)], dim=-1)
        return self.tokens(tokens, step_mask.any(dim=-1))


def joint_step(state: torch.Tensor) -> torch.Tensor:
    """(B, n_obs_steps, J) state history -> (B, J) its latest step, state[-1] - state[-2] (``state_velocity``)."""
    return state[:, -1] - state[:, -2]


class ObservationEncoder(nn.Module):
    """Normalised observation dict -> (B, obs_embed_dim) conditioning vector."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.config = config
        low_dim = config.n_obs_steps * sum(config.feature_dim(k) for k in config.obs_keys)
        low_dim += config.network_dim if config.state_velocity else 0
        self.tracks = TracksEncoder(NUM_STEPS) if config.use_tracks else None
        image_config = ImageEncoderConfig(crop=config.image_crop)
        self.cameras = nn.ModuleList(ImageEncoder(image_config) for _ in config.image_keys)
        self.points = point_encoder(config.point_encoder) if config.use_points else None
        tracks_dim = self.tracks.out_dim if self.tracks is not None else 0
        in_dim = (low_dim + tracks_dim + image_config.out_dim * len(self.cameras)
                  + (self.points.out_dim if self.points is not None else 0))
        self.mlp = nn.Sequential(nn.Linear(in_dim, 256), nn.Mish(), nn.Linear(256, config.obs_embed_dim))

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [obs[k].flatten(1) for k in self.config.obs_keys]
        if self.config.state_velocity:
            parts.append(obs[STATE_STEP])
        if self.tracks is not None:
            parts.append(self.tracks(obs[TRACKS], obs[TRACKS_MASK]))
        parts.extend(encoder(obs[key]) for key, encoder in zip(self.config.image_keys, self.cameras, strict=True))
        if self.points is not None:
            parts.append(self.points(obs[POINTS], obs[POINTS_MASK]))
        return self.mlp(torch.cat(parts, dim=-1))
