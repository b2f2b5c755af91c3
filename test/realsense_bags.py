"""A synthetic RealSense recording made with a librealsense software device (``rs.recorder``;
librealsense >= 2.57 writes rosbag2 ``.db3`` files), and the frame content it holds."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyrealsense2 as rs

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
            frame.timestamp = T0_MS + i * 1000.0 / FPS
            frame.domain, frame.frame_number = rs.timestamp_domain.system_time, i
            frame.profile = profiles[name].as_video_stream_profile()
            sensors[name].on_video_frame(frame)
        time.sleep(1.0 / FPS)
    for sensor in sensors.values():
        sensor.stop()
        sensor.close()
    del recorder  # closes the file
