"""Read one recorded episode (a rosbag2 folder, MCAP storage) into numpy streams.

Uses ``rosbags`` (pure Python, no ROS install). Each topic becomes stamps
(N,) int64 ns plus arrays; stamps are header stamps when the message has a
non-zero one, else the bag's receive time. No rclpy import.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from armpilot.ros_nodes import topics

from .command_reference import trajectory_grid
from .points_feature import POINTS_TOPIC, decode_points_msg
from .tracks_feature import TRACKS_TOPIC, decode_tracks_msg

OBJECT_TOPIC = topics.PERCEPTION_OBJECTS
REQUIRED_TOPICS = (topics.JOINT_STATES, topics.CONTROLLER_COMMAND, topics.COLOR_IMAGE,
                   topics.DEPTH_IMAGE, OBJECT_TOPIC)
OPTIONAL_TOPICS = (topics.COLOR_INFO, topics.SIM_TASK_SUCCESS, topics.SIM_EPISODE, TRACKS_TOPIC, POINTS_TOPIC,
                   topics.POLICY_GOAL, topics.POLICY_INSTRUCTION, topics.SAFETY_COMMANDED)


class BagError(RuntimeError):
    """An episode bag cannot be used; the message names the folder (and topic)."""


class BagDamaged(BagError):
    """The bag's file cannot be read to its end (truncated or corrupt): part of it may be recoverable."""


@dataclass
class TopicData:
    """One topic's samples: ``stamps`` (N,) int64 ns, ``values`` (N, *D)."""

    stamps: np.ndarray
    values: np.ndarray


@dataclass
class EpisodeStreams:
    """An episode as arrays.

    Attributes:
        folder: the bag folder.
        topics: topic -> TopicData. Joint states: (N, J) float64 positions;
            commands: (N, J) float64 first trajectory point, in joint-state order
            (of the commanded joints: joint states' other columns are left out);
            color: (N, H, W, 3) uint8; depth: (N, H, W) uint16 mm;
            objects: (N, 7) float64 xyz + quaternion xyzw of the first pose;
            task success: (N,) bool; tracks (optional): (N, K, T, 3) float32
            base_link xyz, NaN where missing (see ``tracks_feature``).
        joint_names: (J,) the commanded joints (the first command's) in the first joint state's order,
            the column order of state/action.
        task: the task name from ``/sim/episode`` ("unspecified" without it).
        intrinsics: fx, fy, cx, cy, width, height from camera_info, if any.
        goal: (3,) task goal from ``/sim/episode`` (base_link, m), or None.
        command_grid: each command's trajectory on the ``command_reference`` grid, values
            (N, G, J) in joint-state order (the action label's source).
    """

    folder: Path
    topics: dict[str, TopicData]
    joint_names: tuple[str, ...]
    task: str = "unspecified"
    intrinsics: dict[str, float] = field(default_factory=dict)
    goal: np.ndarray | None = None
    command_grid: TopicData | None = None


def _stamp(msg: Any, log_time: int) -> int:
    header = getattr(msg, "header", None)
    if header is not None:
        ns = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        if ns > 0:
            return ns
    return int(log_time)


def _image(msg: Any, encoding: str) -> np.ndarray:
    if msg.encoding != encoding:
        raise ValueError(f"image encoding is '{msg.encoding}', expected '{encoding}'")
    dtype, channels = (np.dtype(">u2" if msg.is_bigendian else "<u2"), 1) if encoding == "16UC1" \
        else (np.dtype("u1"), 3)
    row = msg.width * channels * dtype.itemsize
    data = np.asarray(msg.data, np.uint8)
    if msg.step < row or data.size != msg.height * msg.step:
        raise ValueError(f"image data has {data.size} B for {msg.height} rows of step {msg.step}")
    rows = data.reshape(msg.height, msg.step)[:, :row]
    img = np.ascontiguousarray(rows).view(dtype).reshape(msg.height, msg.width, channels)
    return img[:, :, 0].astype(np.uint16) if channels == 1 else img


