"""The optional point-cloud feature of the dataset (``/perception/points``), for 3D Diffusion Policy-style inputs.

Two dataset features, written only when some episode bag has the topic::

    observation.points       (P, 3) float32  x y z in the base frame (m), 0 where the mask is False
    observation.points_mask  (P,)   bool     True for a real point

with P = ``NUM_POINTS`` (512). Per message, ``select_points`` keeps the finite
points and, when there are more than P, P of them drawn without replacement by
a generator seeded with 0 (so the same cloud always gives the same points, in
the converter and in the policy node alike); fewer than P leave False slots.
On the dataset clock the cloud follows sample-and-hold (``hold_on_ticks``);
ticks before an episode's first cloud get an all-False mask.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from armpilot.ros_nodes import topics

from .tracks_feature import bag_has_topic, cloud_table, hold_on_ticks, nested_column

POINTS_TOPIC = topics.PERCEPTION_POINTS
POINTS, POINTS_MASK = "observation.points", "observation.points_mask"
NUM_POINTS = 512
#: Larger clouds are refused before decoding (a filtered cloud of the workspace holds far fewer).
MAX_CLOUD_POINTS = 1_000_000


def select_points(table: np.ndarray, count: int = NUM_POINTS) -> np.ndarray:
    """A cloud table with x, y, z fields -> (count, 3) float32 xyz, NaN rows where it has fewer points."""
    missing = [n for n in "xyz" if n not in (table.dtype.names or ())]
    if missing:
        raise ValueError(f"point cloud lacks field(s) {missing}; has {list(table.dtype.names or ())}")
    xyz = np.stack([table[n].astype(np.float32) for n in "xyz"], axis=-1).reshape(-1, 3)
    xyz = xyz[np.isfinite(xyz).all(-1)]
    if len(xyz) > count:
        xyz = xyz[np.sort(np.random.default_rng(0).choice(len(xyz), count, replace=False))]
    out = np.full((count, 3), np.nan, np.float32)
    out[: len(xyz)] = xyz
    return out


def decode_points_msg(msg: Any) -> np.ndarray:
    """``_DECODERS`` entry: a ``/perception/points`` message -> (P, 3) xyz, NaN rows where missing.

    Raises:
        ValueError: a cloud of more than ``MAX_CLOUD_POINTS`` points, or a malformed one (named).
    """
    count = int(msg.width) * int(msg.height)
    if count > MAX_CLOUD_POINTS:
        raise ValueError(f"a cloud of {count} points (more than {MAX_CLOUD_POINTS}) is refused")
    return select_points(cloud_table(msg))


def valid_points(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, 3) xyz with NaN rows -> (xyz with 0 there, (P,) bool mask), as the dataset stores them."""
    mask = np.isfinite(points).all(-1)
    return np.where(mask[:, None], points, np.float32(0.0)).astype(np.float32), mask


def bag_has_points(folder) -> bool:
    """Whether a bag's metadata lists ``/perception/points`` messages."""
    return bag_has_topic(folder, POINTS_TOPIC)


def points_on_ticks(data: Any | None, ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Sample-and-hold of a points TopicData (or None) on ticks (n,): (n, P, 3), (n, P) mask, staleness s."""
    return hold_on_ticks(POINTS_TOPIC, data, ticks, (NUM_POINTS, 3))


def points_columns(points: np.ndarray, mask: np.ndarray) -> dict[str, pa.Array]:
    """Parquet columns: P of 3 float32; P bool."""
    return {POINTS: nested_column(np.asarray(points, np.float32)), POINTS_MASK: nested_column(np.asarray(mask, bool))}


def points_features(frame_id: str = "base_link") -> dict[str, dict[str, Any]]:
    """info.json feature entries; ``frame_id``: the recording robot's base frame."""
    info = {"points.num_points": NUM_POINTS, "points.frame_id": frame_id, "points.unit": "m",
            "points.selection": "finite points, P drawn without replacement (seed 0) when more",
            "ros.topic": POINTS_TOPIC, "ros.msg_type": "sensor_msgs/msg/PointCloud2"}
    return {POINTS: {"dtype": "float32", "shape": [NUM_POINTS, 3], "names": ["points", "xyz"], "info": info},
            POINTS_MASK: {"dtype": "bool", "shape": [NUM_POINTS], "names": ["points"]}}
