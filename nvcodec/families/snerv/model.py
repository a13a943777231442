"""SNeRV (Kim, Lee, Kang, ECCV 2024): HNeRV in the Haar wavelet domain.

SNeRV-B ("snerv-b"): the frame encoder (training only, ``objective.py``) sees only the LL band
of a Haar DWT; the decoder rebuilds all four bands at half resolution and an inverse DWT gives the
frame (the IDWT replaces HNeRV's last up-sampling block):

    e_t --conv1x1--> C0 --UB x n--> u_0 .. u_{n-1}
    MFU: m = u_{n-3};  m <- RB^N(cat(ConvT_s(m), u_i)) for the last two UBs   (multi-resolution fusion)
    LL = 2 sigmoid(conv3x3(m));  HFR: LH, HL, HH = conv3x3(act(conv3x3(m))) each;  frame = IDWT(bands)

SNeRV-T ("snerv-t"): adds temporal embeddings from the 2+1D DWT of the frame pairs (t-1, t) and
(t, t+1) (their spatio-temporal LL band), stored once per pair: T + 1 pairs, the ends repeating
the first / last frame. The last three up-sampling blocks become temporally extended blocks (TUBs)
on three streams (backward pair, frame, forward pair). We use the paper's cheaper 2D variant:
each TUB up-samples the streams with one NeRV block whose weights they share (time folded into the
batch), then mixes time with a residual 1x1 conv over the three streams folded into channels; the
last TUB merges them into one. The MFU takes the frame stream of the TUB outputs.

Two registered names rather than a config flag: the two differ in their coded tensors and their
config fields, and the file's family name then says which decoder to build.

Scaling to our sizes: C_e = 16 (fewer for small rate targets), the grid is the LL band divided
by the strides (180x320 -> LL 90x160 -> strides 5, 2, 2 on a 5x8 grid, HNeRV's grid too), the
residual blocks per MFB follow the paper's table (2 at 0.34M ... 6 at 3M), temporal embeddings have
3 channels (the paper's) on the grid the TUBs start from. Any time: as HNeRV (``embeddings_at``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ...models.base import BackboneConfig
from ...models.layers import ACTIVATIONS, NeRVBlock, ResBlock, base_grid, haar_idwt
from .. import register_backbone
from ..hnerv.model import (
    EmbeddingBackbone,
    embedding_channels,
    embedding_strides,
    hnerv_kernels,
    reduced_widths,
    validate_decoder,
)
from . import SNERV_B, SNERV_T

TEMPORAL_BLOCKS = 3  # the paper replaces the last three up-sampling blocks with TUBs


def residual_blocks_for(params: int) -> int:
    """Residual blocks per MFB by model size, after the paper's Table 9 (0.34M: 2, 0.75M: 3, 1.5M: 4, 3M: 6).

    Below 50k parameters (tiny clips in tests) one block, so the fusion unit does not eat the budget.
    """
    for limit, blocks in ((50_000, 1), (500_000, 2), (1_000_000, 3), (2_000_000, 4), (4_000_000, 6)):
        if params < limit:
            return blocks
    return 8


@dataclass(frozen=True)
class SNeRVConfig(BackboneConfig):
    embed_channels: int = 16
    stem_channels: int = 32
    strides: tuple[int, ...] = (5, 2, 2)  # over the LL band (half the frame size)
    channels: tuple[int, ...] = (27, 22, 19)
    kernels: tuple[int, ...] = (1, 3, 5)
    res_blocks: int = 2
    activation: str = "gelu"  # up-sampling blocks
    fusion_activation: str = "leaky"  # MFU residual blocks and HFR (LeakyReLU 0.1, as the paper)

    def validate(self) -> None:
        super().validate()
        validate_decoder(self)
        if not 0 <= self.res_blocks <= 16:
            raise ValueError("res_blocks must be between 0 and 16")
        if self.fusion_activation not in ACTIVATIONS:
            raise ValueError(f"unknown fusion_activation {self.fusion_activation!r}")

    @property
    def band_size(self) -> tuple[int, int]:
        return (self.height + 1) // 2, (self.width + 1) // 2

    @property
    def grid(self) -> tuple[int, int]:
        return base_grid(*self.band_size, self.strides)


class FusionBlock(nn.Module):
    """One MFB: transposed conv up to the next UB's size, concatenation with its output, residual blocks."""

    def __init__(self, in_channels: int, skip_channels: int, stride: int, res_blocks: int, activation: str) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, skip_channels, stride, stride=stride)
        self.refine = nn.Sequential(*(ResBlock(2 * skip_channels, activation) for _ in range(res_blocks)))
        self.out_channels = 2 * skip_channels

    def forward(self, m: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.refine(torch.cat([self.up(m), skip], dim=1))


class BandHead(nn.Module):
    """LL from the fused features, and the HFR: three two-conv blocks synthesizing LH, HL and HH."""

    def __init__(self, channels: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.low = nn.Conv2d(channels, 3, 3, padding=1)
        self.high = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels, hidden, 3, padding=1), ACTIVATIONS[activation](), nn.Conv2d(hidden, 3, 3, padding=1)
            )
            for _ in range(3)
        )

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        low = 2.0 * torch.sigmoid(self.low(m))  # LL of a [0, 1] frame lies in [0, 2]
        return torch.cat([low, *(block(m) for block in self.high)], dim=1)


