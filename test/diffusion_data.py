"""A small synthetic LeRobotDataset v3 for diffusion-policy tests: the arm moves joint 0 toward the goal's x.

Each episode: goal x ~ U(-0.5, 0.5); joint 0 starts at 0 and moves 0.05 rad per
frame toward it (then holds); the action is the next frame's state. Other
joints stay put; the gripper is constant (a feature with zero range). The
camera sees a white square on the left half for a goal at negative x, on the
right half otherwise, the cloud holds a small cluster on the goal's side of
y = 0 and one motion track moves toward the goal's side (so a policy can find
the goal's side from pixels, points or tracks alone).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from armpilot.dataset.lerobot_v3 import EpisodeFrames, LeRobotV3Writer
from armpilot.dataset.points_feature import NUM_POINTS
from armpilot.dataset.tracks_feature import NUM_STEPS, NUM_TRACKS
from armpilot.robot import CONTROLLED_JOINTS

FPS = 15
STEP = 0.05
IMAGE_SIDE = 32  # px


def goal_image(goal_x: float) -> np.ndarray:
    """(IMAGE_SIDE, IMAGE_SIDE, 3) uint8: a white square on the goal's side (left for x < 0)."""
    image = np.zeros((IMAGE_SIDE, IMAGE_SIDE, 3), np.uint8)
    left = 4 if goal_x < 0 else IMAGE_SIDE // 2 + 4
    image[12:20, left:left + 8] = 255
    return image


def goal_cloud(goal_x: float, side: float = 0.2, half_width: float = 0.03) -> np.ndarray:
    """(NUM_POINTS, 3) float32: 64 points within ``half_width`` m of (0.4, +-``side``, 0.05) m on the goal's
    side, NaN rows after."""
    cloud = np.full((NUM_POINTS, 3), np.nan, np.float32)
    centre = np.array([0.4, -side if goal_x < 0 else side, 0.05], np.float32)
    cloud[:64] = centre + np.random.default_rng(0).uniform(-half_width, half_width, (64, 3)).astype(np.float32)
    return cloud


def goal_tracks(goal_x: float) -> np.ndarray:
    """(NUM_TRACKS, NUM_STEPS, 3) float32: track 0 moves from y = 0 to 0.2 m toward the goal's side (left for
    x < 0) over its steps, the others are missing (NaN)."""
    tracks = np.full((NUM_TRACKS, NUM_STEPS, 3), np.nan, np.float32)
    side = -1.0 if goal_x < 0 else 1.0
    tracks[0] = np.stack([np.full(NUM_STEPS, 0.4), side * np.linspace(0.0, 0.2, NUM_STEPS),
                          np.full(NUM_STEPS, 0.05)], axis=-1)
    return tracks


def episode(goal_x: float, frames: int = 24, cloud: tuple[float, float] = (0.2, 0.03)) -> EpisodeFrames:
    """One episode as described in the module doc; ``cloud``: ``goal_cloud``'s side and half width, m."""
    q0 = np.array([0.0, -0.3, 1.6, 0.0, 1.2, 0.0, 0.04], np.float32)
    target = np.clip(np.arange(frames + 1) * STEP * np.sign(goal_x), -abs(goal_x), abs(goal_x))
    states = np.repeat(q0[None], frames + 1, axis=0)
    states[:, 0] = target
    goal = np.tile(np.array([goal_x, 0.1, 0.05], np.float32), (frames, 1))
    obj = np.tile(np.array([goal_x, 0.1, 0.05, 0, 0, 0, 1], np.float32), (frames, 1))
    return EpisodeFrames(task="reach", timestamp=np.arange(frames, dtype=np.float32) / FPS,
                         state=states[:-1], action=states[1:], object=obj, success=np.zeros(frames, bool),
                         color=np.repeat(goal_image(goal_x)[None], frames, axis=0),
                         depth=np.full((frames, IMAGE_SIDE, IMAGE_SIDE), 1000, np.uint16),
                         goal=goal, points=np.repeat(np.nan_to_num(goal_cloud(goal_x, *cloud))[None], frames, axis=0),
                         points_mask=np.repeat(np.isfinite(goal_cloud(goal_x, *cloud)).all(-1)[None], frames,
                                               axis=0),
                         tracks=np.repeat(np.nan_to_num(goal_tracks(goal_x))[None], frames, axis=0),
                         tracks_mask=np.repeat(np.isfinite(goal_tracks(goal_x)).all(-1)[None], frames, axis=0))


def write_dataset(root: Path, episodes: int = 24, seed: int = 0, cloud: tuple[float, float] = (0.2, 0.03)) -> Path:
    """Writes the dataset into ``root`` (``cloud``: see ``episode``); returns it."""
    rng = np.random.default_rng(seed)
    writer = LeRobotV3Writer(root, FPS, CONTROLLED_JOINTS)
    writer.with_points = writer.with_tracks = True
    for goal_x in rng.uniform(-0.5, 0.5, episodes):
        writer.add_episode(episode(float(goal_x), cloud=cloud))
    writer.finalize()
    return root


#: A diffusion network small enough to train in seconds on a CPU.
TINY = {"down_dims": (16, 32), "horizon": 8, "obs_embed_dim": 32, "step_embed_dim": 16, "n_groups": 4}


def train_tiny(root: Path, episodes: int = 8, steps: int = 30, batch_size: int = 16,
               cloud: tuple[float, float] = (0.2, 0.03), **config) -> Path:
    """A TINY checkpoint (``config`` overrides added) trained on ``write_dataset`` data under ``root``."""
    from armpilot.policies.diffusion_training import TrainOptions, train

    dataset = write_dataset(root / "dataset", episodes=episodes, cloud=cloud)
    options = TrainOptions(dataset, root / "policy", steps=steps, batch_size=batch_size, save_every=steps, threads=1,
                           config=TINY | config)
    return Path(train(options)["output"])
