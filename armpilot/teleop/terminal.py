"""Read single keys from a terminal without blocking, and always restore it.

Uses cbreak mode (no line buffering, no echo; Ctrl-C still raises
KeyboardInterrupt) and ``select`` with a zero timeout.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import tty
from typing import TextIO


class NotATerminal(RuntimeError):
    """stdin is not an interactive terminal (e.g. started from a launch file or a pipe)."""


class KeyReader:
    """Context manager: ``with KeyReader() as keys: keys.read()`` -> the chars typed since the last read."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdin
        self._saved: list | None = None

    def open(self) -> KeyReader:
        if not self.stream.isatty():
            raise NotATerminal("stdin is not a terminal, so keyboard teleop cannot read keys "
                               "(started from a launch file, a pipe or a service?). Run "
                               "`ros2 run armpilot teleop_node` (or `teleop_node`) in a terminal, "
                               "or use device:=joy / device:=spacemouse.")
        fd = self.stream.fileno()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        return self

    def close(self) -> None:
        """Restore the terminal settings saved by ``open`` (safe to call twice)."""
        if self._saved is not None:
            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None

    def read(self) -> str:
        """All characters available now (empty string if none); never blocks."""
        fd = self.stream.fileno()
        chars = []
        while select.select([fd], [], [], 0.0)[0]:
            data = os.read(fd, 64)
            if not data:
                break
            chars.append(data.decode(errors="ignore"))
        return "".join(chars)

    def __enter__(self) -> KeyReader:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
