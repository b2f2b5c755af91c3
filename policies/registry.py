"""Policy backends by name: each registers a builder with ``register_backend`` (no if-chain)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from armpilot.paths import shipped_checkpoint, shipped_vla
from armpilot.policies.base import Policy
from armpilot.policies.config import PolicyNodeConfig
from armpilot.robot import ArmModel

#: Environment variable holding the policy server key (keeps it out of parameter files).
API_KEY_ENV = "ARMPILOT_POLICY_API_KEY"

#: (arm, task, horizon, chunk_dt, config with joint_names filled in, seed) -> a backend.
Builder = Callable[[ArmModel, str, int, float, PolicyNodeConfig, int], Policy]
_BUILDERS: dict[str, Builder] = {}


def register_backend(name: str) -> Callable[[Builder], Builder]:
    """Decorator: ``builder`` makes the backend called ``name`` (imports heavy modules only when called)."""

    def register(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"policy backend '{name}' is registered twice")
        _BUILDERS[name] = builder
        return builder

    return register


def make_policy(backend: str, arm: ArmModel, task: str, horizon: int, chunk_dt: float,
                config: PolicyNodeConfig | None = None, seed: int = 0) -> Policy:
    """The backend called ``backend`` for ``task``; ``config`` carries backend options (checkpoint, sampler).

    Raises:
        ValueError: for an unknown backend, listing the known ones.
        CheckpointError: (diffusion) a missing, corrupt or mismatched checkpoint.
    """
    if backend not in _BUILDERS:
        raise ValueError(f"unknown policy backend '{backend}'; known backends: {list(_BUILDERS)}")
    config = config or PolicyNodeConfig(backend=backend, task=task)
    if not config.joint_names:  # empty = the robot profile's controller order
        config = replace(config, joint_names=arm.joint_names)
    return _BUILDERS[backend](arm, task, horizon, chunk_dt, config, seed)


@register_backend("scripted")
def _scripted(arm: ArmModel, task: str, horizon: int, chunk_dt: float, config: PolicyNodeConfig,
              seed: int) -> Policy:
    from armpilot.policies.scripted import ScriptedPolicy

    # closed-loop only on the sim's ground truth: a perceived box's centre moves while the arm hides part of it
    # (scripted push from perception, nominal scene, seeds 0-19: 10/20 closed-loop against 18/20 planned once)
    if config.push_jitter > 0 and config.object_source != "privileged":
        raise ValueError("parameter 'push_jitter' needs object_source:=privileged (the expert steers back from "
                         "the sim's ground truth only)")
    return ScriptedPolicy(arm, task, horizon, chunk_dt, config.push_jitter, seed,
                          closed_loop=config.object_source == "privileged")


@register_backend("diffusion")
def _diffusion(arm: ArmModel, task: str, horizon: int, chunk_dt: float, config: PolicyNodeConfig,
               seed: int) -> Policy:
    import torch

    from armpilot.policies.diffusion import DiffusionPolicy

    torch.set_num_threads(config.inference_threads)
    checkpoint = Path(config.checkpoint) if config.checkpoint else shipped_checkpoint(
        task, prefix=config.transition == "prefix")
    return DiffusionPolicy(checkpoint, config.joint_names, horizon, chunk_dt, config.sampler,
                           config.sampler_steps, seed, robot=arm.name, arm=arm)


@register_backend("remote")
def _remote(arm: ArmModel, task: str, horizon: int, chunk_dt: float, config: PolicyNodeConfig,
            seed: int) -> Policy:
    from armpilot.policies.remote import RemotePolicy

    api_key = config.api_key or os.environ.get(API_KEY_ENV, "")
    return RemotePolicy(config.server_uri, config.joint_names, horizon, chunk_dt, api_key,
                        config.request_timeout, config.instruction, config.server_action_dt,
                        config.server_input_names)


@register_backend("vla")
def _vla(arm: ArmModel, task: str, horizon: int, chunk_dt: float, config: PolicyNodeConfig,
         seed: int) -> Policy:
    import torch

    from armpilot.policies.vla import VLAPolicy

    torch.set_num_threads(config.inference_threads)
    folder = Path(config.checkpoint) if config.checkpoint else shipped_vla(task)
    if not config.checkpoint and not folder.is_dir():
        raise ValueError(f"backend 'vla' ships a model for the task 'language' only (none at '{folder}'); set the "
                         "parameter 'checkpoint' to a local model folder (armpilot train-vla writes one)")
    return VLAPolicy(folder, config.joint_names, horizon, chunk_dt, config.instruction, seed=seed)


@register_backend("handover")
def _handover(arm: ArmModel, task: str, horizon: int, chunk_dt: float, config: PolicyNodeConfig,
              seed: int) -> Policy:
    """The diffusion checkpoint (``checkpoint``; empty = the shipped one) until ``/policy/handover``, then the
    scripted expert (closed-loop with ``object_source: privileged``)."""
    from armpilot.policies.handover import HandoverPolicy

    learned = _diffusion(arm, task, horizon, chunk_dt, config, seed)
    if learned.joint_order is not None and tuple(learned.joint_order) != tuple(config.joint_names):
        raise ValueError(f"backend 'handover': checkpoint '{config.checkpoint or 'shipped'}' orders its joints "
                         f"{list(learned.joint_order)} and the expert the robot profile's {list(config.joint_names)}; "
                         "both must propose in one order (list the profile's joints in the checkpoint's order)")
    return HandoverPolicy(learned, _scripted(arm, task, horizon, chunk_dt, config, seed))


#: Names of the registered backends (CLI choices, docs).
BACKENDS = tuple(_BUILDERS)
