"""Teleop node: keyboard, joystick (/joy) or SpaceMouse -> short chunks into the safety node.

Every tick (``rate_hz``) the input's twist is integrated with differential IK
from the last commanded positions (``armpilot.teleop.streamer``) and a timed
JointTrajectory of ``horizon_points`` points is published on
``/teleop/joint_trajectory``, stamped with the latest ``/joint_states`` stamp.
While idle nothing is published and the safety node holds the arm. Episode
keys/buttons call the recorder's ``/recorder/start|stop|discard`` services
(std_srvs/Trigger) without blocking.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import rclpy
from armpilot.ros_nodes import conversions as conv
from armpilot.ros_nodes import qos, topics
from armpilot.ros_nodes.lifecycle import run_node
from armpilot.ros_nodes.params import declare_config
from armpilot.ros_nodes.robot_loading import load_robot
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState, Joy
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from armpilot.robot import ArmModel
from armpilot.teleop.diff_ik import DiffIk, DiffIkConfig
from armpilot.teleop.inputs import (
    DISCARD,
    KEYBOARD_HELP,
    START,
    STOP,
    JoyMapper,
    JoyMapping,
    KeyboardMapper,
    SpaceMouseMapper,
    SpaceMouseUnavailable,
    TeleopCommand,
    open_spacemouse,
)
from armpilot.teleop.streamer import ChunkStreamer, TeleopConfig
from armpilot.teleop.terminal import KeyReader, NotATerminal

RECORDER_SERVICES = {START: topics.RECORDER_START, STOP: topics.RECORDER_STOP, DISCARD: topics.RECORDER_DISCARD}
JOINT_STATE_MAX_AGE = 0.5  # s: older measured positions are not used to stream


class TeleopNode(Node):
    """Thin shell: reads the device, runs the streamer, publishes chunks, calls the recorder."""

    def __init__(self) -> None:
        super().__init__("teleop")
        self.config = declare_config(self, TeleopConfig)
        ik_config = declare_config(self, DiffIkConfig)
        self.joy_mapping = declare_config(self, JoyMapping)
        profile = load_robot(self)
        self.streamer = ChunkStreamer(DiffIk(ArmModel(profile), ik_config), self.config)
        # the streamer's joint vector: arm joints, then the gripper slot (a placeholder without one)
        self.names = profile.arm_joints + ((profile.gripper.joint,) if profile.gripper.joint in profile.joints else ())
        self.placeholder_gripper = len(self.names) == len(profile.arm_joints)
        self.latest_joints: dict[str, float] = {}  # each joint's last reading (several drivers may publish)
        self.measured: np.ndarray | None = None
        self.measured_stamp = None
        self.measured_at = 0.0
        self.twist = np.zeros(6)
        self.twist_at = 0.0
        self.pending: list[TeleopCommand] = []
        self.quit_requested = False
        self.keys: KeyReader | None = None
        self.keyboard: KeyboardMapper | None = None
        self.spacemouse = None
        self.spacemouse_mapper: SpaceMouseMapper | None = None
        self.device = self.config.device
        self._open_device()
        self.pub = self.create_publisher(JointTrajectory, topics.TELEOP_COMMAND, qos.COMMAND_QOS)
        self.create_subscription(JointState, topics.JOINT_STATES, self.on_joint_state, qos.STATE_QOS)
        if self.device == "joy":
            self.joy = JoyMapper(self.joy_mapping)
            self.create_subscription(Joy, topics.JOY, self.on_joy, qos.SENSOR_QOS)
        self.recorder = {event: self.create_client(Trigger, name) for event, name in RECORDER_SERVICES.items()}
        self.create_timer(1.0 / self.config.rate_hz, self.on_tick)
        self.get_logger().info(f"teleop with device '{self.device}' at {self.config.rate_hz} Hz, "
                               f"{self.config.linear_speed} m/s, {self.config.angular_speed} rad/s")

    def _open_device(self) -> None:
        if self.device == "keyboard":
            try:
                self.keys = KeyReader().open()
            except NotATerminal as error:
                self.get_logger().warning(f"{error} Falling back to device 'joy' (listening on {topics.JOY}).")
                self.device = "joy"
                return
            self.keyboard = KeyboardMapper(self.config.key_hold_s)
            print(KEYBOARD_HELP, flush=True)
        elif self.device == "spacemouse":
            self.spacemouse = open_spacemouse()
            self.spacemouse_mapper = SpaceMouseMapper(self.joy_mapping.joy_deadzone)

    def close(self) -> None:
        """Restore the terminal (keyboard) and close the SpaceMouse."""
        if self.keys is not None:
            self.keys.close()
        if self.spacemouse is not None and hasattr(self.spacemouse, "close"):
            self.spacemouse.close()

    def on_joint_state(self, msg: JointState) -> None:
        try:  # the arm's driver and a separate gripper's may each publish their own
            measured = conv.positions_merged(msg, self.names, self.latest_joints)
        except conv.ConversionError:
            return
        if measured is None:
            return
        if not np.all(np.isfinite(measured)):  # NaN here reaches the IK (LinAlgError) in on_tick
            self.get_logger().warning(f"{topics.JOINT_STATES}: non-finite position; ignored", throttle_duration_sec=2.0)
            return
        self.measured = np.append(measured, 0.0) if self.placeholder_gripper else measured.copy()
        self.measured_stamp = msg.header.stamp
        self.measured_at = time.monotonic()

    def on_joy(self, msg: Joy) -> None:
        command = self.joy.command(list(msg.axes), list(msg.buttons))
        self.twist, self.twist_at = command.twist, time.monotonic()
        self.pending.append(command)

    def read_input(self) -> np.ndarray:
        """Poll the device; queue its discrete actions; return the unit twist (6,)."""
        now = time.monotonic()
        if self.keys is not None and self.keyboard is not None:
            command = self.keyboard.command(self.keys.read(), now)
            self.pending.append(command)
            return command.twist
        if self.spacemouse is not None and self.spacemouse_mapper is not None:
            command = self.spacemouse_mapper.command(self.spacemouse.read())
            self.pending.append(command)
            return command.twist
        return self.twist if now - self.twist_at <= self.config.input_timeout else np.zeros(6)

    def on_tick(self) -> None:
        twist = self.read_input()
        pending, self.pending = self.pending, []
        fresh = self.measured is not None and time.monotonic() - self.measured_at <= JOINT_STATE_MAX_AGE
        for command in pending:
            self.handle_discrete(command)
        if not fresh:
            if np.any(twist):
                self.get_logger().warning(f"no fresh {topics.JOINT_STATES}: not moving", throttle_duration_sec=2.0)
            return
        points = self.streamer.tick(twist, self.measured)
        if points is not None:
            arm_points = points[:, : len(self.names)]
            self.pub.publish(conv.joint_trajectory_to_msg(self.names, self.config.times, arm_points, None,
                                                          self.measured_stamp))

    def handle_discrete(self, command: TeleopCommand) -> None:
        if self.measured is not None:
            self.streamer.apply(command, self.measured)
        if command.speed_steps:
            self.get_logger().info(f"speed scale {self.streamer.speed_scale:.2f}")
        for event in command.events:
            self.call_recorder(event)
        if command.show_help:
            print(KEYBOARD_HELP, flush=True)
        if command.quit:
            self.quit_requested = True

    def call_recorder(self, event: str) -> None:
        client, name = self.recorder[event], RECORDER_SERVICES[event]
        if not client.service_is_ready():
            self.get_logger().warning(f"recorder not running: service {name} is not available "
                                      "(start it with `recorder_node` or `ros2 run armpilot recorder_node`)")
            return
        future = client.call_async(Trigger.Request())

        def done(f) -> None:
            response = f.result()
            if response is None:
                self.get_logger().error(f"{name} failed: {f.exception()}")
            elif response.success:
                self.get_logger().info(f"{name}: {response.message}")
            else:
                self.get_logger().warning(f"{name} refused: {response.message}")

        future.add_done_callback(done)


def _spin(node: TeleopNode, executor: SingleThreadedExecutor) -> None:
    while rclpy.ok() and not node.quit_requested:
        executor.spin_once(timeout_sec=0.1)


def main(args: list[str] | None = None) -> None:
    """Entry point: ``teleop_node`` (``--ros-args -p device:=keyboard|joy|spacemouse``)."""
    try:
        run_node(TeleopNode, args, spin=_spin, cleanup=lambda node: node.close())
    except SpaceMouseUnavailable as error:
        print(f"teleop_node: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
