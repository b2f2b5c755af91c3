"""Dynamic batching in the policy server: concurrent requests share one forward pass, each gets its own answer."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from armpilot.policies.base import Capabilities, Observation, Policy
from armpilot.policies.config import PolicyNodeConfig
from armpilot.policies.policy_server import PolicyServer, ServerConfig
from armpilot.policies.registry import make_policy
from armpilot.policies.remote import RemotePolicy, batched_infer, observation_to_request, serve_policy
from armpilot.policies.request_batching import BatchConfig, RequestBatcher
from armpilot.robot import CONTROLLED_JOINTS, ArmModel


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def _observation(k: int) -> Observation:
    q = np.linspace(0.0, 0.6, 7) + 0.05 * k
    obj = np.array([0.42 + 0.02 * k, 0.03 * k, 0.05])
    past = Observation(0.9, CONTROLLED_JOINTS, q, obj, 0.0, obj)
    return Observation(1.0, CONTROLLED_JOINTS, q, obj, 0.0, obj, (past,))


class BatchLine(Policy):
    """Joint targets = state + 0.01 * step * (candidate + 1); records every batch it was given."""

    horizon, chunk_dt = 10, 0.1
    history_offsets = (1 / 15,)
    capabilities = Capabilities(stochastic=True, batches_observations=True)

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def reset(self) -> None:
        pass

    def sample_candidates(self, obs: Observation, n: int, prefix=None) -> np.ndarray:
        return self.sample_batch([obs], [n])[0]

    def predict_action_chunk(self, obs: Observation) -> np.ndarray:
        return self.sample_candidates(obs, 1)[0]

    def sample_batch(self, observations: list[Observation], counts: list[int]) -> list[np.ndarray]:
        self.batches.append(len(observations))
        assert self.gate.wait(10.0)
        steps = np.arange(1, self.horizon + 1)[:, None] * 0.01
        return [np.stack([o.joint_positions + steps * (k + 1) for k in range(n)]) for o, n in zip(observations, counts)]


def test_batcher_gathers_what_queued_and_routes_each_answer_and_error():
    seen: list[list[int]] = []
    gate = threading.Event()

    def infer_batch(requests):
        seen.append([r["k"] for r in requests])
        gate.wait(10.0)
        return [ValueError(f"bad {r['k']}") if r["k"] == 2 else {"k": r["k"] * 10} for r in requests]

    batcher = RequestBatcher(infer_batch, BatchConfig(max_batch=8, max_wait_ms=0.0))
    results: dict[int, object] = {}

    def call(k: int) -> None:
        try:
            results[k] = batcher.submit({"k": k})[0]
        except ValueError as error:
            results[k] = error

    first = threading.Thread(target=call, args=(0,))
    first.start()
    _wait_for(lambda: seen == [[0]])  # the worker is busy with request 0 ...
    others = [threading.Thread(target=call, args=(k,)) for k in (1, 2, 3)]
    for t in others:
        t.start()
    _wait_for(lambda: batcher._queue.qsize() == 3)  # ... while 1, 2, 3 queue up
    gate.set()
    for t in [first, *others]:
        t.join(10.0)
    assert seen == [[0], [1, 2, 3]]
    assert results[0] == {"k": 0} and results[1] == {"k": 10} and results[3] == {"k": 30}
    assert isinstance(results[2], ValueError) and "bad 2" in str(results[2])
    batcher.close()


def test_batcher_caps_the_batch_size():
    seen: list[int] = []
    gate = threading.Event()

    def infer_batch(requests):
        seen.append(len(requests))
        gate.wait(10.0)
        return [{} for _ in requests]

    batcher = RequestBatcher(infer_batch, BatchConfig(max_batch=2, max_wait_ms=0.0))
    threads = [threading.Thread(target=batcher.submit, args=({},)) for _ in range(5)]
    threads[0].start()
    _wait_for(lambda: seen == [1])
    for t in threads[1:]:
        t.start()
    _wait_for(lambda: batcher._queue.qsize() == 4)
    gate.set()
    for t in threads:
        t.join(10.0)
    assert seen == [1, 2, 2]
    batcher.close()


def test_server_answers_concurrent_clients_in_one_batch_each_with_its_own_chunk():
    policy = BatchLine()
    infer, metadata = serve_policy(policy, CONTROLLED_JOINTS, "line")
    assert policy.capabilities.batches_observations
    server = PolicyServer(infer, metadata, ServerConfig(port=0, max_batch=8, max_batch_wait_ms=0.0),
                          batched_infer(policy, CONTROLLED_JOINTS, infer))
    with server:
        uri = f"127.0.0.1:{server.address[1]}"
        clients = [RemotePolicy(uri, CONTROLLED_JOINTS, timeout=20.0) for _ in range(4)]
        answers: dict[int, np.ndarray] = {}
        policy.gate.clear()
        threads = [threading.Thread(target=lambda k=k: answers.__setitem__(
            k, clients[k].sample_candidates(_observation(k), k + 1))) for k in range(4)]
        threads[0].start()
        _wait_for(lambda: policy.batches == [1])
        for t in threads[1:]:
            t.start()
        _wait_for(lambda: server._batcher._queue.qsize() == 3)
        policy.gate.set()
        for t in threads:
            t.join(20.0)
    assert policy.batches == [1, 3]
    for k in range(4):
        assert answers[k].shape == (k + 1, 10, 7)
        assert np.allclose(answers[k][:, 0], _observation(k).joint_positions + 0.01 * np.arange(1, k + 2)[:, None])


def test_server_refuses_a_bad_request_in_a_batch_without_failing_the_others():
    policy = BatchLine()
    infer, metadata = serve_policy(policy, CONTROLLED_JOINTS, "line")
    with PolicyServer(infer, metadata, ServerConfig(port=0), batched_infer(policy, CONTROLLED_JOINTS, infer)) as s:
        uri = f"127.0.0.1:{s.address[1]}"
        good = RemotePolicy(uri, CONTROLLED_JOINTS, timeout=10.0)
        infer_batch = batched_infer(policy, CONTROLLED_JOINTS, infer)
        wrong = {"observation/state": np.zeros(2, np.float32), "observation/joint_names": ["a", "b"],
                 "observation/stamp": 1.0, "observation/object_position": np.zeros(3, np.float32),
                 "observation/object_yaw": 0.0}

        results = infer_batch([observation_to_request(_observation(0)), wrong])
        assert results[0]["actions"].shape == (10, 7) and isinstance(results[1], ValueError)
        assert "joint names" in str(results[1])
        assert good.sample_candidates(_observation(1), 2).shape == (2, 10, 7)


def test_a_request_that_breaks_the_batched_call_fails_alone():
    class Fragile(BatchLine):
        def sample_batch(self, observations, counts):
            if any(o.joint_positions[0] > 10 for o in observations):
                raise RuntimeError("the forward pass failed")
            return super().sample_batch(observations, counts)

    policy = Fragile()
    infer, _ = serve_policy(policy, CONTROLLED_JOINTS, "line")
    poisoned = observation_to_request(_observation(0))
    poisoned["observation/state"] = poisoned["observation/state"] + 20.0
    results = batched_infer(policy, CONTROLLED_JOINTS, infer)([observation_to_request(_observation(1)), poisoned,
                                                               {"__ctrl__": "episode_start"}])
    assert results[0]["actions"].shape == (10, 7) and results[2] == {}
    assert isinstance(results[1], RuntimeError)
    bad_shape = observation_to_request(_observation(2))
    bad_shape["observation/goal"] = np.zeros(2, np.float32)
    assert "need 3 values" in str(batched_infer(policy, CONTROLLED_JOINTS, infer)([bad_shape])[0])


def test_diffusion_batch_conditions_each_chunk_on_its_own_observation(monkeypatch):
    """With the noise fixed, a batch of observations gives exactly what one call per observation gives."""
    torch.set_num_threads(1)
    config = PolicyNodeConfig(backend="diffusion", task="reach")
    policy = make_policy("diffusion", ArmModel(), "reach", config.horizon, config.chunk_dt, config)
    assert policy.capabilities.batches_observations
    monkeypatch.setattr("armpilot.policies.diffusion_model.torch.randn",
                        lambda shape, **kwargs: torch.full(shape, 0.3))
    observations = [_observation(k) for k in range(3)]
    batched = policy.sample_batch(observations, [1, 2, 1])
    assert [b.shape for b in batched] == [(1, 10, 7), (2, 10, 7), (1, 10, 7)]
    for k, obs in enumerate(observations):
        alone = policy.sample_candidates(obs, 1)[0]
        assert np.allclose(batched[k], alone, atol=1e-4)
    assert not np.allclose(batched[0][0], batched[2][0], atol=1e-3)  # different observations, different chunks
    with pytest.raises(ValueError, match="counts"):
        policy.sample_batch(observations, [1, 1])
