"""Executing action chunks on a real clock (pure numpy, no ROS).

A chunk is computed from an observation stamped ``t_obs`` and is anchored
there: point k is due at ``t_obs + times[k]``. By the time it is published,
``age = now - t_obs`` has passed; points already due are dropped (Diffusion
Policy's real-robot rule), and a chunk with nothing left is not sent; with
``standing`` (rtc/prefix, an arm that stood still) the chunk starts when it is ready.
Receding horizon = publish every 1/rate s and let the controller replace the
rest of the previous chunk; temporal ensembling (ACT) instead blends the new
chunk with what the previous one planned for the same instants.
"""

from __future__ import annotations

import numpy as np

from armpilot.robot import JointLimits
from armpilot.safety.stopping import braking_distance


def resample_in_time(times: np.ndarray, source_times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear interpolation along the time axis, held beyond the ends.

    Args:
        times: (T,) wanted instants, s. source_times: (H,) increasing instants of ``values``, s.
        values: (..., H, J).

    Returns:
        (..., T, J) float64.
    """
    values = np.asarray(values, float)
    columns = np.moveaxis(values, -2, -1).reshape(-1, values.shape[-2])
    out = np.stack([np.interp(times, source_times, column) for column in columns])
    return np.moveaxis(out.reshape(*values.shape[:-2], values.shape[-1], len(times)), -1, -2)


def drop_past_points(times: np.ndarray, candidates: np.ndarray, age: float,
                     margin: float = 0.0, standing: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Keeps the points due more than ``margin`` s after now.

    Args:
        times: (H,) s after the observation stamp, increasing.
        candidates: (N, H, J).
        age: now - observation stamp, s.
        margin: s; points due sooner than this cannot be reached in time either.
        standing: no command was executing at the observation: the arm cannot have followed any of the
            chunk while it was computed, so the whole chunk starts now (times shifted by ``age``) instead
            of skipping into motion the arm never made.

    Returns:
        (H',) times (still relative to the stamp) and (N, H', J); H' may be 0.
    """
    if standing:
        times = times + age
    keep = times > age + margin
    return times[keep], candidates[:, keep]


def blend_with_previous(times: np.ndarray, candidates: np.ndarray, stamp: float,
                        previous: tuple[float, np.ndarray, np.ndarray] | None, weight: float) -> np.ndarray:
    """Temporal ensembling: where the previous chunk covers a point's instant, mix it in.

    Args:
        times: (H,) s after ``stamp``. candidates: (N, H, J).
        previous: (stamp, times (H0,), chunk (H0, J)) of the chunk published before, or None.
        weight: share of the previous chunk in the overlap, 0..1 (0 = plain receding horizon).

    Returns:
        (N, H, J) blended candidates (a copy).
    """
    out = np.array(candidates, dtype=float, copy=True)
    if previous is None or weight <= 0.0:
        return out
    previous_stamp, previous_times, previous_chunk = previous
    absolute = stamp + times
    covered = (absolute >= previous_stamp + previous_times[0]) & (absolute <= previous_stamp + previous_times[-1])
    if not covered.any():
        return out
    old = resample_in_time(absolute[covered], previous_stamp + previous_times, previous_chunk)
    out[:, covered] = weight * old[None] + (1.0 - weight) * out[:, covered]
    return out


#: Extra distance kept from a limit a joint moves toward (rad or m): rounding in the safety node's check.
LIMIT_MARGIN = 1e-6


def keep_braking_inside(times: np.ndarray, candidates: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                        max_acceleration: np.ndarray, max_jerk: np.ndarray,
                        start: np.ndarray | None = None) -> np.ndarray:
    """(N, H, J) candidates pulled back from their position limits by the braking distance of their speed.

    A chunk that runs into a limit at speed (a gripper closing onto its stop) is refused by the safety
    node (``braking_distance``: a hold just before a point would carry the joint past the limit). Each
    point is kept ``braking_distance(v)`` (+ ``LIMIT_MARGIN``) inside the limits, ``v`` the faster of the
    segments around it toward that limit, repeated until nothing moves (a pulled point gives its
    neighbour a segment toward the limit).

    Args:
        times: (H,) s, increasing. candidates: (N, H, J), already within [lower, upper].
        lower, upper: (J,) limits (+-inf for continuous joints). max_acceleration, max_jerk: (J,).
        start: (J,) where the controller is at t = 0, or None: the move onto point 0 (by ``times[0]``) is one of
            its segments (a hold may brake on the way to it at that speed).
    """
    if candidates.shape[1] < 2 and start is None:
        return candidates
    # a point is never pulled past the middle of its range; a continuous joint (+-inf) is never pulled at all
    bounded = np.isfinite(lower) & np.isfinite(upper)
    middle = (np.where(bounded, lower, 0.0) + np.where(bounded, upper, 0.0)) / 2.0
    out = candidates
    for _ in range(2 * candidates.shape[1]):  # a pulled point makes its neighbour's segment run toward the limit
        segment = np.diff(out, axis=1) / np.diff(times)[None, :, None]
        first = segment[:, :1] if start is None else (out[:, :1] - start) / times[0]
        before = np.concatenate([first, segment], axis=1)
        after = np.concatenate([segment, segment[:, -1:] if segment.shape[1] else first], axis=1)
        up = np.maximum(np.maximum(before, after), 0.0)
        down = np.minimum(np.minimum(before, after), 0.0)
        high = upper - braking_distance(up, max_acceleration, max_jerk) - LIMIT_MARGIN * (up > 0)
        low = lower - braking_distance(down, max_acceleration, max_jerk) + LIMIT_MARGIN * (down < 0)
        pulled = np.clip(out, np.minimum(low, middle), np.maximum(high, middle))
        if np.array_equal(pulled, out):
            break
        out = pulled
    return out


def limit_speed(times: np.ndarray, candidates: np.ndarray, start: np.ndarray, max_velocity: np.ndarray,
                continuous: np.ndarray, max_step: float = np.inf, braking: JointLimits | None = None) -> np.ndarray:
    """(N, H, J) candidates slowed to the velocity limits along the way from ``start``.

    A chunk that moves a joint faster than its limit (a gripper closed at a demonstrator's pace, a policy's
    first point a bin too far) is refused whole by the safety node; here each point is moved at most
    ``max_velocity * dt`` from the one before it (the first from ``start`` at t = 0), so the chunk goes the
    same way, later. Continuous joints move by the shorter way round; NaN stays NaN. With ``braking`` (the
    position, acceleration and jerk limits), a step toward a position limit is also kept short enough that the
    joint can still stop before the limit (``braking_distance`` of the step's speed, as the safety node checks
    each point): a chunk running into a limit slows down on the way instead of being pulled back from it later
    (``keep_braking_inside`` alone stepped the PR2's elbow 0.5 rad back in one point, 1.6x its velocity limit).

    Args:
        times: (H,) s after the observation, increasing, > 0. candidates: (N, H, J).
        start: (J,) where the arm is headed at the observation. max_velocity: (J,) rad/s or m/s.
        continuous: (J,) bool.
        max_step: most any joint moves from one point to the next, rad or m (the safety node's ``max_step``).
    """
    out = np.array(candidates, dtype=float, copy=True)
    previous = np.broadcast_to(np.asarray(start, float), out[:, 0].shape).copy()
    for k, dt in enumerate(np.diff(np.concatenate([[0.0], times]))):
        step = out[:, k] - previous
        step = np.where(continuous, (step + np.pi) % (2 * np.pi) - np.pi, step)
        reach = np.minimum(max_velocity * dt, max_step)
        up, down = reach, reach
        if braking is not None:
            up = _braking_reach(braking.upper - previous, dt, reach, braking.acceleration, braking.jerk)
            down = _braking_reach(previous - braking.lower, dt, reach, braking.acceleration, braking.jerk)
        previous = previous + np.clip(step, -down, up)
        out[:, k] = previous
    return out


def _braking_reach(room: np.ndarray, dt: float, reach: np.ndarray, max_acceleration: np.ndarray,
                   max_jerk: np.ndarray) -> np.ndarray:
    """(…, J) the longest step s <= ``reach`` in ``dt`` s after which a joint ``room`` from its limit can still stop
    before it: s + braking_distance(s / dt) <= room - LIMIT_MARGIN. ``braking_distance`` is the larger of an
    acceleration-bound c_a s^2 and a jerk-bound c_j s^1.5 (``stopping.braking_time``): s solves each in closed
    form (the second by Newton's method from above, where it converges without overshooting)."""
    room = np.where(np.isfinite(room), room - LIMIT_MARGIN, np.inf)
    reach = np.broadcast_to(reach, room.shape)
    free = reach + braking_distance(reach / dt, max_acceleration, max_jerk) <= room
    if np.all(free):
        return reach
    r = np.where(free, 0.0, np.clip(room, 0.0, None))
    c_a = np.pi / (4.0 * max_acceleration * dt**2)
    by_accel = 2.0 * r / (1.0 + np.sqrt(1.0 + 4.0 * c_a * r))  # the root of s + c_a s^2 = r
    c_j = np.pi / (2.0 * np.sqrt(2.0 * max_jerk)) / dt**1.5
    by_jerk = np.minimum(r, (r / c_j) ** (2.0 / 3.0))  # above the root of s + c_j s^1.5 = r
    for _ in range(12):
        by_jerk = by_jerk - (by_jerk + c_j * by_jerk**1.5 - r) / (1.0 + 1.5 * c_j * np.sqrt(by_jerk) + 1e-12)
    step = np.clip(np.minimum(by_accel, by_jerk), 0.0, None)
    over = step + braking_distance(step / dt, max_acceleration, max_jerk)
    step = np.where(over > r, step * r / np.maximum(over, 1e-12), step)  # what Newton left above the root
    return np.where(free, reach, np.minimum(reach, step))


#: Share of the acceleration and jerk limits ``limit_acceleration`` plans with: the safety node checks the chunk
#: later than it is fitted, with a shorter lead onto point 0.
ACCELERATION_FIT_MARGIN = 0.8


def limit_acceleration(times: np.ndarray, candidates: np.ndarray, start: np.ndarray, start_velocity: np.ndarray,
                       max_velocity: np.ndarray, max_acceleration: np.ndarray, max_jerk: np.ndarray,
                       max_step: float = np.inf) -> np.ndarray:
    """(N, H, J) candidates followed from the controller's motion with bounded speed changes.

    A planner that starts every chunk at full speed from wherever the arm is (a scripted expert) asks for a
    velocity step at point 0 that the safety node refuses (``acceleration_limit`` where the controller joins
    the chunk). Here each point is reached from the one before (the first from ``start`` at t = 0, the
    controller moving steadily at ``start_velocity`` before) with the acceleration and jerk, as the safety
    node's finite differences measure them, kept within ``ACCELERATION_FIT_MARGIN`` of their limits: the chunk
    goes the same way and lags where it asked for more. It never goes faster than the chunk asked (no catching
    up) and, for a chunk that ends at rest, slows in time to stop at its last point (no overshoot into a
    gripper's stop). A chunk within the limits that does not end at rest comes back unchanged.

    Args:
        times: (H,) s after t = 0, increasing, > 0. candidates: (N, H, J), continuous joints unwrapped.
        start, start_velocity: (J,) where the controller is and its velocity (rad or m, per s) at t = 0.
        max_velocity, max_acceleration, max_jerk: (J,) positive limits; max_step: as ``limit_speed``'s.
    """
    amax = ACCELERATION_FIT_MARGIN * np.asarray(max_acceleration, float)
    jmax = ACCELERATION_FIT_MARGIN * np.asarray(max_jerk, float)
    out = np.array(candidates, dtype=float, copy=True)
    start = np.asarray(start, float)
    steps = np.diff(np.concatenate([[0.0], times]))
    asked = np.diff(np.concatenate([np.broadcast_to(start, out[:, :1].shape), out], axis=1), axis=1) / steps[:, None]
    fastest = np.minimum(np.nanmax(np.abs(asked), axis=1, initial=0.0), max_velocity)  # (N, J)
    at_rest = np.abs(asked[:, -1]) < 1e-9  # (N, J) the chunk ends holding its last point
    position = np.broadcast_to(start, out[:, 0].shape).copy()
    velocity = np.broadcast_to(np.asarray(start_velocity, float), out[:, 0].shape).copy()
    acceleration = np.zeros_like(velocity)
    spacing = [steps[0], steps[0]]  # the steady motion before t = 0, at the spacing of the move onto point 0
    for k, dt in enumerate(steps):
        span = (spacing[-1] + dt) / 2.0  # the acceleration at a point spans half of each segment around it
        reach = jmax * (spacing[-2] + spacing[-1] + dt) / 3.0
        wanted = np.clip((out[:, k] - position) / dt, -fastest, fastest)
        wanted = np.where(at_rest, _toward_rest(wanted, out[:, -1] - position, dt, amax, jmax), wanted)
        step = np.clip((wanted - velocity) / span, np.maximum(-amax, acceleration - reach),
                       np.minimum(amax, acceleration + reach))
        speed = np.minimum(max_velocity, max_step / dt)
        new_velocity = np.clip(velocity + step * span, -speed, speed)
        acceleration = (new_velocity - velocity) / span
        velocity = new_velocity
        position = position + velocity * dt
        out[:, k] = np.where(np.isnan(out[:, k]), np.nan, position)
        spacing = [spacing[-1], dt]
    return out


def _toward_rest(velocity: np.ndarray, remaining: np.ndarray, dt: float, max_acceleration: np.ndarray,
                 max_jerk: np.ndarray) -> np.ndarray:
    """``velocity`` (N, J) capped, toward ``remaining`` (N, J), to the fastest that moves on for ``dt`` s and then
    stops within it (``braking_distance``; bisection)."""
    distance = np.abs(remaining)
    low, high = np.zeros_like(distance), np.abs(velocity)
    for _ in range(30):
        middle = (low + high) / 2.0
        fits = middle * dt + braking_distance(middle, max_acceleration, max_jerk) <= distance
        low, high = np.where(fits, middle, low), np.where(fits, high, middle)
    toward = np.sign(velocity) == np.sign(remaining)
    return np.where(toward, np.sign(velocity) * low, velocity)


def fit_to_limits(times: np.ndarray, candidates: np.ndarray, start: np.ndarray, limits: JointLimits,
                  start_velocity: np.ndarray | None = None, max_step: float = np.inf) -> np.ndarray:
    """(N, H, J) candidates a policy proposed, made to respect ``limits`` (in the candidates' joint order).

    A policy's spill past a position limit (a gripper closed to -0.0004) is clipped, a chunk faster than the
    velocity limits from ``start`` (where the controller is headed) is slowed to them
    (``limit_speed``), and points running into a limit at speed are kept the braking distance inside it
    (``keep_braking_inside``). Speed changes are limited to the acceleration and jerk limits only with
    ``start_velocity`` (J,), the controller's velocity at ``start`` (``limit_acceleration``, for planners that
    start at full speed): for a learned policy that lag removed 53 acceleration refusals in 50 VLA episodes but
    took seeds 0-49 from 42/50 to 36/50. No joint moves more than ``max_step`` between two points (the safety
    node's). NaN stays NaN; the safety node checks everything else.
    """
    inf = np.full(len(limits.lower), np.inf)
    candidates = np.clip(candidates, limits.lower, limits.upper)
    braking = limits if limits.acceleration is not None and limits.jerk is not None else None
    planner = start_velocity is not None and braking is not None
    candidates = limit_speed(times, candidates, start, limits.velocity, limits.continuous, max_step,
                             None if planner else braking)
    if planner:
        candidates = limit_acceleration(times, candidates, start, start_velocity, limits.velocity,
                                        limits.acceleration, limits.jerk, max_step)
        candidates = np.clip(candidates, limits.lower, limits.upper)
        # where its bounded deceleration carries a joint past the point it could still stop before a limit (the
        # PR2's elbow), that joint's steps are cut short there; the others keep their planned speed changes
        slowed = limit_speed(times, candidates, start, limits.velocity, limits.continuous, max_step, braking)
        candidates = np.where(np.any(slowed != candidates, axis=1, keepdims=True), slowed, candidates)
    return keep_braking_inside(times, candidates, limits.lower, limits.upper,
                               limits.acceleration if limits.acceleration is not None else inf,
                               limits.jerk if limits.jerk is not None else inf, start)
