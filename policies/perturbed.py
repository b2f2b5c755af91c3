"""A deliberately imperfect proposer: N noisy candidates around a policy's chunk, some bad.

For exercising the verifier the way RoboMonkey samples a stochastic policy:
every candidate gets a small constant joint offset (``noise_std``); with
probability ``bad_probability`` a candidate is bad instead: a smooth but wrong
offset (feasible, wrong), a jump (infeasible) or NaN (malformed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from armpilot.fields import describe as _describe
from armpilot.policies.base import Observation, Policy
from armpilot.policies.realtime import CommittedPrefix


@dataclass(frozen=True)
class ProposerConfig:
    """How many candidates the policy node sends and how they are perturbed."""

    num_candidates: int = field(default=1, metadata=_describe("candidates per chunk, N"))
    noise_std: float = field(default=0.0, metadata=_describe("std of each candidate's constant arm-joint offset, rad"))
    bad_probability: float = field(default=0.0, metadata=_describe("chance that a candidate is bad, 0..1"))
    bad_offset: float = field(default=0.15, metadata=_describe("size of a bad candidate's wrong offset, rad"))
    seed: int = field(default=0, metadata=_describe("seed of the perturbations"))

    def __post_init__(self) -> None:
        if self.num_candidates < 1 or self.noise_std < 0 or not 0 <= self.bad_probability <= 1:
            raise ValueError("num_candidates >= 1, noise_std >= 0 and 0 <= bad_probability <= 1 are required")


class CandidatePerturbation:
    """The configured offsets and defects, applied to (N, H, J) candidates (tests and demos only)."""

    def __init__(self, config: ProposerConfig, arm_joints: int = 6) -> None:
        self.config = config
        self.arm_joints = arm_joints
        self.rng = np.random.default_rng(config.seed)

    @property
    def active(self) -> bool:
        """False when the configuration perturbs nothing (the candidates pass unchanged)."""
        return self.config.noise_std > 0 or self.config.bad_probability > 0

    def apply(self, candidates: np.ndarray) -> np.ndarray:
        """(N, H, J) candidates -> a perturbed copy; candidate k = chunk_k + offset_k (+ a defect when bad)."""
        cfg = self.config
        candidates = np.array(candidates, float)
        count, horizon = candidates.shape[:2]
        arm = slice(0, self.arm_joints)
        candidates[:, :, arm] += self.rng.normal(0.0, cfg.noise_std, (count, 1, self.arm_joints))
        for k in np.flatnonzero(self.rng.random(count) < cfg.bad_probability):
            kind = self.rng.random()
            joint = int(self.rng.integers(0, self.arm_joints))
            if kind < 0.5:  # wrong but feasible: a smooth offset growing over the chunk
                ramp = np.linspace(0.0, 1.0, horizon + 1)[1:]
                candidates[k, :, joint] += self.rng.choice([-1.0, 1.0]) * cfg.bad_offset * ramp
            elif kind < 0.75:  # a jump: infeasible
                candidates[k, horizon // 2 :, joint] += 1.0
            else:  # malformed
                candidates[k, int(self.rng.integers(0, horizon)), joint] = np.nan
        return candidates


class PerturbedProposer:
    """Wraps a policy for tests and demos: its N candidates (``Policy.sample_candidates``: a stochastic
    policy's own N samples, or N copies of a deterministic one's chunk), then ``CandidatePerturbation``."""

    def __init__(self, policy: Policy, config: ProposerConfig, arm_joints: int = 6) -> None:
        self.policy = policy
        self.config = config
        self.perturbation = CandidatePerturbation(config, arm_joints)

    def reset(self) -> None:
        self.policy.reset()

    def propose(self, observation: Observation, prefix: CommittedPrefix | None = None) -> np.ndarray:
        """(N, H, J) perturbed candidates; ``prefix``: the executing chunk, for a policy that keeps it."""
        candidates = self.policy.sample_candidates(observation, self.config.num_candidates, prefix)
        return self.perturbation.apply(candidates)
