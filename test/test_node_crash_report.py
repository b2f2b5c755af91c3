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
