"""Input devices -> ``TeleopCommand`` (pure: no rclpy, no terminal, no USB here).

Twists in a ``TeleopCommand`` are unitless, each component in [-1, 1]; the
streamer scales them by the linear (m/s) and angular (rad/s) speeds and the
speed scale. Axes follow ``base_link``: +x forward, +y left, +z up.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from armpilot.fields import describe as _describe

START, STOP, DISCARD = "start", "stop", "discard"
EPISODE_EVENTS = (START, STOP, DISCARD)


class Gripper(enum.Enum):
    """What to do with the gripper."""

    NONE = "none"
    TOGGLE = "toggle"
    OPEN = "open"
    CLOSE = "close"


@dataclass(frozen=True)
class TeleopCommand:
    """One reading of an input device.

    Attributes:
        twist: (6,) unitless in [-1, 1]: vx, vy, vz, wx, wy, wz in ``base_link``.
        gripper: gripper action.
        speed_steps: +n faster / -n slower (each step multiplies the speed scale).
        events: episode events for the recorder (``start``, ``stop``, ``discard``).
        show_help: print the key help again.
        quit: leave teleop.
    """

    twist: np.ndarray = field(default_factory=lambda: np.zeros(6))
    gripper: Gripper = Gripper.NONE
    speed_steps: int = 0
    events: tuple[str, ...] = ()
    show_help: bool = False
    quit: bool = False


# ------------------------------------------------------------------ keyboard
#: key -> (twist component, sign)
MOTION_KEYS: dict[str, tuple[int, float]] = {
    "w": (0, 1.0), "s": (0, -1.0),
    "a": (1, 1.0), "d": (1, -1.0),
    "r": (2, 1.0), "f": (2, -1.0),
    "i": (4, 1.0), "k": (4, -1.0),   # pitch
    "j": (5, 1.0), "l": (5, -1.0),   # yaw
    "u": (3, 1.0), "o": (3, -1.0),   # roll
}
EVENT_KEYS = {"1": START, "2": STOP, "3": DISCARD}

KEYBOARD_HELP = """\
armpilot teleop (keyboard) - hold a key to move the tool, in base_link:
  w / s   +x / -x  (forward / back)       i / k   pitch + / -
  a / d   +y / -y  (left / right)         j / l   yaw + / -
  r / f   +z / -z  (up / down)            u / o   roll + / -
  space   toggle the gripper (open <-> close)
  + / -   faster / slower (speed scale)
  1 start recording an episode   2 stop (save) it   3 discard it
  h this help    q quit (Ctrl-C also quits and restores the terminal)
Idle (no key held): nothing is sent and the safety node holds the arm."""


class KeyboardMapper:
    """Single key presses -> commands. A motion key moves the tool for ``hold_s`` after each press
    (the terminal's key repeat keeps a held key alive); letters are case-insensitive."""

    def __init__(self, hold_s: float = 0.3) -> None:
        self.hold_s = hold_s
        self._pressed: dict[str, float] = {}

    def command(self, keys: Sequence[str], now: float) -> TeleopCommand:
        """The command after reading ``keys`` (chars) at time ``now`` (s, any monotonic clock)."""
        gripper, steps, events, show_help, quit_ = Gripper.NONE, 0, [], False, False
        for raw in keys:
            key = raw.lower()
            if key in MOTION_KEYS:
                self._pressed[key] = now
            elif key == " ":
                gripper = Gripper.TOGGLE
            elif key in ("+", "="):
                steps += 1
            elif key in ("-", "_"):
                steps -= 1
            elif key in EVENT_KEYS:
                events.append(EVENT_KEYS[key])
            elif key == "h" or key == "?":
                show_help = True
            elif key == "q":
                quit_ = True
        twist = np.zeros(6)
        for key, pressed in list(self._pressed.items()):
            if now - pressed > self.hold_s:
                del self._pressed[key]
                continue
            axis, sign = MOTION_KEYS[key]
            twist[axis] += sign
        return TeleopCommand(np.clip(twist, -1.0, 1.0), gripper, steps, tuple(events), show_help, quit_)


# ------------------------------------------------------------------ joystick (sensor_msgs/Joy)

@dataclass(frozen=True)
class JoyMapping:
    """Which Joy axes and buttons do what (defaults: an Xbox-style pad under the ``joy`` package)."""

    joy_axes: tuple[int, ...] = field(
        default=(1, 0, 4, -1, -1, 3),
        metadata=_describe("Joy axis index for vx, vy, vz, wx, wy, wz (-1 = unused)"))
    joy_axis_scale: tuple[float, ...] = field(
        default=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0), metadata=_describe("multiplier per twist component (-1 flips)"))
    joy_deadzone: float = field(default=0.1, metadata=_describe("axis values below this are zero, in [0, 1)"))
    joy_button_gripper: int = field(default=0, metadata=_describe("button toggling the gripper (-1 = none)"))
    joy_button_faster: int = field(default=5, metadata=_describe("button for a larger speed scale (-1 = none)"))
    joy_button_slower: int = field(default=4, metadata=_describe("button for a smaller speed scale (-1 = none)"))
    joy_button_start: int = field(default=7, metadata=_describe("button starting an episode recording (-1 = none)"))
    joy_button_stop: int = field(default=6, metadata=_describe("button stopping (saving) the recording (-1 = none)"))
    joy_button_discard: int = field(default=1, metadata=_describe("button discarding the recording (-1 = none)"))

    def __post_init__(self) -> None:
        if len(self.joy_axes) != 6 or len(self.joy_axis_scale) != 6:
            raise ValueError("parameters 'joy_axes' and 'joy_axis_scale' need six values (vx, vy, vz, wx, wy, wz)")
        if not 0.0 <= self.joy_deadzone < 1.0:
            raise ValueError(f"parameter 'joy_deadzone' must be in [0, 1), got {self.joy_deadzone}")


