"""Align stamped streams on a fixed-rate clock: THE resampler shared by the bag
converter and the live policy node (pure numpy, no ROS).

Rule, everywhere: at output tick ``t`` a stream contributes its latest sample
with ``stamp <= t`` (sample-and-hold); a numeric stream may instead be
linearly interpolated between the samples around ``t`` (held after its last
sample). Nothing is ever taken from the future, so what the converter writes
is what the live node would have seen at ``t``.

Stamps are int64 nanoseconds. Shapes: a stream's ``stamps`` is (N,), its
``values`` (N, *D); resampled arrays are (T, *D) on (T,) ticks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

NS_PER_S = 1_000_000_000


class ResampleError(ValueError):
    """A stream cannot be resampled (clock jump, no overlap, bad shapes)."""


class ClockJumpError(ResampleError):
    """A stream's stamps go backwards; the message names the topic and stamps."""

    def __init__(self, topic: str, index: int, stamp_ns: int, previous_ns: int) -> None:
        super().__init__(
            f"topic '{topic}': stamp {stamp_ns / NS_PER_S:.9f} s (sample {index}) is before the previous "
            f"stamp {previous_ns / NS_PER_S:.9f} s: the clock jumped back by "
            f"{(previous_ns - stamp_ns) / NS_PER_S:.6f} s (sim reset or a restarted clock?); "
            "split the recording at that point (on_jump='split')")
        self.topic, self.index, self.stamp_ns, self.previous_ns = topic, index, stamp_ns, previous_ns


@dataclass(frozen=True)
class Stream:
    """One stamped stream: ``stamps`` (N,) int64 ns, ``values`` (N, *D).

    ``interpolate`` asks for linear interpolation (numeric values only)
    instead of sample-and-hold.
    """

    topic: str
    stamps: np.ndarray
    values: np.ndarray
    interpolate: bool = False


@dataclass(frozen=True)
class Resampled:
    """Streams on one clock.

    Attributes:
        ticks: (T,) int64 ns output stamps, strictly increasing, period 1/fps.
        values: topic -> (T, *D) values at each tick.
        source_stamps: topic -> (T,) int64 ns stamp of the (latest) sample used.
        staleness: topic -> (T,) int64 ns, ``ticks - source_stamps`` (>= 0).
        dropped_leading: ticks dropped at the start because some stream had
            no sample yet.
        late_topics: topic -> first stamp (ns) for streams that started after
            the first tick of the requested range.
    """

    ticks: np.ndarray
    values: dict[str, np.ndarray]
    source_stamps: dict[str, np.ndarray]
    staleness: dict[str, np.ndarray]
    dropped_leading: int = 0
    late_topics: dict[str, int] = field(default_factory=dict)

    def max_staleness_s(self) -> dict[str, float]:
        """Worst staleness per topic, seconds."""
        return {k: float(v.max()) / NS_PER_S if v.size else 0.0 for k, v in self.staleness.items()}


def clean_stream(stream: Stream) -> Stream:
    """Checks shapes, keeps the last of duplicate stamps, rejects backwards stamps.

    Raises:
        ClockJumpError: a stamp earlier than the one before it.
        ResampleError: stamps not (N,) or values not (N, ...).
    """
    stamps = np.asarray(stream.stamps, dtype=np.int64)
    values = np.asarray(stream.values)
    if stamps.ndim != 1 or values.shape[:1] != stamps.shape:
        raise ResampleError(f"topic '{stream.topic}': stamps {stamps.shape} and values {values.shape} "
                            "must be (N,) and (N, ...)")
    if stamps.size > 1:
        steps = np.diff(stamps)
        back = np.flatnonzero(steps < 0)
        if back.size:
            k = int(back[0]) + 1
            raise ClockJumpError(stream.topic, k, int(stamps[k]), int(stamps[k - 1]))
        keep = np.append(steps > 0, True)  # a duplicate stamp: the later sample wins
        if not keep.all():
            stamps, values = stamps[keep], values[keep]
    if stream.interpolate and values.dtype.kind not in "fiu":
        raise ResampleError(f"topic '{stream.topic}': cannot interpolate {values.dtype} values")
    return Stream(stream.topic, stamps, values, stream.interpolate)


def split_at_clock_jumps(stamps: np.ndarray) -> list[slice]:
    """Slices of ``stamps`` (N,) between backwards jumps (for on_jump='split')."""
    stamps = np.asarray(stamps, dtype=np.int64)
    cuts = (np.flatnonzero(np.diff(stamps) < 0) + 1).tolist()
    bounds = [0] + cuts + [stamps.size]
    return [slice(a, b) for a, b in pairwise(bounds) if b > a]


def make_ticks(start_ns: int, end_ns: int, fps: float) -> np.ndarray:
    """(T,) int64 ticks ``start + round(k * 1e9 / fps)`` for all ticks <= end."""
    if not fps > 0:
        raise ResampleError(f"fps must be positive, got {fps}")
    if end_ns < start_ns:
        return np.zeros(0, np.int64)
    count = int(np.floor((end_ns - start_ns) * fps / NS_PER_S + 1e-9)) + 1
    return start_ns + np.round(np.arange(count) * (NS_PER_S / fps)).astype(np.int64)


