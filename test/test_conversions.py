"""Unit and property tests for armpilot.ros_nodes.conversions."""

from __future__ import annotations

import array
import dataclasses

import numpy as np
import pytest
from builtin_interfaces.msg import Duration, Time
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2, PointField
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from armpilot.ros_nodes.conversions import (
    SUPPORTED_ENCODINGS, ConversionError, TrajectoryArrays, camera_info_msg,
    image_from_msg, image_to_msg, intrinsics_from_msg, joint_state_from_msg,
    joint_state_to_msg, joint_trajectory_from_msg, joint_trajectory_to_msg,
    pointcloud_from_msg, positions_by_name, pointcloud_to_msg, sec_to_stamp, stamp_to_sec, xyz_from_cloud)

RNG = np.random.default_rng(0)
IMAGES = {
    "rgb8": RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8),
    "bgr8": RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8),
    "mono8": RNG.integers(0, 256, (6, 5), dtype=np.uint8),
    "16UC1": RNG.integers(0, 65536, (6, 5), dtype=np.uint16),
    "32FC1": RNG.random((6, 5), dtype=np.float32) * 4.0,
}


def _data_view(msg) -> np.ndarray:
    return np.frombuffer(msg.data, dtype=np.uint8)


# ------------------------------------------------------------------ stamps
def test_stamp_examples() -> None:
    assert sec_to_stamp(1.5) == Time(sec=1, nanosec=500_000_000)
    assert sec_to_stamp(-0.25) == Time(sec=-1, nanosec=750_000_000)
    assert sec_to_stamp(1.9999999999) == Time(sec=2, nanosec=0)
    assert sec_to_stamp(-1e-10) == Time(sec=0, nanosec=0)
    assert stamp_to_sec(Time(sec=-1, nanosec=750_000_000)) == pytest.approx(-0.25)
    assert stamp_to_sec(Duration(sec=3, nanosec=1)) == pytest.approx(3.000000001)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 2.0**31, -(2.0**31) - 1.0])
def test_stamp_rejects(bad: float) -> None:
    with pytest.raises(ConversionError):
        sec_to_stamp(bad)


@given(st.floats(min_value=-(2.0**31), max_value=2.0**31 - 1.0))
def test_sec_to_stamp_property(seconds: float) -> None:
    stamp = sec_to_stamp(seconds)
    assert 0 <= stamp.nanosec < 1_000_000_000
    assert abs(stamp_to_sec(stamp) - seconds) <= 0.5e-9 + 4e-16 * abs(seconds)


@given(st.integers(-(2**20), 2**20), st.integers(0, 999_999_999))
def test_stamp_round_trip_exact(sec: int, nanosec: int) -> None:
    assert sec_to_stamp(stamp_to_sec(Time(sec=sec, nanosec=nanosec))) == Time(sec=sec, nanosec=nanosec)


# ------------------------------------------------------------------ images
@pytest.mark.parametrize("encoding", sorted(IMAGES))
def test_image_round_trip(encoding: str) -> None:
    image = IMAGES[encoding]
    msg = image_to_msg(image, encoding, sec_to_stamp(12.25), "cam_optical")
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"
    assert (msg.height, msg.width, msg.encoding, msg.is_bigendian) == (6, 5, encoding, 0)
    assert msg.step == 5 * image.itemsize * (3 if image.ndim == 3 else 1)
    assert msg.header.frame_id == "cam_optical" and stamp_to_sec(msg.header.stamp) == 12.25
    out = image_from_msg(msg)
    assert out.shape == image.shape and out.dtype == image.dtype
    np.testing.assert_array_equal(out, image)
    assert np.shares_memory(out, _data_view(msg))
    assert not np.shares_memory(out, image)


def test_image_to_msg_non_contiguous_and_channel_axis() -> None:
    image = IMAGES["rgb8"][:, ::-1]
    np.testing.assert_array_equal(image_from_msg(image_to_msg(image, "rgb8")), image)
    depth = IMAGES["16UC1"][:, :, None]
    np.testing.assert_array_equal(image_from_msg(image_to_msg(depth, "16UC1")), depth[:, :, 0])


def test_image_from_msg_step_padding() -> None:
    depth = IMAGES["16UC1"]
    step = depth.shape[1] * 2 + 3  # odd padding: rows are not 2-byte aligned
    padded = np.zeros((depth.shape[0], step), dtype=np.uint8)
    padded[:, : depth.shape[1] * 2] = depth.view(np.uint8).reshape(depth.shape[0], -1)
    msg = Image(height=6, width=5, encoding="16UC1", is_bigendian=0, step=step)
    msg.data = array.array("B", padded.tobytes())
    out = image_from_msg(msg)
    np.testing.assert_array_equal(out, depth)
    assert np.shares_memory(out, _data_view(msg))


