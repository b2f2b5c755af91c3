"""``scripted`` backend: the task experts behind the policy interface."""

from __future__ import annotations

import numpy as np

from armpilot.features import GOAL, OBJECT, STATE
from armpilot.policies.base import Capabilities, Observation, Policy
from armpilot.robot import ArmModel
from armpilot.tasks import get_task, task_for_robot
from armpilot.tasks.experts import ExpertObservation, ScriptedExpert

#: Tasks whose object stays where it is (the arm only goes to it): a perceived object this far (m, in the
#: table plane, times the arm's reach scale) from where the plan was made is another object, a new target.
RETARGET_DISTANCE = 0.06
STATIC_OBJECT_TASKS = ("reach", "language")


class ScriptedPolicy(Policy):
    """Waypoint expert for a task, solved by pinocchio IK (see ``armpilot.tasks.experts``).

    It reads the task object where perception reports it first; a new instruction starts the plan again
    from where the arm is, and so does, for tasks whose object stays put, a perceived object that jumped
    ``RETARGET_DISTANCE`` away from where the plan was made (perception reports the newly named object
    first once it has the instruction, which may be after this node had it)."""

    capabilities = Capabilities(takes_instruction=True, starts_at_full_speed=True)
    input_features = (STATE, OBJECT, GOAL)

    def __init__(self, arm: ArmModel, task: str, horizon: int = 10, chunk_dt: float = 0.1, push_jitter: float = 0.0,
                 seed: int = 0, closed_loop: bool = False) -> None:
        """``push_jitter`` (m), ``seed`` and ``closed_loop``: see ``ScriptedExpert``."""
        self.horizon = horizon
        self.chunk_dt = chunk_dt
        self.expert = ScriptedExpert(arm, get_task(task), horizon, chunk_dt, push_jitter, seed, closed_loop)
        scaled = task_for_robot(task, arm.profile)
        self.retarget = RETARGET_DISTANCE * scaled.scale if scaled.name in STATIC_OBJECT_TASKS else float("inf")
        self.planned_for: np.ndarray | None = None  # (3,) object position the current plan was made for

    def reset(self) -> None:
        self.expert.reset()
        self.planned_for = None

    def set_instruction(self, instruction: str) -> None:
        """Plan again for the object the new instruction names."""
        self.instruction = instruction
        self.reset()

    def predict_action_chunk(self, observation: Observation) -> np.ndarray:
        """(J,) -> (H, J) joint targets."""
        seen = np.asarray(observation.object_position, float)
        if self.planned_for is not None and np.linalg.norm(seen[:2] - self.planned_for[:2]) > self.retarget:
            self.reset()  # another object: plan again from where the arm is
        if self.planned_for is None and np.all(np.isfinite(seen)):
            self.planned_for = seen.copy()
        return self.expert.act(
            ExpertObservation(
                observation.stamp,
                observation.joint_positions,
                observation.object_position,
                observation.object_yaw,
                observation.goal_position,
            )
        )
