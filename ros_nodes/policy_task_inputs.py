"""The policy node's task inputs: episodes (``/sim/episode`` or continuous), the goal, the instruction and the
handover (a mixin of ``PolicyNode``)."""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Int64, String

from armpilot.features import MAX_INSTRUCTION_CHARS
from armpilot.ros_nodes import conversions as conv
from armpilot.ros_nodes import topics
from armpilot.sim.episode_message import decode_episode


class TaskInputs:
    """What starts an episode and says what it is for. The node provides ``config``, ``backend``, ``policy_lock``,
    ``goal`` (``EpisodeGoal``), ``sampler``, ``base_frame`` and the episode fields set in its ``__init__``."""

    def on_instruction(self, msg: String) -> None:
        """A new language instruction for backends that take one; an empty one is refused."""
        if not msg.data.strip() or len(msg.data) > MAX_INSTRUCTION_CHARS:
            self.get_logger().error(f"{topics.POLICY_INSTRUCTION}: the instruction is empty or longer than "
                                    f"{MAX_INSTRUCTION_CHARS} characters ({len(msg.data)}); keeping the previous one")
            return
        if not self.backend.capabilities.takes_instruction:
            self.get_logger().warning(f"backend '{self.config.backend}' takes no instruction; ignoring "
                                      f"'{msg.data}'", throttle_duration_sec=10.0)
            return
        with self.policy_lock:
            try:
                self.backend.set_instruction(msg.data.strip())
            except ValueError as error:
                self.get_logger().error(str(error))
                return
        self.get_logger().info(f"instruction: '{msg.data.strip()}'")

    def on_handover(self, msg: Int64) -> None:
        """The second backend drives the rest of episode ``msg.data`` (now, or once that episode begins)."""
        self.handover_episode = msg.data
        if msg.data == self.episode:
            with self.policy_lock:
                self.backend.hand_over()
            self.get_logger().info(f"episode {self.episode}: handed over to the second backend")

    def on_episode(self, msg: String) -> None:
        try:
            info = decode_episode(msg.data)
        except ValueError as error:
            return self.get_logger().error(f"{topics.SIM_EPISODE}: ignored: {error}", throttle_duration_sec=2.0)
        if info["episode"] != self.episode:
            self.begin_episode(info["episode"], info["start"], f"seed {info.get('seed')}")

    def on_goal(self, msg: PoseStamped) -> None:
        """The task goal; in continuous episodes a new one begins the next episode."""
        if not self.in_base_frame(topics.POLICY_GOAL, msg.header):
            return
        p = msg.pose.position
        continuous = self.config.episodes == "continuous"
        now = self.get_clock().now().nanoseconds * 1e-9
        try:
            changed = self.goal.set_user_goal(now if continuous else conv.stamp_to_sec(msg.header.stamp),
                                              np.array([p.x, p.y, p.z]))
        except ValueError as error:
            self.get_logger().error(f"{topics.POLICY_GOAL}: {error}; goal ignored")
            return
        if not np.all(np.isfinite(self.goal.current())) or not np.allclose(self.goal.current(), [p.x, p.y, p.z]):
            self.get_logger().warning(f"{topics.POLICY_GOAL}: goal stamped before this episode began (stamp 0? the "
                                      "sim graphs take goals stamped at or after the episode start); ignored")
            return
        self.get_logger().info(f"goal {np.round([p.x, p.y, p.z], 3).tolist()} in '{self.base_frame}'")
        if changed and continuous:
            self.begin_episode(self.episode + 1, now, "a new goal")

    def in_base_frame(self, topic: str, header) -> bool:
        """True for a message in the robot's base frame (or naming none); else an error naming both frames."""
        frame = header.frame_id.lstrip("/")
        if frame in ("", self.base_frame):
            return True
        self.get_logger().error(f"{topic}: frame '{frame}', expected the robot's base frame '{self.base_frame}' "
                                "(armpilot does not transform poses); ignored", throttle_duration_sec=2.0)
        return False

    def begin_episode(self, episode: int, start: float, why: str) -> None:
        """Forget the previous episode's observations, goal and executing chunk; reset the backend."""
        self.episode, self.episode_start = episode, start
        self.goal.start_episode(start)
        self.sampler.reset()
        with self.policy_lock:
            self.backend.reset()
            if self.handover_episode == episode:
                self.backend.hand_over()
            self.executing = None
        self.fresh_episode = True
        self.get_logger().info(f"episode {episode} ({why}) began at {start:.3f} s")
