"""Fast DDS shared-memory housekeeping before a graph starts.

A process killed without its shutdown (SIGKILL, a crash, a lost container) leaves
its shared-memory port and segments in ``/dev/shm``. A later participant that is
given the same port (same ROS_DOMAIN_ID, same participant index) can then miss
every sample sent to it over shared memory while its own samples still go out:
one-way silence that looks like a dead node (Fast DDS issue #5053). Fast DDS's own
``fastdds shm clean`` removes such zombies; it only deletes files that no live
process holds, so running graphs are never touched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

#: Seconds the clean may take before it is abandoned (it reads a few hundred small files).
CLEAN_TIMEOUT_S = 30.0


def fastdds_clean_command() -> list[str] | None:
    """The command that runs ``fastdds shm clean``: the tool shipped beside this Python's Fast DDS (run by
    this interpreter, which has its ``psutil``), else ``fastdds`` on PATH (a ROS install); None without one."""
    script = Path(sys.prefix) / "tools" / "fastdds" / "fastdds.py"
    if script.is_file():
        return [sys.executable, str(script), "shm", "clean"]
    tool = shutil.which("fastdds")
    return [tool, "shm", "clean"] if tool else None


def clean_zombie_shm() -> str:
    """Remove the shared-memory ports and segments of dead Fast DDS participants; the tool's summary, or why
    nothing ran. Never raises: a graph starts whether or not the clean could run."""
    command = fastdds_clean_command()
    if command is None:
        return "fastdds tool not found: shared memory not cleaned"
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=CLEAN_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"fastdds shm clean did not run: {error}"
    summary = " ".join((result.stdout + result.stderr).split())
    return summary if result.returncode == 0 else f"fastdds shm clean failed ({result.returncode}): {summary}"
