"""Policies across the openpi websocket protocol (no ROS): the node's ``remote`` backend and the server side.

Request map (client -> server), openpi-style keys plus armpilot's::

    observation/state            (J,) float32   joint positions, rad / m
    observation/joint_names      [str] * J
    observation/stamp            float          s
    observation/object_position  (3,) float32   observation/object_yaw  float
    observation/goal             (3,) float32
    observation/history/state    (K, J) float32 (and history/object_position (K, 3), history/object_yaw (K,))
    observation/image            (H, W, 3) uint8 (when the node has a camera image)
    observation/points           (P, 3) float32 cloud, m, NaN rows empty (when sent: ``server_inputs``)
    observation/tracks           (K, T, 3) float32, NaN where missing; observation/history/tracks (S, K, T, 3)
    prompt                       str            the language instruction
    num_samples                  int            N candidates wanted

Reply map: ``actions`` (H, J) for N = 1 or (N, H, J), joint positions at
``action_dt`` steps after the observation (H from the reply); openpi adds
``server_timing``. Metadata on connect: ``joint_names``, ``horizon``,
``action_dt``, ``history_offsets``, ``backend``, ``control_messages`` and
``inputs`` (the sensors the served policy needs, among color, points, tracks:
a node that does not send one of them is told which parameter to set).

Third-party openpi servers send no ``action_dt``: the client then needs it as
a parameter and refuses to guess. Control messages (``{"__ctrl__":
"episode_start"}``) go only to servers that list them in
``control_messages``; openpi clients never send them and openpi policies
raise on them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from armpilot.features import COLOR, GOAL, OBJECT, POINTS, POINTS_MASK, STATE, TRACKS, TRACKS_MASK
from armpilot.policies.base import Capabilities, Observation, Policy
from armpilot.policies.chunking import resample_in_time
from armpilot.policies.policy_client import PolicyClient, PolicyServerError
from armpilot.policies.policy_server import Infer
from armpilot.policies.realtime import CommittedPrefix
from armpilot.policies.request_batching import InferBatch, one_by_one
from armpilot.safety.input_bounds import InputBounds

#: Most candidates one request may ask for: what the safety node accepts in one table.
MAX_NUM_SAMPLES = InputBounds().max_candidates
#: Most joints in one observation (the safety node's bound).
MAX_JOINTS = InputBounds().max_joints
#: Most past observations in one request.
MAX_HISTORY = 16
#: Most cloud points and (tracks, steps) in one request.
MAX_POINTS, MAX_TRACKS, MAX_TRACK_STEPS = 65_536, 256, 64
#: Control messages armpilot's server understands (announced in its metadata).
CONTROL_MESSAGES = ("episode_start", "episode_end")


def in_order(request: dict[str, Any], order: np.ndarray | None) -> dict[str, Any]:
    """``request`` with its joints (state, history, names) in a server's order: its joint k is ``order[k]`` here."""
    if order is None:
        return request
    names = request["observation/joint_names"]
    return {**request, "observation/state": request["observation/state"][order],
            "observation/history/state": request["observation/history/state"][:, order],
            "observation/joint_names": [names[k] for k in order]}


def observation_to_request(obs: Observation, num_samples: int = 1, prompt: str = "") -> dict[str, Any]:
    """The request map for one observation (see module doc)."""
    request: dict[str, Any] = {
        "observation/state": np.asarray(obs.joint_positions, np.float32),
        "observation/joint_names": list(obs.joint_names),
        "observation/stamp": float(obs.stamp),
        "observation/object_position": np.asarray(obs.object_position, np.float32),
        "observation/object_yaw": float(obs.object_yaw),
        "observation/goal": np.asarray(obs.goal_position, np.float32),
        "observation/history/state": np.asarray([h.joint_positions for h in obs.history], np.float32).reshape(
            len(obs.history), len(obs.joint_names)),
        "observation/history/object_position": np.asarray([h.object_position for h in obs.history],
                                                          np.float32).reshape(len(obs.history), 3),
        "observation/history/object_yaw": np.asarray([h.object_yaw for h in obs.history], np.float32),
        "prompt": prompt,
        "num_samples": int(num_samples),
    }
    if obs.image is not None:
        request["observation/image"] = np.asarray(obs.image, np.uint8)
    if obs.points is not None:
        request["observation/points"] = np.asarray(obs.points, np.float32)
    if obs.tracks is not None:
        request["observation/tracks"] = np.asarray(obs.tracks, np.float32)
        if obs.history and all(h.tracks is not None for h in obs.history):
            request["observation/history/tracks"] = np.asarray([h.tracks for h in obs.history], np.float32)
    return request


