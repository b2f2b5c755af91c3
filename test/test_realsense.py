"""RealSense camera core and node, without a camera.

Recordings are made here with a librealsense software device and
``rs.recorder`` (librealsense >= 2.57 writes rosbag2 ``.db3`` files) and
played back through ``RealSenseSource`` and the node. Dropping out and
reconnecting is tested with a stand-in pipeline passed to the source.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyrealsense2 as rs
import pytest

from armpilot.perception.realsense import (CameraLost, CameraUnavailable, RealSenseConfig,
                                           RealSenseSource, StampMapper, color_to_rgb, depth_to_mm)

W, H, N_FRAMES, FPS = 64, 48, 10, 30
FX, FY, CX, CY = 50.0, 51.0, 31.5, 23.5
T0_MS = 1000.0
DEPTH_UNITS = 0.0001  # m per z16 unit (D405-like), so millimetres = raw / 10


def expected_color(i: int) -> np.ndarray:
    """Frame i: red = 10 i, green = 4 x, blue = 5 y."""
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([np.full((H, W), 10 * i), 4 * xx, 5 * yy], axis=-1).astype(np.uint8)


def expected_depth_mm(i: int) -> np.ndarray:
    return np.broadcast_to(500 + 10 * i + np.arange(W), (H, W)).astype(np.uint16)


def record_bag(path: Path) -> None:
    """Records N_FRAMES colour + depth frames of known content from a software device."""
    dev = rs.software_device()
    sensors = {"color": dev.add_sensor("RGB Camera"), "depth": dev.add_sensor("Stereo Module")}
    intr = rs.intrinsics()
    intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = W, H, FX, FY, CX, CY
    intr.model, intr.coeffs = rs.distortion.none, [0.0] * 5
    profiles = {}
    for uid, (name, stream, fmt, bpp) in enumerate((("color", rs.stream.color, rs.format.rgb8, 3),
                                                     ("depth", rs.stream.depth, rs.format.z16, 2))):
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid, vs.width, vs.height, vs.fps = stream, 0, uid, W, H, FPS
        vs.bpp, vs.fmt, vs.intrinsics = bpp, fmt, intr
        profiles[name] = sensors[name].add_video_stream(vs)
    identity = rs.extrinsics()
    identity.rotation, identity.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
    profiles["depth"].register_extrinsics_to(profiles["color"], identity)
    sensors["depth"].add_read_only_option(rs.option.depth_units, DEPTH_UNITS)
    dev.register_info(rs.camera_info.name, "armpilot software camera")
    dev.register_info(rs.camera_info.serial_number, "4242")
    recorder = rs.recorder(str(path), dev)
    for name, sensor in sensors.items():
        sensor.open(profiles[name])
        sensor.start(lambda _frame: None)
    for i in range(N_FRAMES):
        raw_depth = (expected_depth_mm(i) * 10).astype(np.uint16)
        for name, pixels, bpp in (("color", expected_color(i), 3), ("depth", raw_depth, 2)):
            frame = rs.software_video_frame()
            frame.pixels, frame.bpp, frame.stride = np.ascontiguousarray(pixels), bpp, W * bpp
            frame.timestamp, frame.domain, frame.frame_number = T0_MS + i * 1000.0 / FPS, rs.timestamp_domain.system_time, i
            frame.profile = profiles[name].as_video_stream_profile()
            sensors[name].on_video_frame(frame)
        time.sleep(1.0 / FPS)
    for sensor in sensors.values():
        sensor.stop()
        sensor.close()
    del recorder  # closes the file


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("realsense") / "synthetic.db3"
    record_bag(path)
    assert path.is_file() and path.stat().st_size > 0
    return path


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
def node_env() -> dict[str, str]:
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(150, 230)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    return env


def start_node(params: dict[str, str], env: dict[str, str], log: Path) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "realsense_node"
    args = [str(exe), "--ros-args"] + [a for k, v in params.items() for a in ("-p", f"{k}:={v}")]
    with open(log, "wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_for_log(proc: subprocess.Popen, log: Path, text: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace")
        if text in content or proc.poll() is not None:
            return content
        time.sleep(0.1)
    return log.read_text(errors="replace")


def stop(proc: subprocess.Popen, timeout_s: float = 5.0) -> int:
    """SIGINT by pid; kill if it ignores it. Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired as error:
            proc.kill()
            proc.wait()
            raise AssertionError(f"node ignored SIGINT for {timeout_s} s") from error
    return proc.returncode


