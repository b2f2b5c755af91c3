"""The launch files under the real ``launch`` / ``launch_ros`` (vendored sources, ``scripts/setup_env.sh``).

As ``ros2 launch armpilot <file>`` does: the package is found through the ament index (a scratch
prefix whose ``lib/armpilot`` holds this venv's node executables and ``share/armpilot`` this tree),
the file's arguments are listed, and it is launched by a ``LaunchService``. ROS packages that are not
on PyPI (robot_state_publisher, rviz2, realsense2_camera, ros_gz) get stand-in executables that idle
until stopped; ``composition_interfaces`` gets an import stand-in (``test/launch_stubs``).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from armpilot.bringup import ros_environment
from graph_harness import unique_domain_id
from synthetic_bags import write_episode
from test_stopping import ControllerProbe, processes_with

pytestmark = [pytest.mark.graph, pytest.mark.timeout(240),
              pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None,
                                 reason="the vendored launch packages are not installed (scripts/setup_env.sh)")]

ROOT = Path(__file__).resolve().parent.parent
STUBS = Path(__file__).resolve().parent / "launch_stubs"
NODE_EXECUTABLES = ("sim_node", "policy_node", "safety_node", "perception_node", "tracks_node", "recorder_node",
                    "teleop_node", "realsense_node", "player_node", "armpilot")
STAND_INS = {"robot_state_publisher": ["robot_state_publisher"], "rviz2": ["rviz2"], "ros_gz_sim": ["create"],
             "ros_gz_bridge": ["parameter_bridge"], "controller_manager": ["spawner"]}
#: An included launch file stands in as an empty description.
EMPTY_LAUNCH = ("from launch import LaunchDescription\n\n"
                "def generate_launch_description():\n    return LaunchDescription([])\n")
RUNNER = """
import sys
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.launch_description_sources import get_launch_description_from_python_launch_file
from ament_index_python.packages import get_package_share_directory
path = get_package_share_directory("armpilot") + "/launch/" + sys.argv[1]
arguments = [tuple(a.split(":=", 1)) for a in sys.argv[2:]]
if arguments == [("--show-args",)]:
    description = get_launch_description_from_python_launch_file(path)  # as ros2 launch --show-args
    for argument in description.get_launch_arguments():
        print(argument.name, "-", argument.description)
    sys.exit(0)
service = LaunchService()
service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
    PythonLaunchDescriptionSource(path), launch_arguments=arguments)]))
