"""Perception node: RGB-D frames -> filtered cloud and objects in ``base_link``.

Subscribes aligned depth, colour and camera_info (realsense2_camera names) and
``/joint_states`` (to cut the arm out of the cloud); pairs colour and depth by
stamp; publishes ``/perception/points`` (PointCloud2 x y z rgb),
``/perception/objects`` (PoseArray, largest object first; the object whose
colour the latest ``/policy/instruction`` names first, ``perception/grounding.py``)
and ``/perception/object_markers`` (MarkerArray: a box per object, its size and
colour). Bad frames are skipped with a warning naming the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from geometry_msgs.msg import Pose, PoseArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2
from std_msgs.msg import String
from transforms3d.euler import euler2quat
from visualization_msgs.msg import Marker, MarkerArray

from armpilot.perception.cloud import CloudPipeline, PerceptionResult
from armpilot.perception.config import PerceptionConfig
from armpilot.perception.frames import FrameError, check_sizes, depth_to_metres
from armpilot.perception.geometry import camera_mount, Intrinsics
from armpilot.perception.grounding import colour_word, named_first, nearest_colour_word
from armpilot.perception.pairing import ApproximateTimePairer
from armpilot.perception.joint_history import FrameJoints, JointHistory, WaitingFrames
from armpilot.perception.self_filter import RobotBoxes
from armpilot.rejections import RejectionLog
from armpilot.robot import ArmModel
from armpilot.ros_nodes import conversions as conv
from armpilot.ros_nodes import qos, topics
from armpilot.ros_nodes.camera_inputs import CameraInputs
from armpilot.ros_nodes.lifecycle import run_node
from armpilot.ros_nodes.params import declare_config
from armpilot.ros_nodes.robot_loading import load_robot

CLOUD_MSG_DTYPE = np.dtype([("x", np.float32), ("y", np.float32), ("z", np.float32), ("rgb", np.float32)])


@dataclass(frozen=True)
class PerceptionNodeConfig:
    """Node settings beyond the pipeline's."""

    camera_frame: str = field(default="camera_color_optical_frame", metadata={
        "description": "URDF frame of the depth image, used when the robot profile names no camera_frame and gives "
                       "no camera_extrinsics"})
    use_color: bool = field(default=True, metadata={"description": "pair colour with depth for rgb and object colour"})
    sync_slop: float = field(default=0.02, metadata={"description": "largest colour/depth stamp gap paired, s"})
    self_filter: bool = field(default=True, metadata={"description": "cut the arm out using /joint_states"})
    joint_state_timeout: float = field(default=0.5, metadata={
        "description": "the self filter uses the joint state nearest a frame's stamp within this, s; a frame with "
                       "none is skipped (no_joint_state), one newer than every joint state waits for the next"})


