"""Settings of the policy node (pure dataclass; declared as ROS parameters)."""

from __future__ import annotations

from dataclasses import dataclass, field

from armpilot.fields import describe as _describe
from armpilot.features import MAX_INSTRUCTION_CHARS
from armpilot.policies.realtime import TRANSITIONS


OBJECT_SOURCES = ("perception", "privileged")
EPISODE_SOURCES = ("sim", "continuous")
SAMPLER_NAMES = ("dpm", "ddim", "ddpm", "streaming")
#: Sensors the remote backend can send a policy server.
SERVER_INPUTS = ("color", "points", "tracks")
#: Transition the demo and evaluate commands use for a backend unless told: the VLA keeps no committed prefix
#: and its greedy chunks hop a bin or two between calls, so overlapping chunks are blended (language task, 10
#: seeds: replace 6/10, ensemble 8/10).
BACKEND_TRANSITIONS = {"vla": "ensemble"}
#: Task the demo, evaluate and serve commands run for a backend unless told (the shipped VLA: language).
BACKEND_TASKS = {"vla": "language"}
DEFAULT_TASK = "reach"


def default_task(backend: str) -> str:
    """The task for ``backend`` when none is given."""
    return BACKEND_TASKS.get(backend, DEFAULT_TASK)


def default_transition(backend: str) -> str:
    """The chunk transition for ``backend`` when none is given (``PolicyNodeConfig.transition`` for most)."""
    return BACKEND_TRANSITIONS.get(backend, PolicyNodeConfig.transition)