@pytest.mark.graph
@pytest.mark.timeout(60)
def test_node_without_camera_reports_retries_and_stops_on_ctrl_c(tmp_path):
    log = tmp_path / "node.log"
    proc = start_node({"reconnect_period_s": "0.3", "serial": "'_123456'"}, node_env(), log)
    try:
        text = wait_for_log(proc, log, "attempt 1", 20.0)
        assert "cannot open RealSense camera (serial '123456')" in text and "udev" in text, text
        time.sleep(1.0)
        assert proc.poll() is None, log.read_text()  # keeps retrying
        start = time.monotonic()
        assert stop(proc) == 0, log.read_text()
        assert time.monotonic() - start < 5.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.graph
@pytest.mark.timeout(60)
def test_node_exits_non_zero_when_asked_to(tmp_path):
    log = tmp_path / "node.log"
    proc = start_node({"exit_on_missing_device": "true"}, node_env(), log)
    try:
        assert proc.wait(20.0) == 1
        assert "Connected RealSense devices: none" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.graph
@pytest.mark.timeout(90)
def test_node_plays_a_recording_on_realsense2_camera_topics(bag, tmp_path, monkeypatch):
    import rclpy
    from sensor_msgs.msg import CameraInfo, Image

    from armpilot.ros_nodes import conversions as conv
    from armpilot.ros_nodes import qos, topics

    env = node_env()
    monkeypatch.setenv("ROS_DOMAIN_ID", env["ROS_DOMAIN_ID"])
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.delenv("FASTDDS_BUILTIN_TRANSPORTS", raising=False)
    log = tmp_path / "node.log"
    proc = start_node({"bag_file": str(bag)}, env, log)
    rclpy.init()
    probe = rclpy.create_node("realsense_probe")
    got: dict[str, list] = {}
    for topic, kind in ((topics.COLOR_IMAGE, Image), (topics.COLOR_INFO, CameraInfo),
                        (topics.DEPTH_IMAGE, Image), (topics.DEPTH_INFO, CameraInfo)):
        probe.create_subscription(kind, topic, lambda m, t=topic: got.setdefault(t, []).append(m), qos.CAMERA_QOS)
    try:
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and not all(len(got.get(t, [])) >= 3 for t in (
                topics.COLOR_IMAGE, topics.COLOR_INFO, topics.DEPTH_IMAGE, topics.DEPTH_INFO)):
            rclpy.spin_once(probe, timeout_sec=0.05)
            assert proc.poll() is None, log.read_text()
        assert all(len(got.get(t, [])) >= 3 for t in (topics.COLOR_IMAGE, topics.DEPTH_IMAGE)), \
            f"{ {t: len(m) for t, m in got.items()} }\n{log.read_text()}"
        color, depth = got[topics.COLOR_IMAGE][-1], got[topics.DEPTH_IMAGE][-1]
        assert (color.encoding, color.width, color.height) == ("rgb8", W, H)
        assert (depth.encoding, depth.width, depth.height) == ("16UC1", W, H)
        assert color.header.frame_id == depth.header.frame_id == "camera_color_optical_frame"
        color_stamps = {conv.stamp_to_sec(m.header.stamp) for m in got[topics.COLOR_IMAGE]}
        assert conv.stamp_to_sec(depth.header.stamp) in color_stamps
        i = int(conv.image_from_msg(color)[0, 0, 0]) // 10
        np.testing.assert_array_equal(conv.image_from_msg(color), expected_color(i))
        for info in (got[topics.COLOR_INFO][-1], got[topics.DEPTH_INFO][-1]):
            assert info.header.frame_id == "camera_color_optical_frame"
            assert conv.intrinsics_from_msg(info) == pytest.approx((FX, FY, CX, CY, W, H))
        assert "opened recording armpilot software camera (serial 4242)" in log.read_text()
        assert stop(proc) == 0, log.read_text()
    finally:
        probe.destroy_node()
        rclpy.shutdown()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
