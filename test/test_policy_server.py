"""openpi websocket protocol: wire format, server, client, the remote backend, and the real openpi-client."""

from __future__ import annotations

import json
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest

from armpilot.policies.base import Capabilities, Observation, Policy
from armpilot.policies.policy_client import PolicyClient, PolicyServerError
from armpilot.policies.policy_server import PolicyServer, ServerConfig
from armpilot.policies.remote import RemotePolicy, observation_to_request, request_to_observation, serve_policy
from armpilot.policies.wire import WireError, packb, unpackb
from armpilot.robot import CONTROLLED_JOINTS

OPENPI_PYTHON = Path(__file__).resolve().parents[1] / ".venv-openpi" / "bin" / "python"


class LinePolicy(Policy):
    """A deterministic stand-in backend: joint k moves by 0.01 * (step) from the measured state."""

    horizon, chunk_dt = 10, 0.1
    history_offsets = (1 / 15,)
    capabilities = Capabilities(stochastic=True)

    def __init__(self) -> None:
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def sample_candidates(self, obs: Observation, n: int, prefix=None) -> np.ndarray:
        steps = np.arange(1, self.horizon + 1)[:, None] * 0.01
        return np.stack([obs.joint_positions + steps * (k + 1) for k in range(n)])

    def predict_action_chunk(self, obs: Observation) -> np.ndarray:
        return self.sample_candidates(obs, 1)[0]


def _observation(image: bool = False) -> Observation:
    q = np.linspace(0.0, 0.6, 7)
    past = Observation(0.9, CONTROLLED_JOINTS, q - 0.01, np.array([0.4, 0.0, 0.05]), 0.1, np.array([0.5, 0.1, 0.05]))
    return Observation(1.0, CONTROLLED_JOINTS, q, np.array([0.4, 0.0, 0.05]), 0.1, np.array([0.5, 0.1, 0.05]),
                       (past,), np.zeros((4, 6, 3), np.uint8) if image else None)


def test_wire_round_trip_and_refusals():
    message = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.int64(3), "s": "text", "n": {"x": [1, 2]}}
    back = unpackb(packb(message))
    assert np.array_equal(back["a"], message["a"]) and back["a"].dtype == np.float32
    assert back["b"] == 3 and back["s"] == "text" and back["n"] == {"x": [1, 2]}
    with pytest.raises(WireError, match="not allowed"):
        packb({"x": np.array([object()], dtype=object)})
    forged = msgpack.packb({b"__ndarray__": True, b"data": b"\x00" * 8, b"dtype": "|O", b"shape": [1]})
    with pytest.raises(WireError, match="not allowed"):  # an object array from the network is never built
        unpackb(forged)
    short = msgpack.packb({b"__ndarray__": True, b"data": b"\x00" * 3, b"dtype": "<f4", b"shape": [2]})
    with pytest.raises(WireError, match="needs 8 bytes"):
        unpackb(short)
    with pytest.raises(WireError):
        unpackb(b"\xc1 not msgpack")


def test_request_round_trip():
    obs, n, prompt = request_to_observation(unpackb(packb(observation_to_request(_observation(True), 4, "reach"))))
    source = _observation(True)
    assert n == 4 and prompt == "reach" and obs.joint_names == CONTROLLED_JOINTS
    assert np.allclose(obs.joint_positions, source.joint_positions)
    assert np.allclose(obs.goal_position, source.goal_position)
    assert len(obs.history) == 1 and np.allclose(obs.history[0].joint_positions, source.history[0].joint_positions)
    assert obs.image.shape == (4, 6, 3)


@pytest.fixture
def server():
    policy = LinePolicy()
    infer, metadata = serve_policy(policy, CONTROLLED_JOINTS, "line")
    with PolicyServer(infer, metadata, ServerConfig(port=0, api_key="secret")) as running:
        running.policy = policy
        yield running


def _uri(server: PolicyServer) -> str:
    host, port = server.address
    return f"ws://{host}:{port}"


def test_remote_policy_gets_n_candidates_and_metadata(server):
    remote = RemotePolicy(_uri(server), CONTROLLED_JOINTS, api_key="secret", timeout=2.0)
    candidates = remote.sample_candidates(_observation(), 3)
    assert candidates.shape == (3, 10, 7)
    assert np.allclose(candidates[2, 0], _observation().joint_positions + 0.03)
    assert remote.history_offsets == (1 / 15,)
    remote.reset()
    assert server.policy.resets == 1  # openpi's episode_start control message resets the hosted policy
    assert server.address[0] == "127.0.0.1"


def test_wrong_key_is_refused_before_the_handshake(server):
    with pytest.raises(PolicyServerError, match="HTTP 401"):
        PolicyClient(_uri(server), api_key="wrong").connect()
    with pytest.raises(PolicyServerError, match="HTTP 401"):
        PolicyClient(_uri(server)).connect()


