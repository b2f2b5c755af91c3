"""``armpilot up``: every node its own process; Ctrl-C and a crashing node stop them all."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graph_harness import unique_domain_id

pytestmark = [pytest.mark.graph, pytest.mark.timeout(120)]
ARMPILOT = str(Path(sys.executable).parent / "armpilot")


def start_up(tmp_path: Path) -> tuple[subprocess.Popen, dict[str, int]]:
    """Start ``armpilot up sim`` and return it with its nodes' process ids."""
    command = [ARMPILOT, "up", "sim", "width:=160", "height:=120", "--domain-id", str(unique_domain_id()),
               "--logs", str(tmp_path / "logs")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert line.startswith("started "), line + process.stderr.read()
    pids = ast.literal_eval(line[len("started "):line.index("}") + 1])
    assert set(pids) == {"sim", "perception", "tracks", "policy", "safety"}
    time.sleep(3.0)  # let the nodes come up
    return process, pids


@pytest.fixture
def graph_processes():
    """Whatever a test started is killed afterwards, so a failure cannot leave a graph loading the machine."""
    started: list[tuple[subprocess.Popen, dict[str, int]]] = []
    yield started
    for process, pids in started:
        for pid in [*pids.values(), process.pid]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_stops_every_node(tmp_path, graph_processes):
    process, pids = start_up(tmp_path)
    graph_processes.append((process, pids))
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, out + err
    assert "stopped" in out
    assert not any(alive(pid) for pid in pids.values())


def test_crashing_node_is_named_and_the_rest_stop(tmp_path, graph_processes):
    process, pids = start_up(tmp_path)
    graph_processes.append((process, pids))
    os.kill(pids["safety"], signal.SIGKILL)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "node 'safety'" in err and "exited with code -9" in err
    assert not any(alive(pid) for pid in pids.values())


def test_a_misspelt_argument_is_an_error_naming_the_known_ones():
    result = subprocess.run([ARMPILOT, "up", "sim", "tsak:=pick"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "tsak" in result.stderr and "'task'" in result.stderr, result.stderr
