"""Samplers for the diffusion policy, on diffusers' schedulers (PyTorch, no ROS).

- ``ddpm``: the training chain, every one of T steps (ancestral).
- ``ddim``: DDIM with k steps (deterministic, eta = 0).
- ``dpm``: DPM-Solver++ (2nd-order multistep) in k steps; 3 is the few-step setting.
- ``streaming``: warm start (Streaming Diffusion Policy's idea of rolling a
  partially denoised chunk forward): the previous chunk, shifted by the time
  that passed and padded with its last frame, is noised to an intermediate
  step and denoised from there with DDIM, so only the last few steps run.

Every sampler draws N chunks in one batch: ``denoise`` takes (N, H, A)
starting noise; the denoiser gets the step as a (1,) tensor shared by all N.

Inpainting (Real-Time Chunking at inference): a ``guide`` of known frames
(H, A) and weights (H,) is imposed after every step, noised to the level of
the next step (RePaint-style replacement; the same starting noise, so a
deterministic sampler stays deterministic) and exactly at the end: frames of
weight 1 equal the known ones, the soft-weighted overlap is pulled toward
them, and the denoiser shapes the free frames to continue them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

from armpilot.policies.diffusion_config import SAMPLERS, DiffusionConfig

#: (noisy chunk (N, H, A), step (1,)) -> model output (N, H, A).
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: (known normalised frames (H, A), weights (H,) in [0, 1]) to inpaint.
Guide = tuple[torch.Tensor, torch.Tensor]


def make_scheduler(config: DiffusionConfig, sampler: str):
    """A fresh diffusers scheduler for ``sampler`` with the training noise schedule."""
    common = dict(num_train_timesteps=config.num_train_timesteps, beta_schedule=config.beta_schedule,
                  prediction_type=config.prediction_type)
    if sampler == "ddpm":
        return DDPMScheduler(**common, clip_sample=True, variance_type="fixed_small")
    if sampler in ("ddim", "streaming"):
        return DDIMScheduler(**common, clip_sample=True, set_alpha_to_one=True)
    if sampler == "dpm":
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2,
                                           lower_order_final=True)
    raise ValueError(f"unknown sampler {sampler!r}; use one of {SAMPLERS}")


class ChunkSampler:
    """Denoises N action chunks with one scheduler; ``steps`` = inference steps (ddpm: always T)."""

    def __init__(self, config: DiffusionConfig, sampler: str = "dpm", steps: int = 3,
                 start_fraction: float = 0.25) -> None:
        if steps < 1:
            raise ValueError("sampler steps must be >= 1")
        if not 0.0 < start_fraction <= 1.0:
            raise ValueError("start_fraction must be in (0, 1]")
        self.config, self.name = config, sampler
        self.steps = config.num_train_timesteps if sampler == "ddpm" else steps
        self.start_fraction = start_fraction
        self.scheduler = make_scheduler(config, sampler)

    @torch.no_grad()
    def denoise(self, denoiser: Denoiser, noise: torch.Tensor, warm: torch.Tensor | None = None,
                generator: torch.Generator | None = None, guide: Guide | None = None) -> torch.Tensor:
        """(N, H, A) noise -> (N, H, A) normalised chunks.

        ``warm`` (streaming only): (N, H, A) normalised previous chunk, already
        shifted; it is noised to ``start_fraction`` of T and only the remaining
        steps run. Without it streaming runs the full k-step DDIM chain.
        ``guide``: frames to inpaint (module docstring).
        """
        scheduler = self.scheduler
        scheduler.set_timesteps(self.steps, device=noise.device)
        timesteps = scheduler.timesteps
        x = noise
        if self.name == "streaming" and warm is not None:
            start = int(self.start_fraction * self.config.num_train_timesteps)
            timesteps = timesteps[timesteps <= start]
            if len(timesteps):
                x = scheduler.add_noise(warm, noise, timesteps[:1])
        kwargs = {"generator": generator} if self.name == "ddpm" else {}
        if guide is not None and len(timesteps):
            x = self._impose(x, guide, noise, timesteps[0])
        for i, t in enumerate(timesteps):
            model_out = denoiser(x, t.reshape(1))
            x = scheduler.step(model_out, t, x, **kwargs).prev_sample
            if guide is not None:
                x = self._impose(x, guide, noise, timesteps[i + 1] if i + 1 < len(timesteps) else None)
        return x.clamp(-1.5, 1.5) if self.config.normalization == "min_max" else x

    def _impose(self, x: torch.Tensor, guide: Guide, noise: torch.Tensor, step: torch.Tensor | None) -> torch.Tensor:
        """``x`` with the guide's frames mixed in by weight, noised to ``step`` (None: clean, the end)."""
        known, weights = guide
        known = known.to(x.dtype).expand_as(x)
        if step is not None:
            known = self.scheduler.add_noise(known, noise, step.reshape(1))
        w = weights.to(x.dtype)[None, :, None]
        return w * known + (1.0 - w) * x
