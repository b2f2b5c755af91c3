"""The arm's pose at a camera frame's stamp, for the self filter (pure: no ROS).

A frame is filtered with the joint state nearest its stamp, never with whatever arrived last: after a simulator
reset (or on a fast arm) the newest joint state can still describe the arm before the frame was taken, and the
arm left in the frame then became an "object" (a Panda's hand at home, half a metre over the table, taken for
the box to pick). ``verdict`` says whether a frame can be filtered now, must wait for a newer joint state, or
cannot be filtered at all.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from enum import Enum
from typing import Generic, TypeVar

import numpy as np

#: Stamps this close (s) count as the same instant (nanosecond rounding of ROS stamps).
SAME_INSTANT = 1e-6
#: Frames kept waiting for their joint state at most (a camera at 30 Hz: 0.27 s of joint-state lag).
MAX_WAITING_FRAMES = 8

Item = TypeVar("Item")


class FrameJoints(Enum):
    """What the history can say about the arm at a frame's stamp."""

    READY = "ready"      # a joint state at or after the frame is here: ``at`` gives the nearest
    WAIT = "wait"        # the newest joint state is older than the frame, but recent: wait for the next
    MISSING = "missing"  # no joint state within ``max_age`` of the frame: the arm's pose is unknown


class JointHistory:
    """The last ``capacity`` joint states (stamp s, positions (J,) rad or m), in stamp order."""

    def __init__(self, max_age: float, capacity: int = 512) -> None:
        if not max_age > 0.0 or capacity < 1:
            raise ValueError(f"max_age must be > 0 s and capacity >= 1, got {max_age}, {capacity}")
        self.max_age = max_age
        self._stamps: deque[float] = deque(maxlen=capacity)
        self._positions: deque[np.ndarray] = deque(maxlen=capacity)

    @property
    def newest_stamp(self) -> float:
        """The newest joint state's stamp (s); -inf when there is none."""
        return self._stamps[-1] if self._stamps else float("-inf")

    def add(self, stamp: float, positions: np.ndarray) -> None:
        """Keep one joint state; one stamped before the newest means the clock went back (a bag replayed in a
        loop, a restarted driver): what was kept is forgotten."""
        if not np.isfinite(stamp):
            return
        if stamp < self.newest_stamp - SAME_INSTANT:
            self._stamps.clear()
            self._positions.clear()
        self._stamps.append(float(stamp))
        self._positions.append(np.asarray(positions, dtype=float).copy())

    def verdict(self, stamp: float) -> FrameJoints:
        """Whether the arm's pose at a frame stamped ``stamp`` (s) is known, coming, or unknown."""
        newest = self.newest_stamp
        if newest >= stamp - SAME_INSTANT:
            return FrameJoints.READY if self.at(stamp) is not None else FrameJoints.MISSING
        return FrameJoints.WAIT if stamp - newest <= self.max_age else FrameJoints.MISSING

    def at(self, stamp: float) -> np.ndarray | None:
        """(J,) the joint state nearest ``stamp`` (s), None when none lies within ``max_age`` of it."""
        if not self._stamps:
            return None
        stamps = self._stamps
        i = bisect_left(stamps, stamp)
        best = min((j for j in (i - 1, i) if 0 <= j < len(stamps)), key=lambda j: abs(stamps[j] - stamp))
        return self._positions[best].copy() if abs(stamps[best] - stamp) <= self.max_age else None


class WaitingFrames(Generic[Item]):
    """Frames newer than every joint state, oldest first, until a joint state at or after each arrives. A single
    slot starved a node whose joint states lag its camera by more than a frame (each frame replaced the last)."""

    def __init__(self, capacity: int = MAX_WAITING_FRAMES) -> None:
        self._frames: deque[tuple[float, Item]] = deque()
        self.capacity = capacity

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, stamp: float, item: Item) -> bool:
        """Keep a frame; True when the oldest had to go to make room (joint states lag too far: counted)."""
        self._frames.append((stamp, item))
        if len(self._frames) <= self.capacity:
            return False
        self._frames.popleft()
        return True

    def ready(self, history: JointHistory) -> list[Item]:
        """The waiting frames, oldest first, whose joint state has come (or never will: ``MISSING``), removed."""
        out = []
        while self._frames and history.verdict(self._frames[0][0]) is not FrameJoints.WAIT:
            out.append(self._frames.popleft()[1])
        return out
