"""Blocks shared by several backbones (each lives here once)."""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

ACTIVATIONS = {"gelu": nn.GELU, "silu": nn.SiLU, "relu": nn.ReLU, "leaky": functools.partial(nn.LeakyReLU, 0.1)}


class PositionalEncoding(nn.Module):
    """NeRV's Fourier features: t -> [sin(pi b^i t), cos(pi b^i t)] for i < levels."""

    def __init__(self, base: float, levels: int) -> None:
        super().__init__()
        # on the CPU even inside a `torch.device("meta")` block (model sizing): meta's arange goes through
        # decompositions whose first use imports torch._dynamo, 1.3 s before an encode could say anything
        cpu = torch.device("cpu")
        freqs = math.pi * torch.pow(
            torch.tensor(base, dtype=torch.float64, device=cpu), torch.arange(levels, dtype=torch.float64, device=cpu)
        )
        self.register_buffer("freqs", freqs.to(torch.float32), persistent=False)
        self.out_features = 2 * levels

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t[..., None].to(torch.float32) * self.freqs
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class NeRVBlock(nn.Module):
    """conv kxk (C_in -> C_out * s^2; k = 3 unless given) -> PixelShuffle(s) -> activation: upsamples by s."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, activation: str, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels * stride * stride, kernel_size, padding=kernel_size // 2)
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


class ResBlock(nn.Module):
    """conv3x3 -> activation -> conv3x3, added to the input: refines features at a fixed width."""

    def __init__(self, channels: int, activation: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            ACTIVATIONS[activation](),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def haar_dwt(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2D Haar transform: [B, C, H, W] -> [B, 4C, ceil(H/2), ceil(W/2)] as (LL, LH, HL, HH).

    Odd sides are padded by repeating the last row/column (its high-pass coefficient is then 0);
    ``haar_idwt(haar_dwt(x), (H, W))`` gives ``x`` back exactly up to float rounding. First letter:
    filter along rows (vertical), second: along columns (horizontal); LL of a [0, 1] image is in [0, 2].
    """
    height, width = x.shape[-2:]
    if height % 2 or width % 2:
        x = nn.functional.pad(x, (0, width % 2, 0, height % 2), mode="replicate")
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return 0.5 * torch.cat([a + b + c + d, a - b + c - d, a + b - c - d, a - b - c + d], dim=1)


def haar_idwt(bands: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Inverse of ``haar_dwt``: [B, 4C, h, w] -> [B, C, 2h, 2w], cropped to ``size`` (H, W) if given."""
    ll, lh, hl, hh = bands.chunk(4, dim=1)
    a, b = ll + lh + hl + hh, ll - lh + hl - hh
    c, d = ll + lh - hl - hh, ll - lh - hl + hh
    rows = torch.stack([torch.stack([a, b], dim=-1), torch.stack([c, d], dim=-1)], dim=-3)  # [B, C, h, 2, w, 2]
    out = 0.5 * rows.reshape(*ll.shape[:-2], 2 * ll.shape[-2], 2 * ll.shape[-1])
    return out if size is None else out[..., : size[0], : size[1]]


def check_positional_encoding(levels: int, *bases: float) -> None:
    """Config check shared by the NeRV family: bases in [1, 4], 1..256 levels, frequencies <= 1e10."""
    if not (all(1.0 <= b <= 4.0 for b in bases) and 1 <= levels <= 256):
        raise ValueError("positional encoding out of range")
    if max(bases) ** (levels - 1) > 1e10:
        raise ValueError("positional encoding frequencies above 1e10 (pe_base ** (pe_levels - 1))")


def base_grid(height: int, width: int, strides: tuple[int, ...]) -> tuple[int, int]:
    """The feature grid a stack of upsampling strides starts from (the frame is then cropped)."""
    total = math.prod(strides)
    return math.ceil(height / total), math.ceil(width / total)
