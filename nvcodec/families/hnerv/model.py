"""HNeRV (Chen et al., CVPR 2023): a coded embedding per frame + a NeRV-block decoder.

    e_t (C_e x h x w) --conv1x1--> C0 --[conv kxk, PixelShuffle(s), GELU] x n--> conv3x3 --> sigmoid

Widths shrink by r = 1.2 per block (never below ``min_width``), kernels grow 1, 3, 5, 5, ... as in
the paper. The embeddings are made by a ConvNeXt frame encoder during training only
(``families/hnerv/objective.py``); the file carries the embeddings (at bits - 2: 6-bit when the
decoder is 8-bit) and the decoder, never the encoder.

Scaling to our sizes: the paper's embedding is 16 x 2 x 4 at 640x1280 (5 blocks, stride 320). We
keep 16 channels (fewer for small rate targets) and take the grid from strides chosen for the
frame (``embedding_strides``): 180x320 -> strides 5, 2, 2, 2 on a 5x8 grid, padded and cropped.

Time between frames (``any_time``): HNeRV has no time input, so a frame at a fractional position
is decoded from the linear interpolation of its two neighbours' embeddings (``embeddings_at``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ...models.base import Backbone, BackboneConfig
from ...models.layers import ACTIVATIONS, NeRVBlock, base_grid, derive_strides
from .. import register_backbone
from . import HNERV

REDUCTION = 1.2  # the paper's per-block width reduction r
MAX_EMBEDDING_CHANNELS = 16  # the paper's C_e


def embedding_strides(height: int, width: int, min_grid_side: int = 4) -> tuple[int, ...]:
    """Decoder strides, largest first: ``derive_strides`` plus 2s while the grid keeps ``min_grid_side`` a side."""
    strides = list(derive_strides(height, width))
    side = min(height, width)
    while len(strides) < 6 and math.ceil(side / (math.prod(strides) * 2)) >= min_grid_side:
        strides.append(2)
    return tuple(sorted(strides, reverse=True))


def hnerv_kernels(count: int) -> tuple[int, ...]:
    """The paper's kernel schedule min(1 + 2i, 5)."""
    return tuple(min(1 + 2 * i, 5) for i in range(count))


