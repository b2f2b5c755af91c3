"""The feature contract (``config/features.yaml``): names, shapes, dtypes and source topics (no ROS).

One source for what a dataset holds, what a checkpoint was trained on and what
the policy node must feed: the converter writes these entries into
``meta/info.json``, training stores the ones a checkpoint uses, and the
policy node refuses a checkpoint needing a feature it cannot feed, naming the
feature and its topic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from armpilot.paths import config_path

STATE, ACTION = "observation.state", "action"
OBJECT, GOAL = "observation.object", "observation.goal"
COLOR, DEPTH = "observation.images.color", "observation.images.depth"
TRACKS, TRACKS_MASK = "observation.tracks", "observation.tracks_mask"
POINTS, POINTS_MASK = "observation.points", "observation.points_mask"
TASK = "task"
#: Longest language instruction (the ``task`` feature, characters) a node takes: an outside input, bounded.
MAX_INSTRUCTION_CHARS = 1000

#: Shape symbols and what they stand for.
SYMBOLS = {"J": "controlled joints", "H": "image height", "W": "image width", "K": "tracks", "T": "track steps",
           "P": "cloud points"}


class ContractError(ValueError):
    """A feature the contract does not know, a shape that does not fit it, or one nobody feeds."""


@dataclass(frozen=True)
class Feature:
    """One feature: LeRobot key, dtype, shape (ints and ``SYMBOLS``), source topic and its message type."""

    key: str
    dtype: str
    shape: tuple[int | str, ...]
    topic: str
    msg_type: str
    description: str

    def resolved_shape(self, sizes: Mapping[str, int]) -> list[int]:
        """The shape with its symbols replaced from ``sizes`` (e.g. {"J": 7, "H": 480, "W": 640})."""
        try:
            return [dim if isinstance(dim, int) else int(sizes[dim]) for dim in self.shape]
        except KeyError as missing:
            raise ContractError(f"feature '{self.key}' has shape {list(self.shape)}: no size for {missing}") from None

    def source(self) -> str:
        """'topic (type)' for messages."""
        return f"{self.topic} ({self.msg_type})"


def load_contract(path: Path | None = None) -> dict[str, Feature]:
    """key -> Feature from ``path`` (default: the shipped ``config/features.yaml``)."""
    return dict(_load(str(path or config_path("features.yaml"))))


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[tuple[str, Feature], ...]:
    raw = yaml.safe_load(Path(path).read_text())
    out = []
    for key, entry in (raw or {}).get("features", {}).items():
        unknown = [d for d in entry["shape"] if isinstance(d, str) and d not in SYMBOLS]
        if unknown:
            raise ContractError(f"{path}: feature '{key}' uses unknown shape symbols {unknown} (known {SYMBOLS})")
        out.append((key, Feature(key, entry["dtype"], tuple(entry["shape"]), entry["topic"], entry["msg_type"],
                                 entry.get("description", ""))))
    return tuple(out)


def feature(key: str, contract: Mapping[str, Feature] | None = None) -> Feature:
    """The contract's entry for ``key``; a ContractError lists the known keys."""
    contract = contract if contract is not None else load_contract()
    if key not in contract:
        raise ContractError(f"feature '{key}' is not in the feature contract (known: {sorted(contract)})")
    return contract[key]


def checkpoint_features(keys: Iterable[str], sizes: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """What a checkpoint stores: key -> {dtype, shape (resolved), topic, msg_type} for each key it uses."""
    out = {}
    for key in keys:
        entry = asdict(feature(key))
        entry["shape"] = feature(key).resolved_shape(sizes)
        del entry["key"], entry["description"]
        out[key] = entry
    return out


def unfed_features(needed: Mapping[str, Mapping[str, Any]] | Iterable[str], fed: Iterable[str],
                   sizes: Mapping[str, int]) -> list[str]:
    """Why each needed feature cannot be fed (empty when all can): not fed by the node, not in the contract,
    or a stored shape that differs from what the graph gives. ``needed``: keys, or a checkpoint's stored
    entries (key -> {shape, ...})."""
    fed = set(fed)
    stored = needed if isinstance(needed, Mapping) else {key: {} for key in needed}
    problems = []
    for key, entry in stored.items():
        try:
            known = feature(key)
        except ContractError as error:
            problems.append(str(error))
            continue
        if key not in fed:
            problems.append(f"'{key}' from {known.source()}, which the policy node does not feed")
            continue
        shape = entry.get("shape")
        resolvable = all(isinstance(dim, int) or dim in sizes for dim in known.shape)  # images: any size is fed
        if shape is not None and resolvable and list(shape) != known.resolved_shape(sizes):
            problems.append(f"'{key}' has shape {list(shape)} in the checkpoint, {known.resolved_shape(sizes)} here")
    return problems
