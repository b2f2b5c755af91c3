"""Training data loader over a LeRobotDataset v3.0 folder (pyarrow + torch, no lerobot).

Each item is one frame ``f`` of one episode::

    observation.state   (T_obs, J) float32   frames f-T_obs+1 .. f (clamped to the episode start)
    observation.object  (T_obs, 7) float32
    observation.goal    (T_obs, 3) float32   (datasets converted with a goal column)
    action              (H, J)     float32   frames f .. f+H-1, the last frame repeated past the end
    action_is_pad       (H,)       bool      True where padded
    observation.images.color (T_obs, 3, H_img, W_img) float32 in [0, 1]  (decode_video=True)
    observation.images.depth (T_obs, 1, H_img, W_img) float32 mm         (decode_depth=True)
    observation.tracks       (T_obs, K, T, 3) float32 base_link m, 0 where missing  (if the dataset has tracks)
    observation.tracks_mask  (T_obs, K, T)    bool    True where a track point exists
    observation.points       (P, 3) float32 base_link m, 0 where missing, frame f only  (if it has a cloud)
    observation.points_mask  (P,)   bool    True for a real point
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from .depth_png import decode_depth_png
from armpilot.features import load_contract

from .lerobot_v3 import ACTION, COLOR, DEPTH, GOAL, OBJECT, STATE, VIDEO_PATH
from .points_feature import POINTS, POINTS_MASK
from .tracks_feature import TRACKS, TRACKS_MASK, column_array


def load_stats(root: Path) -> dict[str, dict[str, torch.Tensor]]:
    """meta/stats.json as tensors: feature -> {min, max, mean, std, count}."""
    stats = json.loads((Path(root) / "meta" / "stats.json").read_text())
    return {k: {s: torch.tensor(v, dtype=torch.float32) for s, v in d.items()} for k, d in stats.items()}


class Normalizer:
    """Mean/std (``mode='mean_std'``) or min/max to [-1, 1] (``'min_max'``) for one feature."""

    def __init__(self, stats: dict[str, torch.Tensor], mode: str = "min_max", eps: float = 1e-8) -> None:
        if mode not in ("min_max", "mean_std"):
            raise ValueError(f"unknown normalisation mode {mode!r}")
        self.mode, self.eps, self.stats = mode, eps, stats

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "mean_std":
            return (x - self.stats["mean"]) / (self.stats["std"] + self.eps)
        lo, hi = self.stats["min"], self.stats["max"]
        return 2 * (x - lo) / (hi - lo + self.eps) - 1

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Undo ``__call__``."""
        if self.mode == "mean_std":
            return y * (self.stats["std"] + self.eps) + self.stats["mean"]
        lo, hi = self.stats["min"], self.stats["max"]
        return (y + 1) / 2 * (hi - lo + self.eps) + lo


def check_against_contract(root: Path, features: dict[str, Any]) -> None:
    """Raises ValueError naming a feature of ``info.json`` whose dtype or shape differs from the feature
    contract (``config/features.yaml``). Image sizes and track counts are the dataset's own; features the
    contract does not know are left alone."""
    contract = load_contract()
    sizes = {"J": features[STATE]["shape"][0]} if STATE in features else {}
    for key, entry in features.items():
        expected = contract.get(key)
        if expected is None:
            continue
        checked = all(isinstance(d, int) or d in sizes for d in expected.shape)
        shape = expected.resolved_shape(sizes) if checked else list(entry.get("shape", []))
        if entry.get("dtype") != expected.dtype or list(entry.get("shape", [])) != shape:
            raise ValueError(f"{root}: feature '{key}' is {entry.get('dtype')} {entry.get('shape')} in "
                             f"meta/info.json, the feature contract says {expected.dtype} {shape}")


