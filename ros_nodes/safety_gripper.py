"""The safety node's side of a gripper on a controller of its own (a mixin of ``SafetyNode``, which provides
``gripper`` (``GripperSender`` or None), ``gripper_limits``, ``profile``, ``state``, ``config``, ``learned``,
``joint_names``, ``workspace``, the publishers, ``now``, ``reject`` and ``get_logger``). The checks are
``armpilot/safety/gripper_relay.py``'s."""

from __future__ import annotations

from typing import Callable

import numpy as np
from trajectory_msgs.msg import JointTrajectory

from armpilot.rejections import Reason
from armpilot.safety.gripper_relay import GripperStart, gripper_problems, separate_gripper
from armpilot.safety.limits import Verdict
from armpilot.urdf_source import RobotDescriptionError


class SafetyGripper:
    """Splitting proposals, checking the gripper's column as received and as sent, sending arm then gripper."""

    def check_gripper_setup(self) -> None:
        """Refuse what the gripper's split cannot serve: a learned scorer trained on every profile joint would be
        handed the arm's columns alone."""
        if self.gripper is not None and self.learned is not None:
            raise RobotDescriptionError(
                f"learned_scorer scores chunks of every joint of robot '{self.profile.name}', and its gripper "
                f"'{self.profile.gripper.joint}' is checked on its own (gripper.command): unset learned_scorer")

    def gripper_start(self, now: float, stamp: float, times: np.ndarray) -> GripperStart | None:
        measured = self.state.passive.get(self.profile.gripper.joint)
        return self.gripper.start(now, stamp, times, measured, self.config.start_tolerance)

    def split_gripper(self, names, stamp: float, times: np.ndarray, positions: np.ndarray):
        """(arm names, arm positions, gripper column(s) or None) of a proposal, its separate gripper's column checked
        (``gripper_relay.separate_gripper``) from where the gripper is; None (counted) when refused."""
        start = None
        if self.gripper is not None and self.profile.gripper.joint in names:
            if (start := self.gripper_start(self.now(), stamp, times)) is None:
                self.reject(Reason.NO_JOINT_STATE, f"no /joint_states of the gripper {self.profile.gripper.joint}")
                return None
        names, positions, columns, problem = separate_gripper(names, times, positions, self.gripper_limits, start)
        if problem is not None:
            self.reject(*problem)
            return None
        return names, positions, columns

    def gripper_recheck(self, verdict: Verdict, now: float) -> tuple[str, str] | None:
        """The accepted column checked as it is sent: its start again (a teleop chunk or a hold may have moved the
        gripper's command since), and the arm's points with the fingers where the column puts them against the
        table, the workspace and the arm itself (the candidates were checked with the measured gripper). None when
        it may go out, else (reason, detail)."""
        if self.gripper is None or verdict.gripper is None:
            return None
        joint = self.profile.gripper.joint
        start = self.gripper_start(now, verdict.stamp, verdict.times)
        if start is None:
            return Reason.NO_JOINT_STATE, f"no /joint_states of the gripper {joint}"
        if (problem := gripper_problems(verdict.gripper[None], verdict.times, self.gripper_limits, start)[0]):
            return problem
        violation = self.workspace.check(np.column_stack([verdict.positions, verdict.gripper]),
                                         tuple(self.joint_names) + (joint,), self.state.passive)
        return None if violation is None else (violation.reason, f"with the gripper's column: {violation.detail}")

    def send(self, command: JointTrajectory, gripper_step: Callable[[], None] | None = None) -> None:
        """To the arm's controller first; then the gripper's step (its chunk, or a hold), which cannot keep the arm's
        command from going out; then a copy on /safety/commanded (the policy continues what the arm executes), with
        the gripper's column."""
        self.pub_command.publish(command)
        if self.gripper is not None:
            try:
                if gripper_step is not None:
                    gripper_step()
                command = self.gripper.add_column(command, self.now(),
                                                  self.state.passive.get(self.profile.gripper.joint))
            except Exception as error:  # noqa: BLE001 - the arm's command is out; say what the gripper missed
                self.get_logger().error(f"the gripper's command failed: {error!r}")
        self.pub_commanded.publish(command)

    def send_gripper_only(self, gripper_step: Callable[[], None]) -> None:
        """A hold with no arm stop to send (already at rest): the gripper's freeze, failures logged."""
        try:
            gripper_step()
        except Exception as error:  # noqa: BLE001
            self.get_logger().error(f"the gripper's command failed: {error!r}")
