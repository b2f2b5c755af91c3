"""The action label: where the active command wants the arm ``LEAD`` s after each frame (pure numpy).

The safety node sends a trajectory (10 points, 0.1 s apart) every 0.2 s and
the controller follows the latest one, interpolating between points. Holding
each command's first point at 15 fps would give a 5 Hz staircase whose jumps
look like over-speed motion to a policy that learns from it. Instead every
command is kept as its trajectory sampled on a fixed grid of offsets from its
stamp, and the label at a frame is the latest command (stamp <= frame, never
a later one) evaluated ``LEAD`` s after the frame: smooth and causal.
"""

from __future__ import annotations

import numpy as np

from .resampler import NS_PER_S, hold_indices

#: Grid spacing (s) and points of a stored command trajectory (0 .. 1.2 s after its stamp).
GRID_DT, GRID_POINTS = 0.05, 25
#: How far ahead of the frame the label looks, s (a command's first point is chunk_dt = 0.1 s ahead).
LEAD = 0.1


def trajectory_grid(times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(H,) s from the stamp, (H, J) positions -> (GRID_POINTS, J), held before the first and after the last point."""
    grid = GRID_DT * np.arange(GRID_POINTS)
    return np.stack([np.interp(grid, times, positions[:, j]) for j in range(positions.shape[1])], axis=-1)


def reference_actions(stamps: np.ndarray, grids: np.ndarray, ticks: np.ndarray, lead: float = LEAD) -> np.ndarray:
    """(N,) int64 ns command stamps, (N, G, J) grids, (T,) int64 ns ticks -> (T, J) labels.

    Ticks before the first command take the first command (the converter drops them anyway).
    """
    index = np.maximum(hold_indices(stamps, ticks), 0)
    offset = (ticks - stamps[index]) / NS_PER_S + lead
    position = np.clip(offset / GRID_DT, 0, grids.shape[1] - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, grids.shape[1] - 1)
    w = (position - low)[:, None]
    return (1 - w) * grids[index, low] + w * grids[index, high]
