"""numpy <-> ROS 2 message conversions without per-element Python copies.

rclpy keeps ``uint8[]``/``float64[]`` fields as ``array.array``; its setters take
an ``array.array`` of the right typecode as is but convert lists/ndarrays element
by element. Writers therefore build ``array.array(code, ndarray.tobytes())`` and
readers use ``np.frombuffer``/``np.ndarray(buffer=...)`` (no copy). Arrays
documented as views share memory with the message: writing to them changes the
message. No rclpy import here, only message packages.
"""

from __future__ import annotations

import array
import math
from typing import Optional

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from .conversion_core import (ConversionError, StampLike, sec_to_stamp, set_header,
                              stamp_to_sec)
from .joint_conversions import (TrajectoryArrays, joint_state_from_msg, joint_state_to_msg, positions_by_name,
                                joint_trajectory_from_msg, joint_trajectory_to_msg, positions_merged)

__all__ = [
    "ConversionError", "StampLike", "stamp_to_sec", "sec_to_stamp", "SUPPORTED_ENCODINGS",
    "image_to_msg", "image_from_msg", "camera_info_msg", "intrinsics_from_msg",
    "pointcloud_to_msg", "pointcloud_from_msg", "cloud_dtype", "xyz_from_cloud",
    "joint_state_to_msg", "joint_state_from_msg", "positions_by_name", "positions_merged", "TrajectoryArrays",
    "joint_trajectory_to_msg", "joint_trajectory_from_msg",
]

_ENCODINGS: dict[str, tuple[np.dtype, int]] = {  # -> (little-endian dtype, channels)
    "rgb8": (np.dtype("u1"), 3),
    "bgr8": (np.dtype("u1"), 3),
    "mono8": (np.dtype("u1"), 1),
    "16UC1": (np.dtype("<u2"), 1),  # depth, millimetres (realsense2_camera)
    "32FC1": (np.dtype("<f4"), 1),  # depth, metres
}
SUPPORTED_ENCODINGS = frozenset(_ENCODINGS)
_FIELD_DTYPES: dict[int, np.dtype] = {  # PointField datatype -> little-endian dtype
    PointField.INT8: np.dtype("i1"), PointField.UINT8: np.dtype("u1"),
    PointField.INT16: np.dtype("<i2"), PointField.UINT16: np.dtype("<u2"),
    PointField.INT32: np.dtype("<i4"), PointField.UINT32: np.dtype("<u4"),
    PointField.FLOAT32: np.dtype("<f4"), PointField.FLOAT64: np.dtype("<f8"),
}
_DTYPE_FIELDS = {(dt.kind, dt.itemsize): code for code, dt in _FIELD_DTYPES.items()}
#: Largest camera image accepted from a CameraInfo, pixels (consumers precompute per-pixel arrays from it).
MAX_CAMERA_PIXELS = 4096 * 4096


def _encoding(encoding: str) -> tuple[np.dtype, int]:
    """Looks up (dtype, channels) for an image encoding or raises."""
    if encoding not in _ENCODINGS:
        raise ConversionError(f"unsupported image encoding {encoding!r}; "
                              f"supported: {sorted(_ENCODINGS)}")
    return _ENCODINGS[encoding]


# ------------------------------------------------------------------ images
def image_to_msg(image: np.ndarray, encoding: str, stamp: StampLike = None,
                 frame_id: str = "") -> Image:
    """Packs an image into a ``sensor_msgs/Image`` with unpadded rows.

    Args:
        image: (H, W, 3) uint8 for rgb8/bgr8; (H, W) (or (H, W, 1)) uint8 for
            mono8, uint16 millimetres for 16UC1, float32 metres for 32FC1.
        encoding: One of ``SUPPORTED_ENCODINGS``.
        stamp: Header stamp. frame_id: Header frame id.

    Raises:
        ConversionError: Unsupported encoding, wrong shape or dtype.
    """
    dtype, channels = _encoding(encoding)
    arr = np.asarray(image)
    if channels == 1 and arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim != (3 if channels == 3 else 2) or (channels == 3 and arr.shape[2] != 3):
        want = "(H, W, 3)" if channels == 3 else "(H, W)"
        raise ConversionError(f"{encoding} image must have shape {want}, got {arr.shape}")
    if (arr.dtype.kind, arr.dtype.itemsize) != (dtype.kind, dtype.itemsize):
        raise ConversionError(f"{encoding} image must have dtype {dtype.name}, got {arr.dtype}")
    msg = Image()
    set_header(msg, stamp, frame_id)
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * channels * dtype.itemsize
    msg.data = array.array("B", arr.astype(dtype, order="C", copy=False).tobytes())
    return msg


