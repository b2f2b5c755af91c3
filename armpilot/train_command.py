"""``armpilot train``: a LeRobotDataset v3 folder -> a diffusion-policy checkpoint, loss plot and report."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from armpilot.features import COLOR, GOAL, OBJECT, POINTS, STATE, TRACKS
from armpilot.policies.diffusion_config import ACTION_SPACES, POINT_ENCODERS, POINT_FRAMES

#: ``--inputs`` names -> feature contract keys.
INPUTS = {"state": STATE, "object": OBJECT, "goal": GOAL, "color": COLOR, "points": POINTS,
          "tracks": TRACKS}


#: The encoder's crop as a share of the frame when --image-crop is not given: 84 of 96 px, as Diffusion Policy.
CROP_SHARE = 0.875


def input_overrides(inputs: str, image_size: int, image_crop: int | None = None,
                    image_region: str = "") -> dict[str, Any]:
    """``--inputs`` ("state,goal,color") -> DiffusionConfig overrides; {} for "" (the dataset's low-dim features).
    ``image_crop`` px (default ``CROP_SHARE`` of ``image_size``); ``image_region`` "left,top,right,bottom"
    fractions of the frame ("" = the whole frame). ValueError for an unknown input or a bad region."""
    from armpilot.policies.diffusion_config import IMAGE_KEYS

    names = [name.strip() for name in inputs.split(",") if name.strip()]
    if not names:
        if image_region.strip():
            raise ValueError("--image-region crops camera frames: give --inputs with a camera (e.g. state,goal,color)")
        return {}
    unknown = [name for name in names if name not in INPUTS]
    if unknown:
        raise ValueError(f"unknown --inputs {unknown}; known: {list(INPUTS)}")
    keys = [INPUTS[name] for name in names]
    if image_region.strip() and not set(keys) & set(IMAGE_KEYS):
        raise ValueError(f"--image-region crops camera frames, and --inputs '{inputs}' has no camera (add color)")
    return {"obs_keys": tuple(k for k in keys if k not in (*IMAGE_KEYS, POINTS, TRACKS)),
            "use_points": POINTS in keys, "use_tracks": TRACKS in keys,
            "image_keys": tuple(k for k in keys if k in IMAGE_KEYS), "image_size": image_size,
            "image_crop": image_crop or round(image_size * CROP_SHARE), **_region(image_region)}


def _region(text: str) -> dict[str, tuple[float, ...]]:
    """"left,top,right,bottom" -> {"image_region": (4 floats)}; {} for ""."""
    from armpilot.policies.diffusion_config import check_region

    if not text.strip():
        return {}
    try:
        region = tuple(float(value) for value in text.split(","))
    except ValueError:
        raise ValueError(f"--image-region '{text}': give four numbers, e.g. 0.2,0.25,0.8,0.9") from None
    check_region(region)
    return {"image_region": region}


def plot_losses(losses: list[float], val_losses: list[tuple[int, float]], path: Path, title: str) -> None:
    """Training loss (raw and a 50-step running mean) and validation loss against step, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    steps = np.arange(1, len(losses) + 1)
    axis.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8, label="train (per step)")
    if len(losses) >= 50:
        smooth = np.convolve(losses, np.ones(50) / 50, mode="valid")
        axis.plot(steps[49:], smooth, color="tab:blue", label="train (50-step mean)")
    if val_losses:
        axis.plot(*zip(*val_losses), "o-", color="tab:orange", label="validation (EMA weights)")
    axis.set(xlabel="optimiser step", ylabel="loss", yscale="log", title=title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def train_command(options: Any) -> dict[str, Any]:
    """Runs training with a progress bar; writes loss.png and report.json next to the checkpoint."""
    from armpilot.policies.diffusion_training import train

    with tqdm(total=options.steps, desc="training", unit="step", dynamic_ncols=True) as bar:
        def on_step(step: int, loss: float) -> None:
            bar.n = step + 1
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss:.4f}")  # refreshes the bar

        report = train(options, on_step=on_step)
    output = Path(options.output)
    plot_losses(report.pop("losses"), report["val_losses"], output / "loss.png",
                f"diffusion policy on {Path(options.dataset).name}")
    report["loss_plot"] = str(output / "loss.png")
    (output / "report.json").write_text(json.dumps(report, indent=2))
    return report


