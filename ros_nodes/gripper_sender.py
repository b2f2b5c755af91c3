"""The safety node's output to a gripper on a controller of its own (the profile's ``gripper.command``).

``trajectory``: trajectory_msgs/JointTrajectory (a joint_trajectory_controller for the gripper); ``position``:
std_msgs/Float64MultiArray (forward_command_controller); ``action``: control_msgs/action/GripperCommand
(GripperActionController), needing control_msgs (a ROS install has it; PyPI has no wheel). What is sent when:
``armpilot/safety/gripper_relay.py``.
"""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from armpilot.gripper_profile import GripperInterface
from armpilot.robot_profile import RobotProfile
from armpilot.ros_nodes import conversions as conv
from armpilot.ros_nodes import qos
from armpilot.robot import JointLimits
from armpilot.safety.gripper_relay import GripperLimits, GripperStart, GripperTimeline
from armpilot.urdf_source import RobotDescriptionError


def gripper_action_type():
    """control_msgs' GripperCommand action.

    Raises:
        RobotDescriptionError: control_msgs is not installed, with what to install or configure instead.
    """
    try:
        from control_msgs.action import GripperCommand
    except ImportError as error:
        raise RobotDescriptionError(
            "gripper command interface 'action' sends control_msgs/action/GripperCommand goals, and control_msgs is "
            f"not installed ({error}); install it (apt install ros-$ROS_DISTRO-control-msgs) or command the gripper "
            "through a forward_command_controller ('position') or a joint_trajectory_controller ('trajectory')"
        ) from error
    return GripperCommand


class GripperSender:
    """Sends a separate gripper's commands from ``node``; ``None`` from ``for_profile`` when there is none."""

    def __init__(self, node: Node, profile: RobotProfile, enforced: JointLimits) -> None:
        gripper, spec = profile.gripper, profile.gripper.command
        assert spec is not None
        self.joint, self.interface, self.max_effort = gripper.joint, spec.interface, spec.max_effort
        self.limits = GripperLimits.of(gripper.joint, enforced)  # as the safety node enforces them
        self.timeline = GripperTimeline(spec.deadband * abs(gripper.open - gripper.closed), self.limits.velocity)
        self.action_type = None
        if spec.interface is GripperInterface.TRAJECTORY:
            self.publisher = node.create_publisher(JointTrajectory, spec.topic, qos.COMMAND_QOS)
        elif spec.interface is GripperInterface.POSITION:
            self.publisher = node.create_publisher(Float64MultiArray, spec.topic, qos.COMMAND_QOS)
        else:
            from rclpy.action import ActionClient

            self.action_type = gripper_action_type()
            self.publisher = ActionClient(node, self.action_type, spec.topic)
        self.topic, self.logger = spec.topic, node.get_logger()
        node.get_logger().info(f"gripper {self.joint}: commanded on {spec.topic} ({spec.interface.value})")

    @classmethod
    def for_profile(cls, node: Node, profile: RobotProfile, enforced: JointLimits) -> "GripperSender | None":
        """The sender for ``profile``'s separately commanded gripper, ``enforced``: every profile joint's limits as
        the safety node enforces them (velocity_scale applied)."""
        return cls(node, profile, enforced) if profile.gripper.commanded_separately else None

    def start(self, now: float, stamp: float, times: np.ndarray, measured: float | None,
              start_tolerance: float) -> GripperStart | None:
        """Where a proposal stamped ``stamp`` with points at ``times`` (P,) s must start from: between the gripper's
        command now and its ``measured`` position, or the measured position (with ``start_tolerance``) before any
        command; None when neither is known."""
        commanded = self.timeline.at(now)
        lead = (stamp or now) + np.asarray(times, float) - now
        if commanded is None:
            return None if measured is None else GripperStart(float(measured), start_tolerance, lead)
        return GripperStart(commanded, 0.0, lead, None if measured is None else float(measured))

    def chunk(self, stamp: float, times: np.ndarray, column: np.ndarray, now: float,
              measured: float | None = None) -> None:
        """An accepted chunk's gripper column (P,) at ``stamp + times`` s (stamp 0: ``now``), sent at ``now`` as the
        timeline takes it over (from the command, or ``measured`` before any; clipped to the velocity limit): a
        trajectory goes out now (its points still ahead), a position or action target as the timeline reaches it
        (``tick``)."""
        stamp = stamp or now
        self.timeline.follow(stamp, times, column, now, measured)
        absolute, positions = self.timeline.ahead(now)
        if self.interface is GripperInterface.TRAJECTORY and len(absolute):
            self.publisher.publish(conv.joint_trajectory_to_msg(
                (self.joint,), absolute - stamp, positions[:, None], None, conv.sec_to_stamp(stamp)))

    def tick(self, now: float) -> None:
        """Position and action: send the timeline's target when it moved past the deadband."""
        if self.interface is not GripperInterface.TRAJECTORY and (target := self.timeline.due(now)) is not None:
            self.send_target(target)

    def hold(self, now: float) -> None:
        """Freeze the gripper where its command is now (nothing before any chunk): a trajectory's value now, sent
        as a one-point trajectory; a position or action target stays the last one sent."""
        if self.interface is GripperInterface.TRAJECTORY:
            if (target := self.timeline.freeze(now)) is not None:
                self.publisher.publish(conv.joint_trajectory_to_msg((self.joint,), np.zeros(1), np.array([[target]]),
                                                                    None, None))
            return
        self.timeline.freeze(now, self.timeline.sent)
        if (target := self.timeline.due(now, exact=True)) is not None:  # a chunk, but no target sent yet
            self.send_target(target)

    def clock_jumped(self) -> None:
        """The node's clock jumped: the timeline's times mean nothing now. A position or action target stays the
        last one sent; a trajectory's command is not known until the next chunk (it starts from the measured
        gripper)."""
        if self.interface is not GripperInterface.TRAJECTORY and self.timeline.sent is not None:
            self.timeline.freeze(0.0, self.timeline.sent)
        else:
            self.timeline.clear()

    def add_column(self, command: JointTrajectory, now: float, measured: float | None = None) -> JointTrajectory:
        """``command`` (the arm's, already sent) with the gripper's column appended, its command at each point's
        time (``now`` for a stamp of 0), ``measured`` (m or rad) before any gripper command: /safety/commanded
        carries every joint a policy proposes. Unchanged when neither is known."""
        if self.timeline.at(now) is None and measured is None:
            return command
        start = conv.stamp_to_sec(command.header.stamp) or now
        command.joint_names.append(self.joint)
        for point in command.points:
            at = self.timeline.at(start + conv.stamp_to_sec(point.time_from_start))
            point.positions.append(float(measured if at is None else at))
            for values in (point.velocities, point.accelerations):
                if len(values):
                    values.append(0.0)
        return command

    def send_target(self, target: float) -> None:
        if self.action_type is None:
            self.publisher.publish(Float64MultiArray(data=[float(target)]))
            return
        if not self.publisher.server_is_ready():  # a goal no server takes is lost: say so, and send it anyway
            self.logger.error(f"gripper: no action server on {self.topic}; its target {target:.4f} is not carried out",
                              throttle_duration_sec=2.0)
        goal = self.action_type.Goal()
        goal.command.position, goal.command.max_effort = float(target), float(self.max_effort)
        self.publisher.send_goal_async(goal)  # a new goal preempts the one before (GripperActionController)
