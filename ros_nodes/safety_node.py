"""Safety/verifier node: the only path from proposers to the arm's controller.

Inputs: candidate chunks on ``/policy/candidates`` (N x H x J table), a single
JointTrajectory on ``/teleop/joint_trajectory``, ``/joint_states``. Output: one
timed JointTrajectory on ``/arm_controller/joint_trajectory``. Picks the best
safe candidate (``armpilot.safety.verifier``), enforces limits, workspace and
stamps (``armpilot.safety.limits``), and holds the arm when the executing
chunk goes stale, joint states stop, or the e-stop latches
(``armpilot.safety.supervisor``). A hold is a decelerating stop within the
profile's acceleration and jerk limits from the state the controller follows
(``armpilot.safety.stopping``). A rejected proposal never moves the arm: the
verified chunk already executing continues until ``proposal_timeout``, then
the arm holds. The arm is the robot profile's (``robot`` parameter); a
profile the URDF does not support, or ``/joint_states`` without a profile
joint, is refused with the joint named. Services: ``~/estop``, ``~/reset`` (std_srvs/Trigger), ``~/enable``
(std_srvs/SetBool). Diagnostics on ``/diagnostics`` at 1 Hz.
"""

from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import JointState, PointCloud2
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from armpilot.rejections import RejectionLog
from armpilot.robot import ArmModel
from armpilot.robot_profile import RobotProfile
from armpilot.ros_nodes import conversions as conv
from armpilot.ros_nodes import qos, topics
from armpilot.ros_nodes.candidate_conversions import candidates_from_msg
from armpilot.ros_nodes.lifecycle import run_node
from armpilot.ros_nodes.params import declare_config
from armpilot.ros_nodes.robot_loading import load_robot
from armpilot.ros_nodes.safety_diagnostics import diagnostics_message
from armpilot.safety.limits import SafetyConfig, Verdict, check_chunk
from armpilot.safety.state_tracking import ArmState, controller_joints, hold_command
from armpilot.safety.stopping import crosses_limit
from armpilot.safety.supervisor import Supervisor
from armpilot.safety.verifier import VerifierConfig, sample_chunk, select
from armpilot.safety.workspace import WorkspaceChecker

#: Seconds the shutdown hold waits for the controller's acknowledgement (DDS acks it within ~0.4 s).
HOLD_ACK_TIMEOUT_S = 0.6


