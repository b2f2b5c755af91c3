"""Counting rejected inputs by reason, with a per-reason log throttle (pure)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Callable


class RejectionLog:
    """Counts rejections by reason and says when each reason may be logged again.

    Throttling is per reason, so a flood of one kind of bad input never hides
    the first occurrence of another.
    """

    def __init__(self, throttle_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.throttle_s = throttle_s
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self.last = ""
        self._last_logged: dict[str, float] = {}

    def record(self, reason: str, detail: str) -> bool:
        """Count one rejection; True when it should be logged now."""
        self.counts[reason] += 1
        self.last = f"{reason}: {detail}"
        now = self.clock()
        if now - self._last_logged.get(reason, -float("inf")) >= self.throttle_s:
            self._last_logged[reason] = now
            return True
        return False

    def total(self) -> int:
        """All rejections so far."""
        return sum(self.counts.values())
