"""``armpilot serve``: host an armpilot policy backend on openpi's websocket protocol (no ROS).

Run it on the GPU machine; point the policy node at it with ``policy:=remote
server_uri:=ws://HOST:PORT``. openpi clients (``openpi_client.websocket_client_policy``)
can talk to it too.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from armpilot.policies.config import PolicyNodeConfig
from armpilot.policies.policy_server import PolicyServer, ServerConfig
from armpilot.policies.registry import API_KEY_ENV, make_policy
from armpilot.policies.remote import batched_infer, serve_policy
from armpilot.robot import ArmModel
from armpilot.robot_profile import DEFAULT_ROBOT, load_profile


def build_server(backend: str, task: str, checkpoint: str, host: str, port: int, api_key: str | None,
                 sampler: str = "dpm", steps: int = 3, threads: int = 1, robot: str = DEFAULT_ROBOT,
                 max_batch: int = ServerConfig.max_batch,
                 max_batch_wait_ms: float = ServerConfig.max_batch_wait_ms) -> PolicyServer:
    """A (not yet started) server hosting ``backend`` for ``robot`` with the policy node's chunk shape.

    Backends that sample a batch of observations at once (``batches_observations``) answer concurrent
    requests in one forward pass; others one by one.
    """
    if backend == "remote":
        raise ValueError("a server cannot host the 'remote' backend (it would call itself)")
    arm = ArmModel(load_profile(robot))
    config = PolicyNodeConfig(backend=backend, task=task, checkpoint=checkpoint, sampler=sampler,
                              sampler_steps=steps, inference_threads=threads, joint_names=arm.joint_names)
    policy = make_policy(backend, arm, task, config.horizon, config.chunk_dt, config)
    infer, metadata = serve_policy(policy, config.joint_names, backend)
    infer_batch = batched_infer(policy, config.joint_names, infer) if policy.capabilities.batches_observations else None
    server_config = ServerConfig(host, port, api_key, max_batch=max_batch, max_batch_wait_ms=max_batch_wait_ms)
    return PolicyServer(infer, {**metadata, "task": task}, server_config, infer_batch)


def serve_command(args: Any) -> int:
    """Start the server and block until Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    api_key = os.environ.get(API_KEY_ENV) or None
    server = build_server(args.backend, args.task, args.checkpoint, args.host, args.port, api_key, args.sampler,
                          args.steps, args.threads, args.robot, args.max_batch, args.max_batch_wait_ms).start()
    host, port = server.address
    print(f"serving '{args.backend}' ({args.task}) on ws://{host}:{port} "
          f"({'Api-Key required' if api_key else 'no key'}; GET /healthz)", flush=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
