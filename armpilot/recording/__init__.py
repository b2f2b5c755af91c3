"""Episode recording: one rosbag2 (MCAP) bag per episode, written atomically (pure, no rclpy).

``EpisodeRecorder`` numbers, writes, finalises and discards episodes and
recovers the leftovers of a crashed recorder; ``RecorderConfig`` holds the
recorder node's parameters; ``read_cdr`` deserialises recorded messages with
the ``rosbags`` typestore, tolerating Fast DDS's trailing alignment padding.
"""

from armpilot.recording.config import QOS_PRESETS, RecorderConfig, TopicSpec
from armpilot.recording.episode_bag import EpisodeRecorder, RecordingError, RecordingStats, read_cdr
from armpilot.recording.recovery import RecoveryResult, recover_leftovers

__all__ = ["QOS_PRESETS", "RecorderConfig", "TopicSpec", "EpisodeRecorder", "RecordingError",
           "RecordingStats", "read_cdr", "RecoveryResult", "recover_leftovers"]
