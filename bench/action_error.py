"""Diffusion checkpoints side by side on demonstrations none of them trained on: the sampled action error.

For each checkpoint, one chunk is sampled as the policy node samples it (DPM-Solver++, 3 steps, seeded)
for each of ``--frames`` frames spread evenly over the dataset, and compared with the demonstrated chunk:
mean |error| in rad (m for prismatic joints) over the chunk's unpadded frames and at its first frame
(``armpilot.policies.diffusion_training.sampled_action_error``, what training reports on its held-out
episodes). The first checkpoint is the baseline: every other one gets its ratio to it (below 1: nearer the
demonstrations). For scale, ``hold_still`` is the error of a chunk that stays at the latest joint state, and
``constant_velocity`` that of one that carries on at the latest joint step (first frame ``action_delay``
after the observation, then one step per ``action_dt``).
Record the dataset with seeds no checkpoint's data used, e.g.

    armpilot record --task push --scene randomized --object-source privileged --push-jitter 0.01 \\
        --linger 2 --episodes 20 --seed 60000 --width 320 --height 240 --output out/test_bags
    armpilot convert out/test_bags --output out/test_set
    python bench/action_error.py --dataset out/test_set \\
        --checkpoint checkpoints/diffusion_push_points out/wide_policy
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from figures import print_figures  # bench/ is on sys.path when run as a script

from armpilot.dataset.loader import LeRobotV3Dataset
from armpilot.features import ACTION, POINTS, POINTS_MASK, STATE, TRACKS, TRACKS_MASK
from armpilot.policies.diffusion_checkpoint import load_policy
from armpilot.policies.diffusion_config import DiffusionConfig
from armpilot.policies.diffusion_encoder import joint_step
from armpilot.policies.diffusion_sampling import ChunkSampler
from armpilot.policies.diffusion_training import sampled_action_error, stack_dataset


def error_of(checkpoint: Path, dataset: Path, frames: int, seed: int) -> dict[str, Any]:
    """{"chunk", "first"}: mean |sampled - demonstrated| action of ``checkpoint`` on up to ``frames`` frames of
    ``dataset`` ("frames": how many; "references": the same for ``HoldStill`` and ``ConstantVelocity``)."""
    model, _ = load_policy(checkpoint)
    config = model.config
    if config.action_space != "joint" or config.image_keys:
        raise SystemExit(f"{checkpoint}: only joint-space checkpoints without cameras are compared here")
    data = LeRobotV3Dataset(dataset, n_obs_steps=config.n_obs_steps, horizon=config.horizon)
    sensed = (*((POINTS, POINTS_MASK) if config.use_points else ()),
              *((TRACKS, TRACKS_MASK) if config.use_tracks else ()))
    tensors = stack_dataset(data, (*config.obs_keys, *sensed))
    index = torch.linspace(0, len(data) - 1, min(frames, len(data))).long()
    batch = {k: v[index] for k, v in tensors.items() if k != "episode_index"}
    references = {name: sampled_action_error(reference, batch, ChunkSampler(config), seed)  # type: ignore[arg-type]
                  for name, reference in (("hold_still", HoldStill()), ("constant_velocity", ConstantVelocity(config)))}
    return {**sampled_action_error(model, batch, ChunkSampler(config), seed), "frames": len(index),
            "references": references}


class HoldStill:
    """A "policy" whose chunk stays at the latest joint state: the scale the errors are read against."""

    training = False

    def eval(self) -> None:
        """Nothing to switch."""

    def train(self, mode: bool = True) -> None:
        """Nothing to switch."""

    def sample_batch(self, batch: dict[str, torch.Tensor], counts: list[int], sampler: Any, generator: Any):
        return batch[STATE][:, -1:, :].expand_as(batch[ACTION])


class ConstantVelocity(HoldStill):
    """A "policy" whose chunk carries on at the latest joint step, state[-1] - state[-2] per ``action_dt``."""

    def __init__(self, config: DiffusionConfig) -> None:
        self.lead = config.action_delay / config.action_dt  # frames from the observation to action frame 0

    def sample_batch(self, batch: dict[str, torch.Tensor], counts: list[int], sampler: Any, generator: Any):
        state = batch[STATE]
        frames = self.lead + torch.arange(batch[ACTION].shape[1], dtype=state.dtype)
        return state[:, -1:, :] + frames[None, :, None] * joint_step(state)[:, None, :]


def run(dataset: Path, checkpoints: list[Path], frames: int, seed: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"dataset": str(dataset)}
    base = None
    for number, checkpoint in enumerate(checkpoints):
        error = error_of(checkpoint, dataset, frames, seed)
        name = f"{number}_{checkpoint.name}"
        figures["frames"] = error["frames"]
        for reference, value in error["references"].items():
            figures[f"{reference}_chunk_rad"] = value["chunk"]
            figures[f"{reference}_first_frame_rad"] = value["first"]
        figures[f"{name}_chunk_rad"] = error["chunk"]
        figures[f"{name}_first_frame_rad"] = error["first"]
        if base is None:
            base = error
        else:
            figures[f"{name}_chunk_ratio_to_0"] = error["chunk"] / base["chunk"]
            figures[f"{name}_first_frame_ratio_to_0"] = error["first"] / base["first"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="LeRobotDataset v3 folder (held-out seeds)")
    parser.add_argument("--checkpoint", type=Path, nargs="+", required=True,
                        help="diffusion checkpoint folders; the first is the baseline")
    parser.add_argument("--frames", type=int, default=512, help="frames compared (default: 512)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the sampling noise (default: 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print_figures(run(args.dataset, args.checkpoint, args.frames, args.seed), args.json)


if __name__ == "__main__":
    main()
