"""numpy <-> ROS 2 message conversions without per-element Python copies.

rclpy stores ``uint8[]``/``float64[]`` message fields as ``array.array``; the
generated setters accept an ``array.array`` of the right typecode as is, while a
list or ndarray is converted element by element. Outgoing buffers are therefore
built with ``array.array(typecode, ndarray.tobytes())`` and incoming ones are
read with ``np.frombuffer``/``np.ndarray(buffer=...)``, which do not copy.

Arrays returned by the ``*_from_msg`` readers that are documented as views share
memory with the message: writing to them changes the message, and the
message's ``array.array`` cannot be resized while such a view is alive.

This module does not import rclpy; only message packages.
"""

from __future__ import annotations

import array
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np
from builtin_interfaces.msg import Duration, Time
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2, PointField
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

__all__ = [
    "ConversionError", "SUPPORTED_ENCODINGS", "TrajectoryArrays",
    "image_to_msg", "image_from_msg", "camera_info_msg", "intrinsics_from_msg",
    "pointcloud_to_msg", "pointcloud_from_msg", "cloud_dtype", "xyz_from_cloud",
    "joint_state_to_msg", "joint_state_from_msg",
    "joint_trajectory_to_msg", "joint_trajectory_from_msg",
    "stamp_to_sec", "sec_to_stamp",
]

#: Anything accepted where a stamp is expected: a Time message, seconds
#: (float/int), an object with ``to_msg()`` (e.g. ``rclpy.time.Time``) or None (0).
StampLike = Union[Time, float, int, None, Any]

_NS_PER_S = 1_000_000_000
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1

# encoding -> (little-endian element dtype, channels)
_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype("u1"), 3),
    "bgr8": (np.dtype("u1"), 3),
    "mono8": (np.dtype("u1"), 1),
    "16UC1": (np.dtype("<u2"), 1),  # depth in millimetres (realsense2_camera)
    "32FC1": (np.dtype("<f4"), 1),  # depth in metres
}
SUPPORTED_ENCODINGS = frozenset(_ENCODINGS)

# PointField datatype constant <-> little-endian dtype
_FIELD_DTYPES: dict[int, np.dtype] = {
    PointField.INT8: np.dtype("i1"), PointField.UINT8: np.dtype("u1"),
    PointField.INT16: np.dtype("<i2"), PointField.UINT16: np.dtype("<u2"),
    PointField.INT32: np.dtype("<i4"), PointField.UINT32: np.dtype("<u4"),
    PointField.FLOAT32: np.dtype("<f4"), PointField.FLOAT64: np.dtype("<f8"),
}
_DTYPE_FIELDS: dict[tuple[str, int], int] = {
    (dt.kind, dt.itemsize): code for code, dt in _FIELD_DTYPES.items()
}


class ConversionError(ValueError):
    """A message or array cannot be converted (bad shape, size, encoding...)."""


# ---------------------------------------------------------------- stamps
def stamp_to_sec(stamp: Union[Time, Duration]) -> float:
    """Converts a ``Time`` (or ``Duration``) message to seconds (float)."""
    return stamp.sec + stamp.nanosec * 1e-9


def _split_sec(seconds: float) -> tuple[int, int]:
    """Splits seconds into (sec, nanosec) with nanosec in [0, 1e9), rounded."""
    seconds = float(seconds)
    if not math.isfinite(seconds):
        raise ConversionError(f"time {seconds!r} s is not finite")
    sec, nanosec = divmod(round(seconds * 1e9), _NS_PER_S)
    if not _INT32_MIN <= sec <= _INT32_MAX:
        raise ConversionError(f"time {seconds!r} s does not fit an int32 'sec' field")
    return int(sec), int(nanosec)


def sec_to_stamp(seconds: float) -> Time:
    """Converts seconds to a ``Time`` message, rounded to the nearest ns.

    Negative times keep ``nanosec`` in [0, 1e9): -0.25 s -> (sec=-1, nanosec=75e7).
    Raises ConversionError for non-finite values or ``sec`` outside int32.
    """
    sec, nanosec = _split_sec(seconds)
    return Time(sec=sec, nanosec=nanosec)


