"""Per-feature min/max/mean/std/count, mergeable across episodes (LeRobot stats.json layout).

Vector features (T, D) get (D,) statistics, scalar columns (T,) get (1,).
Colour images get per-channel (3, 1, 1) statistics of pixel values scaled to
[0, 1] (as LeRobot); depth gets (1, 1, 1) statistics in millimetres. Image
statistics use every ``IMAGE_STRIDE``-th pixel in each direction.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

IMAGE_STRIDE = 4


class _Moments:
    def __init__(self, values: np.ndarray, axes: tuple[int, ...]) -> None:
        v = values.astype(np.float64)
        self.count = int(np.prod([values.shape[a] for a in axes]))
        self.sum, self.sumsq = v.sum(axes), np.square(v).sum(axes)
        self.min, self.max = v.min(axes), v.max(axes)

    def merge(self, other: _Moments) -> None:
        self.count += other.count
        self.sum, self.sumsq = self.sum + other.sum, self.sumsq + other.sumsq
        self.min, self.max = np.minimum(self.min, other.min), np.maximum(self.max, other.max)

    def as_dict(self, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        mean = self.sum / self.count
        std = np.sqrt(np.maximum(self.sumsq / self.count - mean**2, 0.0))
        return {"min": self.min.reshape(shape), "max": self.max.reshape(shape), "mean": mean.reshape(shape),
                "std": std.reshape(shape), "count": np.array([self.count])}


class RunningStats:
    """Accumulates statistics feature by feature."""

    def __init__(self) -> None:
        self._moments: dict[str, tuple[_Moments, tuple[int, ...]]] = {}

    def update(self, key: str, values: np.ndarray, axes: tuple[int, ...], shape: tuple[int, ...]) -> None:
        """Adds samples of one feature, reducing over ``axes`` into ``shape``."""
        moments = _Moments(np.asarray(values), axes)
        if key in self._moments:
            self._moments[key][0].merge(moments)
        else:
            self._moments[key] = (moments, shape)

    def update_all(self, columns: Mapping[str, np.ndarray], color: np.ndarray, depth: np.ndarray) -> None:
        """Numeric columns (T,) or (T, D), colour (T, H, W, 3) uint8, depth (T, H, W) uint16 mm."""
        for key, values in columns.items():
            values = np.asarray(values)
            self.update(key, values, (0,), values.shape[1:] or (1,))
        for start in range(0, color.shape[0], 32):  # bounded memory; a 4x4 pixel subsample
            sub = slice(start, start + 32), slice(None, None, IMAGE_STRIDE), slice(None, None, IMAGE_STRIDE)
            self.update("observation.images.color", color[sub].reshape(-1, 3) / 255.0, (0,), (3, 1, 1))
            self.update("observation.images.depth", depth[sub].reshape(-1, 1), (0,), (1, 1, 1))

    def merge(self, other: RunningStats) -> None:
        """Adds another accumulator's samples."""
        for key, (moments, shape) in other._moments.items():
            if key in self._moments:
                self._moments[key][0].merge(moments)
            else:
                self._moments[key] = (_copy(moments), shape)

    def as_dict(self) -> dict[str, dict[str, np.ndarray]]:
        """feature -> {min, max, mean, std, count} arrays."""
        return {key: m.as_dict(shape) for key, (m, shape) in self._moments.items()}

    def as_json(self) -> dict[str, dict[str, list]]:
        """The same as nested lists, for stats.json."""
        return {key: {name: value.tolist() for name, value in stats.items()}
                for key, stats in self.as_dict().items()}


def _copy(m: _Moments) -> _Moments:
    new = object.__new__(_Moments)
    new.__dict__.update({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in m.__dict__.items()})
    return new
