"""RealSense colour + depth capture on pyrealsense2 (pure core: no rclpy).

``RealSenseSource`` opens a live camera (any, or one ``serial``) or plays a
recording (``bag_file``: ``.db3``, which librealsense >= 2.57 records, or a
legacy ROS1 ``.bag``) at recorded pace, aligns depth to colour and returns
``Frame``s: rgb8 colour, uint16 depth in millimetres and the colour stream's
intrinsics, which the aligned depth shares.

Stamps (``Frame.stamp``, host wall-clock seconds, like ``time.time()``): for a
live camera whose frames carry host-synchronised timestamps (global/system
time domain, librealsense's default on D400) the frame timestamp itself, as
realsense2_camera publishes; otherwise (hardware clock, recordings) the frame
timestamp re-based onto the host clock at the first frame and whenever it
jumps (a bag loops, a device reconnects), so recordings play "now" at their
recorded spacing. ``Frame.device_stamp_ms`` keeps the raw timestamp.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyrealsense2 as rs

from armpilot.fields import describe as _describe


@dataclass(frozen=True)
class RealSenseConfig:
    """Which camera (or recording) to open and how to stream it."""

    serial: str = field(default="", metadata=_describe(
        "camera serial number; prefix '_' (or quote it) so ROS keeps it a string; empty: any camera"))
    width: int = field(default=640, metadata=_describe("colour (and aligned depth) width, px; live camera only"))
    height: int = field(default=480, metadata=_describe("colour (and aligned depth) height, px; live camera only"))
    fps: int = field(default=30, metadata=_describe("frame rate, Hz; live camera only"))
    align_depth: bool = field(default=True, metadata=_describe("align depth to the colour image"))
    bag_file: str = field(default="", metadata=_describe(
        "play this RealSense recording (.db3/.bag) instead of a camera"))
    loop_bag: bool = field(default=True, metadata=_describe("restart the recording when it ends"))
    reconnect_period_s: float = field(default=1.0, metadata=_describe("retry opening the camera every this many s"))
    frame_timeout_ms: int = field(default=1000, metadata=_describe("a stream with no frame for this long is lost, ms"))
    exit_on_missing_device: bool = field(default=False, metadata=_describe("exit non-zero instead of retrying"))
    color_frame_id: str = field(default="camera_color_optical_frame", metadata=_describe("colour/aligned depth frame"))
    depth_frame_id: str = field(default="camera_depth_optical_frame", metadata=_describe("depth frame, unaligned"))

    def __post_init__(self) -> None:
        if self.serial and self.bag_file:
            raise ValueError(f"parameters 'serial' ({self.serial!r}) and 'bag_file' ({self.bag_file!r}) "
                             "exclude each other: give a camera or a recording")
        if not (16 <= self.width <= 4096 and 16 <= self.height <= 4096):
            raise ValueError(f"resolution {self.width}x{self.height} is outside 16..4096 px")
        if not 1 <= self.fps <= 300:
            raise ValueError(f"parameter 'fps' must be in 1..300, got {self.fps}")
        if not self.reconnect_period_s > 0:
            raise ValueError(f"parameter 'reconnect_period_s' must be > 0, got {self.reconnect_period_s}")
        if self.frame_timeout_ms < 10:
            raise ValueError(f"parameter 'frame_timeout_ms' must be >= 10, got {self.frame_timeout_ms}")

    @property
    def serial_number(self) -> str:
        """``serial`` without the leading '_' that keeps ROS from reading it as an integer."""
        return self.serial.removeprefix("_")

    def wanted(self) -> str:
        """What this config asks for, in words (for errors and logs)."""
        if self.bag_file:
            return f"recording '{self.bag_file}'"
        which = f"serial '{self.serial_number}'" if self.serial else "any serial"
        return f"RealSense camera ({which}) streaming {self.width}x{self.height} @ {self.fps} fps"


class CameraUnavailable(RuntimeError):
    """The camera or recording cannot be opened; the message says how to fix it."""


class CameraLost(RuntimeError):
    """An open stream stopped delivering frames (unplugged, stalled, USB error)."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics, pixels; ``model``/``coeffs``: librealsense distortion."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    model: str = "none"
    coeffs: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Frame:
    """One synchronised colour + depth pair.

    ``color``: (H, W, 3) uint8 RGB. ``depth``: (H', W') uint16 millimetres,
    0 = no data; (H, W) and ``depth_intrinsics == color_intrinsics`` when aligned.
    """

    stamp: float
    device_stamp_ms: float
    color: np.ndarray
    depth: np.ndarray
    color_intrinsics: Intrinsics
    depth_intrinsics: Intrinsics
    depth_scale: float
    aligned: bool
    frame_number: int


@dataclass(frozen=True)
class Opened:
    """What ``open()`` opened (for the log)."""

    name: str
    serial: str
    source: str  # "camera" | "recording"
    depth_scale: float

    def __str__(self) -> str:
        return f"{self.source} {self.name} (serial {self.serial}), depth scale {self.depth_scale:g} m/unit"