def train_vla_command(args: Any) -> int:
    """``armpilot train-vla``: fine-tune with a progress bar (rank 0), then a loss plot and report.json."""
    from armpilot.policies.vla_training import VLATrainOptions, finetune_vla

    options = VLATrainOptions(args.dataset, args.output, args.base, args.steps, args.batch_size, seed=args.seed,
                              action_tokens=args.action_tokens)
    with tqdm(total=options.steps, desc="fine-tuning", unit="step", dynamic_ncols=True) as bar:
        def on_step(step: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

        report = finetune_vla(options, on_step)
    losses = report.pop("losses")
    if int(os.environ.get("RANK", "0")) == 0:
        plot_losses(losses, [], Path(options.output) / "loss.png", f"VLA fine-tuning on {Path(options.dataset).name}")
        (Path(options.output) / "report.json").write_text(json.dumps(report, indent=2))
    print("\n".join(f"  {key:<14} {value}" for key, value in report.items()))
    return 0


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """The ``armpilot train`` subcommand and its options."""
    train = sub.add_parser(
        "train", help="train a diffusion policy on a converted dataset (safetensors + JSON checkpoint)",
        description="DDPM-train a conditional 1D U-Net diffusion policy on a LeRobotDataset v3 folder written by "
        "'armpilot convert'. Observations: joint state history, perceived object pose, task goal; actions: "
        "16 commanded joint-position frames. Saves OUTPUT/policy.safetensors + policy.json (EMA weights), a "
        "resumable training state, loss.png and report.json. Seeded: the same command gives the same weights.")
    train.add_argument("dataset", type=Path, help="LeRobotDataset v3 folder (from armpilot convert)")
    train.add_argument("--output", type=Path, required=True, help="checkpoint folder")
    train.add_argument("--steps", type=int, default=3000, help="optimiser steps (default: 3000)")
    train.add_argument("--batch-size", type=int, default=128, help="frames per batch (default: 128)")
    train.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (default: 1e-3)")
    train.add_argument("--seed", type=int, default=0, help="seed of batches, noise and weights (default: 0)")
    train.add_argument("--resume", action="store_true", help="continue from OUTPUT's training state")
    train.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    train.add_argument("--down-dims", default="32,64,128", help="U-Net widths per level (default: 32,64,128)")
    train.add_argument("--prediction", choices=("epsilon", "sample"), default="sample",
                       help="what the network predicts: the clean chunk or the noise (default: sample)")
    train.add_argument("--prefix-frames", type=int, default=0,
                       help="training-time real-time chunking: condition on a random committed prefix of up to "
                            "this many action frames, for transition:=prefix (default: 0 = off)")
    train.add_argument("--inputs", default="",
                       help="what the policy sees, comma-separated among " + ", ".join(INPUTS) + " (color: the "
                            "camera through a ResNet-18-style encoder; points: the filtered cloud through a PointNet; "
                            "tracks: /perception/tracks, one PointNet token per track, recorded with the tracks "
                            "node running; default: the dataset's state, object, goal)")
    train.add_argument("--image-size", type=int, default=96,
                       help="camera frames are resized to this square, px (default: 96)")
    train.add_argument("--image-crop", type=int, default=None,
                       help="the encoder sees a random crop of this side while training, the centred one at "
                            f"inference, px (default: {CROP_SHARE:g} of --image-size: 84 of 96, as Diffusion "
                            "Policy). Every pixel of shift moves where the objects appear against a goal given in "
                            "metres: with a goal on /policy/goal, crop a few px only (e.g. 92 of 96)")
    train.add_argument("--image-region", default="", metavar="LEFT,TOP,RIGHT,BOTTOM",
                       help="resize only this part of each camera frame (fractions of its width and height, e.g. "
                            "0.2,0.25,0.8,0.9 for the table in armpilot's sim camera): a small image then has "
                            "more pixels on the objects; the checkpoint keeps it for inference (default: the "
                            "whole frame)")
    train.add_argument("--point-encoder", choices=POINT_ENCODERS, default=POINT_ENCODERS[0],
                       help="the cloud's encoder with --inputs ...,points: pointnet (DP3: a shared MLP and a max "
                            "pool) or keypoints (local features over each point's nearest neighbours and 3D soft "
                            "keypoints, where the objects are as precisely as the cloud says; about 1.3x the "
                            "training time on the push data) (default: pointnet)")
    train.add_argument("--points-frame", choices=POINT_FRAMES, default=POINT_FRAMES[0],
                       help="with --inputs ...,points: world (the cloud as perceived, in the base frame) or goal "
                            "(each point an offset from the goal, so where the object is against where it must "
                            "go is what the PointNet sees; needs goal in --inputs) (default: world)")
    train.add_argument("--relative-actions", action="store_true",
                       help="predict action frames as offsets from the latest joint state (each chunk starts "
                            "where the arm is; helps arms with wide joint ranges, e.g. a Panda)")
    train.add_argument("--state-velocity", action="store_true",
                       help="also give the network the latest joint step (state[-1] - state[-2]) scaled by its "
                            "own statistics, so that where the arm is heading reaches it clearly")
    train.add_argument("--action-space", choices=ACTION_SPACES, default=ACTION_SPACES[0],
                       help="joint: predict joint positions; tool: predict the tool's pose, its position as an "
                            "offset from where the tool is, and see every position (goal, object, cloud) "
                            "from there too, so a scene shifted on the table looks the same; IK on the "
                            "robot profile turns the chunk into joints (default: joint)")


def train_from_args(args: argparse.Namespace) -> int:
    """``armpilot train``: options -> training run; prints the report, 1 on a bad dataset or checkpoint."""
    from armpilot.policies.diffusion_checkpoint import CheckpointError
    from armpilot.policies.diffusion_training import TrainOptions

    config = {"down_dims": tuple(int(d) for d in args.down_dims.split(",")), "prediction_type": args.prediction,
              "prefix_frames": args.prefix_frames, "relative_actions": args.relative_actions,
              "action_space": args.action_space, "state_velocity": args.state_velocity,
              "point_encoder": args.point_encoder, "points_frame": args.points_frame}
    try:
        config |= input_overrides(args.inputs, args.image_size, args.image_crop, args.image_region)
        if args.points_frame != POINT_FRAMES[0] and not config.get("use_points"):
            raise ValueError(f"--points-frame {args.points_frame} moves the cloud: add points to --inputs")
        if args.point_encoder != POINT_ENCODERS[0] and not config.get("use_points"):
            raise ValueError(f"--point-encoder {args.point_encoder} encodes the cloud: add points to --inputs "
                             "(e.g. state,goal,points)")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    options = TrainOptions(args.dataset, args.output, steps=args.steps, batch_size=args.batch_size,
                           learning_rate=args.lr, seed=args.seed, resume=args.resume, threads=args.threads,
                           config=config)
    try:
        report = train_command(options)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(f"  {key:<22} {value}" for key, value in report.items()
                    if key not in ("val_losses", "action_errors")))
    return 0


