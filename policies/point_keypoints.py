"""A point-cloud encoder that says *where* things are: local shape features and 3D soft keypoints.

The DP3 PointNet (``vision_encoders.PointCloudEncoder``) max-pools per-point features into one vector.
Where the task's cube is must then survive a max over channels, and each point sees only its own
coordinates, so a point on a cube's side and one at the same height on a pillar's side look the same.
:class:`KeypointCloudEncoder` adds what the image encoder already has (Diffusion Policy's spatial
softmax), in 3D:

1. **local shape** (one EdgeConv layer, Wang et al. 2019): each point's feature is the max over its k
   nearest valid neighbours of an MLP of (point, neighbour - point), so it knows what stands around it
   (the top of a cube, the side of a pillar);
2. a per-point MLP, and a masked max pool: the global feature (B, W);
3. **soft keypoints**: K scores per point (from its feature and the global one), a softmax over the
   valid points per keypoint, and each keypoint the weighted mean of the points' coordinates (B, K, 3).
   A keypoint is an interpolation of measured points, so a position comes out as precise as the cloud.

Shapes: points (B, P, 3) (normalised or m), mask (B, P) bool -> (B, out_dim). Pure PyTorch, no ROS.
"""

from __future__ import annotations

import torch
from torch import nn

from armpilot.policies.diffusion_config import POINT_ENCODERS
from armpilot.policies.vision_encoders import PointCloudEncoder, layer_norm_mlp, masked_max, used_slots


def nearest_neighbours(points: torch.Tensor, mask: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P, 3) points, (B, P) mask -> indices (B, P, k) of each point's k = min(count, P) nearest valid
    points (a valid point among them itself) and their validity (B, P, k) (False where a cloud has fewer
    than k valid points)."""
    distances = torch.cdist(points, points).masked_fill(~mask[:, None, :], float("inf"))
    indices = distances.topk(min(count, points.shape[1]), dim=-1, largest=False).indices
    batch = torch.arange(points.shape[0], device=points.device)[:, None, None]
    return indices, mask[batch, indices]


class KeypointCloudEncoder(nn.Module):
    """(B, P, 3) points + optional (B, P) validity mask -> (B, out_dim): [global feature, K keypoints]."""

    def __init__(self, out_dim: int = 64, neighbours: int = 8, keypoints: int = 16, edge_width: int = 32,
                 width: int = 64) -> None:
        super().__init__()
        self.out_dim, self.neighbours, self.keypoints = out_dim, neighbours, keypoints
        self.edge = layer_norm_mlp((6, edge_width, edge_width))
        self.point = layer_norm_mlp((edge_width + 3, width, width))
        self.score = nn.Sequential(nn.Linear(2 * width, width), nn.ReLU(), nn.Linear(width, keypoints))
        self.project = nn.Sequential(nn.Linear(width + 3 * keypoints, out_dim), nn.LayerNorm(out_dim))

    def forward(self, points: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, P, 3) points, (B, P) mask (None: all valid) -> (B, out_dim)."""
        pooled, keypoints = self.locate(points, mask)
        return self.project(torch.cat([pooled, keypoints.flatten(1)], dim=-1))

    def locate(self, points: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The global feature (B, width) and the K keypoints (B, K, 3), each a weighted mean of valid points
        (zeros for a cloud with no valid point)."""
        if mask is None:
            mask = torch.ones(points.shape[:2], dtype=torch.bool, device=points.device)
        points, mask = used_slots(points, mask)
        points = points.masked_fill(~mask[..., None], 0.0)  # a NaN in a masked slot must not reach a keypoint
        features = self.point(torch.cat([self._local(points, mask), points], dim=-1))  # (B, P, W)
        pooled = masked_max(features, mask, dim=1)
        scores = self.score(torch.cat([features, pooled[:, None].expand_as(features)], dim=-1))  # (B, P, K)
        weights = torch.nan_to_num(scores.masked_fill(~mask[..., None], float("-inf")).softmax(dim=1))
        return pooled, torch.einsum("bpk,bpc->bkc", weights, points)

    def _local(self, points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, P, edge_width): EdgeConv, max over each point's nearest valid neighbours (zeros if none)."""
        indices, neighbour_valid = nearest_neighbours(points, mask, self.neighbours)
        batch = torch.arange(points.shape[0], device=points.device)[:, None, None]
        centre = points[:, :, None].expand(-1, -1, indices.shape[-1], -1)
        edges = self.edge(torch.cat([centre, points[batch, indices] - centre], dim=-1))  # (B, P, k, E)
        return masked_max(edges, neighbour_valid, dim=2)


def point_encoder(kind: str, out_dim: int = 64) -> nn.Module:
    """The cloud encoder named ``kind`` (one of ``POINT_ENCODERS``)."""
    if kind == "pointnet":
        return PointCloudEncoder(out_dim)
    if kind == "keypoints":
        return KeypointCloudEncoder(out_dim)
    raise ValueError(f"unknown point encoder {kind!r}; known: {list(POINT_ENCODERS)}")
