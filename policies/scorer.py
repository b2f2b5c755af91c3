"""A small learned chunk scorer for the verifier (RoboMonkey / DeformPAM style), PyTorch, no ROS.

Trained to tell demonstrated chunks (positives) from synthetic perturbations of
them (negatives: offsets, drifts, jitter, over-speed). Input: a chunk relative
to the measured state, scaled by joint velocity limits. Output: a logit per
chunk; higher = more like a demonstration. Saved as safetensors + JSON config.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS = "scorer.safetensors"
CONFIG = "scorer.json"


@dataclass(frozen=True)
class ScorerConfig:
    """Shape and scaling: H points, J joints, dt (s), per-joint velocity limits for scaling."""

    horizon: int
    joints: int
    chunk_dt: float
    velocity_limits: tuple[float, ...]
    hidden: int = 64


class ChunkScorer(nn.Module):
    """MLP over chunk features: (B, H, J) chunks, (B, J) measured -> (B,) logits."""

    def __init__(self, config: ScorerConfig) -> None:
        super().__init__()
        self.config = config
        inputs = 2 * config.horizon * config.joints
        self.net = nn.Sequential(nn.Linear(inputs, config.hidden), nn.SiLU(), nn.Linear(config.hidden, config.hidden),
                                 nn.SiLU(), nn.Linear(config.hidden, 1))
        self.register_buffer("scale", torch.tensor(config.velocity_limits, dtype=torch.float32) * config.chunk_dt)

    def features(self, chunks: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
        """(B, H, J), (B, J) -> (B, 2 H J): offsets from the measured state and steps, in steps at full speed."""
        previous = torch.cat([measured[:, None, :], chunks[:, :-1]], dim=1)
        offsets = (chunks - measured[:, None, :]) / (self.scale * self.config.horizon)
        steps = (chunks - previous) / self.scale
        return torch.cat([offsets, steps], dim=2).flatten(1)

    def forward(self, chunks: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
        return self.net(self.features(chunks, measured)).squeeze(-1)


def make_negatives(chunks: np.ndarray, measured: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One synthetic failure per demonstrated chunk: offset, drift, jitter or over-speed (arm joints only)."""
    negatives = chunks.copy()
    arm = chunks.shape[2] - 1
    ramp = np.linspace(0.0, 1.0, chunks.shape[1] + 1)[1:, None]
    for k in range(len(chunks)):
        kind = rng.integers(0, 4)
        if kind == 0:
            negatives[k, :, :arm] += rng.normal(0.0, 0.08, arm)
        elif kind == 1:
            negatives[k, :, :arm] += ramp * rng.normal(0.0, 0.25, arm)
        elif kind == 2:
            negatives[k, :, :arm] += rng.normal(0.0, 0.03, (chunks.shape[1], arm))
        else:
            negatives[k] = measured[k] + 2.5 * (chunks[k] - measured[k])
    return negatives


def train_scorer(chunks: np.ndarray, measured: np.ndarray, config: ScorerConfig, epochs: int = 200,
                 seed: int = 0, progress=None) -> tuple[ChunkScorer, list[float]]:
    """Fit on demonstrated (M, H, J) chunks with their (M, J) measured states; returns the model and losses."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ChunkScorer(config)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    positives = torch.tensor(chunks, dtype=torch.float32)
    states = torch.tensor(measured, dtype=torch.float32)
    losses = []
    for _ in (progress(range(epochs)) if progress else range(epochs)):
        negatives = torch.tensor(make_negatives(chunks, measured, rng), dtype=torch.float32)
        logits = model(torch.cat([positives, negatives]), torch.cat([states, states]))
        labels = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))])
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return model.eval(), losses


def save_scorer(model: ChunkScorer, folder: str | Path) -> None:
    """Write ``scorer.safetensors`` and ``scorer.json`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / WEIGHTS))
    (folder / CONFIG).write_text(json.dumps(asdict(model.config), indent=2))


def load_scorer(folder: str | Path) -> ChunkScorer:
    """Load a scorer saved by ``save_scorer`` (never unpickles).

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: when the weights do not fit the config.
    """
    folder = Path(folder)
    for name in (WEIGHTS, CONFIG):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"learned scorer: {folder / name} does not exist (train one with "
                                    "`armpilot train-scorer --output DIR`)")
    raw = json.loads((folder / CONFIG).read_text())
    config = ScorerConfig(**{**raw, "velocity_limits": tuple(raw["velocity_limits"])})
    model = ChunkScorer(config)
    try:
        model.load_state_dict(load_file(str(folder / WEIGHTS)))
    except RuntimeError as error:
        raise ValueError(f"learned scorer in {folder}: weights do not match {CONFIG}: {error}") from error
    return model.eval()


def as_verifier_scorer(model: ChunkScorer):
    """A ``(chunks (N, H', J), measured (J,)) -> (N,)`` numpy callable for the verifier (pads short chunks)."""

    def score(chunks: np.ndarray, measured: np.ndarray) -> np.ndarray:
        horizon = model.config.horizon
        if chunks.shape[1] < horizon:  # points already past were dropped: repeat the last one
            pad = np.repeat(chunks[:, -1:], horizon - chunks.shape[1], axis=1)
            chunks = np.concatenate([chunks, pad], axis=1)
        with torch.no_grad():
            c = torch.tensor(chunks[:, :horizon], dtype=torch.float32)
            m = torch.tensor(np.broadcast_to(measured, (len(chunks), len(measured))).copy(), dtype=torch.float32)
            return torch.sigmoid(model(c, m)).numpy()

    return score
