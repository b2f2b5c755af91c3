"""The optional motion-tracks feature of the dataset (``/perception/tracks``).

Two dataset features, written only when some episode bag has the topic::

    observation.tracks       (K, T, 3) float32  x y z in base_link (m); time oldest first, newest last
    observation.tracks_mask  (K, T)    bool     True where the track has a point at that step

with K = ``NUM_TRACKS`` (32) and T = ``NUM_STEPS`` (8); ``observation.tracks``
is 0 wherever the mask is False (no observation, NaN xyz, or an unused slot).

Per message: the PointCloud2 is a table of ``perception.tracks.TRACK_DTYPE``
rows (track_id, step <= 0 with 0 the newest, u, v, x, y, z), decoded with
``np.frombuffer`` and a dtype built from the message's fields (``point_step``
as itemsize). Steps older than ``1 - T`` are dropped; the K tracks with the
most valid (finite xyz) steps are kept, ties broken by the lowest track_id,
in that rank order (slot 0 = most valid steps). Fewer than K tracks leave
all-False slots.

On the dataset clock the tracks follow the converter's sample-and-hold rule
(the latest message with ``stamp <= tick``); ticks before an episode's first
tracks message get an all-False mask (the topic is optional, so it never
drops ticks).

Episodes without the topic: the features are omitted from the whole dataset
only when NO episode bag has ``/perception/tracks`` (decided from the bags'
metadata before converting; a bag that has it but is then skipped as bad still
counts). Otherwise every frame of an episode without tracks has an all-False
mask and zero tracks.

Statistics (stats.json, per-episode stats): ``observation.tracks`` gets (3,)
min/max/mean/std/count over VALID points only (mask True), not over the zero
padding; count is the number of valid points. The mask has no statistics; a
dataset whose tracks have no valid point at all has no tracks statistics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from armpilot.ros_nodes import topics

from .resampler import NS_PER_S, Stream, clean_stream, hold_indices

TRACKS_TOPIC = topics.PERCEPTION_TRACKS
TRACKS, TRACKS_MASK = "observation.tracks", "observation.tracks_mask"
NUM_TRACKS, NUM_STEPS = 32, 8

_FIELD_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}  # PointField codes


def cloud_table(msg: Any) -> np.ndarray:
    """A (rosbags or rclpy) PointCloud2 as a structured (height * width,) array.

    Raises:
        ValueError: unknown datatype, a field past point_step, or a data size mismatch.
    """
    order = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in msg.fields:
        if int(f.datatype) not in _FIELD_DTYPES:
            raise ValueError(f"point field {f.name!r} has unknown datatype {f.datatype}")
        base = np.dtype(order + _FIELD_DTYPES[int(f.datatype)])
        fmt = base if int(f.count) <= 1 else np.dtype((base, (int(f.count),)))
        if int(f.offset) + fmt.itemsize > int(msg.point_step):
            raise ValueError(f"point field {f.name!r} exceeds point_step {msg.point_step}")
        names.append(f.name)
        formats.append(fmt)
        offsets.append(int(f.offset))
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(msg.point_step)})
    height, width, row_step = int(msg.height), int(msg.width), int(msg.row_step)
    data = np.asarray(msg.data, np.uint8).reshape(-1)
    row = width * dtype.itemsize
    if row_step < row or data.size != height * row_step:
        raise ValueError(f"cloud data has {data.size} B for {height} rows of {row_step} B ({width} points "
                         f"of {dtype.itemsize} B)")
    if height > 1 and row_step != row:
        data = np.ascontiguousarray(data.reshape(height, row_step)[:, :row]).reshape(-1)
    return np.frombuffer(data, dtype=dtype, count=height * width)


def select_tracks(table: np.ndarray, k: int = NUM_TRACKS, horizon: int = NUM_STEPS) -> np.ndarray:
    """A track table -> (k, horizon, 3) float32 xyz, NaN where missing (see module doc for the rule)."""
    out = np.full((k, horizon, 3), np.nan, np.float32)
    missing = [n for n in ("track_id", "step", "x", "y", "z") if n not in (table.dtype.names or ())]
    if missing:
        raise ValueError(f"tracks table lacks field(s) {missing}; has {list(table.dtype.names or ())}")
    steps = table["step"].astype(np.int64)
    table = table[(steps <= 0) & (steps > -horizon)]
    if not len(table):
        return out
    ids, track = np.unique(table["track_id"], return_inverse=True)
    xyz = np.stack([table[n].astype(np.float32) for n in "xyz"], axis=-1)
    valid = np.isfinite(xyz).all(-1)
    counts = np.bincount(track, weights=valid.astype(np.float64), minlength=len(ids))
    rank = np.lexsort((ids, -counts))[:k]  # most valid steps first, then lowest track_id
    slot = np.full(len(ids), -1)
    slot[rank] = np.arange(len(rank))
    rows = slot[track] >= 0
    t = table["step"].astype(np.int64)[rows] + horizon - 1
    out[slot[track][rows], t] = xyz[rows]
    return out


#: Most rows (track points) a ``/perception/tracks`` message may hold (the tracks node sends K x T, a few thousand).
MAX_TRACK_ROWS = 1_000_000


def decode_tracks_msg(msg: Any) -> np.ndarray:
    """``_DECODERS`` entry: a ``/perception/tracks`` message -> (K, T, 3) xyz, NaN where missing.

    Raises:
        ValueError: a table of more than ``MAX_TRACK_ROWS`` rows, or a malformed one (named).
    """
    rows = int(msg.width) * int(msg.height)
    if rows > MAX_TRACK_ROWS:
        raise ValueError(f"a tracks table of {rows} rows (more than {MAX_TRACK_ROWS}) is refused")
    return select_tracks(cloud_table(msg))


def bag_has_topic(folder: Path, topic: str) -> bool:
    """Whether a bag's metadata lists ``topic`` messages (False if it cannot be opened)."""
    from rosbags.highlevel import AnyReader

    try:
        with AnyReader([Path(folder)]) as reader:
            return any(c.topic == topic and c.msgcount > 0 for c in reader.connections)
    except Exception:  # noqa: BLE001 -- damaged bags are reported (and skipped) by the converter itself
        return False


