"""What the safety node knows of the arm: measured joints by name, and the hold it sends (pure).

``/joint_states`` is matched to the robot profile by name: every joint the
controller commands and every joint it does not (a separate gripper, joints
left out of ``joint_names``) must be there with a finite position, or the
message is refused with the joints named and nothing moves.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from armpilot.robot import JointLimits, wrapped_difference
from armpilot.robot_profile import RobotDescriptionError, RobotProfile
from armpilot.safety.stopping import StopTrajectory, stop_trajectory

#: A reported velocity is at most this fraction faster than the positions' own plus ``VELOCITY_NOISE`` (rad/s, m/s)
#: and what the acceleration limit changes between the two states (``measured_velocity``).
VELOCITY_AGREEMENT, VELOCITY_NOISE = 0.25, 0.05
#: s: two states closer than this tell nothing of the velocity (stamp jitter dominates).
MIN_VELOCITY_CHECK_GAP = 0.002
#: Largest /joint_states accepted (joints); real arms have tens.
MAX_JOINT_STATE_NAMES = 1024


def controller_joints(profile: RobotProfile, override: Sequence[str] = ()) -> tuple[str, ...]:
    """The arm controller's joint order: ``override`` when given (any order or subset of the joints it commands),
    else ``profile.arm_controller_joints`` (a gripper on a controller of its own is not one of them).

    Raises:
        RobotDescriptionError: naming joints the arm controller does not command.
    """
    if not override:
        return profile.arm_controller_joints
    unknown = [n for n in override if n not in profile.arm_controller_joints]
    if unknown:
        raise RobotDescriptionError(f"joint_names {unknown} are not joints of robot '{profile.name}''s arm controller "
                                    f"{list(profile.arm_controller_joints)} (set 'robot' to your arm's profile)")
    return tuple(override)


def proposal_joints(profile: RobotProfile, override: Sequence[str] = ()) -> tuple[str, ...]:
    """What a policy proposes, in order: ``controller_joints``, then a gripper armpilot commands on a controller of
    its own (the safety node sends its column there)."""
    gripper = (profile.gripper.joint,) if profile.gripper.commanded_separately else ()
    return controller_joints(profile, override) + gripper


class ArmState:
    """Latest measured positions (and velocities) in controller order, plus uncommanded joints by name.

    A ``/joint_states`` carries every controller joint (the arm's driver), or none of them and some of the
    passive ones (a separate gripper's driver publishing its own): that updates those joints only, and
    ``arm_updated`` is False after it. The arm's message may leave out a passive joint once one has been read.
    A ``continuous`` joint's angle is counted in turns from the first one read: a reading in (-pi, pi] (a driver
    that wraps) is shifted by whole turns to the one nearest the reading before, so it stays in the turn the
    commands (shifted to the measured turn) were sent in; a reading outside it comes from a driver that counts
    turns and is taken as it is.
    """

    def __init__(self, joints: tuple[str, ...], passive_joints: Sequence[str] = (),
                 continuous: np.ndarray | None = None) -> None:
        self.joints = joints
        self.continuous = np.zeros(len(joints), bool) if continuous is None else np.asarray(continuous, bool)
        self.passive_joints = tuple(dict.fromkeys(n for n in passive_joints if n not in joints))
        self.required = joints + self.passive_joints
        self.positions: np.ndarray | None = None
        self.velocities: np.ndarray | None = None
        self.passive: dict[str, float] = {}
        self.passive_read: tuple[str, ...] = ()  # the passive joints the latest accepted message carried
        self.arm_updated = False
        self.stamp: float | None = None  # of the latest arm state, s
        self.previous: tuple[np.ndarray, float] | None = None  # the arm state before it, and its stamp

    def update(self, names: Sequence[str], positions: np.ndarray, velocities: np.ndarray | None,
               stamp: float | None = None) -> str | None:
        """Take one /joint_states (header ``stamp``, s); returns why it was refused (state unchanged) or None."""
        self.arm_updated, self.passive_read = False, ()
        if len(names) > MAX_JOINT_STATE_NAMES:
            return f"/joint_states has {len(names)} joints (max {MAX_JOINT_STATE_NAMES})"
        if len(positions) != len(names):
            return f"/joint_states has {len(positions)} positions for {len(names)} joint names"
        index = {n: k for k, n in enumerate(names)}
        if len(index) != len(names):
            repeated = sorted(n for n, count in Counter(names).items() if count > 1)
            return f"/joint_states names joints {repeated[:20]} more than once"
        arm_message = any(n in index for n in self.joints)
        if arm_message:
            missing = [n for n in self.joints if n not in index]
            missing += [n for n in self.passive_joints if n not in index and n not in self.passive]
        else:
            missing = [] if any(n in index for n in self.passive_joints) else list(self.required)
        if missing:
            return (f"/joint_states lacks joints {missing} of the robot profile (it has {list(names)[:20]}); "
                    f"is 'robot' set to this arm?")
        read = [n for n in self.required if n in index]
        values = np.asarray(positions, float)[[index[n] for n in read]]
        if not np.all(np.isfinite(values)):
            bad = [n for n, v in zip(read, values) if not np.isfinite(v)]
            return f"/joint_states position of {bad} is not finite"
        count = len(self.joints) if arm_message else 0
        self.passive.update(zip(read[count:], values[count:].tolist()))
        self.passive_read = tuple(read[count:])
        if not arm_message:
            return None
        arm = values[:count].copy()
        if self.positions is not None and np.any(self.continuous):
            # a reading in (-pi, pi] (a driver that wraps) in the turn of the reading before; one outside it comes
            # from a driver that counts turns and is taken as it is (after a gap the nearest turn may be wrong)
            wraps = self.continuous & (arm > -np.pi) & (arm <= np.pi)
            arm = np.where(wraps, self.positions + wrapped_difference(arm, self.positions, self.continuous), arm)
        if self.positions is not None and self.stamp is not None:
            self.previous = (self.positions, self.stamp)
        self.positions, self.stamp = arm, stamp
        speeds = None
        if velocities is not None and len(velocities) == len(names):
            speeds = np.asarray(velocities, float)[[index[n] for n in self.joints]]
        self.velocities = speeds if speeds is not None and np.all(np.isfinite(speeds)) else None
        self.arm_updated = True
        return None

    def jump(self, limits: JointLimits, allowance: float, max_gap: float = np.inf) -> str:
        """``state_jump`` between the latest two arm states ("" before there are two)."""
        if self.previous is None or self.stamp is None or not self.arm_updated:
            return ""
        return state_jump(*self.previous, self.positions, self.stamp, limits, allowance, max_gap)

    def untrusted(self) -> "ArmState":
        """This state without its measured arm (two sources: which one is the arm is unknown)."""
        return ArmState(self.joints, self.passive_joints, self.continuous)


#: rad / m: the furthest the measured arm may be from where the controller is commanded (and a hold still start
#: there, or two states still count as one arm's), whatever the velocity limit: velocity x allowance alone let a
#: hold start 3.7 rad from the arm on a URDF with 37 rad/s (Unitree G1, found in session 30)
MAX_TRACKING_OFFSET = 0.35


def tracking_offset(velocity: np.ndarray, seconds: float) -> np.ndarray:
    """(J,) rad or m: how far a joint at ``velocity`` (J,) gets in ``seconds``, at most ``MAX_TRACKING_OFFSET``."""
    return np.minimum(np.asarray(velocity, float) * seconds, MAX_TRACKING_OFFSET)


def hold_command(state: ArmState, limits: JointLimits, executing: tuple[float, np.ndarray, np.ndarray] | None,
                 now: float, tolerance: float = 0.1) -> StopTrajectory | None:
    """A decelerating stop from the state the controller follows now, or None without any state.

    Args:
        executing: (stamp, times (P,), positions (P, J)) of the chunk sent last, or None.
        now: the node's clock, s.
        tolerance: s at the velocity limit the measured arm may differ from the chunk's desired state.

    Within the executing chunk the controller's desired state is the chunk's
    (linear between points); after its end the arm rests at its last point;
    with no chunk, or when the measured arm is further from that state than
    ``tolerance`` allows (it was moved, reset or stopped by something else), it
    is the measured state: a hold never starts away from the arm.
    """
    vmax = limits.velocity
    if executing is not None:
        stamp, times, positions = executing
        absolute = stamp + np.asarray(times)
        if now >= absolute[-1]:
            position, velocity = positions[-1].copy(), np.zeros(len(vmax))
        elif now >= absolute[0] and len(absolute) > 1:
            k = int(np.searchsorted(absolute, now, side="right")) - 1
            s = (now - absolute[k]) / (absolute[k + 1] - absolute[k])
            position = positions[k] + s * (positions[k + 1] - positions[k])
            velocity = (positions[k + 1] - positions[k]) / (absolute[k + 1] - absolute[k])
        else:
            position = positions[0].copy() if state.positions is None else state.positions.copy()
            velocity = (positions[0] - position) / max(absolute[0] - now, 1e-3)
    elif state.positions is not None:
        position, velocity = state.positions.copy(), measured_velocity(state, limits)
    else:
        return None
    if state.positions is not None and np.any(np.abs(limits.difference(position, state.positions))
                                              > tracking_offset(vmax, tolerance)):
        position, velocity = state.positions.copy(), measured_velocity(state, limits)
    velocity = np.clip(velocity, -vmax, vmax)
    return stop_trajectory(position, velocity, limits.acceleration, limits.jerk, limits.lower, limits.upper, vmax)


def measured_velocity(state: ArmState, limits: JointLimits) -> np.ndarray:
    """(J,) the velocity a hold from the measured arm brakes from: the driver's (0 where it reports none), but no
    faster than the last two states' positions moved (within what the acceleration limit changes over their
    gap, plus ``VELOCITY_AGREEMENT`` of that speed and ``VELOCITY_NOISE``): a driver reporting deg/s as rad/s
    made such a hold move a resting UR5 0.78 rad. Where the positions move slower, it is theirs (0 where they
    move the other way); never faster than reported (a reset's jump is no speed). Not clipped."""
    reported = np.zeros(len(limits.velocity)) if state.velocities is None else state.velocities.copy()
    if state.previous is None or state.stamp is None or state.positions is None:
        return reported
    before, stamp = state.previous
    gap = state.stamp - stamp
    if gap < MIN_VELOCITY_CHECK_GAP:  # too close to tell (equal stamps, a relay's burst)
        return reported
    moved = limits.difference(state.positions, before) / gap
    allowed = np.abs(moved) * (1.0 + VELOCITY_AGREEMENT) + limits.acceleration * gap + VELOCITY_NOISE
    too_fast = np.abs(reported) > allowed
    return np.where(too_fast, np.where(np.sign(moved) == np.sign(reported), moved, 0.0), reported)


def hold_on_path(path: "CommandedPath", state: ArmState, limits: JointLimits, now: float, tolerance: float,
                 from_arm: bool = False, trust_measured: bool = True) -> StopTrajectory | None:
    """The stop to send at ``now`` (``hold_command`` from where ``path`` has the controller, or from the measured
    arm with ``from_arm``), recorded as the path from its own start on: a second hold before the stop's first
    point then starts where this one did, at this one's speed. None (the path untouched) without any state.
    Without ``trust_measured`` (the joint states jump between two sources) it starts on the path alone, never
    toward a measured state; with no path, None."""
    if not trust_measured:
        state, from_arm = state.untrusted(), False
    stop = None if from_arm else path.remaining_stop(now)  # already braking to rest: the rest of that stop
    if stop is not None and state.positions is not None and np.any(
            np.abs(limits.difference(stop.start, state.positions)) > tracking_offset(limits.velocity, tolerance)):
        stop = None  # the arm is not where that stop has it (moved by something else)
    if stop is None:
        stop = hold_command(state, limits, None if from_arm else path.as_chunk(), now, tolerance)
    if stop is not None:
        path.clear()
        path.command(now, now, stop.times, stop.positions, None, origin=stop.start, stopping_from=now)
    return stop


class CommandedPath:
    """What the controller was told to follow, on absolute time: the reference a new command starts from.

    A trajectory controller that interpolates from its desired state (JTC's
    ``interpolate_from_desired_state``, armpilot's sim) moves, on receipt of a
    command at ``now``, from where it was heading at ``now`` to the first
    point. The path is that segment followed by the command's points; before
    any command it is empty and there is no reference (the measured state stands in).
    """

    def __init__(self, tolerance: np.ndarray, continuous: np.ndarray | None = None) -> None:
        """``tolerance`` (J,): a measured arm further than this from the path was moved by something else;
        ``continuous`` (J,): joints compared the shortest way round (a reading wrapped to (-pi, pi] is still on
        the path, which keeps the turn it was sent in)."""
        self.tolerance = np.asarray(tolerance, float)
        self.continuous = np.zeros(len(self.tolerance), bool) if continuous is None else np.asarray(continuous, bool)
        self.times: np.ndarray | None = None  # (P + 1,) absolute s
        self.stopping_from: float | None = None  # absolute s from which the path is a stop ending at rest
        self.positions: np.ndarray | None = None  # (P + 1, J)

    def reference(self, now: float, measured: np.ndarray | None) -> np.ndarray | None:
        """(J,) where the controller is heading at ``now`` (held after the last point), or None when no
        command is known (nothing sent yet, or dropped): the measured state is then all there is.

        When the measured arm is further than ``tolerance`` from it (a sim reset, the controller's own
        hold, a collision), the path is dropped.
        """
        if self.times is None:
            return None
        heading = np.array([np.interp(now, self.times, self.positions[:, k]) for k in range(self.positions.shape[1])])
        if measured is not None and np.any(np.abs(wrapped_difference(heading, measured, self.continuous))
                                           > self.tolerance):
            self.clear()
            return None
        return heading

    def velocity(self, now: float) -> np.ndarray | None:
        """(J,) the controller's velocity at ``now`` along the path (the slope of the segment holding ``now``;
        zero before it and after its last point), or None when no command is known (at rest). Ask after
        ``reference``, which drops the path when the arm left it: the two then agree."""
        return None if self.times is None else segment_slope(self.times, self.positions, now)

    def command(self, now: float, start: float, times: np.ndarray, positions: np.ndarray,
                measured: np.ndarray | None, origin: np.ndarray | None = None,
                stopping_from: float | None = None) -> None:
        """A command sent at ``now``: points at ``start + times`` (P,), ``positions`` (P, J). ``origin`` (J,):
        where the controller is at ``now`` when the sender knows it (a stop's own start); else the reference,
        else ``measured``."""
        if origin is None:
            origin = self.reference(now, measured)
            origin = measured if origin is None else origin
        absolute = start + np.asarray(times, float)
        self.stopping_from = stopping_from
        if origin is None or absolute[0] <= now:
            self.times, self.positions = absolute, np.asarray(positions, float)
        else:
            self.times = np.concatenate([[now], absolute])
            self.positions = np.vstack([origin, positions])

    def as_chunk(self) -> tuple[float, np.ndarray, np.ndarray] | None:
        """(0, absolute times, positions) for ``hold_command`` and ``sample_chunk``, or None."""
        return None if self.times is None else (0.0, self.times, self.positions)

    def clear(self) -> None:
        """The arm was reset or moved by something else: start from the measured state again."""
        self.times = self.positions = self.stopping_from = None

    def remaining_stop(self, now: float) -> StopTrajectory | None:
        """The rest of the stop the controller is in at ``now`` (a hold's, or the tail after a chunk), as a hold
        command (times from ``now``; velocities: the mean slope of the segments around each point, 0 at the
        last), or None outside one. A new hold there would brake from the current speed on a fresh profile and
        travel further than the stop that was checked."""
        if self.stopping_from is None or self.times is None or not self.stopping_from <= now < self.times[-1]:
            return None
        start = np.array([np.interp(now, self.times, self.positions[:, k]) for k in range(self.positions.shape[1])])
        ahead = self.times > now
        times = np.concatenate([[now], self.times[ahead]])
        positions = np.vstack([start, self.positions[ahead]])
        slopes = np.diff(positions, axis=0) / np.maximum(np.diff(times), 1e-9)[:, None]
        velocities = np.vstack([(slopes[:-1] + slopes[1:]) / 2.0, np.zeros((1, positions.shape[1]))])
        return StopTrajectory(times[1:] - now, positions[1:], velocities, start)


def segment_slope(times: np.ndarray, positions: np.ndarray, now: float) -> np.ndarray:
    """(J,) the slope of the segment of points (P, J) at ``times`` (P,) holding ``now`` (a trajectory controller
    interpolates linearly between points); zero before the first point and after the last."""
    k = int(np.searchsorted(times, now, side="right")) - 1
    if k < 0 or k >= len(times) - 1:
        return np.zeros(positions.shape[1])
    return (positions[k + 1] - positions[k]) / (times[k + 1] - times[k])


def state_jump(previous: np.ndarray, previous_stamp: float, current: np.ndarray, stamp: float,
               limits: JointLimits, allowance: float, max_gap: float = np.inf) -> str:
    """Why two consecutive arm states cannot both come from one arm ("" when they can).

    ``previous``/``current`` (J,) in controller order, stamped (s, the messages' header stamps). One arm moves
    no further than the velocity limit allows in the time between two of its states (either way round: a relay
    may deliver one late) plus ``allowance`` s (jitter, a missed message). A joint further away is a jump: a
    second node publishing on ``/joint_states`` with another pose, a replayed message, or a reset. Stamps more
    than ``max_gap`` s apart count as ``max_gap`` (the safety node's ``joint_state_timeout``): a state replayed
    from 100 s ago, or from a node on another clock, was otherwise within reach of any pose.
    """
    moved = np.abs(limits.difference(current, previous))
    reach = limits.velocity * min(abs(stamp - previous_stamp), max_gap) + tracking_offset(limits.velocity, allowance)
    if np.any(moved > reach):
        j = int(np.argmax(moved - reach))
        return (f"{limits.names[j]} jumped {moved[j]:.3f} between consecutive /joint_states "
                f"{stamp - previous_stamp:.3f} s apart (reachable {reach[j]:.3f})")
    return ""
