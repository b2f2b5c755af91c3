"""Which perceived object an instruction names, by its colour word (pure numpy, no ROS).

A small open-vocabulary step between language and a pose-based policy: the
instruction's first colour word ("touch the *blue* box") picks, among the
perceived objects, the one whose mean colour has the nearest hue, and that
object is reported first on ``/perception/objects`` (where low-dim policies
and the scripted experts read the task object). Hue is compared, not RGB:
lighting scales brightness, not hue. A grey object (low saturation) matches
no colour word; with no match the order stays largest-first.
"""

from __future__ import annotations

import colorsys
import re
from collections.abc import Sequence

import numpy as np

from armpilot.features import MAX_INSTRUCTION_CHARS
from armpilot.perception.cloud import DetectedObject

#: Colour words an instruction may use, with their reference RGB (0..1). The sim paints its boxes these.
NAMED_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.15, 0.15), "blue": (0.15, 0.35, 0.85), "yellow": (0.95, 0.8, 0.1),
    "green": (0.2, 0.7, 0.25), "purple": (0.6, 0.2, 0.7), "orange": (0.95, 0.5, 0.1),
    "cyan": (0.1, 0.75, 0.8), "pink": (0.9, 0.4, 0.7),
}
#: Objects less saturated than this (HSV, 0..1) have no colour word (grey, white, black).
MIN_SATURATION = 0.25
#: The nearest hue must be within this many degrees of the colour word's.
MAX_HUE_DEG = 30.0

def colour_word(instruction: str) -> str | None:
    """The first colour word of ``instruction`` (lower case), or None."""
    for word in re.findall(r"[a-z]+", instruction[:MAX_INSTRUCTION_CHARS].lower()):
        if word in NAMED_COLOURS:
            return word
    return None


def hue_deg(rgb: Sequence[float]) -> tuple[float, float]:
    """(hue in degrees 0..360, saturation 0..1) of an RGB colour in 0..1."""
    h, s, _ = colorsys.rgb_to_hsv(*(float(np.clip(c, 0.0, 1.0)) for c in rgb))
    return 360.0 * h, s


def nearest_colour_word(rgb: Sequence[float]) -> str | None:
    """The colour word whose hue is nearest ``rgb``'s (None when grey or farther than ``MAX_HUE_DEG``)."""
    hue, saturation = hue_deg(rgb)
    if saturation < MIN_SATURATION:
        return None
    distances = {name: _hue_distance(hue, hue_deg(ref)[0]) for name, ref in NAMED_COLOURS.items()}
    name = min(distances, key=distances.__getitem__)
    return name if distances[name] <= MAX_HUE_DEG else None


def named_first(objects: Sequence[DetectedObject], word: str | None) -> tuple[list[DetectedObject], bool]:
    """(``objects`` with the one nearest in hue to colour ``word`` first, whether one matched). Among several
    of that colour the nearest hue wins, then the largest (the given order)."""
    objects = list(objects)
    if word is None or word not in NAMED_COLOURS:
        return objects, False
    target = hue_deg(NAMED_COLOURS[word])[0]
    scored = [(_hue_distance(hue_deg(o.color)[0], target), k) for k, o in enumerate(objects)
              if nearest_colour_word(o.color) == word]
    if not scored:
        return objects, False
    best = min(scored)[1]
    return [objects[best], *(o for k, o in enumerate(objects) if k != best)], True


def _hue_distance(a: float, b: float) -> float:
    """Degrees between two hues on the colour wheel (0..180)."""
    return abs((a - b + 180.0) % 360.0 - 180.0)
