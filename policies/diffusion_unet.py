"""Conditional 1D temporal U-Net noise predictor with FiLM conditioning (Chi et al., Diffusion Policy).

Input a noisy action chunk (B, H, A), a diffusion step (B,) and a global
condition (B, C) (the observation embedding); output (B, H, A): the predicted
noise or clean chunk. Convolutions run over time (H); every residual block is
modulated by the step + observation embedding through a per-channel scale and
bias (FiLM).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: Smallest inference batch for which ``TemporalConv`` runs as one im2col matrix product (bench/policy.py:
#: at N=16 on a CPU core it beats the oneDNN convolution, at N=1 it is slower).
GEMM_MIN_BATCH = 4


class SinusoidalStepEmbedding(nn.Module):
    """(B,) diffusion steps -> (B, dim) sinusoidal features."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000) * torch.arange(half) / (half - 1)), persistent=False)

    def forward(self, steps: torch.Tensor) -> torch.Tensor:
        angles = steps.float()[:, None] * self.freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class TemporalConv(nn.Conv1d):
    """``nn.Conv1d`` (same weights and result) that, for an inference batch of at least ``GEMM_MIN_BATCH``,
    runs as one (B*H_out, C_in*k) x (C_in*k, C_out) matrix product over unfolded windows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] < GEMM_MIN_BATCH or torch.is_grad_enabled() or self.groups != 1 or self.dilation[0] != 1:
            return super().forward(x)
        (k,), (stride,), (pad,) = self.kernel_size, self.stride, self.padding
        batch, channels, _ = x.shape
        windows = F.pad(x, (pad, pad)).unfold(2, k, stride)  # (B, C_in, H_out, k)
        h_out = windows.shape[2]
        columns = windows.permute(0, 2, 1, 3).reshape(batch * h_out, channels * k)
        weight = self.weight.reshape(self.out_channels, channels * k)
        out = torch.addmm(self.bias, columns, weight.t()) if self.bias is not None else columns @ weight.t()
        return out.view(batch, h_out, self.out_channels).transpose(1, 2)


class ConvBlock(nn.Module):
    """Conv1d -> GroupNorm -> Mish over (B, C, H)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.block = nn.Sequential(TemporalConv(c_in, c_out, kernel, padding=kernel // 2),
                                   nn.GroupNorm(groups, c_out), nn.Mish())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class FiLMResidualBlock(nn.Module):
    """Two conv blocks; the first's output is scaled and shifted by the condition (FiLM)."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.conv1 = ConvBlock(c_in, c_out, kernel, groups)
        self.conv2 = ConvBlock(c_out, c_out, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.residual = TemporalConv(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, bias = self.film(cond)[:, :, None].chunk(2, dim=1)
        out = self.conv1(x) * scale + bias
        return self.conv2(out) + self.residual(x)


class ConditionalUnet1D(nn.Module):
    """(B, H, A + extra_inputs) noisy chunk, (B,) step, (B, C) condition -> (B, H, A).

    Step and condition may also have batch 1 (shared by all B chunks, as when
    N candidates are sampled for one observation): FiLM is then computed once
    and broadcast.
    """

    def __init__(self, action_dim: int, cond_dim: int, down_dims: tuple[int, ...] = (64, 128, 256),
                 kernel: int = 5, groups: int = 8, step_embed_dim: int = 64, extra_inputs: int = 0) -> None:
        super().__init__()
        self.step_encoder = nn.Sequential(SinusoidalStepEmbedding(step_embed_dim),
                                          nn.Linear(step_embed_dim, 4 * step_embed_dim), nn.Mish(),
                                          nn.Linear(4 * step_embed_dim, step_embed_dim))
        film_dim = step_embed_dim + cond_dim
        dims = (action_dim + extra_inputs, *down_dims)  # extra input channels (a prefix mask), not predicted
        levels = list(zip(dims[:-1], dims[1:]))

        def block(c_in: int, c_out: int) -> FiLMResidualBlock:
            return FiLMResidualBlock(c_in, c_out, film_dim, kernel, groups)

        self.down = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(levels):
            last = i == len(levels) - 1
            self.down.append(nn.ModuleList([block(c_in, c_out), block(c_out, c_out),
                                            nn.Identity() if last else TemporalConv(c_out, c_out, 3, 2, 1)]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([block(mid, mid), block(mid, mid)])
        self.up = nn.ModuleList()
        for c_in, c_out in reversed(levels[1:]):  # one upsample for each downsample
            self.up.append(nn.ModuleList([block(2 * c_out, c_in), block(c_in, c_in),
                                          nn.ConvTranspose1d(c_in, c_in, 4, 2, 1)]))
        self.head = nn.Sequential(ConvBlock(down_dims[0], down_dims[0], kernel, groups),
                                  TemporalConv(down_dims[0], action_dim, 1))

    def forward(self, chunk: torch.Tensor, steps: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        film = torch.cat([self.step_encoder(steps), cond], dim=-1)
        x = chunk.transpose(1, 2)
        skips = []
        for res1, res2, downsample in self.down:
            x = res2(res1(x, film), film)
            skips.append(x)
            x = downsample(x)
        for res in self.mid:
            x = res(x, film)
        for res1, res2, upsample in self.up:
            x = torch.cat([x, skips.pop()], dim=1)
            x = upsample(res2(res1(x, film), film))
        return self.head(x).transpose(1, 2)
