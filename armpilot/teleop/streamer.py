"""Teleop commands -> short timed joint chunks for the safety node (pure).

Every tick the ``ChunkStreamer`` integrates the twist with differential IK from
the last *commanded* positions (not the measured ones, so tracking lag does not
turn into drift) and returns ``horizon_points`` points ``point_spacing`` s
apart; the commanded state then advances by one point. It re-syncs to the
measured positions when idle or when the arm falls behind by more than
``resync_arm`` (rad) / ``resync_gripper`` (m). While idle (zero twist, gripper
at its goal) it returns None: nothing is sent and the safety node holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from armpilot.fields import describe as _describe
from armpilot.teleop.diff_ik import DiffIk
from armpilot.teleop.inputs import Gripper, TeleopCommand

DEVICES = ("keyboard", "joy", "spacemouse")


@dataclass(frozen=True)
class TeleopConfig:
    """The teleop node's settings (see config/teleop.yaml)."""

    device: str = field(default="keyboard", metadata=_describe("input device: keyboard | joy | spacemouse"))
    rate_hz: float = field(default=20.0, metadata=_describe("chunks sent per second while moving, Hz"))
    horizon_points: int = field(default=3, metadata=_describe("points per chunk"))
    point_spacing: float = field(default=0.05, metadata=_describe("time between chunk points, s"))
    linear_speed: float = field(default=0.1, metadata=_describe("tool speed at full deflection, m/s"))
    angular_speed: float = field(default=0.5, metadata=_describe("tool rotation speed at full deflection, rad/s"))
    speed_scale: float = field(default=1.0, metadata=_describe("initial multiplier of both speeds"))
    speed_step: float = field(default=1.25, metadata=_describe("factor per faster/slower press, > 1"))
    max_speed_scale: float = field(default=3.0, metadata=_describe("largest speed scale"))
    gripper_speed: float = field(default=0.05, metadata=_describe("gripper finger speed, m/s"))
    resync_arm: float = field(default=0.1, metadata=_describe("re-sync to measured when an arm joint lags more, rad"))
    resync_gripper: float = field(default=0.008, metadata=_describe("re-sync the gripper when it lags more, m"))
    input_timeout: float = field(default=0.5, metadata=_describe("joy/spacemouse input older than this is zero, s"))
    key_hold_s: float = field(default=0.3, metadata=_describe("a key press moves the tool this long, s"))

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"parameter 'device' must be one of {DEVICES}, got {self.device!r}")
        if self.horizon_points < 1:
            raise ValueError(f"parameter 'horizon_points' must be >= 1, got {self.horizon_points}")
        if self.speed_step <= 1.0:
            raise ValueError(f"parameter 'speed_step' must be > 1, got {self.speed_step}")
        for name in ("rate_hz", "point_spacing", "linear_speed", "angular_speed", "speed_scale", "max_speed_scale",
                     "gripper_speed", "resync_arm", "resync_gripper", "input_timeout", "key_hold_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"parameter '{name}' must be > 0, got {getattr(self, name)}")

    @property
    def times(self) -> np.ndarray:
        """(P,) time_from_start of the chunk points, s."""
        return self.point_spacing * np.arange(1, self.horizon_points + 1)


def move_toward(value: float, goal: float, max_step: float) -> float:
    """``value`` moved toward ``goal`` by at most ``max_step``."""
    return float(value + np.clip(goal - value, -max_step, max_step))


class ChunkStreamer:
    """Holds the commanded state and turns each tick's command into a chunk (P, J)."""

    def __init__(self, ik: DiffIk, config: TeleopConfig | None = None) -> None:
        self.ik = ik
        self.config = config or TeleopConfig()
        self.speed_scale = self.config.speed_scale
        self.commanded: np.ndarray | None = None
        self.target: np.ndarray | None = None
        self.gripper_goal: float | None = None

    def scaled_twist(self, unit_twist: np.ndarray) -> np.ndarray:
        """(6,) m/s and rad/s from a unitless twist and the current speed scale."""
        c = self.config
        speeds = np.array([c.linear_speed] * 3 + [c.angular_speed] * 3)
        return np.clip(np.asarray(unit_twist, float), -1.0, 1.0) * speeds * self.speed_scale

    def apply(self, command: TeleopCommand, measured: np.ndarray) -> None:
        """Take a command's gripper action and speed change (``measured``: (J,) positions)."""
        if command.speed_steps:
            scale = self.speed_scale * self.config.speed_step ** command.speed_steps
            self.speed_scale = float(np.clip(scale, 0.05, self.config.max_speed_scale))
        if command.gripper is Gripper.NONE:
            return
        if command.gripper is Gripper.TOGGLE:
            current = self.gripper_goal if self.gripper_goal is not None else float(measured[-1])
            gripper = self.ik.arm.profile.gripper
            opening = abs(current - gripper.closed) < abs(current - gripper.open)
        else:
            opening = command.gripper is Gripper.OPEN
        gripper = self.ik.arm.profile.gripper
        self.gripper_goal = gripper.open if opening else gripper.closed

    def _sync(self, measured: np.ndarray) -> None:
        if self.commanded is None:
            self.commanded = measured.copy()
        if np.max(np.abs(self.commanded[: self.ik.n] - measured[: self.ik.n])) > self.config.resync_arm:
            self.commanded[: self.ik.n] = measured[: self.ik.n]
            self.target = None
        if abs(self.commanded[-1] - measured[-1]) > self.config.resync_gripper:
            self.commanded[-1] = measured[-1]
        if self.gripper_goal is None:
            self.gripper_goal = float(measured[-1])

    def tick(self, unit_twist: np.ndarray, measured: np.ndarray) -> np.ndarray | None:
        """The next chunk's positions (P, J) for ``config.times``, or None while idle.

        Args:
            unit_twist: (6,) unitless in [-1, 1] (see ``inputs.TeleopCommand``).
            measured: (J,) latest measured positions, arm joints then gripper.
        """
        measured = np.asarray(measured, dtype=float)
        self._sync(measured)
        assert self.commanded is not None and self.gripper_goal is not None
        twist = self.scaled_twist(unit_twist)
        moving = bool(np.any(twist))
        gripper_moving = abs(self.commanded[-1] - self.gripper_goal) > 1e-6
        if not moving and not gripper_moving:
            self.commanded[: self.ik.n] = measured[: self.ik.n]
            self.target = None
            return None
        if not moving:
            self.target = None
        dt = self.config.point_spacing
        q, target = self.commanded.copy(), self.target
        points = []
        for k in range(self.config.horizon_points):
            if moving:
                q, target = self.ik.step(q, twist, dt, target)
            q = q.copy()
            q[-1] = move_toward(q[-1], self.gripper_goal, self.config.gripper_speed * dt)
            points.append(q)
            if k == 0:
                self.commanded, self.target = q.copy(), target
        return np.array(points)