def _sensor_arrays(request: dict[str, Any], history: int) -> tuple[Any, Any, Any]:
    """(points (P, 3), tracks (K, T, 3), history tracks (S, K, T, 3)) of a request, each None when absent.
    Raises ValueError on a wrong shape or a size over ``MAX_POINTS`` / ``MAX_TRACKS`` x ``MAX_TRACK_STEPS``."""
    points, tracks, past = (request.get(f"observation/{k}") for k in ("points", "tracks", "history/tracks"))
    if points is not None:
        points = np.asarray(points, np.float32)
        if points.ndim != 2 or points.shape[1] != 3 or len(points) > MAX_POINTS:
            raise ValueError(f"observation/points has shape {points.shape}; (P <= {MAX_POINTS}, 3) expected")
    for name, value, lead in (("tracks", tracks, ()), ("history/tracks", past, (history,))):
        if value is None:
            continue
        shape = np.shape(value)
        if (len(shape) != len(lead) + 3 or shape[:len(lead)] != lead or shape[-1] != 3
                or shape[-3] > MAX_TRACKS or shape[-2] > MAX_TRACK_STEPS):
            expected = ", ".join([*map(str, lead), f"K <= {MAX_TRACKS}", f"T <= {MAX_TRACK_STEPS}", "3"])
            raise ValueError(f"observation/{name} has shape {shape}; ({expected}) expected")
    return (points, None if tracks is None else np.asarray(tracks, np.float32),
            None if past is None else np.asarray(past, np.float32))


def request_to_observation(request: dict[str, Any]) -> tuple[Observation, int, str]:
    """(observation, N, prompt) from a request map. Raises KeyError/ValueError naming a bad field.

    Bounded: at most ``MAX_NUM_SAMPLES`` candidates, ``MAX_JOINTS`` joints, ``MAX_HISTORY`` past
    observations; the state and stamp must be finite, other numbers finite or NaN ("unknown").
    """
    names = tuple(request["observation/joint_names"])
    if not 0 < len(names) <= MAX_JOINTS:
        raise ValueError(f"observation/joint_names has {len(names)} names (1..{MAX_JOINTS})")
    state = np.asarray(request["observation/state"], float)
    if state.shape != (len(names),):
        raise ValueError(f"observation/state has shape {state.shape} for {len(names)} joint names")
    if not np.all(np.isfinite(state)):
        raise ValueError("observation/state is not finite (NaN or inf)")
    num_samples = int(request.get("num_samples", 1))
    if not 1 <= num_samples <= MAX_NUM_SAMPLES:
        raise ValueError(f"num_samples {num_samples} outside 1..{MAX_NUM_SAMPLES}")
    if len(request.get("observation/history/state", [])) > MAX_HISTORY:
        raise ValueError(f"more than {MAX_HISTORY} past observations")
    goal = np.asarray(request.get("observation/goal", np.full(3, np.nan)), float)
    stamp = float(request["observation/stamp"])
    if not np.isfinite(stamp):
        raise ValueError("observation/stamp is not finite")
    history = tuple(
        Observation(stamp, names, np.asarray(q, float), np.asarray(p, float), float(y), goal)
        for q, p, y in zip(request.get("observation/history/state", []),
                           request.get("observation/history/object_position", []),
                           request.get("observation/history/object_yaw", [])))
    image = request.get("observation/image")
    points, tracks, past = _sensor_arrays(request, len(history))
    if past is not None:
        history = tuple(replace(h, tracks=t) for h, t in zip(history, past))
    obs = Observation(stamp, names, state, np.asarray(request["observation/object_position"], float),
                      float(request["observation/object_yaw"]), goal, history,
                      None if image is None else np.asarray(image), points, tracks)
    if obs.object_position.shape != (3,) or obs.goal_position.shape != (3,):
        raise ValueError(f"observation/object_position and observation/goal need 3 values, got "
                         f"{obs.object_position.shape} and {obs.goal_position.shape}")
    if any(h.joint_positions.shape != state.shape or h.object_position.shape != (3,) for h in history):
        raise ValueError("observation/history/* rows must match observation/state and hold 3-value positions")
    for field_name, value in (("object_position", obs.object_position), ("object_yaw", obs.object_yaw),
                              ("goal", obs.goal_position)):
        if np.any(np.isinf(value)):
            raise ValueError(f"observation/{field_name} is infinite")
    return obs, num_samples, str(request.get("prompt", ""))


