"""Benchmark armpilot.ros_nodes.conversions against naive per-element code.

Each case times the buffer-based conversion and a naive baseline doing the same
work through Python lists, in the same process, and checks that both give the
same result. Times are medians over repeats (time.perf_counter), in ms per call.

    python bench/conversions.py            # table
    python bench/conversions.py --json     # one JSON object of figures
    python bench/conversions.py --check-fields   # with ROS_PYTHON_CHECK_FIELDS=1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any, Callable


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=15, help="repeats of fast cases")
    parser.add_argument("--naive-repeats", type=int, default=3, help="repeats of baselines")
    parser.add_argument("--check-fields", action="store_true",
                        help="enable rclpy message field checks (slows list assignment)")
    return parser.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None and ARGS.check_fields:
    os.environ["ROS_PYTHON_CHECK_FIELDS"] = "1"  # read when message modules import

import numpy as np  # noqa: E402
from builtin_interfaces.msg import Duration  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2, PointField  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from armpilot.ros_nodes.conversions import (  # noqa: E402
    image_from_msg, image_to_msg, joint_trajectory_to_msg, pointcloud_from_msg,
    pointcloud_to_msg, sec_to_stamp)

H, W = 480, 640
N_POINTS = 100_000
P, J = 16, 7


def median_ms(fn: Callable[[], Any], repeats: int, min_s: float = 0.002) -> float:
    """Median wall time of ``fn()`` in ms; short calls are looped to >= min_s."""
    fn()  # warm up
    number, start = 1, time.perf_counter()
    fn()
    once = time.perf_counter() - start
    if once < min_s:
        number = int(min_s / max(once, 1e-9)) + 1
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return 1e3 * statistics.median(samples)


# ------------------------------------------------------------------ naive baselines
def naive_image_to_msg(arr: np.ndarray, encoding: str, stamp: Any, frame_id: str) -> Image:
    """Per-element copy: a Python int per byte."""
    msg = Image()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.height, msg.width, msg.encoding, msg.is_bigendian = arr.shape[0], arr.shape[1], encoding, 0
    msg.step = arr.shape[1] * arr.itemsize * (arr.shape[2] if arr.ndim == 3 else 1)
    msg.data = [int(v) for v in arr.view(np.uint8).ravel()]
    return msg


def naive_image_from_msg(msg: Image, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Per-element copy: a Python list of the bytes."""
    return np.array(list(msg.data), dtype=np.uint8).view(dtype).reshape(shape)


def naive_pointcloud_to_msg(xyz: np.ndarray, stamp: Any, frame_id: str) -> PointCloud2:
    """Per-element copy of the packed float32 bytes."""
    msg = PointCloud2()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.height, msg.width, msg.point_step = 1, xyz.shape[0], 12
    msg.row_step, msg.is_bigendian, msg.is_dense = 12 * xyz.shape[0], False, True
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, n in enumerate("xyz")]
    msg.data = [int(v) for v in xyz.astype("<f4").view(np.uint8).ravel()]
    return msg


def naive_pointcloud_from_msg(msg: PointCloud2) -> np.ndarray:
    """Per-element copy of the bytes, then a structured view."""
    dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    return np.array(list(msg.data), dtype=np.uint8).view(dtype)


