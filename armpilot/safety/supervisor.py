"""Watchdog, e-stop and enable state of the safety node (pure, clock passed in).

Decides *when* the arm must hold; the node sends the hold command. Times in
seconds: ``now`` on the node's clock (sim time in simulation), ``wall`` on a
steady clock. Input freshness is judged in wall time, so a frozen ``/clock``
never hides silent joint states.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from armpilot.control.trajectory import STAMP_TOLERANCE
from armpilot.rejections import Reason


@dataclass
class SupervisorState:
    """What the supervisor knows: last inputs, the executing chunk's end, latches."""

    enabled: bool = True
    estopped: bool = False
    estop_cause: str = ""
    last_joint_state: float | None = None
    last_joint_state_clock: float | None = None
    #: joint the controller does not command -> (wall, node clock) of its latest reading in time
    passive_heard: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    last_proposal: float | None = None
    executing_until: float = float("-inf")
    holding: bool = False
    proposer_fault: str = ""
    catching_up_until: float = float("-inf")
    stall_s: float = 0.0
    last_tick: float | None = None
    clock_fault: str = ""
    clock_fault_wall: float = float("-inf")
    state_jumps: tuple[float, ...] = ()
    state_jump: str = ""
    jump_unconfirmed: bool = False  # the latest arm state jumped and none consistent with it followed yet
    episode_start: float = float("-inf")  # a simulator's latest reset (/sim/episode), node clock s


