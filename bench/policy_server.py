"""Benchmark the policy server: round trip vs in-process inference for the same model, and 4 clients at once.

One process: a ``PolicyServer`` on 127.0.0.1 hosting a backend (default: the
shipped reach diffusion checkpoint, DPM-Solver 3 steps, 1 torch thread), and
clients on the openpi websocket protocol. Rows (p50 / p99 over ``--repeats``
calls, ms):

* ``in_process``: ``policy.sample_candidates`` called directly (baseline);
* ``round_trip``: the same call through ``RemotePolicy`` -> websocket -> server;
* ``overhead``: round_trip - in_process (protocol, msgpack, the socket), and the
  ratio round_trip / in_process;
* ``echo_round_trip``: a server that returns zeros without inference (pure
  protocol cost);
* ``clients{1,4,16}_rps``: requests per second with 1, 4 and 16 clients in
  threads, each sending ``--repeats`` requests, with the server's dynamic
  batching (concurrent requests share one forward pass) and, as the baseline
  side by side, with ``max_batch`` 1 (one request per forward pass, the
  server before batching): ``..._unbatched_rps`` and the ratio
  ``clients16_batched_over_unbatched``; ``clients16_mean_batch`` is the mean
  number of requests per forward pass.

    python bench/policy_server.py            # table
    python bench/policy_server.py --backend vla --checkpoint out/vla --json
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import numpy as np
import torch

from figures import print_figures  # bench/ is on sys.path when run as a script
from armpilot.policies.base import Observation
from armpilot.policies.config import PolicyNodeConfig
from armpilot.policies.policy_server import PolicyServer, ServerConfig
from armpilot.policies.registry import make_policy
from armpilot.policies.remote import RemotePolicy, batched_infer, serve_policy
from armpilot.robot import CONTROLLED_JOINTS, ArmModel


def observation(k: int) -> Observation:
    q = np.array([0.0, -0.3, 1.6, 0.0, 1.2, 0.0, 0.04]) + 0.001 * k
    obj = np.array([0.45, 0.05, 0.05])
    now = Observation(1.0 + 0.2 * k, CONTROLLED_JOINTS, q, obj, 0.0, obj)
    return Observation(now.stamp, CONTROLLED_JOINTS, q, obj, 0.0, obj, (now,), np.zeros((240, 320, 3), np.uint8))


def timed(call, repeats: int) -> np.ndarray:
    for k in range(3):
        call(k)
    out = []
    for k in range(repeats):
        started = time.perf_counter()
        call(k)
        out.append(1e3 * (time.perf_counter() - started))
    return np.asarray(out)


def clients_rps(server: PolicyServer, clients: int, repeats: int, candidates: int) -> float:
    """Requests per second with ``clients`` threads each sending ``repeats`` requests."""
    uri = f"127.0.0.1:{server.address[1]}"
    workers = [RemotePolicy(uri, CONTROLLED_JOINTS, timeout=60.0) for _ in range(clients)]
    for worker in workers:
        worker.sample_candidates(observation(0), candidates)  # connect and warm up

    def send(worker: RemotePolicy) -> None:
        for k in range(repeats):
            worker.sample_candidates(observation(k), candidates)

    threads = [threading.Thread(target=send, args=(w,)) for w in workers]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return clients * repeats / (time.perf_counter() - started)


def client_throughput(policy: Any, backend: str, repeats: int, candidates: int) -> dict[str, float]:
    """requests/s for 1, 4 and 16 clients, batched and (baseline) one request per forward pass."""
    infer, metadata = serve_policy(policy, CONTROLLED_JOINTS, backend)
    infer_batch = batched_infer(policy, CONTROLLED_JOINTS, infer) if policy.capabilities.batches_observations else None
    figures: dict[str, float] = {}
    for label, max_batch in (("", ServerConfig.max_batch), ("_unbatched", 1)):
        config = ServerConfig(port=0, max_batch=max_batch)
        with PolicyServer(infer, metadata, config, infer_batch) as server:
            for clients in (1, 4, 16):
                figures[f"clients{clients}{label}_rps"] = clients_rps(server, clients, repeats, candidates)
            if not label:
                batcher = server._batcher
                figures["clients16_mean_batch"] = batcher.requests / max(batcher.batches, 1)
    figures["clients16_batched_over_unbatched"] = figures["clients16_rps"] / figures["clients16_unbatched_rps"]
    return figures


def run(backend: str, checkpoint: str, repeats: int, candidates: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    config = PolicyNodeConfig(backend=backend, task="reach", checkpoint=checkpoint, instruction="reach the ball")
    policy = make_policy(backend, ArmModel(), "reach", config.horizon, config.chunk_dt, config)
    figures: dict[str, Any] = {"backend": backend, "candidates": candidates}
    local = timed(lambda k: policy.sample_candidates(observation(k), candidates), repeats)
    infer, metadata = serve_policy(policy, CONTROLLED_JOINTS, backend)
    with PolicyServer(infer, metadata, ServerConfig(port=0)) as server:
        uri = f"127.0.0.1:{server.address[1]}"
        remote = RemotePolicy(uri, CONTROLLED_JOINTS, timeout=10.0)
        through = timed(lambda k: remote.sample_candidates(observation(k), candidates), repeats)
    figures.update(client_throughput(policy, backend, repeats, candidates))
    zeros = {"actions": np.zeros((10, 7), np.float32)}
    with PolicyServer(lambda _r: zeros, {"action_dt": 0.1}, ServerConfig(port=0)) as echo:
        echo_client = RemotePolicy(f"127.0.0.1:{echo.address[1]}", CONTROLLED_JOINTS, timeout=10.0)
        echo_ms = timed(lambda k: echo_client.sample_candidates(observation(k), 1), repeats)
    for name, ms in (("in_process", local), ("round_trip", through), ("echo_round_trip", echo_ms)):
        figures[f"{name}_p50_ms"] = float(np.percentile(ms, 50))
        figures[f"{name}_p99_ms"] = float(np.percentile(ms, 99))
    figures["overhead_p50_ms"] = figures["round_trip_p50_ms"] - figures["in_process_p50_ms"]
    figures["round_trip_over_in_process"] = figures["round_trip_p50_ms"] / figures["in_process_p50_ms"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="diffusion", help="backend to host (default: diffusion)")
    parser.add_argument("--checkpoint", default="", help="checkpoint / model folder (default: shipped reach)")
    parser.add_argument("--candidates", type=int, default=1, help="N per request (default: 1)")
    parser.add_argument("--repeats", type=int, default=100, help="requests per row and per client (default: 100)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    print_figures(run(args.backend, args.checkpoint, args.repeats, args.candidates), args.json)


if __name__ == "__main__":
    main()
