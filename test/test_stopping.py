"""Stopping means stopping: whatever ends ``armpilot up``, no node it started keeps running.

Each graph test starts a real ``armpilot up sim`` (its own session, as from a
terminal), waits until the arm is commanded, ends the supervisor one way and
checks, from /proc, that no process of that graph is left within 3 s and,
from the controller topic, that a hold (zero stamp) was sent before the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from trajectory_msgs.msg import JointTrajectory

from armpilot.bringup import find_executable, ros_environment
from armpilot.ros_nodes import qos
from graph_harness import command_topic, sim_graph_nodes, unique_domain_id
from synthetic_bags import write_episode

pytestmark = pytest.mark.graph

GONE_WITHIN_S = 3.0
NODE_EXIT_S = 2.0
START_TIMEOUT_S = 180.0


def processes_with(token: str) -> list[int]:
    """Pids of live processes whose environment carries ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if token.encode() in (entry / "environ").read_bytes() and (entry / "stat").read_text().split()[2] != "Z":
                found.append(int(entry.name))
        except OSError:
            continue
    return found


class ControllerProbe:
    """Counts commands and holds (zero stamp) on the controller topic of one domain."""

    def __init__(self, domain: int) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("stop_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.moves = 0
        self.holds = 0
        command = command_topic(sim_graph_nodes())  # `armpilot up sim` names it privately
        self.node.create_subscription(JointTrajectory, command, self._on_command, qos.COMMAND_QOS)

    def _on_command(self, msg: JointTrajectory) -> None:
        if msg.header.stamp.sec == 0 and msg.header.stamp.nanosec == 0:
            self.holds += 1
        else:
            self.moves += 1

    def spin_until(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def graph(tmp_path, monkeypatch):
    """Start ``armpilot up sim | cat`` in a session of its own; yield (session id, probe, token)."""
    token = f"ARMPILOT_STOP_TEST={uuid.uuid4().hex}"
    domain = unique_domain_id()
    env = ros_environment(domain)
    env[token.split("=")[0]] = token.split("=")[1]
    for key in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_BUILTIN_TRANSPORTS"):  # the probe talks as the graph does
        monkeypatch.setenv(key, env[key])
    command = [find_executable("armpilot"), "up", "sim", "width:=160", "height:=120", "--logs", str(tmp_path / "logs")]
    # as from a terminal: a shell runs `armpilot up ... | cat` in a session of its own, so Ctrl-C (SIGINT to
    # the group) or a closed terminal (SIGHUP) reaches the supervisor and the reader of its output together
    shell = subprocess.Popen(["bash", "-c", " ".join(command) + " | cat"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT, start_new_session=True)
    probe = None
    try:
        probe = ControllerProbe(domain)
        assert probe.spin_until(lambda: probe.moves > 0, START_TIMEOUT_S), \
            f"the graph never commanded the arm; logs in {tmp_path / 'logs'}"
        yield shell.pid, probe, token
    finally:
        if probe is not None:
            probe.close()
        for pid in processes_with(token):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shell.wait(5)


def _ended_safely(probe: ControllerProbe, token: str, holds_before: int) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    probe.spin_until(lambda: not processes_with(token), GONE_WITHIN_S)
    left = processes_with(token)
    assert not left, f"still running {time.monotonic() - deadline + GONE_WITHIN_S:.1f} s after the end: " + ", ".join(
        Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120] for pid in left)
    probe.spin_until(lambda: probe.holds > holds_before, 1.0)
    assert probe.holds > holds_before, "no hold reached the controller topic before the graph ended"


def test_ctrl_c_with_stdout_piped_into_a_process_that_exits(graph):
    session, probe, token = graph
    holds = probe.holds
    os.killpg(session, signal.SIGINT)  # the terminal's Ctrl-C: the supervisor and its reader
    _ended_safely(probe, token, holds)


def test_sighup_of_the_supervisor_session(graph):
    session, probe, token = graph
    holds = probe.holds
    os.killpg(session, signal.SIGHUP)  # the terminal closed
    _ended_safely(probe, token, holds)


def test_sigkill_of_the_supervisor(graph):
    _session, probe, token = graph
    supervisors = [pid for pid in processes_with(token) if b"armpilot\0up" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(supervisors) == 1, supervisors
    holds = probe.holds
    os.kill(supervisors[0], signal.SIGKILL)
    _ended_safely(probe, token, holds)


NODE_EXECUTABLES = ("sim_node", "policy_node", "safety_node", "perception_node", "tracks_node",
                    "recorder_node", "teleop_node", "realsense_node", "player_node")


@pytest.mark.parametrize("signals", [(signal.SIGINT, signal.SIGTERM), (signal.SIGTERM,)],
                         ids=["SIGINT-then-SIGTERM", "SIGTERM"])
def test_every_node_exits_within_2_s_with_its_peers_gone(tmp_path, signals):
    """Every executable alone on its own domain (no clock, no inputs, no subscribers)."""
    bag = write_episode(tmp_path / "episode_000000")
    extra = {"player_node": ["-p", f"bag:={bag}", "-p", "loop:=true"]}
    base = unique_domain_id()
    started = {}
    for offset, name in enumerate(NODE_EXECUTABLES):
        domain = 1 + (base + 7 * offset) % 200
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        command = [find_executable(name), "--ros-args", "-p", "use_sim_time:=true"] + extra.get(name, [])
        started[name] = (subprocess.Popen(command, env=ros_environment(domain), stdout=log, stderr=subprocess.STDOUT),
                         domain, log)
    try:
        for name, (process, domain, _log) in started.items():
            assert _wait_visible(name, domain, process), f"{name} never came up: " + \
                (tmp_path / f"{name}.log").read_text()[-2000:]
        slow = {}
        for name, (process, _domain, _log) in started.items():
            sent = time.monotonic()
            for sig in signals:
                process.send_signal(sig)
                time.sleep(0.1)
            try:
                process.wait(timeout=NODE_EXIT_S)
            except subprocess.TimeoutExpired:
                slow[name] = "still running"
                continue
            if time.monotonic() - sent > NODE_EXIT_S:
                slow[name] = f"{time.monotonic() - sent:.2f} s"
        assert not slow, f"not ended within {NODE_EXIT_S} s of {[s.name for s in signals]}: {slow}"
    finally:
        for process, _domain, log in started.values():
            if process.poll() is None:
                process.kill()
            process.wait()
            log.close()


def _wait_visible(name: str, domain: int, process: subprocess.Popen) -> bool:
    """Wait until the node is in its domain's ROS graph (it spins)."""
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("visibility_probe", context=context)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            if any(n != "visibility_probe" for n in node.get_node_names()):
                time.sleep(1.0)  # past construction: in its spin loop
                return True
            time.sleep(0.2)
        return False
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
