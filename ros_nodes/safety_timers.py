"""The safety node's timers and clock watch: the watchdog, the proposer check, clock jumps and diagnostics (a mixin
of ``SafetyNode``, which provides ``lock``, ``supervisor``, ``hold``, ``path``, ``gripper``, the counters and the
publishers)."""

from __future__ import annotations

import time

from rclpy.clock import TimeJump

from armpilot.rejections import Reason
from armpilot.ros_nodes.safety_diagnostics import diagnostics_message, publisher_identity
from armpilot.safety.supervisor import proposer_fault

#: Clock jumps reported (s): any jump back, forward jumps beyond this.
CLOCK_JUMP_FORWARD_S = 1.0
#: Seconds between checks of who publishes proposals (wall clock).
PROPOSER_CHECK_PERIOD_S = 0.5
#: Seconds between watchdog checks (wall clock).
WATCHDOG_PERIOD_S = 0.02


class SafetyTimers:
    """Callbacks of the wall-clock timers and the clock-jump handler."""

    def on_watchdog(self) -> None:
        wall = time.monotonic()
        with self.lock:
            stalled = self.supervisor.tick(wall)
        if stalled:  # this process did not run (stopped, swapped, starved): its inputs are queued
            self.get_logger().warning(f"the safety node itself did not run for {stalled:.2f} s; reading what "
                                      f"arrived meanwhile ({self.supervisor.SETTLE_AFTER_STALL_S} s) before "
                                      "judging its inputs")
            return
        with self.lock:
            reason = self.supervisor.watchdog(self.now(), wall)
            if reason is not None:
                self.hold(*reason)
            elif self.gripper is not None:  # a position or action target as the accepted chunk reaches it
                try:
                    self.gripper.tick(self.now())
                except Exception as error:  # noqa: BLE001 - the arm's watchdog goes on; say what the gripper missed
                    self.get_logger().error(f"the gripper's target failed: {error!r}", throttle_duration_sec=2.0)

    def check_proposers(self) -> None:
        """Hold and refuse while more than one node publishes on a proposal topic or the controller's."""
        publishers = {resolved: [publisher_identity(i) for i in self.get_publishers_info_by_topic(declared)]
                      for declared, resolved in self.single_source_topics}
        fault = proposer_fault(publishers, self.pub_command.topic_name)
        with self.lock:
            before = self.supervisor.state.proposer_fault
            if self.supervisor.proposers(fault):
                self.get_logger().error(f"refusing every proposal: {fault}")
                self.hold(Reason.SECOND_PROPOSER, fault)
            elif before and not fault:
                self.get_logger().info("one proposer per topic again: proposals are checked again")

    def on_clock_jump(self, jump: TimeJump) -> None:
        delta = jump.delta.nanoseconds * 1e-9
        if self.now() - delta <= 0.0:  # the first /clock message after start: not a jump
            return
        with self.lock:
            if self.gripper is not None:  # its timeline's times are on the old clock too
                self.gripper.clock_jumped()
            self.path.clear()  # its times are on the old timeline: the measured arm is where a hold starts
            if self.supervisor.clock_jumped(delta, time.monotonic()):
                self.hold(Reason.CLOCK_JUMP, self.supervisor.clock_problem(time.monotonic()))
            else:
                self.get_logger().warning(self.supervisor.clock_problem(time.monotonic()))

    def publish_diagnostics(self) -> None:
        with self.lock:
            msg = diagnostics_message(self.supervisor.state, self.accepted, self.candidates_seen, self.rejections,
                                      self.supervisor.clock_problem(time.monotonic()),
                                      {"superseded": self.superseded, "verify_ms_max": round(self.verify_ms_max, 1),
                                       "joint_states_heard": self.supervisor.state.last_joint_state is not None})
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)

