"""Build a policy backend by name."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from armpilot.paths import shipped_checkpoint
from armpilot.policies.base import Policy
from armpilot.policies.config import PolicyNodeConfig
from armpilot.policies.scripted import ScriptedPolicy
from armpilot.robot import ArmModel

#: Environment variable holding the policy server key (keeps it out of parameter files).
API_KEY_ENV = "ARMPILOT_POLICY_API_KEY"
BACKENDS = ("scripted", "diffusion", "remote", "vla")


def make_policy(backend: str, arm: ArmModel, task: str, horizon: int, chunk_dt: float,
                config: PolicyNodeConfig | None = None, seed: int = 0) -> Policy:
    """The backend called ``backend`` for ``task``; ``config`` carries backend options (checkpoint, sampler).

    Raises:
        ValueError: for an unknown backend, listing the known ones.
        CheckpointError: (diffusion) a missing, corrupt or mismatched checkpoint.
    """
    if config is not None and not config.joint_names:  # empty = the robot profile's controller order
        config = replace(config, joint_names=arm.joint_names)
    if backend == "scripted":
        return ScriptedPolicy(arm, task, horizon, chunk_dt)
    if backend == "diffusion":
        import torch

        from armpilot.policies.diffusion import DiffusionPolicy

        config = config or PolicyNodeConfig(backend=backend, task=task, joint_names=arm.joint_names)
        torch.set_num_threads(config.inference_threads)
        checkpoint = Path(config.checkpoint) if config.checkpoint else shipped_checkpoint(
            task, prefix=config.transition == "prefix")
        return DiffusionPolicy(checkpoint, config.joint_names, horizon, chunk_dt, config.sampler,
                               config.sampler_steps, seed, robot=arm.name)
    if backend == "vla":
        from armpilot.policies.vla import VLAPolicy

        import torch

        config = config or PolicyNodeConfig(backend=backend, task=task, joint_names=arm.joint_names)
        torch.set_num_threads(config.inference_threads)
        if not config.checkpoint:
            raise ValueError("backend 'vla' needs the parameter 'checkpoint': a local model folder "
                             "(armpilot train-vla writes one)")
        return VLAPolicy(Path(config.checkpoint), config.joint_names, horizon, chunk_dt, config.instruction,
                         seed=seed)
    if backend == "remote":
        from armpilot.policies.remote import RemotePolicy

        config = config or PolicyNodeConfig(backend=backend, task=task, joint_names=arm.joint_names)
        api_key = config.api_key or os.environ.get(API_KEY_ENV, "")
        return RemotePolicy(config.server_uri, config.joint_names, horizon, chunk_dt, api_key,
                            config.request_timeout, config.instruction, config.server_action_dt)
    raise ValueError(f"unknown policy backend '{backend}'; known backends: {list(BACKENDS)}")
