"""Choose one of N candidate chunks (RoboMonkey-style), never an unsafe one (pure).

Steps: optional Gaussian perturbation of the proposals; cheap safety checks
on every candidate; a score = voting (kernel density among the candidates:
the consensus wins, outliers lose) + smoothness + continuity with the chunk
executing now and with the measured state + distance from the joint limits
(+ an optional learned score); then the full check, kinematics included, on
candidates in score order until one passes. None passes -> hold.
Shapes: candidates (N, H, J), times (H,), positions in rad / m.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from armpilot.fields import describe as _describe
from armpilot.rejections import Reason
from armpilot.robot import JointLimits
from armpilot.safety.limits import SafetyConfig, Verdict, check_chunk, finite_derivatives
from armpilot.safety.workspace import WorkspaceChecker

#: (chunks (N, H, J), measured (J,)) -> (N,) scores in 0..1, higher = more like a demonstration.
LearnedScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class VerifierConfig:
    """Weights and settings of candidate selection."""

    perturb_samples: int = field(default=0, metadata=_describe(
        "Gaussian-perturbed copies added per proposal (0 = off)"))
    perturb_std: float = field(default=0.01, metadata=_describe(
        "std of the perturbation, rad (constant over the chunk)"))
    vote_bandwidth: float = field(default=0.03, metadata=_describe(
        "kernel width of the vote, mean |joint difference|, rad"))
    weight_vote: float = field(default=1.0, metadata=_describe("weight of the consensus vote (0..1)"))
    weight_smoothness: float = field(default=0.2, metadata=_describe("weight of the jerk penalty (jerk / max_jerk)"))
    weight_continuity: float = field(default=0.5, metadata=_describe("weight of the gap to the executing chunk, 1/rad"))
    weight_margin: float = field(default=0.5, metadata=_describe(
        "weight of the joint-limit margin (fraction of range)"))
    weight_learned: float = field(default=0.0, metadata=_describe("weight of the learned scorer (0 = not used)"))
    learned_scorer: str = field(default="", metadata=_describe(
        "folder of a scorer from `armpilot train-scorer` ('' = none)"))

    def __post_init__(self) -> None:
        weights = (self.perturb_std, self.vote_bandwidth, self.weight_vote, self.weight_smoothness,
                   self.weight_continuity, self.weight_margin, self.weight_learned)
        if not all(np.isfinite(weights)):
            raise ValueError(f"the verifier's weights and widths must be finite numbers, got {weights}")
        if self.perturb_samples < 0 or self.perturb_std < 0 or self.vote_bandwidth <= 0:
            raise ValueError("perturb_samples, perturb_std >= 0 and vote_bandwidth > 0 are required")


@dataclass(frozen=True)
class Selection:
    """The outcome: the chosen candidate's verdict (or the reason to hold), scores and counts."""

    verdict: Verdict
    index: int | None
    scores: np.ndarray
    rejected: Counter = field(default_factory=Counter)
    considered: int = 0


def perturb(candidates: np.ndarray, samples: int, std: float, rng: np.random.Generator,
            fixed_joints: Sequence[int] = ()) -> np.ndarray:
    """(N, H, J) -> (N * (1 + samples), H, J): each proposal plus copies offset by N(0, std) per joint."""
    if samples == 0:
        return candidates
    n, h, j = candidates.shape
    offsets = rng.normal(0.0, std, (n, samples, 1, j))
    offsets[..., list(fixed_joints)] = 0.0
    copies = (candidates[:, None] + offsets).reshape(n * samples, h, j)
    return np.concatenate([candidates, copies])


def source_index(index: int, count: int, samples: int) -> int:
    """The proposal (of ``count``) that row ``index`` of ``perturb``'s output was made from."""
    return index if index < count or samples == 0 else (index - count) // samples


def vote(candidates: np.ndarray, bandwidth: float) -> np.ndarray:
    """(N,) share of the candidates near each one (Gaussian kernel on the mean |difference|).

    One row of distances at a time: memory O(N x H x J), never O(N^2 x H x J).
    """
    flat = candidates.reshape(len(candidates), -1)
    share = np.empty(len(flat))
    for i, row in enumerate(flat):
        distance = np.abs(flat - row).mean(axis=1)
        share[i] = np.exp(-((distance / bandwidth) ** 2)).mean()
    return share


def jerk_penalty(candidates: np.ndarray, times: np.ndarray, max_jerk: np.ndarray) -> np.ndarray:
    """(N,) RMS of jerk / max_jerk over points and joints (0 for fewer than 4 points)."""
    if len(times) < 4:
        return np.zeros(len(candidates))
    count, points, joints = candidates.shape
    _, jerk = finite_derivatives(times, np.moveaxis(candidates, 1, 0).reshape(points, count * joints))
    jerk = np.moveaxis(jerk.reshape(points - 3, count, joints), 0, 1)  # as check_chunk measures it
    return np.sqrt(((jerk / max_jerk) ** 2).mean(axis=(1, 2)))


