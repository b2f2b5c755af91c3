"""The ``/sim/episode`` announcement (a JSON ``std_msgs/String``, latched): written by the sim node on each reset,
read within bounds by the nodes that follow episodes (policy, safety, evaluator). Pure: no ROS, no MuJoCo."""

from __future__ import annotations

import json
import math
from typing import Any

#: Largest /sim/episode message read, characters (the simulator's is a few hundred).
MAX_EPISODE_MESSAGE = 65536


def encode_episode(episode: int, seed: int, task: str, start: float, goal: list[float],
                   scene: dict[str, Any]) -> str:
    """The announcement of episode ``episode`` (reset at sim time ``start``, s; ``goal`` (3,) in the base frame, m)."""
    return json.dumps({"episode": int(episode), "seed": int(seed), "task": task, "start": float(start),
                       "goal": [float(v) for v in goal], "scene": scene})


def decode_episode(data: str) -> dict[str, Any]:
    """The announcement as a dict whose ``episode`` is an int, ``start`` (s) a finite float, ``task`` (if any) a
    string and ``scene`` (if any) a mapping; ValueError naming what is wrong (too long, not JSON, not an object, a
    missing or mistyped field)."""
    if len(data) > MAX_EPISODE_MESSAGE:
        raise ValueError(f"{len(data)} characters (max {MAX_EPISODE_MESSAGE})")
    try:
        info = json.loads(data)
    except (ValueError, RecursionError) as error:  # RecursionError: arrays/objects nested thousands deep
        raise ValueError(f"not JSON: {data[:80]!r} ({error})") from error
    if not isinstance(info, dict):
        raise ValueError(f"not a JSON object: {data[:80]!r}")
    try:
        start, episode = float(info["start"]), info["episode"]
    except (KeyError, TypeError, ValueError, OverflowError) as error:  # OverflowError: an int beyond float
        raise ValueError(f"no numeric 'start' and 'episode' in {data[:80]!r} ({error!r})") from error
    if not math.isfinite(start):
        raise ValueError(f"'start' is {start}")
    if isinstance(episode, bool) or not isinstance(episode, int):
        raise ValueError(f"'episode' is {episode!r}, not an integer")
    for key, kind in (("task", str), ("scene", dict)):
        if key in info and not isinstance(info[key], kind):
            raise ValueError(f"'{key}' is {str(info[key])[:40]!r}, not a {kind.__name__}")
    return {**info, "start": start}
