"""Tasks: seeded initial states and success predicates (pure, no simulator)."""

from armpilot.tasks.definitions import TASKS, Task, TaskInit, TaskState, get_task, task_for_robot

__all__ = ["TASKS", "Task", "TaskInit", "TaskState", "get_task", "task_for_robot"]
