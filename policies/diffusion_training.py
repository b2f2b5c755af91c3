"""DDPM training of the diffusion policy on a LeRobotDataset v3 folder (PyTorch, no ROS).

The (small) dataset is stacked into tensors once; batches are drawn with a
seeded generator; AdamW with warm-up + cosine learning rate; EMA weights via
``torch.optim.swa_utils`` (what is saved as the policy); checkpoints every
``save_every`` steps (policy + resumable training state); a held-out episode
split gives a validation loss and the error of chunks sampled as the node samples them
(``sampled_action_error``: the denoising loss does not rank closed-loop success, Chi et al.).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from armpilot.dataset.loader import LeRobotV3Dataset
from armpilot.policies.diffusion_checkpoint import load_policy, load_train_state, save_policy, save_train_state
from armpilot.features import POINTS, POINTS_MASK, TRACKS, TRACKS_MASK
from armpilot.policies.diffusion_config import (ACTION, ACTION_OFFSET, GOAL, OBJECT, STATE, STATE_STEP,
                                                DiffusionConfig)
from armpilot.policies.diffusion_encoder import cloud_in_frame, joint_step
from armpilot.policies.diffusion_model import DiffusionModel
from armpilot.policies.diffusion_sampling import ChunkSampler
from armpilot.policies.tool_frame import ToolFrame
from armpilot.robot import ArmModel
from armpilot.robot_profile import DEFAULT_ROBOT, load_profile


@dataclass(frozen=True)
class TrainOptions:
    """What ``armpilot train`` does. Steps are optimiser steps; lr in 1/step units of AdamW."""

    dataset: Path
    output: Path
    steps: int = 3000
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 1e-6
    warmup_steps: int = 200
    ema_decay: float = 0.995
    save_every: int = 1000
    validation_fraction: float = 0.05
    seed: int = 0
    resume: bool = False
    threads: int = 0
    config: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> torch.Generator:
    """Seeds Python, numpy and torch; returns a torch generator for batches and noise."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def stack_dataset(dataset: LeRobotV3Dataset, keys: Iterable[str]) -> dict[str, torch.Tensor]:
    """Every frame's item stacked: key -> (N, ...) tensors, plus ``episode_index`` (N,)."""
    items = [dataset[i] for i in range(len(dataset))]
    out = {k: torch.stack([item[k] for item in items]) for k in (*keys, ACTION, "action_is_pad")}
    episode_of = np.zeros(len(dataset), np.int64)
    for ep in dataset.episodes:
        episode_of[ep["dataset_from_index"]:ep["dataset_to_index"]] = ep["episode_index"]
    out["episode_index"] = torch.from_numpy(episode_of)
    return out


def offset_stats(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Statistics of action frames minus the latest observed joint state, over unpadded frames."""
    return feature_stats(tensors[ACTION] - tensors[STATE][:, -1:, :], ~tensors["action_is_pad"])


def feature_stats(values: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Statistics over every leading dimension of (..., D) ``values`` (where ``valid`` (...) is True)."""
    rows = values.reshape(-1, values.shape[-1]) if valid is None else values[valid]
    return {"min": rows.min(0).values, "max": rows.max(0).values, "mean": rows.mean(0), "std": rows.std(0)}


def to_tool_space(tensors: dict[str, torch.Tensor], frame: ToolFrame) -> dict[str, torch.Tensor]:
    """The stacked dataset with state, actions and every position in tool space (``tool_frame``); the frames
    and masks that are not positions as they are."""
    arrays = {k: v.numpy() for k, v in tensors.items()}
    converted, anchor = frame.observation(arrays)
    converted[ACTION] = frame.actions(arrays[ACTION], anchor)
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in converted.items()}


def points_stats(tensors: dict[str, torch.Tensor], frame: str = "world") -> dict[str, torch.Tensor]:
    """Per-axis statistics (3,) of every valid point of the training clouds in ``points_frame`` ``frame``, m
    (``normalize_points``)."""
    if not tensors[POINTS_MASK].any():
        raise ValueError("the dataset's clouds hold no valid point: nothing to normalise the cloud with")
    points = tensors[POINTS] if frame == "world" else cloud_in_frame(tensors[POINTS], tensors[GOAL], frame)
    return feature_stats(points, tensors[POINTS_MASK])


