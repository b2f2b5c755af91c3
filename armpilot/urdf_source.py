"""Read a robot description the way ROS tools do: xacro, ``package://`` URIs, joint facts.

Pure (no rclpy). ``package://NAME/rest`` resolves, in order, through folders given
by the caller, ``$ROS_PACKAGE_PATH`` (folders that hold packages), the ament
index (``$AMENT_PREFIX_PATH`` and ``ament_index_python``) and the
``cmeel.prefix`` of this Python (where pip puts ``example-robot-data``), and
``armpilot`` itself through :func:`armpilot.paths.share_dir`. The joint table
is parsed straight from the XML, independently of pinocchio (which reports
continuous joints as cos/sin pairs).
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import re
import sys
import sysconfig
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

#: Largest robot description accepted, bytes (real ones are < 1 MB).
MAX_URDF_BYTES = 16 * 1024 * 1024
_PACKAGE_URI = re.compile(r"package:///?([A-Za-z0-9_\-.]+)/")  # package:///NAME/ too (TALOS's meshes)


class RobotDescriptionError(ValueError):
    """A robot description that cannot be used; the message names what and where."""


@dataclass(frozen=True)
class UrdfJoint:
    """One movable joint as the URDF declares it (rad or m)."""

    name: str
    type: str  # revolute | continuous | prismatic
    lower: float  # -inf for continuous joints
    upper: float  # +inf for continuous joints
    velocity: float  # 0 when the URDF gives none
    effort: float
    mimic: str | None = None
    multiplier: float = 1.0
    offset: float = 0.0

    @property
    def continuous(self) -> bool:
        return self.type == "continuous"


def _share_prefixes() -> list[Path]:
    """Folders ``P`` where a package lives at ``P/share/NAME``."""
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    purelib = Path(sysconfig.get_paths()["purelib"])
    prefixes += [purelib / "cmeel.prefix", Path(sys.prefix)]
    return prefixes


def package_dir(name: str, search: Sequence[str | Path] = ()) -> Path:
    """Folder of ROS package ``name`` (see the module docstring for the order).

    Raises:
        RobotDescriptionError: naming the package and every place looked in.
    """
    looked: list[str] = []
    for folder in list(search) + [p for p in os.environ.get("ROS_PACKAGE_PATH", "").split(os.pathsep) if p]:
        candidate = Path(folder).expanduser() / name
        looked.append(str(candidate))
        if candidate.is_dir():
            return candidate
        if Path(folder).name == name and Path(folder).is_dir():
            return Path(folder)
    for prefix in _share_prefixes():
        candidate = prefix / "share" / name
        looked.append(str(candidate))
        if candidate.is_dir():
            return candidate
    if name == "armpilot":
        from armpilot.paths import share_dir

        return share_dir()
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(name))
    except Exception:  # noqa: BLE001 - not indexed: fall through to the error below
        pass
    raise RobotDescriptionError(f"package '{name}' not found (looked in {', '.join(looked)} and the ament index); "
                                f"add its parent folder to the profile's package_paths or $ROS_PACKAGE_PATH")


def resolve_uri(uri: str, search: Sequence[str | Path] = (), relative_to: Path | None = None) -> Path:
    """A file path for ``package://``, ``file://`` or a plain (possibly relative) path."""
    if uri.startswith("package://"):
        name, _, rest = uri[len("package://"):].partition("/")
        return package_dir(name, search) / rest
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    path = Path(uri).expanduser()
    if not path.is_absolute() and relative_to is not None:
        path = relative_to / path
    return path


def resolve_package_uris(xml: str, search: Sequence[str | Path] = ()) -> str:
    """``xml`` with every ``package://NAME/`` replaced by the package's absolute folder."""
    cache: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in cache:
            cache[name] = str(package_dir(name, search)) + "/"
        return cache[name]

    return _PACKAGE_URI.sub(replace, xml)


def read_description(path: Path, mappings: dict[str, str] | None = None) -> str:
    """URDF text of ``path``; ``.xacro`` files are expanded with the PyPI ``xacro`` package."""
    if not path.is_file():
        raise RobotDescriptionError(f"robot description {path} does not exist")
    if path.stat().st_size > MAX_URDF_BYTES:
        raise RobotDescriptionError(f"robot description {path} is larger than {MAX_URDF_BYTES} bytes")
    if path.suffix != ".xacro":
        return path.read_text()
    try:
        import xacro
    except ImportError as error:
        raise RobotDescriptionError(f"{path} is a xacro file; install the 'xacro' package to expand it") from error
    try:
        return xacro.process_file(str(path), mappings=mappings or {}).toxml()
    except Exception as error:  # noqa: BLE001 - xacro raises many types; name the file
        raise RobotDescriptionError(f"xacro could not expand {path}: {error}") from error


def description_hash(xml: str) -> str:
    """Short SHA-256 of a description, logged by every node and stored with recordings."""
    return hashlib.sha256(xml.encode()).hexdigest()[:12]


def _float(element: ET.Element | None, key: str, default: float) -> float:
    if element is None or element.get(key) is None:
        return default
    return float(element.get(key))  # type: ignore[arg-type]


