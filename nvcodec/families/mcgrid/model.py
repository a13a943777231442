"""MC-grid: per-frame latents, intra and predicted frames in closed groups (spec/families/mcgrid.md).

    latents[k], k < L:   [N, H_k, W_k], H_k = ceil(H / (s 2^(L-1-k))): each frame's 2-D multi-resolution latents,
                         the finest with one value per s x s pixels (s = config ``finest``)
    latents[L], [L + 1]: [N, Hb, Wb], Hb = ceil(H / B): each frame's motion (x, then y) per BxB block, quarter pixels
    intra frame (first of each group of ``gop``):
        Y = I-synthesis(X), X = the frame's L latent planes upsampled to H x W (bilinear), as grid
    predicted frame:
        P = the previous decoded frame (clamped to [0, 1]) warped by the motion upsampled to a per-pixel field
            (bilinear), read with bicubic interpolation at x + motion (edges replicated)
        Z = P + P-synthesis([X, P]);  Y = Z + Conv3x3(GELU(Z))

The latents (and the motion) are coded by grid's ``LatentCodec``: each under a Laplace that the
integer context MLP predicts from its decoded neighbours: the frame before and after and the four
around it in the same grid (second checkerboard pass), and five values of the next coarser grid of
the same frame (none for motion). Every entropy-coded symbol is independent of decoded pixels, so
the latents decode bit-exactly on every machine whatever the floating-point rendering does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...models.base import Backbone
from .. import register_backbone
from ..grid.model import CONTEXT_INPUTS, Grid, LatentGridConfig, upsample_bilinear
from . import MCGRID

QUARTER = 4.0  # motion symbols are quarter pixels


@dataclass(frozen=True)
class MCGridConfig(LatentGridConfig):
    levels: int = 5
    gop: int = 16  # frames per closed group: one intra frame, then gop - 1 predicted ones
    block: int = 16  # pixels per side of a motion block
    # the finest latent grid has one value per finest x finest pixels: 4 measured 21.39 dB at 0.0407 bpp where 2
    # gave 21.22 dB at 0.0723 (BBB 320x180x32, lambda 0.3, 150 CPU-s; half the bits of 2 were its finest grid)
    finest: int = 4

    def validate(self) -> None:
        super().validate()
        if not (1 <= self.gop <= 256 and self.block in (4, 8, 16, 32, 64) and self.finest in (1, 2, 4)):
            raise ValueError("gop must be in 1..256, block one of 4, 8, 16, 32, 64 and finest one of 1, 2, 4")

    def frames_per_slice(self, k: int) -> int:
        """Every grid has one slice per frame."""
        return 1

    def level_shape(self, k: int) -> tuple[int, int, int]:
        """Latent grid k < L (k = 0 is the coarsest), or motion grid k = L, L + 1."""
        if k >= self.levels:
            return (self.num_frames, math.ceil(self.height / self.block), math.ceil(self.width / self.block))
        factor = self.finest * 2 ** (self.levels - 1 - k)
        return (self.num_frames, math.ceil(self.height / factor), math.ceil(self.width / factor))

    def is_intra(self, frame: int) -> bool:
        return frame % self.gop == 0


def _convs(widths: list[int]) -> nn.Sequential:
    """1x1 convolutions with GELU between them."""
    layers: list[nn.Module] = []
    for index, (a, b) in enumerate(zip(widths, widths[1:])):
        layers += [nn.Conv2d(a, b, 1)] + ([nn.GELU()] if index < len(widths) - 2 else [])
    return nn.Sequential(*layers)


@register_backbone
class MCGrid(Grid):
    name = MCGRID.name
    arch_version = 1
    config_cls = MCGridConfig
    time_ratio = 1  # a latent's coarser grid is the same frame's

    def __init__(self, config: MCGridConfig) -> None:
        Backbone.__init__(self, config)  # not Grid's: the layers differ
        width, channels, levels = config.context_width, config.synthesis_width, config.levels
        self.context = nn.Sequential(
            nn.Linear(CONTEXT_INPUTS, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2)
        )
        self.synthesis = _convs([levels, channels, channels, 3])  # intra frames
        self.refine = nn.ModuleList(nn.Conv2d(3, 3, 3, padding=1) for _ in range(2))
        self.predicted = _convs([levels + 3, channels, channels, 3])  # predicted frames: [X, P] -> correction
        self.predicted_refine = nn.Conv2d(3, 3, 3, padding=1)
        self.latents = nn.ParameterList(
            nn.Parameter(torch.zeros(config.level_shape(k))) for k in range(config.levels + 2)
        )
        self.slice_estimates: list[torch.Tensor] | None = None
        self._last: tuple | None = None  # decoding: (key, frame index, frame) of the last frame rendered
        self.frames_rendered = 0  # decoding: frames synthesized, including the references of those asked for
        self.start_small(*self.refine, self.predicted_refine, self.predicted[-1])  # predicted frames start as P

    # --- sizing -------------------------------------------------------------------------
    @classmethod
    def latent_count(cls, config: MCGridConfig) -> int:
        return sum(math.prod(config.level_shape(k)) for k in range(config.levels + 2))

    def coarser_of(self, level: int) -> int | None:
        return level - 1 if 0 < level < self.config.levels else None

    def motion_levels(self) -> tuple[int, int]:
        return self.config.levels, self.config.levels + 1

    def motion_tensors(self) -> tuple[str, ...]:
        return tuple(f"latents.{k}" for k in self.motion_levels())

    def macs_split(self) -> dict[str, float]:
        """Decoder multiply-adds per output pixel, averaged over a group: motion, residual, synthesis."""
        cfg = self.config
        pixels = cfg.height * cfg.width
        w, c, levels = cfg.context_width, cfg.synthesis_width, cfg.levels
        context = CONTEXT_INPUTS * w + w * w + 2 * w
        predicted = (cfg.gop - 1) / cfg.gop  # share of predicted frames
        motion_latents = 2 * math.prod(cfg.level_shape(levels)[1:]) / pixels
        residual_latents = sum(math.prod(cfg.level_shape(k)[1:]) for k in range(levels)) / pixels
        intra = levels * c + c * c + 3 * c + 2 * 27 * 3
        inter = (levels + 3) * c + c * c + 3 * c + 27 * 3
        return {
            # the motion's context model, its bilinear field (2 x 4) and the bicubic fetch (16 taps x 3 colours)
            "motion": predicted * (motion_latents * context + 8 + 48),
            "residual": residual_latents * context + 4 * levels,
            "synthesis": predicted * inter + (1 - predicted) * intra,
        }

    def macs_per_pixel(self) -> float:
        return sum(self.macs_split().values())

    # --- rendering ----------------------------------------------------------------------
    def synthesize(
        self, frames: torch.Tensor, grids: list[torch.Tensor] | None = None, offsets: list[int] | None = None
    ) -> torch.Tensor:
        """Frame indices [B] (ascending) -> RGB [B, 3, H, W] (unclamped), each predicted frame from its
        group's frames before it (rendered here, or the last frame of the previous call when decoding)."""
        grids = list(self.latents) if grids is None else grids
        offsets = offsets or [0] * len(grids)
        wanted = [int(i) for i in frames.tolist()]
        gop = self.config.gop
        key = self._cache_key(grids)
        rendered: dict[int, torch.Tensor] = {}
        if self._last is not None and self._last[0] == key:
            rendered[self._last[1]] = self._last[2]
        todo: list[tuple[int, int | None]] = []  # (frame, the frame it is predicted from or None), in order
        for i in sorted(set(wanted)):
            start = i - i % gop
            done = [j for j in [*rendered, *(f for f, _ in todo)] if start <= j <= i]
            first = max(done) + 1 if done else start
            todo += [(j, None if self.config.is_intra(j) else j - 1) for j in range(first, i + 1)]
        if todo:
            indices = torch.tensor([j for j, _ in todo], device=grids[0].device)
            latents, flows = self._planes(indices, grids, offsets)
            for n, (j, reference) in enumerate(todo):
                # training: a frame learns to predict from its reference, not to change it (as Cool-chic trains a
                # frame once those it refers to are final); a gradient down the chain made the first steps on whole
                # groups move the intra frame's latents by 3x their learning rate and broke it
                previous = None if reference is None else rendered[reference].detach()
                rendered[j] = self._frame(latents[n : n + 1], previous, flows[n])
            self.frames_rendered += len(todo)
            if key is not None:
                self._last = (key, todo[-1][0], rendered[todo[-1][0]])
        return torch.stack([rendered[i][0] for i in wanted])

    def _cache_key(self, grids: list[torch.Tensor]) -> tuple | None:
        """What the decoding cache is valid for: these tensors at these versions (None while training)."""
        if torch.is_grad_enabled():
            return None
        # inference tensors (a decoder's, never changed after loading) keep no version counter
        return tuple((id(t), -1 if t.is_inference() else t._version) for t in [*grids, *self.parameters()])

    def _planes(
        self, frames: torch.Tensor, grids: list[torch.Tensor], offsets: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The frames' latent planes at full size [n, L, H, W] and motion fields in pixels [n, 2, H, W]
        (bilinear, half-pixel centres): everything that does not depend on decoded pixels, at once."""
        cfg = self.config
        size = (cfg.height, cfg.width)

        def full(k: int) -> torch.Tensor:
            plane = grids[k][frames - offsets[k]]
            return upsample_bilinear(plane, size) if plane.shape[-2:] != size else plane

        mx, my = self.motion_levels()
        return torch.stack([full(k) for k in range(cfg.levels)], dim=1), torch.stack([full(mx), full(my)], 1) / QUARTER

    def _frame(self, x: torch.Tensor, previous: torch.Tensor | None, flow: torch.Tensor) -> torch.Tensor:
        """One frame [1, 3, H, W] from its latent planes ``x`` [1, L, H, W]: intra (``previous`` None),
        or predicted from the decoded ``previous`` frame along ``flow`` [2, H, W]."""
        if previous is None:
            return self.picture(x)  # as a grid frame
        prediction = warp(previous.clamp(0.0, 1.0), flow)
        x = torch.cat([x, prediction], dim=1)
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        z = prediction + self.predicted(x)
        return z + self.predicted_refine(F.gelu(z))


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """image [1, C, H, W] read at (x + flow_x, y + flow_y) for every pixel: bicubic (A = -0.75), edges
    replicated (PyTorch ``grid_sample`` with ``padding_mode="border"``, half-pixel centres)."""
    _, _, height, width = image.shape
    ys = torch.arange(height, device=image.device, dtype=flow.dtype)[:, None]
    xs = torch.arange(width, device=image.device, dtype=flow.dtype)[None, :]
    gx = (2 * (xs + flow[0]) + 1) / width - 1
    gy = (2 * (ys + flow[1]) + 1) / height - 1
    grid = torch.stack([gx, gy], dim=-1)[None].to(image.dtype)
    return F.grid_sample(image, grid, mode="bicubic", padding_mode="border", align_corners=False)
