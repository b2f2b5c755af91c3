"""A policy server on openpi's websocket protocol (no ROS).

Protocol (openpi ``WebsocketPolicyServer`` / ``WebsocketClientPolicy``): the
client connects (``Authorization: Api-Key <key>`` header when the server has
a key), the server first sends one msgpack map of metadata, then answers each
binary msgpack observation map with one binary msgpack action map (at least
``actions``). An error is answered with a text frame (the message), then the
connection is closed. ``GET /healthz`` answers 200 for load balancers.

The server binds 127.0.0.1 unless told otherwise, checks the key before the
websocket handshake completes (401 otherwise, also for a repeated or
malformed header), decodes with ``wire`` (no pickle, bounded frames and
containers) and runs inference on one worker thread that batches concurrent
requests (``request_batching``: at most ``max_batch`` per forward pass, the
first waits at most ``max_batch_wait_ms`` for others), so several robots
share one model and one GPU.
Bounded: ``max_connections`` at once (503 beyond, ``/healthz`` always
answers), a connection idle for ``idle_timeout_s`` is closed, and the accept
loop is restarted if it ever ends while the server should run (EMFILE).
Logged errors are cut to ``MAX_LOGGED_CHARS``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from armpilot.policies.request_batching import BatchConfig, InferBatch, RequestBatcher, one_by_one
from armpilot.policies.wire import MAX_MESSAGE_BYTES, WireError, packb, unpackb

LOG = logging.getLogger("armpilot.policy_server")
Infer = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class ServerConfig:
    """Where and how the server listens. ``port`` 0 picks a free port."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_connections: int = 32
    idle_timeout_s: float = 60.0
    max_batch: int = BatchConfig.max_batch
    max_batch_wait_ms: float = BatchConfig.max_wait_ms


#: Longest client-provided text a log line or error reply carries.
MAX_LOGGED_CHARS = 200
#: Seconds between restarts of an accept loop that ended on its own (out of file descriptors).
ACCEPT_RETRY_S = 0.5


def brief(value: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """``str(value)`` cut to ``limit`` characters (client input is never echoed whole)."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


class PolicyServer:
    """Serves ``infer(observation dict) -> action dict`` to any number of websocket clients.

    ``infer_batch`` (optional): answers several requests in one call (one forward pass); without it
    concurrent requests are still gathered, then answered one by one with ``infer``.
    """

    def __init__(self, infer: Infer, metadata: dict[str, Any], config: ServerConfig = ServerConfig(),
                 infer_batch: InferBatch | None = None) -> None:
        self.infer, self.metadata, self.config = infer, metadata, config
        self.infer_batch = infer_batch or one_by_one(infer)
        self._batcher: RequestBatcher | None = None
        self.requests = 0
        self.connections = 0
        self._count_lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._running = False

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        if request.path == "/healthz":
            return connection.respond(HTTPStatus.OK, "OK\n")
        if self.config.api_key and request.headers.get_all("Authorization") != [f"Api-Key {self.config.api_key}"]:
            return connection.respond(HTTPStatus.UNAUTHORIZED, "missing, repeated or wrong 'Authorization: Api-Key' "
                                                               "header\n")
        if self.connections >= self.config.max_connections:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE,
                                      f"{self.connections} clients connected (max {self.config.max_connections})\n")
        return None

    def _handle(self, connection: ServerConnection) -> None:
        with self._count_lock:
            self.connections += 1
        try:
            self._serve_client(connection)
        finally:
            with self._count_lock:
                self.connections -= 1

    def _serve_client(self, connection: ServerConnection) -> None:
        peer = connection.remote_address
        LOG.info("client %s connected", peer)
        connection.send(packb(self.metadata))
        try:
            while True:
                try:
                    message = connection.recv(timeout=self.config.idle_timeout_s)
                except TimeoutError:
                    LOG.info("client %s idle for %.0f s: closing", peer, self.config.idle_timeout_s)
                    connection.close()
                    return
                if isinstance(message, str):
                    connection.send("expected a binary msgpack observation, got a text frame")
                    continue
                try:
                    observation = unpackb(message)
                    assert self._batcher is not None, "started servers have a batcher"
                    reply, timing = self._batcher.submit(observation)
                    actions = {**reply, "server_timing": timing}
                    self.requests += 1
                    connection.send(packb(actions))
                except (WireError, KeyError, ValueError, TypeError) as error:
                    LOG.warning("bad request from %s: %s", peer, brief(error))
                    connection.send(f"bad request: {brief(error)}")
                    connection.close()
                    return
        except ConnectionClosed:
            pass
        LOG.info("client %s disconnected", peer)

    def start(self) -> PolicyServer:
        """Listen in a background thread; returns self (``address`` is then known)."""
        self._server = serve(self._handle, self.config.host, self.config.port, compression=None,
                             max_size=MAX_MESSAGE_BYTES,
                             process_request=self._process_request)
        self._batcher = RequestBatcher(self.infer_batch, BatchConfig(self.config.max_batch,
                                                                     self.config.max_batch_wait_ms))
        self._running = True
        self._thread = threading.Thread(target=self._accept_loop, name="policy-server", daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        """``serve_forever`` again whenever it ends while the server should run (it ends on EMFILE)."""
        while self._running and self._server is not None:
            try:
                self._server.serve_forever()
            except OSError as error:
                LOG.error("accepting connections failed: %s", error)
            if self._running:
                LOG.error("the accept loop ended (out of file descriptors?); restarting in %.1f s", ACCEPT_RETRY_S)
                time.sleep(ACCEPT_RETRY_S)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound."""
        assert self._server is not None, "call start() first"
        host, port = self._server.socket.getsockname()[:2]
        return host, port

    def stop(self) -> None:
        self._running = False
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