def image_from_msg(msg: Image) -> np.ndarray:
    """Views a ``sensor_msgs/Image`` as an array: no copy, row padding skipped.

    Returns:
        (H, W, 3) uint8 for rgb8/bgr8, (H, W) for mono8/16UC1/32FC1, in the
        message's byte order; a view of ``msg.data``.

    Raises:
        ConversionError: Unsupported encoding, step shorter than a row, or
            ``len(data) != height * step``.
    """
    dtype, channels = _encoding(msg.encoding)
    if msg.is_bigendian:
        dtype = dtype.newbyteorder(">")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    pixel = channels * dtype.itemsize
    if step < width * pixel:
        raise ConversionError(f"{msg.encoding} image step {step} B is shorter than a "
                              f"row of {width} px ({width * pixel} B)")
    if len(msg.data) != height * step:
        raise ConversionError(f"{msg.encoding} image data has {len(msg.data)} B, expected "
                              f"height*step = {height}*{step} = {height * step} B")
    if channels == 1:
        return np.ndarray((height, width), dtype, msg.data, strides=(step, pixel))
    return np.ndarray((height, width, channels), dtype, msg.data,
                      strides=(step, pixel, dtype.itemsize))


def camera_info_msg(width: int, height: int, fx: float, fy: float, cx: float,
                    cy: float, stamp: StampLike = None, frame_id: str = "") -> CameraInfo:
    """Builds a pinhole ``CameraInfo``: plumb_bob, zero distortion, R = I.

    Args:
        width, height: Image size, pixels. fx, fy, cx, cy: Intrinsics, pixels.
        stamp, frame_id: Header fields (frame_id: the optical frame).
    """
    fx, fy, cx, cy = float(fx), float(fy), float(cx), float(cy)
    msg = CameraInfo()
    set_header(msg, stamp, frame_id)
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = array.array("d", bytes(5 * 8))
    msg.k = np.array([fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0])
    msg.r = np.eye(3).ravel()
    msg.p = np.array([fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
    return msg


def intrinsics_from_msg(msg: CameraInfo) -> tuple[float, float, float, float, int, int]:
    """Reads (fx, fy, cx, cy, width, height), pixels, from a ``CameraInfo``'s K.

    Raises ConversionError when K is missing/zero (fx, fy not positive finite),
    cx/cy are not finite, or the image size is zero.
    """
    k = np.asarray(msg.k, dtype=np.float64).ravel()
    if k.size != 9:
        raise ConversionError(f"CameraInfo K has {k.size} values, expected 9")
    fx, fy, cx, cy = float(k[0]), float(k[4]), float(k[2]), float(k[5])
    if not (math.isfinite(fx) and math.isfinite(fy) and fx > 0.0 and fy > 0.0):
        raise ConversionError(f"CameraInfo has no valid focal lengths (fx={fx}, fy={fy});"
                              " is the camera calibrated?")
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise ConversionError(f"CameraInfo principal point ({cx}, {cy}) is not finite")
    if msg.width <= 0 or msg.height <= 0:
        raise ConversionError(f"CameraInfo image size is {msg.width}x{msg.height}")
    if msg.width * msg.height > MAX_CAMERA_PIXELS:
        raise ConversionError(f"CameraInfo image size {msg.width}x{msg.height} exceeds {MAX_CAMERA_PIXELS} pixels")
    return fx, fy, cx, cy, int(msg.width), int(msg.height)


# ------------------------------------------------------------------ point clouds
def pointcloud_to_msg(points: np.ndarray, stamp: StampLike = None, frame_id: str = "",
                      is_dense: Optional[bool] = None) -> PointCloud2:
    """Packs points into an unorganized ``PointCloud2`` (height 1).

    Args:
        points: Structured (N,) array (int8..uint32, float32, float64 fields;
            sub-array fields become ``count``; point_step = itemsize), or
            (N, 3) x, y, z in metres (stored as float32 fields x, y, z).
        stamp, frame_id: Header fields.
        is_dense: Defaults to True iff every float field is finite.

    Raises:
        ConversionError: Wrong shape or an unsupported field type.
    """
    pts = np.asarray(points)
    if pts.dtype.names is None:
        if pts.ndim != 2 or pts.shape[1] != 3 or pts.dtype.kind not in "fiu":
            raise ConversionError(f"unstructured points must be (N, 3) numbers, "
                                  f"got {pts.shape} {pts.dtype}")
        xyz = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
        pts = np.ascontiguousarray(pts, dtype="<f4").view(xyz).reshape(-1)
    if pts.ndim != 1:
        raise ConversionError(f"structured points must be 1-D, got shape {pts.shape}")
    le = pts.dtype.newbyteorder("<")
    fields = []
    for name in le.names:
        fdt, offset = le.fields[name][:2]
        code = _DTYPE_FIELDS.get((fdt.base.kind, fdt.base.itemsize))
        if code is None or fdt.base.names is not None:
            raise ConversionError(f"point field {name!r} has unsupported type {fdt}")
        count = int(np.prod(fdt.shape, dtype=np.int64))
        fields.append(PointField(name=name, offset=int(offset), datatype=code, count=count))
    pts = pts.astype(le, copy=False)
    if is_dense is None:
        is_dense = all(bool(np.isfinite(pts[n]).all()) for n in le.names
                       if le.fields[n][0].base.kind == "f")
    msg = PointCloud2()
    set_header(msg, stamp, frame_id)
    msg.height, msg.width = 1, int(pts.shape[0])
    msg.fields = fields
    msg.is_bigendian = False
    msg.point_step = int(le.itemsize)
    msg.row_step = msg.point_step * msg.width
    msg.data = array.array("B", np.ascontiguousarray(pts).tobytes())
    msg.is_dense = bool(is_dense)
    return msg


def cloud_dtype(msg: PointCloud2) -> np.dtype:
    """Builds a cloud's structured dtype from its fields (itemsize = point_step)."""
    names, formats, offsets = [], [], []
    for f in msg.fields:
        if f.datatype not in _FIELD_DTYPES:
            raise ConversionError(f"point field {f.name!r} has unknown datatype {f.datatype}")
        if f.name in names:
            raise ConversionError(f"duplicate point field {f.name!r}")
        base = _FIELD_DTYPES[f.datatype].newbyteorder(">" if msg.is_bigendian else "<")
        if f.count * base.itemsize > msg.point_step:  # checked before numpy builds a (count,) sub-array dtype
            raise ConversionError(f"point field {f.name!r} ({f.count} x {base.itemsize} B) exceeds point_step "
                                  f"{msg.point_step}")
        fmt = base if f.count <= 1 else np.dtype((base, (int(f.count),)))
        if f.offset + fmt.itemsize > msg.point_step:
            raise ConversionError(f"point field {f.name!r} (offset {f.offset}, "
                                  f"{fmt.itemsize} B) exceeds point_step {msg.point_step}")
        names.append(f.name)
        formats.append(fmt)
        offsets.append(int(f.offset))
    try:
        return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                         "itemsize": int(msg.point_step)})
    except (ValueError, TypeError) as error:  # numpy's own refusal of a layout
        raise ConversionError(f"point fields {names} do not form a record: {error}") from error


