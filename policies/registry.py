"""Build a policy backend by name."""

from __future__ import annotations

from armpilot.policies.base import Policy
from armpilot.policies.scripted import ScriptedPolicy
from armpilot.robot import ArmModel

BACKENDS = ("scripted",)


def make_policy(backend: str, arm: ArmModel, task: str, horizon: int, chunk_dt: float) -> Policy:
    """The backend called ``backend`` for ``task``.

    Raises:
        ValueError: for an unknown backend, listing the known ones.
    """
    if backend == "scripted":
        return ScriptedPolicy(arm, task, horizon, chunk_dt)
    raise ValueError(f"unknown policy backend '{backend}'; known backends: {list(BACKENDS)}")