def test_image_from_msg_big_endian() -> None:
    depth = IMAGES["16UC1"]
    msg = Image(height=6, width=5, encoding="16UC1", is_bigendian=1, step=10)
    msg.data = array.array("B", depth.astype(">u2").tobytes())
    np.testing.assert_array_equal(image_from_msg(msg), depth)


def test_image_empty() -> None:
    out = image_from_msg(image_to_msg(np.zeros((0, 4, 3), np.uint8), "rgb8"))
    assert out.shape == (0, 4, 3)


def test_image_from_msg_errors() -> None:
    msg = image_to_msg(IMAGES["rgb8"], "rgb8")
    msg.encoding = "yuv422"
    with pytest.raises(ConversionError, match="unsupported image encoding 'yuv422'"):
        image_from_msg(msg)
    msg = image_to_msg(IMAGES["rgb8"], "rgb8")
    msg.data = msg.data[:-1]
    with pytest.raises(ConversionError, match="height\\*step"):
        image_from_msg(msg)
    msg = image_to_msg(IMAGES["rgb8"], "rgb8")
    msg.step = 14
    with pytest.raises(ConversionError, match="shorter than a row"):
        image_from_msg(msg)


@pytest.mark.parametrize(("image", "encoding", "match"), [
    (IMAGES["rgb8"], "rgba8", "unsupported"),
    (IMAGES["mono8"], "rgb8", "shape"),
    (IMAGES["rgb8"], "mono8", "shape"),
    (IMAGES["32FC1"], "16UC1", "dtype"),
    (IMAGES["16UC1"].astype(np.int16), "16UC1", "dtype"),
])
def test_image_to_msg_errors(image: np.ndarray, encoding: str, match: str) -> None:
    with pytest.raises(ConversionError, match=match):
        image_to_msg(image, encoding)


def test_supported_encodings() -> None:
    assert SUPPORTED_ENCODINGS == set(IMAGES)


# ------------------------------------------------------------------ camera info
def test_camera_info_round_trip() -> None:
    msg = camera_info_msg(640, 480, 615.0, 616.5, 320.5, 240.25, 3.0, "cam_optical")
    assert msg.distortion_model == "plumb_bob" and list(msg.d) == [0.0] * 5
    np.testing.assert_array_equal(np.reshape(msg.r, (3, 3)), np.eye(3))
    np.testing.assert_array_equal(np.reshape(msg.k, (3, 3)),
                                  [[615.0, 0, 320.5], [0, 616.5, 240.25], [0, 0, 1]])
    np.testing.assert_array_equal(np.reshape(msg.p, (3, 4))[:, :3], np.reshape(msg.k, (3, 3)))
    assert msg.header.frame_id == "cam_optical"
    assert intrinsics_from_msg(msg) == (615.0, 616.5, 320.5, 240.25, 640, 480)


def test_intrinsics_errors() -> None:
    with pytest.raises(ConversionError, match="focal"):
        intrinsics_from_msg(CameraInfo(width=640, height=480))
    with pytest.raises(ConversionError, match="size"):
        intrinsics_from_msg(camera_info_msg(0, 0, 600, 600, 320, 240))
    with pytest.raises(ConversionError, match="principal"):
        intrinsics_from_msg(camera_info_msg(640, 480, 600, 600, float("nan"), 240))
    with pytest.raises(ConversionError, match="exceeds"):  # consumers build per-pixel rays from it (12 TiB here)
        intrinsics_from_msg(camera_info_msg(2**20, 2**20, 600, 600, 320, 240))


# ------------------------------------------------------------------ point clouds
def test_pointcloud_xyz_round_trip() -> None:
    xyz = RNG.random((1000, 3), dtype=np.float32)
    msg = pointcloud_to_msg(xyz, 1.0, "world")
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 1000, 12, 12000)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1),
        ("z", 8, PointField.FLOAT32, 1)]
    assert msg.is_dense and msg.header.frame_id == "world"
    cloud = pointcloud_from_msg(msg)
    assert np.shares_memory(cloud, _data_view(msg))
    out = xyz_from_cloud(cloud)
    assert out.dtype == np.float32 and out.shape == (1000, 3)
    np.testing.assert_array_equal(out, xyz)
    np.testing.assert_array_equal(xyz_from_cloud(pointcloud_from_msg(
        pointcloud_to_msg(xyz.astype(np.float64)))), xyz)


