"""E-NeRV (Li et al., ECCV 2022): NeRV with disentangled spatial and temporal context.

    xy grid --PE--> linear --> 1-head self-attention block ............ S  [h0*w0, d]
    t --PE--> MLP ............................................... F(gamma(t)) [d]
    S * F(gamma(t)) --> multi-head transformer block --> linear --> C x h0 x w0
    per block i: temporal instance norm (per-channel sigma_i, mu_i from a d0-vector of t) -> block
    block 1: conv(C, C0 s^2) -> PixelShuffle(s) -> conv(C0, C1), C0 = min(C, C1) / 4; then NeRV blocks
    conv1x1 --> sigmoid, cropped to H x W

NeRV spends most of its parameters on the MLP layer that outputs the whole C x h0 x w0 map from t
and on the first stride-5 conv; E-NeRV replaces both (the map comes from a small spatial context
times a temporal vector, the first block goes through a narrow C0) and moves the saved parameters
into the convolution stages. Time enters as a continuous input, so frames between the coded ones
can be rendered (``any_time``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...models.base import Backbone, BackboneConfig
from ...models.layers import (
    ACTIVATIONS,
    NeRVBlock,
    PositionalEncoding,
    base_grid,
    check_positional_encoding,
    derive_strides,
)
from .. import register_backbone
from . import ENERV

MAX_TOKENS = 1024  # base-grid cells attended over; bounds the attention matrices a config can ask for


@dataclass(frozen=True)
class ENeRVConfig(BackboneConfig):
    strides: tuple[int, ...] = (5, 2, 2)
    channels: tuple[int, ...] = (96, 48, 24)  # output width of each block
    fc_channels: int = 32  # C: width of the fused base-grid map
    dim: int = 42  # d = d_t: token width of the spatial context and of the temporal vector
    t_hidden: int = 84  # hidden width of the temporal MLP F
    head_dim: int = 10  # per-head width of both attention blocks
    fuse_heads: int = 8  # heads of the spatial-temporal fusion block (the spatial block has one)
    ffn_dim: int = 21  # hidden width of each transformer feed-forward
    tin_dim: int = 21  # d0: temporal vector feeding the per-block instance norms
    pe_base: float = 1.25
    pe_levels: int = 80
    tin_pe_base: float = 1.25  # the paper lowers this to 1.05 for smoother interpolation
    activation: str = "gelu"

    def validate(self) -> None:
        super().validate()
        if len(self.strides) != len(self.channels) or not 1 <= len(self.strides) <= 8:
            raise ValueError("strides and channels must have the same length (1 to 8)")
        if not all(1 <= s <= 8 for s in self.strides):
            raise ValueError("strides must be between 1 and 8")
        widths = (self.fc_channels, self.dim, self.t_hidden, self.head_dim, self.ffn_dim, self.tin_dim, *self.channels)
        if not all(1 <= c <= 4096 for c in widths):
            raise ValueError("widths must be between 1 and 4096")
        if not (1 <= self.fuse_heads <= 64 and self.fuse_heads * self.head_dim <= 4096):
            raise ValueError("fuse_heads must be between 1 and 64 with fuse_heads * head_dim <= 4096")
        if self.first_inner < 1:
            raise ValueError("first block's inner width min(fc_channels, channels[0]) // 4 must be at least 1")
        h0, w0 = self.base_grid
        if h0 * w0 > MAX_TOKENS:
            raise ValueError(f"base grid {h0}x{w0} has more than {MAX_TOKENS} cells; use larger strides")
        check_positional_encoding(self.pe_levels, self.pe_base, self.tin_pe_base)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}")

    @property
    def base_grid(self) -> tuple[int, int]:
        return base_grid(self.height, self.width, self.strides)

    @property
    def first_inner(self) -> int:
        """C0 = min(C_in, C_out) / 4 of the upgraded first block."""
        return min(self.fc_channels, self.channels[0]) // 4


def enerv_strides(height: int, width: int) -> tuple[int, ...]:
    """NeRV's strides, plus stride-2 stages until the base grid fits the attention's cell limit."""
    strides = list(derive_strides(height, width))
    while math.prod(base_grid(height, width, strides)) > MAX_TOKENS:
        strides.append(2)
    return tuple(strides)


class TransformerBlock(nn.Module):
    """Residual self-attention then residual feed-forward over tokens [B, N, d] (no norm, as in the paper)."""

    def __init__(self, dim: int, heads: int, head_dim: int, ffn_dim: int, activation: str) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.out = nn.Linear(heads * head_dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), ACTIVATIONS[activation](), nn.Linear(ffn_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v)  # [B, heads, N, head_dim]
        x = x + self.out(attended.transpose(1, 2).reshape(b, n, self.heads * self.head_dim))
        return x + self.ffn(x)


class TemporalInstanceNorm(nn.Module):
    """Instance norm whose per-channel scale and shift come from the temporal vector (paper eq. 5).

    CPU speed: the statistics are two batched mat-vec products over an NHWC view and the
    normalization one fused multiply-add; measured 2x faster (forward + backward) than
    ``var_mean`` + broadcast ops on channels_last tensors. Statistics are taken in fp32 even
    under bf16 autocast. The scale is 1 + M(l_t), so a fresh model starts as plain IN.
    """

    def __init__(self, tin_dim: int, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.to_scale_shift = nn.Linear(tin_dim, 2 * channels)
        self.eps = eps

    def forward(self, x: torch.Tensor, l_t: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        scale, shift = self.to_scale_shift(l_t).float()[:, None, :].chunk(2, dim=2)  # [B, 1, C] each
        with torch.autocast(x.device.type, enabled=False):
            flat = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view for channels_last input
            exact = flat.float()
            average = torch.full((b, 1, h * w), 1.0 / (h * w), device=x.device)
            mean = torch.bmm(average, exact)
            var = (torch.bmm(average, exact * exact) - mean * mean).clamp_min(0.0)
            gain = (1.0 + scale) * torch.rsqrt(var + self.eps)
            out = torch.addcmul((shift - mean * gain).to(x.dtype), flat, gain.to(x.dtype))
        return out.view(b, h, w, c).permute(0, 3, 1, 2)


class UpgradedNeRVBlock(nn.Module):
    """conv3x3(C_in -> C0 s^2) -> PixelShuffle(s) -> conv3x3(C0 -> C_out) -> act (paper eq. 6).

    3 x 3 x C0 x (C_in s^2 + C_out) weights instead of NeRV's 3 x 3 x C_in x C_out x s^2.
    """

    def __init__(self, in_channels: int, inner: int, out_channels: int, stride: int, activation: str) -> None:
        super().__init__()
        self.expand = nn.Conv2d(in_channels, inner * stride * stride, 3, padding=1)
        self.shuffle = nn.PixelShuffle(stride)
        self.conv = nn.Conv2d(inner, out_channels, 3, padding=1)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(self.shuffle(self.expand(x))))


@register_backbone
class ENeRV(Backbone):
    name = ENERV.name
    arch_version = 1
    config_cls = ENeRVConfig
    # The paper's E-NeRV at 300 epochs beats NeRV at 2400. Per epoch of 32 frames at 320x180 on one
    # thread: ~1.2 s CPU at 30k parameters (the default --bpp 0.1), ~3 s at 0.3M (bf16).

    def __init__(self, config: ENeRVConfig) -> None:
        super().__init__(config)
        cfg = config
        act = ACTIVATIONS[cfg.activation]
        h0, w0 = cfg.base_grid
        # Base-grid cell corners in [0, 1), as (x, y); fixed by the geometry, so not stored.
        # Built on the CPU even under a meta-device context (count_params), where arange / h0 would
        # pull in torch's reference implementations (seconds of import time).
        ys, xs = torch.meshgrid(torch.arange(h0, device="cpu") / h0, torch.arange(w0, device="cpu") / w0, indexing="ij")
        self.register_buffer("grid_xy", torch.stack([xs, ys], dim=-1).reshape(-1, 2).float(), persistent=False)
        self.pe = PositionalEncoding(cfg.pe_base, cfg.pe_levels)
        self.tin_pe = PositionalEncoding(cfg.tin_pe_base, cfg.pe_levels)
        # Spatial context S: PE(x) ++ PE(y) -> d, refined by single-head self-attention.
        self.xy_stem = nn.Sequential(nn.Linear(2 * self.pe.out_features, cfg.dim), act())
        self.spatial = TransformerBlock(cfg.dim, 1, cfg.head_dim, cfg.ffn_dim, cfg.activation)
        # Temporal vector F(gamma(t)) and the fusion F_theta of S * F(gamma(t)).
        self.t_mlp = nn.Sequential(
            nn.Linear(self.pe.out_features, cfg.t_hidden), act(), nn.Linear(cfg.t_hidden, cfg.dim), act()
        )
        self.fuse = TransformerBlock(cfg.dim, cfg.fuse_heads, cfg.head_dim, cfg.ffn_dim, cfg.activation)
        self.to_map = nn.Sequential(nn.Linear(cfg.dim, cfg.fc_channels), act())
        # Temporal instance normalization: l_t in R^{d0}, one (sigma_i, mu_i) head per block.
        self.tin_mlp = nn.Sequential(
            nn.Linear(self.tin_pe.out_features, cfg.tin_dim), act(), nn.Linear(cfg.tin_dim, cfg.tin_dim), act()
        )
        widths = (cfg.fc_channels, *cfg.channels)
        self.norms = nn.ModuleList(TemporalInstanceNorm(cfg.tin_dim, c) for c in widths[:-1])
        blocks: list[nn.Module] = [
            UpgradedNeRVBlock(widths[0], cfg.first_inner, widths[1], cfg.strides[0], cfg.activation)
        ]
        blocks += [
            NeRVBlock(cin, cout, s, cfg.activation) for cin, cout, s in zip(widths[1:], widths[2:], cfg.strides[1:])
        ]
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(widths[-1], 3, 1)

    @classmethod
    def recipe(cls, height: int, width: int, num_frames: int, c: int) -> ENeRVConfig:
        """The paper's bunny proportions, scaled by the fused-map width C = c.

        Paper: C = 196, d = d_t = 256 (1.3 C), t-MLP hidden 512 (2 d), one 64-wide head (d / 4) for S,
        8 heads of 64 for the fusion, feed-forward 128 (d / 2), d0 = 128 (d / 2); first block widens
        C by 3, later blocks halve it down to a floor of C / 2; C0 = min(C, 3 C) / 4.
        """
        strides = enerv_strides(height, width)
        dim = max(8, round(c * 256 / 196))
        head_dim = max(4, dim // 4)
        channels, width_now = [], 3 * c
        for i in range(len(strides)):
            width_now = 3 * c if i == 0 else max(width_now // 2, max(4, c // 2))
            channels.append(width_now)
        return ENeRVConfig(
            height,
            width,
            num_frames,
            strides=strides,
            channels=tuple(channels),
            fc_channels=c,
            dim=dim,
            t_hidden=2 * dim,
            head_dim=head_dim,
            fuse_heads=max(1, min(8, 2 * dim // head_dim)),
            ffn_dim=max(4, dim // 2),
            tin_dim=max(4, dim // 2),
        )

    @classmethod
    def config_for_budget(cls, height: int, width: int, num_frames: int, params: int) -> ENeRVConfig:
        return cls.largest_within(lambda c: cls.recipe(height, width, num_frames, c), params)

    def context(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused base-grid map [B, C, h0, w0] and the instance-norm temporal vector l_t [B, d0]."""
        cfg = self.config
        h0, w0 = cfg.base_grid
        xy = self.pe(self.grid_xy)  # [N, 2, 2L]
        spatial = self.spatial(self.xy_stem(xy.flatten(1))[None])  # [1, N, d]: the same for every frame
        fused = self.fuse(spatial * self.t_mlp(self.pe(t))[:, None, :])  # [B, N, d]
        fmap = self.to_map(fused).transpose(1, 2).reshape(-1, cfg.fc_channels, h0, w0)
        return fmap, self.tin_mlp(self.tin_pe(t))

    def render_frames(self, t: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        cfg = self.config
        x, l_t = self.context(t)
        x = x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x
        for norm, block in zip(self.norms, self.blocks):
            x = block(norm(x, l_t))
        # The 1x1 head as a matmul over channels: as a conv it falls off oneDNN (3 output channels).
        rgb = F.linear(x.permute(0, 2, 3, 1), self.head.weight.flatten(1), self.head.bias).permute(0, 3, 1, 2)
        return torch.sigmoid(rgb)[:, :, : cfg.height, : cfg.width]