def naive_trajectory_to_msg(names: list[str], times: np.ndarray, q: np.ndarray,
                            qd: np.ndarray, stamp: Any) -> JointTrajectory:
    """Lists per point (``ndarray.tolist()``), as commonly written."""
    msg = JointTrajectory()
    msg.header.stamp = stamp
    msg.joint_names = list(names)
    for i in range(len(times)):
        sec = int(times[i] // 1)
        msg.points.append(JointTrajectoryPoint(
            positions=list(q[i]), velocities=list(qd[i]),
            time_from_start=Duration(sec=sec, nanosec=int(round((times[i] - sec) * 1e9)))))
    return msg


# ------------------------------------------------------------------ cases
def run(repeats: int, naive_repeats: int) -> dict[str, float]:
    """Runs every case; returns {figure name: value}."""
    rng = np.random.default_rng(0)
    stamp = sec_to_stamp(1234.5)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = rng.integers(0, 10_000, (H, W), dtype=np.uint16)
    xyz = rng.random((N_POINTS, 3), dtype=np.float32)
    names = [f"joint_{i}" for i in range(J)]
    times = np.arange(1, P + 1) * 0.05
    q, qd = rng.standard_normal((P, J)), rng.standard_normal((P, J))
    out: dict[str, float] = {}

    def pair(name: str, fast: Callable[[], Any], naive: Callable[[], Any],
             check: Callable[[Any, Any], bool]) -> None:
        assert check(fast(), naive()), f"{name}: fast and naive results differ"
        out[f"{name}_ms"] = median_ms(fast, repeats)
        out[f"{name}_naive_ms"] = median_ms(naive, naive_repeats)
        out[f"{name}_speedup"] = out[f"{name}_naive_ms"] / out[f"{name}_ms"]

    same_data = lambda a, b: bytes(a.data) == bytes(b.data)  # noqa: E731
    for enc, img, dtype in (("rgb8", rgb, np.uint8), ("16UC1", depth, np.dtype("<u2"))):
        msg = image_to_msg(img, enc, stamp, "cam")
        pair(f"image_{enc}_to_msg", lambda: image_to_msg(img, enc, stamp, "cam"),
             lambda: naive_image_to_msg(img, enc, stamp, "cam"), same_data)
        pair(f"image_{enc}_from_msg", lambda: image_from_msg(msg),
             lambda: naive_image_from_msg(msg, dtype, img.shape), np.array_equal)
    cloud = pointcloud_to_msg(xyz, stamp, "world")
    pair("pointcloud_100k_to_msg", lambda: pointcloud_to_msg(xyz, stamp, "world"),
         lambda: naive_pointcloud_to_msg(xyz, stamp, "world"), same_data)
    pair("pointcloud_100k_from_msg", lambda: pointcloud_from_msg(cloud),
         lambda: naive_pointcloud_from_msg(cloud), np.array_equal)
    pair("trajectory_16x7_to_msg",
         lambda: joint_trajectory_to_msg(names, times, q, qd, stamp),
         lambda: naive_trajectory_to_msg(names, times, q, qd, stamp), lambda a, b: a == b)

    rgb_msg = image_to_msg(rgb, "rgb8", stamp, "cam")
    blob = serialize_message(rgb_msg)
    out["serialize_image_rgb8_ms"] = median_ms(lambda: serialize_message(rgb_msg), repeats)
    out["deserialize_image_rgb8_ms"] = median_ms(lambda: deserialize_message(blob, Image),
                                                 repeats)
    out["serialize_image_rgb8_MBps"] = len(blob) / 1e3 / out["serialize_image_rgb8_ms"]
    out["check_fields"] = float(os.environ.get("ROS_PYTHON_CHECK_FIELDS", "") == "1")
    return out


def print_table(fig: dict[str, float]) -> None:
    """Prints the figures as a table."""
    print(f"{'case':28s} {'fast ms':>10s} {'naive ms':>10s} {'speedup':>9s}")
    for key in fig:
        if key.endswith("_speedup"):
            case = key[: -len("_speedup")]
            print(f"{case:28s} {fig[case + '_ms']:10.3f} {fig[case + '_naive_ms']:10.3f} "
                  f"{fig[key]:8.1f}x")
    print(f"serialize_message(rgb8 640x480): {fig['serialize_image_rgb8_ms']:.3f} ms "
          f"({fig['serialize_image_rgb8_MBps']:.0f} MB/s); deserialize_message: "
          f"{fig['deserialize_image_rgb8_ms']:.3f} ms; "
          f"ROS_PYTHON_CHECK_FIELDS={'1' if fig['check_fields'] else 'unset'}")


def main() -> int:
    args = ARGS if ARGS is not None else _parse()
    figures = run(args.repeats, args.naive_repeats)
    if args.json:
        print(json.dumps({k: round(v, 4) for k, v in figures.items()}))
    else:
        print_table(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