def connected_devices() -> list[tuple[str, str]]:
    """(name, serial) of each RealSense device plugged in now."""
    return [(dev.get_info(rs.camera_info.name), dev.get_info(rs.camera_info.serial_number))
            for dev in rs.context().query_devices()]


def unavailable_message(config: RealSenseConfig, devices: list[tuple[str, str]], reason: str = "") -> str:
    """The error text for a camera that cannot be opened: what, what is there, how to fix."""
    there = ", ".join(f"{name} (serial {serial})" for name, serial in devices) or "none"
    why = f" ({reason})" if reason else ""
    return (f"cannot open {config.wanted()}{why}. Connected RealSense devices: {there}. To fix: plug the "
            "camera into a USB 3 port (over USB 2 many modes are unavailable), install librealsense's udev "
            "rules (99-realsense-libusb.rules) for access, set parameter 'serial' to one listed above, "
            "or set 'bag_file' to play a recording instead.")


def depth_to_mm(z16: np.ndarray, depth_scale: float) -> np.ndarray:
    """z16 depth units -> uint16 millimetres (0 stays 0; beyond 65535 mm -> 0, no data)."""
    if abs(depth_scale - 0.001) < 1e-9:
        return np.array(z16, dtype=np.uint16, copy=True)
    mm = np.rint(z16.astype(np.float64) * (depth_scale * 1000.0))
    mm[mm > 65535] = 0
    return mm.astype(np.uint16)


def color_to_rgb(pixels: np.ndarray, fmt: str) -> np.ndarray:
    """A colour frame of format ``fmt`` (rgb8/bgr8/rgba8/bgra8) -> (H, W, 3) uint8 RGB copy."""
    if fmt == "rgb8":
        return np.array(pixels, dtype=np.uint8, copy=True)
    if fmt in ("bgr8", "bgra8"):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    if fmt == "rgba8":
        return np.ascontiguousarray(pixels[:, :, :3])
    raise ValueError(f"colour stream format {fmt} is not supported; record colour as rgb8 or bgr8")


def _intrinsics(profile: Any) -> Intrinsics:
    i = profile.as_video_stream_profile().get_intrinsics()
    return Intrinsics(i.width, i.height, i.fx, i.fy, i.ppx, i.ppy, str(i.model).split(".")[-1],
                      tuple(float(c) for c in i.coeffs))


class StampMapper:
    """Device timestamps (ms) -> host seconds, re-anchored when the device clock jumps."""

    def __init__(self, clock: Callable[[], float], max_jump_s: float = 1.0) -> None:
        self.clock, self.max_jump_s = clock, max_jump_s
        self.anchor: tuple[float, float] | None = None  # (host s, device ms)

    def __call__(self, device_ms: float) -> float:
        if self.anchor is not None:
            stamp = self.anchor[0] + (device_ms - self.anchor[1]) * 1e-3
            if abs(stamp - self.clock()) <= self.max_jump_s:
                return stamp
        self.anchor = (self.clock(), device_ms)
        return self.anchor[0]