def limit_margin(candidates: np.ndarray, limits: JointLimits) -> np.ndarray:
    """(N,) smallest distance to a position limit as a fraction of that joint's range (continuous joints: 1)."""
    bounded = ~limits.continuous
    if not np.any(bounded):
        return np.ones(len(candidates))
    lower, upper = limits.lower[bounded], limits.upper[bounded]
    chosen = candidates[..., bounded]
    margin = np.minimum(chosen - lower, upper - chosen) / (upper - lower)
    return margin.min(axis=(1, 2))


def select(
    config: VerifierConfig,
    safety: SafetyConfig,
    limits: JointLimits,
    joint_names: Sequence[str],
    stamp: float,
    times: np.ndarray,
    candidates: np.ndarray,
    now: float,
    measured: np.ndarray | None,
    executing: np.ndarray | None = None,
    workspace: WorkspaceChecker | None = None,
    rng: np.random.Generator | None = None,
    learned: LearnedScorer | None = None,
    passive: Mapping[str, float] | None = None,
    gripper_joint: str = "",
    reference: np.ndarray | None = None,
    reference_velocity: np.ndarray | None = None,
) -> Selection:
    """Pick the best safe candidate of (N, H, J) ``candidates`` in message joint order.

    Args:
        executing: (H, J) where the chunk executing now will be at ``stamp + times``
            (controller order), or None.
        passive: measured values of joints the controller does not command.
        gripper_joint: never perturbed.
        reference: (J,) where the controller is heading now (see ``check_chunk``), or None.
        reference_velocity: (J,) its velocity now (see ``check_chunk``), or None (at rest).
    """
    rng = rng or np.random.default_rng()
    candidates = np.asarray(candidates, float)
    if candidates.ndim != 3 or len(candidates) == 0:
        wrong = Verdict(False, Reason.WRONG_LENGTH, f"candidates have shape {candidates.shape}")
        return Selection(wrong, None, np.zeros(0))
    gripper = [k for k, name in enumerate(joint_names) if name == gripper_joint]  # never perturbed
    candidates = perturb(candidates, config.perturb_samples, config.perturb_std, rng, gripper)
    verdicts = [check_chunk(safety, limits, joint_names, stamp, times, c, now, measured, reference=reference,
                            reference_velocity=reference_velocity) for c in candidates]
    rejected = Counter(v.reason for v in verdicts if not v.accepted)
    feasible = np.array([v.accepted for v in verdicts])
    scores = np.full(len(candidates), -np.inf)
    if not feasible.any():
        first = next(v for v in verdicts if not v.accepted)
        return Selection(Verdict(False, first.reason, f"no feasible candidate of {len(candidates)}: {first.detail}"),
                         None, scores, rejected, len(candidates))
    ok = np.flatnonzero(feasible)
    chunks = np.stack([verdicts[k].positions for k in ok])  # controller order, points still ahead
    ahead = verdicts[ok[0]].times
    score = config.weight_vote * vote(chunks, config.vote_bandwidth)
    score -= config.weight_smoothness * jerk_penalty(chunks, ahead, np.asarray(limits.jerk))
    score += config.weight_margin * np.minimum(limit_margin(chunks, limits), 0.1)
    if executing is not None:
        score -= config.weight_continuity * np.abs(chunks - executing[-len(ahead):][None]).mean(axis=(1, 2))
    if learned is not None and config.weight_learned and measured is not None:
        score += config.weight_learned * learned(chunks, measured)
    scores[ok] = score
    first_violation: Verdict | None = None
    for rank in np.argsort(-score):
        index = int(ok[rank])
        if workspace is None:
            return Selection(verdicts[index], index, scores, rejected, len(candidates))
        verdict = check_chunk(safety, limits, joint_names, stamp, times, candidates[index], now, measured,
                              workspace=workspace, passive=passive, reference=reference,
                              reference_velocity=reference_velocity)
        if verdict.accepted:
            return Selection(verdict, index, scores, rejected, len(candidates))
        rejected[verdict.reason] += 1
        scores[index] = -np.inf
        first_violation = first_violation or verdict
    counts = ", ".join(f"{reason.value}: {count}" for reason, count in rejected.items())
    return Selection(Verdict(False, first_violation.reason,
                             f"no candidate of {len(candidates)} passes the kinematic checks ({counts}); best: "
                             f"{first_violation.detail}"), None, scores, rejected, len(candidates))


def sample_chunk(start: float, times: np.ndarray, positions: np.ndarray, at: np.ndarray) -> np.ndarray:
    """(len(at), J) positions of a chunk (linear between points, held after the last) at absolute times."""
    absolute = start + np.asarray(times)
    return np.column_stack([np.interp(at, absolute, positions[:, k]) for k in range(positions.shape[1])])