def test_wrong_shapes_and_bad_requests_are_named():
    def infer(_request):
        return {"actions": np.zeros((10, 6), np.float32)}  # one joint short

    with PolicyServer(infer, {"action_dt": 0.1}, ServerConfig(port=0)) as running:
        remote = RemotePolicy(_uri(running), CONTROLLED_JOINTS, timeout=2.0)
        with pytest.raises(PolicyServerError, match=r"shape \(10, 6\)"):
            remote.predict_action_chunk(_observation())
    infer, metadata = serve_policy(LinePolicy(), CONTROLLED_JOINTS, "line")
    with PolicyServer(infer, metadata, ServerConfig(port=0)) as running:
        client = PolicyClient(_uri(running), timeout=2.0)
        with pytest.raises(PolicyServerError, match="bad request"):
            client.infer({"observation/state": np.zeros(3, np.float32)})  # no joint names


def test_slow_server_times_out_then_recovers():
    delay = {"s": 0.5}

    def infer(request):
        time.sleep(delay["s"])
        return {"actions": np.zeros((10, 7), np.float32)}

    with PolicyServer(infer, {}, ServerConfig(port=0)) as running:
        client = PolicyClient(_uri(running), timeout=0.2, retry_interval=0.0)
        with pytest.raises(PolicyServerError, match="did not answer within 0.20 s"):
            client.infer({"x": np.zeros(1)})
        delay["s"] = 0.0
        time.sleep(0.6)  # the late answer goes to the closed connection, never to the next request
        assert client.infer({"x": np.zeros(1)})["actions"].shape == (10, 7)


def test_client_reconnects_when_the_server_returns():
    infer, metadata = serve_policy(LinePolicy(), CONTROLLED_JOINTS, "line")
    first = PolicyServer(infer, metadata, ServerConfig(port=0)).start()
    port = first.address[1]
    remote = RemotePolicy(f"127.0.0.1:{port}", CONTROLLED_JOINTS, timeout=1.0)
    remote.client.retry_interval = 0.0
    assert remote.predict_action_chunk(_observation()).shape == (10, 7)
    first.stop()
    with pytest.raises(PolicyServerError):
        remote.predict_action_chunk(_observation())
    with PolicyServer(infer, metadata, ServerConfig(port=port)):
        assert remote.predict_action_chunk(_observation()).shape == (10, 7)


def test_four_clients_at_once(server):
    results: list[tuple[int, ...]] = []

    def run() -> None:
        remote = RemotePolicy(_uri(server), CONTROLLED_JOINTS, api_key="secret", timeout=5.0)
        for _ in range(20):
            results.append(remote.sample_candidates(_observation(), 2).shape)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [(2, 10, 7)] * 80 and server.requests == 80


OPENPI_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from openpi_client import websocket_client_policy
    policy = websocket_client_policy.WebsocketClientPolicy(host="127.0.0.1", port=int(sys.argv[1]), api_key="secret")
    names = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint",
             "wrist_3_joint", "gripper_joint"]
    obs = {"observation/state": np.linspace(0, 0.6, 7).astype(np.float32), "observation/joint_names": names,
           "observation/stamp": 1.0, "observation/object_position": np.array([0.4, 0, 0.05], np.float32),
           "observation/object_yaw": 0.1, "observation/goal": np.array([0.5, 0.1, 0.05], np.float32),
           "prompt": "reach the ball", "num_samples": 1}
    out = policy.infer(obs)
    print(json.dumps({"metadata": policy.get_server_metadata(), "shape": list(out["actions"].shape),
                      "first": out["actions"][0].tolist(), "numpy": np.__version__,
                      "timing": sorted(out["server_timing"])}))
""")


@pytest.mark.timeout(60)
def test_the_published_openpi_client_drives_our_server(server, tmp_path):
    if not OPENPI_PYTHON.is_file():
        pytest.skip(f"{OPENPI_PYTHON} missing: run scripts/setup_env.sh (it makes the openpi-client venv)")
    script = tmp_path / "client.py"
    script.write_text(OPENPI_SCRIPT)
    result = subprocess.run([str(OPENPI_PYTHON), str(script), str(server.address[1])], capture_output=True,
                            text=True, timeout=50)
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["numpy"].startswith("1.")  # openpi-client's own numpy<2 environment
    assert answer["metadata"]["backend"] == "line" and answer["metadata"]["protocol"] == "openpi-websocket"
    assert answer["shape"] == [10, 7] and answer["timing"] == ["batch", "infer_ms"]
    assert np.allclose(answer["first"], np.linspace(0, 0.6, 7) + 0.01, atol=1e-6)


def test_an_oversized_frame_closes_the_connection_and_the_server_keeps_serving(server):
    """Every input from outside is bounded: a frame over MAX_MESSAGE_BYTES is refused (close code 1009)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from armpilot.policies.wire import MAX_MESSAGE_BYTES

    headers = {"Authorization": "Api-Key secret"}
    with connect(_uri(server), additional_headers=headers, max_size=None) as connection:
        connection.recv(timeout=5)  # metadata
        connection.send(b"\x00" * (MAX_MESSAGE_BYTES + 1))
        with pytest.raises(ConnectionClosed) as closed:
            connection.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    remote = RemotePolicy(_uri(server), CONTROLLED_JOINTS, api_key="secret", timeout=2.0)
    assert remote.predict_action_chunk(_observation()).shape == (10, 7)


