"""The camera frames, clouds and tracks a policy backend needs, judged fresh against the observation (no ROS)."""

from __future__ import annotations

from collections import deque

import numpy as np

#: Frames kept per history topic (2 s of a 15 Hz sensor); other topics keep their newest only (a camera
#: frame is ~1 MB).
KEEP_FRAMES = 30


class SensorFrames:
    """Keeps the newest decoded messages of each sensor topic a backend reads.

    ``topics``: the topics to keep; ``timeout``: s, the oldest a frame may be, measured from the stamp of
    the observation it goes with; ``history``: the topics whose last ``keep`` frames are kept for history
    frames (``held`` looks back through them).
    """

    def __init__(self, topics: tuple[str, ...], timeout: float, history: tuple[str, ...] = (),
                 keep: int = KEEP_FRAMES) -> None:
        self.topics, self.timeout = topics, timeout
        self._frames: dict[str, deque[tuple[float, np.ndarray]]] = {
            t: deque(maxlen=keep if t in history else 1) for t in topics}

    def put(self, topic: str, stamp: float, frame: np.ndarray) -> None:
        """The frame of ``topic`` stamped ``stamp`` s (one stamped before the newest kept restarts the topic:
        a clock that jumped back)."""
        frames = self._frames[topic]
        if frames and stamp < frames[-1][0]:
            frames.clear()
        frames.append((stamp, frame))

    def at(self, stamp: float) -> tuple[dict[str, np.ndarray], list[tuple[str, float]]]:
        """(topic -> newest frame of every fresh topic, [(topic, age s)] of the stale or missing ones) at
        ``stamp``."""
        fresh, stale = {}, []
        for topic in self.topics:
            frame_stamp, frame = self._frames[topic][-1] if self._frames[topic] else (float("-inf"), None)
            if stamp - frame_stamp > self.timeout:
                stale.append((topic, stamp - frame_stamp))
            else:
                fresh[topic] = frame
        return fresh, stale

    def held(self, topic: str, stamp: float) -> np.ndarray | None:
        """The newest frame of ``topic`` stamped at or before ``stamp`` s (the oldest kept when every frame is
        later, as the dataset clamps history to an episode's first samples; None before any)."""
        frames = self._frames[topic]
        if not frames:
            return None
        return next((frame for frame_stamp, frame in reversed(frames) if frame_stamp <= stamp), frames[0][1])
