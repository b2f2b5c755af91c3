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


class PerturbedProposer:
    """Wraps a policy: (J,) observation -> (N, H, J) candidates (a stochastic policy's own N samples,
    or N copies of a deterministic one's chunk), then the configured perturbations."""

    def __init__(self, policy: Policy, config: ProposerConfig, arm_joints: int = 6) -> None:
        self.policy = policy
        self.config = config
        self.arm_joints = arm_joints
        self.rng = np.random.default_rng(config.seed)

    def reset(self) -> None:
        self.policy.reset()

    def propose(self, observation: Observation, prefix: CommittedPrefix | None = None) -> np.ndarray:
        """(N, H, J) candidates; candidate k = chunk + offset_k (+ a defect when bad).

        ``prefix``: the executing chunk, for a policy that inpaints (``supports_inpainting``).
        """
        cfg = self.config
        sample = getattr(self.policy, "sample_candidates", None)
        if prefix is not None and (getattr(self.policy, "supports_inpainting", False)
                                   or getattr(self.policy, "supports_prefix_conditioning", False)):
            candidates = np.asarray(self.policy.sample_candidates(observation, cfg.num_candidates, prefix), float)
            chunk = candidates[0]
        elif sample is not None and cfg.num_candidates > 1:  # a stochastic policy: N samples in one batch
            candidates = np.asarray(sample(observation, cfg.num_candidates), float)
            chunk = candidates[0]
        else:
            chunk = self.policy.predict_action_chunk(observation)
            candidates = np.repeat(chunk[None], cfg.num_candidates, axis=0)
        arm = slice(0, self.arm_joints)
        candidates[:, :, arm] += self.rng.normal(0.0, cfg.noise_std, (cfg.num_candidates, 1, self.arm_joints))
        for k in np.flatnonzero(self.rng.random(cfg.num_candidates) < cfg.bad_probability):
            kind = self.rng.random()
            joint = int(self.rng.integers(0, self.arm_joints))
            if kind < 0.5:  # wrong but feasible: a smooth offset growing over the chunk
                ramp = np.linspace(0.0, 1.0, chunk.shape[0] + 1)[1:]
                candidates[k, :, joint] += self.rng.choice([-1.0, 1.0]) * cfg.bad_offset * ramp
            elif kind < 0.75:  # a jump: infeasible
                candidates[k, chunk.shape[0] // 2 :, joint] += 1.0
            else:  # malformed
                candidates[k, int(self.rng.integers(0, chunk.shape[0])), joint] = np.nan
        return candidates
