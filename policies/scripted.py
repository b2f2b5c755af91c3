"""``scripted`` backend: the task experts behind the policy interface."""

from __future__ import annotations

import numpy as np

from armpilot.features import GOAL, OBJECT, STATE
from armpilot.policies.base import Capabilities, Observation, Policy
from armpilot.robot import ArmModel
from armpilot.tasks import get_task
from armpilot.tasks.experts import ExpertObservation, ScriptedExpert


class ScriptedPolicy(Policy):
    """Waypoint expert for a task, solved by pinocchio IK (see ``armpilot.tasks.experts``).

    It reads the task object where perception reports it first; a new instruction starts the plan again
    from where the arm is (the perception node then reports the object whose colour it names first)."""

    capabilities = Capabilities(takes_instruction=True)
    input_features = (STATE, OBJECT, GOAL)

    def __init__(self, arm: ArmModel, task: str, horizon: int = 10, chunk_dt: float = 0.1) -> None:
        self.horizon = horizon
        self.chunk_dt = chunk_dt
        self.expert = ScriptedExpert(arm, get_task(task), horizon, chunk_dt)

    def reset(self) -> None:
        self.expert.reset()

    def set_instruction(self, instruction: str) -> None:
        """Plan again for the object the new instruction names."""
        self.instruction = instruction
        self.expert.reset()

    def predict_action_chunk(self, observation: Observation) -> np.ndarray:
        """(J,) -> (H, J) joint targets."""
        return self.expert.act(
            ExpertObservation(
                observation.stamp,
                observation.joint_positions,
                observation.object_position,
                observation.object_yaw,
                observation.goal_position,
            )
        )
