"""Real-time chunk transitions (pure numpy, no ROS): what a new chunk keeps of the executing one.

A chunk is computed from an observation stamped ``t_obs`` and is ready some
latency ``d`` later; until then the arm keeps executing the previous chunk.
Real-Time Chunking (Black, Galliker, Levine 2025) therefore *freezes* the new
chunk's frames due before ``t_obs + d`` to the executing chunk and inpaints the
rest, with a soft mask that decays over the remaining overlap, so the new chunk
continues the motion under way instead of jumping at the switch.

- :data:`TRANSITIONS`: the policy node's ``transition`` modes.
- :class:`LatencyTracker`: running high percentile of observation -> chunk-ready
  latency; the frozen prefix follows it, not a constant.
- :class:`ExecutingChunk`, :func:`inpainting_weights`, :class:`CommittedPrefix`:
  the frozen/overlap targets and weights at a backend's own frame times.
- :class:`InjectedDelay`: a fixed (+ random) latency added to every inference,
  to compare modes under delay.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from armpilot.policies.chunking import resample_in_time
from armpilot.robot import JointLimits
from armpilot.safety.limits import SafetyConfig
from armpilot.safety.state_tracking import segment_slope

#: replace: the new chunk replaces the executing one; ensemble: temporal ensembling (``chunk_blend``);
#: rtc: inference-time inpainting of the frozen prefix (Real-Time Chunking); prefix: the frozen prefix
#: conditions a network trained with random committed prefixes (training-time RTC).
TRANSITIONS = ("replace", "ensemble", "rtc", "prefix")


class LatencyTracker:
    """A running high percentile of latencies, s (observation stamp -> chunk ready)."""

    def __init__(self, percentile: float = 95.0, window: int = 50, initial_s: float = 0.1) -> None:
        if not 0.0 < percentile <= 100.0 or window < 1 or initial_s < 0:
            raise ValueError("percentile in (0, 100], window >= 1 and initial_s >= 0 are required")
        self.percentile, self.initial_s = percentile, initial_s
        self.samples: deque[float] = deque(maxlen=window)

    def add(self, seconds: float) -> None:
        if np.isfinite(seconds) and seconds >= 0.0:
            self.samples.append(float(seconds))

    def estimate_s(self) -> float:
        """The percentile of the last ``window`` latencies; ``initial_s`` before the first."""
        return float(np.percentile(self.samples, self.percentile)) if self.samples else self.initial_s


@dataclass(frozen=True)
class ExecutingChunk:
    """The chunk the arm is executing: ``positions`` (H, J) at ``stamp + times`` (H,), s."""

    stamp: float
    times: np.ndarray
    positions: np.ndarray

    @property
    def end(self) -> float:
        """Absolute time of its last point, s."""
        return self.stamp + float(self.times[-1])

    def at(self, absolute_times: np.ndarray) -> np.ndarray:
        """(T, J) positions at absolute times (linear, held beyond its ends)."""
        return resample_in_time(np.asarray(absolute_times, float), self.stamp + self.times, self.positions)

    def velocity_at(self, absolute_time: float) -> np.ndarray:
        """(J,) the slope of the segment holding ``absolute_time`` (a trajectory controller interpolates linearly
        between points); zero before the first point and after the last (unknown there: the controller joins
        point 0 from where it was, and holds the last)."""
        return segment_slope(self.stamp + self.times, self.positions, absolute_time)

    @classmethod
    def from_command(cls, names: tuple[str, ...], stamp: float, times: np.ndarray, positions: np.ndarray,
                     joint_names: tuple[str, ...]) -> ExecutingChunk | None:
        """A controller command (joints ``names``, points at ``stamp + times``) in ``joint_names`` order.

        None when it has no points or lacks one of ``joint_names`` (e.g. a gripper on its own controller).
        """
        if not len(times) or not set(joint_names) <= set(names):
            return None
        columns = [names.index(n) for n in joint_names]
        return cls(stamp, np.asarray(times, float), np.asarray(positions, float)[:, columns])


def fit_origin(executing: ExecutingChunk | None, now: float, measured: np.ndarray, limits: JointLimits,
               planner: bool, ahead: float = 0.0) -> tuple[np.ndarray, np.ndarray | None]:
    """(J,) where a chunk is fitted from at ``now`` (``fit_to_limits``'s ``start``) and, for a ``planner``
    (``Capabilities.starts_at_full_speed``), the controller's velocity there (None for any other backend): where
    the executing command has the controller, else the measured arm (J,); a planner's from
    ``controller_motion`` with the safety node's default ``tracking_allowance``, ``ahead`` s after ``now`` (the
    fit's t = 0, where the safety node will judge the chunk's junction from)."""
    if planner:
        return controller_motion(executing, now, measured, limits, SafetyConfig.tracking_allowance, ahead)
    return (np.asarray(measured, float) if executing is None else executing.at(np.array([now]))[0]), None


def controller_motion(executing: ExecutingChunk | None, now: float, measured: np.ndarray, limits: JointLimits,
                      allowance: float, ahead: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(J,) where the controller is ``ahead`` s after ``now`` and its velocity, as the safety node judges a chunk
    from them (``ahead``: by the time it does; constant-velocity extrapolation from ``now`` missed the executing
    command's own speed changes: TIAGo's reaches drew 107 junction refusals in 227 candidates).

    On the executing command; the measured arm (J,) at rest when there is none, or when the arm is further from
    it than ``allowance`` s at the velocity limits (the safety node's ``tracking_allowance``): the safety node
    then drops the command and measures from the arm (a gripper closed on an object, a reset).
    """
    measured = np.asarray(measured, float)
    if executing is None:
        return measured, np.zeros(len(measured))
    position = executing.at(np.array([now]))[0]
    if np.any(np.abs(limits.difference(position, measured)) > limits.velocity * allowance):
        return measured, np.zeros(len(measured))
    return executing.at(np.array([now + ahead]))[0], executing.velocity_at(now + ahead)


