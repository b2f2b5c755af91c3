"""Episode player node: publishes a recorded episode bag into the live graph, and /clock from its stamps.

Every message is published as the raw CDR bytes the recorder stored, on its
original topic with the recorded type and the recorder's QoS preset for it
(``armpilot.recording.config.QOS_PRESETS``). ``/clock`` carries the recorded
receive times, so nodes with ``use_sim_time`` follow the bag's time. Before
playing, the node waits (at most ``wait_for_subscribers_s``) until each topic
has a subscriber. At the end it logs the messages sent per topic and exits 0
(with ``loop`` it plays until Ctrl-C). Reading and pacing: ``armpilot.recording.player``.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from builtin_interfaces.msg import Time
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosgraph_msgs.msg import Clock

from armpilot.fields import describe as _describe
from armpilot.recording.player import EpisodePlayer
from armpilot.ros_nodes import qos, topics
from armpilot.ros_nodes.lifecycle import run_node
from armpilot.ros_nodes.params import declare_config
from armpilot.ros_nodes.recorder_node import QOS_BY_PRESET, message_class

#: Seconds spun after the last message so reliable samples reach their readers before exit.
END_LINGER_S = 0.5


@dataclass(frozen=True)
class PlayerConfig:
    """Player node parameters."""

    bag: str = field(default="", metadata=_describe("episode bag folder to play (OUT/episode_000000)"))
    rate: float = field(default=1.0, metadata=_describe("playback speed, recorded s per wall s (2.0 = twice as fast)"))
    loop: bool = field(default=False, metadata=_describe("start over after the last message (until Ctrl-C)"))
    topics: tuple[str, ...] = field(default=("",), metadata=_describe(
        "topics to play; empty = the graph's inputs (camera streams, /joint_states, /sim/episode, /policy/goal)"))
    publish_clock: bool = field(default=True, metadata=_describe("publish /clock from the recorded stamps"))
    wait_for_subscribers_s: float = field(default=5.0, metadata=_describe(
        "wait at most this long for a subscriber on every played topic before starting, s"))

    def __post_init__(self) -> None:
        if not self.bag:
            raise ValueError("parameter 'bag' is empty: give the episode folder to play")
        if self.rate <= 0:
            raise ValueError(f"parameter 'rate' must be > 0, got {self.rate}")
        if self.wait_for_subscribers_s < 0:
            raise ValueError("parameter 'wait_for_subscribers_s' must be >= 0")

    def topic_names(self) -> tuple[str, ...]:
        """The named topics (a ROS string array cannot be empty-typed, so [''] means none)."""
        return tuple(t for t in self.topics if t)


def _stamp(t_ns: int) -> Time:
    return Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9)


class PlayerNode(Node):
    """Thin shell: ``EpisodePlayer.schedule`` -> raw publishers and /clock."""

    def __init__(self) -> None:
        super().__init__("player")
        self.config = declare_config(self, PlayerConfig)
        self.player = EpisodePlayer(self.config.bag, self.config.topic_names(), warn=self.get_logger().warning)
        self.pubs = {spec.name: self.create_publisher(message_class(spec.msgtype), spec.name, QOS_BY_PRESET[spec.qos])
                     for spec in self.player.topics.values()}
        self.pub_clock = self.create_publisher(Clock, topics.CLOCK, qos.CLOCK_QOS)
        self.sent: Counter[str] = Counter()
        self.jumps = 0
        self.get_logger().info(f"playing {self.player.folder} at rate {self.config.rate}"
                               f"{' (loop)' if self.config.loop else ''}: "
                               + ", ".join(f"{t.name} ({t.count})" for t in self.player.topics.values()))

    def play(self, executor: SingleThreadedExecutor) -> None:
        """Wait for subscribers, then publish every message when due (the ``run_node`` spin)."""
        self._wait_for_subscribers(executor)
        for item in self.player.schedule(time.monotonic(), rate=self.config.rate, loop=self.config.loop):
            while (left := item.due - time.monotonic()) > 0:
                executor.spin_once(timeout_sec=min(left, 0.05))
            message = item.message
            if self.config.publish_clock:
                self.pub_clock.publish(Clock(clock=_stamp(message.t_ns)))
            self.pubs[message.topic].publish(message.data)
            self.sent[message.topic] += 1
            self.jumps += item.jumped
        self._spin_for(executor, END_LINGER_S)
        self.get_logger().info(f"finished {self.player.folder.name}: sent {sum(self.sent.values())} messages ("
                               + ", ".join(f"{t}={n}" for t, n in sorted(self.sent.items()))
                               + f"), {self.jumps} backwards time jump(s)")

    def _wait_for_subscribers(self, executor: SingleThreadedExecutor) -> None:
        deadline = time.monotonic() + self.config.wait_for_subscribers_s
        while time.monotonic() < deadline:
            if all(pub.get_subscription_count() for pub in self.pubs.values()):
                self._spin_for(executor, 0.3)  # let the readers finish matching
                return
            executor.spin_once(timeout_sec=0.05)
        waiting = [t for t, pub in self.pubs.items() if not pub.get_subscription_count()]
        if waiting:
            self.get_logger().warning(f"no subscriber on {waiting} after {self.config.wait_for_subscribers_s} s; "
                                      "playing anyway")

    @staticmethod
    def _spin_for(executor: SingleThreadedExecutor, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            executor.spin_once(timeout_sec=min(left, 0.05))


def main(args: list[str] | None = None) -> None:
    run_node(PlayerNode, args, spin=lambda node, executor: node.play(executor))  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
