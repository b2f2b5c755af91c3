"""Run a node until Ctrl-C or external shutdown, the same way on Humble, Jazzy and Kilted."""

from __future__ import annotations

from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


def run_node(make_node: Callable[[], Node], args: list[str] | None = None,
             spin: Callable[[Node, SingleThreadedExecutor], None] | None = None,
             cleanup: Callable[[Node], None] | None = None) -> None:
    """``rclpy.init``, build the node, spin it, and shut down cleanly.

    Args:
        make_node: builds the node (after ``rclpy.init``).
        args: command-line arguments (``--ros-args ...``).
        spin: custom loop (default: ``executor.spin()``).
        cleanup: releases what the node holds (renderer, devices) before it is destroyed.

    Ctrl-C (SIGINT), SIGTERM via rclpy's handlers and errors raised by rclpy
    while the context is already shutting down all end quietly; any other
    error propagates so the process exits non-zero and the bring-up names it.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        if spin is None:
            executor.spin()
        else:
            spin(node, executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            if cleanup is not None:
                cleanup(node)
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
