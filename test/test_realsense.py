"""RealSense camera core without a camera: config, conversions, recordings played back through
``RealSenseSource``, and dropping out / reconnecting with a stand-in pipeline passed to the source.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pyrealsense2 as rs
import pytest

from armpilot.perception.realsense import (CameraLost, CameraUnavailable, RealSenseConfig,
                                           RealSenseSource, StampMapper, color_to_rgb, depth_to_mm)
from realsense_bags import (CX, CY, DEPTH_UNITS, FPS, FX, FY, H, N_FRAMES, T0_MS, W, expected_color,
                            expected_depth_mm)


def read_all(source: RealSenseSource, timeout_s: float = 10.0) -> list:
    frames, deadline = [], time.monotonic() + timeout_s
    while not source.finished and time.monotonic() < deadline:
        frame = source.read()
        if frame is not None:
            frames.append(frame)
    assert source.finished, "the recording did not end"
    return frames


# ------------------------------------------------------------------ config and pure helpers
@pytest.mark.parametrize("bad, word", [
    ({"serial": "123", "bag_file": "x.db3"}, "exclude"),
    ({"width": 8}, "resolution"),
    ({"fps": 0}, "fps"),
    ({"reconnect_period_s": 0.0}, "reconnect_period_s"),
    ({"frame_timeout_ms": 1}, "frame_timeout_ms"),
])
def test_config_rejects_bad_values(bad, word):
    with pytest.raises(ValueError, match=word):
        RealSenseConfig(**bad)


def test_config_defaults_match_realsense2_camera():
    cfg = RealSenseConfig()
    assert (cfg.width, cfg.height, cfg.fps, cfg.align_depth) == (640, 480, 30, True)
    assert cfg.color_frame_id == "camera_color_optical_frame"
    assert RealSenseConfig(serial="_0123").serial_number == "0123"  # '_' keeps ROS from parsing an int


def test_depth_to_mm_uses_the_depth_scale():
    z16 = np.array([[0, 1, 1234, 65535]], dtype=np.uint16)
    np.testing.assert_array_equal(depth_to_mm(z16, 0.0010000000474974513), z16)
    np.testing.assert_array_equal(depth_to_mm(z16, 0.0001), [[0, 0, 123, 6554]])
    np.testing.assert_array_equal(depth_to_mm(z16, 0.01), [[0, 10, 12340, 0]])  # > 65535 mm: no data


def test_color_to_rgb_reorders_bgr_and_drops_alpha():
    bgra = np.array([[[1, 2, 3, 4]]], dtype=np.uint8)
    np.testing.assert_array_equal(color_to_rgb(bgra[..., :3], "bgr8"), [[[3, 2, 1]]])
    np.testing.assert_array_equal(color_to_rgb(bgra, "bgra8"), [[[3, 2, 1]]])
    with pytest.raises(ValueError, match="yuyv"):
        color_to_rgb(bgra, "yuyv")


def test_stamp_mapper_keeps_spacing_and_reanchors_on_jumps():
    now = [100.0]
    to_host = StampMapper(lambda: now[0])
    assert to_host(5000.0) == 100.0
    now[0] = 100.05
    assert to_host(5033.3) == pytest.approx(100.0333)
    assert to_host(1000.0) == 100.05  # device clock went back (a recording looped)


# ------------------------------------------------------------------ no camera here
def test_no_device_fails_fast_with_a_fix():
    config = RealSenseConfig(serial="123456789012", width=848, height=480, fps=15)
    start = time.monotonic()
    with pytest.raises(CameraUnavailable) as error:
        RealSenseSource(config).open()
    assert time.monotonic() - start < 5.0
    text = str(error.value)
    for needle in ("serial '123456789012'", "848x480 @ 15 fps", "Connected RealSense devices: none",
                   "USB 3", "udev", "'serial'", "'bag_file'"):
        assert needle in text


def test_unknown_serial_lists_the_connected_devices():
    source = RealSenseSource(RealSenseConfig(serial="999"), list_devices=lambda: [("Intel RealSense D435", "111")])
    with pytest.raises(CameraUnavailable, match=r"D435 \(serial 111\)"):
        source.open()


def test_missing_bag_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "take1.db3"
    with pytest.raises(CameraUnavailable, match=str(missing)):
        RealSenseSource(RealSenseConfig(bag_file=str(missing))).open()


# ------------------------------------------------------------------ playing a recording
def check_frames(frames, aligned: bool) -> None:
    indices = [int(f.color[0, 0, 0]) // 10 for f in frames]
    assert len(frames) >= N_FRAMES // 2 and indices == sorted(set(indices)), indices
    for i, frame in zip(indices, frames, strict=True):
        np.testing.assert_array_equal(frame.color, expected_color(i))
        assert frame.depth.dtype == np.uint16 and frame.depth.shape == (H, W)
        want = expected_depth_mm(i)
        if aligned:  # align rasterises pixel footprints: a few holes (0), some values from a neighbour
            valid = frame.depth > 0
            error = frame.depth[valid].astype(int) - want[valid]
            assert valid.mean() > 0.8 and np.abs(error).max() <= 1 and np.mean(error == 0) > 0.8
        else:
            np.testing.assert_array_equal(frame.depth, want)
        assert frame.device_stamp_ms == pytest.approx(T0_MS + i * 1000.0 / FPS, abs=1e-3)
        assert frame.depth_scale == pytest.approx(DEPTH_UNITS)
        for k in (frame.color_intrinsics, frame.depth_intrinsics):
            assert (k.width, k.height) == (W, H)
            assert (k.fx, k.fy, k.cx, k.cy) == pytest.approx((FX, FY, CX, CY))
    stamps = np.array([f.stamp for f in frames])
    device = np.array([f.device_stamp_ms for f in frames]) * 1e-3
    np.testing.assert_allclose(np.diff(stamps), np.diff(device), atol=1e-6)  # recorded spacing
    assert abs(stamps[-1] - time.time()) < 2.0  # played "now", on the host clock


@pytest.mark.timeout(60)
@pytest.mark.parametrize("aligned", [True, False])
def test_recording_plays_back_with_content_intrinsics_and_stamps(bag, aligned):
    source = RealSenseSource(RealSenseConfig(bag_file=str(bag), loop_bag=False, align_depth=aligned,
                                             frame_timeout_ms=300))
    opened = source.open()
    assert (opened.name, opened.serial, opened.source) == ("armpilot software camera", "4242", "recording")
    start = time.monotonic()
    frames = read_all(source)
    assert time.monotonic() - start > 0.15  # at recorded pace (~0.3 s), not as fast as possible
    check_frames(frames, aligned)
    assert not source.is_open and source.poll() is None  # ended: no reopening


@pytest.mark.timeout(60)
def test_recording_loops(bag):
    source = RealSenseSource(RealSenseConfig(bag_file=str(bag), loop_bag=True))
    source.open()
    indices, deadline = [], time.monotonic() + 5.0
    try:
        while len(indices) < 2 * N_FRAMES and time.monotonic() < deadline:
            frame = source.read()
            if frame is not None:
                indices.append(int(frame.color[0, 0, 0]) // 10)
    finally:
        source.close()
    assert any(b < a for a, b in itertools.pairwise(indices)), indices  # started over


def test_frames_convert_to_realsense2_camera_messages(bag):
    from armpilot.ros_nodes import conversions as conv
    from armpilot.ros_nodes.realsense_node import info_msg
    source = RealSenseSource(RealSenseConfig(bag_file=str(bag), loop_bag=False, frame_timeout_ms=300))
    source.open()
    frame = read_all(source)[0]
    color = conv.image_to_msg(frame.color, "rgb8", conv.sec_to_stamp(frame.stamp), "camera_color_optical_frame")
    depth = conv.image_to_msg(frame.depth, "16UC1", conv.sec_to_stamp(frame.stamp), "camera_color_optical_frame")
    assert (color.encoding, color.step, depth.encoding, depth.step) == ("rgb8", 3 * W, "16UC1", 2 * W)
    np.testing.assert_array_equal(conv.image_from_msg(color), frame.color)
    np.testing.assert_array_equal(conv.image_from_msg(depth), frame.depth)
    assert conv.stamp_to_sec(color.header.stamp) == pytest.approx(frame.stamp, abs=1e-9)
    info = info_msg(frame.color_intrinsics, color.header.stamp, "camera_color_optical_frame")
    assert conv.intrinsics_from_msg(info) == pytest.approx((FX, FY, CX, CY, W, H))
    assert info.distortion_model == "plumb_bob" and list(info.d) == [0.0] * 5
    assert list(info.p) == pytest.approx([FX, 0, CX, 0, 0, FY, CY, 0, 0, 0, 1, 0])


# ------------------------------------------------------------------ dropping out and reconnecting
class FakeDevice:
    def get_info(self, key):
        return {rs.camera_info.name: "Fake D435", rs.camera_info.serial_number: "111"}[key]

    def first_depth_sensor(self):
        return self

    def get_depth_scale(self):
        return 0.001


class FakeProfile:
    def get_device(self):
        return FakeDevice()


class VanishingPipeline:
    """Starts, then its device is gone: waiting raises (or, with ``silent``, times out)."""

    def __init__(self, log: list, silent: bool = False) -> None:
        self.log, self.silent = log, silent

    def start(self, _config):
        self.log.append("start")
        return FakeProfile()

    def try_wait_for_frames(self, _timeout_ms):
        self.log.append("wait")
        if self.silent:
            return False, None
        raise RuntimeError("Frame didn't arrive within 1000")

    def stop(self):
        self.log.append("stop")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_vanished_device_is_reported_and_reopened_each_period():
    log, clock, devices = [], FakeClock(), [("Fake D435", "111")]
    source = RealSenseSource(RealSenseConfig(reconnect_period_s=2.0), pipeline_factory=lambda: VanishingPipeline(log),
                             list_devices=lambda: list(devices), clock=clock)
    start = time.monotonic()
    with pytest.raises(CameraLost, match="stopped: Frame didn't arrive"):
        source.poll()
    assert log == ["start", "wait", "stop"] and not source.is_open
    clock.now += 1.0
    assert source.poll() is None and log == ["start", "wait", "stop"]  # not due yet: no attempt
    clock.now += 1.0
    with pytest.raises(CameraLost):
        source.poll()
    assert log.count("start") == 2
    devices.clear()  # unplugged for good
    clock.now += 2.0
    with pytest.raises(CameraUnavailable, match="Connected RealSense devices: none"):
        source.poll()
    assert log.count("start") == 2 and time.monotonic() - start < 1.0


def test_silent_stream_gets_a_startup_grace_then_counts_as_lost():
    log, clock = [], FakeClock()
    source = RealSenseSource(RealSenseConfig(frame_timeout_ms=100), list_devices=lambda: [("Fake D435", "111")],
                             pipeline_factory=lambda: VanishingPipeline(log, silent=True), clock=clock)
    source.open()
    assert source.read() is None and source.is_open  # first frames may take a while
    clock.now += RealSenseSource.STARTUP_GRACE_S + 0.1
    with pytest.raises(CameraLost, match="no frame for 100 ms"):
        source.read()
    assert log[-1] == "stop" and not source.is_open


# ------------------------------------------------------------------ the node, as a process