def test_pointcloud_structured_round_trip() -> None:
    dtype = np.dtype({"names": ["x", "y", "z", "intensity", "ring", "t", "normal", "label"],
                      "formats": ["<f4", "<f4", "<f4", "<f8", "<u2", "<u4", ("<f4", (3,)), "i1"],
                      "offsets": [0, 4, 8, 16, 24, 28, 32, 44], "itemsize": 48})
    points = np.zeros(7, dtype)
    for name in dtype.names:
        points[name] = RNG.integers(0, 100, points[name].shape)
    points["x"][3] = np.nan
    msg = pointcloud_to_msg(points)
    assert msg.point_step == 48 and not msg.is_dense
    assert [f.datatype for f in msg.fields] == [7, 7, 7, 8, 4, 6, 7, 1]
    assert msg.fields[6].count == 3
    cloud = pointcloud_from_msg(msg)
    assert cloud.dtype == dtype
    for name in dtype.names:
        np.testing.assert_array_equal(cloud[name], points[name])
    assert pointcloud_to_msg(points, is_dense=True).is_dense


def test_pointcloud_organized_with_row_padding() -> None:
    grid = RNG.random((3, 4, 3), dtype=np.float32)
    rows = np.zeros((3, 4 * 12 + 8), np.uint8)
    rows[:, :48] = grid.reshape(3, 12).view(np.uint8)
    msg = PointCloud2(height=3, width=4, point_step=12, row_step=56, is_bigendian=False,
                      fields=[PointField(name=n, offset=4 * i, datatype=7, count=1)
                              for i, n in enumerate("xyz")])
    msg.data = array.array("B", rows.tobytes())
    np.testing.assert_array_equal(xyz_from_cloud(pointcloud_from_msg(msg)), grid.reshape(12, 3))


def test_pointcloud_errors() -> None:
    with pytest.raises(ConversionError, match=r"\(N, 3\)"):
        pointcloud_to_msg(np.zeros((4, 2), np.float32))
    with pytest.raises(ConversionError, match="unsupported type"):
        pointcloud_to_msg(np.zeros(3, [("x", "f4"), ("c", "c16")]))
    msg = pointcloud_to_msg(np.zeros((4, 3), np.float32))
    msg.data = msg.data[:-2]
    with pytest.raises(ConversionError, match="height\\*row_step"):
        pointcloud_from_msg(msg)
    msg = pointcloud_to_msg(np.zeros((4, 3), np.float32))
    msg.fields[2].offset = 10
    with pytest.raises(ConversionError, match="exceeds point_step"):
        pointcloud_from_msg(msg)
    msg.fields[2].offset, msg.fields[2].datatype = 8, 42
    with pytest.raises(ConversionError, match="unknown datatype"):
        pointcloud_from_msg(msg)
    with pytest.raises(ConversionError, match="lacks"):
        xyz_from_cloud(np.zeros(3, [("x", "f4"), ("y", "f4")]))


