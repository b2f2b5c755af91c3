"""The policy interface as an explicit contract: declared capabilities, registered backends, safe defaults."""

from __future__ import annotations

import numpy as np
import pytest

from armpilot.policies.base import Capabilities, Observation, Policy, transition_problem
from armpilot.policies.realtime import CommittedPrefix, ExecutingChunk
from armpilot.policies.registry import BACKENDS, make_policy, register_backend
from armpilot.robot import CONTROLLED_JOINTS, ArmModel


class Still(Policy):
    horizon, chunk_dt = 4, 0.1

    def reset(self) -> None:
        pass

    def predict_action_chunk(self, observation: Observation) -> np.ndarray:
        return np.tile(observation.joint_positions, (self.horizon, 1))


def _observation() -> Observation:
    q = np.linspace(0.0, 0.6, 7)
    return Observation(1.0, CONTROLLED_JOINTS, q, np.array([0.4, 0.0, 0.05]), 0.0, np.array([0.5, 0.0, 0.05]))


def test_a_backend_must_implement_the_abstract_methods():
    class Incomplete(Policy):
        horizon, chunk_dt = 4, 0.1

        def reset(self) -> None:
            pass

    with pytest.raises(TypeError, match="predict_action_chunk"):
        Incomplete()


def test_defaults_copy_a_deterministic_chunk_and_refuse_what_the_backend_did_not_declare():
    policy = Still()
    assert policy.capabilities == Capabilities() and policy.history_offsets == ()
    candidates = policy.sample_candidates(_observation(), 3)
    assert candidates.shape == (3, 4, 7) and np.allclose(candidates[0], candidates[2])
    batch = policy.sample_batch([_observation(), _observation()], [1, 2])
    assert [b.shape for b in batch] == [(1, 4, 7), (2, 4, 7)]
    executing = ExecutingChunk(0.9, np.array([0.1, 0.2]), np.zeros((2, 7)))
    with pytest.raises(ValueError, match="committed prefix"):
        policy.sample_candidates(_observation(), 1, CommittedPrefix(executing, 0.2))
    with pytest.raises(ValueError, match="takes no instruction"):
        policy.set_instruction("push the box")


def test_transitions_name_the_capability_they_miss():
    assert transition_problem("replace", "scripted", Capabilities()) == ""
    assert "inpaints" in transition_problem("rtc", "scripted", Capabilities())
    assert transition_problem("rtc", "diffusion", Capabilities(inpaints=True)) == ""
    assert "--prefix-frames" in transition_problem("prefix", "diffusion", Capabilities(inpaints=True))


def test_backends_register_by_name_and_unknown_ones_are_listed():
    assert set(BACKENDS) >= {"scripted", "diffusion", "remote", "vla"}
    with pytest.raises(ValueError, match="registered twice"):
        register_backend("scripted")(lambda *args: Still())
    with pytest.raises(ValueError, match="known backends"):
        make_policy("nope", ArmModel(), "reach", 10, 0.1)
    scripted = make_policy("scripted", ArmModel(), "reach", 10, 0.1)
    assert isinstance(scripted, Policy) and scripted.capabilities == Capabilities(
        takes_instruction=True, starts_at_full_speed=True)


def test_the_scripted_push_steers_from_ground_truth_only_and_its_jitter_needs_it():
    from armpilot.policies.config import PolicyNodeConfig

    def scripted(**settings):
        return make_policy("scripted", ArmModel(), "push", 10, 0.1, PolicyNodeConfig(task="push", **settings))

    assert not scripted().expert.closed_loop  # perception: the line planned at the start
    assert scripted(object_source="privileged", push_jitter=0.01).expert.closed_loop
    with pytest.raises(ValueError, match="object_source:=privileged"):
        scripted(push_jitter=0.01)
    with pytest.raises(ValueError, match="push_jitter"):
        PolicyNodeConfig(push_jitter=-0.01)


class Offset(Still):
    """Still, ``offset`` rad away; counts its resets."""

    def __init__(self, offset: float, capabilities: Capabilities = Capabilities()) -> None:
        self.offset, self.capabilities, self.resets = offset, capabilities, 0

    def reset(self) -> None:
        self.resets += 1

    def predict_action_chunk(self, observation: Observation) -> np.ndarray:
        return super().predict_action_chunk(observation) + self.offset


def test_the_handover_backend_proposes_the_first_until_handed_over_then_the_second_until_the_next_episode():
    from armpilot.policies.handover import HandoverPolicy

    first, then = Offset(1.0, Capabilities(needs_points=True, stochastic=True, inpaints=True)), Offset(2.0)
    policy = HandoverPolicy(first, then)
    assert policy.capabilities == Capabilities(needs_points=True, stochastic=True, hands_over=True)
    obs = _observation()
    assert np.allclose(policy.sample_candidates(obs, 2) - obs.joint_positions, 1.0)
    policy.hand_over()
    assert then.resets == 1  # the second backend plans afresh from where the arm is
    policy.hand_over()  # a repeated message changes nothing
    assert then.resets == 1 and np.allclose(policy.predict_action_chunk(obs) - obs.joint_positions, 2.0)
    policy.reset()
    assert np.allclose(policy.predict_action_chunk(obs) - obs.joint_positions, 1.0)
    with pytest.raises(ValueError, match="same chunks"):
        HandoverPolicy(first, type("Longer", (Offset,), {"horizon": 8})(0.0))
    with pytest.raises(ValueError, match="no second backend"):
        Still().hand_over()


def test_the_registered_handover_backend_reads_the_checkpoints_features_and_the_experts():
    from armpilot.paths import shipped_checkpoint
    from armpilot.policies.base import feed_problem
    from armpilot.policies.config import PolicyNodeConfig

    config = PolicyNodeConfig(task="push", backend="handover", object_source="privileged",
                              checkpoint=str(shipped_checkpoint("push").parent / "diffusion_push_points"))
    policy = make_policy("handover", ArmModel(), "push", 16, 0.1, config)
    assert policy.capabilities.hands_over and policy.capabilities.needs_points
    assert {"observation.points", "observation.object", "observation.goal"} <= set(policy.required_features())
    assert policy.then.expert.closed_loop and feed_problem("handover", policy, 7) == ""


def test_the_handover_backend_refuses_a_checkpoint_whose_joint_order_the_expert_does_not_share():
    """The node feeds the handover in its checkpoint's order; the expert proposes in the profile's."""
    from armpilot.policies.config import PolicyNodeConfig

    arm = ArmModel()
    reordered = PolicyNodeConfig(task="push", backend="handover", joint_names=tuple(reversed(arm.profile.joints)))
    with pytest.raises(ValueError, match="handover.*both must propose in one order"):
        make_policy("handover", arm, "push", 16, 0.1, reordered)