def _first_pose(msg: Any) -> np.ndarray | None:
    if not msg.poses:
        return None
    p = msg.poses[0]
    return np.array([p.position.x, p.position.y, p.position.z,
                     p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w])


def _command(msg: Any, lag: float = 0.0) -> tuple[tuple[str, ...], np.ndarray] | None:
    """(joint names, (G + 1, J)): the first point, then the trajectory on the ``command_reference`` grid.

    A command is stored from when it was received (it replaces the previous one then, as a
    joint_trajectory_controller does): ``lag`` s after its header stamp, so the grid starts there.
    """
    if not msg.points:
        return None
    positions = np.asarray([p.positions for p in msg.points], np.float64)
    times = np.array([p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]) - lag
    return tuple(msg.joint_names), np.concatenate([positions[:1], trajectory_grid(times, positions)])


_DECODERS: dict[str, Callable[[Any], Any]] = {
    topics.COLOR_IMAGE: lambda m: _image(m, "rgb8"),
    topics.DEPTH_IMAGE: lambda m: _image(m, "16UC1"),
    OBJECT_TOPIC: _first_pose,
    topics.JOINT_STATES: lambda m: (tuple(m.name), np.asarray(m.position, np.float64)),
    topics.CONTROLLER_COMMAND: _command,
    topics.SIM_TASK_SUCCESS: lambda m: bool(m.data),
    topics.SIM_EPISODE: lambda m: m.data,
    topics.POLICY_INSTRUCTION: lambda m: m.data,
    topics.POLICY_GOAL: lambda m: np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z]),
    topics.COLOR_INFO: lambda m: m,
    TRACKS_TOPIC: decode_tracks_msg,
    POINTS_TOPIC: decode_points_msg,
}


def _reorder(folder: Path, topic: str, names: tuple[str, ...], values: np.ndarray,
             order: tuple[str, ...]) -> np.ndarray:
    if names == order:
        return values
    index = {n: i for i, n in enumerate(names)}
    missing = [n for n in order if n not in index]
    if missing:
        raise BagError(f"{folder}: topic '{topic}' lacks joints {missing} of /joint_states {list(order)}")
    return values[..., [index[n] for n in order]]


def _read_raw(folder: Path, wanted: Iterable[str]) -> dict[str, list[tuple[int, Any]]]:
    from rosbags.highlevel import AnyReader

    from armpilot.recording import read_cdr

    raw: dict[str, list[tuple[int, Any]]] = {t: [] for t in wanted}
    current = "(none: opening the file)"
    try:
        with AnyReader([folder]) as reader:
            conns = [c for c in reader.connections if c.topic in raw]
            for conn, log_time, data in reader.messages(connections=conns):
                current = conn.topic
                # tolerant of the trailing CDR padding Fast DDS leaves (see armpilot.recording.read_cdr)
                msg = read_cdr(reader.typestore, data, conn.msgtype)
                if conn.topic in (topics.CONTROLLER_COMMAND, topics.SAFETY_COMMANDED):  # JTC: takes over when
                    # received, anchored at its stamp
                    issued = _stamp(msg, log_time)
                    lag = (int(log_time) - issued) / 1e9
                    command = _command(msg, lag)
                    raw[conn.topic].append((int(log_time), None if command is None else (*command, issued)))
                else:
                    raw[conn.topic].append((_stamp(msg, log_time), _DECODERS[conn.topic](msg)))
    except BagError:
        raise
    except Exception as exc:  # rosbags/mcap raise many types for damaged files
        raise BagDamaged(f"{folder}: cannot read the bag (truncated or corrupt?) while reading topic "
                       f"'{current}': {type(exc).__name__}: {exc}") from exc
    return raw


def bag_custom_data(folder: Path) -> dict[str, str]:
    """The ``custom_data`` of an episode's ``metadata.yaml`` (robot identity, episode index); {} without one."""
    import yaml

    path = Path(folder) / "metadata.yaml"
    if not path.is_file() or path.stat().st_size > 1 << 20:
        return {}
    try:
        info = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return {}
    custom = (info.get("rosbag2_bagfile_information") or {}).get("custom_data") or {}
    return {str(k): str(v) for k, v in custom.items()} if isinstance(custom, dict) else {}


