"""``armpilot replay``: a recorded episode played into the live graph, the policy evaluated offline.

Brings up the ``replay`` graph (player -> perception -> policy -> safety, on the
bag's time; the safety node's output goes to /replay/arm_controller/joint_trajectory,
connected to no arm), listens in this process to the proposals and the commands the
safety node would send, waits for the player to finish, and compares those commands
with the recorded ones (``armpilot.recording.replay_report``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from armpilot.bringup import GraphSupervisor, NodeFailed, ros_environment
from armpilot.graph import load_graphs, resolve
from armpilot.recording.episode_bag import default_typestore, read_cdr
from armpilot.recording.player import EpisodePlayer
from armpilot.recording.replay_report import Command, first_point, mean_abs_difference

REPLAY_COMMAND = "/replay/arm_controller/joint_trajectory"
RECORDED_COMMAND = "/arm_controller/joint_trajectory"
#: Seconds allowed beyond the bag's duration for start-up, discovery and the tail of the graph's output.
SLACK_S = 60.0
#: Seconds listened after the player exits (the last commands in flight).
TAIL_S = 1.0


@dataclass(frozen=True)
class ReplayOptions:
    """What ``armpilot replay`` plays (see ``armpilot replay --help``)."""

    bag: Path
    task: str = "reach"
    policy: str = "scripted"
    rate: float = 1.0
    domain_id: int | None = None
    logs: Path = Path("out/replay_logs")


def recorded_commands(bag: Path) -> list[Command]:
    """The recorded controller commands' first points (empty when the bag has none)."""
    player = EpisodePlayer(bag)
    if RECORDED_COMMAND not in player.all_topics:
        return []
    typestore = default_typestore()
    commands = []
    for message in EpisodePlayer(bag, (RECORDED_COMMAND,)).messages():
        msg = read_cdr(typestore, message.data, message.msgtype)
        command = first_point(message.t_ns, msg.joint_names, msg.points)
        if command is not None:
            commands.append(command)
    return commands


def run_replay(options: ReplayOptions) -> dict:
    """Replay ``options.bag`` through the graph; returns the report (see module docstring).

    Raises:
        armpilot.recording.player.PlayerError: the bag cannot be played (names the folder).
        armpilot.bringup.NodeFailed: a graph node other than the player died, or the player failed.
        TimeoutError: the player did not finish within the bag's duration plus ``SLACK_S``.
    """
    import rclpy
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import PointCloud2
    from trajectory_msgs.msg import JointTrajectory

    from armpilot.ros_nodes import qos, topics

    bag = options.bag.expanduser().absolute()
    player = EpisodePlayer(bag)  # fails early, naming the folder
    played = {t.name: t.count for t in player.topics.values()}
    stamps = [m.t_ns for m in player.messages()]
    duration_s = (max(stamps) - min(stamps)) / 1e9 if stamps else 0.0
    recorded = recorded_commands(bag)
    env = ros_environment(options.domain_id)
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE",
                                            "FASTDDS_BUILTIN_TRANSPORTS") if k in env})
    values = {"task": options.task, "policy": options.policy, "bag": str(bag), "rate": str(float(options.rate))}
    nodes = resolve(load_graphs()["replay"], values)
    proposals: list[int] = []
    replayed: list[Command] = []
    with GraphSupervisor(nodes, env, options.logs) as graph:
        rclpy.init()
        node = Node("replay_monitor", parameter_overrides=[Parameter("use_sim_time", value=True)])
        try:
            now = lambda: node.get_clock().now().nanoseconds  # noqa: E731 - bag time via /clock
            node.create_subscription(PointCloud2, topics.POLICY_CANDIDATES,
                                     lambda _m: proposals.append(now()), qos.COMMAND_QOS)

            def on_command(msg: JointTrajectory) -> None:
                command = first_point(now(), msg.joint_names, msg.points)
                if command is not None:
                    replayed.append(command)
            node.create_subscription(JointTrajectory, REPLAY_COMMAND, on_command, qos.COMMAND_QOS)
            executor = rclpy.executors.SingleThreadedExecutor()
            executor.add_node(node)
            child = next(c for c in graph.children if c.spec.name == "player")
            deadline = time.monotonic() + duration_s / options.rate + SLACK_S
            while child.process.poll() is None:
                if time.monotonic() > deadline:
                    limit = duration_s / options.rate + SLACK_S
                    raise TimeoutError(f"the player did not finish {bag} in {limit:.0f} s")
                for other in graph.children:
                    if other is not child and other.process.poll() is not None:
                        graph.check()
                executor.spin_once(timeout_sec=0.05)
            if child.process.returncode != 0:
                raise NodeFailed("player", child.process.pid, child.process.returncode, graph.log_tail("player"))
            end = time.monotonic() + TAIL_S
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.05)
            executor.shutdown()
        finally:
            node.destroy_node()
            rclpy.shutdown()
    agreement, matched = mean_abs_difference(recorded, replayed)
    return {"bag": str(bag), "task": options.task, "policy": options.policy, "rate": options.rate,
            "duration_s": round(duration_s, 3), "messages_replayed": sum(played.values()), "per_topic": played,
            "proposals": len(proposals), "commands": len(replayed), "recorded_commands": len(recorded),
            "matched_commands": matched, "first_point_mean_abs_diff_rad": agreement}


def report_lines(report: dict) -> list[str]:
    """The report as printed by ``armpilot replay``."""
    agreement = report["first_point_mean_abs_diff_rad"]
    return [f"replayed {report['bag']} ({report['duration_s']:.1f} s at rate {report['rate']}): "
            f"{report['messages_replayed']} messages",
            "  " + ", ".join(f"{t}={n}" for t, n in report["per_topic"].items()),
            f"  proposals made: {report['proposals']}",
            f"  commands the safety node would have sent: {report['commands']} "
            f"(recorded: {report['recorded_commands']})",
            "  first-point agreement with the recorded commands: "
            + ("n/a (nothing matched)" if agreement is None else
               f"mean |diff| {agreement:.4f} rad over {report['matched_commands']} matched commands")]
