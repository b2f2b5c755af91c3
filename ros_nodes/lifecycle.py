"""Run a node until it is told to stop, the same way on Humble, Jazzy and Kilted.

Stopping is bounded: the first SIGINT, SIGTERM or SIGHUP wakes the executor
(even with no timer or input), whose next callback raises ``StopRequested``
(between callbacks, never inside rclpy's C code); the node's ``on_stop`` runs
(the safety node sends its hold there) while the ROS context is still up; and
if the process has not ended ``EXIT_DEADLINE_S`` after the signal, a watcher
thread ends it, whatever the main thread is blocked in. Started by ``armpilot up`` (which sets
``SUPERVISOR_PID_ENV``), a node also gets SIGTERM when its supervisor dies, by
any cause including SIGKILL (Linux parent-death signal).
"""

from __future__ import annotations

import ctypes
import faulthandler
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from armpilot.bringup import SUPERVISOR_PID_ENV

#: Seconds from the first stop signal to a forced exit, whatever the node is doing.
EXIT_DEADLINE_S = 1.7
#: Signals that stop a node.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


class StopRequested(Exception):
    """A stop signal arrived (raised from the executor's wake-up callback)."""


class StopSignals:
    """Turns the first stop signal into ``StopRequested`` in the executor and a forced exit after a deadline.

    The wake-up byte Python's C-level handler writes at signal time reaches a
    watcher thread at once, even while the main thread is blocked in C code.
    """

    def __init__(self, deadline_s: float = EXIT_DEADLINE_S) -> None:
        self.deadline_s = deadline_s
        self.received: signal.Signals | None = None
        self.wake: Callable[[], None] | None = None
        self._read, self._write = socket.socketpair()
        self._write.setblocking(False)
        signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        threading.Thread(target=self._watch, name="stop-deadline", daemon=True).start()

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.received is None:  # later signals: the deadline already runs; let on_stop finish
            self.received = signal.Signals(signum)

    def raise_if_received(self) -> None:
        """The executor's wake-up callback: ``StopRequested`` once a stop signal has arrived."""
        if self.received is not None:
            raise StopRequested(self.received.name)

    def _watch(self) -> None:
        while True:
            data = self._read.recv(1)
            if not data or data[0] in {int(s) for s in STOP_SIGNALS}:
                break
        started = time.monotonic()
        signum = data[0] if data else int(signal.SIGTERM)
        if self.received is None:  # the main thread's Python handler may not have run yet
            self.received = signal.Signals(signum)
        wake = self.wake
        if wake is not None:
            try:
                wake()
            except Exception:  # noqa: BLE001 - the deadline below must run whatever happens here
                pass
        time.sleep(max(0.0, self.deadline_s - (time.monotonic() - started)))
        os.write(2, f"[{os.path.basename(sys.argv[0])}] still running {self.deadline_s} s after "
                    f"{signal.Signals(signum).name}; exiting now\n".encode())
        os._exit(128 + signum)


def die_with_supervisor() -> None:
    """SIGTERM this process when the supervisor named in the environment dies (Linux only).

    Exits at once when that supervisor is already gone (it died while this
    process was starting).
    """
    expected = os.environ.get(SUPERVISOR_PID_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != int(expected):
        raise SystemExit(f"the supervisor (pid {expected}) exited while this node was starting")


def run_node(make_node: Callable[[], Node], args: list[str] | None = None,
             spin: Callable[[Node, SingleThreadedExecutor], None] | None = None,
             cleanup: Callable[[Node], None] | None = None,
             on_stop: Callable[[Node], None] | None = None,
             executor: Callable[[], Executor] = SingleThreadedExecutor) -> None:
    """``rclpy.init``, build the node, spin it, and shut down within the exit deadline.

    Args:
        make_node: builds the node (after ``rclpy.init``).
        args: command-line arguments (``--ros-args ...``).
        spin: custom loop (default: ``executor.spin()``).
        cleanup: releases what the node holds (renderer, devices) before it is destroyed.
        on_stop: runs first on a stop signal, with the ROS context still up (may publish).
        executor: builds the executor (a multi-threaded one for nodes with several callback groups).

    A stop signal and errors raised by rclpy while the context is already
    shutting down end quietly; any other error runs ``on_stop`` too (a safety
    node that fails still sends its hold), then propagates so the process exits
    non-zero and the bring-up names it. A crash in native code (a segfault, an
    abort from a corrupted heap) prints every thread's Python stack to stderr
    first, so the bring-up's log says where it happened.
    """
    faulthandler.enable(all_threads=True)
    signals = StopSignals()
    die_with_supervisor()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    stopped = crashed = False
    try:
        node = make_node()
        wake = node.create_guard_condition(signals.raise_if_received)
        signals.wake = wake.trigger
        signals.raise_if_received()  # a signal that came while the node was being built
        running = executor()
        running.add_node(node)
        if spin is None:
            running.spin()
        else:
            spin(node, running)  # type: ignore[arg-type]
    except (StopRequested, KeyboardInterrupt, ExternalShutdownException):
        stopped = True
    except RuntimeError:
        crashed = rclpy.ok()
        if crashed:
            raise
    except Exception:
        crashed = True
        raise
    finally:
        if node is not None:
            if (stopped or crashed) and on_stop is not None and rclpy.ok():
                _stop_even_after_a_crash(node, on_stop, crashed)
            if cleanup is not None:
                cleanup(node)
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    if stopped:
        _exit_now()


def _stop_even_after_a_crash(node: Node, on_stop: Callable[[Node], None], crashed: bool) -> None:
    """``on_stop`` (the safety node's hold) also when an error ends the node; its own error then must not hide
    the first one."""
    if not crashed:
        on_stop(node)
        return
    try:
        on_stop(node)
    except Exception as error:  # noqa: BLE001 - the error that ended the node propagates, not this one
        os.write(2, f"[{os.path.basename(sys.argv[0])}] on_stop failed after an error: {error!r}\n".encode())


def _exit_now() -> None:
    """End a node that stopped cleanly without the interpreter's teardown.

    Tearing down torch, MuJoCo and DDS modules and joining library threads
    takes 1-1.5 s on a loaded machine, most of the 2 s a stop may take;
    everything the node owns was closed above.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)
