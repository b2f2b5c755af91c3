"""A node that dies in native code says where: its Python stack reaches stderr (for the bring-up's log)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CRASHING_NODE = textwrap.dedent("""
    import os
    from armpilot.ros_nodes.lifecycle import run_node

    def build_node_that_aborts():
        os.abort()  # what glibc does on a corrupted heap

    run_node(build_node_that_aborts, [])
""")


def test_a_native_abort_prints_the_python_stack():
    done = subprocess.run([sys.executable, "-c", CRASHING_NODE], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "Fatal Python error: Aborted" in done.stderr, done.stderr[-2000:]
    assert "build_node_that_aborts" in done.stderr, done.stderr[-2000:]


FAILING_NODE = textwrap.dedent("""
    import sys
    import rclpy
    from armpilot.ros_nodes.lifecycle import run_node

    def spin_that_fails(node, executor):
        raise ValueError("a bug in a callback")

    def on_stop(node):
        open(sys.argv[1], "w").write("held")

    run_node(lambda: rclpy.create_node("failing_node"), [], spin=spin_that_fails, on_stop=on_stop)
""")


def test_a_node_that_fails_still_runs_its_stop_and_names_the_error(tmp_path):
    """The safety node's ``on_stop`` sends its hold: an error in the node must not skip it."""
    marker = tmp_path / "stopped"
    done = subprocess.run([sys.executable, "-c", FAILING_NODE, str(marker)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and "a bug in a callback" in done.stderr, done.stderr[-2000:]
    assert marker.read_text() == "held"
