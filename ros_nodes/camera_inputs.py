"""What the camera-consuming nodes share: skipping bad frames with a throttled reason, and camera_info."""

from __future__ import annotations

from sensor_msgs.msg import CameraInfo, JointState

from armpilot.perception.geometry import Intrinsics
from armpilot.perception.joint_history import JointHistory
from armpilot.perception.pairing import ApproximateTimePairer
from armpilot.rejections import RejectionLog
from armpilot.ros_nodes import conversions as conv


class CameraInputs:
    """Mixin for an rclpy Node that reads RGB-D frames: ``self.problems`` counts skipped frames by reason."""

    problems: RejectionLog
    pairer: ApproximateTimePairer
    joints: JointHistory

    def skip(self, reason: str, detail: str) -> None:
        """Count a skipped frame; warn unless this reason was logged in the last few seconds."""
        if self.problems.record(reason, detail):
            self.get_logger().warning(f"skipping frame ({self.problems.counts[reason]} so far): {reason}: {detail}")

    def read_intrinsics(self, msg: CameraInfo) -> Intrinsics | None:
        """The intrinsics of ``msg``, or None (counted, logged) when they are missing or zero."""
        try:
            return Intrinsics(*conv.intrinsics_from_msg(msg))
        except (conv.ConversionError, ValueError) as error:
            self.skip("bad_camera_info", str(error))
            return None

    def keep_joint_state(self, msg: JointState, names: tuple[str, ...]) -> bool:
        """Add the arm's positions (``names``) from ``msg`` to ``self.joints``; True when kept. A message sharing no
        joint with the arm (a separate gripper's driver) is no concern of the camera nodes: ignored silently."""
        if not set(msg.name) & set(names):
            return False
        try:  # the arm's driver and a separate gripper's commanded one may each publish their own
            merged = conv.positions_merged(msg, names, self.latest_joints)
        except conv.ConversionError as error:
            self.skip("joint_states", f"/joint_states: {error}")
            return False
        if merged is None:
            self.skip("joint_states", f"/joint_states: waiting for {[n for n in names if n not in self.latest_joints]}")
            return False
        self.joints.add(conv.stamp_to_sec(msg.header.stamp), merged)
        return True

    def report_out_of_order(self) -> bool:
        """Count frames the pairer refused for being older than the last pair; True when the pairer has just
        started afresh because the stamps went back for good (then warn: what follows the jump is used)."""
        if self.pairer.out_of_order > self.problems.counts["out_of_order"]:
            self.skip("out_of_order", f"a frame older than the last paired one ({self.pairer.last_stamp:.3f} s)")
        if self.pairer.resyncs <= self.problems.counts["stamps_went_back"]:
            return False
        self.problems.record("stamps_went_back", "")
        self.get_logger().warning(f"{self.pairer.resync_after} frames in a row older than the last pair: the camera's "
                                  "stamps went back (a bag replayed in a loop? a restarted driver?); pairing again "
                                  "from the newest frames")
        return True
