"""Watchdog, e-stop and enable state of the safety node (pure, clock passed in).

Decides *when* the arm must hold; the node sends the hold command. Times in
seconds on the node's clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SupervisorState:
    """What the supervisor knows: last inputs, the executing chunk's end, latches."""

    enabled: bool = True
    estopped: bool = False
    estop_cause: str = ""
    last_joint_state: float | None = None
    last_proposal: float | None = None
    executing_until: float = float("-inf")
    holding: bool = False


class Supervisor:
    """Gate for proposals and watchdog for stale inputs.

    - e-stop latches until ``reset``; while latched or disabled every proposal is refused.
    - While a chunk executes, no accepted proposal for ``proposal_timeout`` -> hold once.
    - Joint states older than ``joint_state_timeout`` -> hold once (and refuse proposals).
    """

    def __init__(self, proposal_timeout: float, joint_state_timeout: float) -> None:
        self.proposal_timeout = proposal_timeout
        self.joint_state_timeout = joint_state_timeout
        self.state = SupervisorState()

    def joint_state(self, now: float) -> None:
        self.state.last_joint_state = now

    def accepted(self, now: float, ends_at: float) -> None:
        """A chunk was sent to the controller; it runs until ``ends_at``."""
        self.state.last_proposal = now
        self.state.executing_until = ends_at
        self.state.holding = False

    def held(self) -> None:
        """A hold command was sent: nothing executes any more."""
        self.state.executing_until = float("-inf")
        self.state.holding = True

    def estop(self, cause: str) -> bool:
        """Latch the e-stop; True if it was not latched before."""
        first = not self.state.estopped
        self.state.estopped, self.state.estop_cause = True, cause
        return first

    def reset(self) -> None:
        """Clear the e-stop latch."""
        self.state.estopped, self.state.estop_cause = False, ""

    def set_enabled(self, enabled: bool) -> None:
        self.state.enabled = enabled

    def refusal(self, now: float) -> tuple[str, str] | None:
        """Why a proposal must be refused now (reason, detail), or None."""
        if self.state.estopped:
            return "estop", f"e-stop latched ({self.state.estop_cause}); call the reset service"
        if not self.state.enabled:
            return "disabled", "the safety node is disabled; enable it to pass commands"
        if self.state.last_joint_state is None or now - self.state.last_joint_state > self.joint_state_timeout:
            return "no_joint_state", f"no /joint_states within {self.joint_state_timeout} s"
        return None

    def watchdog(self, now: float) -> tuple[str, str] | None:
        """A reason to hold now (once per event), or None."""
        if self.state.holding:
            return None
        if self.state.last_joint_state is not None and now - self.state.last_joint_state > self.joint_state_timeout:
            return "joint_state_timeout", f"/joint_states silent for {now - self.state.last_joint_state:.2f} s"
        executing = now < self.state.executing_until
        if executing and self.state.last_proposal is not None and now - self.state.last_proposal > self.proposal_timeout:
            return "proposal_timeout", f"no fresh proposal for {now - self.state.last_proposal:.2f} s while moving"
        return None