@dataclass(frozen=True)
class PolicyNodeConfig:
    """Which backend runs and how often it proposes a chunk."""

    backend: str = field(default="scripted", metadata=_describe(
        "policy backend: scripted | diffusion | vla | remote (a policy server) | handover (diffusion, then the "
        "scripted expert from /policy/handover on: recording corrections)"))
    task: str = field(default="reach", metadata=_describe("task the backend solves: reach | push | pick | language"))
    rate_hz: float = field(default=5.0, metadata=_describe("chunks proposed per second (ROS time), Hz"))
    horizon: int = field(default=10, metadata=_describe("points per chunk, H"))
    chunk_dt: float = field(default=0.1, metadata=_describe("time between chunk points, s"))
    joint_names: tuple[str, ...] = field(default=(), metadata=_describe(
        "joint order of the published chunks (the arm controller's joints, any order or a subset; a gripper on a "
        "controller of its own is added); empty = the robot profile's. Backends work in their checkpoint's order, "
        "else the profile's"))
    object_source: str = field(
        default="perception",
        metadata=_describe("where the task object comes from: perception (/perception/objects, largest first) "
                           "or privileged (the sim's ground truth, for debugging)"),
    )
    push_jitter: float = field(default=0.0, metadata=_describe(
        "scripted push: std of how far sideways of the box-to-goal line each episode's push starts, m (recorded "
        "demonstrations then show the expert's correction; needs object_source privileged; 0 = on the line)"))

    episodes: str = field(
        default="sim", metadata=_describe(
            "where episodes begin: sim (each /sim/episode; the sim and replay graphs) | continuous (one episode "
            "from start-up, a new goal on /policy/goal begins the next; real arms, Gazebo)"))

    observation_timeout: float = field(
        default=0.5, metadata=_describe("propose nothing when the objects are older than this, s (camera stale)")
    )

    checkpoint: str = field(
        default="", metadata=_describe("diffusion: checkpoint folder (policy.safetensors + policy.json); empty = "
                                       "the one shipped for the task. vla: the local model folder"))
    sampler: str = field(default="dpm", metadata=_describe("diffusion sampler: dpm | ddim | ddpm | streaming"))
    sampler_steps: int = field(default=3, metadata=_describe("denoising steps per chunk (ddpm: always all)"))
    inference_threads: int = field(default=1, metadata=_describe("torch CPU threads for inference"))
    observation_budget: float = field(
        default=0.25, metadata=_describe("a chunk whose observation is older than this when it is ready is "
                                         "dropped, s"))
    min_lead: float = field(
        default=0.05, metadata=_describe("points due sooner than this after the chunk is ready are dropped: the "
                                         "controller could not reach them within the velocity limit, s"))
    transition: str = field(
        default="replace", metadata=_describe(
            "how a new chunk takes over from the executing one: replace (receding horizon) | ensemble (temporal "
            "ensembling, chunk_blend) | rtc (Real-Time Chunking: the frames due before the chunk is ready are "
            "frozen to the executing chunk and the overlap inpainted; backends that inpaint: diffusion) | prefix "
            "(the frozen frames condition a checkpoint trained with --prefix-frames; default checkpoint: "
            "checkpoints/diffusion_<task>_prefix)"))
    cut_at_workspace: bool = field(
        default=True, metadata=_describe(
            "when no candidate clears the table (the safety node's default table_clearance + 2 mm) and stays in "
            "the workspace box, hold each at its last point (and braking stop) that does, instead of sending "
            "chunks the safety node refuses whole (a policy that overshoots downward would never get there)"))
    chunk_blend: float = field(
        default=0.5, metadata=_describe("transition ensemble: share of the previous chunk where chunks overlap, "
                                        "0..1"))
    latency_percentile: float = field(
        default=95.0, metadata=_describe("transition rtc/prefix: the frozen prefix lasts this percentile of the "
                                         "last 50 observation -> chunk-ready latencies plus min_lead, %"))
    inject_delay_ms: float = field(
        default=0.0, metadata=_describe("evaluation: latency added to every inference, ms (the observation "
                                        "budget grows by the same amount)"))
    inject_delay_jitter_ms: float = field(
        default=0.0, metadata=_describe("evaluation: uniform random 0..this added on top of inject_delay_ms, ms"))

    server_uri: str = field(default="ws://127.0.0.1:8000",
                            metadata=_describe("remote: policy server (openpi websocket protocol)"))
    api_key: str = field(default="", metadata=_describe("remote: Api-Key for the server (empty: "
                                                        "$ARMPILOT_POLICY_API_KEY or none)"))
    request_timeout: float = field(default=0.5, metadata=_describe("remote: seconds to wait for an answer"))
    server_action_dt: float = field(
        default=0.0, metadata=_describe("remote: seconds between the server's action frames when its metadata "
                                        "gives none (openpi servers); 0 = the metadata must give it"))
    server_inputs: str = field(
        default="color", metadata=_describe("remote: sensors sent with each request, comma-separated among "
                                            f"{', '.join(SERVER_INPUTS)} (what the served policy needs: its "
                                            "metadata lists them as 'inputs')"))
    instruction: str = field(default="", metadata=_describe("language instruction for VLA backends (also "
                                                            "settable live on /policy/instruction)"))

    @property
    def server_input_names(self) -> tuple[str, ...]:
        """``server_inputs`` split: the sensors the remote backend sends."""
        return tuple(n.strip() for n in self.server_inputs.split(",") if n.strip())

    def __post_init__(self) -> None:
        if len(self.instruction) > MAX_INSTRUCTION_CHARS:
            raise ValueError(f"parameter 'instruction' has {len(self.instruction)} characters (max "
                             f"{MAX_INSTRUCTION_CHARS})")
        if self.request_timeout <= 0 or self.server_action_dt < 0:
            raise ValueError("parameter 'request_timeout' must be > 0 s and 'server_action_dt' >= 0 s")
        if unknown := [n for n in self.server_input_names if n not in SERVER_INPUTS]:
            raise ValueError(f"parameter 'server_inputs' names {unknown}; use some of {SERVER_INPUTS}")
        if self.sampler not in SAMPLER_NAMES:
            raise ValueError(f"parameter 'sampler' is '{self.sampler}'; use one of {SAMPLER_NAMES}")
        if not 0.0 <= self.chunk_blend < 1.0 or self.observation_budget <= 0 or self.sampler_steps < 1:
            raise ValueError("chunk_blend must be in [0, 1), observation_budget > 0 and sampler_steps >= 1")
        if self.transition not in TRANSITIONS:
            raise ValueError(f"parameter 'transition' is '{self.transition}'; use one of {TRANSITIONS}")
        if not 0.0 < self.latency_percentile <= 100.0:
            raise ValueError("latency_percentile must be in (0, 100]")
        if not self.push_jitter >= 0.0:
            raise ValueError(f"parameter 'push_jitter' must be >= 0 m, got {self.push_jitter}")
        if self.inject_delay_ms < 0 or self.inject_delay_jitter_ms < 0:
            raise ValueError("inject_delay_ms and inject_delay_jitter_ms must be >= 0")
        if not 0.0 <= self.min_lead < self.chunk_dt:
            raise ValueError(f"min_lead must be in [0, chunk_dt = {self.chunk_dt}), got {self.min_lead}")
        if self.episodes not in EPISODE_SOURCES:
            raise ValueError(f"parameter 'episodes' is '{self.episodes}'; use one of {EPISODE_SOURCES}")
        if self.object_source not in OBJECT_SOURCES:
            raise ValueError(f"parameter 'object_source' is '{self.object_source}'; use one of {OBJECT_SOURCES}")
        if self.rate_hz <= 0 or self.chunk_dt <= 0 or self.horizon < 1:
            raise ValueError("parameters rate_hz and chunk_dt must be > 0 and horizon >= 1")
        if self.horizon * self.chunk_dt < 1.0 / self.rate_hz:
            raise ValueError(
                f"a chunk lasts {self.horizon * self.chunk_dt:.2f} s, shorter than the "
                f"{1.0 / self.rate_hz:.2f} s between chunks: the arm would stop between them"
            )
