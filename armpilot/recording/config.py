"""What the recorder records: topics, their types and QoS (pure; declared as ROS parameters)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rosbags.rosbag2.metadata import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                      QosTime)

from armpilot.fields import describe as _describe


def _qos(depth: int, reliable: bool, latched: bool) -> Qos:
    zero = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=depth,
               reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
               deadline=zero, lifespan=zero, liveliness=QosLiveliness.AUTOMATIC,
               liveliness_lease_duration=zero, avoid_ros_namespace_conventions=False)


#: The profiles of ``armpilot.ros_nodes.qos`` as the bag's ``offered_qos_profiles`` (same names, lower case).
QOS_PRESETS: dict[str, Qos] = {
    "camera": _qos(2, reliable=True, latched=False),
    "sensor": _qos(5, reliable=False, latched=False),
    "state": _qos(10, reliable=True, latched=False),
    "command": _qos(10, reliable=True, latched=False),
    "latched": _qos(1, reliable=True, latched=True),
}

#: ``armpilot record``: sim seconds recorded after the task succeeds by default (the final state is in the bag),
#: and the most it accepts.
LINGER_S, MAX_LINGER_S = 0.5, 10.0
#: ``record --policy handover``: the learned policy drives for U(0, this) sim seconds before the expert takes
#: over, by default (the push expert finishes in about 6 s), and the most it accepts.
HANDOVER_WITHIN_S, MAX_HANDOVER_S = 6.0, 30.0

_TYPE_NAME = re.compile(r"^[A-Za-z][\w]*/msg/[A-Z]\w*$")

# (topic, type, qos preset): the topics in armpilot.ros_nodes.topics and the QoS their publishers offer
DEFAULT_TOPICS: tuple[tuple[str, str, str], ...] = (
    ("/joint_states", "sensor_msgs/msg/JointState", "state"),
    ("/arm_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory", "command"),
    ("/safety/commanded", "trajectory_msgs/msg/JointTrajectory", "command"),  # with a separate gripper's column
    ("/policy/candidates", "sensor_msgs/msg/PointCloud2", "command"),
    ("/camera/camera/color/image_raw", "sensor_msgs/msg/Image", "camera"),
    ("/camera/camera/aligned_depth_to_color/image_raw", "sensor_msgs/msg/Image", "camera"),
    ("/camera/camera/color/camera_info", "sensor_msgs/msg/CameraInfo", "camera"),
    ("/camera/camera/aligned_depth_to_color/camera_info", "sensor_msgs/msg/CameraInfo", "camera"),
    ("/perception/objects", "geometry_msgs/msg/PoseArray", "state"),
    ("/perception/points", "sensor_msgs/msg/PointCloud2", "camera"),
    ("/perception/tracks", "sensor_msgs/msg/PointCloud2", "camera"),
    ("/sim/task_success", "std_msgs/msg/Bool", "state"),
    ("/sim/episode", "std_msgs/msg/String", "latched"),
    ("/policy/goal", "geometry_msgs/msg/PoseStamped", "latched"),
    ("/policy/instruction", "std_msgs/msg/String", "latched"),
)


@dataclass(frozen=True)
class TopicSpec:
    """One recorded topic: name, ROS type name (``pkg/msg/Type``) and QoS preset name."""

    name: str
    msgtype: str
    qos: str = "state"

    @property
    def offered_qos(self) -> Qos:
        """The QoS profile written to the bag's metadata."""
        return QOS_PRESETS[self.qos]


@dataclass(frozen=True)
class RecorderConfig:
    """Recorder node parameters: where episodes go and what is recorded."""

    output_dir: str = field(default="episodes", metadata=_describe(
        "folder of the episode bags (episode_000000/, ...); created if missing"))
    topics: tuple[str, ...] = field(default=tuple(t[0] for t in DEFAULT_TOPICS),
                                    metadata=_describe("recorded topic names"))
    types: tuple[str, ...] = field(default=tuple(t[1] for t in DEFAULT_TOPICS), metadata=_describe(
        "message type of each topic, parallel to 'topics' (e.g. sensor_msgs/msg/JointState)"))
    qos_profiles: tuple[str, ...] = field(default=tuple(t[2] for t in DEFAULT_TOPICS), metadata=_describe(
        "QoS of each topic, parallel to 'topics': camera | sensor | state | command | latched"))
    queue_depth: int = field(default=100, metadata=_describe(
        "subscriber history depth of every reliable topic (messages), so bursts are not dropped"))
    chunk_interval_s: float = field(default=1.0, metadata=_describe(
        "close an MCAP chunk at least this often, s: bounds what a crash loses"))
    progress_period_s: float = field(default=2.0, metadata=_describe(
        "period of the progress line and diagnostics while recording, s"))

    def __post_init__(self) -> None:
        if not self.output_dir:
            raise ValueError("parameter 'output_dir' is empty")
        if not (len(self.topics) == len(self.types) == len(self.qos_profiles)):
            raise ValueError(f"parameters 'topics' ({len(self.topics)}), 'types' ({len(self.types)}) and "
                             f"'qos_profiles' ({len(self.qos_profiles)}) must have the same length")
        if len(set(self.topics)) != len(self.topics):
            raise ValueError(f"parameter 'topics' lists a topic twice: {list(self.topics)}")
        for topic, msgtype, qos in zip(self.topics, self.types, self.qos_profiles):
            if not _TYPE_NAME.match(msgtype):
                raise ValueError(f"type '{msgtype}' of topic '{topic}' is not of the form pkg/msg/Type")
            if qos not in QOS_PRESETS:
                raise ValueError(f"qos '{qos}' of topic '{topic}' is not one of {sorted(QOS_PRESETS)}")
        if self.queue_depth < 1:
            raise ValueError("parameter 'queue_depth' must be >= 1")
        if self.chunk_interval_s <= 0 or self.progress_period_s <= 0:
            raise ValueError("parameters 'chunk_interval_s' and 'progress_period_s' must be > 0")

    def topic_specs(self) -> tuple[TopicSpec, ...]:
        """The recorded topics as ``TopicSpec``."""
        return tuple(TopicSpec(*row) for row in zip(self.topics, self.types, self.qos_profiles))
