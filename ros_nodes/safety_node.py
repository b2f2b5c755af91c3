"""Safety/verifier node: the only path from proposers to the arm's controller.

Inputs: candidate chunks on ``/policy/candidates`` (N x H x J table), a single
JointTrajectory on ``/teleop/joint_trajectory``, ``/joint_states``. Output: one
timed JointTrajectory on ``/arm_controller/joint_trajectory`` (and, for a gripper
on a controller of its own, its column to that controller: ``gripper_sender.py``). Picks the best
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
(std_srvs/SetBool). Diagnostics on ``/diagnostics`` at 1 Hz (wall clock).

Verification runs on a thread of its own with a one-place mailbox per input topic (a newer proposal replaces
one from the same topic not yet started: the freshest wins; topics take turns); the executor thread keeps
supervision (joint states, watchdog, e-stop, diagnostics, the proposer and clock watch) running while a table
is checked. (rclpy's multi-threaded executor cut valid throughput under a flood to a fifth here.)
A proposal is decoded only within ``InputBounds``; the e-stop, the supervisor
and the chunk's age are checked again at the moment it is forwarded.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.duration import Duration
from rclpy.clock import Clock, ClockType, JumpThreshold
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from sensor_msgs.msg import JointState, PointCloud2
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from armpilot.rejections import Reason, RejectionLog
from armpilot.robot import ArmModel
from armpilot.robot_profile import RobotProfile
from armpilot.ros_nodes import conversions as conv
from armpilot.ros_nodes import qos, topics
from armpilot.ros_nodes.candidate_conversions import candidates_from_msg
from armpilot.ros_nodes.lifecycle import run_node
from armpilot.ros_nodes.params import declare_config
from armpilot.ros_nodes.robot_loading import load_robot
from armpilot.safety.input_bounds import InputBounds
from armpilot.safety.limits import SafetyConfig, Verdict, check_chunk
from armpilot.safety.state_tracking import ArmState, CommandedPath, controller_joints, hold_on_path, tracking_offset
from armpilot.safety.sending import as_sent
from armpilot.safety.stopping import crosses_limit
from armpilot.safety.supervisor import Supervisor
from armpilot.safety.verifier import VerifierConfig, sample_chunk, select, source_index
from armpilot.safety.workspace import WorkspaceChecker
from armpilot.sim.episode_message import decode_episode
from armpilot.ros_nodes.gripper_sender import GripperSender
from armpilot.ros_nodes.safety_gripper import SafetyGripper
from armpilot.ros_nodes.safety_services import OperatorServices
from armpilot.ros_nodes.safety_timers import (CLOCK_JUMP_FORWARD_S, PROPOSER_CHECK_PERIOD_S, WATCHDOG_PERIOD_S,
                                             SafetyTimers)
from armpilot.safety.gripper_relay import split_gripper, with_gripper
from armpilot.ros_nodes.proposal_decoding import decode_proposal

#: Seconds the shutdown hold waits for the controller's acknowledgement (DDS acks it within ~0.4 s).
HOLD_ACK_TIMEOUT_S = 0.6


class SafetyNode(OperatorServices, SafetyTimers, SafetyGripper, Node):
    """Thin shell over the verifier, the checks and the supervisor."""

    def __init__(self) -> None:
        super().__init__("safety")
        self.config = declare_config(self, SafetyConfig)
        self.verifier = declare_config(self, VerifierConfig)
        self.bounds = declare_config(self, InputBounds)
        cfg = self.config
        self.profile: RobotProfile = load_robot(self)
        arm = ArmModel(self.profile)
        self.joint_names = controller_joints(self.profile, cfg.joint_names)
        self.limits = arm.limits.reordered(self.joint_names)
        self.hold_limits = cfg.enforced(self.limits)  # a hold's braking and return move obey velocity_scale too
        self.state = ArmState(self.joint_names, tuple(n for n in self.profile.joints if n not in self.joint_names)
                              + arm.passive_joints, self.limits.continuous)
        self.workspace = WorkspaceChecker(arm, table_clearance=cfg.table_clearance, self_collision=cfg.self_collision)
        self.gripper = GripperSender.for_profile(self, self.profile, cfg.enforced(arm.limits))
        self.gripper_limits = None if self.gripper is None else self.gripper.limits
        self.get_logger().info(f"controller joint order {list(self.joint_names)}; /joint_states must carry these"
                               + (f", and {list(self.state.passive_joints)} there or in a message of their own"
                                  if self.state.passive_joints else ""))
        self.supervisor = Supervisor(cfg.proposal_timeout, cfg.joint_state_timeout, self.state.passive_joints,
                                     cfg.passive_state_timeout)
        self.rng = np.random.default_rng(0)
        self.learned = None
        if self.verifier.learned_scorer:
            from armpilot.policies.scorer import as_verifier_scorer, load_scorer

            self.learned = as_verifier_scorer(load_scorer(self.verifier.learned_scorer))
            self.get_logger().info(f"learned scorer {self.verifier.learned_scorer} ({self.verifier.weight_learned})")
        self.check_gripper_setup()
        self.lock = threading.RLock()  # state shared by the executor and the verifier thread
        # what the controller follows
        self.path = CommandedPath(tracking_offset(self.limits.velocity, cfg.tracking_allowance), self.limits.continuous)
        self.accepted = 0
        self.candidates_seen = 0
        self.rejections = RejectionLog()
        self.superseded = 0  # proposals replaced by a newer one before their check started
        self.verify_ms_max = 0.0
        self.pending: dict[str, Callable[[], Verdict]] = {}  # input topic -> its latest unchecked proposal
        self.pending_ready = threading.Condition()
        threading.Thread(target=self.verify_loop, name="verifier", daemon=True).start()
        wall = Clock(clock_type=ClockType.STEADY_TIME)
        self.pub_command = self.create_publisher(JointTrajectory, topics.CONTROLLER_COMMAND, qos.COMMAND_QOS)
        self.pub_commanded = self.create_publisher(JointTrajectory, topics.SAFETY_COMMANDED, qos.COMMAND_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, qos.STATE_QOS)
        unheard = qos.report_incompatible(self, topics.JOINT_STATES, qos.STATE_QOS, "publish the arm's joint states "
                                          "reliable (the safety node holds the arm without them)")
        self.joint_states = self.create_subscription(JointState, topics.JOINT_STATES, self.on_joint_state,
                                                     qos.STATE_QOS,
                                                     event_callbacks=SubscriptionEventCallbacks(incompatible_qos=unheard))
        candidates = self.create_subscription(PointCloud2, topics.POLICY_CANDIDATES, self.on_candidates,
                                              qos.COMMAND_QOS, raw=True)
        teleop = self.create_subscription(JointTrajectory, topics.TELEOP_COMMAND, self.on_trajectory,
                                          qos.COMMAND_QOS, raw=True)
        # one publishing node each: the proposal topics, and the controller's (this node alone), as
        # (name as declared: rclpy remaps it when queried, name as remapped: for the report)
        self.single_source_topics = ((topics.POLICY_CANDIDATES, candidates.topic_name),
                                     (topics.TELEOP_COMMAND, teleop.topic_name),
                                     (topics.CONTROLLER_COMMAND, self.pub_command.topic_name))
        if self.gripper is not None and self.gripper.action_type is None:  # its controller's topic: ours alone
            self.single_source_topics += ((self.gripper.topic, self.gripper.publisher.topic_name),)
        self.early_episode: String | None = None  # a latched /sim/episode heard before the first /clock
        if self.get_parameter("use_sim_time").value:  # a simulator's resets; a real arm on wall time has none
            self.create_subscription(String, topics.SIM_EPISODE, self.on_episode, qos.LATCHED_QOS)
        self.create_operator_services()
        self.supervisor.tick(time.monotonic())
        self.create_timer(WATCHDOG_PERIOD_S, self.on_watchdog, clock=wall)
        self.create_timer(1.0, self.publish_diagnostics, clock=wall)
        self.create_timer(PROPOSER_CHECK_PERIOD_S, self.check_proposers, clock=wall)
        self.jump_handle = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=Duration(seconds=CLOCK_JUMP_FORWARD_S), min_backward=Duration(nanoseconds=-1),
                          on_clock_change=False), post_callback=self.on_clock_jump)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_joint_state(self, msg: JointState) -> None:
        if self.early_episode is not None and self.now() > 0.0:
            early, self.early_episode = self.early_episode, None
            self.on_episode(early)
        try:
            names, positions, velocities, _ = conv.joint_state_from_msg(msg)
        except conv.ConversionError as error:  # counted and ignored: the last good state (and its age) stands
            self.reject(Reason.JOINT_STATE_MISMATCH, str(error))
            return
        stamp = conv.stamp_to_sec(msg.header.stamp)
        with self.lock:
            now = self.now()
            problem = self.state.update(names, positions, velocities, stamp or now)
            if problem is not None:
                self.reject(Reason.JOINT_STATE_MISMATCH, problem)
                return
            wall = time.monotonic()  # a separate gripper's own message does not say the arm is alive
            stale = self.supervisor.passive_state(self.state.passive_read, wall, now, stamp)
            if self.state.arm_updated:
                stale = self.supervisor.joint_state(wall, now, stamp)  # a replayed bag, a delay
            if stale:
                self.reject(Reason.STALE, stale)
            if self.state.arm_updated:
                # states stamped far apart (a replayed bag, another clock) are judged as if
                # joint_state_timeout apart: a different pose from them is a jump
                jump = self.state.jump(self.limits, self.config.tracking_allowance, self.config.joint_state_timeout)
                if not jump:
                    self.supervisor.state_consistent()
                elif self.supervisor.state_jumped(jump, now):
                    self.hold(Reason.JOINT_STATE_JUMP, self.supervisor.state_jump_fault(now))

    def on_episode(self, msg: String) -> None:
        """armpilot's simulator reset its world (``Supervisor.sim_reset``); a real arm has no such topic."""
        if self.now() <= 0.0:  # latched, heard before the first /clock: judged with the first joint state after it
            self.early_episode = msg
            return
        try:
            with self.lock:
                if self.supervisor.sim_reset(decode_episode(msg.data)["start"], self.now()):
                    self.path.clear()  # chunks and holds start from the measured arm, as at start-up
                    if self.gripper is not None:  # the sim put the gripper back open: nothing to send till a chunk
                        self.gripper.timeline.clear()
        except ValueError as error:
            self.reject(Reason.MALFORMED, f"{topics.SIM_EPISODE}: {error}")

    def decode(self, raw: bytes, msg_type: type):
        """The message, or None (counted as ``oversized`` / ``malformed``) when it is too large or unreadable."""
        msg, reason, detail = decode_proposal(self.bounds, raw, msg_type)
        if msg is None:
            self.reject(reason, detail)
        return msg

    def on_candidates(self, raw: bytes) -> None:
        msg = self.decode(raw, PointCloud2)
        if msg is None:
            return
        try:
            table = candidates_from_msg(msg)
        except Exception as error:  # noqa: BLE001 - whatever a hostile table raises, the node refuses it and runs on
            self.reject(Reason.MALFORMED, f"{type(error).__name__}: {error}")
            return
        with self.lock:
            self.candidates_seen += len(table.positions)
            if self.refused():
                return
            now, measured, passive = self.now(), self.state.positions, self.state.passive
            if (split := self.split_gripper(table.joint_names, table.stamp_sec, table.times, table.positions)) is None:
                return
            names, candidates, columns = split
            reference = self.path.reference(now, measured)
            velocity = self.path.velocity(now)
            executing = None
            if self.path.times is not None:
                executing = sample_chunk(*self.path.as_chunk(), table.stamp_sec + table.times)
        def pick() -> Verdict:
            chosen = select(self.verifier, self.config, self.limits, names, table.stamp_sec, table.times, candidates,
                            now, measured, executing, self.workspace, self.rng, self.learned, passive,
                            self.profile.gripper.joint, reference, velocity)
            return with_gripper(chosen.verdict, columns, None if chosen.index is None else source_index(
                chosen.index, len(candidates), self.verifier.perturb_samples))

        self.submit(topics.POLICY_CANDIDATES, pick)

    def on_trajectory(self, raw: bytes) -> None:
        msg = self.decode(raw, JointTrajectory)
        if msg is None:
            return
        try:
            arrays = conv.joint_trajectory_from_msg(msg)
        except conv.ConversionError as error:
            self.reject(Reason.MALFORMED, str(error))
            return
        with self.lock:
            if self.refused():
                return
            now, measured, passive = self.now(), self.state.positions, self.state.passive
            if (split := self.split_gripper(arrays.joint_names, arrays.stamp_sec, arrays.times,
                                            arrays.positions)) is None:
                return
            names, positions, column = split
            reference, velocity = self.path.reference(now, measured), self.path.velocity(now)
        speeds = arrays.velocities
        if column is not None and speeds is not None:
            speeds = split_gripper(arrays.joint_names, speeds, self.profile.gripper.joint)[1]
        self.submit(topics.TELEOP_COMMAND, lambda: with_gripper(check_chunk(
            self.config, self.limits, names, arrays.stamp_sec, arrays.times, positions, now, measured, speeds,
            self.workspace, passive, reference, velocity), column))

    def submit(self, topic: str, check: Callable[[], Verdict]) -> None:
        """Hand a proposal's check to the verifier thread, replacing one from ``topic`` not yet started."""
        with self.pending_ready:
            if self.pending.pop(topic, None) is not None:
                self.superseded += 1
            self.pending[topic] = check  # to the back of the queue: topics take turns
            self.pending_ready.notify()

    def verify_loop(self) -> None:
        """The verifier thread: check the latest proposal, forward it if it passes."""
        while True:
            with self.pending_ready:
                while not self.pending:
                    self.pending_ready.wait()
                check = self.pending.pop(next(iter(self.pending)))
            started = time.perf_counter()
            try:
                verdict = check()
                self.verify_ms_max = max(self.verify_ms_max, 1e3 * (time.perf_counter() - started))
                self.forward(verdict)
            except Exception as error:  # noqa: BLE001 - a failing check or send rejects; it never ends verification
                self.get_logger().error(f"a check failed: {error!r}")
                self.reject(Reason.INTERNAL_ERROR, repr(error))

    def refused(self) -> bool:
        refusal = self.supervisor.refusal(time.monotonic(), self.now())
        if refusal is not None:
            self.reject(*refusal)
        return refusal is not None

    def forward(self, verdict: Verdict) -> None:
        """Send an accepted chunk to the controller, if nothing changed while it was checked."""
        if not verdict.accepted:
            self.reject(verdict.reason, verdict.detail)
            return
        with self.lock:  # the e-stop, a hold or the clock may have moved on during verification
            if self.refused():
                return
            if stale := self.supervisor.before_reset(verdict.stamp):
                self.reject(Reason.STALE, stale)
                return
            now = self.now()
            if (gripper_problem := self.gripper_recheck(verdict, now)) is not None:
                self.reject(gripper_problem[0], f"as sent, after the check: {gripper_problem[1]}")
                return
            sent, out = as_sent(self.config, self.limits, self.joint_names, verdict, now, self.state.positions,
                                self.state.passive, self.path, self.workspace)
            if out is None:
                self.reject(sent.reason, f"as sent, after the check: {sent.detail}")
                return
            command = conv.joint_trajectory_to_msg(self.joint_names, out.times, out.positions, None,
                                                   conv.sec_to_stamp(out.stamp))  # raises before anything changed
            self.accepted += 1
            self.path.command(now, out.stamp, out.times, out.positions, self.state.positions,
                              stopping_from=out.chunk_end)  # a hold in the stop after the chunk continues it
            self.supervisor.accepted(now, out.chunk_end)
            self.send(command, None if verdict.gripper is None else lambda: self.gripper.chunk(
                verdict.stamp, verdict.times, verdict.gripper, now, self.state.passive.get(self.profile.gripper.joint)))

    def reject(self, reason: str, detail: str) -> None:
        with self.lock:
            log = self.rejections.record(reason, detail)
        if log:
            self.get_logger().warning(f"rejected ({self.rejections.counts[reason]} so far for this reason): "
                                      f"{reason}: {detail}")

    def drain_joint_states(self) -> None:
        """Read every joint state already queued (after a stall the queue holds newer ones than the node has)."""
        for _ in range(qos.STATE_QOS.depth):
            with self.joint_states.handle:
                taken = self.joint_states.handle.take_message(JointState, False)
            if taken is None:
                return
            self.on_joint_state(taken[0])

    def hold(self, reason: str, detail: str) -> None:
        """Brake to rest within the acceleration and jerk limits (one command) from the freshest state; say why."""
        try:
            self.drain_joint_states()
        except Exception as error:  # noqa: BLE001 - the hold goes out from the last state read
            self.get_logger().error(f"reading the queued joint states failed ({error!r}); holding from the last one")
        with self.lock:
            self.rejections.record(reason, detail)
            self.get_logger().warning(f"holding the arm: {reason}: {detail}")
            # right after the node's own stall its clock may lag the controller's: where the commanded path is
            # "now" is then unknown, and the measured arm (read fresh above) is where the stop starts
            now, stalled = self.now(), bool(self.supervisor.catching_up(time.monotonic()))
            stop = hold_on_path(self.path, self.state, self.hold_limits, now, self.config.hold_tolerance(), stalled,
                                not self.supervisor.state_jump_fault(now))
            self.supervisor.held()
            freeze = None if self.gripper is None else lambda: self.gripper.hold(now)  # after the arm's stop
            if stop is None:
                if freeze is not None:
                    self.send_gripper_only(freeze)
                return
            if np.any(crossing := crosses_limit(stop, self.limits.lower, self.limits.upper)):
                joints = [n for n, c in zip(self.joint_names, crossing) if c]
                self.get_logger().error(f"the stop of {joints} passes their position limits (measured outside them, or "
                                        "moving toward them faster than it can brake); they come back after braking")
            self.send(conv.joint_trajectory_to_msg(self.joint_names, stop.times, stop.positions, stop.velocities, None),
                      freeze)

    def hold_on_stop(self) -> None:
        """The last command before the node exits: a hold, acknowledged by the controller or 0.6 s spent waiting."""
        self.supervisor.estop("the safety node is stopping")  # a chunk still in verification is refused
        self.hold(Reason.SHUTDOWN, "the safety node is stopping; nothing passes to the controller after this hold")
        if not self.pub_command.wait_for_all_acked(Duration(seconds=HOLD_ACK_TIMEOUT_S)):
            self.get_logger().info(f"the shutdown hold was not acknowledged within {HOLD_ACK_TIMEOUT_S} s "
                                   "(no controller, or it is stopping too)")


def main(args: list[str] | None = None) -> None:
    """Entry point: ``safety_node``."""
    run_node(SafetyNode, args, on_stop=lambda node: node.hold_on_stop())  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
