"""The latest camera frame / cloud a policy backend needs, judged fresh against the observation (no ROS)."""

from __future__ import annotations

import numpy as np


class SensorFrames:
    """Keeps the newest decoded message of each sensor topic a backend reads.

    ``topics``: the topics to keep; ``timeout``: s, the oldest a frame may be, measured from the stamp of
    the observation it goes with.
    """

    def __init__(self, topics: tuple[str, ...], timeout: float) -> None:
        self.topics, self.timeout = topics, timeout
        self._latest: dict[str, tuple[float, np.ndarray]] = {}

    def put(self, topic: str, stamp: float, frame: np.ndarray) -> None:
        """The frame of ``topic`` stamped ``stamp`` s."""
        self._latest[topic] = (stamp, frame)

    def at(self, stamp: float) -> tuple[dict[str, np.ndarray], list[tuple[str, float]]]:
        """(topic -> frame of every fresh topic, [(topic, age s)] of the stale or missing ones) at ``stamp``."""
        fresh, stale = {}, []
        for topic in self.topics:
            frame_stamp, frame = self._latest.get(topic, (float("-inf"), None))
            if stamp - frame_stamp > self.timeout:
                stale.append((topic, stamp - frame_stamp))
            else:
                fresh[topic] = frame
        return fresh, stale