def read_episode(folder: Path, required: Iterable[str] = REQUIRED_TOPICS) -> EpisodeStreams:
    """Reads an episode bag folder.

    Raises:
        BagError: not a bag folder, a truncated/corrupt file, an empty episode,
            a required topic with no (usable) message, an undecodable message;
            the message names the folder and the topic.
    """
    folder = Path(folder)
    required = tuple(required)
    if not (folder / "metadata.yaml").is_file() and not list(folder.glob("*.mcap")):
        raise BagError(f"{folder}: not a rosbag2 folder (no metadata.yaml or .mcap)")
    try:
        raw = _read_raw(folder, set(required) | set(OPTIONAL_TOPICS))
    except ValueError as exc:
        raise BagError(f"{folder}: {exc}") from exc
    if not any(raw.values()):
        raise BagError(f"{folder}: the episode is empty (no message on {sorted(raw)})")
    for topic in required:
        if not any(v is not None for _, v in raw[topic]):
            raise BagError(f"{folder}: topic '{topic}' is missing (no usable message); present: "
                           f"{sorted(t for t, v in raw.items() if v)}")
    raw = _since_episode_start(_gripper_commands_included(raw))
    for topic in required:
        if not any(v is not None for _, v in raw[topic]):
            raise BagError(f"{folder}: topic '{topic}' has no message from after the episode's start (the sim "
                           f"reset announced on {topics.SIM_EPISODE})")
    # the joint states' order, of the joints the controller is commanded (/joint_states may carry more: a
    # separate gripper, a torso, a head, which are no part of the state or the action); where two drivers publish
    # (the arm's, a gripper's), the one naming more joints first: the same order in every episode, whichever
    # driver spoke first after a reset
    named = sorted(dict.fromkeys(tuple(v[0]) for _, v in raw[topics.JOINT_STATES] if v is not None), key=len,
                   reverse=True)
    joint_names = tuple(dict.fromkeys(n for names in named for n in names))
    commands = [v for _, v in raw.get(topics.CONTROLLER_COMMAND, []) if v is not None]
    if commands:
        joint_names = tuple(n for n in joint_names if n in commands[0][0]) or joint_names
    out: dict[str, TopicData] = {}
    command_grid = None
    for topic, samples in raw.items():
        samples = [(s, v) for s, v in samples if v is not None]
        if not samples or topic in (topics.SIM_EPISODE, topics.COLOR_INFO, topics.POLICY_GOAL,
                                    topics.POLICY_INSTRUCTION):
            continue
        if topic == topics.JOINT_STATES and not (samples := _merged_joint_states(samples, joint_names)):
            raise BagError(f"{folder}: no moment at which '{topic}' had reported all of {list(joint_names)}")
        stamps = np.array([s for s, _ in samples], np.int64)
        if topic in (topics.JOINT_STATES, topics.CONTROLLER_COMMAND):
            values = np.stack([_reorder(folder, topic, n, v, joint_names) for _, (n, v, *_) in samples])
            if topic == topics.CONTROLLER_COMMAND:
                command_grid = TopicData(stamps, values[:, 1:])
                values = values[:, 0]
        else:
            values = np.stack([np.asarray(v) for _, v in samples])
        out[topic] = TopicData(stamps, values)
    instructions = [text for _, text in raw[topics.POLICY_INSTRUCTION] if text and text.strip()]
    goals = [g for _, g in raw[topics.POLICY_GOAL] if g is not None and np.all(np.isfinite(g))]
    return EpisodeStreams(folder, out, joint_names, instructions[-1].strip() if instructions else
                          _task(raw[topics.SIM_EPISODE]), _intrinsics(raw[topics.COLOR_INFO]),
                          goals[-1] if goals else _goal(raw[topics.SIM_EPISODE]), command_grid)


