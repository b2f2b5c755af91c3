"""The RealSense node as a process, without a camera: the clear no-device error, retries,
Ctrl-C, exiting on request, and a recording played on realsense2_camera's topics."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from realsense_bags import CX, CY, FX, FY, H, W, expected_color


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