def pointcloud_from_msg(msg: PointCloud2) -> np.ndarray:
    """Reads a ``PointCloud2`` as a structured (height * width,) array.

    A view of ``msg.data`` unless rows are padded (row_step > width *
    point_step with height > 1), where one copy drops the padding.

    Raises:
        ConversionError: Unknown/duplicate field, a field past point_step, or
            ``len(data) != height * row_step``.
    """
    dtype = cloud_dtype(msg)
    height, width = int(msg.height), int(msg.width)
    row_step, point_step = int(msg.row_step), int(msg.point_step)
    if row_step < width * point_step:
        raise ConversionError(f"cloud row_step {row_step} B < width*point_step = "
                              f"{width}*{point_step} B")
    if len(msg.data) != height * row_step:
        raise ConversionError(f"cloud data has {len(msg.data)} B, expected height*row_step"
                              f" = {height}*{row_step} = {height * row_step} B")
    if height <= 1 or row_step == width * point_step:
        return np.frombuffer(msg.data, dtype=dtype, count=height * width)
    grid = np.ndarray((height, width), dtype, msg.data, strides=(row_step, point_step))
    return grid.reshape(-1)


def xyz_from_cloud(cloud: np.ndarray) -> np.ndarray:
    """Copies a structured cloud's x, y, z fields into an (N, 3) float32 array."""
    names = cloud.dtype.names or ()
    missing = [n for n in "xyz" if n not in names]
    if missing:
        raise ConversionError(f"cloud lacks field(s) {missing}; has {list(names)}")
    flat = cloud.reshape(-1)
    out = np.empty((flat.shape[0], 3), dtype=np.float32)
    for i, n in enumerate("xyz"):
        out[:, i] = flat[n]
    return out