class SafetyNode(Node):
    """Thin shell over the verifier, the checks and the supervisor."""

    def __init__(self) -> None:
        super().__init__("safety")
        self.config = declare_config(self, SafetyConfig)
        self.verifier = declare_config(self, VerifierConfig)
        cfg = self.config
        self.profile: RobotProfile = load_robot(self)
        arm = ArmModel(self.profile)
        self.joint_names = controller_joints(self.profile, cfg.joint_names)
        self.limits = arm.limits.reordered(self.joint_names)
        self.state = ArmState(self.joint_names, tuple(n for n in self.profile.joints if n not in self.joint_names)
                              + arm.passive_joints)
        self.workspace = WorkspaceChecker(arm, table_clearance=cfg.table_clearance, self_collision=cfg.self_collision)
        self.get_logger().info(f"controller joint order {list(self.joint_names)}; /joint_states must carry "
                               f"{list(self.state.required)}")
        self.supervisor = Supervisor(cfg.proposal_timeout, cfg.joint_state_timeout)
        self.rng = np.random.default_rng(0)
        self.learned = None
        if self.verifier.learned_scorer:
            from armpilot.policies.scorer import as_verifier_scorer, load_scorer

            self.learned = as_verifier_scorer(load_scorer(self.verifier.learned_scorer))
            self.get_logger().info(f"learned scorer from {self.verifier.learned_scorer}, "
                                   f"weight {self.verifier.weight_learned}")
        self.executing: tuple[float, np.ndarray, np.ndarray] | None = None
        self.accepted = 0
        self.candidates_seen = 0
        self.rejections = RejectionLog()
        self.pub_command = self.create_publisher(JointTrajectory, topics.CONTROLLER_COMMAND, qos.COMMAND_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, qos.STATE_QOS)
        self.create_subscription(JointState, topics.JOINT_STATES, self.on_joint_state, qos.STATE_QOS)
        self.create_subscription(PointCloud2, topics.POLICY_CANDIDATES, self.on_candidates, qos.COMMAND_QOS)
        self.create_subscription(JointTrajectory, topics.TELEOP_COMMAND, self.on_trajectory, qos.COMMAND_QOS)
        self.create_service(Trigger, topics.ESTOP_SERVICE, self.on_estop)
        self.create_service(Trigger, topics.ESTOP_RESET_SERVICE, self.on_reset)
        self.create_service(SetBool, topics.ENABLE_SERVICE, self.on_enable)
        self.create_timer(0.02, self.on_watchdog)
        self.create_timer(1.0, self.publish_diagnostics)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    @property
    def measured(self) -> np.ndarray | None:
        return self.state.positions

    def on_joint_state(self, msg: JointState) -> None:
        names, positions, velocities, _ = conv.joint_state_from_msg(msg)
        problem = self.state.update(names, positions, velocities)
        if problem is not None:
            self.reject("joint_state_mismatch", problem)
            return
        self.supervisor.joint_state(self.now())

    def on_candidates(self, msg: PointCloud2) -> None:
        now = self.now()
        try:
            table = candidates_from_msg(msg)
        except conv.ConversionError as error:
            self.reject("malformed", str(error))
            return
        self.candidates_seen += len(table.positions)
        if self.refused(now):
            return
        executing = None
        if self.executing is not None:
            executing = sample_chunk(*self.executing, table.stamp_sec + table.times)
        selection = select(self.verifier, self.config, self.limits, table.joint_names, table.stamp_sec, table.times,
                           table.positions, now, self.measured, executing, self.workspace, self.rng, self.learned,
                           self.state.passive, self.profile.gripper.joint)
        self.forward(selection.verdict, now)

    def on_trajectory(self, msg: JointTrajectory) -> None:
        now = self.now()
        try:
            arrays = conv.joint_trajectory_from_msg(msg)
        except conv.ConversionError as error:
            self.reject("malformed", str(error))
            return
        if self.refused(now):
            return
        verdict = check_chunk(self.config, self.limits, arrays.joint_names, arrays.stamp_sec, arrays.times,
                              arrays.positions, now, self.measured, arrays.velocities, self.workspace,
                              self.state.passive)
        self.forward(verdict, now)

    def refused(self, now: float) -> bool:
        refusal = self.supervisor.refusal(now)
        if refusal is not None:
            self.reject(*refusal)
        return refusal is not None

    def forward(self, verdict: Verdict, now: float) -> None:
        """Send an accepted chunk to the controller; count and log a rejected one."""
        if not verdict.accepted:
            self.reject(verdict.reason, verdict.detail)
            return
        self.accepted += 1
        self.executing = (verdict.stamp, verdict.times, verdict.positions)
        self.supervisor.accepted(now, verdict.stamp + float(verdict.times[-1]))
        self.pub_command.publish(conv.joint_trajectory_to_msg(
            self.joint_names, verdict.times, verdict.positions, None, conv.sec_to_stamp(verdict.stamp)))

    def reject(self, reason: str, detail: str) -> None:
        if self.rejections.record(reason, detail):
            self.get_logger().warning(f"rejected ({self.rejections.counts[reason]} so far for this reason): "
                                      f"{reason}: {detail}")

    def hold(self, reason: str, detail: str) -> None:
        """Brake to rest within the acceleration and jerk limits (one command) and say why."""
        self.rejections.record(reason, detail)
        self.get_logger().warning(f"holding the arm: {reason}: {detail}")
        stop = hold_command(self.state, self.limits, self.executing, self.now(), self.config.tracking_allowance)
        self.executing = None
        self.supervisor.held()
        if stop is not None and np.any(crossing := crosses_limit(stop, self.limits.lower, self.limits.upper)):
            joints = [n for n, c in zip(self.joint_names, crossing) if c]
            self.get_logger().error(f"the stop of {joints} passes their position limits: the arm was moving "
                                    f"toward them faster than it can brake (moved by something else?)")
        if stop is not None:
            self.pub_command.publish(conv.joint_trajectory_to_msg(
                self.joint_names, stop.times, stop.positions, stop.velocities, None))

    def hold_on_stop(self) -> None:
        """The last command before the node exits: a hold, acknowledged by the controller or 0.5 s spent waiting."""
        self.hold("shutdown", "the safety node is stopping; nothing passes to the controller after this hold")
        if not self.pub_command.wait_for_all_acked(Duration(seconds=HOLD_ACK_TIMEOUT_S)):
            self.get_logger().info(f"the shutdown hold was not acknowledged within {HOLD_ACK_TIMEOUT_S} s "
                                   "(no controller, or it is stopping too)")

    def on_watchdog(self) -> None:
        reason = self.supervisor.watchdog(self.now())
        if reason is not None:
            self.hold(*reason)

    def on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.supervisor.estop("e-stop service called")
        self.hold("estop", "e-stop latched; only the reset service clears it")
        response.success, response.message = True, "e-stop latched; call reset to clear"
        return response

    def on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.supervisor.reset()
        self.get_logger().info("e-stop cleared")
        response.success, response.message = True, "e-stop cleared"
        return response

    def on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.supervisor.set_enabled(bool(request.data))
        if not request.data:
            self.hold("disabled", "disabled by the enable service")
        response.success, response.message = True, "enabled" if request.data else "disabled"
        return response

    def publish_diagnostics(self) -> None:
        msg = diagnostics_message(self.supervisor.state, self.accepted, self.candidates_seen, self.rejections)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)


def main(args: list[str] | None = None) -> None:
    """Entry point: ``safety_node``."""
    run_node(SafetyNode, args, on_stop=lambda node: node.hold_on_stop())  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