class PerceptionNode(CameraInputs, Node):
    """Thin shell over ``CloudPipeline``."""

    def __init__(self, **node_options) -> None:
        """``node_options``: rclpy ``Node``'s (a ``context`` for in-process tests)."""
        super().__init__("perception", **node_options)
        self.pipeline_config = declare_config(self, PerceptionConfig)
        self.config = declare_config(self, PerceptionNodeConfig)
        self.arm = ArmModel(load_robot(self))  # outputs are in its profile's base_frame
        self.robot_boxes = RobotBoxes(self.arm)
        self.camera = camera_mount(self.arm, self.config.camera_frame)
        self.get_logger().info(f"camera at '{self.camera.frame or 'the profile camera_extrinsics'}'" + (
            ", which moves with the arm: each frame is placed with the joint state at its stamp"
            if self.camera.moves else ""))
        self.needs_joints = self.config.self_filter or self.camera.moves
        self.pipeline: CloudPipeline | None = None
        self.intrinsics: Intrinsics | None = None
        self.joints = JointHistory(self.config.joint_state_timeout)
        self.latest_joints: dict[str, float] = {}  # each joint's last reading (several drivers may publish)
        self.waiting: WaitingFrames[tuple[float, Image, Image | None]] = WaitingFrames()
        self.pairer: ApproximateTimePairer[Image, Image] = ApproximateTimePairer(self.config.sync_slop)
        self.problems = RejectionLog(throttle_s=5.0)
        self.frames = 0
        self.pub_points = self.create_publisher(PointCloud2, topics.PERCEPTION_POINTS, qos.CAMERA_QOS)
        self.pub_objects = self.create_publisher(PoseArray, topics.PERCEPTION_OBJECTS, qos.STATE_QOS)
        self.pub_markers = self.create_publisher(MarkerArray, topics.PERCEPTION_OBJECT_MARKERS, qos.STATE_QOS)
        qos.subscribe_any_publisher(self, CameraInfo, topics.DEPTH_INFO, self.on_info, qos.CAMERA_QOS)
        qos.subscribe_any_publisher(self, Image, topics.DEPTH_IMAGE, self.on_depth, qos.CAMERA_QOS)
        if self.config.use_color:
            qos.subscribe_any_publisher(self, Image, topics.COLOR_IMAGE, self.on_color, qos.CAMERA_QOS)
        self.create_subscription(JointState, topics.JOINT_STATES, self.on_joints, qos.STATE_QOS)
        self.named_colour: str | None = None  # the colour word of the latest instruction
        qos.subscribe_any_publisher(self, String, topics.POLICY_INSTRUCTION, self.on_instruction, qos.LATCHED_QOS)

    def on_instruction(self, msg: String) -> None:
        """The object of the colour an instruction names is reported first from now on."""
        self.named_colour = colour_word(msg.data)
        self.get_logger().info(f"instruction names colour '{self.named_colour}': reported first"
                               if self.named_colour else "instruction names no colour: largest object first")

    def on_info(self, msg: CameraInfo) -> None:
        intrinsics = self.read_intrinsics(msg)
        if intrinsics is None:  # fail closed: frames are skipped until a valid camera_info arrives
            self.intrinsics = self.pipeline = None
            return
        if intrinsics != self.intrinsics:
            self.intrinsics = intrinsics
            profile = self.arm.profile
            self.pipeline = CloudPipeline(self.pipeline_config, intrinsics, self.camera.pose(),
                                          reach=profile.reach, table_z=profile.table_z)

    def on_joints(self, msg: JointState) -> None:
        if self.keep_joint_state(msg, self.arm.joint_names):
            for frame in self.waiting.ready(self.joints):
                self.process(*frame)

    def on_depth(self, msg: Image) -> None:
        stamp = conv.stamp_to_sec(msg.header.stamp)
        if not self.config.use_color:
            self.process(stamp, msg, None)
            return
        pair = self.pairer.add_first(stamp, msg)
        self.report_out_of_order()
        if pair is not None:
            self.process(pair.stamp, pair.first, pair.second)

    def on_color(self, msg: Image) -> None:
        pair = self.pairer.add_second(conv.stamp_to_sec(msg.header.stamp), msg)
        self.report_out_of_order()
        if pair is not None:
            self.process(pair.stamp, pair.first, pair.second)

    def process(self, stamp: float, depth_msg: Image, color_msg: Image | None) -> None:
        if self.pipeline is None or self.intrinsics is None:
            self.skip("no_camera_info", f"no valid camera_info on {topics.DEPTH_INFO} yet")
            return
        verdict = self.joints.verdict(stamp) if self.needs_joints else FrameJoints.READY
        no_arm = verdict is FrameJoints.MISSING and not self.camera.moves and self.joints.newest_stamp == -np.inf
        if no_arm:  # a camera alone (a recording, a bench test): nothing to cut out, said once
            verdict = FrameJoints.READY
            self.get_logger().warning(f"no {topics.JOINT_STATES} received yet: frames are processed without the "
                                      "self filter until one arrives (the arm, if in view, counts as objects)",
                                      once=True)
        if verdict is FrameJoints.WAIT:  # processed once the arm's pose at its stamp has arrived
            if self.waiting.add(stamp, (stamp, depth_msg, color_msg)):
                self.skip("joint_state_late", f"{topics.JOINT_STATES} lag the camera by more than "
                          f"{self.waiting.capacity} frames: the oldest waiting frame was dropped")
            return
        if verdict is FrameJoints.MISSING:  # unfiltered, the arm itself would be published as objects
            self.skip("no_joint_state", f"no {topics.JOINT_STATES} within {self.config.joint_state_timeout} s of the "
                      f"frame (newest {self.joints.newest_stamp:.3f} s, frame {stamp:.3f} s) for the self filter or "
                      "the camera on the arm; clocks out of step? (self_filter: false runs without it)")
            return
        try:
            depth = depth_to_metres(conv.image_from_msg(depth_msg), depth_msg.encoding)
            color = None if color_msg is None else conv.image_from_msg(color_msg)
            if color is not None and color_msg.encoding != "rgb8":
                color = color[..., ::-1] if color_msg.encoding == "bgr8" else None
            check_sizes(self.intrinsics, depth, color)
        except FrameError as error:
            self.skip(error.reason, error.detail)
            return
        except conv.ConversionError as error:
            self.skip("bad_image", str(error))
            return
        q = self.joints.at(stamp) if self.needs_joints and not no_arm else None
        arm_boxes = self.robot_boxes(q) if self.config.self_filter and q is not None else None
        result = self.pipeline.process(depth, color, arm_boxes, self.camera.pose(q) if self.camera.moves else None)
        self.publish(result, depth_msg.header.stamp)

    def publish(self, result: PerceptionResult, stamp) -> None:
        frame = self.arm.profile.base_frame
        self.pub_points.publish(conv.pointcloud_to_msg(result.cloud.view(CLOUD_MSG_DTYPE), stamp, frame))
        poses = PoseArray()
        poses.header.stamp, poses.header.frame_id = stamp, frame
        markers = MarkerArray(markers=[Marker(action=Marker.DELETEALL)])
        objects, matched = named_first(result.objects, self.named_colour)
        if self.named_colour and not matched:
            seen = ", ".join(f"{nearest_colour_word(o.color) or 'grey'} {np.round(o.color, 2).tolist()}"
                             for o in result.objects)
            self.get_logger().warning(f"no perceived object is {self.named_colour} (perceived: {seen or 'none'}): "
                                      "largest object first", throttle_duration_sec=5.0)
        for index, obj in enumerate(objects):
            pose = Pose()
            pose.position.x, pose.position.y, pose.position.z = (float(v) for v in obj.position)
            w, x, y, z = euler2quat(0.0, 0.0, obj.yaw)
            pose.orientation.w, pose.orientation.x, pose.orientation.y, pose.orientation.z = w, x, y, z
            poses.poses.append(pose)
            marker = Marker(type=Marker.CUBE, action=Marker.ADD, id=index, ns="objects", pose=pose)
            marker.header = poses.header
            marker.scale.x, marker.scale.y, marker.scale.z = (float(max(v, 0.005)) for v in obj.size)
            marker.color.r, marker.color.g, marker.color.b = (float(v) for v in obj.color)
            marker.color.a = 0.8
            markers.markers.append(marker)
        self.pub_objects.publish(poses)
        self.pub_markers.publish(markers)


def main(args: list[str] | None = None) -> None:
    """Entry point: ``perception_node``."""
    run_node(PerceptionNode, args)


if __name__ == "__main__":
    main()