def apply_deadzone(values: np.ndarray, deadzone: float) -> np.ndarray:
    """Zero values within ``deadzone`` and rescale the rest so output still spans [-1, 1]."""
    v = np.clip(np.asarray(values, dtype=float), -1.0, 1.0)
    mag = np.clip((np.abs(v) - deadzone) / (1.0 - deadzone), 0.0, 1.0)
    return np.sign(v) * mag


class JoyMapper:
    """``sensor_msgs/Joy`` axes/buttons -> commands; buttons act on press (rising edge)."""

    def __init__(self, mapping: JoyMapping | None = None) -> None:
        self.mapping = mapping or JoyMapping()
        self._previous: tuple[int, ...] = ()

    def _pressed(self, buttons: Sequence[int], index: int) -> bool:
        if index < 0 or index >= len(buttons) or not buttons[index]:
            return False
        return not (index < len(self._previous) and self._previous[index])

    def command(self, axes: Sequence[float], buttons: Sequence[int]) -> TeleopCommand:
        """The command for one Joy message (missing axes/buttons read as zero)."""
        m = self.mapping
        raw = np.array([axes[i] if 0 <= i < len(axes) else 0.0 for i in m.joy_axes], dtype=float)
        raw[~np.isfinite(raw)] = 0.0  # a NaN axis would reach the IK (np.clip keeps NaN)
        twist = apply_deadzone(raw, m.joy_deadzone) * np.asarray(m.joy_axis_scale, dtype=float)
        gripper = Gripper.TOGGLE if self._pressed(buttons, m.joy_button_gripper) else Gripper.NONE
        steps = int(self._pressed(buttons, m.joy_button_faster)) - int(self._pressed(buttons, m.joy_button_slower))
        wanted = ((START, m.joy_button_start), (STOP, m.joy_button_stop), (DISCARD, m.joy_button_discard))
        events = tuple(e for e, b in wanted if self._pressed(buttons, b))
        self._previous = tuple(int(b) for b in buttons)
        return TeleopCommand(np.clip(twist, -1.0, 1.0), gripper, steps, events)


# ------------------------------------------------------------------ SpaceMouse (pyspacemouse)
SPACEMOUSE_HELP = (
    "SpaceMouse teleop needs the Python package 'pyspacemouse' (with 'hidapi' and the system "
    "library libhidapi) and a 3Dconnexion SpaceMouse it may open. Fix: "
    "`pip install pyspacemouse hidapi` (and `sudo apt install libhidapi-hidraw0`), allow access "
    "to the device with a udev rule such as "
    "`KERNEL==\"hidraw*\", ATTRS{idVendor}==\"256f\", MODE=\"0666\"` in "
    "/etc/udev/rules.d/99-spacemouse.rules (then `sudo udevadm control --reload-rules && sudo udevadm trigger`), "
    "plug the SpaceMouse in, or use device:=keyboard / device:=joy."
)


class SpaceMouseUnavailable(RuntimeError):
    """pyspacemouse or the device is missing; the message says what was looked for and how to fix it."""


def open_spacemouse() -> Any:
    """Import pyspacemouse and open the first SpaceMouse; returns the module (``read()`` gives states).

    Raises:
        SpaceMouseUnavailable: the package cannot be imported or no device opens.
    """
    try:
        import pyspacemouse  # type: ignore[import-not-found]
    except ImportError as error:  # also covers a missing hidapi / libhidapi
        raise SpaceMouseUnavailable(f"could not import pyspacemouse ({error}). {SPACEMOUSE_HELP}") from error
    try:
        opened = pyspacemouse.open()
    except Exception as error:
        raise SpaceMouseUnavailable(f"pyspacemouse could not open a SpaceMouse ({error}). {SPACEMOUSE_HELP}") from error
    if not opened:
        raise SpaceMouseUnavailable(f"pyspacemouse found no SpaceMouse (is one plugged in, may this user "
                                    f"open /dev/hidraw*?). {SPACEMOUSE_HELP}")
    return pyspacemouse


class SpaceMouseMapper:
    """pyspacemouse states (x, y, z, roll, pitch, yaw in [-1, 1]; buttons) -> commands.

    Left button toggles the gripper, right button starts/stops recording alternately.
    """

    def __init__(self, deadzone: float = 0.1, scale: Sequence[float] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)) -> None:
        self.deadzone = deadzone
        self.scale = np.asarray(scale, dtype=float)
        self._previous: tuple[int, ...] = ()
        self._recording = False

    def command(self, state: Any) -> TeleopCommand:
        """The command for one ``pyspacemouse.read()`` state."""
        # the puck's y is forward and x right: base x = puck y, base y = -puck x
        raw = np.array([state.y, -state.x, state.z, state.roll, state.pitch, -state.yaw], dtype=float)
        twist = apply_deadzone(raw, self.deadzone) * self.scale
        buttons = tuple(int(b) for b in getattr(state, "buttons", ()) or ())
        pressed = [i for i, b in enumerate(buttons) if b and not (i < len(self._previous) and self._previous[i])]
        self._previous = buttons
        gripper = Gripper.TOGGLE if 0 in pressed else Gripper.NONE
        events: tuple[str, ...] = ()
        if 1 in pressed:
            events = (STOP,) if self._recording else (START,)
            self._recording = not self._recording
        return TeleopCommand(np.clip(twist, -1.0, 1.0), gripper, 0, events)
