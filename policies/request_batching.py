"""Dynamic batching of concurrent policy requests (no ROS).

Many clients (robots) share one model: each connection thread ``submit``s its
request and blocks; one worker thread takes the first waiting request, waits
at most ``max_wait_ms`` for others (never longer than needed: it stops as soon
as ``max_batch`` have arrived), and answers them all with one
``infer_batch`` call: one forward pass on the GPU or CPU instead of one per
client. Inference is serialised by the worker, so the model is never run from
two threads. With a single client the only cost is the wait for a second one
(none when ``max_wait_ms`` is 0).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

#: requests (B,) -> one result per request: the reply map, or the exception that request raises.
InferBatch = Callable[[list[dict[str, Any]]], list[Any]]


@dataclass(frozen=True)
class BatchConfig:
    """``max_batch``: most requests per forward pass (>= 1); ``max_wait_ms``: longest wait for more, ms."""

    max_batch: int = 16
    max_wait_ms: float = 2.0

    def __post_init__(self) -> None:
        if self.max_batch < 1 or not 0.0 <= self.max_wait_ms <= 1000.0:
            raise ValueError(f"max_batch {self.max_batch} must be >= 1 and max_wait_ms {self.max_wait_ms} "
                             "in 0..1000")


def one_by_one(infer: Callable[[dict[str, Any]], dict[str, Any]]) -> InferBatch:
    """An ``InferBatch`` that calls ``infer`` per request (models that cannot batch), exceptions kept."""

    def infer_batch(requests: list[dict[str, Any]]) -> list[Any]:
        results: list[Any] = []
        for request in requests:
            try:
                results.append(infer(request))
            except Exception as error:  # noqa: BLE001 - handed to that request's caller, who reports it
                results.append(error)
        return results

    return infer_batch


class RequestBatcher:
    """Gathers requests from many threads into ``infer_batch`` calls on one worker thread."""

    def __init__(self, infer_batch: InferBatch, config: BatchConfig = BatchConfig()) -> None:
        self.infer_batch, self.config = infer_batch, config
        self._queue: queue.Queue[tuple[dict[str, Any], Future]] = queue.Queue()
        self._running = True
        self._lock = threading.Lock()  # submit vs close: nothing is queued after the last drain
        self.batches = 0
        self.requests = 0
        self._worker = threading.Thread(target=self._run, name="policy-batcher", daemon=True)
        self._worker.start()

    def submit(self, request: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
        """(reply map, timing {infer_ms, batch}) for one request; raises what its inference raised."""
        future: Future = Future()
        with self._lock:
            if not self._running:
                raise RuntimeError("the batcher is closed")
            self._queue.put((request, future))
        return future.result()

    def _gather(self) -> list[tuple[dict[str, Any], Future]] | None:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return None
        deadline = time.monotonic() + self.config.max_wait_ms / 1e3
        while len(batch) < self.config.max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while self._running:
            batch = self._gather()
            if not batch:
                continue
            started = time.perf_counter()
            try:
                results = self.infer_batch([request for request, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"infer_batch answered {len(results)} of {len(batch)} requests")
            except Exception as error:  # noqa: BLE001 - every waiting caller gets it
                results = [error] * len(batch)
            timing = {"infer_ms": 1e3 * (time.perf_counter() - started), "batch": len(batch)}
            self.batches += 1
            self.requests += len(batch)
            for (_, future), result in zip(batch, results):
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result((result, timing))

    def close(self) -> None:
        """Stop the worker; requests still queued get a RuntimeError."""
        with self._lock:
            self._running = False
        self._worker.join(timeout=5)
        while True:
            try:
                _, future = self._queue.get_nowait()
            except queue.Empty:
                return
            future.set_exception(RuntimeError("the policy server is stopping"))
