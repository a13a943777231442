"""Blocks shared by several backbones (each lives here once)."""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"gelu": nn.GELU, "silu": nn.SiLU, "relu": nn.ReLU}


class PositionalEncoding(nn.Module):
    """NeRV's Fourier features: t -> [sin(pi b^i t), cos(pi b^i t)] for i < levels."""

    def __init__(self, base: float, levels: int) -> None:
        super().__init__()
        freqs = math.pi * torch.pow(torch.tensor(base, dtype=torch.float64), torch.arange(levels, dtype=torch.float64))
        self.register_buffer("freqs", freqs.to(torch.float32), persistent=False)
        self.out_features = 2 * levels

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t[..., None].to(torch.float32) * self.freqs
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class NeRVBlock(nn.Module):
    """conv3x3 (C_in -> C_out * s^2) -> PixelShuffle(s) -> activation: upsamples by s."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, activation: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels * stride * stride, 3, padding=1)
        self.shuffle = nn.PixelShuffle(stride)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))


def derive_strides(height: int, width: int, min_base_side: int = 4) -> tuple[int, ...]:
    """Upsampling strides for a NeRV decoder, largest first.

    Prefers factors (5, 3, 2) of gcd(H, W) so the base grid tiles the frame exactly
    (180x320 -> 5, 2, 2 on a 9x16 grid); sizes with no common factors get strides of 2 and
    are padded, then cropped. The base grid keeps at least ``min_base_side`` cells a side.
    """
    side = min(height, width)
    common = math.gcd(height, width)
    strides: list[int] = []
    product = 1
    for factor in (5, 3, 2):
        while common % factor == 0 and side / (product * factor) >= min_base_side:
            strides.append(factor)
            product *= factor
            common //= factor
    while side / (product * 2) >= min_base_side and len(strides) < 3:
        strides.append(2)
        product *= 2
    return tuple(sorted(strides, reverse=True))