def inpainting_weights(times: np.ndarray, frozen_until: float, overlap_until: float) -> np.ndarray:
    """RTC's soft mask: 1 up to ``frozen_until``, exponential decay to 0 at ``overlap_until``, then 0.

    Args:
        times: (H,) frame times, s (any common origin). frozen_until, overlap_until: s, same origin.

    Returns:
        (H,) weights in [0, 1]: the share of the executing chunk in each frame.
    """
    times = np.asarray(times, float)
    weights = np.zeros(len(times))
    weights[times <= frozen_until] = 1.0
    span = overlap_until - frozen_until
    if span > 0:
        inside = (times > frozen_until) & (times < overlap_until)
        c = 1.0 - (times[inside] - frozen_until) / span  # 1 at the frozen end, 0 at the overlap end
        weights[inside] = c * np.expm1(c) / np.expm1(1.0)
    return weights


@dataclass(frozen=True)
class CommittedPrefix:
    """What a new chunk must keep: the executing chunk, frozen for ``frozen_s`` after the observation.

    ``conditioned``: given to a network trained with committed prefixes (transition ``prefix``)
    instead of inpainted by the sampler (transition ``rtc``).
    """

    executing: ExecutingChunk
    frozen_s: float
    conditioned: bool = False

    def guide(self, stamp: float, frame_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(targets (H, J), weights (H,)) at a backend's frames ``stamp + frame_times``.

        Frames past the executing chunk's end get weight 0 (nothing to continue there).
        """
        absolute = stamp + np.asarray(frame_times, float)
        weights = inpainting_weights(absolute, stamp + self.frozen_s, self.executing.end)
        weights[absolute > self.executing.end] = 0.0
        return self.executing.at(absolute), weights


class InjectedDelay:
    """Extra latency for every inference: ``fixed_ms`` plus uniform random ``0..jitter_ms``, ms."""

    def __init__(self, fixed_ms: float = 0.0, jitter_ms: float = 0.0, seed: int = 0) -> None:
        if fixed_ms < 0 or jitter_ms < 0:
            raise ValueError("injected delay and jitter must be >= 0 ms")
        self.fixed_s, self.jitter_s = fixed_ms * 1e-3, jitter_ms * 1e-3
        self.rng = np.random.default_rng(seed)

    @property
    def enabled(self) -> bool:
        return self.fixed_s > 0 or self.jitter_s > 0

    @property
    def max_s(self) -> float:
        """The longest delay it can draw, s."""
        return self.fixed_s + self.jitter_s

    def draw_s(self) -> float:
        """One delay, s."""
        return self.fixed_s + (self.rng.uniform(0.0, self.jitter_s) if self.jitter_s > 0 else 0.0)

    def wait(self) -> float:
        """Sleeps one drawn delay (wall clock); returns it, s."""
        delay = self.draw_s()
        if delay > 0:
            time.sleep(delay)
        return delay
