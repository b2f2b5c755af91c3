"""Tasks: seeded initial states and success predicates (pure, no simulator)."""

from armpilot.tasks.definitions import TASKS, Task, TaskInit, TaskNotSupported, TaskState, get_task, task_for_robot

__all__ = ["TASKS", "Task", "TaskInit", "TaskNotSupported", "TaskState", "get_task", "task_for_robot"]