class Supervisor:
    """Gate for proposals and watchdog for stale inputs.

    - e-stop latches until ``reset``; while latched or disabled every proposal is refused.
    - While a chunk executes, no accepted proposal for ``proposal_timeout`` -> hold once.
    - Joint states older than ``joint_state_timeout`` -> hold once (and refuse proposals). Silence counts
      on the wall clock and on the node's clock (the same one, except on sim time): a simulator that
      pauses between steps (rendering) pauses its clock and its arm with it, so that is not silence;
      silence on the wall clock alone counts after ``PAUSED_CLOCK_TIMEOUT_S`` (a dead simulator).
    - A joint the controller does not command (a separate gripper, a torso) unread for ``passive_state_timeout``,
      counted the same way -> hold once (and refuse proposals): the checks would judge against where its
      driver last saw it. Until each has been read in time, proposals are refused.
    - More than one node publishing proposals on a topic, or any node but the safety node on the
      controller topic -> hold once, refuse until one is left.
    - The node's clock jumps back -> hold once; jumps either way are reported for ``CLOCK_FAULT_S``.
    - The arm's joint states jump (``state_jump``) twice within ``STATE_JUMP_WINDOW_S``: two sources on
      ``/joint_states`` (one jump alone is a reset or a re-homing) -> hold once, refuse until none for that long.
    - The node itself stalls (its watchdog ticks more than ``SELF_STALL_S`` apart) -> refuse proposals from
      the moment the gap exceeds it until ``SETTLE_AFTER_STALL_S`` after the next tick: a check finishing
      right after the stall would judge against a clock and a state from before it.
    """

    #: Seconds (wall) a clock jump stays in the diagnostics.
    CLOCK_FAULT_S = 10.0
    #: Wall seconds of joint-state silence that count even while the node's clock stands still.
    PAUSED_CLOCK_TIMEOUT_S = 2.0
    #: Wall seconds between watchdog ticks beyond which the node itself stalled (stopped, swapped, starved).
    SELF_STALL_S = 0.2
    #: Wall seconds proposals stay refused after a stall while the inputs queued meanwhile are read.
    SETTLE_AFTER_STALL_S = 0.3
    #: Seconds (node clock) within which a second joint-state jump means two sources (refused as long after it).
    #: Two sources alternate: the jump back comes with the arm's driver's next message (10 ms at 100 Hz, 0.1 s at
    #: 10 Hz); two resets come an episode apart, which in the sim can be under a second (a reach done in 0.4 s).
    STATE_JUMP_WINDOW_S = 0.25

    def __init__(self, proposal_timeout: float, joint_state_timeout: float, passive_joints: Sequence[str] = (),
                 passive_state_timeout: float = float("inf")) -> None:
        """``passive_joints``: the joints the controller does not command that the checks read (none: nothing to
        watch), each silent for at most ``passive_state_timeout`` s."""
        self.proposal_timeout = proposal_timeout
        self.joint_state_timeout = joint_state_timeout
        self.passive_joints = tuple(passive_joints)
        self.passive_state_timeout = passive_state_timeout
        self.state = SupervisorState()

    def stamp_problem(self, now: float | None, stamp: float) -> str:
        """Why a joint state stamped ``stamp`` (s, 0 = unstamped) is not the arm at ``now`` (the node's clock): one
        stamped more than ``joint_state_timeout`` before it (a replayed or delayed message) or after it (a node on
        another clock); "" when it is. Such a state is no sign that the arm is alive."""
        if stamp <= 0.0 or now is None or now <= 0.0 or abs(now - stamp) <= self.joint_state_timeout:
            return ""  # unstamped, or no clock yet (sim time before the first /clock)
        side = "before" if stamp < now else "after"
        return (f"/joint_states stamped {abs(now - stamp):.3f} s {side} the node's clock (joint_state_timeout "
                f"{self.joint_state_timeout} s): not the arm now, ignored")

    def joint_state(self, wall: float, now: float | None = None, stamp: float = 0.0) -> str:
        """A joint state arrived at ``wall`` (monotonic s) and ``now`` (the node's clock; None: the wall), header
        ``stamp`` (s, 0 = unstamped): the arm is alive, unless ``stamp_problem`` says why not (returned)."""
        if problem := self.stamp_problem(now, stamp):
            return problem
        self.state.last_joint_state = wall
        self.state.last_joint_state_clock = now
        return ""

    def passive_state(self, names: Sequence[str], wall: float, now: float | None = None, stamp: float = 0.0) -> str:
        """Joints the controller does not command (``names``) were read at ``wall``/``now`` from a message stamped
        ``stamp`` (as ``joint_state``); returns ``stamp_problem`` (those readings then do not count as fresh)."""
        if problem := self.stamp_problem(now, stamp):
            return problem
        for name in names:
            self.state.passive_heard[name] = (wall, now)
        return ""

    def joint_state_silence(self, wall: float, now: float | None = None) -> float | None:
        """Seconds the joint states have been silent (None: never heard), as the class docstring counts it."""
        if self.state.last_joint_state is None:
            return None
        return self._silence(self.state.last_joint_state, self.state.last_joint_state_clock, wall, now,
                             self.joint_state_timeout)

    def passive_silence(self, wall: float, now: float | None = None) -> tuple[str, float | None] | None:
        """(joint, seconds) of the passive joint unread the longest (None seconds: never read in time), or None
        when there are no passive joints."""
        silences = {}
        for name in self.passive_joints:
            heard = self.state.passive_heard.get(name)
            if heard is None:
                return name, None
            silences[name] = self._silence(*heard, wall, now, self.passive_state_timeout)
        return max(silences.items(), key=lambda item: item[1]) if silences else None

    def _silence(self, heard_wall: float, heard_clock: float | None, wall: float, now: float | None,
                 timeout: float) -> float:
        """Seconds since a reading at ``heard_wall``/``heard_clock``: on the node's clock while it runs, on the
        wall clock once that exceeds ``PAUSED_CLOCK_TIMEOUT_S`` and ``timeout``."""
        on_wall = wall - heard_wall
        if now is None or heard_clock is None or on_wall > max(self.PAUSED_CLOCK_TIMEOUT_S, timeout):
            return on_wall
        return min(on_wall, now - heard_clock)

    def passive_problem(self, wall: float, now: float | None = None) -> str:
        """Why the passive joints' readings are too old to check against ("" when they are not)."""
        quiet = self.passive_silence(wall, now)
        if quiet is None:
            return ""
        name, silent = quiet
        if silent is None:
            return (f"joint {name} (not commanded by the controller, read for the checks) has no reading stamped "
                    f"in time yet")
        return self._passive_expired(name, silent)

    def _passive_expired(self, name: str, silent: float) -> str:
        """Why passive joint ``name``, unread for ``silent`` s, is too old ("" within ``passive_state_timeout``)."""
        if silent <= self.passive_state_timeout:
            return ""
        return (f"joint {name} (not commanded by the controller, read for the checks) unread for {silent:.2f} s "
                f"(passive_state_timeout {self.passive_state_timeout} s): is its driver running?")

    def tick(self, wall: float) -> float:
        """The watchdog runs at ``wall``; returns the seconds the node stalled before it (0.0: it did not).

        After a stall proposals are refused for ``SETTLE_AFTER_STALL_S`` while queued inputs (joint states,
        the clock) are read, so nothing is judged against a stale state or clock."""
        gap = 0.0 if self.state.last_tick is None else wall - self.state.last_tick
        self.state.last_tick = wall
        if gap <= self.SELF_STALL_S:
            return 0.0
        self.state.catching_up_until, self.state.stall_s = wall + self.SETTLE_AFTER_STALL_S, gap
        return gap

    def state_jumped(self, detail: str, now: float) -> bool:
        """The arm's joint states jumped (``detail``) at ``now`` (the node's clock: on sim time, resets of short
        episodes run fast are still an episode apart); True when that is the second within ``STATE_JUMP_WINDOW_S``
        and the fault is new (hold once)."""
        before = self.state_jump_fault(now)
        self.state.state_jumps = (*self.state.state_jumps[-1:], now)
        self.state.state_jump = detail
        self.state.jump_unconfirmed = True
        return bool(self.state_jump_fault(now)) and not before

    def state_consistent(self) -> None:
        """An arm state arrived that the one before it could lead to: a jump before it was a reset, not a second
        source (until then proposals are refused: a stray publisher's one state must never be what a chunk is
        checked against, in the driver period before the arm's next state jumps back)."""
        self.state.jump_unconfirmed = False

    def state_jump_fault(self, now: float) -> str:
        """Why the joint states look like two sources at ``now`` (node clock; "" when they do not)."""
        jumps = self.state.state_jumps
        if len(jumps) < 2 or not 0.0 <= now - jumps[-1] <= self.STATE_JUMP_WINDOW_S or \
                not 0.0 <= jumps[-1] - jumps[-2] <= self.STATE_JUMP_WINDOW_S:
            return ""
        return (f"the arm's joint states jumped twice within {self.STATE_JUMP_WINDOW_S} s (two nodes publishing "
                f"/joint_states?): {self.state.state_jump}")

    def sim_reset(self, start: float, now: float) -> bool:
        """A simulator reset its world at ``start`` (node clock s, from ``/sim/episode``): its arm jumped to the new
        episode's pose and its controller holds there. True when the reset is new: the node then drops its
        commanded path (a reset within the path's tolerance, the SO-101's gripper 0 -> 1 rad at 10 rad/s x 0.1 s,
        kept it: every chunk was judged from the last episode's pose, and a hold pulled the arm back there).

        Raises:
            ValueError: ``start`` later than ``now`` + ``joint_state_timeout`` (not a reset on this node's clock).
        """
        if start > now + self.joint_state_timeout:
            raise ValueError(f"episode start {start:.3f} s is after the node's clock {now:.3f} s: not a reset of "
                             f"this graph's simulator, ignored")
        if start <= self.state.episode_start:
            return False
        self.state.episode_start = start
        return True

    def before_reset(self, stamp: float) -> str:
        """Why a chunk stamped ``stamp`` (s) is not sent: it was meant for the world before the simulator's latest
        reset (the simulator refuses it too); "" otherwise."""
        if stamp > self.state.episode_start + STAMP_TOLERANCE:
            return ""
        return f"stamped {stamp:.3f} s, not after the simulator's reset at {self.state.episode_start:.3f} s"

    def proposers(self, fault: str) -> bool:
        """Set the second-proposer fault ("" = none); True when it newly appeared."""
        appeared = bool(fault) and not self.state.proposer_fault
        self.state.proposer_fault = fault
        return appeared

    def clock_jumped(self, delta: float, wall: float) -> bool:
        """The node's clock jumped by ``delta`` s; True when the arm must hold (a jump back)."""
        direction = "back" if delta < 0 else "forward"
        self.state.clock_fault = f"the clock jumped {direction} by {abs(delta):.3f} s"
        self.state.clock_fault_wall = wall
        return delta < 0

    def clock_problem(self, wall: float) -> str:
        """The last clock jump while it is recent, else ""."""
        recent = wall - self.state.clock_fault_wall <= self.CLOCK_FAULT_S
        return self.state.clock_fault if recent else ""

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

    def refusal(self, wall: float, now: float | None = None) -> tuple[str, str] | None:
        """Why a proposal must be refused now (reason, detail), or None."""
        if self.state.estopped:
            return Reason.ESTOP, f"e-stop latched ({self.state.estop_cause}); call the reset service"
        if not self.state.enabled:
            return Reason.DISABLED, "the safety node is disabled; enable it to pass commands"
        if self.state.proposer_fault:
            return Reason.SECOND_PROPOSER, self.state.proposer_fault
        jumping = self.state_jump_fault(wall if now is None else now)
        if jumping:
            return Reason.JOINT_STATE_JUMP, jumping
        if self.state.jump_unconfirmed:
            return Reason.JOINT_STATE_JUMP, (f"waiting for a /joint_states consistent with the last, which jumped: "
                                             f"{self.state.state_jump}")
        catching_up = self.catching_up(wall)
        if catching_up:
            return Reason.CATCHING_UP, catching_up
        silent = self.joint_state_silence(wall, now)
        if silent is None or silent > self.joint_state_timeout:
            return Reason.NO_JOINT_STATE, f"no /joint_states within {self.joint_state_timeout} s"
        if passive := self.passive_problem(wall, now):
            return Reason.NO_JOINT_STATE, passive
        return None

    def catching_up(self, wall: float) -> str:
        """Why the node's clock and state may be stale at ``wall`` (its watchdog is late, or it is reading
        what queued up during a stall), else "". Proposals are refused then, and a hold starts from the
        measured arm instead of the commanded path at the node's (possibly stale) time."""
        last_tick = self.state.last_tick
        if last_tick is not None and wall - last_tick > self.SELF_STALL_S:
            return (f"the safety node's watchdog has not run for {wall - last_tick:.2f} s (the node stalled): "
                    "its clock and joint state may be stale")
        if wall < self.state.catching_up_until:
            return (f"the safety node did not run for {self.state.stall_s:.2f} s; reading the inputs that queued "
                    "up meanwhile")
        return ""

    def watchdog(self, now: float, wall: float) -> tuple[str, str] | None:
        """A reason to hold now (once per event), or None (also while catching up after the node's own stall)."""
        if self.state.holding or wall < self.state.catching_up_until:
            return None
        silent = self.joint_state_silence(wall, now)
        if silent is not None and silent > self.joint_state_timeout:
            return Reason.JOINT_STATE_TIMEOUT, f"/joint_states silent for {silent:.2f} s"
        quiet = self.passive_silence(wall, now)  # never read: refused, but nothing to hold from yet
        if quiet is not None and quiet[1] is not None and (expired := self._passive_expired(*quiet)):
            return Reason.JOINT_STATE_TIMEOUT, expired
        executing = now < self.state.executing_until
        last = self.state.last_proposal
        if executing and last is not None and now - last > self.proposal_timeout:
            return Reason.PROPOSAL_TIMEOUT, f"no fresh proposal for {now - self.state.last_proposal:.2f} s while moving"
        return None


def proposer_fault(publishers: Mapping[str, Sequence[str]], controller_topic: str = "") -> str:
    """Describe every proposal topic, and the controller topic, published by more than one node ("" when none is).

    Args:
        publishers: topic -> the node of each publisher on it (one node may publish twice); the controller
            topic's list includes the safety node itself.
        controller_topic: which of the topics is the controller's: a second node there bypasses the checks.
    """
    faults = []
    for topic, nodes in sorted(publishers.items()):
        distinct = sorted(set(nodes))
        if len(distinct) > 1:
            bypass = " (its commands bypass the safety node)" if topic == controller_topic else ""
            faults.append(f"{len(distinct)} nodes publish on {topic}{bypass}: {distinct}")
    return "; ".join(faults)
