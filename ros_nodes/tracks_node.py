"""Motion-tracks node: colour + aligned depth -> short-horizon keypoint tracks in ``base_link``.

Subscribes colour, aligned depth and the colour camera_info (realsense2_camera
names, ``CAMERA_QOS``), pairs colour and depth by stamp, tracks keypoints with
``armpilot.perception.tracks.MotionTracker`` and publishes
``/perception/tracks`` (PointCloud2, fields track_id step u v x y z, one point
per (track, step), frame ``base_link``, the colour image's stamp) and
``/perception/track_markers`` (MarkerArray: DELETEALL, then one LINE_STRIP per
track through its finite 3D points, oldest to newest). Bad frames are counted
by reason, logged (throttled per reason) and skipped.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import cv2
import numpy as np
from geometry_msgs.msg import Point
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from armpilot.perception.frames import FrameError, check_sizes, depth_to_metres
from armpilot.perception.geometry import Intrinsics, camera_mount
from armpilot.perception.joint_history import FrameJoints, JointHistory, WaitingFrames
from armpilot.perception.pairing import ApproximateTimePairer, PairResult
from armpilot.perception.tracks import MotionTracker, PixelLifter, TracksConfig, TrackTable, track_arrays
from armpilot.rejections import RejectionLog
from armpilot.robot import CAMERA_OPTICAL_FRAME, ArmModel
from armpilot.ros_nodes import conversions as conv
from armpilot.ros_nodes import qos, topics
from armpilot.ros_nodes.camera_inputs import CameraInputs
from armpilot.ros_nodes.lifecycle import run_node
from armpilot.ros_nodes.params import declare_config
from armpilot.ros_nodes.robot_loading import load_robot

_TO_GRAY = {"rgb8": cv2.COLOR_RGB2GRAY, "bgr8": cv2.COLOR_BGR2GRAY}


@dataclass(frozen=True)
class TracksNodeConfig:
    """Node settings beyond the tracker's."""

    camera_frame: str = field(default=CAMERA_OPTICAL_FRAME, metadata={
        "description": "URDF frame of the colour optical centre, used when the robot profile names no camera_frame "
                       "and gives no camera_extrinsics"})
    sync_slop: float = field(default=0.02, metadata={"description": "largest colour/depth stamp gap paired, s"})
    marker_width: float = field(default=0.003, metadata={"description": "line width of the track markers, m"})
    joint_state_timeout: float = field(default=0.5, metadata={
        "description": "a camera on the arm is placed with the joint state nearest each frame's stamp within this, "
                       "s (none: the frame is skipped)"})

    def __post_init__(self) -> None:
        if not self.sync_slop >= 0 or not self.marker_width > 0 or not self.joint_state_timeout > 0:
            raise ValueError("parameter 'sync_slop' must be >= 0, 'marker_width' and 'joint_state_timeout' > 0")


def gray_from_msg(msg: Image) -> np.ndarray:
    """(H, W) uint8 gray image of an rgb8, bgr8 or mono8 ``Image`` (a new array).

    Raises:
        FrameError: ``unsupported_encoding`` or ``bad_image`` (size/step inconsistent).
    """
    if msg.encoding not in _TO_GRAY and msg.encoding != "mono8":
        raise FrameError("unsupported_encoding", f"colour encoding '{msg.encoding}' (expected rgb8, bgr8 or mono8)")
    try:
        image = conv.image_from_msg(msg)
    except conv.ConversionError as error:
        raise FrameError("bad_image", str(error)) from error
    if msg.encoding == "mono8":
        return np.array(image, order="C")
    return cv2.cvtColor(image, _TO_GRAY[msg.encoding])


def frame_arrays(color_msg: Image, depth_msg: Image, intrinsics: Intrinsics | None) -> tuple[np.ndarray, np.ndarray]:
    """Gray image (H, W) uint8 and depth (H, W) float32 metres of a paired frame, checked.

    Raises:
        FrameError: ``no_camera_info``, ``unsupported_encoding``, ``bad_image``,
            ``size_mismatch`` or ``empty_depth`` (all zero / NaN).
    """
    if intrinsics is None:
        raise FrameError("no_camera_info", f"no valid camera_info on {topics.COLOR_INFO} yet")
    gray = gray_from_msg(color_msg)
    try:
        raw_depth = conv.image_from_msg(depth_msg)
    except conv.ConversionError as error:
        reason = "unsupported_encoding" if depth_msg.encoding not in conv.SUPPORTED_ENCODINGS else "bad_image"
        raise FrameError(reason, f"depth: {error}") from error
    check_sizes(intrinsics, raw_depth, gray)
    return gray, depth_to_metres(raw_depth, depth_msg.encoding)


def track_color(track_id: int) -> tuple[float, float, float]:
    """A stable, well-spread RGB colour per track id (golden-ratio hues)."""
    return colorsys.hsv_to_rgb((int(track_id) * 0.618033988749895) % 1.0, 0.9, 1.0)


def markers_from_table(table: TrackTable, header: Header, width: float) -> MarkerArray:
    """DELETEALL, then one LINE_STRIP per track through its finite points, oldest first."""
    markers = [Marker(action=Marker.DELETEALL)]
    arrays = track_arrays(table)
    for track_id, xyz in zip(arrays.track_ids, arrays.xyz):
        finite = xyz[np.isfinite(xyz).all(axis=1)]
        if len(finite) < 2:
            continue
        marker = Marker(type=Marker.LINE_STRIP, action=Marker.ADD, ns="tracks", id=int(track_id) % 2**31)
        marker.header = header
        marker.pose.orientation.w = 1.0
        marker.scale.x = float(width)
        marker.color.r, marker.color.g, marker.color.b = track_color(track_id)
        marker.color.a = 1.0
        marker.points = [Point(x=x, y=y, z=z) for x, y, z in finite.tolist()]
        markers.append(marker)
    return MarkerArray(markers=markers)


