"""Settings of the point-cloud pipeline (pure dataclass; declared as ROS parameters)."""

from __future__ import annotations

from dataclasses import dataclass, field

from armpilot.fields import describe as _describe
from armpilot.tasks.definitions import REFERENCE_REACH

#: The crop box around the table of armpilot's own arm (reach 0.6 m, table top z = 0), m in the base frame; other
#: arms scale it with their reach (as the sim scales its table and task regions) and lift it to their table.
REFERENCE_BOX = ((0.15, -0.45, -0.05), (0.85, 0.45, 0.40))


def table_box(reach: float = REFERENCE_REACH, table_z: float = 0.0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(min, max) corners of the crop box over the table of an arm of ``reach`` m whose table top is at ``table_z``."""
    scale = reach / REFERENCE_REACH
    low, high = REFERENCE_BOX
    return ((low[0] * scale, low[1] * scale, table_z + low[2]),
            (high[0] * scale, high[1] * scale, table_z + high[2] * scale))


@dataclass(frozen=True)
class PerceptionConfig:
    """Workspace, voxel grid, plane and clustering settings. Lengths in metres."""

    workspace_min: tuple[float, ...] = field(default=(), metadata={**_describe(
        "crop box lower corner in the base frame [x, y, z], m; empty: over the robot profile's table, sized by its "
        "reach (armpilot's arm: [0.15, -0.45, -0.05])"), "items": "float"})
    workspace_max: tuple[float, ...] = field(default=(), metadata={**_describe(
        "crop box upper corner [x, y, z], m; empty: from the profile like workspace_min (armpilot's: [0.85, 0.45, "
        "0.40])"), "items": "float"})
    voxel_size: float = field(default=0.01, metadata=_describe("voxel edge for downsampling and clustering, m"))
    plane_distance: float = field(default=0.008, metadata=_describe("table-plane inlier distance, m"))
    plane_max_tilt_deg: float = field(default=20.0, metadata=_describe("largest table tilt accepted, deg"))
    ransac_iterations: int = field(default=64, metadata=_describe("RANSAC plane hypotheses per frame"))
    min_cluster_voxels: int = field(default=4, metadata=_describe("smallest object, in voxels"))
    robot_padding: float = field(default=0.02, metadata=_describe(
        "how far beyond the arm's collision boxes the cloud is cut away, m (covers the camera's calibration error)"))
    pixel_stride: int = field(default=1, metadata=_describe("use every n-th pixel in u and v (1 = all)"))

    def __post_init__(self) -> None:
        given = (len(self.workspace_min), len(self.workspace_max))
        if given not in ((0, 0), (3, 3)):
            raise ValueError("workspace_min and workspace_max need three values [x, y, z] each (or both empty)")
        if any(lo >= hi for lo, hi in zip(self.workspace_min, self.workspace_max)):
            raise ValueError(f"workspace_min {self.workspace_min} must be below workspace_max {self.workspace_max}")
        if self.voxel_size <= 0 or self.plane_distance <= 0:
            raise ValueError("voxel_size and plane_distance must be > 0")
        if self.ransac_iterations < 1 or self.min_cluster_voxels < 1 or self.pixel_stride < 1:
            raise ValueError("ransac_iterations, min_cluster_voxels and pixel_stride must be >= 1")

    def box(self, reach: float = REFERENCE_REACH, table_z: float = 0.0) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(min, max) corners of the crop box: the ones given, else ``table_box(reach, table_z)``."""
        return (self.workspace_min, self.workspace_max) if self.workspace_min else table_box(reach, table_z)
