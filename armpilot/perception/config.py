"""Settings of the point-cloud pipeline (pure dataclass; declared as ROS parameters)."""

from __future__ import annotations

from dataclasses import dataclass, field

from armpilot.fields import describe as _describe


@dataclass(frozen=True)
class PerceptionConfig:
    """Workspace, voxel grid, plane and clustering settings. Lengths in metres."""

    workspace_min: tuple[float, ...] = field(
        default=(0.15, -0.45, -0.05), metadata=_describe("workspace box lower corner in base_link [x, y, z], m")
    )
    workspace_max: tuple[float, ...] = field(
        default=(0.85, 0.45, 0.40), metadata=_describe("workspace box upper corner in base_link [x, y, z], m")
    )
    voxel_size: float = field(default=0.01, metadata=_describe("voxel edge for downsampling and clustering, m"))
    plane_distance: float = field(default=0.008, metadata=_describe("table-plane inlier distance, m"))
    plane_max_tilt_deg: float = field(default=20.0, metadata=_describe("largest table tilt accepted, deg"))
    ransac_iterations: int = field(default=64, metadata=_describe("RANSAC plane hypotheses per frame"))
    min_cluster_voxels: int = field(default=4, metadata=_describe("smallest object, in voxels"))
    robot_padding: float = field(default=0.02, metadata=_describe(
        "how far beyond the arm's collision boxes the cloud is cut away, m (covers the camera's calibration error)"))
    pixel_stride: int = field(default=1, metadata=_describe("use every n-th pixel in u and v (1 = all)"))

    def __post_init__(self) -> None:
        if len(self.workspace_min) != 3 or len(self.workspace_max) != 3:
            raise ValueError("workspace_min and workspace_max need three values [x, y, z]")
        if any(lo >= hi for lo, hi in zip(self.workspace_min, self.workspace_max)):
            raise ValueError(f"workspace_min {self.workspace_min} must be below workspace_max {self.workspace_max}")
        if self.voxel_size <= 0 or self.plane_distance <= 0:
            raise ValueError("voxel_size and plane_distance must be > 0")
        if self.ransac_iterations < 1 or self.min_cluster_voxels < 1 or self.pixel_stride < 1:
            raise ValueError("ransac_iterations, min_cluster_voxels and pixel_stride must be >= 1")
