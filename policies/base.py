"""The policy interface every backend implements (no ROS).

Shaped like LeRobot's and Diffusion Policy's: ``reset`` at an episode start,
``predict_action_chunk`` maps one observation to an (H, J) chunk of joint
position targets, the first ``chunk_dt`` seconds after the observation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Observation:
    """One observation.

    Attributes:
        stamp: time of the joint state, s.
        joint_names: (J,) names, controller order.
        joint_positions: (J,) rad / m.
        object_position: (3,) task object in base_link, m.
        object_yaw: rad about z.
        goal_position: (3,) task goal, m.
        history: earlier observations at the backend's ``history_offsets``
            seconds before ``stamp``, oldest first (empty unless asked for).
        image: (H, W, 3) uint8 RGB camera frame, for backends that ask for one
            (``needs_image``), else None.
    """

    stamp: float
    joint_names: tuple[str, ...]
    joint_positions: np.ndarray
    object_position: np.ndarray
    object_yaw: float
    goal_position: np.ndarray
    history: tuple[Observation, ...] = ()
    image: np.ndarray | None = None


class Policy(Protocol):
    """A policy backend: proposes joint-position action chunks.

    Optional: ``history_offsets`` (s before the stamp, oldest first) asks the
    node for past observations; ``sample_candidates(observation, n)`` returns
    (N, H, J) samples drawn in one batch (stochastic policies).
    """

    horizon: int
    chunk_dt: float

    def reset(self) -> None:
        """Forget episode state."""

    def predict_action_chunk(self, observation: Observation) -> np.ndarray:
        """(J,) observation -> (H, J) joint targets at stamp + chunk_dt * (1..H)."""


@runtime_checkable
class BatchSampling(Protocol):
    """A backend that answers several observations in one forward pass (``armpilot serve`` batching)."""

    def sample_batch(self, observations: list[Observation], counts: list[int]) -> list[np.ndarray]:
        """B observations, N_b candidates each -> B arrays (N_b, H, J), one batched inference.

        Stateless across calls (no warm start, no committed prefix): requests from different robots
        share the batch.
        """