def hold_indices(stamps: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    """(T,) index of the latest sample with ``stamps[i] <= tick``, -1 when none.

    ``stamps`` (N,) must be non-decreasing; with duplicates the last one wins.
    """
    return np.searchsorted(stamps, ticks, side="right") - 1


def sample(stream: Stream, ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values of a cleaned stream at ticks (T,) whose samples all exist.

    Returns:
        values (T, *D) and source stamps (T,) int64 ns.

    Raises:
        ResampleError: a tick before the stream's first sample.
    """
    idx = hold_indices(stream.stamps, ticks)
    if idx.size and idx[0] < 0:
        raise ResampleError(f"topic '{stream.topic}': no sample at or before tick "
                            f"{int(ticks[0]) / NS_PER_S:.9f} s")
    held = stream.values[idx]
    if not stream.interpolate or stream.stamps.size < 2:
        return held, stream.stamps[idx]
    nxt = np.minimum(idx + 1, stream.stamps.size - 1)
    t0, t1 = stream.stamps[idx], stream.stamps[nxt]
    span = np.where(t1 > t0, t1 - t0, 1).astype(np.float64)
    w = np.where(nxt > idx, (ticks - t0) / span, 0.0).reshape((-1,) + (1,) * (held.ndim - 1))
    v0 = held.astype(np.float64)
    out = v0 + w * (stream.values[nxt].astype(np.float64) - v0)
    return out.astype(np.result_type(held.dtype, np.float32)), t0


def resample(streams: Sequence[Stream], fps: float, start_ns: int | None = None,
             end_ns: int | None = None) -> Resampled:
    """Aligns streams on ticks at ``fps``.

    Ticks run from ``start_ns`` (default: the earliest first stamp of all
    streams) to ``end_ns`` (default: the latest last stamp); the leading ticks
    where some stream has no sample yet are dropped (``dropped_leading``).

    Args:
        streams: the streams; topics must be unique.
        fps: output rate, Hz.

    Raises:
        ClockJumpError: a stream's stamps go backwards (names topic and stamp).
        ResampleError: an empty stream, duplicate topics, or no tick where
            every stream has a sample.
    """
    if not streams:
        raise ResampleError("nothing to resample: no streams")
    topics = [s.topic for s in streams]
    if len(set(topics)) != len(topics):
        raise ResampleError(f"duplicate topics: {topics}")
    cleaned = [clean_stream(s) for s in streams]
    for s in cleaned:
        if s.stamps.size == 0:
            raise ResampleError(f"topic '{s.topic}' has no samples")
    first = {s.topic: int(s.stamps[0]) for s in cleaned}
    start = min(first.values()) if start_ns is None else int(start_ns)
    end = max(int(s.stamps[-1]) for s in cleaned) if end_ns is None else int(end_ns)
    ticks = make_ticks(start, end, fps)
    ready = max(first.values())
    dropped = int(np.searchsorted(ticks, ready, side="left"))
    ticks = ticks[dropped:]
    if ticks.size == 0:
        raise ResampleError(f"no tick in [{start / NS_PER_S:.3f}, {end / NS_PER_S:.3f}] s where every topic "
                            f"has a sample; first stamps: {_fmt(first)}")
    values, sources, stale = {}, {}, {}
    for s in cleaned:
        values[s.topic], sources[s.topic] = sample(s, ticks)
        stale[s.topic] = ticks - sources[s.topic]
    late = {t: v for t, v in first.items() if v > start}
    return Resampled(ticks, values, sources, stale, dropped, late)


def _fmt(stamps: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v / NS_PER_S:.3f} s" for k, v in stamps.items())


class LiveSampler:
    """The same sample-and-hold rule online, for the policy node.

    Keep the last ``capacity`` samples per topic; ``sample(t)`` returns each
    topic's latest value with stamp <= t and its staleness. A backwards stamp
    raises ClockJumpError (call ``reset()`` after a sim reset).
    """

    def __init__(self, topics: Sequence[str], capacity: int = 64) -> None:
        self._buffers: dict[str, deque[tuple[int, np.ndarray]]] = {t: deque(maxlen=capacity) for t in topics}

    def reset(self) -> None:
        """Forgets every sample."""
        for buffer in self._buffers.values():
            buffer.clear()

    def push(self, topic: str, stamp_ns: int, value: np.ndarray) -> None:
        """Adds one sample; an equal stamp replaces the previous sample."""
        buffer = self._buffers[topic]
        if buffer and stamp_ns < buffer[-1][0]:
            raise ClockJumpError(topic, len(buffer), int(stamp_ns), buffer[-1][0])
        if buffer and stamp_ns == buffer[-1][0]:
            buffer.pop()
        buffer.append((int(stamp_ns), np.asarray(value)))

    def sample(self, tick_ns: int) -> tuple[dict[str, np.ndarray], dict[str, int]] | None:
        """(values, staleness ns) per topic at ``tick_ns``; None while a topic has no sample <= tick."""
        values, staleness = {}, {}
        for topic, buffer in self._buffers.items():
            stamps = np.fromiter((s for s, _ in buffer), np.int64, len(buffer))
            i = int(hold_indices(stamps, np.array([tick_ns], np.int64))[0])
            if i < 0:
                return None
            values[topic], staleness[topic] = buffer[i][1], int(tick_ns) - int(stamps[i])
        return values, staleness
