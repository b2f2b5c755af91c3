"""The policy interface every backend implements (no ROS).

Shaped like LeRobot's and Diffusion Policy's: ``reset`` at an episode start,
``predict_action_chunk`` maps one observation to an (H, J) chunk of joint
position targets, the first ``chunk_dt`` seconds after the observation;
``sample_candidates`` gives N of them. What else a backend can do is declared
in its ``capabilities``; backends register themselves by name
(``registry.register_backend``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from armpilot.features import (COLOR, GOAL, OBJECT, POINTS, POINTS_MASK, STATE, TASK, TRACKS, TRACKS_MASK,
                               unfed_features)
from armpilot.policies.realtime import CommittedPrefix

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
        points: (P, 3) float32 filtered cloud in the base frame, m, NaN rows where the cloud had
            fewer points (``dataset.points_feature.select_points``), for backends with ``needs_points``.
        tracks: (K, T, 3) float32 motion tracks in the base frame, m, oldest step first, NaN where
            missing (``dataset.tracks_feature.select_tracks``), held at ``stamp`` (history frames carry
            their own), for backends with ``needs_tracks``.
    """

    stamp: float
    joint_names: tuple[str, ...]
    joint_positions: np.ndarray
    object_position: np.ndarray
    object_yaw: float
    goal_position: np.ndarray
    history: tuple[Observation, ...] = ()
    image: np.ndarray | None = None
    points: np.ndarray | None = None
    tracks: np.ndarray | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared (the node, the server and the CLI read these; nothing is probed).

    Attributes:
        needs_image: observations must carry the colour image (``Observation.image``).
        needs_points: observations must carry the filtered cloud (``Observation.points``).
        needs_tracks: observations (and their history) must carry motion tracks (``Observation.tracks``).
        takes_instruction: ``set_instruction`` sets a language instruction.
        stochastic: ``sample_candidates`` draws N different chunks in one batch (else N copies).
        batches_observations: ``sample_batch`` answers several observations in one forward pass.
        inpaints: ``sample_candidates`` keeps a committed prefix by inpainting (transition ``rtc``).
        prefix_conditioned: ... or by conditioning on it (trained so; transition ``prefix``).
        hands_over: ``hand_over`` gives the rest of the episode to a second backend (recording corrections).
        starts_at_full_speed: its chunks start at full speed wherever the arm is (a waypoint planner): the node
            fits them to the acceleration and jerk limits from the controller's motion (``fit_to_limits``).
    """

    needs_image: bool = False
    needs_points: bool = False
    needs_tracks: bool = False
    takes_instruction: bool = False
    stochastic: bool = False
    batches_observations: bool = False
    inpaints: bool = False
    prefix_conditioned: bool = False
    hands_over: bool = False
    starts_at_full_speed: bool = False


class Policy(ABC):
    """A policy backend: proposes joint-position action chunks.

    Attributes:
        horizon: H points per chunk. chunk_dt: s between them.
        capabilities: what this backend can do (``Capabilities``).
        history_offsets: s before the stamp of the past observations it needs, oldest first.
        input_features: the features it reads (checked against what the graph feeds before it runs).
    """

    horizon: int
    chunk_dt: float
    capabilities: Capabilities = Capabilities()
    history_offsets: tuple[float, ...] = ()
    #: keys of the feature contract (``config/features.yaml``) this backend reads
    input_features: tuple[str, ...] = (STATE,)
    #: the joint order of its observations and actions when it has one of its own (a checkpoint trained on a
    #: dataset in the driver's /joint_states order); None: the robot profile's. The policy node feeds it in this order
    joint_order: tuple[str, ...] | None = None

    def required_features(self) -> dict[str, dict[str, Any]]:
        """key -> the contract entry stored with the model ({} when it stores none) of every feature it reads."""
        return {key: {} for key in self.input_features}

    @abstractmethod
    def reset(self) -> None:
        """Forget episode state."""

    @abstractmethod
    def predict_action_chunk(self, observation: Observation) -> np.ndarray:
        """(J,) observation -> (H, J) joint targets at stamp + chunk_dt * (1..H)."""

    def sample_candidates(self, observation: Observation, num_samples: int,
                          prefix: CommittedPrefix | None = None) -> np.ndarray:
        """(N, H, J) candidates; this default: N copies of the one chunk of a deterministic backend.

        ``prefix``: the executing chunk to keep, for backends that inpaint or condition on it.
        """
        if prefix is not None:
            raise ValueError(f"backend {type(self).__name__} cannot keep a committed prefix (transition rtc/prefix)")
        return np.repeat(np.asarray(self.predict_action_chunk(observation), float)[None], num_samples, axis=0)

    def sample_batch(self, observations: list[Observation], counts: list[int]) -> list[np.ndarray]:
        """B observations, N_b candidates each -> B arrays (N_b, H, J); this default: one call each.

        Backends with ``batches_observations`` answer all of them in one forward pass, statelessly (no warm
        start, no committed prefix): requests from different robots share the batch.
        """
        return [self.sample_candidates(o, n) for o, n in zip(observations, counts)]

    def set_instruction(self, instruction: str) -> None:
        """Set the language instruction (backends with ``takes_instruction``)."""
        raise ValueError(f"backend {type(self).__name__} takes no instruction")

    def hand_over(self) -> None:
        """Give the rest of the episode to the second backend (backends with ``hands_over``)."""
        raise ValueError(f"backend {type(self).__name__} has no second backend to hand over to")


#: transition -> (the capability it needs, what that means for a user).
TRANSITION_NEEDS = {
    "rtc": ("inpaints", "inpaints its chunks (diffusion)"),
    "prefix": ("prefix_conditioned", "was trained with committed prefixes (a diffusion checkpoint from "
               "'armpilot train --prefix-frames')"),
}


def transition_problem(transition: str, backend: str, capabilities: Capabilities) -> str:
    """Why ``backend`` cannot run chunk ``transition`` ("" when it can)."""
    needs = TRANSITION_NEEDS.get(transition)
    if needs is None or getattr(capabilities, needs[0]):
        return ""
    return f"transition '{transition}' needs a backend that {needs[1]}; backend '{backend}' does not"


def feed_problem(backend: str, policy: Policy, joints: int) -> str:
    """Why the policy node cannot feed ``policy`` ("" when it can): the features it needs that the node does
    not feed, with ``joints`` controlled joints."""
    unfed = unfed_features(policy.required_features(), node_feeds(policy.capabilities), {"J": joints})
    return f"backend '{backend}' needs features the policy node cannot feed: {'; '.join(unfed)}" if unfed else ""


def node_feeds(capabilities: Capabilities) -> frozenset[str]:
    """The features the policy node feeds a backend with these capabilities: joint states, the object, the
    goal; the camera image, the cloud, the tracks and the instruction to backends that declare them."""
    return frozenset((STATE, OBJECT, GOAL, *((COLOR,) if capabilities.needs_image else ()),
                      *((POINTS, POINTS_MASK) if capabilities.needs_points else ()),
                      *((TRACKS, TRACKS_MASK) if capabilities.needs_tracks else ()),
                      *((TASK,) if capabilities.takes_instruction else ())))
