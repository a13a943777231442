"""NeRV (Chen et al., NeurIPS 2021): time -> MLP -> small feature map -> NeRV blocks -> frame.

    t --PE(b=1.25, l=80)--> MLP --> C0 x h0 x w0 --[conv3x3, PixelShuffle(s), GELU] x n--> conv1x1 --> sigmoid

The base grid is ceil(H / S) x ceil(W / S) for S = product of the strides; the output is
cropped to H x W, so any frame size works.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
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
from . import NERV


@dataclass(frozen=True)
class NeRVConfig(BackboneConfig):
    mlp_hidden: int = 64
    stem_channels: int = 16
    strides: tuple[int, ...] = (5, 2, 2)
    channels: tuple[int, ...] = (16, 16, 16)
    pe_base: float = 1.25
    pe_levels: int = 80
    activation: str = "gelu"

    def validate(self) -> None:
        super().validate()
        if len(self.strides) != len(self.channels) or len(self.strides) > 8:
            raise ValueError("strides and channels must have the same length (at most 8)")
        if not all(1 <= s <= 8 for s in self.strides):
            raise ValueError("strides must be between 1 and 8")
        if not all(1 <= c <= 4096 for c in (self.mlp_hidden, self.stem_channels, *self.channels)):
            raise ValueError("widths must be between 1 and 4096")
        check_positional_encoding(self.pe_levels, self.pe_base)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}")

    @property
    def base_grid(self) -> tuple[int, int]:
        return base_grid(self.height, self.width, self.strides)


@register_backbone
class NeRV(Backbone):
    name = NERV.name
    arch_version = 1
    config_cls = NeRVConfig

    def __init__(self, config: NeRVConfig) -> None:
        super().__init__(config)
        h0, w0 = config.base_grid
        act = ACTIVATIONS[config.activation]
        self.pe = PositionalEncoding(config.pe_base, config.pe_levels)
        self.stem = nn.Sequential(
            nn.Linear(self.pe.out_features, config.mlp_hidden),
            act(),
            nn.Linear(config.mlp_hidden, config.stem_channels * h0 * w0),
            act(),
        )
        widths = (config.stem_channels, *config.channels)
        self.blocks = nn.ModuleList(
            NeRVBlock(cin, cout, s, config.activation) for cin, cout, s in zip(widths, widths[1:], config.strides)
        )
        self.head = nn.Conv2d(widths[-1], 3, 1)

    @classmethod
    def config_for_budget(cls, height: int, width: int, num_frames: int, params: int) -> NeRVConfig:
        strides = derive_strides(height, width)

        def recipe(c: int) -> NeRVConfig:
            channels = tuple(max(4, round(c / 1.25 ** (i + 1))) for i in range(len(strides)))
            return NeRVConfig(
                height,
                width,
                num_frames,
                mlp_hidden=max(16, c),
                stem_channels=max(2, c // 2),
                strides=strides,
                channels=channels,
            )

        return cls.largest_within(recipe, params, low=2)

    def render_frames(self, t: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        cfg = self.config
        h0, w0 = cfg.base_grid
        x = self.stem(self.pe(t)).view(-1, cfg.stem_channels, h0, w0)
        x = x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x
        for block in self.blocks:
            x = block(x)
        return torch.sigmoid(self.head(x))[:, :, : cfg.height, : cfg.width]
