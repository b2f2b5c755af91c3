"""Safety node (v0): the only path from proposers to the arm's controller.

Checks each JointTrajectory on ``/policy/joint_trajectory`` against the URDF's
position and velocity limits, stamps and the measured state
(``armpilot.safety.limits``); forwards accepted chunks (points already past
dropped) to ``/arm_controller/joint_trajectory``; on a rejection it sends one
hold command at the measured position, counts the reason and logs it.
Publishes counts by reason on ``/diagnostics`` at 1 Hz.
"""

from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from armpilot.paths import urdf_path
from armpilot.rejections import RejectionLog
from armpilot.robot import ArmModel, JointLimits
from armpilot.ros_nodes import conversions as conv
from armpilot.ros_nodes import qos, topics
from armpilot.ros_nodes.lifecycle import run_node
from armpilot.ros_nodes.params import declare_config
from armpilot.safety.limits import SafetyConfig, check_chunk


def limits_in_order(arm: ArmModel, names: tuple[str, ...]) -> JointLimits:
    """The URDF's limits reordered to ``names`` (KeyError naming an unknown joint)."""
    unknown = [n for n in names if n not in arm.joint_names]
    if unknown:
        raise KeyError(f"joint_names {unknown} are not controlled joints of {arm.urdf}")
    idx = [arm.joint_names.index(n) for n in names]
    lim = arm.limits
    return JointLimits(names, lim.lower[idx], lim.upper[idx], lim.velocity[idx], lim.effort[idx])


class SafetyNode(Node):
    """Thin shell over ``check_chunk``."""

    def __init__(self) -> None:
        super().__init__("safety")
        self.config = declare_config(self, SafetyConfig)
        self.limits = limits_in_order(ArmModel(urdf_path()), self.config.joint_names)
        self.measured: np.ndarray | None = None
        self.measured_stamp = 0.0
        self.accepted = 0
        self.rejections = RejectionLog()
        self.pub_command = self.create_publisher(JointTrajectory, topics.CONTROLLER_COMMAND, qos.COMMAND_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, qos.STATE_QOS)
        self.create_subscription(JointState, topics.JOINT_STATES, self.on_joint_state, qos.STATE_QOS)
        self.create_subscription(JointTrajectory, topics.POLICY_COMMAND, self.on_proposal, qos.COMMAND_QOS)
        self.create_timer(1.0, self.publish_diagnostics)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_joint_state(self, msg: JointState) -> None:
        names, positions, _, _ = conv.joint_state_from_msg(msg)
        try:
            self.measured = positions[[names.index(n) for n in self.config.joint_names]].copy()
            self.measured_stamp = conv.stamp_to_sec(msg.header.stamp)
        except ValueError:
            self.get_logger().warning(
                f"/joint_states lacks some of {self.config.joint_names}: {names}", throttle_duration_sec=2.0
            )

    def fresh_measurement(self, now: float) -> np.ndarray | None:
        if self.measured is None or now - self.measured_stamp > self.config.joint_state_timeout:
            return None
        return self.measured

    def on_proposal(self, msg: JointTrajectory) -> None:
        now = self.now()
        try:
            arrays = conv.joint_trajectory_from_msg(msg)
        except conv.ConversionError as error:
            self.reject("malformed", str(error))
            return
        verdict = check_chunk(
            self.config, self.limits, arrays.joint_names, arrays.stamp_sec, arrays.times, arrays.positions,
            now, self.fresh_measurement(now), arrays.velocities,
        )
        if not verdict.accepted:
            self.reject(verdict.reason, verdict.detail)
            return
        self.accepted += 1
        self.pub_command.publish(
            conv.joint_trajectory_to_msg(
                self.config.joint_names, verdict.times, verdict.positions, None, conv.sec_to_stamp(verdict.stamp)
            )
        )

    def reject(self, reason: str, detail: str) -> None:
        """Count, log, and hold the arm where it is (if its position is known)."""
        if self.rejections.record(reason, detail):
            self.get_logger().warning(
                f"rejected chunk ({self.rejections.counts[reason]} so far for this reason), holding: {reason}: {detail}"
            )
        if self.measured is not None:
            hold = self.measured[None, :]
            times = np.array([self.config.hold_duration])
            self.pub_command.publish(conv.joint_trajectory_to_msg(self.config.joint_names, times, hold, None, None))

    def publish_diagnostics(self) -> None:
        counts = {"accepted": self.accepted, **self.rejections.counts}
        status = DiagnosticStatus(
            level=DiagnosticStatus.OK if self.rejections.total() == 0 else DiagnosticStatus.WARN,
            name="armpilot: safety",
            hardware_id="armpilot",
            message=f"last rejection: {self.rejections.last}" if self.rejections.last else "all chunks accepted",
            values=[KeyValue(key=k, value=str(v)) for k, v in sorted(counts.items())],
        )
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)


def main(args: list[str] | None = None) -> None:
    """Entry point: ``safety_node``."""
    run_node(SafetyNode, args)


if __name__ == "__main__":
    main()
