"""Counting rejected inputs by reason, with a per-reason log throttle (pure)."""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Callable

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