# ------------------------------------------------------------------ joint states
def test_joint_state_round_trip() -> None:
    names = ["j1", "j2", "j3"]
    msg = joint_state_to_msg(names, [0.1, 0.2, 0.3], np.array([1.0, 2.0, 3.0]), None, 5.5)
    assert msg.position.typecode == "d" and len(msg.effort) == 0
    got_names, q, qd, eff = joint_state_from_msg(msg)
    assert got_names == tuple(names) and eff is None
    np.testing.assert_array_equal(q, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(qd, [1.0, 2.0, 3.0])
    assert q.dtype == np.float64 and np.shares_memory(q, np.frombuffer(msg.position))
    assert stamp_to_sec(msg.header.stamp) == 5.5
    _, _, qd, eff = joint_state_from_msg(joint_state_to_msg(names, [0] * 3, efforts=[4, 5, 6]))
    assert qd is None
    np.testing.assert_array_equal(eff, [4.0, 5.0, 6.0])


def test_joint_state_errors() -> None:
    with pytest.raises(ConversionError, match="velocity has 2 values for 3"):
        joint_state_to_msg(["a", "b", "c"], [0, 0, 0], [1, 2])
    with pytest.raises(ConversionError, match="position has 1 values for 2"):
        joint_state_from_msg(JointState(name=["a", "b"], position=[1.0]))


def test_positions_by_name_orders_and_names_what_is_missing() -> None:
    msg = JointState(name=["b", "c", "a"], position=[2.0, 3.0, 1.0])
    assert positions_by_name(msg, ["a", "b"]).tolist() == [1.0, 2.0]
    with pytest.raises(ConversionError, match=r"lacks joints \['d'\]"):
        positions_by_name(msg, ["a", "d"])
    with pytest.raises(ConversionError, match="no positions for its 2 joint names"):
        positions_by_name(JointState(name=["a", "b"], velocity=[0.0, 0.0]), ["a"])
    with pytest.raises(ConversionError, match="position has 1 values"):
        positions_by_name(JointState(name=["a", "b"], position=[1.0]), ["a"])


# ------------------------------------------------------------------ trajectories
def test_joint_trajectory_round_trip() -> None:
    names = [f"j{i}" for i in range(7)]
    times = np.arange(1, 17) * 0.05
    q = RNG.standard_normal((16, 7))
    qd = RNG.standard_normal((16, 7))
    msg = joint_trajectory_to_msg(names, times, q, qd, sec_to_stamp(100.5), "base")
    assert len(msg.points) == 16 and msg.header.frame_id == "base"
    assert msg.points[3].time_from_start == Duration(sec=0, nanosec=200_000_000)
    assert msg.points[0].positions.typecode == "d"
    arrays = joint_trajectory_from_msg(msg)
    assert isinstance(arrays, TrajectoryArrays)
    assert arrays.joint_names == tuple(names) and arrays.stamp_sec == 100.5
    np.testing.assert_allclose(arrays.times, times, atol=1e-9)
    np.testing.assert_array_equal(arrays.positions, q)
    np.testing.assert_array_equal(arrays.velocities, qd)
    assert not arrays.positions.flags.writeable
    with pytest.raises(dataclasses.FrozenInstanceError):
        arrays.times = times  # type: ignore[misc]
    no_vel = joint_trajectory_from_msg(joint_trajectory_to_msg(names, times, q))
    assert no_vel.velocities is None and all(len(p.velocities) == 0 for p in
                                             joint_trajectory_to_msg(names, times, q).points)
    empty = joint_trajectory_from_msg(joint_trajectory_to_msg(names, [], np.zeros((0, 7))))
    assert empty.positions.shape == (0, 7) and empty.times.shape == (0,)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"positions": np.zeros((2, 3))}, "positions"),
    ({"velocities": np.zeros((2, 1))}, "velocities shape"),
    ({"times": [0.5, 0.5]}, "strictly increasing"),
    ({"positions": [[0.0, np.nan], [0.0, 0.0]]}, "non-finite"),
])
def test_joint_trajectory_to_msg_errors(kwargs: dict, match: str) -> None:
    args = {"joint_names": ["a", "b"], "times": [0.1, 0.2], "positions": np.zeros((2, 2))}
    with pytest.raises(ConversionError, match=match):
        joint_trajectory_to_msg(**{**args, **kwargs})


def test_joint_trajectory_from_msg_names_bad_point() -> None:
    def point(q, qd=()):
        return JointTrajectoryPoint(positions=q, velocities=qd)
    msg = JointTrajectory(joint_names=["a", "b"],
                          points=[point([0.0, 0.0]), point([0.0, 0.0]), point([0.0])])
    with pytest.raises(ConversionError, match="point 2 has 1 positions for 2"):
        joint_trajectory_from_msg(msg)
    msg.points = [point([0.0, 0.0], [1.0, 1.0]), point([0.0, 0.0])]
    with pytest.raises(ConversionError, match="point 1 has 0 velocities"):
        joint_trajectory_from_msg(msg)
    msg.points = [point([0.0, 0.0], [1.0])]
    with pytest.raises(ConversionError, match="point 0 has 1 velocities"):
        joint_trajectory_from_msg(msg)


@st.composite
def trajectories(draw):
    n_points = draw(st.integers(0, 20))
    n_joints = draw(st.integers(1, 8))
    steps = draw(hnp.arrays(np.float64, n_points, elements=st.floats(1e-3, 10.0)))
    finite = st.floats(-1e3, 1e3, allow_nan=False)
    q = draw(hnp.arrays(np.float64, (n_points, n_joints), elements=finite))
    qd = draw(st.none() | hnp.arrays(np.float64, (n_points, n_joints), elements=finite))
    return [f"joint_{i}" for i in range(n_joints)], np.cumsum(steps), q, qd


@settings(max_examples=60, deadline=None)
@given(trajectories(), st.floats(0.0, 1e6))
def test_joint_trajectory_property(traj, stamp: float) -> None:
    names, times, q, qd = traj
    arrays = joint_trajectory_from_msg(joint_trajectory_to_msg(names, times, q, qd, stamp))
    assert arrays.joint_names == tuple(names)
    assert arrays.stamp_sec == pytest.approx(stamp, abs=1e-9)
    np.testing.assert_allclose(arrays.times, times, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(arrays.positions, q)
    if qd is None:
        assert arrays.velocities is None
    else:
        np.testing.assert_array_equal(arrays.velocities, qd)
