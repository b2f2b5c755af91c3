"""The last check before a verified chunk reaches the controller (pure).

Verification takes time: meanwhile the controller moved on along what it was
sent before, and the time to the chunk's first point shrank. So the move onto
point 0, the stops from it and the stop sent after the chunk are no longer the
ones checked. ``as_sent`` checks the chunk again, workspace included, from
where the controller is heading at the moment it is sent, and sends the
command that check built: the chunk's points, then a stop to rest
(``with_braking_tail``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from armpilot.robot import JointLimits
from armpilot.safety.limits import SafetyConfig, Verdict, check_chunk
from armpilot.safety.state_tracking import CommandedPath
from armpilot.safety.workspace import WorkspaceChecker


@dataclass(frozen=True)
class Outgoing:
    """A chunk as it goes to the controller: ``times`` (P + T,) s after ``stamp``, ``positions`` (P + T, J) in
    the controller's order, the chunk's P points then the T points of its stop; ``chunk_end`` (s, the node's
    clock) where the chunk's own points end and the stop begins."""

    stamp: float
    times: np.ndarray
    positions: np.ndarray
    chunk_end: float


def as_sent(config: SafetyConfig, limits: JointLimits, joint_names: Sequence[str], verdict: Verdict, now: float,
            measured: np.ndarray | None, passive: Mapping[str, float] | None, path: CommandedPath,
            workspace: WorkspaceChecker | None) -> tuple[Verdict, Outgoing | None]:
    """Check an accepted ``verdict`` again at ``now`` (s) against the arm ``measured`` (J,) and the controller's
    ``path``; the new verdict, and the command to send when it passes (None when it does not)."""
    sent = check_chunk(config, limits, joint_names, verdict.stamp, verdict.times, verdict.positions, now, measured,
                       None, workspace, passive, path.reference(now, measured), path.velocity(now))
    if not sent.accepted:
        return sent, None
    # exactly the command that check built and checked: the chunk, then its stop
    return sent, Outgoing(verdict.stamp, sent.sent_times, sent.sent_positions, verdict.stamp + float(sent.times[-1]))