def add_train_vla_parser(sub: argparse._SubParsersAction) -> None:
    """The ``armpilot train-vla`` subcommand and its options."""
    vla = sub.add_parser(
        "train-vla", help="fine-tune a VLA (Hugging Face vision-language model + action tokens) on a dataset",
        description="Next-token training on the action tokens (binning or DCT) of a LeRobotDataset v3 (camera image, "
        "instruction from the task, joint state as context). Without --base a tiny random PaliGemma is built "
        "(no download). Under torchrun it trains with DistributedDataParallel: torchrun --nproc_per_node 2 "
        "$(which armpilot) train-vla DATASET --output DIR")
    vla.add_argument("dataset", type=Path, help="LeRobotDataset v3 folder (from armpilot convert)")
    vla.add_argument("--output", type=Path, required=True, help="model folder to write")
    vla.add_argument("--base", type=Path, default=None, help="local model folder to start from (default: tiny)")
    vla.add_argument("--steps", type=int, default=300, help="optimiser steps (default: 300)")
    vla.add_argument("--batch-size", type=int, default=32, help="examples per step and rank (default: 32)")
    vla.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    vla.add_argument("--action-tokens", choices=("binning", "dct"), default="binning",
                     help="tokens of a tiny VLA's actions: binning (256 bins per joint and step, H x J tokens) or dct "
                     "(FAST-like: DCT coefficients over time, low frequencies first, ended early; default: binning)")