def _set_header(msg: Any, stamp: StampLike, frame_id: str) -> None:
    """Sets ``msg.header`` from a StampLike and a frame id."""
    if stamp is None:
        t = Time()
    elif isinstance(stamp, Time):
        t = Time(sec=stamp.sec, nanosec=stamp.nanosec)  # copy: no aliasing
    elif hasattr(stamp, "to_msg"):
        t = stamp.to_msg()
    else:
        t = sec_to_stamp(stamp)
    msg.header.stamp = t
    msg.header.frame_id = frame_id


def _f64(values: Any) -> array.array:
    """Flattens ``values`` into an ``array.array('d')`` in one C-level copy."""
    return array.array("d", np.ascontiguousarray(values, dtype=np.float64).tobytes())


# ---------------------------------------------------------------- images
def image_to_msg(image: np.ndarray, encoding: str, stamp: StampLike = None,
                 frame_id: str = "") -> Image:
    """Packs an image array into a ``sensor_msgs/Image`` (tightly packed rows).

    Args:
        image: (H, W, 3) uint8 for rgb8/bgr8, (H, W) uint8 for mono8, (H, W)
            uint16 millimetres for 16UC1, (H, W) float32 metres for 32FC1.
            Single-channel images may also be (H, W, 1).
        encoding: One of ``SUPPORTED_ENCODINGS``.
        stamp: Header stamp (see ``StampLike``).
        frame_id: Header frame id.

    Raises:
        ConversionError: Unsupported encoding, wrong shape or dtype.
    """
    if encoding not in _ENCODINGS:
        raise ConversionError(f"unsupported image encoding {encoding!r}; "
                              f"supported: {sorted(_ENCODINGS)}")
    dtype, channels = _ENCODINGS[encoding]
    arr = np.asarray(image)
    if channels == 1 and arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    want = "(H, W, 3)" if channels == 3 else "(H, W)"
    if arr.ndim != (3 if channels == 3 else 2) or (channels == 3 and arr.shape[2] != 3):
        raise ConversionError(f"{encoding} image must have shape {want}, got {arr.shape}")
    if (arr.dtype.kind, arr.dtype.itemsize) != (dtype.kind, dtype.itemsize):
        raise ConversionError(f"{encoding} image must have dtype {dtype.name}, got {arr.dtype}")
    height, width = arr.shape[:2]
    msg = Image()
    _set_header(msg, stamp, frame_id)
    msg.height, msg.width = int(height), int(width)
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(width * channels * dtype.itemsize)
    msg.data = array.array("B", arr.astype(dtype, order="C", copy=False).tobytes())
    return msg


def image_from_msg(msg: Image) -> np.ndarray:
    """Views a ``sensor_msgs/Image`` as an array (no copy, row padding skipped).

    Returns:
        (H, W, 3) uint8 for rgb8/bgr8, (H, W) for mono8/16UC1/32FC1 in the
        message's byte order; a view of ``msg.data``.

    Raises:
        ConversionError: Unsupported encoding, a step shorter than a row, or
            ``len(data) != height * step``.
    """
    enc = msg.encoding
    if enc not in _ENCODINGS:
        raise ConversionError(f"unsupported image encoding {enc!r}; "
                              f"supported: {sorted(_ENCODINGS)}")
    dtype, channels = _ENCODINGS[enc]
    if msg.is_bigendian:
        dtype = dtype.newbyteorder(">")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ConversionError(f"{enc} image step {step} B is shorter than a row of "
                              f"{width} px ({row_bytes} B)")
    size = len(msg.data)
    if size != height * step:
        raise ConversionError(f"{enc} image data has {size} B, expected height*step = "
                              f"{height}*{step} = {height * step} B")
    shape: tuple[int, ...] = (height, width, channels)
    strides: tuple[int, ...] = (step, channels * dtype.itemsize, dtype.itemsize)
    if channels == 1:
        shape, strides = shape[:2], strides[:2]
    return np.ndarray(shape, dtype=dtype, buffer=msg.data, strides=strides)