class TracksNode(CameraInputs, Node):
    """Thin shell over ``MotionTracker``."""

    def __init__(self) -> None:
        super().__init__("tracks")
        self.tracks_config = declare_config(self, TracksConfig)
        self.config = declare_config(self, TracksNodeConfig)
        arm = ArmModel(load_robot(self))
        self.base_frame = arm.profile.base_frame  # the published points' frame
        self.arm_joints = arm.joint_names
        self.camera = camera_mount(arm, self.config.camera_frame)
        self.joints = JointHistory(self.config.joint_state_timeout)
        self.latest_joints: dict[str, float] = {}  # each joint's last reading (several drivers may publish)
        self.waiting: WaitingFrames[PairResult[Image, Image]] = WaitingFrames()
        if self.camera.moves:  # a wrist camera: each frame is lifted from where the arm held it
            self.create_subscription(JointState, topics.JOINT_STATES, self.on_joints, qos.STATE_QOS)
        self.tracker = MotionTracker(self.tracks_config)
        self.intrinsics: Intrinsics | None = None
        self.pairer: ApproximateTimePairer[Image, Image] = ApproximateTimePairer(self.config.sync_slop)
        self.problems = RejectionLog(throttle_s=5.0)
        self.pub_tracks = self.create_publisher(conv.PointCloud2, topics.PERCEPTION_TRACKS, qos.CAMERA_QOS)
        self.pub_markers = self.create_publisher(MarkerArray, topics.PERCEPTION_TRACK_MARKERS, qos.STATE_QOS)
        qos.subscribe_any_publisher(self, CameraInfo, topics.COLOR_INFO, self.on_info, qos.CAMERA_QOS)
        qos.subscribe_any_publisher(self, Image, topics.COLOR_IMAGE, self.on_color, qos.CAMERA_QOS)
        qos.subscribe_any_publisher(self, Image, topics.DEPTH_IMAGE, self.on_depth, qos.CAMERA_QOS)

    def on_info(self, msg: CameraInfo) -> None:
        intrinsics = self.read_intrinsics(msg)
        if intrinsics is None:  # fail closed: frames are skipped until a valid one arrives
            self.intrinsics = None
            return
        if intrinsics != self.intrinsics:
            self.intrinsics = intrinsics
            self.tracker.lifter = PixelLifter(intrinsics, self.camera.pose())

    def on_joints(self, msg: JointState) -> None:
        if self.keep_joint_state(msg, self.arm_joints):
            for pair in self.waiting.ready(self.joints):
                self.track(pair)

    def on_color(self, msg: Image) -> None:
        self.on_pair(self.pairer.add_first(conv.stamp_to_sec(msg.header.stamp), msg))

    def on_depth(self, msg: Image) -> None:
        self.on_pair(self.pairer.add_second(conv.stamp_to_sec(msg.header.stamp), msg))

    def on_pair(self, pair: PairResult[Image, Image] | None) -> None:
        if self.report_out_of_order():
            self.tracker.reset()  # its frames must come in increasing time
        if pair is None:
            return
        if self.camera.moves and self.joints.verdict(pair.stamp) is FrameJoints.WAIT:  # the arm's pose is coming
            if self.waiting.add(pair.stamp, pair):
                self.skip("joint_state_late", f"{topics.JOINT_STATES} lag the camera by more than "
                          f"{self.waiting.capacity} frames: the oldest waiting frame was dropped")
            return
        self.track(pair)

    def track(self, pair: PairResult[Image, Image]) -> None:
        """Track one frame pair (a camera on the arm placed with the joint state at its stamp) and publish."""
        if self.camera.moves and self.intrinsics is not None:
            q = self.joints.at(pair.stamp)
            if q is None:
                self.skip("no_joint_state", f"no {topics.JOINT_STATES} within {self.config.joint_state_timeout} s "
                          f"of the frame ({pair.stamp:.3f} s) to place the camera on the arm")
                return
            self.tracker.lifter = PixelLifter(self.intrinsics, self.camera.pose(q))
        try:
            gray, depth = frame_arrays(pair.first, pair.second, self.intrinsics)
            table = self.tracker.update(gray, pair.stamp, depth)
        except FrameError as error:
            self.skip(error.reason, error.detail)
            return
        except ValueError as error:
            self.skip("tracker", str(error))
            return
        if self.tracker.stats.restarted:
            self.get_logger().info(f"tracks restarted: {self.tracker.stats.restarted}")
        header = pair.first.header
        self.pub_tracks.publish(conv.pointcloud_to_msg(table, header.stamp, self.base_frame))
        if self.pub_markers.get_subscription_count() > 0:
            marker_header = Header(stamp=header.stamp, frame_id=self.base_frame)
            self.pub_markers.publish(markers_from_table(table, marker_header, self.config.marker_width))


def main(args: list[str] | None = None) -> None:
    """Entry point: ``tracks_node``."""
    run_node(TracksNode, args)


if __name__ == "__main__":
    main()
