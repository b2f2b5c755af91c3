"""The remote backend against a real third-party openpi server (PyPI ``openpi-server``, its own numpy<2 venv).

An openpi policy raises on anything that is not an observation, sends no
action spacing and answers an action horizon of its own (50 frames here).
"""

from __future__ import annotations

import socket
import subprocess
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from armpilot.policies.base import Observation
from armpilot.policies.policy_client import PolicyClient, PolicyServerError
from armpilot.policies.remote import RemotePolicy
from armpilot.robot import CONTROLLED_JOINTS

OPENPI_PYTHON = Path(__file__).resolve().parents[1] / ".venv-openpi" / "bin" / "python"
#: The third-party server's frames: 50 of them, 1 mrad per frame on every joint.
SERVER_FRAMES, SERVER_STEP = 50, 0.001

SERVER_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from openpi_server import WebsocketPolicyServer

    class LinePolicy:  # an openpi BasePolicy: infer(obs) -> {"actions": (50, J)}
        def infer(self, obs):
            if "observation/state" not in obs:
                raise KeyError(f"not an observation: {sorted(obs)}")
            if sys.argv[2] == "block":
                time.sleep(3600)
            steps = np.arange(1, 51, dtype=np.float32)[:, None] * 0.001
            return {"actions": np.asarray(obs["observation/state"], np.float32)[None] + steps}

        def reset(self):
            pass

    WebsocketPolicyServer(LinePolicy(), host="127.0.0.1", port=int(sys.argv[1]), metadata={}).serve_forever()
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def openpi_server(tmp_path):
    """Start the third-party server (mode "line" or "block"); yields its ws:// URI."""
    if not OPENPI_PYTHON.is_file() or subprocess.run([str(OPENPI_PYTHON), "-c", "import openpi_server"],
                                                     capture_output=True).returncode:
        pytest.skip(f"{OPENPI_PYTHON} lacks openpi-server: run scripts/setup_env.sh")
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT)
    processes = []

    def start(mode: str) -> str:
        port = _free_port()
        process = subprocess.Popen([str(OPENPI_PYTHON), str(script), str(port), mode], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        processes.append(process)
        uri, deadline = f"ws://127.0.0.1:{port}", time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for the handshake: the server sends its metadata
            try:
                PolicyClient(uri, connect_timeout=1.0).connect()
                return uri
            except PolicyServerError:
                assert process.poll() is None, process.communicate()[0][-2000:]
                time.sleep(0.2)
        raise TimeoutError(f"the openpi server did not come up on {uri}")

    yield start
    for process in processes:
        process.kill()
        process.wait(timeout=10)


def _observation(k: int) -> Observation:
    q = np.linspace(0.0, 0.6, 7) + 0.01 * k
    return Observation(1.0 + 0.2 * k, CONTROLLED_JOINTS, q, np.array([0.4, 0.0, 0.05]), 0.1,
                       np.array([0.5, 0.1, 0.05]))


@pytest.mark.timeout(120)
def test_the_openpi_server_drives_whole_episodes_without_a_lost_cycle(openpi_server):
    remote = RemotePolicy(openpi_server("line"), CONTROLLED_JOINTS, horizon=10, chunk_dt=0.1, timeout=5.0,
                          action_dt=0.02)
    remote.client.retry_interval = 5.0  # a dropped connection would cost the next cycles: none may be lost
    for episode in range(3):
        remote.reset()  # an episode start: nothing reaches a server that did not announce control messages
        for k in range(8):
            chunk = remote.predict_action_chunk(_observation(k))
            assert chunk.shape == (10, 7)
            # the server's frames are 0.02 s apart (the parameter): 0.1 s = frame 5 = +5 mrad
            expected = _observation(k).joint_positions + SERVER_STEP * 5 * np.arange(1, 11)[:, None]
            assert np.allclose(chunk, expected, atol=1e-5), f"episode {episode} cycle {k}"
    assert remote.client.metadata == {}


@pytest.mark.timeout(120)
def test_without_an_action_spacing_the_remote_backend_refuses_to_guess(openpi_server):
    remote = RemotePolicy(openpi_server("line"), CONTROLLED_JOINTS, timeout=5.0)
    with pytest.raises(PolicyServerError, match="no action spacing.*server_action_dt"):
        remote.predict_action_chunk(_observation(0))


@pytest.mark.timeout(120)
def test_a_blocked_server_costs_one_timeout_not_a_close_handshake(openpi_server):
    remote = RemotePolicy(openpi_server("block"), CONTROLLED_JOINTS, timeout=0.3, action_dt=0.02)
    remote.client.connect()
    started = time.monotonic()
    with pytest.raises(PolicyServerError, match="did not answer within 0.30 s"):
        remote.predict_action_chunk(_observation(0))
    elapsed = time.monotonic() - started
    assert elapsed < 0.3 + 1.0, f"the 0.3 s request took {elapsed:.2f} s (waiting for a close handshake?)"
    started = time.monotonic()
    with pytest.raises(PolicyServerError, match="is down; retrying"):
        remote.predict_action_chunk(_observation(1))
    assert time.monotonic() - started < 0.5
