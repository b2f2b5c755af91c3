"""Robot profiles for the safety property tests: every shipped one plus the hard configurations.

- ``armpilot_shuffled``: the controller's joint order shuffled (gripper first);
- ``armpilot_six``: six arm joints, the gripper on its own controller, which armpilot does not command;
- ``armpilot_own_gripper``: the gripper on a joint_trajectory_controller of its own that the safety node commands,
  listed between the arm's joints (``armpilot_gripper_position``: the same on a forward command controller);
- ``ur5_continuous``: the UR5 with continuous wrist joints (unbounded, velocity-limited);
- ``ur5_pedestal``: the UR5 on a shifted, turned pedestal (its URDF's ``world`` joint), ``base_frame`` its
  ``base`` link (half a turn from ``base_link``), as UR's driver reports Cartesian poses;
- arms armpilot ships no profile for, from their vendors' URDFs in example-robot-data, profiles as a user
  writes them (``test/profiles/``): ``kinova_j2s6s200`` (Kinova Jaco 2: three continuous joints, ranges
  that exclude zero), ``z1`` (Unitree Z1: a gripper on the arm controller, a fixed joint named like its link),
  ``xarm7`` (UFACTORY xArm7: seven joints of +-2 pi), ``tiago`` (PAL TIAGo's arm on its mobile base: wheels,
  torso lift and head passive, the torso raised by ``passive_joints``), ``pr2_right`` (the PR2's right arm:
  continuous rolls, a gripper with mimic joints, 12 passive joints including the left arm), ``talos_right``,
  ``asr_twodof`` (planar), ``so100`` (SO-100: jaws with no <collision>, the arm facing -y), ``baxter_right``
  (Baxter's right arm beside the head's keep-out sphere), ``panda_franka_hand`` (the Panda, its hand on
  franka_gripper's GripperCommand action server: a vendor arm with a gripper the safety node commands apart).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from armpilot.robot_profile import RobotProfile, load_profile, profile_from_dict, shipped_profiles

VARIANTS = ("armpilot_shuffled", "armpilot_six", "armpilot_own_gripper", "ur5_continuous", "ur5_pedestal")
VENDOR_PROFILES = Path(__file__).parent / "profiles"
UNSHIPPED = tuple(sorted(path.stem for path in VENDOR_PROFILES.glob("*.yaml")))
ALL_PROFILES = tuple(shipped_profiles()) + VARIANTS + UNSHIPPED


def _raw(name: str) -> tuple[dict, Path]:
    path = shipped_profiles()[name]
    return yaml.safe_load(path.read_text()), path.parent


def own_gripper_raw(name: str) -> tuple[dict, Path]:
    """armpilot's arm with its gripper on a controller of its own that armpilot commands, the gripper's column
    between the arm's: ``armpilot_own_gripper`` (joint_trajectory_controller), ``armpilot_gripper_position``
    (forward command controller)."""
    raw, folder = _raw("armpilot")
    order = [0, 1, 6, 2, 3, 4, 5]
    for key in ("joints", "home", "max_acceleration", "max_jerk"):
        raw[key] = [raw[key][k] for k in order]
    interface = "trajectory" if name == "armpilot_own_gripper" else "position"
    raw["gripper"] = {**raw["gripper"], "controller": "separate", "command": {"interface": interface}}
    return {**raw, "name": name}, folder


def profile_file(name: str, folder: Path) -> Path:
    """One of the own-gripper variants as a profile YAML in ``folder`` (for nodes and the CLI)."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(own_gripper_raw(name)[0]))
    return path


@lru_cache(maxsize=None)
def profile(name: str) -> RobotProfile:
    """A shipped profile or one of the variants above."""
    if name in shipped_profiles():
        return load_profile(name)
    if name in UNSHIPPED:
        return load_profile(str(VENDOR_PROFILES / f"{name}.yaml"))
    if name == "armpilot_shuffled":
        raw, folder = _raw("armpilot")
        order = [6, 2, 0, 5, 1, 4, 3]
        for key in ("joints", "home", "max_acceleration", "max_jerk"):
            raw[key] = [raw[key][k] for k in order]
        return profile_from_dict(raw, folder, source="armpilot_shuffled")
    if name == "armpilot_six":
        raw, folder = _raw("armpilot")
        for key in ("joints", "home", "max_acceleration", "max_jerk"):
            raw[key] = raw[key][:6]
        raw["gripper"]["controller"] = "separate"
        return profile_from_dict(raw, folder, source="armpilot_six")
    if name in ("armpilot_own_gripper", "armpilot_gripper_position"):
        raw, folder = own_gripper_raw(name)
        return profile_from_dict(raw, folder, source=name)
    if name == "ur5_continuous":
        raw, folder = _raw("ur5")
        xml = load_profile("ur5").urdf_xml
        root = ET.fromstring(xml)
        for joint in root.findall("joint"):
            if joint.get("name") in ("wrist_1_joint", "wrist_3_joint"):
                joint.set("type", "continuous")
        return profile_from_dict(raw, folder, ET.tostring(root, encoding="unicode"), source="ur5_continuous")
    if name == "ur5_pedestal":
        raw, folder = _raw("ur5")
        root = ET.fromstring(load_profile("ur5").urdf_xml)
        origin = root.find("joint[@name='world_joint']/origin")
        origin.set("xyz", "0.3 -0.2 0.6")
        origin.set("rpy", "0.05 0 0.7")
        return profile_from_dict({**raw, "base_frame": "base"}, folder, ET.tostring(root, encoding="unicode"),
                                 source="ur5_pedestal")
    raise KeyError(name)


def safe_velocity(p: RobotProfile) -> np.ndarray:
    """(J,) URDF velocity limits, capped at 3 rad/s so chunks stay in a few-point neighbourhood."""
    return np.minimum([p.urdf_joints[n].velocity for n in p.joints], 3.0)