def camera_info_msg(width: int, height: int, fx: float, fy: float, cx: float,
                    cy: float, stamp: StampLike = None, frame_id: str = "") -> CameraInfo:
    """Builds a pinhole ``CameraInfo`` (plumb_bob, zero distortion, R = I).

    Args:
        width, height: Image size in pixels.
        fx, fy: Focal lengths in pixels.
        cx, cy: Principal point in pixels.
        stamp, frame_id: Header fields (frame_id: the optical frame).
    """
    msg = CameraInfo()
    _set_header(msg, stamp, frame_id)
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = array.array("d", bytes(5 * 8))
    fx, fy, cx, cy = float(fx), float(fy), float(cx), float(cy)
    msg.k = np.array([fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0])
    msg.r = np.eye(3).ravel()
    msg.p = np.array([fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
    return msg


def intrinsics_from_msg(msg: CameraInfo) -> tuple[float, float, float, float, int, int]:
    """Reads (fx, fy, cx, cy, width, height) from a ``CameraInfo``'s K matrix.

    Units: pixels. Raises ConversionError when K is missing, fx/fy are not
    positive finite numbers, cx/cy are not finite, or the size is zero.
    """
    k = np.asarray(msg.k, dtype=np.float64).ravel()
    if k.size != 9:
        raise ConversionError(f"CameraInfo K has {k.size} values, expected 9")
    fx, fy, cx, cy = (float(k[0]), float(k[4]), float(k[2]), float(k[5]))
    if not (math.isfinite(fx) and math.isfinite(fy) and fx > 0.0 and fy > 0.0):
        raise ConversionError(f"CameraInfo has no valid focal lengths (fx={fx}, fy={fy}); "
                              "is the camera calibrated?")
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise ConversionError(f"CameraInfo principal point is not finite ({cx}, {cy})")
    if msg.width <= 0 or msg.height <= 0:
        raise ConversionError(f"CameraInfo image size is {msg.width}x{msg.height}")
    return fx, fy, cx, cy, int(msg.width), int(msg.height)


# ---------------------------------------------------------------- point clouds
def pointcloud_to_msg(points: np.ndarray, stamp: StampLike = None, frame_id: str = "",
                      is_dense: Optional[bool] = None) -> PointCloud2:
    """Packs points into an unorganized ``PointCloud2`` (height = 1).

    Args:
        points: Structured (N,) array whose fields map to PointFields (int8..
            uint32, float32, float64; sub-array fields become ``count``), or an
            (N, 3) float array of x, y, z in metres (stored as float32).
        stamp, frame_id: Header fields.
        is_dense: Defaults to True iff every float field is finite.

    Raises:
        ConversionError: Wrong shape or an unsupported field type.
    """
    pts = np.asarray(points)
    if pts.dtype.names is None:
        if pts.ndim != 2 or pts.shape[1] != 3 or pts.dtype.kind not in "fiu":
            raise ConversionError(f"unstructured points must be (N, 3) numbers, got "
                                  f"{pts.shape} {pts.dtype}")
        xyz = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
        pts = np.ascontiguousarray(pts, dtype=np.float32).view(xyz).reshape(-1)
    if pts.ndim != 1:
        raise ConversionError(f"structured points must be 1-D, got shape {pts.shape}")
    fields = []
    le = pts.dtype.newbyteorder("<")
    for name in le.names:
        fdt, offset = le.fields[name][:2]
        base, count = fdt.base, int(np.prod(fdt.shape, dtype=np.int64))
        code = _DTYPE_FIELDS.get((base.kind, base.itemsize))
        if code is None or base.names is not None:
            raise ConversionError(f"field {name!r} has unsupported type {fdt}")
        fields.append(PointField(name=name, offset=int(offset), datatype=code, count=count))
    pts = pts.astype(le, copy=False)
    if is_dense is None:
        is_dense = all(bool(np.isfinite(pts[n]).all()) for n in le.names
                       if le.fields[n][0].base.kind == "f")
    msg = PointCloud2()
    _set_header(msg, stamp, frame_id)
    msg.height, msg.width = 1, int(pts.shape[0])
    msg.fields = fields
    msg.is_bigendian = False
    msg.point_step = int(le.itemsize)
    msg.row_step = int(le.itemsize * pts.shape[0])
    msg.data = array.array("B", np.ascontiguousarray(pts).tobytes())
    msg.is_dense = bool(is_dense)
    return msg


def cloud_dtype(msg: PointCloud2) -> np.dtype:
    """Builds the structured dtype (itemsize = point_step) for a cloud's fields."""
    names, formats, offsets = [], [], []
    order = ">" if msg.is_bigendian else "<"
    for f in msg.fields:
        base = _FIELD_DTYPES.get(f.datatype)
        if base is None:
            raise ConversionError(f"field {f.name!r} has unknown datatype {f.datatype}")
        if f.name in names:
            raise ConversionError(f"duplicate point field {f.name!r}")
        base = base.newbyteorder(order)
        fmt = base if f.count <= 1 else np.dtype((base, (int(f.count),)))
        if f.offset + fmt.itemsize > msg.point_step:
            raise ConversionError(f"field {f.name!r} (offset {f.offset}, {fmt.itemsize} B) "
                                  f"exceeds point_step {msg.point_step}")
        names.append(f.name)
        formats.append(fmt)
        offsets.append(int(f.offset))
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": int(msg.point_step)})


def pointcloud_from_msg(msg: PointCloud2) -> np.ndarray:
    """Reads a ``PointCloud2`` as a structured (height*width,) array.

    A view of ``msg.data`` when rows are unpadded (row_step = width *
    point_step, always true for height = 1 clouds from ``pointcloud_to_msg``);
    otherwise one copy that drops the row padding.

    Raises:
        ConversionError: Unknown field type, a field past point_step, or
            ``len(data) != height * row_step``.
    """
    dtype = cloud_dtype(msg)
    height, width = int(msg.height), int(msg.width)
    row_step, point_step = int(msg.row_step), int(msg.point_step)
    if row_step < width * point_step:
        raise ConversionError(f"row_step {row_step} B < width*point_step = "
                              f"{width}*{point_step} B")
    size = len(msg.data)
    if size != height * row_step:
        raise ConversionError(f"cloud data has {size} B, expected height*row_step = "
                              f"{height}*{row_step} = {height * row_step} B")
    if row_step == width * point_step or height <= 1:
        return np.frombuffer(msg.data, dtype=dtype, count=height * width)
    grid = np.ndarray((height, width), dtype=dtype, buffer=msg.data,
                      strides=(row_step, point_step))
    return grid.reshape(-1)


def xyz_from_cloud(cloud: np.ndarray) -> np.ndarray:
    """Returns the x, y, z fields of a structured cloud as an (N, 3) float32 copy."""
    names = cloud.dtype.names or ()
    missing = [n for n in ("x", "y", "z") if n not in names]
    if missing:
        raise ConversionError(f"cloud has no field(s) {missing}; fields: {list(names)}")
    out = np.empty((cloud.size, 3), dtype=np.float32)
    flat = cloud.reshape(-1)
    for i, n in enumerate(("x", "y", "z")):
        out[:, i] = flat[n]
    return out


# ---------------------------------------------------------------- joints
def joint_state_to_msg(names: Sequence[str], positions: Any, velocities: Any = None,
                       efforts: Any = None, stamp: StampLike = None) -> JointState:
    """Builds a ``JointState``.

    Args:
        names: J joint names.
        positions: (J,) rad or m. velocities: (J,) rad/s or m/s, or None.
        efforts: (J,) N*m or N, or None.
        stamp: Header stamp.

    Raises:
        ConversionError: An array's length differs from ``len(names)``.
    """
    msg = JointState()
    _set_header(msg, stamp, "")
    msg.name = [str(n) for n in names]
    count = len(msg.name)
    for field, values in (("position", positions), ("velocity", velocities),
                          ("effort", efforts)):
        if values is None:
            continue
        arr = _f64(values)
        if len(arr) != count:
            raise ConversionError(f"{field} has {len(arr)} values for {count} joint names")
        setattr(msg, field, arr)
    return msg


def joint_state_from_msg(msg: JointState) -> tuple[
        tuple[str, ...], np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """Reads (names, positions (J,), velocities (J,) | None, efforts (J,) | None).

    Arrays are float64 views of the message; an empty velocity/effort is None
    (an empty position gives a (0,) array). Raises ConversionError on a length
    that is neither 0 nor ``len(names)``.
    """
    names = tuple(msg.name)
    out: list[np.ndarray] = []
    for field in ("position", "velocity", "effort"):
        values = np.frombuffer(getattr(msg, field), dtype=np.float64)
        if values.size not in (0, len(names)):
            raise ConversionError(f"JointState {field} has {values.size} values for "
                                  f"{len(names)} joint names")
        out.append(values)
    vel = out[1] if out[1].size else None
    eff = out[2] if out[2].size else None
    return names, out[0], vel, eff


@dataclass(frozen=True, eq=False)
class TrajectoryArrays:
    """A ``JointTrajectory`` as arrays (read-only).

    Attributes:
        joint_names: J names.
        stamp_sec: Header stamp in seconds (0 means "start now").
        times: (P,) time_from_start in seconds.
        positions: (P, J) rad or m.
        velocities: (P, J) rad/s or m/s, or None when no point has velocities.
    """

    joint_names: tuple[str, ...]
    stamp_sec: float
    times: np.ndarray
    positions: np.ndarray
    velocities: Optional[np.ndarray]


def joint_trajectory_to_msg(joint_names: Sequence[str], times: Any, positions: Any,
                            velocities: Any = None, stamp: StampLike = None,
                            frame_id: str = "") -> JointTrajectory:
    """Builds a ``JointTrajectory`` from arrays.

    Args:
        joint_names: J names.
        times: (P,) time_from_start in seconds, finite and strictly increasing.
        positions: (P, J) rad or m. velocities: (P, J) or None.
        stamp, frame_id: Header fields.

    Raises:
        ConversionError: Shape mismatch, non-finite values or unordered times.
    """
    names = [str(n) for n in joint_names]
    t = np.asarray(times, dtype=np.float64)
    q = np.asarray(positions, dtype=np.float64)
    if t.ndim != 1 or q.shape != (t.shape[0], len(names)):
        raise ConversionError(f"expected times (P,) and positions (P, {len(names)}), "
                              f"got {t.shape} and {q.shape}")
    qd = None if velocities is None else np.asarray(velocities, dtype=np.float64)
    if qd is not None and qd.shape != q.shape:
        raise ConversionError(f"velocities shape {qd.shape} != positions shape {q.shape}")
    if not (np.isfinite(t).all() and np.isfinite(q).all()
            and (qd is None or np.isfinite(qd).all())):
        raise ConversionError("trajectory contains non-finite values")
    if t.size > 1 and not (np.diff(t) > 0).all():
        raise ConversionError("trajectory times must be strictly increasing")
    msg = JointTrajectory()
    _set_header(msg, stamp, frame_id)
    msg.joint_names = names
    q = np.ascontiguousarray(q)
    qd = None if qd is None else np.ascontiguousarray(qd)
    points = []
    for i in range(t.shape[0]):
        sec, nanosec = _split_sec(t[i])
        pt = JointTrajectoryPoint()
        pt.positions = array.array("d", q[i].tobytes())
        if qd is not None:
            pt.velocities = array.array("d", qd[i].tobytes())
        pt.time_from_start = Duration(sec=sec, nanosec=nanosec)
        points.append(pt)
    msg.points = points
    return msg


def joint_trajectory_from_msg(msg: JointTrajectory) -> TrajectoryArrays:
    """Reads a ``JointTrajectory`` into ``TrajectoryArrays`` (one copy).

    Raises:
        ConversionError: Naming the point index when a point's positions or
            velocities length differs from the joint names, or when only some
            points carry velocities.
    """
    names = tuple(msg.joint_names)
    count, n_pts = len(names), len(msg.points)
    times = np.empty(n_pts)
    q = np.empty((n_pts, count))
    qd = np.empty((n_pts, count))
    has_vel = None
    for i, pt in enumerate(msg.points):
        if len(pt.positions) != count:
            raise ConversionError(f"trajectory point {i} has {len(pt.positions)} "
                                  f"positions for {count} joint names")
        nv = len(pt.velocities)
        if nv not in (0, count):
            raise ConversionError(f"trajectory point {i} has {nv} velocities for "
                                  f"{count} joint names")
        if has_vel is None:
            has_vel = nv > 0
        elif has_vel != (nv > 0):
            raise ConversionError(f"trajectory point {i} {'lacks' if has_vel else 'has'} "
                                  "velocities unlike point 0")
        q[i] = np.frombuffer(pt.positions, dtype=np.float64)
        if nv:
            qd[i] = np.frombuffer(pt.velocities, dtype=np.float64)
        times[i] = stamp_to_sec(pt.time_from_start)
    vel = qd if has_vel else None
    for arr in (times, q, vel):
        if arr is not None:
            arr.flags.writeable = False
    return TrajectoryArrays(names, stamp_to_sec(msg.header.stamp), times, q, vel)
