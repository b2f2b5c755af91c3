"""A client for openpi-protocol policy servers (no ROS): timeouts, reconnects, shape checks.

``infer`` either returns the server's action map or raises ``PolicyServerError``
(naming what happened: refused, wrong key, timed out, disconnected, an error
message from the server). After any failure the connection is torn down at
once (the socket closed, no close handshake a blocked server would never
answer), so ``timeout`` bounds the call and a late answer can never be taken
for the next request's; the next ``infer`` reconnects (at most once per
``retry_interval``), which is how the policy node recovers when a server comes
back.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from armpilot.policies.wire import MAX_MESSAGE_BYTES, WireError, packb, unpackb


class PolicyServerError(RuntimeError):
    """The policy server could not answer; the message says why."""


class PolicyClient:
    """``infer(observation dict) -> action dict`` over a websocket, openpi's protocol.

    Args:
        uri: ``ws://host:port`` (a bare ``host:port`` gets ``ws://``).
        api_key: sent as ``Authorization: Api-Key <key>``.
        timeout: seconds to wait for an answer.
        connect_timeout: seconds for the TCP + websocket handshake.
        retry_interval: seconds between reconnection attempts after a failure.
    """

    def __init__(self, uri: str, api_key: str | None = None, timeout: float = 1.0, connect_timeout: float = 2.0,
                 retry_interval: float = 1.0) -> None:
        self.uri = uri if uri.startswith("ws") else f"ws://{uri}"
        self.api_key, self.timeout = api_key, timeout
        self.connect_timeout, self.retry_interval = connect_timeout, retry_interval
        self.metadata: dict[str, Any] | None = None
        self._connection: ClientConnection | None = None
        self._last_attempt = float("-inf")

    def connect(self) -> dict[str, Any]:
        """Open the connection and read the server's metadata map."""
        self._last_attempt = time.monotonic()
        headers = {"Authorization": f"Api-Key {self.api_key}"} if self.api_key else None
        try:
            with warnings.catch_warnings():  # this object owns the connection's lifetime (close()), not a with-block
                warnings.simplefilter("ignore", DeprecationWarning)
                connection = connect(self.uri, additional_headers=headers, compression=None, max_size=MAX_MESSAGE_BYTES,
                                     open_timeout=self.connect_timeout, close_timeout=min(self.timeout, 1.0))
                metadata = unpackb(connection.recv(timeout=self.connect_timeout))
        except InvalidStatus as error:
            raise PolicyServerError(f"{self.uri} refused the connection: HTTP {error.response.status_code} "
                                    f"{error.response.body.decode(errors='replace').strip()}") from error
        except (OSError, TimeoutError, WebSocketException, WireError) as error:
            raise PolicyServerError(f"cannot reach the policy server at {self.uri}: {error}") from error
        self._connection, self.metadata = connection, metadata
        return metadata

    def ensure_connected(self) -> dict[str, Any]:
        """The server's metadata, connecting first when not connected (not sooner than ``retry_interval`` after a
        failed attempt). Raises PolicyServerError."""
        if self._connection is None:
            wait = self.retry_interval - (time.monotonic() - self._last_attempt)
            if wait > 0:
                raise PolicyServerError(f"policy server at {self.uri} is down; retrying in {wait:.1f} s")
            self.connect()
        assert self.metadata is not None
        return self.metadata

    def infer(self, observation: dict[str, Any]) -> dict[str, Any]:
        """Send one observation map, return the action map. Raises PolicyServerError."""
        self.ensure_connected()
        assert self._connection is not None
        try:
            self._connection.send(packb(observation))
            reply = self._connection.recv(timeout=self.timeout)
        except TimeoutError as error:
            self.abort()
            raise PolicyServerError(
                f"policy server at {self.uri} did not answer within {self.timeout:.2f} s") from error
        except (ConnectionClosed, OSError) as error:
            self.abort()
            raise PolicyServerError(f"policy server at {self.uri} disconnected: {error}") from error
        if isinstance(reply, str):
            self.abort()
            raise PolicyServerError(f"policy server at {self.uri} answered an error: {reply}")
        try:
            return unpackb(reply)
        except WireError as error:
            self.abort()
            raise PolicyServerError(f"policy server at {self.uri} sent an unreadable answer: {error}") from error

    def abort(self) -> None:
        """Drop the connection now: close the socket without the close handshake."""
        if self._connection is not None:
            self._connection.close_socket()
            self._connection = None
            self._last_attempt = time.monotonic()

    def close(self) -> None:
        """Close politely (a close handshake of at most min(timeout, 1 s))."""
        if self._connection is not None:
            try:
                self._connection.close()
            except (OSError, WebSocketException):
                pass
            self._connection = None
            self._last_attempt = time.monotonic()