#: Validation samples whose sampled chunks are compared with the demonstrations' (``sampled_action_error``).
ACTION_ERROR_SAMPLES = 256


def sampled_action_error(model: DiffusionModel, batch: dict[str, torch.Tensor], sampler: ChunkSampler,
                         seed: int = 1) -> dict[str, float]:
    """Mean |sampled - demonstrated| action of one chunk per sample of ``batch`` (B samples: observations,
    ``action`` (B, H, A), ``action_is_pad`` (B, H)), in action units (rad, m; tool units in tool space), over
    the unpadded frames (``chunk``) and at the first frame (``first``, the one the controller meets first)."""
    was_training = model.training
    model.eval()  # the image crop centred, as at inference
    try:
        chunks = model.sample_batch(batch, [1] * len(batch[ACTION]), sampler, torch.Generator().manual_seed(seed))
    finally:
        model.train(was_training)
    error = (chunks - batch[ACTION]).abs().mean(dim=-1)  # (B, H)
    valid = ~batch["action_is_pad"]
    return {"chunk": float(error[valid].mean()), "first": float(error[:, 0][valid[:, 0]].mean())}


def learning_rate(step: int, options: TrainOptions) -> float:
    """Linear warm-up, then cosine decay to 0 at ``options.steps``."""
    if step < options.warmup_steps:
        return options.learning_rate * (step + 1) / options.warmup_steps
    progress = (step - options.warmup_steps) / max(1, options.steps - options.warmup_steps)
    return options.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def split_episodes(episodes: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) frame index tensors; whole episodes go to validation."""
    unique = np.unique(episodes.numpy())
    count = int(round(fraction * len(unique))) if len(unique) > 1 else 0
    held = np.random.default_rng(seed).choice(unique, size=count, replace=False) if count else np.array([], int)
    is_val = np.isin(episodes.numpy(), held)
    return torch.from_numpy(np.flatnonzero(~is_val)), torch.from_numpy(np.flatnonzero(is_val))


#: robot_type values of datasets written before robot profiles: the name they stand for ("" = unknown).
LEGACY_ROBOT_TYPES = {"armpilot_arm": "armpilot", "unknown": ""}


def build_config(info: dict[str, Any], overrides: dict[str, Any]) -> DiffusionConfig:
    """A DiffusionConfig for a dataset's joints, rate and features (``info``: meta/info.json; ``overrides`` win)."""
    features = info["features"]
    keys = tuple(k for k in (STATE, OBJECT, GOAL) if k in features)
    needed = (*overrides.get("image_keys", ()), *((POINTS,) if overrides.get("use_points") else ()),
              *((TRACKS,) if overrides.get("use_tracks") else ()))
    missing = [k for k in needed if k not in features]
    if missing:
        raise ValueError(f"the dataset has no {missing} (its features: {sorted(features)})")
    robot = str(info.get("robot_type", ""))
    base = DiffusionConfig(joint_names=tuple(features[STATE]["names"]), obs_keys=keys,
                           action_dt=1.0 / float(info["fps"]), robot=LEGACY_ROBOT_TYPES.get(robot, robot))
    return replace(base, **overrides)


