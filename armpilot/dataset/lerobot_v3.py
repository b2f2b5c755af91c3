"""Write a LeRobotDataset v3.0 folder (Parquet + MP4 + meta JSON) without lerobot.

Layout (codebase_version "v3.0")::

    meta/info.json  meta/stats.json  meta/tasks.parquet
    meta/episodes/chunk-000/file-000.parquet      one row per episode
    data/chunk-000/file-000.parquet               one row per frame, episodes appended
    videos/observation.images.color/chunk-000/file-000.mp4   episodes concatenated

Depth is NOT a video: ``observation.images.depth`` is an ``image`` feature in
the frames Parquet (struct ``{bytes, path}``) holding a lossless 16-bit PNG
of millimetres (see ``depth_png``), marked ``image.is_depth_map`` in info.json.

Optional motion tracks (``with_tracks``): ``observation.tracks`` (K, T, 3)
and ``observation.tracks_mask`` (K, T) as nested fixed-size lists; an episode
without tracks gets all-False masks (see ``tracks_feature``).

The dataset is built in a hidden staging folder next to the target and moved
into place by ``finalize()``; an existing dataset is replaced only with
``overwrite=True``. One data/video file per dataset (no size rotation yet).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from armpilot.features import ACTION, COLOR, DEPTH, GOAL, OBJECT, STATE, feature

from .depth_png import encode_depth_png
from .points_feature import NUM_POINTS, points_columns, points_features
from .stats import RunningStats
from .tracks_feature import (
    NUM_STEPS,
    NUM_TRACKS,
    TRACKS,
    tracks_columns,
    tracks_features,
)

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
SUCCESS = "next.success"
OBJECT_NAMES = ["x", "y", "z", "qx", "qy", "qz", "qw"]
GOAL_NAMES = ["x", "y", "z"]
VECTOR_KEYS = (STATE, ACTION, OBJECT, GOAL)
SCALAR_KEYS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


class DatasetWriteError(OSError):
    """The output folder cannot be written or already holds a dataset."""


@dataclass
class EpisodeFrames:
    """One episode on the dataset clock (T frames).

    Attributes:
        task: task string. timestamp: (T,) float32 s from the episode start.
        state: (T, J) joint positions. action: (T, J) commanded positions.
        object: (T, 7) xyz + quaternion xyzw. success: (T,) bool.
        goal: (T, 3) the task goal in base_link, m (zeros when the recording has none).
        color: (T, H, W, 3) uint8 RGB. depth: (T, H, W) uint16 mm.
        tracks: (T, K, S, 3) float32 base_link xyz, 0 where missing, and
        tracks_mask: (T, K, S) bool, or None (no tracks in this episode).
        points: (T, P, 3) float32 base_link xyz, 0 where missing, and
        points_mask: (T, P) bool, or None (no cloud in this episode).
    """

    task: str
    timestamp: np.ndarray
    state: np.ndarray
    action: np.ndarray
    object: np.ndarray
    success: np.ndarray
    color: np.ndarray
    depth: np.ndarray
    tracks: np.ndarray | None = None
    tracks_mask: np.ndarray | None = None
    points: np.ndarray | None = None
    points_mask: np.ndarray | None = None
    goal: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.goal is None:
            self.goal = np.zeros((len(self.timestamp), 3), np.float32)

    def __len__(self) -> int:
        return int(self.timestamp.shape[0])


def pick_codec() -> str:
    """h264 (libx264) when PyAV has it, else mpeg4."""
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _vec(x: np.ndarray, dim: int) -> pa.Array:
    flat = pa.array(np.ascontiguousarray(x, np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, dim)


def _masked_columns(name: str, n: int, values: np.ndarray | None, mask: np.ndarray | None,
                    shape: tuple[int, ...], columns) -> dict[str, pa.Array]:
    """Columns of an optional xyz feature with a mask (tracks, points): (n, *shape) values, (n, *shape[:-1])
    mask; an episode without the topic (None) gets zeros and an all-False mask."""
    if values is None or mask is None:
        return columns(np.zeros((n, *shape), np.float32), np.zeros((n, *shape[:-1]), bool))
    if values.shape != (n, *shape) or mask.shape != values.shape[:-1]:
        raise ValueError(f"{name} {values.shape} / mask {mask.shape} do not match ({n}, {', '.join(map(str, shape))})")
    return columns(np.where(mask[..., None], values, 0), mask)


class LeRobotV3Writer:
    """Appends episodes to a new LeRobotDataset v3.0 folder; call ``finalize()``."""

    def __init__(self, root: Path, fps: int, joint_names: tuple[str, ...] | None = None,
                 overwrite: bool = False, robot_type: str = "armpilot_arm", codec: str | None = None) -> None:
        self.root, self.fps, self.overwrite, self.robot_type = Path(root), int(fps), overwrite, robot_type
        self.joint_names = joint_names
        self.with_tracks = False  # write observation.tracks(_mask); set before the first episode
        self.with_points = False  # write observation.points(_mask); likewise
        self.base_frame = "base_link"  # the frame of the points and tracks (the recording robot's base frame)
        if self.root.exists() and any(self.root.iterdir()):
            if not overwrite:
                raise DatasetWriteError(f"{self.root} already exists and is not empty; pass --overwrite to replace it")
            if not (self.root / "meta" / "info.json").is_file():
                raise DatasetWriteError(f"{self.root} is not a LeRobot dataset (no meta/info.json): --overwrite only "
                                        "replaces a dataset, never another folder")
        self.stage = self.root.parent / f".{self.root.name}.partial"
        try:
            self.root.parent.mkdir(parents=True, exist_ok=True)
            if self.stage.exists():
                shutil.rmtree(self.stage)
            (self.stage / "meta").mkdir(parents=True)
        except OSError as exc:
            raise DatasetWriteError(f"cannot write the dataset under {self.root.parent}: {exc}") from exc
        self.codec = codec or pick_codec()
        self.tasks: dict[str, int] = {}
        self.episodes: list[dict[str, Any]] = []
        self.stats = RunningStats()
        self.total_frames = 0
        self.size: tuple[int, int] | None = None
        self._data_writer: pq.ParquetWriter | None = None
        self._video: Any = None

    # ------------------------------------------------------------------ episodes
    def add_episode(self, ep: EpisodeFrames) -> int:
        """Appends one episode (frames, video, per-episode stats); returns its index."""
        n = len(ep)
        if n == 0:
            raise ValueError("an episode needs at least one frame")
        h, w = ep.color.shape[1:3]
        if self.size is None:
            if h % 2 or w % 2:
                raise ValueError(f"yuv420p video needs even image sizes, got {w}x{h}")
            self.size = (h, w)
            self.joint_dim = ep.state.shape[1]
        if (h, w) != self.size or ep.depth.shape[1:] != self.size:
            raise ValueError(f"image size {w}x{h} (depth {ep.depth.shape[1:]}) differs from the dataset's "
                             f"{self.size[1]}x{self.size[0]}")
        index = len(self.episodes)
        task_index = self.tasks.setdefault(ep.task, len(self.tasks))
        start = self.total_frames
        table = self._frames_table(ep, index, task_index, start)
        if self._data_writer is None:
            path = self.stage / DATA_PATH.format(chunk_index=0, file_index=0)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._data_writer = pq.ParquetWriter(path, table.schema)
        self._data_writer.write_table(table)
        from_ts = start / self.fps
        self._encode(ep.color, start)
        columns = self._numeric_columns(ep, index, task_index, start)
        episode_stats = RunningStats()
        episode_stats.update_all(columns, ep.color, ep.depth)
        if self.with_tracks and ep.tracks is not None and ep.tracks_mask is not None and ep.tracks_mask.any():
            episode_stats.update(TRACKS, ep.tracks[ep.tracks_mask], (0,), (3,))  # valid points only
        self.stats.merge(episode_stats)
        row: dict[str, Any] = {
            "episode_index": index, "tasks": [ep.task], "length": n,
            "data/chunk_index": 0, "data/file_index": 0,
            "dataset_from_index": start, "dataset_to_index": start + n,
            f"videos/{COLOR}/chunk_index": 0, f"videos/{COLOR}/file_index": 0,
            f"videos/{COLOR}/from_timestamp": from_ts, f"videos/{COLOR}/to_timestamp": from_ts + n / self.fps,
            "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
        }
        for key, stats in episode_stats.as_dict().items():
            for name, value in stats.items():
                row[f"stats/{key}/{name}"] = np.asarray(value, np.float64).reshape(-1).tolist()
        self.episodes.append(row)
        self.total_frames += n
        return index

    def _numeric_columns(self, ep: EpisodeFrames, index: int, task_index: int, start: int) -> dict[str, np.ndarray]:
        n = len(ep)
        return {STATE: ep.state, ACTION: ep.action, OBJECT: ep.object, GOAL: ep.goal,
                "timestamp": ep.timestamp.astype(np.float32), "frame_index": np.arange(n),
                "episode_index": np.full(n, index), "index": start + np.arange(n),
                "task_index": np.full(n, task_index), SUCCESS: ep.success.astype(np.float64)}

    def _frames_table(self, ep: EpisodeFrames, index: int, task_index: int, start: int) -> pa.Table:
        n, j = len(ep), ep.state.shape[1]
        depth = pa.StructArray.from_arrays(
            [pa.array([encode_depth_png(d) for d in ep.depth], pa.binary()), pa.array([None] * n, pa.string())],
            names=["bytes", "path"])
        return pa.table({
            STATE: _vec(ep.state, j), ACTION: _vec(ep.action, j), OBJECT: _vec(ep.object, 7), GOAL: _vec(ep.goal, 3),
            DEPTH: depth,
            SUCCESS: pa.array(np.asarray(ep.success, bool)),
            "timestamp": pa.array(ep.timestamp.astype(np.float32)),
            "frame_index": pa.array(np.arange(n, dtype=np.int64)),
            "episode_index": pa.array(np.full(n, index, np.int64)),
            "index": pa.array(start + np.arange(n, dtype=np.int64)),
            "task_index": pa.array(np.full(n, task_index, np.int64)),
            **(self._tracks_columns(ep) if self.with_tracks else {}),
            **(self._points_columns(ep) if self.with_points else {}),
        })

    def _points_columns(self, ep: EpisodeFrames) -> dict[str, pa.Array]:
        return _masked_columns("points", len(ep), ep.points, ep.points_mask, (NUM_POINTS, 3), points_columns)

    def _tracks_columns(self, ep: EpisodeFrames) -> dict[str, pa.Array]:
        return _masked_columns("tracks", len(ep), ep.tracks, ep.tracks_mask, (NUM_TRACKS, NUM_STEPS, 3),
                               tracks_columns)

    def _encode(self, color: np.ndarray, start: int) -> None:
        import av

        if self._video is None:
            path = self.stage / VIDEO_PATH.format(video_key=COLOR, chunk_index=0, file_index=0)
            path.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(str(path), "w")
            options = {"crf": "20", "preset": "veryfast", "g": "2"} if self.codec == "libx264" else {}
            stream = container.add_stream(self.codec, rate=self.fps, options=options)
            stream.height, stream.width = self.size
            stream.pix_fmt = "yuv420p"
            if self.codec == "mpeg4":
                stream.bit_rate = 8_000_000
            self._video = (container, stream)
        container, stream = self._video
        for k, img in enumerate(color):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = start + k
            for packet in stream.encode(frame):
                container.mux(packet)

    # ------------------------------------------------------------------ finish
    def abort(self) -> None:
        """Drops the staging folder."""
        self._close()
        shutil.rmtree(self.stage, ignore_errors=True)

    def _close(self) -> None:
        if self._data_writer is not None:
            self._data_writer.close()
            self._data_writer = None
        if self._video is not None:
            container, stream = self._video
            for packet in stream.encode():
                container.mux(packet)
            container.close()
            self._video = None

    def finalize(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Writes meta/, moves the dataset into place and returns info.json's content."""
        if not self.episodes:
            self.abort()
            raise ValueError("no episode to write: the dataset would be empty")
        self._close()
        info = self._info(extra or {})
        meta = self.stage / "meta"
        (meta / "info.json").write_text(json.dumps(info, indent=4))
        (meta / "stats.json").write_text(json.dumps(self.stats.as_json(), indent=4))
        self._write_tasks(meta / "tasks.parquet")
        path = self.stage / EPISODES_PATH.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.episodes), path)
        if self.root.exists():
            if not self.overwrite and any(self.root.iterdir()):
                raise DatasetWriteError(f"{self.root} appeared while converting; pass --overwrite")
            shutil.rmtree(self.root)
        self.stage.rename(self.root)
        return info

    def _write_tasks(self, path: Path) -> None:
        tasks = sorted(self.tasks, key=self.tasks.get)
        table = pa.table({"task_index": pa.array([self.tasks[t] for t in tasks], pa.int64()),
                          "task": pa.array(tasks, pa.string())})
        pandas_meta = {"index_columns": ["task"], "column_indexes": [], "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None}], "creator": {"library": "armpilot"}, "pandas_version": "2.2.0"}
        pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}), path)

    def _info(self, extra: dict[str, Any]) -> dict[str, Any]:
        h, w = self.size
        names = list(self.joint_names or [f"joint_{i}" for i in range(self.joint_dim)])
        j = len(names)
        scalar = {"shape": [1], "names": None}
        sizes = {"J": j, "H": h, "W": w}

        def contract(key: str, names: list[str], info: dict[str, Any] | None = None) -> dict[str, Any]:
            """The feature contract's dtype and shape for ``key``, its source topic in ``info``."""
            entry = feature(key)
            return {"dtype": entry.dtype, "shape": entry.resolved_shape(sizes), "names": names,
                    "info": {**(info or {}), "ros.topic": entry.topic, "ros.msg_type": entry.msg_type}}

        image_names = ["height", "width", "channels"]
        features = {
            STATE: contract(STATE, names),
            ACTION: contract(ACTION, names),
            OBJECT: contract(OBJECT, OBJECT_NAMES),
            GOAL: contract(GOAL, GOAL_NAMES),
            COLOR: contract(COLOR, image_names, {
                "video.height": h, "video.width": w, "video.codec": "h264" if self.codec == "libx264" else self.codec,
                "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": self.fps, "video.channels": 3,
                "has_audio": False}),
            DEPTH: contract(DEPTH, image_names, {"image.is_depth_map": True, "image.encoding": "png",
                                                 "image.bit_depth": 16, "image.unit": "mm",
                                                 "image.storage": "parquet"}),
            SUCCESS: {"dtype": "bool", **scalar},
            "timestamp": {"dtype": "float32", **scalar},
            **{k: {"dtype": "int64", **scalar} for k in SCALAR_KEYS[1:]},
            **(tracks_features(self.base_frame) if self.with_tracks else {}),
            **(points_features(self.base_frame) if self.with_points else {}),
        }
        return {
            "codebase_version": CODEBASE_VERSION, "robot_type": self.robot_type,
            "total_episodes": len(self.episodes), "total_frames": self.total_frames, "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
            "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB, "fps": self.fps,
            "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH, "video_path": VIDEO_PATH, "features": features, **extra,
        }