def parse_joints(xml: str) -> dict[str, UrdfJoint]:
    """Every movable joint of a URDF by name (fixed and floating joints left out).

    Raises:
        RobotDescriptionError: for XML that does not parse or is not a ``<robot>``.
    """
    if len(xml) > MAX_URDF_BYTES:
        raise RobotDescriptionError(f"robot description larger than {MAX_URDF_BYTES} bytes")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        raise RobotDescriptionError(f"robot description is not valid XML: {error}") from error
    if root.tag != "robot":
        raise RobotDescriptionError(f"robot description's root element is <{root.tag}>, expected <robot>")
    joints: dict[str, UrdfJoint] = {}
    for element in root.findall("joint"):
        kind = element.get("type", "")
        if kind not in ("revolute", "continuous", "prismatic"):
            continue
        limit = element.find("limit")
        mimic = element.find("mimic")
        unbounded = kind == "continuous"
        joints[element.get("name", "")] = UrdfJoint(
            name=element.get("name", ""),
            type=kind,
            lower=-math.inf if unbounded else _float(limit, "lower", 0.0),
            upper=math.inf if unbounded else _float(limit, "upper", 0.0),
            velocity=_float(limit, "velocity", 0.0),
            effort=_float(limit, "effort", 0.0),
            mimic=None if mimic is None else mimic.get("joint"),
            multiplier=_float(mimic, "multiplier", 1.0),
            offset=_float(mimic, "offset", 0.0),
        )
    return joints


#: ``<disable_collisions reason=...>`` pairs still checked: the MoveIt Setup Assistant's "Default" pairs only touch at
#: the all-zero pose, which folds some arms onto themselves (the Panda's hand against link 5 at joint 6's stop);
#: armpilot drops pairs touching at home, or one joint apart at zero, itself (``safety/workspace.py``).
CHECKED_SRDF_REASONS = frozenset({"Default"})


def srdf_disabled_pairs(xml: str) -> list[tuple[str, str]]:
    """Link pairs an SRDF's ``<disable_collisions>`` lists, but those disabled for ``CHECKED_SRDF_REASONS``."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        raise RobotDescriptionError(f"SRDF is not valid XML: {error}") from error
    return [(e.get("link1", ""), e.get("link2", "")) for e in root.iter("disable_collisions")
            if e.get("reason", "") not in CHECKED_SRDF_REASONS]


def check_base_frame(xml: str, base_frame: str, robot: str = "") -> None:
    """Refuse a ``base_frame`` that is not a link of the URDF or that a movable joint carries.

    Every pose armpilot publishes and every length of the profile (workspace box, table height, camera
    extrinsics) is in ``base_frame``; the link may sit anywhere on the URDF's fixed tree (UR's ``base``, an
    arm on a pedestal), but a joint between it and the root would move it with positions no controller
    of the arm reports.
    """
    root = ET.fromstring(xml)
    links = {link.get("name", "") for link in root.findall("link")}
    if base_frame not in links:
        raise RobotDescriptionError(f"robot '{robot}': base_frame '{base_frame}' is not a link of the URDF "
                                    f"(links: {sorted(links)[:12]}{' ...' if len(links) > 12 else ''})")
    parent_joint = {j.find("child").get("link", ""): j for j in root.findall("joint")  # type: ignore[union-attr]
                    if j.find("child") is not None}
    link, seen = base_frame, set()
    while link in parent_joint and link not in seen:
        seen.add(link)
        joint = parent_joint[link]
        if joint.get("type", "") != "fixed":
            raise RobotDescriptionError(f"robot '{robot}': base_frame '{base_frame}' moves with the "
                                        f"{joint.get('type')} joint '{joint.get('name')}'; choose a link fixed "
                                        f"to the URDF's root (e.g. the arm's mounting link)")
        parent = joint.find("parent")
        link = "" if parent is None else parent.get("link", "")


def links_of_joints(xml: str, joints: set[str]) -> set[str]:
    """The parent and child links of the URDF's ``joints`` (for a gripper: its hand and fingers)."""
    links = set()
    for joint in ET.fromstring(xml).findall("joint"):
        if joint.get("name") in joints:
            links.update(element.get("link") for element in (joint.find("parent"), joint.find("child")))
    return links


def gripper_link_names(xml: str, joints: Mapping[str, UrdfJoint], gripper_joint: str) -> set[str]:
    """Links moved by ``gripper_joint`` or a joint mimicking it, and the hand they hang from (none without one)."""
    if not gripper_joint:
        return set()
    return links_of_joints(xml, {gripper_joint} | {n for n, j in joints.items() if j.mimic == gripper_joint})


def collisions_from_visuals(xml: str, links: set[str]) -> tuple[str, tuple[str, ...]]:
    """``xml`` in which each of ``links`` that has a <visual> but no <collision> collides with its visuals'
    geometry, and the links so completed (sorted). MuJoCo, pinocchio and the self filter read only <collision>:
    the SO-100's jaws, visual only, closed through every box, unseen by the sim's camera."""
    root = ET.fromstring(xml)
    bare = [link for link in root.findall("link") if link.get("name") in links
            and link.find("collision") is None and link.find("visual") is not None]
    if not bare:
        return xml, ()
    for link in bare:
        for visual in link.findall("visual"):
            ET.SubElement(link, "collision").extend(copy.deepcopy(child) for child in visual
                                                    if child.tag in ("origin", "geometry"))
    return ET.tostring(root, encoding="unicode"), tuple(sorted(str(link.get("name")) for link in bare))