class SNeRVDecoderMixin:
    """What B and T share: the MFU + band head after the up-sampling path, and the IDWT."""

    def _build_fusion(self, config: SNeRVConfig) -> None:
        widths = (config.stem_channels, *config.channels)
        start = max(0, len(widths) - 3)  # m_0 = u_{n-3} (or the stem output when there are fewer blocks)
        fused = widths[start]
        self.fusion = nn.ModuleList()
        for i in range(start + 1, len(widths)):
            block = FusionBlock(fused, widths[i], config.strides[i - 1], config.res_blocks, config.fusion_activation)
            self.fusion.append(block)
            fused = block.out_channels
        self.fusion_start = start
        self.bands = BandHead(fused, widths[-1], config.fusion_activation)

    def _fuse(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """feats = [stem output, u_0, ..., u_{n-1}] -> bands [B, 12, h, w] cropped to the band size."""
        m = feats[self.fusion_start]
        for block, skip in zip(self.fusion, feats[self.fusion_start + 1 :]):
            m = block(m, skip)
        bh, bw = self.config.band_size
        return self.bands(m)[:, :, :bh, :bw]

    def decode(self, embeds: dict[str, torch.Tensor]) -> torch.Tensor:
        return haar_idwt(self.decode_bands(embeds), (self.config.height, self.config.width))


@register_backbone
class SNeRVB(SNeRVDecoderMixin, EmbeddingBackbone):
    name = SNERV_B.name
    arch_version = 1
    config_cls = SNeRVConfig

    def __init__(self, config: SNeRVConfig) -> None:
        super().__init__(config)
        self._build_embeddings_and_blocks(config)
        self._build_fusion(config)

    @classmethod
    def config_for_budget(cls, height: int, width: int, num_frames: int, params: int) -> SNeRVConfig:
        band = (height + 1) // 2, (width + 1) // 2
        strides = embedding_strides(*band)
        embed = embedding_channels(num_frames, base_grid(*band, strides), params)

        def recipe(c: int) -> SNeRVConfig:
            return cls.config_cls(
                height,
                width,
                num_frames,
                embed_channels=embed,
                stem_channels=c,
                strides=strides,
                channels=reduced_widths(c, len(strides), 4),
                kernels=hnerv_kernels(len(strides)),
                res_blocks=residual_blocks_for(params),
            )

        return cls.largest_within(recipe, params)

    def frame_embeddings(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"embeddings": self.embeddings[idx]}

    def decode_bands(self, embeds: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.stem(embeds["embeddings"])
        x = x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x
        feats = [x]
        for block in self.blocks:
            feats.append(block(feats[-1]))
        return self._fuse(feats)


@dataclass(frozen=True)
class SNeRVTConfig(SNeRVConfig):
    temporal_channels: int = 3

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.temporal_channels <= 64:
            raise ValueError("temporal_channels must be between 1 and 64")

    @property
    def temporal_start(self) -> int:
        """Index of the first TUB among the up-sampling blocks."""
        return max(0, len(self.strides) - TEMPORAL_BLOCKS)

    @property
    def temporal_grid(self) -> tuple[int, int]:
        scale = math.prod(self.strides[: self.temporal_start])
        return self.grid[0] * scale, self.grid[1] * scale


class TemporalUpBlock(nn.Module):
    """TUB, 2D variant: a shared NeRV block up-samples the 3 streams, a residual 1x1 conv mixes them in time.

    Input and output [B, 3, C, h, w] (backward pair, frame, forward pair); ``merge`` returns the
    frame's features [B, C, h, w] from all three instead.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, kernel: int, activation: str, merge: bool
    ) -> None:
        super().__init__()
        self.up = NeRVBlock(in_channels, out_channels, stride, activation, kernel)
        self.mix = nn.Conv2d(3 * out_channels, out_channels if merge else 3 * out_channels, 1)
        self.act = ACTIVATIONS[activation]()
        self.merge = merge

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        y = self.up(x.flatten(0, 1))  # [3B, C, h, w]: time folded into the batch
        y = y.unflatten(0, (b, 3))
        folded = y.flatten(1, 2)  # [B, 3C, h, w]: time folded into channels
        if self.merge:
            return self.act(self.mix(folded)) + y[:, 1]
        return (self.act(self.mix(folded)) + folded).unflatten(1, (3, -1))


@register_backbone
class SNeRVT(SNeRVB):
    name = SNERV_T.name
    arch_version = 1
    config_cls = SNeRVTConfig
    embedding_names = ("embeddings", "temporal")

    def __init__(self, config: SNeRVTConfig) -> None:
        EmbeddingBackbone.__init__(self, config)
        gh, gw = config.grid
        th, tw = config.temporal_grid
        self.embeddings = nn.Parameter(torch.zeros(config.num_frames, config.embed_channels, gh, gw))
        self.temporal = nn.Parameter(torch.zeros(config.num_frames + 1, config.temporal_channels, th, tw))
        self.stem = nn.Conv2d(config.embed_channels, config.stem_channels, 1)
        widths = (config.stem_channels, *config.channels)
        start = config.temporal_start
        self.temporal_stem = nn.Conv2d(config.temporal_channels, widths[start], 1)
        blocks = []
        for i, (cin, cout, s, k) in enumerate(zip(widths, widths[1:], config.strides, config.kernels)):
            if i < start:
                blocks.append(NeRVBlock(cin, cout, s, config.activation, k))
            else:
                blocks.append(TemporalUpBlock(cin, cout, s, k, config.activation, merge=i == len(config.strides) - 1))
        self.blocks = nn.ModuleList(blocks)
        self._build_fusion(config)

    def frame_embeddings(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"embeddings": self.embeddings[idx], "backward": self.temporal[idx], "forward": self.temporal[idx + 1]}

    def decode_bands(self, embeds: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.stem(embeds["embeddings"])
        feats = [x]
        start = self.config.temporal_start
        for block in self.blocks[:start]:
            feats.append(block(feats[-1]))
        if start < len(self.blocks):
            pair = self.temporal_stem(torch.cat([embeds["backward"], embeds["forward"]]))
            back, fwd = pair.chunk(2)
            streams = torch.stack([back, feats[-1], fwd], dim=1)  # [B, 3, C, h, w]
            feats[-1] = streams[:, 1]
            for block in self.blocks[start:]:
                streams = block(streams)
                feats.append(streams if streams.dim() == 4 else streams[:, 1])
        return self._fuse(feats)
