"""Diffusion-policy checkpoints: safetensors weights + JSON (never pickle).

A checkpoint is a folder::

    policy.safetensors   EMA weights of the network (normaliser statistics included)
    policy.json          {"config": DiffusionConfig, "features": the feature contract's entries it was
                          trained on, "stats": dataset statistics, "training": metadata}
    train_state.safetensors / train_state.json   (optional) raw weights + optimiser moments, for resuming

Loading checks the folder, the files and the shapes and says what differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from armpilot.dataset.tracks_feature import NUM_STEPS, NUM_TRACKS
from armpilot.dataset.points_feature import NUM_POINTS
from armpilot.features import ACTION, POINTS, POINTS_MASK, TRACKS, TRACKS_MASK, checkpoint_features
from armpilot.policies.diffusion_config import DiffusionConfig
from armpilot.policies.diffusion_model import DiffusionModel

WEIGHTS, META = "policy.safetensors", "policy.json"
TRAIN_WEIGHTS, TRAIN_META = "train_state.safetensors", "train_state.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or does not fit; the message names the file and what differs."""


def _stats_to_json(stats: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, list[float]]]:
    return {k: {s: v.tolist() for s, v in d.items() if s in ("min", "max", "mean", "std")} for k, d in stats.items()}


def _stats_from_json(raw: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, torch.Tensor]]:
    return {k: {s: torch.tensor(v, dtype=torch.float32) for s, v in d.items()} for k, d in raw.items()}


def save_policy(folder: Path, model: DiffusionModel, stats: dict[str, dict[str, torch.Tensor]],
                training: dict[str, Any]) -> None:
    """Writes policy.safetensors + policy.json into ``folder`` (created), replacing files atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(folder / (WEIGHTS + ".tmp")))
    meta = {"format": "armpilot-diffusion-v1", "config": json.loads(model.config.to_json()),
            "features": stored_features(model.config), "stats": _stats_to_json(stats), "training": training}
    (folder / (META + ".tmp")).write_text(json.dumps(meta, indent=2))
    (folder / (WEIGHTS + ".tmp")).replace(folder / WEIGHTS)
    (folder / (META + ".tmp")).replace(folder / META)


def input_features(config: DiffusionConfig) -> tuple[str, ...]:
    """The observation features a network with ``config`` reads."""
    return (*config.obs_keys, *((TRACKS, TRACKS_MASK) if config.use_tracks else ()), *config.image_keys,
            *((POINTS, POINTS_MASK) if config.use_points else ()))


def stored_features(config: DiffusionConfig) -> dict[str, dict[str, Any]]:
    """The feature contract's entries this checkpoint was trained on (inputs and the action), shapes resolved
    (a camera's H x W: the size its frames are resized to; any camera resolution is fed)."""
    sizes = {"J": config.action_dim, "K": NUM_TRACKS, "T": NUM_STEPS, "H": config.image_size, "W": config.image_size,
             "P": NUM_POINTS}
    return checkpoint_features((*input_features(config), ACTION), sizes)


def read_meta(folder: Path) -> dict[str, Any]:
    """policy.json of a checkpoint folder.

    Raises:
        CheckpointError: no folder, no file, or unreadable JSON.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"no diffusion checkpoint at '{folder}' (train one: armpilot train DATASET "
                              f"--output {folder})")
    path = folder / META
    if not path.is_file():
        raise CheckpointError(f"'{folder}' has no {META}: not a diffusion checkpoint folder")
    try:
        meta = json.loads(path.read_text())
        meta["config"] = DiffusionConfig.from_json(json.dumps(meta["config"]))
        meta.setdefault("features", stored_features(meta["config"]))  # checkpoints from before the contract
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"'{path}' is corrupt or from another format: {error}") from error
    return meta


def load_policy(folder: Path) -> tuple[DiffusionModel, dict[str, Any]]:
    """(model in eval mode, meta) from a checkpoint folder.

    Raises:
        CheckpointError: missing/corrupt files, or weights whose names or shapes do not fit the config.
    """
    folder = Path(folder)
    meta = read_meta(folder)
    model = DiffusionModel(meta["config"], _stats_from_json(meta["stats"]))
    path = folder / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"'{folder}' has {META} but no {WEIGHTS}")
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"'{path}' is corrupt (not readable as safetensors): {error}") from error
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    wrong = [f"{k}: file {tuple(weights[k].shape)} vs config {tuple(v.shape)}"
             for k, v in expected.items() if k in weights and weights[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise CheckpointError(f"'{path}' does not fit its {META}: missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}, shapes {wrong[:5]}")
    model.load_state_dict(weights)
    return model.eval(), meta


def save_train_state(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     info: dict[str, Any]) -> None:
    """Raw weights and AdamW moments as safetensors, step counters as JSON (for ``--resume``)."""
    folder = Path(folder)
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for name, value in state.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().contiguous().reshape(
                value.shape if torch.is_tensor(value) else ())
    save_file(tensors, str(folder / (TRAIN_WEIGHTS + ".tmp")))
    (folder / (TRAIN_META + ".tmp")).write_text(json.dumps({**info, "param_groups": opt["param_groups"]}))
    (folder / (TRAIN_WEIGHTS + ".tmp")).replace(folder / TRAIN_WEIGHTS)
    (folder / (TRAIN_META + ".tmp")).replace(folder / TRAIN_META)


def load_train_state(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restores what ``save_train_state`` wrote; returns its info dict (step, losses, ...)."""
    folder = Path(folder)
    if not (folder / TRAIN_WEIGHTS).is_file() or not (folder / TRAIN_META).is_file():
        raise CheckpointError(f"'{folder}' has no {TRAIN_WEIGHTS}/{TRAIN_META} to resume from")
    try:
        tensors = load_file(str(folder / TRAIN_WEIGHTS))
        info = json.loads((folder / TRAIN_META).read_text())
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"'{folder}': training state is corrupt: {error}") from error
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": info.pop("param_groups")})
    return info
