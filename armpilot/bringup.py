"""Bring up a graph without ``launch``: every node its own process, supervised.

Same executables, parameter files and remappings as the launch files (both read
``config/graph.yaml``). Ctrl-C or a crashing required child stops every node (SIGINT,
then SIGTERM, then SIGKILL) and the failure names the node and its exit code;
a ``respawn`` node (perception, tracks, policy) is restarted instead, up to
``RESPAWN_MAX_RETRIES`` times, while the safety node holds the arm.
Stopping goes in ``STOP_ORDER``: the safety node first (it sends its hold),
then the proposers, then the rest. Each node gets this process's pid in
``SUPERVISOR_PID_ENV`` and ends itself when this process dies, however it dies.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Mapping

from armpilot.dds_housekeeping import clean_zombie_shm
from armpilot.graph import RESPAWN_DELAY_S, RESPAWN_MAX_RETRIES, NodeSpec, ros_arguments
from armpilot.paths import share_dir

#: Environment variable with the pid of the supervisor a node must not outlive.
SUPERVISOR_PID_ENV = "ARMPILOT_SUPERVISOR_PID"
#: Seconds given to each signal of shutdown (SIGINT, then SIGTERM) before the next.
STOP_GRACE = 3.0
#: Executables stopped in this order, each group to its end before the next; then the rest.
STOP_ORDER: tuple[tuple[str, ...], ...] = (("safety_node",), ("policy_node", "teleop_node", "player_node"))


class NodeFailed(RuntimeError):
    """A node exited while the graph was running."""

    def __init__(self, name: str, pid: int, code: int, log_tail: str) -> None:
        super().__init__(f"node '{name}' (pid {pid}) exited with code {code}\n{log_tail}")
        self.name, self.pid, self.code = name, pid, code


def ros_environment(domain_id: int | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for the graph: localhost-only discovery and a ROS_DOMAIN_ID."""
    env = dict(os.environ if base is None else base)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("MUJOCO_GL", "egl")
    # shared memory + TCP for large samples (camera images, clouds): no UDP fragment loss
    env.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


def find_executable(name: str) -> str:
    """Path of a node's console script: next to this Python first, then on PATH."""
    candidates = [Path(sys.executable).parent / name, Path(sys.prefix) / "lib" / "armpilot" / name]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"executable '{name}' not found (looked in {[str(c) for c in candidates]} and PATH); "
                            "is armpilot installed in this environment (pip install -e .)?")


@dataclass
class _Child:
    spec: NodeSpec
    process: subprocess.Popen
    log_path: Path
    log_file: IO[bytes]
    command: list[str]
    respawns: int = 0
    respawn_at: float | None = None  # monotonic time of the next start of a dead respawned node


class GraphSupervisor:
    """Starts nodes as processes, watches them, and stops them all together."""

    def __init__(self, nodes: tuple[NodeSpec, ...], env: Mapping[str, str], log_dir: Path) -> None:
        self.nodes = tuple(n for n in nodes if not n.ros_only)
        self.skipped = tuple(n.name for n in nodes if n.ros_only)
        self.env = {**env, SUPERVISOR_PID_ENV: str(os.getpid())}
        self.log_dir = Path(log_dir)
        self.children: list[_Child] = []

    def start(self) -> None:
        """Start every node; each writes its output to ``<log_dir>/<name>.log`` (``<log_dir>/dds.log``: the
        shared memory that killed processes left, cleaned first so that no node inherits a dead port)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.log_dir / "dds.log").write_text(clean_zombie_shm() + "\n")
        config_dir = share_dir() / "config"
        for spec in self.nodes:
            command = [find_executable(spec.executable)] + ros_arguments(spec, config_dir)
            log_path = self.log_dir / f"{spec.name}.log"
            log_file = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
            self.children.append(_Child(spec, self._spawn(command, log_file), log_path, log_file, command))

    def _spawn(self, command: list[str], log_file: IO[bytes]) -> subprocess.Popen:
        log_file.write((" ".join(command) + "\n").encode())
        log_file.flush()
        return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=self.env,
                                start_new_session=True)

    def pids(self) -> dict[str, int]:
        """Process id of each running node."""
        return {c.spec.name: c.process.pid for c in self.children}

    def check(self) -> None:
        """Raise ``NodeFailed`` if a required node has exited, or a respawned one more than
        ``RESPAWN_MAX_RETRIES`` times; restart a dead respawned node ``RESPAWN_DELAY_S`` after it died."""
        for child in self.children:
            code = child.process.poll()
            if code is None:
                continue
            if not child.spec.respawn or child.respawns >= RESPAWN_MAX_RETRIES:
                raise NodeFailed(child.spec.name, child.process.pid, code, self.log_tail(child.spec.name))
            now = time.monotonic()
            if child.respawn_at is None:
                child.respawn_at = now + RESPAWN_DELAY_S
                print(f"node '{child.spec.name}' (pid {child.process.pid}) exited with code {code}; respawning in "
                      f"{RESPAWN_DELAY_S} s ({child.respawns + 1} of {RESPAWN_MAX_RETRIES})", file=sys.stderr)
            elif now >= child.respawn_at:
                child.respawns, child.respawn_at = child.respawns + 1, None
                child.process = self._spawn(child.command, child.log_file)

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The last ``lines`` lines a node printed."""
        for child in self.children:
            if child.spec.name == name:
                child.log_file.flush()
                text = child.log_path.read_text(errors="replace").splitlines()[-lines:]
                return "\n".join(f"  [{name}] {line}" for line in text)
        return ""

    def wait(self, poll_interval: float = 0.2) -> None:
        """Block until a node exits (raises ``NodeFailed``) or Ctrl-C (KeyboardInterrupt)."""
        while True:
            self.check()
            time.sleep(poll_interval)

    def stop(self) -> dict[str, int]:
        """Stop every node, in ``STOP_ORDER``; returns each node's exit code."""
        def stage(child: _Child) -> int:
            groups = [i for i, group in enumerate(STOP_ORDER) if child.spec.executable in group]
            return groups[0] if groups else len(STOP_ORDER)

        for index in sorted({stage(c) for c in self.children}):
            _stop_processes([c.process for c in self.children if stage(c) == index])
        codes = {}
        for child in self.children:
            child.log_file.close()
            codes[child.spec.name] = child.process.poll()
        return codes

    def __enter__(self) -> "GraphSupervisor":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_processes(processes: list[subprocess.Popen]) -> None:
    """SIGINT, then SIGTERM, then SIGKILL (each to the process group) until every process has ended."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        running = [p for p in processes if p.poll() is None]
        for process in running:
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_GRACE
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