def serve_policy(policy: Policy, joint_names: tuple[str, ...], backend: str):
    """(infer function, metadata) that host an armpilot backend on a ``PolicyServer``."""
    needs = policy.capabilities
    inputs = [name for name, needed in (("color", needs.needs_image), ("points", needs.needs_points),
                                        ("tracks", needs.needs_tracks)) if needed]
    metadata = {"backend": backend, "joint_names": list(joint_names), "horizon": policy.horizon,
                "action_dt": policy.chunk_dt, "history_offsets": list(policy.history_offsets), "inputs": inputs,
                "protocol": "openpi-websocket", "server": "armpilot", "control_messages": list(CONTROL_MESSAGES)}

    def infer(request: dict[str, Any]) -> dict[str, Any]:
        if request.get("__ctrl__"):  # openpi episode_start / episode_end
            if request["__ctrl__"] == "episode_start":
                policy.reset()
            return {}
        obs, n, prompt = _served_observation(request, joint_names)
        if policy.capabilities.takes_instruction and prompt:
            policy.set_instruction(prompt)
        actions = np.asarray(policy.sample_candidates(obs, n), np.float32)
        return {"actions": actions[0] if n == 1 else actions}

    return infer, metadata


def _served_observation(request: dict[str, Any], joint_names: tuple[str, ...]) -> tuple[Observation, int, str]:
    obs, n, prompt = request_to_observation(request)
    if tuple(obs.joint_names) != tuple(joint_names):
        raise ValueError(f"joint names {list(obs.joint_names)[:12]} differ from the server's {list(joint_names)}")
    return obs, n, prompt


def batched_infer(policy: Policy, joint_names: tuple[str, ...], infer: Infer) -> InferBatch:
    """Answers the observation requests of a batch with one ``policy.sample_batch`` call.

    Control messages and, for backends that take one, requests that carry an instruction go through
    ``infer`` one by one (a served instruction is policy state); a request that fails validation gets
    its own error, and if the batched call fails in any way, each request is answered alone so the
    error reaches the one that caused it (the others are answered).
    """
    alone = one_by_one(infer)

    def infer_batch(requests: list[dict[str, Any]]) -> list[Any]:
        results: list[Any] = [None] * len(requests)
        pending: list[tuple[int, Observation, int]] = []
        for i, request in enumerate(requests):
            if request.get("__ctrl__") or (request.get("prompt") and policy.capabilities.takes_instruction):
                results[i] = alone([request])[0]
                continue
            try:
                obs, n, _ = _served_observation(request, joint_names)
            except (KeyError, ValueError, TypeError) as error:
                results[i] = error
                continue
            pending.append((i, obs, n))
        if pending:
            try:
                chunks = policy.sample_batch([obs for _, obs, _ in pending], [n for *_, n in pending])
                if len(chunks) != len(pending):
                    raise ValueError(f"sample_batch answered {len(chunks)} of {len(pending)} observations")
            except Exception:  # noqa: BLE001 - answered one by one below, so the error reaches its request only
                chunks = None
            for k, (i, _, n) in enumerate(pending):
                if chunks is None:
                    results[i] = alone([requests[i]])[0]
                else:
                    actions = np.asarray(chunks[k], np.float32)
                    results[i] = {"actions": actions[0] if n == 1 else actions}
        return results

    return infer_batch


