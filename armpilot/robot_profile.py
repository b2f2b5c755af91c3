"""The robot profile: the one description of the arm every node reads (pure, no rclpy).

A profile is a YAML file (shipped ones in ``config/robots/NAME.yaml``; a user's
anywhere) naming the URDF (path, ``package://`` URI or xacro; the launch's
``robot_description`` text overrides it), the controller's joints in the
controller's order, the gripper, frames, home pose, workspace, acceleration and
jerk limits (or a MoveIt/ros2_control ``joint_limits.yaml``) and an SRDF whose
``disable_collisions`` pairs self-collision checking skips. Every field is
documented in ``docs/robot-profile.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from armpilot.fields import describe
from armpilot.gripper_profile import Gripper, GripperController, check_gripper_range, gripper_from_dict
from armpilot.joint_limits_file import JointLimitsFileError, read_joint_limits
from armpilot.profile_values import disabled_pairs, extrinsics
from armpilot.urdf_source import (RobotDescriptionError, UrdfJoint, check_base_frame, collisions_from_visuals,
                                  description_hash, gripper_link_names, parse_joints, read_description,
                                  resolve_package_uris, resolve_uri)

DEFAULT_ROBOT = "armpilot"
#: Profile YAML larger than this is refused, bytes.
MAX_PROFILE_BYTES = 256 * 1024
PROFILE_KEYS = frozenset({
    "name", "description", "urdf", "srdf", "joint_limits", "package_paths", "joints", "gripper", "tcp_frame",
    "base_frame", "camera_frame", "camera_extrinsics", "home", "workspace_min", "workspace_max", "table_z",
    "max_velocity", "max_acceleration", "max_jerk", "watched_frames", "reach", "xacro_args", "tcp_offset", "tcp_rpy",
    "passive_joints", "disabled_collisions",
})


@dataclass(frozen=True)
class WatchedFrame:
    """A point kept in the workspace box and ``min_height`` m above the table (frame or joint name)."""

    frame: str
    min_height: float = 0.0
    offset_z: float = 0.0  # along the frame's z axis, m


@dataclass(frozen=True)
class RobotProfile:
    """Everything armpilot needs to know about an arm. Joint vectors follow ``joints``."""

    name: str
    urdf_xml: str  # package:// already resolved to absolute paths
    #: the commanded joints: the arm controller's, in its order, and a gripper armpilot commands on a controller of
    #: its own (``arm_controller_joints`` leaves it out)
    joints: tuple[str, ...]
    gripper: Gripper
    tcp_frame: str
    base_frame: str
    home: np.ndarray  # (J,) in ``joints`` order
    #: (J,) rad/s or m/s: the URDF's velocity limits, lower where the profile's ``max_velocity`` or its
    #: joint_limits file says (a URDF with placeholder limits), never higher
    max_velocity: np.ndarray
    max_acceleration: np.ndarray  # (J,) rad/s^2 or m/s^2
    max_jerk: np.ndarray  # (J,) rad/s^3 or m/s^3
    workspace_min: np.ndarray  # (3,) m in base_frame
    workspace_max: np.ndarray
    table_z: float
    reach: float  # m, comfortable TCP distance from the base (sizes the sim's scene)
    watched_frames: tuple[WatchedFrame, ...]
    urdf_joints: Mapping[str, UrdfJoint] = field(repr=False)
    disabled_collisions: tuple[tuple[str, str], ...] = ()
    camera_frame: str = ""
    camera_extrinsics: np.ndarray | None = None  # 4x4 base_T_camera_optical when not in the URDF
    description: str = ""
    source: str = ""  # where the profile came from
    tcp_offset: np.ndarray = field(default_factory=lambda: np.zeros(3))  # (3,) m in tcp_frame: the grasp point
    #: (3,) rad, fixed-axis roll-pitch-yaw of the TCP in tcp_frame: turns its z axis onto the tool's approach axis
    tcp_rpy: np.ndarray = field(default_factory=lambda: np.zeros(3))
    #: where movable joints no arm controller commands (a torso, a head, another arm) stand until /joint_states
    #: reports them, rad or m; those not named stand at 0 (clipped into their limits), a separate gripper open
    passive_positions: Mapping[str, float] = field(default_factory=dict)
    #: gripper links the URDF gives a <visual> and no <collision>: they collide with their visual geometry
    collisions_from_visuals: tuple[str, ...] = ()

    @property
    def urdf_hash(self) -> str:
        return description_hash(self.urdf_xml)

    @property
    def arm_joints(self) -> tuple[str, ...]:
        """``joints`` without the gripper."""
        return tuple(n for n in self.joints if n != self.gripper.joint)

    @property
    def arm_controller_joints(self) -> tuple[str, ...]:
        """What the arm's trajectory controller commands, in its order: ``joints`` without a gripper that has a
        controller of its own (``Gripper.commanded_separately``)."""
        if self.gripper.commanded_separately:
            return self.arm_joints
        return self.joints

    @property
    def has_gripper(self) -> bool:
        return self.gripper.controller is not GripperController.NONE

    def index(self, names: tuple[str, ...] | list[str]) -> np.ndarray:
        """Indices of ``names`` in ``joints`` (KeyError naming the unknown one)."""
        missing = [n for n in names if n not in self.joints]
        if missing:
            raise KeyError(f"joints {missing} are not controlled joints of robot '{self.name}' {list(self.joints)}")
        return np.array([self.joints.index(n) for n in names], dtype=int)

    def summary(self) -> str:
        """One log line: name, URDF hash, joints and gripper."""
        gripper = ("no gripper" if not self.has_gripper
                   else f"gripper {self.gripper.joint} ({self.gripper.controller.value}"
                   + (f", {command.interface.value} on {command.topic})" if (command := self.gripper.command) else ")"))
        bare = (f"; links {list(self.collisions_from_visuals)} have no <collision> in the URDF: they collide with "
                "their <visual> geometry" if self.collisions_from_visuals else "")
        return f"robot '{self.name}' (URDF sha256 {self.urdf_hash}), joints {list(self.joints)}, {gripper}{bare}"


#: Keys of the robot identity stored with recordings (bag custom data), datasets and checkpoints.
ROBOT_KEY = "armpilot.robot"
URDF_HASH_KEY = "armpilot.urdf_sha256"
#: Where a recording's profile was loaded from (a user's YAML is found by it, not by its name).
PROFILE_SOURCE_KEY = "armpilot.robot_profile"


def robot_identity(profile: RobotProfile) -> dict[str, str]:
    """What recordings store about the arm: profile name and URDF hash."""
    return {ROBOT_KEY: profile.name, URDF_HASH_KEY: profile.urdf_hash}


def shipped_profiles() -> dict[str, Path]:
    """Profiles shipped in ``config/robots`` by name (the ``--robot`` choices)."""
    from armpilot.paths import share_dir

    folder = share_dir() / "config" / "robots"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def profile_path(robot: str) -> Path:
    """File of a shipped profile name, or ``robot`` itself when it is a path."""
    shipped = shipped_profiles()
    if robot in shipped:
        return shipped[robot]
    path = Path(robot).expanduser()
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    raise RobotDescriptionError(f"robot '{robot}' is neither a shipped profile {sorted(shipped)} "
                                f"nor a profile YAML file")


def profile_file_of(profile: RobotProfile) -> str:
    """The absolute path of the file ``profile`` was loaded from ("" when it came from no file)."""
    return str(Path(profile.source).resolve()) if profile.source and Path(profile.source).is_file() else ""


def load_recorded_profile(robot: Mapping[str, str]) -> RobotProfile:
    """The profile a recording names (``recorded_robot``): the YAML file it was loaded from when recorded
    (``PROFILE_SOURCE_KEY``) where that file still is and describes the same URDF, else a shipped one by name. The
    caller compares URDF hashes.

    Raises:
        RobotDescriptionError: neither loads here.
    """
    source = robot.get(PROFILE_SOURCE_KEY, "")
    if source and Path(source).is_file():
        try:
            profile = load_profile(source)
        except RobotDescriptionError:
            profile = None
        if profile is not None and profile.urdf_hash == robot.get(URDF_HASH_KEY, profile.urdf_hash):
            return profile
    return load_profile(robot[ROBOT_KEY])


def load_profile(robot: str = DEFAULT_ROBOT, robot_description: str = "", urdf: str = "") -> RobotProfile:
    """Load a profile by shipped name or YAML path.

    Args:
        robot: shipped profile name (``armpilot``, ``panda``, ...) or a path to a profile YAML.
        robot_description: URDF text (the launch's ``robot_description``); replaces the profile's URDF.
        urdf: a URDF or xacro file (path or ``package://`` URI) that replaces the profile's.

    Raises:
        RobotDescriptionError: for anything that does not fit, naming the key or joint.
    """
    path = profile_path(robot)
    if path.stat().st_size > MAX_PROFILE_BYTES:
        raise RobotDescriptionError(f"robot profile {path} is larger than {MAX_PROFILE_BYTES} bytes")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise RobotDescriptionError(f"robot profile {path} must be a mapping")
    if urdf and not robot_description:  # a relative path counts from the working directory
        raw = {**raw, "urdf": urdf if urdf.startswith("package://") else str(resolve_uri(urdf, relative_to=Path.cwd()))}
    return profile_from_dict(raw, path.parent, robot_description, source=str(path))


def profile_from_dict(raw: Mapping[str, Any], folder: Path, robot_description: str = "",
                      source: str = "") -> RobotProfile:
    """Build and validate a profile from its YAML mapping (relative paths from ``folder``)."""
    unknown = sorted(set(raw) - PROFILE_KEYS)
    if unknown:
        raise RobotDescriptionError(f"robot profile {source}: unknown keys {unknown}; known: {sorted(PROFILE_KEYS)}")
    search = [resolve_uri(str(p), relative_to=folder) for p in raw.get("package_paths", [])]
    name = str(raw.get("name") or Path(source).stem)
    if robot_description:
        xml = robot_description
    else:
        if "urdf" not in raw:
            raise RobotDescriptionError(f"robot profile {source} names no 'urdf' and no robot_description was given")
        mappings = {str(k): str(v) for k, v in (raw.get("xacro_args") or {}).items()}
        xml = read_description(resolve_uri(str(raw["urdf"]), search, folder), mappings)
    xml = resolve_package_uris(xml, search)
    urdf_joints = parse_joints(xml)
    joints = tuple(str(j) for j in raw.get("joints", []))
    gripper = gripper_from_dict(raw.get("gripper"), joints, source)
    _check_joints(joints, gripper, urdf_joints, name)
    if gripper.joint in urdf_joints:
        check_gripper_range(gripper, urdf_joints[gripper.joint], source or name)
    xml, visual_collisions = collisions_from_visuals(xml, gripper_link_names(xml, urdf_joints, gripper.joint))
    base_frame = str(raw.get("base_frame", "base_link"))
    check_base_frame(xml, base_frame, name)
    given = {key: _per_joint(raw.get(key), joints, key, source) for key in ("max_velocity", "max_acceleration",
                                                                             "max_jerk")}
    if raw.get("joint_limits"):  # the file's limits win over the profile's
        try:
            from_file = read_joint_limits(resolve_uri(str(raw["joint_limits"]), search, folder), joints)
        except JointLimitsFileError as error:
            raise RobotDescriptionError(str(error)) from error
        given = {key: np.where(np.isfinite(from_file[key]), from_file[key], values) for key, values in given.items()}
    accel, jerk = given["max_acceleration"], given["max_jerk"]
    velocity = _velocity_limits(joints, urdf_joints, given["max_velocity"], name)
    for label, values in (("max_acceleration", accel), ("max_jerk", jerk)):
        bad = [joints[k] for k, v in enumerate(values) if not (math.isfinite(v) and v > 0)]
        if bad:
            raise RobotDescriptionError(f"robot '{name}': {label} is missing or not positive for joints {bad}")
    disabled = disabled_pairs(raw.get("disabled_collisions") or [], source)
    if raw.get("srdf"):
        from armpilot.urdf_source import srdf_disabled_pairs

        disabled += srdf_disabled_pairs(read_description(resolve_uri(str(raw["srdf"]), search, folder)))
    home = _home(raw.get("home"), joints, urdf_joints, gripper, name)
    ws_min = np.asarray(raw.get("workspace_min", [-1.0, -1.0, -0.05]), float)
    ws_max = np.asarray(raw.get("workspace_max", [1.0, 1.0, 1.5]), float)
    if ws_min.shape != (3,) or ws_max.shape != (3,) or np.any(ws_min >= ws_max):
        raise RobotDescriptionError(f"robot '{name}': workspace_min must be below workspace_max, three values each")
    tcp = str(raw.get("tcp_frame", ""))
    watched = tuple(WatchedFrame(str(w["frame"]), float(w.get("min_height", 0.0)), float(w.get("offset_z", 0.0)))
                    for w in raw.get("watched_frames", [{"frame": tcp}]))
    return RobotProfile(
        name=name, urdf_xml=xml, joints=joints, gripper=gripper, tcp_frame=tcp,
        base_frame=base_frame, home=home, max_velocity=velocity, max_acceleration=accel, max_jerk=jerk,
        workspace_min=ws_min, workspace_max=ws_max, table_z=float(raw.get("table_z", 0.0)),
        reach=float(raw.get("reach", 0.6)), watched_frames=watched, urdf_joints=urdf_joints,
        disabled_collisions=tuple(disabled), camera_frame=str(raw.get("camera_frame", "")),
        camera_extrinsics=extrinsics(raw.get("camera_extrinsics")), description=str(raw.get("description", "")),
        source=source, tcp_offset=np.asarray(raw.get("tcp_offset", (0.0, 0.0, 0.0)), float).reshape(3),
        tcp_rpy=np.asarray(raw.get("tcp_rpy", (0.0, 0.0, 0.0)), float).reshape(3),
        passive_positions=_passive_positions(raw.get("passive_joints"), joints, gripper, urdf_joints, name),
        collisions_from_visuals=visual_collisions,
    )


def _check_joints(joints: tuple[str, ...], gripper: Gripper, urdf: Mapping[str, UrdfJoint], name: str) -> None:
    """Fail closed: every commanded joint is a movable, velocity-limited, non-mimic URDF joint."""
    if not joints:
        raise RobotDescriptionError(f"robot '{name}': the profile lists no joints")
    if len(set(joints)) != len(joints):
        raise RobotDescriptionError(f"robot '{name}': joints repeat in {list(joints)}")
    wanted = list(joints) + ([gripper.joint] if gripper.controller is GripperController.SEPARATE
                             and gripper.joint not in joints else [])
    for joint in wanted:
        if joint not in urdf:
            raise RobotDescriptionError(f"robot '{name}': joint '{joint}' is not a movable joint of the URDF "
                                        f"(movable joints: {sorted(urdf)})")
        if urdf[joint].mimic:
            raise RobotDescriptionError(f"robot '{name}': joint '{joint}' mimics '{urdf[joint].mimic}' and "
                                        f"cannot be commanded")
        lower, upper = urdf[joint].lower, urdf[joint].upper
        if not urdf[joint].continuous and not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
            raise RobotDescriptionError(f"robot '{name}': {urdf[joint].type} joint '{joint}' needs finite position "
                                        f"limits lower < upper in the URDF, got [{lower}, {upper}] (only a "
                                        f"'continuous' joint turns without limits)")


def _velocity_limits(joints: tuple[str, ...], urdf: Mapping[str, UrdfJoint], given: np.ndarray,
                     name: str) -> np.ndarray:
    """(J,) the lower of the URDF's velocity limit and ``given`` (NaN: not given) for each joint; one the URDF
    does not limit takes ``given``. A joint limited by neither, or given a limit <= 0, is refused."""
    out = np.empty(len(joints))
    for k, joint in enumerate(joints):
        from_urdf = urdf[joint].velocity if math.isfinite(urdf[joint].velocity) and urdf[joint].velocity > 0 \
            else math.inf
        if not (math.isnan(given[k]) or given[k] > 0):
            raise RobotDescriptionError(f"robot '{name}': max_velocity of joint '{joint}' must be > 0, got {given[k]}")
        out[k] = from_urdf if math.isnan(given[k]) else min(from_urdf, float(given[k]))
        if not math.isfinite(out[k]):
            raise RobotDescriptionError(f"robot '{name}': joint '{joint}' has no finite velocity limit in the URDF "
                                        f"({urdf[joint].velocity}); add <limit velocity=...> there, or give the "
                                        f"profile's max_velocity (the safety node refuses unlimited joints)")
    return out


def _per_joint(value: Any, joints: tuple[str, ...], label: str, source: str) -> np.ndarray:
    """A scalar, a list in ``joints`` order, or ``{default: x, joint: y}``; NaN where unset."""
    if value is None:
        return np.full(len(joints), np.nan)
    if isinstance(value, (int, float)):
        return np.full(len(joints), float(value))
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(joints) - {"default"})
        if unknown:
            raise RobotDescriptionError(f"robot profile {source}: {label} names unknown joints {unknown}")
        return np.array([float(value.get(j, value.get("default", np.nan))) for j in joints])
    values = np.asarray(value, float)
    if values.shape != (len(joints),):
        raise RobotDescriptionError(f"robot profile {source}: {label} needs {len(joints)} values, got {len(values)}")
    return values


def _home(raw: Any, joints: tuple[str, ...], urdf: Mapping[str, UrdfJoint], gripper: Gripper,
          name: str) -> np.ndarray:
    """Home pose in ``joints`` order: a list or a name -> value mapping; inside the URDF limits."""
    if isinstance(raw, Mapping):
        missing = [j for j in joints if j not in raw and j != gripper.joint]
        if missing:
            raise RobotDescriptionError(f"robot '{name}': home gives no value for {missing}")
        home = np.array([float(raw.get(j, gripper.open)) for j in joints])
    elif raw is None:
        home = np.array([gripper.open if j == gripper.joint else
                         float(np.clip(0.0, urdf[j].lower, urdf[j].upper)) for j in joints])
    else:
        home = np.asarray(raw, float)
        if home.shape != (len(joints),):
            raise RobotDescriptionError(f"robot '{name}': home needs {len(joints)} values in joints order")
    for k, joint in enumerate(joints):
        if not urdf[joint].lower <= home[k] <= urdf[joint].upper:
            raise RobotDescriptionError(f"robot '{name}': home {joint} = {home[k]} is outside "
                                        f"[{urdf[joint].lower}, {urdf[joint].upper}]")
    return home


def _passive_positions(raw: Any, joints: tuple[str, ...], gripper: Gripper, urdf: Mapping[str, UrdfJoint],
                       name: str) -> dict[str, float]:
    """``passive_joints: {joint: value}``: movable, non-mimic URDF joints outside ``joints``, inside their limits."""
    if not raw:
        return {}
    if not isinstance(raw, Mapping):
        raise RobotDescriptionError(f"robot '{name}': passive_joints must map joint names to positions")
    out = {}
    for joint, value in raw.items():
        joint = str(joint)
        if joint == gripper.joint:
            raise RobotDescriptionError(f"robot '{name}': passive_joints names the gripper '{joint}' (it stands "
                                        f"at gripper.open until reported)")
        if joint not in urdf or urdf[joint].mimic or joint in joints:
            raise RobotDescriptionError(f"robot '{name}': passive_joints names '{joint}', which is not a movable, "
                                        f"uncommanded, non-mimic joint of the URDF")
        try:
            out[joint] = float(value)
        except (TypeError, ValueError) as error:
            raise RobotDescriptionError(f"robot '{name}': passive_joints {joint} = {value!r} is not a number") \
                from error
        if not urdf[joint].lower <= out[joint] <= urdf[joint].upper:
            raise RobotDescriptionError(f"robot '{name}': passive_joints {joint} = {out[joint]} is outside "
                                        f"[{urdf[joint].lower}, {urdf[joint].upper}]")
    return out


@dataclass(frozen=True)
class RobotSelection:
    """The robot parameters every node declares (``robot``, ``robot_description``)."""

    robot: str = field(default=DEFAULT_ROBOT, metadata=describe(
        "robot profile: a shipped name (armpilot, panda, ur5, so101) or a profile YAML path"))
    urdf: str = field(default="", metadata=describe(
        "URDF or xacro file (path or package:// URI) replacing the profile's; empty = the profile's"))
    robot_description: str = field(default="", metadata=describe(
        "URDF text (as robot_state_publisher gets it); replaces the profile's URDF when set"))

    def load(self) -> RobotProfile:
        return load_profile(self.robot, self.robot_description, self.urdf)
