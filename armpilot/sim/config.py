"""Settings of the simulation node (pure dataclass; declared as ROS parameters)."""

from __future__ import annotations

from dataclasses import dataclass, field

from armpilot.fields import describe as _describe
from armpilot.sim.scenes import SCENES
from armpilot.tasks import TASKS


@dataclass(frozen=True)
class SimConfig:
    """What the sim node simulates, how fast it publishes and what it renders."""

    task: str = field(default="reach", metadata=_describe("task: reach | push | pick | language"))
    seed: int = field(default=0, metadata=_describe("seed of the next reset (settable at run time)"))
    scene: str = field(default="nominal", metadata=_describe(
        "what varies per episode: nominal (nothing) | randomized (object colour and size, 0-2 distractor cylinders, "
        "lighting, camera jitter) | heldout (colours and sizes randomized never draws)"))
    joint_state_rate_hz: float = field(default=125.0, metadata=_describe("/joint_states and /clock rate, Hz"))
    camera_rate_hz: float = field(default=15.0, metadata=_describe("colour/depth/camera_info rate, Hz"))
    width: int = field(default=640, metadata=_describe("camera image width, px"))
    height: int = field(default=480, metadata=_describe("camera image height, px"))
    fovy_deg: float = field(default=55.0, metadata=_describe("camera vertical field of view, deg"))
    render: bool = field(default=True, metadata=_describe("render and publish camera images"))
    real_time_factor: float = field(
        default=1.0, metadata=_describe("sim seconds per wall second; 0 runs as fast as possible")
    )
    privileged_rate_hz: float = field(
        default=30.0, metadata=_describe("rate of /sim/privileged/object_poses (ground truth), Hz")
    )
    camera_frame: str = field(
        default="camera_color_optical_frame", metadata=_describe(
            "frame_id of colour and aligned depth when the robot profile names no camera_frame (else that frame)")
    )

    def __post_init__(self) -> None:
        if self.scene not in SCENES:
            raise ValueError(f"parameter 'scene' is '{self.scene}'; use one of {SCENES}")
        if self.task not in TASKS:
            raise ValueError(f"parameter 'task' is '{self.task}'; known tasks: {sorted(TASKS)}")
        for name in ("joint_state_rate_hz", "camera_rate_hz", "privileged_rate_hz"):
            if getattr(self, name) <= 0:
                raise ValueError(f"parameter '{name}' must be > 0, got {getattr(self, name)}")
        if self.width < 16 or self.height < 16:
            raise ValueError(f"camera resolution {self.width}x{self.height} is too small")
        if self.real_time_factor < 0:
            raise ValueError("parameter 'real_time_factor' must be >= 0")
