"""Helpers for multi-process graph tests: isolated DDS domain, a probe node, waiting."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState

from armpilot.bringup import GraphSupervisor, ros_environment
from armpilot.graph import NodeSpec, load_graphs, remapped, resolve
from armpilot.ros_nodes import qos, topics


def unique_domain_id() -> int:
    """A ROS_DOMAIN_ID in 1..200 unlikely to clash with a parallel run."""
    return 1 + (os.getpid() * 7 + int(time.time())) % 200


def command_topic(nodes: tuple[NodeSpec, ...]) -> str:
    """Where the safety node among ``nodes`` sends the arm's commands (the sim graphs give it a private name)."""
    return remapped(nodes, "safety", topics.CONTROLLER_COMMAND)


def sim_graph_nodes(drop: tuple[str, ...] = (), **values: str) -> tuple[NodeSpec, ...]:
    """The sim graph's nodes (small camera by default), without the named ones."""
    args = {"width": "160", "height": "120", **values}
    return tuple(n for n in resolve(load_graphs()["sim"], args) if n.name not in drop)


@contextmanager
def running_graph(nodes: tuple[NodeSpec, ...], log_dir: Path) -> Iterator[tuple[GraphSupervisor, "Probe"]]:
    """Start ``nodes`` as processes on a fresh domain, and a probe node in this process."""
    domain = unique_domain_id()
    env = ros_environment(domain)
    keys = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_BUILTIN_TRANSPORTS")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: env[k] for k in saved})
    supervisor = GraphSupervisor(nodes, env, log_dir)
    supervisor.start()
    rclpy.init()
    probe = Probe()
    try:
        yield supervisor, probe
    finally:
        probe.executor_.shutdown()
        probe.destroy_node()
        rclpy.shutdown()
        supervisor.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Probe(Node):
    """Test-side node: latest joint positions, arrival times per topic."""

    def __init__(self) -> None:
        super().__init__("probe")
        # a private executor: the global one outlives rclpy.init/shutdown cycles of earlier tests
        self.executor_ = SingleThreadedExecutor()
        self.executor_.add_node(self)
        self.joints: np.ndarray | None = None
        self.stamp = 0.0
        self.arrivals: dict[str, list[float]] = {}
        self.stamps: dict[str, list[float]] = {}  # header stamps, s, of counted topics whose messages have one
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, qos.STATE_QOS)

    def _on_joints(self, msg: JointState) -> None:
        self.joints = np.array(msg.position)
        self.stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9  # sim time in the sim graph
        self.arrivals.setdefault(topics.JOINT_STATES, []).append(time.monotonic())
        self.stamps.setdefault(topics.JOINT_STATES, []).append(self.stamp)

    def count(self, msg_type: type, topic: str, profile) -> None:
        """Record arrival times of ``topic`` (and header stamps, where its messages have a header)."""
        def arrived(msg) -> None:
            self.arrivals.setdefault(topic, []).append(time.monotonic())
            if hasattr(msg, "header"):
                self.stamps.setdefault(topic, []).append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
        self.create_subscription(msg_type, topic, arrived, profile)

    def publish_period(self, topic: str) -> float:
        """The publisher's period on its own clock, s: the smallest gap between stamps received in a row.

        Messages a loaded test process is too slow to take are lost to it, which stretches the arrival
        rate but not the smallest gap (any two consecutive ones that both arrive show it).
        """
        stamps = np.diff(np.array(self.stamps.get(topic, [])))
        stamps = stamps[stamps > 0]
        return float(stamps.min()) if stamps.size else float("inf")

    def spin_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.executor_.spin_once(timeout_sec=0.05)
            if condition():
                return
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor_.spin_once(timeout_sec=0.02)

    def call(self, client, request, what: str, timeout: float = 30.0, resend_after: float = 5.0):
        """The first answer to ``request`` on ``client``; an unanswered request is sent again every
        ``resend_after`` s (DDS may drop a request or its answer sent just after discovery: the client can
        see the service before the service sees the client). A caller whose service is not idempotent
        reads a repeated request's answer accordingly."""
        started = time.monotonic()
        self.spin_until(client.service_is_ready, timeout, f"service {what}")
        pending = []
        while time.monotonic() - started < timeout:
            pending.append(client.call_async(request))
            resend = time.monotonic() + resend_after
            while time.monotonic() < resend:
                self.executor_.spin_once(timeout_sec=0.05)
                answered = [f for f in pending if f.done()]
                if answered:
                    return answered[0].result()
        raise AssertionError(f"timed out after {timeout} s waiting for the answer of {what} "
                             f"({len(pending)} requests sent)")

    def rate(self, topic: str, since: float) -> float:
        stamps = [t for t in self.arrivals.get(topic, []) if t >= since]
        return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else 0.0
