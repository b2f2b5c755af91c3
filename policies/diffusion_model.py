"""The diffusion policy network: normaliser + observation encoder + conditional U-Net (PyTorch, no ROS).

Training (DDPM, Ho et al.): pick a step t ~ U{0..T-1}, noise the normalised
action chunk, predict the noise (or the clean chunk) conditioned on the
observation embedding; padded frames past an episode's end are masked out of
the MSE. Sampling: ``sample`` draws N chunks for one observation in one batch.

Committed prefixes (Real-Time Chunking): ``guide`` frames are inpainted by the
sampler, or, for a network trained with ``prefix_frames`` (training-time
action conditioning), given as clean input frames flagged in a mask channel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch import nn

from armpilot.features import GOAL, POINTS
from armpilot.policies.diffusion_config import ACTION, ACTION_OFFSET, STATE, STATE_STEP, DiffusionConfig
from armpilot.policies.diffusion_encoder import FeatureNormalizer, ObservationEncoder, cloud_in_frame, joint_step
from armpilot.policies.diffusion_sampling import ChunkSampler
from armpilot.policies.diffusion_unet import ConditionalUnet1D


class DiffusionModel(nn.Module):
    """Observation dict -> (N, H, A) action chunks in joint units.

    ``stats``: feature -> {min, max, mean, std} tensors (dataset statistics)
    for every key in ``config.obs_keys`` and ``action`` (``action.relative`` as
    well with ``relative_actions``).
    """

    def __init__(self, config: DiffusionConfig, stats: dict[str, dict[str, torch.Tensor]]) -> None:
        super().__init__()
        self.action_key = ACTION_OFFSET if config.relative_actions else ACTION
        self.normalized_keys = (*config.obs_keys, *((POINTS,) if config.use_points and config.normalize_points
                                                    else ()))
        needed = (*self.normalized_keys, ACTION, self.action_key, *((STATE_STEP,) if config.state_velocity else ()))
        missing = [k for k in needed if k not in stats]
        if missing:
            raise ValueError(f"dataset statistics lack {missing}")
        self.config = config
        self.normalizer = FeatureNormalizer({k: stats[k] for k in (*self.normalized_keys, self.action_key)},
                                            config.normalization)
        # the joint step keeps its own (mean/std) scaling, whatever ``normalization`` the rest uses
        self.step_normalizer = (FeatureNormalizer({STATE_STEP: stats[STATE_STEP]}, "mean_std")
                                if config.state_velocity else None)
        self.encoder = ObservationEncoder(config)
        self.unet = ConditionalUnet1D(config.network_dim, config.obs_embed_dim, config.down_dims,
                                      config.kernel_size, config.n_groups, config.step_embed_dim,
                                      extra_inputs=1 if config.prefix_frames else 0)
        self.train_scheduler = DDPMScheduler(num_train_timesteps=config.num_train_timesteps,
                                             beta_schedule=config.beta_schedule,
                                             prediction_type=config.prediction_type, clip_sample=True)

    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Observation dict (raw units) -> (B, obs_embed_dim): low-dim features (and the cloud, with
        ``normalize_points``) normalised, the cloud first put in ``points_frame``, tracks as they are, the
        latest joint step scaled by its own statistics (``state_velocity``)."""
        if self.config.use_points and self.config.points_frame != "world":
            obs = {**obs, POINTS: cloud_in_frame(obs[POINTS], obs[GOAL], self.config.points_frame)}
        normalised = {k: self.normalizer.normalize(k, obs[k]) for k in self.normalized_keys}
        if self.step_normalizer is not None:  # (B, J) the latest joint step, from the raw states
            normalised[STATE_STEP] = self.step_normalizer.normalize(STATE_STEP, joint_step(obs[STATE]))
        return self.encoder({**obs, **normalised})

    def anchor(self, obs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """(B, 1, A) latest joint state that actions are offsets from (``relative_actions``), else None."""
        return obs[STATE][:, -1:, :] if self.config.relative_actions else None

    def to_network(self, actions: torch.Tensor, anchor: torch.Tensor | None) -> torch.Tensor:
        """(B, H, A) actions in joint units -> normalised network frames."""
        return self.normalizer.normalize(self.action_key, actions if anchor is None else actions - anchor)

    def from_network(self, frames: torch.Tensor, anchor: torch.Tensor | None) -> torch.Tensor:
        """Normalised (B, H, A) network frames -> actions in joint units."""
        actions = self.normalizer.unnormalize(self.action_key, frames)
        return actions if anchor is None else actions + anchor

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoising MSE over one batch: actions (B, H, A), ``action_is_pad`` (B, H), observations."""
        actions = self.to_network(batch[ACTION], self.anchor(batch))
        cond = self.encode(batch)
        noise = torch.randn(actions.shape, generator=generator, device=actions.device)
        steps = torch.randint(0, self.config.num_train_timesteps, (actions.shape[0],), generator=generator,
                              device=actions.device)
        noisy = self.train_scheduler.add_noise(actions, noise, steps)
        prefix = torch.zeros(actions.shape[:2], dtype=torch.bool, device=actions.device)
        if self.config.prefix_frames:  # a random committed prefix of d ~ U{0..prefix_frames} clean frames
            lengths = torch.randint(0, self.config.prefix_frames + 1, (actions.shape[0], 1), generator=generator,
                                    device=actions.device)
            prefix = torch.arange(actions.shape[1], device=actions.device)[None] < lengths
        predicted = self.unet(self.with_prefix(noisy, actions, prefix), steps, cond)
        target = noise if self.config.prediction_type == "epsilon" else actions
        per_frame = F.mse_loss(predicted, target, reduction="none").mean(dim=-1)
        valid = ~batch["action_is_pad"] if "action_is_pad" in batch else torch.ones_like(per_frame, dtype=torch.bool)
        valid = valid & ~prefix
        return (per_frame * valid).sum() / valid.sum().clamp_min(1)

    def with_prefix(self, noisy: torch.Tensor, known: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """The U-Net input: (B, H, A) noisy frames with the ``prefix`` (B, H) bool frames replaced by ``known``
        (normalised) and, for a network trained with ``prefix_frames``, the mask as one more channel."""
        if not self.config.prefix_frames:
            return noisy
        mask = prefix[..., None].to(noisy.dtype)
        return torch.cat([mask * known + (1.0 - mask) * noisy, mask], dim=-1)

    @torch.no_grad()
    def sample(self, obs: dict[str, torch.Tensor], num_samples: int, sampler: ChunkSampler,
               warm: torch.Tensor | None = None, generator: torch.Generator | None = None,
               guide: tuple[torch.Tensor, torch.Tensor] | None = None, condition: bool = False) -> torch.Tensor:
        """One observation (each value (1, n_obs_steps, ...)) -> (N, H, A) chunks in joint units.

        ``warm``: (H, A) previous chunk in joint units, already shifted (streaming sampler).
        ``guide``: (targets (H, A) in joint units, weights (H,)) of a committed prefix: inpainted, or with
        ``condition`` (a network trained with ``prefix_frames``) its leading weight-1 frames (at most
        ``prefix_frames``) are the conditioning prefix.
        """
        cond = self.encode(obs)  # (1, C): shared by the N chunks, FiLM computed once per step
        anchor = self.anchor(obs)
        shape = (num_samples, self.config.horizon, self.config.network_dim)
        noise = torch.randn(shape, generator=generator, device=cond.device)
        warm_norm = None if warm is None else self.to_network(warm[None], anchor).expand(shape)
        guide_norm = None if guide is None else (self.to_network(guide[0][None], anchor)[0], guide[1])
        prefix = torch.zeros(shape[:2], dtype=torch.bool, device=cond.device)
        known = torch.zeros(shape[1:], device=cond.device)
        if condition and guide_norm is not None:
            known, weights = guide_norm
            leading = int(torch.cumprod((weights >= 1.0).int(), 0).sum())
            prefix[:, : min(leading, self.config.prefix_frames)] = True
            guide_norm = None
        normalised = sampler.denoise(lambda x, t: self.unet(self.with_prefix(x, known, prefix), t, cond), noise,
                                     warm_norm, generator, guide_norm)
        if prefix.any():
            normalised = torch.where(prefix[..., None], known.expand(shape), normalised)
        return self.from_network(normalised, anchor)

    @torch.no_grad()
    def sample_batch(self, obs: dict[str, torch.Tensor], counts: list[int], sampler: ChunkSampler,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """B observations (each value (B, n_obs_steps, ...)) -> (sum(counts), H, A) chunks in joint units,
        ``counts[b]`` chunks for observation b, in order: one denoising loop for all of them."""
        repeats = torch.as_tensor(counts, device=next(iter(obs.values())).device)
        cond = self.encode(obs).repeat_interleave(repeats, dim=0)
        shape = (len(cond), self.config.horizon, self.config.network_dim)
        noise = torch.randn(shape, generator=generator, device=cond.device)
        prefix = torch.zeros(shape[:2], dtype=torch.bool, device=cond.device)
        known = torch.zeros(shape[1:], device=cond.device)
        normalised = sampler.denoise(
            lambda x, t: self.unet(self.with_prefix(x, known, prefix), t.expand(len(cond)), cond), noise,
            None, generator, None)
        anchor = self.anchor(obs)
        return self.from_network(normalised, None if anchor is None else anchor.repeat_interleave(repeats, dim=0))
