"""Counting rejected inputs by reason, with a per-reason log throttle (pure)."""

from __future__ import annotations

import time
from collections import Counter, deque
from enum import StrEnum
from typing import Callable

class Reason(StrEnum):
    """Why the safety node refused a proposal or held the arm: one name in code, diagnostics, docs and tests.

    Members are strings (``Reason.STALE == "stale"``), so counts keyed by them read as plain names.
    """

    # the message itself
    MALFORMED = "malformed"
    OVERSIZED = "oversized"
    EMPTY = "empty"
    DUPLICATE_JOINT = "duplicate_joint"
    UNKNOWN_JOINT = "unknown_joint"
    MISSING_JOINT = "missing_joint"
    WRONG_LENGTH = "wrong_length"
    NOT_FINITE = "not_finite"
    TIME_NOT_INCREASING = "time_not_increasing"
    STALE = "stale"
    FUTURE_STAMP = "future_stamp"
    # the chunk against the arm's limits and workspace
    POSITION_LIMIT = "position_limit"
    DISCONTINUITY = "discontinuity"
    VELOCITY_LIMIT = "velocity_limit"
    MAX_STEP = "max_step"
    ACCELERATION_LIMIT = "acceleration_limit"
    JERK_LIMIT = "jerk_limit"
    BRAKING_DISTANCE = "braking_distance"
    TABLE_CLEARANCE = "table_clearance"
    WORKSPACE = "workspace"
    SELF_COLLISION = "self_collision"
    # supervision: inputs, latches, the node itself
    NO_JOINT_STATE = "no_joint_state"
    JOINT_STATE_MISMATCH = "joint_state_mismatch"
    JOINT_STATE_TIMEOUT = "joint_state_timeout"
    JOINT_STATE_JUMP = "joint_state_jump"
    PROPOSAL_TIMEOUT = "proposal_timeout"
    ESTOP = "estop"
    DISABLED = "disabled"
    SECOND_PROPOSER = "second_proposer"
    CATCHING_UP = "catching_up"
    CLOCK_JUMP = "clock_jump"
    SHUTDOWN = "shutdown"
    INTERNAL_ERROR = "internal_error"


#: Most rejections remembered for the recent window (older ones drop out first).
RECENT_CAPACITY = 10_000
#: Longest detail kept for the last rejection (inputs are never echoed whole).
MAX_DETAIL_CHARS = 300


class RejectionLog:
    """Counts rejections by reason and says when each reason may be logged again.

    Throttling is per reason, so a flood of one kind of bad input never hides
    the first occurrence of another.
    """

    def __init__(self, throttle_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 window_s: float = 10.0) -> None:
        self.throttle_s = throttle_s
        self.clock = clock
        self.window_s = window_s
        self.counts: Counter[str] = Counter()
        self.last = ""
        self._last_logged: dict[str, float] = {}
        self._recent: deque[tuple[float, str]] = deque(maxlen=RECENT_CAPACITY)

    def record(self, reason: str, detail: str) -> bool:
        """Count one rejection; True when it should be logged now."""
        self.counts[reason] += 1
        self.last = f"{reason}: {detail[:MAX_DETAIL_CHARS]}"
        now = self.clock()
        self._recent.append((now, reason))
        if now - self._last_logged.get(reason, -float("inf")) >= self.throttle_s:
            self._last_logged[reason] = now
            return True
        return False

    def recent(self) -> Counter[str]:
        """Rejections by reason within the last ``window_s`` seconds."""
        since = self.clock() - self.window_s
        return Counter(reason for at, reason in self._recent if at >= since)

    def total(self) -> int:
        """All rejections so far."""
        return sum(self.counts.values())