class RemotePolicy(Policy):
    """The ``remote`` backend: a policy server does the inference; this side sends observations.

    Any failure (down, slow, wrong shapes) raises ``PolicyServerError``; the
    node then proposes nothing and the safety node holds the arm.
    """

    def __init__(self, uri: str, joint_names: tuple[str, ...], horizon: int = 10, chunk_dt: float = 0.1,
                 api_key: str | None = None, timeout: float = 0.5, instruction: str = "",
                 action_dt: float = 0.0, inputs: tuple[str, ...] = ("color",)) -> None:
        """``inputs``: the sensors each request carries, among color, points, tracks (the node feeds them)."""
        self.inputs = tuple(inputs)
        # the server may sample N; it reads the instruction and the sensors sent
        self.capabilities = Capabilities(needs_image="color" in inputs, needs_points="points" in inputs,
                                         needs_tracks="tracks" in inputs, takes_instruction=True, stochastic=True)
        self.input_features = (STATE, OBJECT, GOAL, *((COLOR,) if "color" in inputs else ()),
                               *((POINTS, POINTS_MASK) if "points" in inputs else ()),
                               *((TRACKS, TRACKS_MASK) if "tracks" in inputs else ()))
        self.client = PolicyClient(uri, api_key or None, timeout)
        self.joint_names, self.horizon, self.chunk_dt = tuple(joint_names), horizon, chunk_dt
        self.instruction = instruction
        self.action_dt = action_dt  # s between the server's frames when its metadata has none (0: required there)

    @property
    def history_offsets(self) -> tuple[float, ...]:
        """What the served policy asked for in its metadata (none until connected)."""
        return tuple((self.client.metadata or {}).get("history_offsets", ()))

    def set_instruction(self, instruction: str) -> None:
        self.instruction = instruction

    def reset(self) -> None:
        """Tell a server that announced ``episode_start`` in its metadata; others get nothing."""
        metadata = self.client.metadata or {}
        if "episode_start" not in metadata.get("control_messages", ()):
            return
        try:
            self.client.infer({"__ctrl__": "episode_start", "__task__": self.instruction})
        except PolicyServerError:
            pass  # the next request reports it

    def server_action_dt(self) -> float:
        """Seconds between the server's action frames: its metadata, else the ``action_dt`` parameter.

        Raises:
            PolicyServerError: when neither gives one (never assumed).
        """
        value = (self.client.metadata or {}).get("action_dt", self.action_dt)
        try:
            action_dt = float(value)
        except (TypeError, ValueError):
            action_dt = float("nan")
        if not np.isfinite(action_dt) or action_dt <= 0:
            raise PolicyServerError(f"policy server at {self.client.uri} gives no action spacing in its metadata "
                                    f"(got {value!r}); set the policy node's server_action_dt parameter to its "
                                    "seconds between action frames (openpi servers: 1 / the robot's control rate)")
        return action_dt

    def sample_candidates(self, observation: Observation, num_samples: int,
                          prefix: CommittedPrefix | None = None) -> np.ndarray:
        """(N, H, J) joint targets at ``stamp + chunk_dt * (1..H)``, resampled from the server's grid."""
        if prefix is not None:
            raise ValueError("a served policy cannot keep a committed prefix (transition rtc/prefix)")
        try:
            order = self.server_order(self.client.ensure_connected())
            reply = self.client.infer(in_order(observation_to_request(observation, num_samples, self.instruction),
                                               order))
        except PolicyServerError:
            self._check_inputs()  # a refusal for want of a sensor this node never sends names the parameter
            raise
        self._check_inputs()
        if "actions" not in reply:
            raise PolicyServerError(f"policy server answered without 'actions' (keys {sorted(reply)})")
        actions = np.asarray(reply["actions"], float)
        if actions.ndim == 2:
            actions = actions[None]
        joints = len(self.joint_names)
        if actions.ndim != 3 or actions.shape[0] not in (1, num_samples) or actions.shape[2] != joints:
            raise PolicyServerError(f"policy server answered actions of shape {tuple(np.shape(reply['actions']))}; "
                                    f"expected (H, {joints}) or ({num_samples}, H, {joints})")
        if not np.all(np.isfinite(actions)):
            raise PolicyServerError("policy server answered non-finite actions")
        if order is not None:  # back to the node's order
            actions = actions[..., np.argsort(order)]
        action_dt = self.server_action_dt()
        out = resample_in_time(self.chunk_dt * np.arange(1, self.horizon + 1),
                               action_dt * np.arange(1, actions.shape[1] + 1), actions)
        return np.repeat(out, num_samples, axis=0) if out.shape[0] == 1 and num_samples > 1 else out

    def server_order(self, metadata: dict[str, Any]) -> np.ndarray | None:
        """(J,) indices: the server's joint k is the node's ``order[k]``; None when the server runs the node's order
        (or names none, as third-party openpi servers).

        Raises:
            PolicyServerError: the server runs other joints.
        """
        names = metadata.get("joint_names")
        if names is None or list(names) == list(self.joint_names):
            return None
        if not isinstance(names, (list, tuple)) or sorted(map(str, names)) != sorted(self.joint_names):
            shown = list(names)[:MAX_JOINTS] if isinstance(names, (list, tuple)) else repr(names)[:200]
            raise PolicyServerError(f"policy server runs joints {shown}, the node {list(self.joint_names)}")
        return np.array([self.joint_names.index(str(n)) for n in names])

    def _check_inputs(self) -> None:
        """Raises PolicyServerError when the server's metadata lists sensors this node does not send."""
        announced = (self.client.metadata or {}).get("inputs", ())
        announced = announced if isinstance(announced, (list, tuple)) else ()  # a third party's odd metadata
        if unsent := [str(name) for name in announced if name not in self.inputs][:8]:
            raise PolicyServerError(f"the policy served at {self.client.uri} needs {unsent}, which this node does "
                                    f"not send: set the policy node's server_inputs to "
                                    f"'{','.join(dict.fromkeys((*self.inputs, *unsent)))}'")

    def predict_action_chunk(self, observation: Observation) -> np.ndarray:
        return self.sample_candidates(observation, 1)[0]