sys.exit(service.run())
"""


def _prefix(root: Path) -> Path:
    """A scratch ament prefix with armpilot and the stand-ins registered."""
    index = root / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (root / "lib" / "armpilot").mkdir(parents=True)
    (index / "armpilot").touch()
    (root / "share" / "armpilot").symlink_to(ROOT)
    for name in NODE_EXECUTABLES:
        (root / "lib" / "armpilot" / name).symlink_to(Path(sys.executable).parent / name)
    for package, executables in STAND_INS.items():
        (index / package).touch()
        (root / "share" / package / "launch").mkdir(parents=True)
        (root / "share" / package / "launch" / "gz_sim.launch.py").write_text(EMPTY_LAUNCH)
        folder = root / "lib" / package
        folder.mkdir(parents=True)
        for executable in executables:
            script = folder / executable
            script.write_text("#!/bin/sh\nexec sleep 100000\n")
            script.chmod(0o755)
    return root


def _launch(tmp_path: Path, token: str, domain: int, *arguments: str) -> subprocess.Popen:
    env = ros_environment(domain)
    env.update(AMENT_PREFIX_PATH=str(_prefix(tmp_path / "prefix")),
               PYTHONPATH=os.pathsep.join([str(STUBS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               ARMPILOT_LAUNCH_TEST=token)
    process = subprocess.Popen([sys.executable, "-c", RUNNER, *arguments], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    # drained all along: a full pipe would block the launch's event loop, Ctrl-C included
    process.lines = []  # type: ignore[attr-defined]
    process.token = token  # type: ignore[attr-defined]
    process.reader = threading.Thread(target=lambda: process.lines.extend(process.stdout), daemon=True)
    process.reader.start()
    return process


def _output(process: subprocess.Popen, timeout: float) -> str:
    """Wait up to ``timeout`` s for the launch to end; everything it printed (a failure naming the processes
    still running and the launch's last words when it does not end)."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        running = []
        for pid in processes_with(process.token):  # type: ignore[attr-defined]
            try:
                running.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
            except OSError:
                continue  # ended meanwhile
        pytest.fail(f"the launch did not end within {timeout} s; still running: {running}\n"
                    + "".join(process.lines)[-4000:])  # type: ignore[attr-defined]
    process.reader.join(timeout=10)  # type: ignore[attr-defined]
    return "".join(process.lines)  # type: ignore[attr-defined]


def test_show_args_lists_every_argument_with_its_description(tmp_path):
    process = _launch(tmp_path, "show-args", unique_domain_id(), "sim.launch.py", "--show-args")
    out = _output(process, 120)
    assert process.returncode == 0, out
    for name in ("robot", "urdf", "task", "policy", "rviz"):
        assert any(line.startswith(f"{name} - ") and len(line) > len(name) + 5 for line in out.splitlines()), out


def test_a_misspelt_argument_fails_the_launch_naming_the_known_ones(tmp_path):
    process = _launch(tmp_path, "misspelt", unique_domain_id(), "sim.launch.py", "tsak:=pick")
    out = _output(process, 120)
    assert process.returncode != 0 and "tsak" in out and "'task'" in out, out[-3000:]


def test_sim_launch_runs_the_graph_and_ctrl_c_stops_every_process(tmp_path, monkeypatch):
    token = uuid.uuid4().hex
    domain = unique_domain_id()
    env = ros_environment(domain)
    for key in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_BUILTIN_TRANSPORTS"):
        monkeypatch.setenv(key, env[key])
    process = _launch(tmp_path, token, domain, "sim.launch.py", "width:=160", "height:=120")
    probe = ControllerProbe(domain)
    try:
        if not probe.spin_until(lambda: probe.moves > 0, 180):
            process.kill()
            pytest.fail("the launched graph never commanded the arm:\n" + _output(process, 30)[-4000:])
        names = {Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1].decode().rsplit("/", 1)[-1]
                 for pid in processes_with(token) if pid != process.pid}
        assert {"sim_node", "policy_node", "safety_node", "perception_node", "tracks_node"} <= names, names
        holds = probe.holds
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal: launch and its processes
        _output(process, 60)
        deadline = time.monotonic() + 10
        while processes_with(token) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not processes_with(token), "processes left after Ctrl-C"
        probe.spin_until(lambda: probe.holds > holds, 2.0)
        assert probe.holds > holds, "the safety node sent no hold on Ctrl-C"
    finally:
        probe.close()
        for pid in processes_with(token):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("launch_file", ["real.launch.py", "record.launch.py", "teleop.launch.py",
                                         "replay.launch.py", "gazebo.launch.py", "real_record.launch.py"])
def test_every_launch_file_starts_its_nodes_and_ctrl_c_stops_them(tmp_path, launch_file):
    token = uuid.uuid4().hex
    arguments = []
    if launch_file == "replay.launch.py":
        arguments = [f"bag:={write_episode(tmp_path / 'bags' / 'episode_000000', duration=30.0)}"]
    process = _launch(tmp_path, token, unique_domain_id(), launch_file, *arguments)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None and len(processes_with(token)) < 3:
            time.sleep(0.5)
        time.sleep(3.0)
        started = processes_with(token)
        assert process.poll() is None, _output(process, 30)[-3000:]
        os.killpg(process.pid, signal.SIGINT)
        out = _output(process, 60)
        assert len(started) >= 2, out[-3000:]
        deadline = time.monotonic() + 10
        while processes_with(token) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not processes_with(token), "processes left after Ctrl-C"
    finally:
        for pid in processes_with(token):
            os.kill(pid, signal.SIGKILL)