def train(options: TrainOptions, progress: Callable[[range], Iterable[int]] = iter,
          on_step: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Trains (or resumes) and writes the checkpoint into ``options.output``; returns a report dict."""
    started = time.monotonic()
    if options.threads:
        torch.set_num_threads(options.threads)
    generator = seed_everything(options.seed)
    config = build_config(json.loads((Path(options.dataset) / "meta" / "info.json").read_text()), options.config)
    dataset = LeRobotV3Dataset(options.dataset, n_obs_steps=config.n_obs_steps, horizon=config.horizon)
    sensed = (*((POINTS, POINTS_MASK) if config.use_points else ()),
              *((TRACKS, TRACKS_MASK) if config.use_tracks else ()))
    tensors = stack_dataset(dataset, (*config.obs_keys, *sensed))
    for key in config.image_keys:  # (N, 3, S, S) uint8: frame i is the latest image of sample i
        tensors[key] = torch.from_numpy(dataset.square_video(key, config.image_size, config.image_region))
    train_index, val_index = split_episodes(tensors["episode_index"], options.validation_fraction, options.seed)
    if config.action_space == "tool":
        frame = ToolFrame(ArmModel(load_profile(config.robot or DEFAULT_ROBOT)), config.joint_names)
        config = replace(config, tool_passthrough=frame.passthrough)
        tensors = to_tool_space(tensors, frame)
        stats = {k: feature_stats(tensors[k]) for k in config.obs_keys}
        stats[ACTION] = feature_stats(tensors[ACTION], ~tensors["action_is_pad"])
    else:
        stats = {k: dataset.stats[k] for k in (*config.obs_keys, ACTION)}
    if config.relative_actions:
        stats[ACTION_OFFSET] = offset_stats(tensors)
    if config.state_velocity:
        stats[STATE_STEP] = feature_stats(joint_step(tensors[STATE]))
    if config.use_points and config.normalize_points:
        stats[POINTS] = points_stats(tensors, config.points_frame)
    model = DiffusionModel(config, stats)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(options.ema_decay), use_buffers=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    output = Path(options.output)
    output.mkdir(parents=True, exist_ok=True)
    start_step, losses, val_losses, action_errors = 0, [], [], []
    if options.resume:
        info = load_train_state(output, model, optimizer)
        start_step, losses, val_losses = info["step"], info["losses"], info["val_losses"]
        action_errors = info.get("action_errors", [])
        ema.module.load_state_dict(load_policy(output)[0].state_dict())
    batch_keys = (*config.obs_keys, *config.image_keys, *sensed, ACTION, "action_is_pad")

    def batch_of(index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: tensors[k][index] for k in batch_keys}

    def validation_loss() -> float | None:
        if not len(val_index):
            return None
        with torch.no_grad():
            return float(ema.module.loss(batch_of(val_index[:2048]), torch.Generator().manual_seed(1)))

    def action_error() -> dict[str, float]:  # called with held-out episodes only, as validation_loss
        spread = val_index[torch.linspace(0, len(val_index) - 1, min(len(val_index), ACTION_ERROR_SAMPLES)).long()]
        return sampled_action_error(ema.module, batch_of(spread), ChunkSampler(config))

    def save(step: int) -> None:
        training = {"dataset": str(options.dataset), "frames": len(dataset), "episodes": len(dataset.episodes),
                    "steps": step, "seed": options.seed, "final_loss": losses[-1] if losses else None,
                    "validation_loss": val_losses[-1][1] if val_losses else None,
                    "validation_action_error": action_errors[-1][1] if action_errors else None}
        save_policy(output, ema.module, stats, training)
        save_train_state(output, model, optimizer, {"step": step, "losses": losses, "val_losses": val_losses,
                                                    "action_errors": action_errors})

    model.train()
    for step in progress(range(start_step, options.steps)):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, options)
        index = train_index[torch.randint(len(train_index), (options.batch_size,), generator=generator)]
        loss = model.loss(batch_of(index), generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        ema.update_parameters(model)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
        if (step + 1) % options.save_every == 0 or step + 1 == options.steps:
            val = validation_loss()
            if val is not None:
                val_losses.append((step + 1, val))
                action_errors.append((step + 1, action_error()))
            save(step + 1)
    seconds = time.monotonic() - started
    return {"output": str(output), "dataset": str(options.dataset), "episodes": len(dataset.episodes),
            "frames": len(dataset), "validation_episodes": int(len(np.unique(tensors["episode_index"][val_index]))),
            "steps": options.steps, "resumed_from_step": start_step, "batch_size": options.batch_size,
            "parameters": sum(p.numel() for p in model.parameters()),
            "final_loss": float(np.mean(losses[-50:])) if losses else None,
            "validation_loss": val_losses[-1][1] if val_losses else None,
            "validation_action_error": action_errors[-1][1] if action_errors else None,
            "seconds": round(seconds, 1), "threads": torch.get_num_threads(), "losses": losses,
            "val_losses": val_losses, "action_errors": action_errors}
