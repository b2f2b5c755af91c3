"""Encoders for what the camera sees, for the diffusion policy (PyTorch, no ROS).

* :class:`ImageEncoder`: a ResNet-18-style network trained from scratch, as in
  Diffusion Policy (Chi et al. 2023): BatchNorm replaced by GroupNorm (so a
  sample's embedding never depends on the rest of its batch, and EMA weights
  work), global pooling replaced by spatial-softmax keypoints, random-crop
  augmentation while training and a centre crop at inference.
* :class:`PointCloudEncoder`: the lightweight PointNet of 3D Diffusion Policy
  (Ze et al. 2024): a shared per-point MLP with LayerNorm and a max pool, over a
  few hundred to a thousand points of ``/perception/points``.

Shapes: images (B, 3, H, W) float in [0, 1]; clouds (B, P, 3) in metres with an
optional (B, P) bool mask of valid points.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from armpilot.policies.diffusion_config import FULL_FRAME, check_region

#: Channels per GroupNorm group (Diffusion Policy uses 16).
CHANNELS_PER_GROUP = 16


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with ``CHANNELS_PER_GROUP`` channels per group (at least one group)."""
    return nn.GroupNorm(max(1, channels // CHANNELS_PER_GROUP), channels)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convolutions and a shortcut) with GroupNorm."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm1 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.norm2 = group_norm(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          group_norm(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(y)) + self.shortcut(x))


class SpatialSoftmax(nn.Module):
    """(B, C, H, W) features -> (B, 2K) keypoints: the expected (x, y) in [-1, 1] of K softmax maps."""

    def __init__(self, channels: int, keypoints: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(channels, keypoints, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        maps = self.project(features)
        batch, keypoints, height, width = maps.shape
        weights = maps.flatten(2).softmax(dim=-1).view(batch, keypoints, height, width)
        ys = torch.linspace(-1.0, 1.0, height, device=maps.device, dtype=maps.dtype)
        xs = torch.linspace(-1.0, 1.0, width, device=maps.device, dtype=maps.dtype)
        x = (weights.sum(dim=2) * xs).sum(dim=-1)
        y = (weights.sum(dim=3) * ys).sum(dim=-1)
        return torch.stack([x, y], dim=-1).flatten(1)


@dataclass(frozen=True)
class ImageEncoderConfig:
    """Sizes of :class:`ImageEncoder`.

    Attributes:
        crop: side of the square crop the network sees, px (random while training, centred at inference).
        widths: channels of the four ResNet stages (ResNet-18: 64, 128, 256, 512; halved by default for a CPU).
        blocks: basic blocks per stage (ResNet-18: 2 each).
        keypoints: spatial-softmax keypoints K (the embedding before the projection is 2K wide).
        out_dim: embedding size per image.
    """

    crop: int = 84
    widths: tuple[int, int, int, int] = (32, 64, 128, 256)
    blocks: tuple[int, int, int, int] = (2, 2, 2, 2)
    keypoints: int = 32
    out_dim: int = 64


class ImageEncoder(nn.Module):
    """(B, 3, H, W) float images in [0, 1] -> (B, out_dim); H, W >= ``config.crop``."""

    def __init__(self, config: ImageEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or ImageEncoderConfig()
        widths = self.config.widths
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), group_norm(widths[0]), nn.ReLU())
        stages, channels = [], widths[0]
        for index, (width, blocks) in enumerate(zip(widths, self.config.blocks, strict=True)):
            for block in range(blocks):
                stride = 2 if block == 0 and index > 0 else 1
                stages.append(BasicBlock(channels, width, stride))
                channels = width
        self.stages = nn.Sequential(*stages)
        self.keypoints = SpatialSoftmax(channels, self.config.keypoints)
        self.project = nn.Sequential(nn.Linear(2 * self.config.keypoints, self.config.out_dim), nn.Mish())

    def crop(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random ``crop`` x ``crop`` window per image in training mode, the centred one otherwise."""
        size, (height, width) = self.config.crop, images.shape[-2:]
        if height < size or width < size:
            raise ValueError(f"images of {height}x{width} px are smaller than the {size} px crop")
        if not self.training:
            top, left = (height - size) // 2, (width - size) // 2
            return images[..., top:top + size, left:left + size]
        tops = torch.randint(0, height - size + 1, (images.shape[0],), generator=generator)
        lefts = torch.randint(0, width - size + 1, (images.shape[0],), generator=generator)
        return torch.stack([image[:, t:t + size, l_:l_ + size]
                            for image, t, l_ in zip(images, tops.tolist(), lefts.tolist(), strict=True)])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float in [0, 1], or uint8 (divided by 255) -> (B, out_dim)."""
        x = self.crop(images)
        if x.dtype == torch.uint8:  # converted after the crop: fewer pixels to convert
            x = x.float() / 255.0
        x = x * 2.0 - 1.0
        return self.project(self.keypoints(self.stages(self.stem(x))))


def layer_norm_mlp(widths: tuple[int, ...]) -> nn.Sequential:
    """Linear + LayerNorm + ReLU per consecutive pair of ``widths`` (the per-point MLPs of the cloud encoders)."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(fan_in, fan_out), nn.LayerNorm(fan_out), nn.ReLU()]
    return nn.Sequential(*layers)


def used_slots(points: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P, D) points and (B, P) mask cut after the last slot valid in any cloud of the batch: the slots
    after it add nothing (``bench/encoders.py``: points_sparse_over_full_n16)."""
    valid = mask.any(dim=0).nonzero()
    used = int(valid.max()) + 1 if len(valid) else 1
    return points[:, :used], mask[:, :used]


def masked_max(features: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Max of ``features`` over ``dim`` where ``mask`` (``features``' shape without its last axis) holds;
    zeros where nothing does."""
    return torch.nan_to_num(features.masked_fill(~mask[..., None], float("-inf")).amax(dim=dim), neginf=0.0)


class PointCloudEncoder(nn.Module):
    """(B, P, in_dim) points (xyz, m, by default) and an optional (B, P) validity mask -> (B, out_dim);
    order-invariant."""

    def __init__(self, out_dim: int = 64, widths: tuple[int, ...] = (64, 128, 256), in_dim: int = 3) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.point = layer_norm_mlp((in_dim, *widths))
        self.project = nn.Sequential(nn.Linear(widths[-1], out_dim), nn.LayerNorm(out_dim))

    def forward(self, points: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return self.project(self.point(points).amax(dim=1))
        points, mask = used_slots(points, mask)
        return self.project(masked_max(self.point(points), mask, dim=1))  # a cloud with no valid point -> zeros


def subsample_points(points: torch.Tensor, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` of the (P, 3) ``points`` drawn without replacement (all of them, padded by repeats, if P < count)."""
    total = points.shape[0]
    if total == 0:
        raise ValueError("an empty point cloud cannot be subsampled")
    if total >= count:
        return points[torch.randperm(total, generator=generator)[:count]]
    return points[torch.arange(count) % total]


def square_frames(frames: np.ndarray, size: int, region: tuple[float, ...] = FULL_FRAME) -> np.ndarray:
    """(N, H, W, 3) or (H, W, 3) uint8 RGB -> (N, 3, size, size) / (3, size, size) uint8: the ``region``
    (left, top, right, bottom fractions) of each frame, area-resampled.

    One function for training (dataset frames) and inference (camera frames), so both see the same pixels.
    """
    frames = np.asarray(frames, np.uint8)
    single = frames.ndim == 3
    batch = frames[None] if single else frames
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) RGB frames, got shape {frames.shape}")
    check_region(region)
    height, width = batch.shape[1:3]
    left, top = min(round(region[0] * width), width - 1), min(round(region[1] * height), height - 1)
    right, bottom = max(round(region[2] * width), left + 1), max(round(region[3] * height), top + 1)
    out = np.stack([cv2.resize(f[top:bottom, left:right], (size, size), interpolation=cv2.INTER_AREA)
                    for f in batch]).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(out[0] if single else out)