def embedding_channels(num_frames: int, grid: tuple[int, int], params: int, share: float = 0.1) -> int:
    """The paper's 16 channels, fewer when the embeddings would take more than ``share`` of the budget.

    The paper's smallest model (0.35M, 132 frames) spends 4.8% on embeddings; 16 x 5 x 8 on 32 frames
    is 6.8% of 0.3M, so 0.3M-class models here keep C_e = 16 and only tiny rate targets shrink it.
    """
    per_channel = num_frames * grid[0] * grid[1]
    return max(1, min(MAX_EMBEDDING_CHANNELS, int(share * params // per_channel)))


def reduced_widths(stem: int, count: int, min_width: int) -> tuple[int, ...]:
    return tuple(max(min_width, round(stem / REDUCTION ** (i + 1))) for i in range(count))


def validate_decoder(cfg, extra_widths: tuple[int, ...] = ()) -> None:
    """Range checks shared by the embedding backbones (HNeRV, SNeRV)."""
    if not (len(cfg.strides) == len(cfg.channels) == len(cfg.kernels) <= 8):
        raise ValueError("strides, channels and kernels must have the same length (at most 8)")
    if not all(1 <= s <= 8 for s in cfg.strides):
        raise ValueError("strides must be between 1 and 8")
    if not all(k in (1, 3, 5, 7) for k in cfg.kernels):
        raise ValueError("kernels must be 1, 3, 5 or 7")
    if not all(1 <= c <= 4096 for c in (cfg.stem_channels, *cfg.channels, *extra_widths)):
        raise ValueError("widths must be between 1 and 4096")
    if not 1 <= cfg.embed_channels <= 256:
        raise ValueError("embed_channels must be between 1 and 256")
    if cfg.activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {cfg.activation!r}")


class EmbeddingBackbone(Backbone):
    """A frame-wise model whose per-frame input is coded embeddings (HNeRV and SNeRV).

    Subclasses name their embedding tensors in ``embedding_names`` (coded at bits - 2), gather
    them per frame in ``frame_embeddings`` and decode them in ``decode``.
    """

    embedding_names: ClassVar[tuple[str, ...]] = ("embeddings",)

    def tensor_bits(self, name: str, bits: float) -> float:
        return bits - 2 if name in self.embedding_names else bits

    def _build_embeddings_and_blocks(self, config) -> int:
        """Per-frame embeddings, a 1x1 stem and the NeRV blocks; returns the last block's width."""
        gh, gw = config.grid
        self.embeddings = nn.Parameter(torch.zeros(config.num_frames, config.embed_channels, gh, gw))
        self.stem = nn.Conv2d(config.embed_channels, config.stem_channels, 1)
        widths = (config.stem_channels, *config.channels)
        self.blocks = nn.ModuleList(
            NeRVBlock(cin, cout, s, config.activation, k)
            for cin, cout, s, k in zip(widths, widths[1:], config.strides, config.kernels)
        )
        return widths[-1]

    def frame_embeddings(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Integer frame indices [B] -> the decoder's inputs for those frames."""
        raise NotImplementedError

    def decode(self, embeds: dict[str, torch.Tensor]) -> torch.Tensor:
        """Decoder inputs -> RGB [B, 3, H, W] in [0, 1]."""
        raise NotImplementedError

    def embeddings_at(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalized times [B] -> decoder inputs, linearly interpolated between neighbouring frames.

        Positions within 1e-4 of a frame snap to it, so coded frames decode from their own embeddings.
        """
        last = self.config.num_frames - 1
        pos = t.to(torch.float32).clamp(0, 1) * last
        pos = torch.where((pos - pos.round()).abs() < 1e-4, pos.round(), pos)
        lo = pos.floor().long().clamp(0, last)
        hi = (lo + 1).clamp(max=last)
        frac = (pos - lo.to(pos.dtype)).view(-1, 1, 1, 1)
        below, above = self.frame_embeddings(lo), self.frame_embeddings(hi)
        return {k: torch.lerp(below[k], above[k], frac.to(below[k].dtype)) for k in below}

    def render_frames(self, t: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        return self.decode(self.embeddings_at(t))


@dataclass(frozen=True)
class HNeRVConfig(BackboneConfig):
    embed_channels: int = 16
    stem_channels: int = 32
    strides: tuple[int, ...] = (5, 2, 2, 2)
    channels: tuple[int, ...] = (27, 22, 19, 15)
    kernels: tuple[int, ...] = (1, 3, 5, 5)
    activation: str = "gelu"

    def validate(self) -> None:
        super().validate()
        validate_decoder(self)

    @property
    def grid(self) -> tuple[int, int]:
        return base_grid(self.height, self.width, self.strides)


@register_backbone
class HNeRV(EmbeddingBackbone):
    name = HNERV.name
    arch_version = 1
    config_cls = HNeRVConfig

    def __init__(self, config: HNeRVConfig) -> None:
        super().__init__(config)
        last = self._build_embeddings_and_blocks(config)
        self.head = nn.Conv2d(last, 3, 3, padding=1)

    @classmethod
    def config_for_budget(cls, height: int, width: int, num_frames: int, params: int) -> HNeRVConfig:
        strides = embedding_strides(height, width)
        embed = embedding_channels(num_frames, base_grid(height, width, strides), params)

        def recipe(c: int) -> HNeRVConfig:
            return HNeRVConfig(
                height,
                width,
                num_frames,
                embed_channels=embed,
                stem_channels=c,
                strides=strides,
                channels=reduced_widths(c, len(strides), 4),
                kernels=hnerv_kernels(len(strides)),
            )

        return cls.largest_within(recipe, params)

    def frame_embeddings(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"embeddings": self.embeddings[idx]}

    def decode(self, embeds: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.stem(embeds["embeddings"])
        x = x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x
        for block in self.blocks:
            x = block(x)
        return torch.sigmoid(self.head(x))[:, :, : self.config.height, : self.config.width]
