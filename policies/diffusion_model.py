"""The diffusion policy network: normaliser + observation encoder + conditional U-Net (PyTorch, no ROS).

Training (DDPM, Ho et al.): pick a step t ~ U{0..T-1}, noise the normalised
action chunk, predict the noise (or the clean chunk) conditioned on the
observation embedding; padded frames past an episode's end are masked out of
the MSE. Sampling: ``sample`` draws N chunks for one observation in one batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch import nn

from armpilot.policies.diffusion_config import ACTION, DiffusionConfig
from armpilot.policies.diffusion_encoder import FeatureNormalizer, ObservationEncoder
from armpilot.policies.diffusion_sampling import ChunkSampler
from armpilot.policies.diffusion_unet import ConditionalUnet1D


class DiffusionModel(nn.Module):
    """Observation dict -> (N, H, A) action chunks in joint units.

    ``stats``: feature -> {min, max, mean, std} tensors (dataset statistics)
    for every key in ``config.obs_keys`` and ``action``.
    """

    def __init__(self, config: DiffusionConfig, stats: dict[str, dict[str, torch.Tensor]]) -> None:
        super().__init__()
        missing = [k for k in (*config.obs_keys, ACTION) if k not in stats]
        if missing:
            raise ValueError(f"dataset statistics lack {missing}")
        self.config = config
        self.normalizer = FeatureNormalizer({k: stats[k] for k in (*config.obs_keys, ACTION)},
                                            config.normalization)
        self.encoder = ObservationEncoder(config)
        self.unet = ConditionalUnet1D(config.action_dim, config.obs_embed_dim, config.down_dims,
                                      config.kernel_size, config.n_groups, config.step_embed_dim)
        self.train_scheduler = DDPMScheduler(num_train_timesteps=config.num_train_timesteps,
                                             beta_schedule=config.beta_schedule,
                                             prediction_type=config.prediction_type, clip_sample=True)

    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Observation dict (raw units) -> (B, obs_embed_dim): low-dim features normalised, tracks as they are."""
        normalised = {k: self.normalizer.normalize(k, obs[k]) for k in self.config.obs_keys}
        return self.encoder({**obs, **normalised})

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoising MSE over one batch: actions (B, H, A), ``action_is_pad`` (B, H), observations."""
        actions = self.normalizer.normalize(ACTION, batch[ACTION])
        cond = self.encode(batch)
        noise = torch.randn(actions.shape, generator=generator, device=actions.device)
        steps = torch.randint(0, self.config.num_train_timesteps, (actions.shape[0],), generator=generator,
                              device=actions.device)
        noisy = self.train_scheduler.add_noise(actions, noise, steps)
        predicted = self.unet(noisy, steps, cond)
        target = noise if self.config.prediction_type == "epsilon" else actions
        per_frame = F.mse_loss(predicted, target, reduction="none").mean(dim=-1)
        valid = ~batch["action_is_pad"] if "action_is_pad" in batch else torch.ones_like(per_frame, dtype=torch.bool)
        return (per_frame * valid).sum() / valid.sum().clamp_min(1)

    @torch.no_grad()
    def sample(self, obs: dict[str, torch.Tensor], num_samples: int, sampler: ChunkSampler,
               warm: torch.Tensor | None = None, generator: torch.Generator | None = None,
               guide: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """One observation (each value (1, n_obs_steps, ...)) -> (N, H, A) chunks in joint units.

        ``warm``: (H, A) previous chunk in joint units, already shifted (streaming sampler).
        ``guide``: (targets (H, A) in joint units, weights (H,)) to inpaint (Real-Time Chunking).
        """
        cond = self.encode(obs)  # (1, C): shared by the N chunks, FiLM computed once per step
        shape = (num_samples, self.config.horizon, self.config.action_dim)
        noise = torch.randn(shape, generator=generator, device=cond.device)
        warm_norm = None if warm is None else self.normalizer.normalize(ACTION, warm).expand(shape)
        guide_norm = None if guide is None else (self.normalizer.normalize(ACTION, guide[0]), guide[1])
        normalised = sampler.denoise(lambda x, t: self.unet(x, t, cond), noise, warm_norm, generator, guide_norm)
        return self.normalizer.unnormalize(ACTION, normalised)