class RealSenseSource:
    """Opens a RealSense camera or recording and reads aligned colour + depth frames.

    Args:
        config: what to open.
        pipeline_factory: builds the ``rs.pipeline`` (tests pass a stand-in).
        list_devices: (name, serial) of the connected devices.
        clock: host wall clock, seconds.
    """

    STARTUP_GRACE_S = 5.0  # a fresh stream may take this long to deliver its first frame

    def __init__(self, config: RealSenseConfig, pipeline_factory: Callable[[], Any] = rs.pipeline,
                 list_devices: Callable[[], list[tuple[str, str]]] = connected_devices,
                 clock: Callable[[], float] = time.time) -> None:
        self.config, self.pipeline_factory = config, pipeline_factory
        self.list_devices, self.clock = list_devices, clock
        self.pipeline: Any = None
        self.opened: Opened | None = None
        self.finished = False  # a non-looping recording reached its end
        self.skipped = 0  # framesets dropped: stale colour or colour/depth not in step
        self._align = rs.align(rs.stream.color) if config.align_depth else None
        self._playback: Any = None
        self._next_open = 0.0
        self._depth_scale = 0.001
        self._reset_stream_state()

    def _reset_stream_state(self) -> None:
        self._opened_at = self.clock()
        self._got_frame = False
        self._last_color = -1
        self._to_host = StampMapper(self.clock)

    @property
    def is_open(self) -> bool:
        return self.pipeline is not None

    def open(self) -> Opened:
        """Start streaming. Raises CameraUnavailable (with how-to-fix) when it cannot."""
        self.close()
        cfg = self.config
        rs_cfg = rs.config()
        if cfg.bag_file:
            path = Path(cfg.bag_file).expanduser()
            if not path.is_file():
                raise CameraUnavailable(f"recording '{cfg.bag_file}' (parameter 'bag_file') does not exist "
                                        f"(resolved to {path.resolve()})")
            rs_cfg.enable_device_from_file(str(path), repeat_playback=cfg.loop_bag)
            rs_cfg.enable_stream(rs.stream.color)  # a recording streams what it recorded
            rs_cfg.enable_stream(rs.stream.depth)
        else:
            devices = self.list_devices()  # pipeline.start() waits ~15 s for a device: ask first
            if not devices or (cfg.serial and cfg.serial_number not in [s for _, s in devices]):
                raise CameraUnavailable(unavailable_message(cfg, devices, "no such device connected"))
            if cfg.serial:
                rs_cfg.enable_device(cfg.serial_number)
            rs_cfg.enable_stream(rs.stream.color, cfg.width, cfg.height, rs.format.rgb8, cfg.fps)
            rs_cfg.enable_stream(rs.stream.depth, cfg.width, cfg.height, rs.format.z16, cfg.fps)
        pipeline = self.pipeline_factory()
        try:
            profile = pipeline.start(rs_cfg)
            device = profile.get_device()
            info = (device.get_info(rs.camera_info.name), device.get_info(rs.camera_info.serial_number))
            scale = float(device.first_depth_sensor().get_depth_scale())
            self._playback = device.as_playback() if cfg.bag_file else None
            if self._playback is not None:
                self._playback.set_real_time(True)  # at recorded pace
        except RuntimeError as error:
            self._stop(pipeline)
            if cfg.bag_file:
                raise CameraUnavailable(f"cannot play recording '{cfg.bag_file}': {error} "
                                        "(it needs a colour and a depth stream)") from error
            raise CameraUnavailable(unavailable_message(cfg, self.list_devices(), str(error))) from error
        self.pipeline, self.finished, self._depth_scale = pipeline, False, scale
        self._reset_stream_state()
        self.opened = Opened(*info, "recording" if cfg.bag_file else "camera", scale)
        return self.opened

    def read(self) -> Frame | None:
        """The next synchronised pair; None when none is ready yet (or a recording ended).

        Blocks at most ``frame_timeout_ms``. Raises CameraLost (and closes) when
        the stream stopped; call ``open()`` again to reconnect.
        """
        if self.pipeline is None:
            return None
        try:
            ok, frames = self.pipeline.try_wait_for_frames(self.config.frame_timeout_ms)
        except RuntimeError as error:
            self.close()
            raise CameraLost(f"{self.config.wanted()} stopped: {error}") from error
        if not ok:
            if self._playback is not None and self._playback.current_status() == rs.playback_status.stopped:
                self.finished = True
                self.close()
                return None
            if not self._got_frame and self.clock() - self._opened_at < self.STARTUP_GRACE_S:
                return None
            self.close()
            raise CameraLost(f"{self.config.wanted()} delivered no frame for {self.config.frame_timeout_ms} ms")
        self._got_frame = True
        return self._convert(frames)

    def _convert(self, frames: Any) -> Frame | None:
        if self._align is not None:
            frames = self._align.process(frames)
        color, depth = frames.get_color_frame(), frames.get_depth_frame()
        if not color or not depth:
            self.skipped += 1
            return None
        ts, number = color.get_timestamp(), color.get_frame_number()
        half_period_ms = 500.0 / color.get_profile().fps()
        if number == self._last_color or abs(depth.get_timestamp() - ts) > half_period_ms:
            self.skipped += 1  # the pipeline repeats the last frame of a stream that has none new
            return None
        self._last_color = number
        host_synced = color.get_frame_timestamp_domain() in (rs.timestamp_domain.global_time,
                                                             rs.timestamp_domain.system_time)
        stamp = ts * 1e-3 if host_synced and self._playback is None else self._to_host(ts)
        color_k = _intrinsics(color.get_profile())
        try:
            rgb = color_to_rgb(np.asanyarray(color.get_data()), str(color.get_profile().format()).split(".")[-1])
        except ValueError as error:  # a recording in another colour format: it cannot play
            self.finished = True
            self.close()
            raise CameraUnavailable(f"{self.config.wanted()}: {error}") from error
        return Frame(stamp=stamp, device_stamp_ms=ts, color=rgb,
                     depth=depth_to_mm(np.asanyarray(depth.get_data()), self._depth_scale),
                     color_intrinsics=color_k,
                     depth_intrinsics=color_k if self._align is not None else _intrinsics(depth.get_profile()),
                     depth_scale=self._depth_scale, aligned=self._align is not None, frame_number=number)

    def poll(self) -> Frame | None:
        """``read()``, (re)opening first when closed and ``reconnect_period_s`` has passed.

        Raises CameraUnavailable / CameraLost to report a failed attempt; the
        next attempt waits a full period. Returns None at once when not due.
        """
        if self.pipeline is None:
            now = self.clock()
            if self.finished or now < self._next_open:
                return None
            self._next_open = now + self.config.reconnect_period_s
            self.open()
        try:
            return self.read()
        except CameraLost:
            self._next_open = self.clock() + self.config.reconnect_period_s
            raise

    def close(self) -> None:
        """Stop streaming (safe to call twice, or after the device vanished)."""
        pipeline, self.pipeline, self._playback = self.pipeline, None, None
        if pipeline is not None:
            self._stop(pipeline)

    @staticmethod
    def _stop(pipeline: Any) -> None:
        try:
            pipeline.stop()
        except RuntimeError:
            pass  # never started, or the device is already gone