class LeRobotV3Dataset(Dataset):
    """Frames of a v3.0 dataset with observation history and action chunks (see module doc)."""

    def __init__(self, root: Path, n_obs_steps: int = 2, horizon: int = 16, decode_video: bool = False,
                 decode_depth: bool = False) -> None:
        self.root = Path(root)
        self.info = json.loads((self.root / "meta" / "info.json").read_text())
        if self.info.get("codebase_version") != "v3.0":
            raise ValueError(f"{self.root}: codebase_version {self.info.get('codebase_version')!r}, expected 'v3.0'")
        self.n_obs_steps, self.horizon = n_obs_steps, horizon
        self.decode_video, self.decode_depth = decode_video, decode_depth
        check_against_contract(self.root, self.info.get("features", {}))
        self.has_tracks = TRACKS in self.info.get("features", {})
        self.has_points = POINTS in self.info.get("features", {})
        self.vector_keys = (STATE, ACTION, OBJECT) + ((GOAL,) if GOAL in self.info.get("features", {}) else ())
        columns = [*self.vector_keys, "episode_index", "frame_index", "index"] + ([DEPTH] if decode_depth else [])
        columns += [TRACKS, TRACKS_MASK] if self.has_tracks else []
        columns += [POINTS, POINTS_MASK] if self.has_points else []
        files = sorted((self.root / "data").glob("chunk-*/file-*.parquet"))
        if not files:
            raise FileNotFoundError(f"{self.root}: no data/chunk-*/file-*.parquet")
        table = pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
        self._arrays = {k: np.stack(table.column(k).to_numpy(zero_copy_only=False)).astype(np.float32)
                        for k in self.vector_keys}
        self._depth = table.column(DEPTH).to_pylist() if decode_depth else None
        if self.has_tracks:
            self._arrays[TRACKS] = column_array(table.column(TRACKS), 3).astype(np.float32)
            self._arrays[TRACKS_MASK] = column_array(table.column(TRACKS_MASK), 2).astype(bool)
        if self.has_points:
            self._arrays[POINTS] = column_array(table.column(POINTS), 2).astype(np.float32)
            self._arrays[POINTS_MASK] = column_array(table.column(POINTS_MASK), 1).astype(bool)
        order = np.argsort(table.column("index").to_numpy())
        if not np.array_equal(order, np.arange(order.size)):
            raise ValueError(f"{self.root}: frames are not stored in index order")
        episode_files = sorted((self.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        episodes = pa.concat_tables([pq.read_table(f) for f in episode_files])
        self.episodes = episodes.select([c for c in episodes.column_names if not c.startswith("stats/")]).to_pylist()
        self._bounds = np.zeros((order.size, 2), np.int64)
        for ep in self.episodes:
            self._bounds[ep["dataset_from_index"]:ep["dataset_to_index"]] = (ep["dataset_from_index"],
                                                                             ep["dataset_to_index"])
        self.stats = load_stats(self.root)
        self._frames: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self._bounds.shape[0])

    def column(self, key: str) -> np.ndarray:
        """Every frame's ``key`` (a low-dim feature, the action, tracks or points), (N, ...) in index order."""
        return self._arrays[key]

    @property
    def episode_bounds(self) -> np.ndarray:
        """(N, 2) int64: the [first, end) frame indices of each frame's episode."""
        return self._bounds

    def normalizer(self, key: str, mode: str = "min_max") -> Normalizer:
        """A Normalizer from meta/stats.json for ``key``."""
        return Normalizer(self.stats[key], mode)

    def __getitem__(self, i: int) -> dict[str, Any]:
        start, end = (int(b) for b in self._bounds[i])
        obs = np.clip(np.arange(i - self.n_obs_steps + 1, i + 1), start, end - 1)
        act = np.arange(i, i + self.horizon)
        item: dict[str, Any] = {
            STATE: torch.from_numpy(self._arrays[STATE][obs]),
            OBJECT: torch.from_numpy(self._arrays[OBJECT][obs]),
            **({GOAL: torch.from_numpy(self._arrays[GOAL][obs])} if GOAL in self._arrays else {}),
            ACTION: torch.from_numpy(self._arrays[ACTION][np.minimum(act, end - 1)]),
            "action_is_pad": torch.from_numpy(act >= end),
            "index": torch.tensor(i),
        }
        if self.has_tracks:
            item[TRACKS] = torch.from_numpy(self._arrays[TRACKS][obs])
            item[TRACKS_MASK] = torch.from_numpy(self._arrays[TRACKS_MASK][obs])
        if self.has_points:  # the latest frame's cloud
            item[POINTS] = torch.from_numpy(self._arrays[POINTS][i])
            item[POINTS_MASK] = torch.from_numpy(self._arrays[POINTS_MASK][i])
        if self.decode_video:
            item[COLOR] = torch.from_numpy(self._video()[obs]).permute(0, 3, 1, 2).float() / 255.0
        if self._depth is not None:
            depth = np.stack([decode_depth_png(self._depth[k]["bytes"]) for k in obs]).astype(np.float32)
            item[DEPTH] = torch.from_numpy(depth)[:, None]
        return item

    def _video(self) -> np.ndarray:
        """All colour frames (N, H, W, 3) uint8, decoded once (single-file datasets)."""
        if self._frames is None:
            self._frames = np.stack(list(self._decoded_frames()))
        return self._frames

    def square_video(self, key: str, size: int, region: tuple[float, ...] | None = None) -> np.ndarray:
        """All frames of the camera ``key`` resized for an image encoder: (N, 3, size, size) uint8, the
        ``region`` of frame i at row i (``square_frames``; None: the whole frame; decoded one by one, so the
        full-size video is never held in memory)."""
        from armpilot.policies.vision_encoders import FULL_FRAME, square_frames

        return np.stack([square_frames(frame, size, region or FULL_FRAME) for frame in self._decoded_frames(key)])

    def _decoded_frames(self, key: str = COLOR):
        """(H, W, 3) uint8 frames of the video of ``key`` in order; a ValueError when their count differs."""
        import av

        path = self.root / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0)
        count = 0
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                count += 1
                yield frame.to_ndarray(format="rgb24")
        if count != len(self):
            raise ValueError(f"{path}: {count} video frames for {len(self)} dataset frames")
