"""Sim node: the MuJoCo arm, its RGB-D camera and the task, speaking what a real setup speaks.

Publishes ``/joint_states``, ``/clock``, realsense2_camera-named colour, aligned
depth (16UC1 mm) and camera_info, ``~/privileged/object_poses`` (ground truth:
[object, goal], for experts and evaluation only), ``~/task_success`` and
``~/episode`` (JSON, latched), the episode's goal on ``/policy/goal`` and, for
the language task, its instruction on ``/policy/instruction`` (as a user would
give them); follows ``/arm_controller/joint_trajectory`` (the sim graphs
remap it to ``/sim/arm_controller/joint_trajectory``);
``~/reset`` (std_srvs/Trigger) starts an episode with the ``seed`` parameter. A gripper on a
controller of its own follows the profile's ``gripper.command`` topic (``trajectory`` or ``position``).
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from geometry_msgs.msg import Pose, PoseArray, PoseStamped  # noqa: E402
from rclpy._rclpy_pybind11 import RCLError  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, JointState  # noqa: E402
from std_msgs.msg import Bool, Float64MultiArray, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from armpilot.control.trajectory import TrajectoryError  # noqa: E402
from armpilot.gripper_profile import GripperInterface  # noqa: E402
from armpilot.urdf_source import RobotDescriptionError  # noqa: E402
from armpilot.rejections import RejectionLog  # noqa: E402
from armpilot.ros_nodes import conversions as conv  # noqa: E402
from armpilot.ros_nodes import qos, topics  # noqa: E402
from armpilot.ros_nodes.lifecycle import run_node  # noqa: E402
from armpilot.ros_nodes.params import declare_config  # noqa: E402
from armpilot.sim.config import SimConfig  # noqa: E402
from armpilot.sim.episode_message import encode_episode  # noqa: E402
from armpilot.sim.runner import SimRunner  # noqa: E402
from armpilot.perception.geometry import camera_frame_name  # noqa: E402
from armpilot.robot import ArmModel  # noqa: E402
from armpilot.sim.scene import CameraConfig, facing_away  # noqa: E402
from armpilot.sim.scenes import variation_summary  # noqa: E402
from armpilot.ros_nodes.robot_loading import load_robot  # noqa: E402
from armpilot.sim.world import SimWorld  # noqa: E402
from armpilot.tasks import task_for_robot  # noqa: E402

#: Wall-clock lag (s) after which the loop stops catching up and re-synchronises.
MAX_LAG = 0.25


class SimNode(Node):
    """Thin shell over ``SimRunner``: converts, calls, publishes."""

    def __init__(self) -> None:
        super().__init__("sim")
        self.dropped_messages = 0
        self.config = declare_config(self, SimConfig, dynamic=("seed",))
        cfg = self.config
        camera = CameraConfig(cfg.width, cfg.height, cfg.fovy_deg)
        profile = load_robot(self)
        world = SimWorld(profile, task_for_robot(cfg.task, profile), camera, render=cfg.render, scene=cfg.scene)
        self.runner = SimRunner(world)
        self.runner.reset(cfg.seed)
        self.tick_steps = max(1, round(1.0 / (cfg.joint_state_rate_hz * world.timestep)))
        self.tick_dt = self.tick_steps * world.timestep
        self.camera_every = max(1, round(1.0 / (cfg.camera_rate_hz * self.tick_dt)))
        self.privileged_every = max(1, round(1.0 / (cfg.privileged_rate_hz * self.tick_dt)))
        self.success_every = max(1, round(0.1 / self.tick_dt))
        self.fx, self.fy, self.cx, self.cy = world.intrinsics()
        self.pub_joints = self.create_publisher(JointState, topics.JOINT_STATES, qos.STATE_QOS)
        self.pub_clock = self.create_publisher(Clock, topics.CLOCK, qos.CLOCK_QOS)
        self.pub_color = self.create_publisher(Image, topics.COLOR_IMAGE, qos.CAMERA_QOS)
        self.pub_color_info = self.create_publisher(CameraInfo, topics.COLOR_INFO, qos.CAMERA_QOS)
        self.pub_depth = self.create_publisher(Image, topics.DEPTH_IMAGE, qos.CAMERA_QOS)
        self.pub_depth_info = self.create_publisher(CameraInfo, topics.DEPTH_INFO, qos.CAMERA_QOS)
        self.pub_objects = self.create_publisher(PoseArray, topics.PRIVILEGED_OBJECTS, qos.STATE_QOS)
        self.pub_success = self.create_publisher(Bool, topics.TASK_SUCCESS, qos.STATE_QOS)
        self.pub_episode = self.create_publisher(String, topics.EPISODE, qos.LATCHED_QOS)
        self.pub_goal = self.create_publisher(PoseStamped, topics.POLICY_GOAL, qos.LATCHED_QOS)
        self.pub_instruction = self.create_publisher(String, topics.POLICY_INSTRUCTION, qos.LATCHED_QOS)
        self.base_frame = profile.base_frame
        self.create_subscription(JointTrajectory, topics.CONTROLLER_COMMAND, self.on_trajectory, qos.COMMAND_QOS)
        self.subscribe_gripper(profile)
        self.create_service(Trigger, topics.RESET_SERVICE, self.on_reset)
        self.ticks = 0
        self.rejections = RejectionLog()
        self.publish_episode()
        arm = ArmModel(profile)
        if problem := facing_away(arm):
            self.get_logger().warning(problem)
        self.camera_frame = camera_frame_name(arm, cfg.camera_frame) or cfg.camera_frame  # the frame it renders from
        self.get_logger().info(
            f"task '{cfg.task}', joint states every {self.tick_dt * 1e3:.0f} ms, camera "
            f"{cfg.width}x{cfg.height} every {self.camera_every} ticks, render={cfg.render}"
        )

    def on_trajectory(self, msg: JointTrajectory) -> None:
        """Follow a trajectory, or reject it with a logged reason and keep going."""
        try:
            arrays = conv.joint_trajectory_from_msg(msg)
            self.runner.command(arrays.joint_names, arrays.stamp_sec, arrays.times, arrays.positions, arrays.velocities)
        except TrajectoryError as error:
            self.log_rejection(error.reason, error.detail)
        except conv.ConversionError as error:
            self.log_rejection("malformed", str(error))

    def subscribe_gripper(self, profile) -> None:
        """Play the controller of a gripper armpilot commands on a controller of its own."""
        if not profile.gripper.commanded_separately:
            return
        spec = profile.gripper.command
        if spec.interface is GripperInterface.TRAJECTORY:
            self.create_subscription(JointTrajectory, spec.topic, self.on_gripper_trajectory, qos.COMMAND_QOS)
        elif spec.interface is GripperInterface.POSITION:
            self.create_subscription(Float64MultiArray, spec.topic, self.on_gripper_position, qos.COMMAND_QOS)
        else:
            raise RobotDescriptionError(
                f"robot '{profile.name}': the sim plays a separate gripper's controller for the 'trajectory' and "
                "'position' interfaces, not 'action' (a GripperCommand action server); simulate this arm with a copy "
                "of its profile whose gripper command says interface: position")

    def on_gripper_trajectory(self, msg: JointTrajectory) -> None:
        try:
            arrays = conv.joint_trajectory_from_msg(msg)
            self.runner.command_gripper(arrays.joint_names, arrays.stamp_sec, arrays.times, arrays.positions)
        except TrajectoryError as error:
            self.log_rejection(error.reason, f"gripper: {error.detail}")
        except conv.ConversionError as error:
            self.log_rejection("malformed", f"gripper: {error}")

    def on_gripper_position(self, msg: Float64MultiArray) -> None:
        """A forward command controller's one position: the gripper's servo target from now."""
        if len(msg.data) != 1 or not np.isfinite(msg.data[0]):
            self.log_rejection("malformed", f"gripper: {len(msg.data)} values, expected one finite position")
            return
        try:
            self.runner.move_gripper_to(float(msg.data[0]))
        except TrajectoryError as error:
            self.log_rejection(error.reason, f"gripper: {error.detail}")

    def log_rejection(self, reason: str, detail: str) -> None:
        """Count a rejected trajectory; log it unless this reason was logged under a second ago."""
        if self.rejections.record(reason, detail):
            self.get_logger().warning(
                f"rejected trajectory ({self.rejections.counts[reason]} so far for this reason), "
                f"holding: {reason}: {detail}"
            )

    def on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Start a new episode with the current ``seed`` parameter."""
        seed = int(self.get_parameter("seed").value)
        init = self.runner.reset(seed)
        self.publish_episode()
        response.success = True
        response.message = json.dumps(
            {"episode": self.runner.episode, "seed": seed, "object": init.object_position.round(4).tolist()}
        )
        return response

    def publish_episode(self) -> None:
        info = encode_episode(self.runner.episode, self.runner.seed, self.config.task, self.runner.episode_start,
                              self.runner.world.goal_position().round(5).tolist(),
                              variation_summary(self.runner.world.variation))
        goal = PoseStamped()  # the sim plays the user who says where the task should end
        conv.set_header(goal, conv.sec_to_stamp(self.runner.episode_start), self.base_frame)
        goal.pose.position.x, goal.pose.position.y, goal.pose.position.z = map(float, self.runner.world.goal_position())
        goal.pose.orientation.w = 1.0
        self.publish(self.pub_goal, goal)
        if self.runner.world.instruction:  # the language task: the sim says which box, as a user would
            self.publish(self.pub_instruction, String(data=self.runner.world.instruction))
        self.publish(self.pub_episode, String(data=info))

    def publish(self, publisher, msg) -> None:
        """Publish like a driver: a failed DDS write (a stalled subscriber filled the transport) drops this
        one sample with an error in the log instead of stopping the simulation."""
        try:
            publisher.publish(msg)
        except RCLError as error:
            if not self.context.ok():  # shutting down (Ctrl-C, SIGTERM): let run_node end the loop
                raise
            self.dropped_messages += 1
            self.get_logger().error(f"dropped a message on {publisher.topic_name} ({self.dropped_messages} so far): "
                                    f"{error}", throttle_duration_sec=2.0)

    def step_once(self) -> None:
        """Advance one control tick and publish what is due."""
        runner = self.runner
        unstable = runner.tick(self.tick_steps)
        if unstable:
            self.get_logger().error(f"episode {runner.episode}: {unstable}")
        self.ticks += 1
        stamp = conv.sec_to_stamp(runner.now)
        self.publish(self.pub_clock, Clock(clock=stamp))
        world = runner.world
        self.publish(self.pub_joints, conv.joint_state_to_msg(*world.joint_state(), stamp))
        if self.ticks % self.privileged_every == 0:
            self.publish_privileged(stamp)
        if self.ticks % self.success_every == 0:
            self.publish(self.pub_success, Bool(data=runner.success()))
        if self.config.render and self.ticks % self.camera_every == 0:
            self.publish_camera(stamp)

    def publish_privileged(self, stamp) -> None:
        world = self.runner.world
        position, quat = world.object_pose()
        msg = PoseArray()
        msg.header.stamp, msg.header.frame_id = stamp, self.base_frame
        for xyz, wxyz in ((position, quat), (world.goal_position(), np.array([1.0, 0, 0, 0]))):
            pose = Pose()
            pose.position.x, pose.position.y, pose.position.z = (float(v) for v in xyz)
            pose.orientation.w, pose.orientation.x, pose.orientation.y, pose.orientation.z = (float(v) for v in wxyz)
            msg.poses.append(pose)
        self.publish(self.pub_objects, msg)

    def publish_camera(self, stamp) -> None:
        cfg = self.config
        color, depth = self.runner.world.render()
        depth_mm = np.round(depth * 1000.0).astype(np.uint16)
        info = conv.camera_info_msg(cfg.width, cfg.height, self.fx, self.fy, self.cx, self.cy, stamp, self.camera_frame)
        self.publish(self.pub_color, conv.image_to_msg(color, "rgb8", stamp, self.camera_frame))
        self.publish(self.pub_color_info, info)
        self.publish(self.pub_depth, conv.image_to_msg(depth_mm, "16UC1", stamp, self.camera_frame))
        self.publish(self.pub_depth_info, info)

    def run(self, executor: SingleThreadedExecutor) -> None:
        """Paced loop: callbacks between ticks, ticks at ``real_time_factor`` x wall time."""
        rtf = self.config.real_time_factor
        wall_per_tick = self.tick_dt / rtf if rtf > 0 else 0.0
        next_tick = time.monotonic()
        while rclpy.ok():
            executor.spin_once(timeout_sec=max(0.0, next_tick - time.monotonic()))
            now = time.monotonic()
            if now < next_tick:
                continue
            self.step_once()
            next_tick += wall_per_tick
            if now - next_tick > MAX_LAG:
                self.get_logger().warning(
                    f"running {now - next_tick:.2f} s behind real time; re-synchronising",
                    throttle_duration_sec=5.0,
                )
                next_tick = now


def main(args: list[str] | None = None) -> None:
    """Entry point: ``sim_node --ros-args -p task:=pick``."""
    run_node(SimNode, args, spin=lambda node, executor: node.run(executor),
             cleanup=lambda node: node.runner.world.close())


if __name__ == "__main__":
    main()