def test_requests_beyond_the_bounds_are_refused_by_name():
    request = observation_to_request(_observation(), 1)
    for change, match in (({"num_samples": 5000}, "num_samples 5000 outside"),
                          ({"observation/state": np.full(7, np.nan)}, "not finite"),
                          ({"observation/goal": np.full(3, np.inf)}, "goal is infinite"),
                          ({"observation/joint_names": [f"j{k}" for k in range(10_000)],
                            "observation/state": np.zeros(10_000)}, "names")):
        with pytest.raises(ValueError, match=match):
            request_to_observation({**request, **change})
    with pytest.raises(WireError, match="max_array_len|exceeds"):
        unpackb(msgpack.packb({"x": list(range(100_000))}))


def test_a_repeated_authorization_header_is_401_not_500(server):
    import http.client

    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=5)
    connection.putrequest("GET", "/")
    for value in ("Api-Key secret", "Api-Key secret"):
        connection.putheader("Authorization", value)
    for name, value in (("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13"),
                        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")):
        connection.putheader(name, value)
    connection.endheaders()
    assert connection.getresponse().status == 401


def test_connections_are_capped_idle_ones_closed_and_healthz_always_answers():
    import urllib.request

    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    infer, metadata = serve_policy(LinePolicy(), CONTROLLED_JOINTS, "line")
    config = ServerConfig(port=0, max_connections=2, idle_timeout_s=1.0)
    with PolicyServer(infer, metadata, config) as running:
        uri = _uri(running)
        idle = [connect(uri) for _ in range(2)]
        for connection in idle:
            connection.recv(timeout=5)  # metadata: both are in
        with pytest.raises(InvalidStatus, match="503"):
            connect(uri)
        host, port = running.address
        assert urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5).status == 200
        for connection in idle:  # idle past idle_timeout_s: the server closes them
            with pytest.raises(ConnectionClosed):
                connection.recv(timeout=5)
        deadline = time.monotonic() + 5
        while running.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        remote = RemotePolicy(uri, CONTROLLED_JOINTS, timeout=2.0)
        assert remote.predict_action_chunk(_observation()).shape == (10, 7)


def test_the_accept_loop_restarts_when_it_ends_while_serving(monkeypatch):
    """websockets' serve_forever returns when accept() fails (EMFILE): the server starts it again."""
    from websockets.sync.server import Server

    import armpilot.policies.policy_server as policy_server

    original, calls = Server.serve_forever, []

    def fails_once(self):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(24, "Too many open files")
        original(self)

    monkeypatch.setattr(Server, "serve_forever", fails_once)
    monkeypatch.setattr(policy_server, "ACCEPT_RETRY_S", 0.05)
    infer, metadata = serve_policy(LinePolicy(), CONTROLLED_JOINTS, "line")
    with PolicyServer(infer, metadata, ServerConfig(port=0)) as running:
        remote = RemotePolicy(_uri(running), CONTROLLED_JOINTS, timeout=5.0)
        assert remote.predict_action_chunk(_observation()).shape == (10, 7)
    assert len(calls) >= 2


class ColumnPolicy(LinePolicy):
    """Proposes its observation plus 0.01 x (its column + 1): each joint's answer says which column it was in."""

    def sample_candidates(self, obs: Observation, n: int, prefix=None) -> np.ndarray:
        offsets = 0.01 * np.arange(1, len(obs.joint_positions) + 1)
        return np.repeat((obs.joint_positions + offsets)[None, None], n, axis=0).repeat(self.horizon, axis=1)


def test_a_server_running_the_joints_in_another_order_is_fed_and_read_in_its_own():
    """A policy served in the driver's joint order (say a dataset recorded as its /joint_states came) drives a node
    whose profile lists them otherwise: the request is put in the server's order, the actions back in the node's."""
    served = tuple(reversed(CONTROLLED_JOINTS))
    infer, metadata = serve_policy(ColumnPolicy(), served, "column")
    with PolicyServer(infer, metadata, ServerConfig(port=0)) as running:
        remote = RemotePolicy(_uri(running), CONTROLLED_JOINTS, timeout=2.0)
        candidates = remote.sample_candidates(_observation(), 2)
        q = _observation().joint_positions
        assert np.allclose(candidates[:, 0], q + 0.01 * np.arange(7, 0, -1)), "each joint's own answer, by name"
    infer, metadata = serve_policy(ColumnPolicy(), CONTROLLED_JOINTS[:6] + ("finger",), "column")
    with PolicyServer(infer, metadata, ServerConfig(port=0)) as running:
        with pytest.raises(PolicyServerError, match="runs joints .*finger"):
            RemotePolicy(_uri(running), CONTROLLED_JOINTS, timeout=2.0).sample_candidates(_observation(), 1)