def _merged_joint_states(samples: list[tuple[int, Any]], joint_names: tuple[str, ...]) -> list[tuple[int, Any]]:
    """Joint states as (stamp, (names, positions)) of every one of ``joint_names``: a message carrying some of them
    (a gripper's driver publishing its own) is completed with the latest value of the others; messages before
    each joint was read once are left out."""
    latest: dict[str, float] = {}
    merged = []
    for stamp, (names, positions) in sorted(samples, key=lambda sample: sample[0]):  # two drivers' stamps interleave
        latest.update(zip(names, positions))
        if len(latest) >= len(joint_names) and all(n in latest for n in joint_names):
            merged.append((stamp, (joint_names, np.array([latest[n] for n in joint_names]))))
    return merged


def _gripper_commands_included(raw: dict[str, list[tuple[int, Any]]]) -> dict[str, list[tuple[int, Any]]]:
    """The commands are the safety node's copy (``/safety/commanded``) when it carries joints the controller's
    lack: a gripper on a controller of its own, whose column only the copy has (the action needs it). Its
    messages without that column (a hold before any gripper command) are left out."""
    copies = raw.pop(topics.SAFETY_COMMANDED, [])
    names = [set(v[0]) for _, v in copies if v is not None]
    arm = [set(v[0]) for _, v in raw.get(topics.CONTROLLER_COMMAND, []) if v is not None]
    if not names or not arm or not max(names, key=len) > arm[0]:
        return raw
    full = max(names, key=len)
    return {**raw, topics.CONTROLLER_COMMAND: [(s, v) for s, v in copies if v is None or set(v[0]) >= full]}


def _episode_start_ns(samples: list[tuple[int, Any]]) -> int | None:
    """The sim time (ns) of the last episode announcement's reset (``start``, s), None without one."""
    for _, text in reversed(samples):
        try:
            start = float(json.loads(text)["start"])
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if np.isfinite(start) and start > 0.0:
            return int(round(start * 1e9))
    return None


def _since_episode_start(raw: dict[str, list[tuple[int, Any]]]) -> dict[str, list[tuple[int, Any]]]:
    """Messages of the episode only: a recorder that lags the sim can still take in the previous episode's last
    joint states, frames and commands after the reset. Samples stamped before the reset the sim announced go;
    so do commands stamped at or before it (the sim rejects those: ``before_reset``; a command stamped 0, "on
    receipt", counts from when it was received). Without an announcement (a real arm) nothing is dropped."""
    start = _episode_start_ns(raw.get(topics.SIM_EPISODE, []))
    if start is None:
        return raw
    kept = {}
    for topic, samples in raw.items():
        if topic == topics.CONTROLLER_COMMAND:
            kept[topic] = [(s, v) for s, v in samples if v is None or v[2] > start]
        elif topic in (topics.SIM_EPISODE, topics.COLOR_INFO, topics.POLICY_GOAL, topics.POLICY_INSTRUCTION):
            kept[topic] = samples
        else:
            kept[topic] = [(s, v) for s, v in samples if s >= start]
    return kept


def _task(samples: list[tuple[int, Any]]) -> str:
    for _, text in samples:
        try:
            task = json.loads(text).get("task")
        except (ValueError, AttributeError):
            continue
        if task:
            return str(task)
    return "unspecified"


def _goal(samples: list[tuple[int, Any]]) -> np.ndarray | None:
    """The last episode announcement's finite (3,) goal, if any."""
    for _, text in reversed(samples):
        try:
            goal = np.asarray(json.loads(text).get("goal"), np.float64).reshape(3)
        except (ValueError, AttributeError, TypeError):
            continue
        if np.all(np.isfinite(goal)):
            return goal
    return None


def _intrinsics(samples: list[tuple[int, Any]]) -> dict[str, float]:
    if not samples:
        return {}
    info = samples[0][1]
    k = np.asarray(info.k, np.float64)
    return {"fx": float(k[0]), "fy": float(k[4]), "cx": float(k[2]), "cy": float(k[5]),
            "width": int(info.width), "height": int(info.height)}
