"""Cutting proposals short of the table and the workspace box (pinocchio forward kinematics, no ROS).

A policy that overshoots downward (a chunk that keeps descending once the tool
reaches the object it should touch) proposes points below the table. The
safety node refuses such a chunk whole and the arm holds where it is, so the
same observation gives the same chunk and the arm never gets there. Here each
candidate instead stops at its last point that the safety node's kinematic
checks pass (the point and its braking stop above the table clearance, inside
the workspace box), and holds there: the arm goes as far as it safely can and
the next chunk, from there, decides again. The safety node still checks
everything; this only keeps a good part of a chunk from being lost with a bad
tail.
"""

from __future__ import annotations

import numpy as np

from armpilot.robot import ArmModel, JointLimits
from armpilot.safety.limits import SafetyConfig, braking_ends
from armpilot.safety.workspace import WorkspaceChecker

#: Clearance kept beyond the safety node's (m): its checks run on points the controller has moved on from.
EXTRA_CLEARANCE = 0.002


class WorkspaceFit:
    """When no candidate is safe, holds each at its last point (and braking stop) that clears the table and stays
    in the box."""

    def __init__(self, arm: ArmModel, names: tuple[str, ...], limits: JointLimits,
                 table_clearance: float = SafetyConfig.table_clearance) -> None:
        """names: the candidates' joint order; limits: in that order."""
        self.names, self.limits = tuple(names), limits
        self.checker = WorkspaceChecker(arm, table_clearance=table_clearance + EXTRA_CLEARANCE, self_collision=False)

    def first_unsafe(self, times: np.ndarray, chunk: np.ndarray) -> int | None:
        """Index of the first point of (H, J) ``chunk`` whose position or braking stop fails, or None."""
        if not np.all(np.isfinite(chunk)):
            return None  # NaN is the safety node's to name
        stops = braking_ends(self.limits, times, chunk, self.limits.velocity)
        points = [p for p in (self.checker.first_violating(c, self.names) for c in (chunk, stops)) if p is not None]
        return min(points) if points else None

    def hold_index(self, times: np.ndarray, chunk: np.ndarray, first: int) -> int:
        """The latest point before ``first`` where the arm can stop within the acceleration limits (-1: at the
        start): the speed reaching it, brought to 0 over the next interval, is at most ``amax * dt``."""
        if self.limits.acceleration is None:
            return first - 1
        speed = np.abs(np.diff(chunk, axis=0)) / np.diff(times)[:, None]  # (H - 1, J): segment k reaches k + 1
        spacing = np.diff(times)
        for hold in range(first - 1, 0, -1):
            if np.all(speed[hold - 1] <= self.limits.acceleration * spacing[min(hold, len(spacing) - 1)]):
                return hold
        return 0 if first > 0 else -1

    def __call__(self, times: np.ndarray, candidates: np.ndarray, start: np.ndarray) -> np.ndarray:
        """(N, H, J) candidates unchanged when one of them is safe (the verifier chooses among them and refuses the
        others: a cut bad candidate would compete with the good ones, and won: pick with 40 % bad candidates, N = 16,
        100 % -> 60 %); when none is, each held from its first unsafe point on at the latest point before it where
        the arm can stop (at ``start``, where the controller is headed now, clipped to the position limits, when that
        is none). times: (H,) s."""
        firsts = [self.first_unsafe(times, chunk) for chunk in candidates]
        out = np.array(candidates, dtype=float, copy=True)
        if any(first is None for first in firsts):
            return out
        # a measured start can sit past a position limit (a gripper squeezed to -0.003 m); the hold may not
        start = np.clip(start, self.limits.lower, self.limits.upper)
        for chunk, first in zip(out, firsts):
            hold = self.hold_index(times, chunk, first)
            chunk[hold + 1:] = chunk[hold] if hold >= 0 else start
        return out
