"""The robot profile's gripper: where its joint is commanded, and how (pure, no rclpy).

Three ways, the profile's ``gripper.controller``:

- ``arm``: the gripper joint is one of the arm trajectory controller's ``joints`` (armpilot's arm, the Panda's finger);
- ``separate`` with a ``command``: the gripper has a ros2_control controller of its own, its joint is listed in
  ``joints`` (policies, datasets and teleop see it like any joint), and the safety node sends its column of each
  accepted chunk to that controller (``armpilot/safety/gripper_relay.py``); a Robotiq beside a UR;
- ``separate`` without one: armpilot never commands it; its joint stays out of ``joints``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

from armpilot.ros_nodes import topics
from armpilot.urdf_source import RobotDescriptionError, UrdfJoint


class GripperController(str, Enum):
    """Where the gripper joint is commanded."""

    NONE = "none"  # no gripper
    ARM = "arm"  # a joint of the arm's trajectory controller
    SEPARATE = "separate"  # its own controller: the arm controller never sees it


class GripperInterface(str, Enum):
    """What a separate gripper's controller listens to (ros2_control's gripper controllers)."""

    #: a joint_trajectory_controller of its own: trajectory_msgs/JointTrajectory, each chunk's column as timed
    TRAJECTORY = "trajectory"
    #: forward_command_controller / JointGroupPositionController: std_msgs/Float64MultiArray, one position
    POSITION = "position"
    #: GripperActionController: control_msgs/action/GripperCommand (position, max_effort)
    ACTION = "action"


#: The topic (or action name) of each interface when the profile names none: ros2_control's names under a
#: controller called ``gripper_controller``.
DEFAULT_GRIPPER_TOPICS = {
    GripperInterface.TRAJECTORY: "/gripper_controller/joint_trajectory",
    GripperInterface.POSITION: "/gripper_controller/commands",
    GripperInterface.ACTION: "/gripper_controller/gripper_cmd",
}
#: armpilot's own topics, which a gripper command may not take over.
ARMPILOT_TOPICS = frozenset({topics.CONTROLLER_COMMAND, topics.TELEOP_COMMAND, topics.SAFETY_COMMANDED,
                             topics.POLICY_CANDIDATES, topics.JOINT_STATES, "/sim/arm_controller/joint_trajectory"})
#: Fraction of the open-closed range a position/action target must move before a new one is sent.
DEFAULT_DEADBAND = 0.02
COMMAND_KEYS = ("interface", "topic", "max_effort", "deadband")
GRIPPER_KEYS = ("joint", "open", "closed", "controller", "effort", "command")


@dataclass(frozen=True)
class GripperCommand:
    """How the safety node commands a separate gripper."""

    interface: GripperInterface
    topic: str  # the controller's command topic, or its action's name
    #: N or N m (action only, > 0 there): the GripperCommand goal's max_effort
    max_effort: float = 0.0
    #: fraction of |open - closed| (position and action): a target closer than this to the last one sent is not sent
    deadband: float = DEFAULT_DEADBAND


@dataclass(frozen=True)
class Gripper:
    """The gripper: its driving joint and the open/closed positions (rad or m)."""

    controller: GripperController = GripperController.NONE
    joint: str = ""
    open: float = 0.0
    closed: float = 0.0
    #: N m (N) the simulated gripper squeezes with at most; 0: the URDF's effort limit (often a placeholder)
    effort: float = 0.0
    #: a separate gripper armpilot commands (its joint in ``joints``); None: armpilot never commands it
    command: GripperCommand | None = None

    @property
    def commanded_separately(self) -> bool:
        """On a controller of its own that the safety node commands."""
        return self.controller is GripperController.SEPARATE and self.command is not None

    @property
    def commanded(self) -> bool:
        """armpilot opens and closes it (on the arm controller, or on its own through the safety node)."""
        return self.controller is GripperController.ARM or self.commanded_separately


def gripper_from_dict(raw: Mapping[str, Any] | None, joints: tuple[str, ...], source: str) -> Gripper:
    """The profile's ``gripper`` mapping, checked against its ``joints``.

    Raises:
        RobotDescriptionError: an unknown key or interface, a negative effort, or the joint listed in ``joints``
            (or not) against what its controller says.
    """
    if not raw:
        return Gripper()
    if unknown := sorted(set(raw) - set(GRIPPER_KEYS)):
        raise RobotDescriptionError(f"robot profile {source}: gripper has unknown keys {unknown} (known: "
                                    f"{', '.join(GRIPPER_KEYS)})")
    try:
        controller = GripperController(raw.get("controller", "arm"))
    except ValueError:
        raise RobotDescriptionError(f"robot profile {source}: gripper controller must be one of "
                                    f"{[c.value for c in GripperController]}, got {raw.get('controller')!r}") from None
    command = _command(raw.get("command"), source)
    gripper = Gripper(controller, str(raw.get("joint", "")), float(raw.get("open", 0.0)), float(raw.get("closed", 0.0)),
                      float(raw.get("effort", 0.0)), command)
    if not (math.isfinite(gripper.effort) and gripper.effort >= 0):
        raise RobotDescriptionError(f"robot profile {source}: gripper effort must be >= 0, got {gripper.effort}")
    if command is not None and controller is not GripperController.SEPARATE:
        raise RobotDescriptionError(f"robot profile {source}: gripper 'command' is for a gripper on a controller of "
                                    "its own (controller: separate)")
    if controller is GripperController.ARM and gripper.joint not in joints:
        raise RobotDescriptionError(f"robot profile {source}: gripper joint '{gripper.joint}' is on the arm "
                                    f"controller but not in joints {list(joints)}")
    if gripper.commanded_separately and gripper.joint not in joints:
        raise RobotDescriptionError(f"robot profile {source}: gripper joint '{gripper.joint}' is commanded on its own "
                                    f"controller by armpilot: list it in joints {list(joints)} (policies and "
                                    "datasets carry it like any joint; the arm controller never sees it)")
    if controller is GripperController.SEPARATE and command is None and gripper.joint in joints:
        raise RobotDescriptionError(f"robot profile {source}: gripper joint '{gripper.joint}' has its own "
                                    f"controller but is listed in the arm's joints (give the gripper a 'command' "
                                    "for armpilot to command it, or leave it out of joints)")
    return gripper


def _command(raw: Any, source: str) -> GripperCommand | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise RobotDescriptionError(f"robot profile {source}: gripper command must be a mapping with keys "
                                    f"{list(COMMAND_KEYS)}")
    if unknown := sorted(set(raw) - set(COMMAND_KEYS)):
        raise RobotDescriptionError(f"robot profile {source}: gripper command has unknown keys {unknown} (known: "
                                    f"{', '.join(COMMAND_KEYS)})")
    try:
        interface = GripperInterface(str(raw.get("interface", "")))
    except ValueError:
        raise RobotDescriptionError(f"robot profile {source}: gripper command interface must be one of "
                                    f"{[i.value for i in GripperInterface]}, got {raw.get('interface')!r}") from None
    topic = str(raw.get("topic") or DEFAULT_GRIPPER_TOPICS[interface])
    if not topic.startswith("/") or any(c.isspace() for c in topic):
        raise RobotDescriptionError(f"robot profile {source}: gripper command topic must be an absolute ROS name, "
                                    f"got {topic!r}")
    if topic in ARMPILOT_TOPICS:
        raise RobotDescriptionError(f"robot profile {source}: gripper command topic {topic} is one of armpilot's own "
                                    "topics; give the gripper controller's")
    max_effort, deadband = float(raw.get("max_effort", 0.0)), float(raw.get("deadband", DEFAULT_DEADBAND))
    if interface is GripperInterface.ACTION and not (math.isfinite(max_effort) and max_effort > 0):
        raise RobotDescriptionError(f"robot profile {source}: gripper command interface 'action' needs max_effort > 0 "
                                    "(N or N m: GripperActionController squeezes with at most that; 0 would be none)")
    if interface is not GripperInterface.ACTION and "max_effort" in raw:
        raise RobotDescriptionError(f"robot profile {source}: gripper command max_effort is for interface 'action' "
                                    "only")
    if not (math.isfinite(deadband) and 0.0 <= deadband < 0.5):
        raise RobotDescriptionError(f"robot profile {source}: gripper command deadband must be in [0, 0.5)")
    return GripperCommand(interface, topic, max_effort, deadband)


def check_gripper_range(gripper: Gripper, joint: UrdfJoint, source: str) -> None:
    """``open`` and ``closed`` inside the gripper joint's URDF limits, and apart, for a gripper armpilot commands.

    Raises:
        RobotDescriptionError: naming the value and the limits.
    """
    if not gripper.commanded:
        return
    for name, value in (("open", gripper.open), ("closed", gripper.closed)):
        if not (math.isfinite(value) and joint.lower - 1e-9 <= value <= joint.upper + 1e-9):
            raise RobotDescriptionError(f"robot profile {source}: gripper {name} = {value} is outside the limits "
                                        f"[{joint.lower}, {joint.upper}] of '{gripper.joint}'")
    if gripper.open == gripper.closed:
        raise RobotDescriptionError(f"robot profile {source}: gripper open and closed are both {gripper.open}")
