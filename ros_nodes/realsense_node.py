"""RealSense camera node: publishes what realsense2_camera publishes, on pyrealsense2.

Node ``camera``; topics (absolute, as realsense2_camera's ``/camera/camera``):
colour rgb8 on ``/camera/camera/color/image_raw``, depth aligned to colour
(16UC1, millimetres) on ``/camera/camera/aligned_depth_to_color/image_raw``
and a ``camera_info`` beside each, all with the frame's stamp and frame id
``camera_color_optical_frame``. With ``align_depth:=false`` depth goes to
``/camera/camera/depth/image_rect_raw`` in ``camera_depth_optical_frame``.
``bag_file`` plays a recording instead of a camera. With no camera it logs
how to fix that and retries every ``reconnect_period_s`` (or exits 1 when
``exit_on_missing_device``); a camera lost mid-stream is reopened the same way.

Example: ``realsense_node --ros-args -p serial:=_123456789012 -p width:=848``
(a leading '_' or quotes keep ROS from reading the serial as an integer;
realsense2_camera's ``serial_no`` has the same rule).
"""

from __future__ import annotations

import array
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from armpilot.perception.realsense import (CameraLost, CameraUnavailable, Frame, Intrinsics,
                                           RealSenseConfig, RealSenseSource)
from armpilot.ros_nodes import conversions as conv
from armpilot.ros_nodes import qos, topics
from armpilot.ros_nodes.lifecycle import run_node
from armpilot.ros_nodes.params import declare_config

# realsense2_camera's unaligned depth topics (used when align_depth is false)
DEPTH_RAW_IMAGE = "/camera/camera/depth/image_rect_raw"
DEPTH_RAW_INFO = "/camera/camera/depth/camera_info"
REPEAT_ERROR_S = 30.0  # an unchanged "no camera" error is repeated this often
FLOW_CHECK_S = 5.0  # an open stream that published nothing for this long is reported


def info_msg(k: Intrinsics, stamp, frame_id: str) -> CameraInfo:
    """CameraInfo from RealSense intrinsics, distortion as realsense2_camera fills it."""
    msg = conv.camera_info_msg(k.width, k.height, k.fx, k.fy, k.cx, k.cy, stamp, frame_id)
    msg.distortion_model = "equidistant" if k.model == "kannala_brandt4" else "plumb_bob"
    msg.d = array.array("d", k.coeffs)
    return msg


class RealSenseNode(Node):
    """Thin shell over ``RealSenseSource``: poll, convert, publish, report."""

    def __init__(self) -> None:
        super().__init__("camera")
        self.config = cfg = declare_config(self, RealSenseConfig)
        self.source = RealSenseSource(cfg)
        depth_topics = (topics.DEPTH_IMAGE, topics.DEPTH_INFO) if cfg.align_depth else (DEPTH_RAW_IMAGE, DEPTH_RAW_INFO)
        self.pub_color = self.create_publisher(Image, topics.COLOR_IMAGE, qos.CAMERA_QOS)
        self.pub_color_info = self.create_publisher(CameraInfo, topics.COLOR_INFO, qos.CAMERA_QOS)
        self.pub_depth = self.create_publisher(Image, depth_topics[0], qos.CAMERA_QOS)
        self.pub_depth_info = self.create_publisher(CameraInfo, depth_topics[1], qos.CAMERA_QOS)
        self.published = 0
        self._flow = (0, 0)  # (published, skipped) at the last flow check
        self.create_timer(FLOW_CHECK_S, self.check_flow)
        self._last_error, self._last_error_time, self._failures = "", 0.0, 0
        self.get_logger().info(f"opening {cfg.wanted()}, align_depth={cfg.align_depth}")

    def step(self) -> None:
        """Read (or retry opening) once and publish what arrived."""
        was_open = self.source.is_open
        try:
            frame = self.source.poll()
        except CameraUnavailable as error:
            self.report(str(error))
            if self.config.exit_on_missing_device:
                raise SystemExit(1) from error
            return
        except CameraLost as error:
            self.get_logger().error(f"{error}; reopening every {self.config.reconnect_period_s:g} s")
            return
        if self.source.is_open and not was_open:
            self._last_error, self._failures = "", 0
            self.get_logger().info(f"opened {self.source.opened}")
        if self.source.finished and was_open:
            self.get_logger().info(f"recording '{self.config.bag_file}' ended (loop_bag is false); idle")
        if frame is not None:
            self.publish(frame)

    def report(self, message: str) -> None:
        """Log a failed open: in full when new, then a reminder every REPEAT_ERROR_S."""
        self._failures += 1
        now = time.monotonic()
        if message != self._last_error or now - self._last_error_time >= REPEAT_ERROR_S:
            retry = "exiting" if self.config.exit_on_missing_device else \
                f"retrying every {self.config.reconnect_period_s:g} s (attempt {self._failures})"
            self.get_logger().error(f"{message} [{retry}]")
            self._last_error, self._last_error_time = message, now

    def check_flow(self) -> None:
        """Warn when the stream is open but nothing was published since the last check."""
        published, skipped = self.published, self.source.skipped
        if self.source.is_open and published == self._flow[0]:
            self.get_logger().warning(
                f"{self.config.wanted()} is open but published no frame in {FLOW_CHECK_S:g} s "
                f"({skipped - self._flow[1]} framesets dropped: colour repeated or colour/depth "
                "timestamps more than half a frame apart)")
        self._flow = (published, skipped)

    def publish(self, frame: Frame) -> None:
        cfg = self.config
        stamp = conv.sec_to_stamp(frame.stamp)
        depth_frame = cfg.color_frame_id if frame.aligned else cfg.depth_frame_id
        self.pub_color.publish(conv.image_to_msg(frame.color, "rgb8", stamp, cfg.color_frame_id))
        self.pub_color_info.publish(info_msg(frame.color_intrinsics, stamp, cfg.color_frame_id))
        self.pub_depth.publish(conv.image_to_msg(frame.depth, "16UC1", stamp, depth_frame))
        self.pub_depth_info.publish(info_msg(frame.depth_intrinsics, stamp, depth_frame))
        if self.published == 0:
            self.get_logger().info(f"first frame: colour {frame.color.shape[1]}x{frame.color.shape[0]}, "
                                   f"depth {frame.depth.shape[1]}x{frame.depth.shape[0]} mm")
        self.published += 1

    def spin(self, executor: SingleThreadedExecutor) -> None:
        """Poll frames (each wait bounded by frame_timeout_ms) between executor turns."""
        while rclpy.ok():
            self.step()
            executor.spin_once(timeout_sec=0.0 if self.source.is_open else 0.05)


def main(args: list[str] | None = None) -> None:
    """Entry point: ``realsense_node``."""
    run_node(RealSenseNode, args, spin=lambda node, executor: node.spin(executor),
             cleanup=lambda node: node.source.close())


if __name__ == "__main__":
    main()
