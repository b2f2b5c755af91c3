"""``handover`` backend: a learned policy drives until told to hand over, then the task expert (no ROS).

This is how corrections are recorded (DAgger-style, as in HG-DAgger): the learned policy takes the arm
into the states it really reaches, with its own mistakes, and the expert shows from there how to finish.
``armpilot record --policy handover`` starts the recorder at the handover, so a dataset holds only the
expert's part.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from armpilot.policies.base import Observation, Policy
from armpilot.policies.realtime import CommittedPrefix


class HandoverPolicy(Policy):
    """``first`` proposes until ``hand_over``, ``then`` for the rest of the episode; ``reset`` goes back to
    ``first``.

    Both must share ``horizon`` and ``chunk_dt``. The declared capabilities are ``first``'s sensors and
    sampling, without instruction, observation batching or committed prefixes (transition ``replace``)."""

    def __init__(self, first: Policy, then: Policy) -> None:
        if (first.horizon, first.chunk_dt) != (then.horizon, then.chunk_dt):
            raise ValueError(f"handover: both backends must propose the same chunks, got horizon/chunk_dt "
                             f"{first.horizon}/{first.chunk_dt} and {then.horizon}/{then.chunk_dt}")
        self.first, self.then = first, then
        self.horizon, self.chunk_dt = first.horizon, first.chunk_dt
        self.capabilities = replace(first.capabilities, takes_instruction=False, batches_observations=False,
                                    inpaints=False, prefix_conditioned=False, hands_over=True)
        self.history_offsets = first.history_offsets
        self.input_features = tuple(dict.fromkeys((*first.input_features, *then.input_features)))
        self.handed_over = False

    @property
    def active(self) -> Policy:
        """The backend proposing now."""
        return self.then if self.handed_over else self.first

    def required_features(self) -> dict[str, dict[str, Any]]:
        return {**self.then.required_features(), **self.first.required_features()}

    def reset(self) -> None:
        self.first.reset()
        self.then.reset()
        self.handed_over = False

    def hand_over(self) -> None:
        """From now on ``then`` proposes, planning afresh from where the arm is (a second call does nothing)."""
        if not self.handed_over:
            self.then.reset()
            self.handed_over = True

    def predict_action_chunk(self, observation: Observation) -> np.ndarray:
        return self.active.predict_action_chunk(observation)

    def sample_candidates(self, observation: Observation, num_samples: int,
                          prefix: CommittedPrefix | None = None) -> np.ndarray:
        return self.active.sample_candidates(observation, num_samples, prefix)
