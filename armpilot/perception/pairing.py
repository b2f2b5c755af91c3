"""Approximate-time pairing of two stamped streams (colour and depth), without message_filters."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

A = TypeVar("A")
B = TypeVar("B")


@dataclass(frozen=True)
class PairResult(Generic[A, B]):
    """A matched pair with the stamp of ``first`` (s)."""

    stamp: float
    first: A
    second: B


class ApproximateTimePairer(Generic[A, B]):
    """Pairs items of stream ``first`` and ``second`` whose stamps differ by at most ``slop`` s.

    Keeps up to ``queue_size`` unmatched items per stream; when a pair is made,
    everything older on both streams is dropped. Items older than the last
    pair are rejected (out of order) and counted. ``resync_after`` of them in a
    row mean the stamps went back for good (a bag replayed in a loop, a camera
    driver restarted, one frame stamped far ahead): the pairer then starts
    afresh from the item that made the count (``resyncs`` counts these), so
    one bad stamp never stops a node's frames for good.
    """

    def __init__(self, slop: float = 0.02, queue_size: int = 5, resync_after: int = 10) -> None:
        if resync_after < 1:
            raise ValueError(f"resync_after must be >= 1, got {resync_after}")
        self.slop = slop
        self.resync_after = resync_after
        self._first: deque[tuple[float, A]] = deque(maxlen=queue_size)
        self._second: deque[tuple[float, B]] = deque(maxlen=queue_size)
        self.last_stamp = float("-inf")
        self.out_of_order = 0
        self.out_of_order_in_a_row = 0
        self.resyncs = 0

    def add_first(self, stamp: float, item: A) -> PairResult[A, B] | None:
        """Add an item of the first stream; returns a pair if one is complete."""
        return self._add(stamp, item, self._first)

    def add_second(self, stamp: float, item: B) -> PairResult[A, B] | None:
        """Add an item of the second stream; returns a pair if one is complete."""
        return self._add(stamp, item, self._second)

    def _add(self, stamp: float, item: Any, queue: deque) -> PairResult | None:
        if stamp <= self.last_stamp:
            self.out_of_order += 1
            self.out_of_order_in_a_row += 1
            if self.out_of_order_in_a_row < self.resync_after:
                return None
            self.resyncs += 1
            self.last_stamp = float("-inf")
            self._first.clear()
            self._second.clear()
        self.out_of_order_in_a_row = 0
        queue.append((stamp, item))
        best = None
        for s1, a in self._first:
            for s2, b in self._second:
                gap = abs(s1 - s2)
                if gap <= self.slop and (best is None or gap < best[0]):
                    best = (gap, s1, a, s2, b)
        if best is None:
            return None
        _, s1, a, s2, b = best
        self.last_stamp = max(s1, s2)
        for pending in (self._first, self._second):  # drop everything not newer than the pair
            kept = [entry for entry in pending if entry[0] > self.last_stamp]
            pending.clear()
            pending.extend(kept)
        return PairResult(s1, a, b)