def bag_has_tracks(folder: Path) -> bool:
    """Whether a bag's metadata lists ``/perception/tracks`` messages (False if it cannot be opened)."""
    return bag_has_topic(folder, TRACKS_TOPIC)


def hold_on_ticks(topic: str, data: Any | None, ticks: np.ndarray,
                  shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Sample-and-hold of a TopicData of (``shape``) xyz arrays, NaN where missing (or None), on ticks (n,).

    Returns:
        values (n, *shape) float32 (0 where missing), mask (n, *shape[:-1]) bool,
        worst staleness in s (None without the topic).
    """
    n = ticks.shape[0]
    if data is None:
        return np.zeros((n, *shape), np.float32), np.zeros((n, *shape[:-1]), bool), None
    stream = clean_stream(Stream(topic, data.stamps, data.values))
    idx = hold_indices(stream.stamps, ticks)
    xyz = stream.values[np.maximum(idx, 0)].astype(np.float32)
    held = idx >= 0
    mask = np.isfinite(xyz).all(-1) & held.reshape(-1, *([1] * (len(shape) - 1)))
    xyz = np.where(mask[..., None], xyz, np.float32(0.0))
    stale = float((ticks[held] - stream.stamps[idx[held]]).max()) / NS_PER_S if held.any() else 0.0
    return xyz, mask, stale


def tracks_on_ticks(data: Any | None, ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Sample-and-hold of a tracks TopicData (or None) on ticks (n,): tracks (n, K, T, 3) float32 (0 where
    missing), mask (n, K, T) bool, worst staleness in s (None without the topic)."""
    return hold_on_ticks(TRACKS_TOPIC, data, ticks, (NUM_TRACKS, NUM_STEPS, 3))


def nested_column(array: np.ndarray) -> pa.Array:
    """(rows, *inner) numpy -> nested fixed-size lists, one row per entry."""
    column = pa.array(np.ascontiguousarray(array).reshape(-1))
    for size in reversed(array.shape[1:]):
        column = pa.FixedSizeListArray.from_arrays(column, size)
    return column


def tracks_columns(tracks: np.ndarray, mask: np.ndarray) -> dict[str, pa.Array]:
    """Parquet columns: nested fixed-size lists (K of T of 3 float32; K of T bool)."""
    return {TRACKS: nested_column(np.asarray(tracks, np.float32)), TRACKS_MASK: nested_column(np.asarray(mask, bool))}


def column_array(column: pa.ChunkedArray, depth: int) -> np.ndarray:
    """A nested fixed-size-list column -> numpy (rows, *inner) array."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    shape = [len(arr)]
    for _ in range(depth):
        shape.append(arr.type.list_size)
        arr = arr.flatten()
    return arr.to_numpy(zero_copy_only=False).reshape(shape)


def tracks_features(frame_id: str = "base_link") -> dict[str, dict[str, Any]]:
    """info.json feature entries (K and T in shape and names/info); ``frame_id``: the robot's base frame."""
    info = {"tracks.num_tracks": NUM_TRACKS, "tracks.num_steps": NUM_STEPS, "tracks.frame_id": frame_id,
            "tracks.unit": "m", "tracks.step_order": "oldest first, newest last",
            "tracks.selection": "most valid steps, ties lowest track_id", "tracks.stats": "valid points only"}
    return {TRACKS: {"dtype": "float32", "shape": [NUM_TRACKS, NUM_STEPS, 3],
                     "names": ["tracks", "steps", "xyz"], "info": info},
            TRACKS_MASK: {"dtype": "bool", "shape": [NUM_TRACKS, NUM_STEPS], "names": ["tracks", "steps"]}}
