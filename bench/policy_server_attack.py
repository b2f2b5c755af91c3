"""The policy server under attack: valid clients' latency and the server's memory, with and without attackers.

Starts ``armpilot serve --backend scripted`` as its own process on 127.0.0.1
(so its RSS and thread count are its own), then measures one valid client's
round trip (p50 / p99 over ``--repeats`` requests) twice: alone (baseline) and
while attackers run on loopback:

* ``oversized``: connects and sends frames just over MAX_MESSAGE_BYTES, again and again;
* ``idle``: ``--idle`` connections opened and left silent (beyond the cap: HTTP 503);
* ``expansion``: msgpack lists of 1M small integers (refused by the container bound);
* ``num_samples``: requests for 5000 candidates (refused by the cap).

The valid client connects before the attack (as a policy node keeps its
connection). Rows: latency alone / under attack and their ratio, server RSS
(MB) before, peak during and after, server threads peak, whether a *new*
client got in during the attack (idle attackers fill the connection cap until
their idle timeout: require an API key so strangers cannot), attack counts.

    python bench/policy_server_attack.py            # table
    python bench/policy_server_attack.py --json
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
from websockets.sync.client import connect

from figures import print_figures  # bench/ is on sys.path when run as a script
from armpilot.policies.remote import RemotePolicy
from armpilot.policies.wire import MAX_MESSAGE_BYTES
from armpilot.robot import CONTROLLED_JOINTS
from policy_server import observation

MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_status(pid: int) -> tuple[float, int]:
    """(RSS in MB, threads) of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def latencies(remote: RemotePolicy, repeats: int) -> np.ndarray:
    out = []
    for k in range(repeats):
        started = time.perf_counter()
        remote.sample_candidates(observation(k), 1)
        out.append(1e3 * (time.perf_counter() - started))
    return np.asarray(out)


class Attackers:
    """Attack threads on loopback until ``stop``; counts what each did."""

    def __init__(self, uri: str, idle: int) -> None:
        self.uri, self.idle = uri, idle
        self.running = True
        self.counts = {"oversized_sent": 0, "expansion_sent": 0, "num_samples_sent": 0, "idle_open": 0,
                       "idle_refused": 0}
        self.held: list[Any] = []
        self.threads = [threading.Thread(target=t, daemon=True)
                        for t in (self.oversized, self.expansion, self.num_samples, self.idle_connections)]

    def __enter__(self) -> "Attackers":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running = False
        for thread in self.threads:
            thread.join(timeout=10)
        for connection in self.held:
            connection.close()

    def _loop(self, payload: bytes, key: str) -> None:
        while self.running:
            try:
                with connect(self.uri, max_size=None, open_timeout=5) as connection:
                    connection.recv(timeout=5)
                    connection.send(payload)
                    self.counts[key] += 1
                    connection.recv(timeout=5)
            except Exception:  # noqa: BLE001 - refusals end the connection; that is the point
                pass

    def oversized(self) -> None:
        self._loop(b"\x00" * (MAX_MESSAGE_BYTES + 1), "oversized_sent")

    def expansion(self) -> None:
        self._loop(msgpack.packb({"observation/joint_names": list(range(1_000_000))}), "expansion_sent")

    def num_samples(self) -> None:
        from armpilot.policies.remote import observation_to_request
        from armpilot.policies.wire import packb

        self._loop(packb(observation_to_request(observation(0), 5000)), "num_samples_sent")

    def idle_connections(self) -> None:
        for _ in range(self.idle):
            if not self.running:
                return
            try:
                connection = connect(self.uri, open_timeout=5)
                self.held.append(connection)
                self.counts["idle_open"] += 1
            except Exception:  # noqa: BLE001 - 503 beyond the connection cap
                self.counts["idle_refused"] += 1


def run(repeats: int, idle: int) -> dict[str, Any]:
    port = free_port()
    armpilot = str(Path(sys.executable).parent / "armpilot")
    server = subprocess.Popen([armpilot, "serve", "--backend", "scripted", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"ws://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the policy server did not start") from None
                time.sleep(0.2)
        remote = RemotePolicy(uri, CONTROLLED_JOINTS, timeout=30.0)  # connected before the attack, as a policy node
        alone = latencies(remote, repeats)
        rss_before, _ = server_status(server.pid)
        peak_rss, peak_threads = rss_before, 0
        with Attackers(uri, idle) as attack:
            time.sleep(1.0)
            attacked = latencies(remote, repeats)
            try:
                RemotePolicy(uri, CONTROLLED_JOINTS, timeout=5.0).sample_candidates(observation(0), 1)
                new_client = "served"
            except Exception as error:  # noqa: BLE001 - the cap is full of idle attackers: reported, not hidden
                new_client = f"refused ({str(error).split(': ', 1)[-1][:40]})"
            for _ in range(10):
                rss, threads = server_status(server.pid)
                peak_rss, peak_threads = max(peak_rss, rss), max(peak_threads, threads)
                time.sleep(0.1)
            counts = dict(attack.counts)
        healthz = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).status
        rss_after, _ = server_status(server.pid)
    finally:
        server.terminate()
        server.wait(10)
    figures: dict[str, Any] = {
        "alone_p50_ms": float(np.percentile(alone, 50)), "alone_p99_ms": float(np.percentile(alone, 99)),
        "attacked_p50_ms": float(np.percentile(attacked, 50)), "attacked_p99_ms": float(np.percentile(attacked, 99)),
    }
    figures["p99_attacked_over_alone"] = figures["attacked_p99_ms"] / figures["alone_p99_ms"]
    figures.update({"server_rss_before_mb": rss_before, "server_rss_peak_mb": peak_rss,
                    "server_rss_after_mb": rss_after, "server_threads_peak": peak_threads,
                    "healthz_after": healthz, "new_client_during_attack": new_client, **counts})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200, help="valid requests per measurement (default: 200)")
    parser.add_argument("--idle", type=int, default=200, help="idle connections the attacker opens (default: 200)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    print_figures(run(args.repeats, args.idle), args.json)


if __name__ == "__main__":
    main()
