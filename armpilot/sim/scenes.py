"""Scene variations drawn per seeded episode: where a pose is not enough (pure numpy, no MuJoCo).

- ``nominal``: today's scene, nothing varies (the default; every figure before scenes used it).
- ``randomized``: the training distribution: the task object's colour from ``TRAIN_COLOURS``, its
  size x0.8-1.2, 0-2 distractors (pillars twice as tall as wide, so the task's cube is the one cube on
  the table; other training colours, sizes x0.7-1.3) away from the object and the goal, key/fill
  light intensity x0.6-1.4, the camera moved up to 1 cm and turned up to 1 deg.
- ``heldout``: the same, with colours from ``HELDOUT_COLOURS`` and sizes x0.65-0.75 or x1.25-1.4,
  never drawn by ``randomized``: a check of what a policy learned, not what it saw.

Variations come from their own random stream (``seed`` + ``VARIATION_STREAM``), so the task's own draw
(object pose, goal) is the same in every scene. The ``language`` task always has ``MAX_DISTRACTORS``
distractor cubes (not pillars), each a colour of its own, and an instruction naming the task object's
colour (``instruction_for``); in the nominal scene only their colours vary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from armpilot.perception.grounding import NAMED_COLOURS

SCENES = ("nominal", "randomized", "heldout")
#: Most distractors in a scene (the sim keeps this many bodies, parked below the floor when unused).
MAX_DISTRACTORS = 2
VARIATION_STREAM = 7_919
#: RGB in 0..1, the reference colours of the instruction's colour words. The nominal object is red.
NOMINAL_COLOUR = NAMED_COLOURS["red"]
TRAIN_COLOURS = tuple(NAMED_COLOURS[n] for n in ("red", "blue", "yellow", "green", "purple"))
HELDOUT_COLOURS = tuple(NAMED_COLOURS[n] for n in ("orange", "cyan", "pink"))
#: What an instruction calls each colour.
COLOUR_NAMES = {rgb: name for name, rgb in NAMED_COLOURS.items()}
#: Height over width of the distractors in a scene without an instruction: the task's cube is told apart
#: by its shape (in the camera and the cloud), not by a colour or size the scene randomises.
PILLAR_HEIGHT = 2.0
#: Distractors keep at least this far (m, times the arm's reach scale) from the object and the goal.
CLEARANCE = 0.09
#: Distractors stand in the task's object region widened by this much on each side (m, times the scale).
SPREAD = 0.08


@dataclass(frozen=True)
class Distractor:
    """A box that is not the task's: centre (3,) in the base frame, half width and half height (m), colour
    (RGB). A pillar (``PILLAR_HEIGHT``) unless an instruction names the task object."""

    position: np.ndarray
    half_size: float
    colour: tuple[float, float, float]
    half_height: float


@dataclass(frozen=True)
class SceneVariation:
    """What differs from the nominal scene in one episode."""

    object_colour: tuple[float, float, float] = NOMINAL_COLOUR
    object_scale: float = 1.0
    distractors: tuple[Distractor, ...] = ()
    light_scale: float = 1.0
    camera_offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    camera_turn_rad: np.ndarray = field(default_factory=lambda: np.zeros(3))


def variation_summary(variation: SceneVariation) -> dict[str, float | int | str]:
    """What an evaluation report says of one episode's draw: distractor count, object colour and scale,
    light scale (JSON-ready)."""
    return {"distractors": len(variation.distractors),
            "object_colour": COLOUR_NAMES.get(variation.object_colour, "other"),
            "object_scale": round(float(variation.object_scale), 3),
            "light_scale": round(float(variation.light_scale), 3)}


def draw_variation(scene: str, seed: int, object_position: np.ndarray, goal_position: np.ndarray,
                   half_size: float, region_low: np.ndarray, region_high: np.ndarray,
                   scale: float = 1.0, named: bool = False, table_z: float = 0.0) -> SceneVariation:
    """The variation of ``scene`` for episode ``seed`` (module doc); distractors stand on the table top at
    ``table_z`` in the object region ``region_*`` widened by ``SPREAD``, a box that finds no free place in 50
    draws is left out."""
    if scene not in SCENES:
        raise ValueError(f"unknown scene '{scene}'; use one of {SCENES}")
    if scene == "nominal" and not named:
        return SceneVariation()
    rng = np.random.default_rng(seed + VARIATION_STREAM)
    palette = HELDOUT_COLOURS if scene == "heldout" else TRAIN_COLOURS
    colour_index = int(rng.integers(len(palette)))
    if scene == "randomized":
        object_scale = float(rng.uniform(0.8, 1.2))
    elif scene == "heldout":
        object_scale = float(rng.choice([rng.uniform(0.65, 0.75), rng.uniform(1.25, 1.4)]))
    else:
        object_scale = 1.0
    others = [c for k, c in enumerate(palette) if k != colour_index]
    distractors: list[Distractor] = []
    low, high = region_low[:2] - SPREAD * scale, region_high[:2] + SPREAD * scale
    count = MAX_DISTRACTORS if named else int(rng.integers(0, MAX_DISTRACTORS + 1))
    for _ in range(count):
        size = half_size * (float(rng.uniform(0.7, 1.3)) if scene != "nominal" else 1.0)
        if named:  # every box a colour of its own: the instruction names exactly one
            others = [c for c in others if all(c != d.colour for d in distractors)]
        for _attempt in range(50):
            xy = rng.uniform(low, high)
            taken = [object_position[:2], goal_position[:2], *(d.position[:2] for d in distractors)]
            if all(np.linalg.norm(xy - p) > CLEARANCE * scale + size for p in taken):
                height = size * distractor_height(named)
                colour = others[int(rng.integers(len(others)))]
                distractors.append(Distractor(np.array([*xy, table_z + height]), size, colour, height))
                break
    if scene == "nominal":  # named boxes in today's scene: colours only
        return SceneVariation(palette[colour_index], object_scale, tuple(distractors))
    return SceneVariation(palette[colour_index], object_scale, tuple(distractors), float(rng.uniform(0.6, 1.4)),
                          rng.uniform(-0.01, 0.01, 3), np.deg2rad(rng.uniform(-1.0, 1.0, 3)))


def distractor_height(named: bool) -> float:
    """Height over width of the distractors: cubes where an instruction names the object (only its colour
    tells), pillars (``PILLAR_HEIGHT``) where none does."""
    return 1.0 if named else PILLAR_HEIGHT


def instruction_for(task_name: str, variation: SceneVariation) -> str:
    """The language instruction of an episode ("" for tasks without one): names the task object's colour."""
    if task_name != "language":
        return ""
    return f"touch the {COLOUR_NAMES[variation.object_colour]} box"
