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

import functools
import math
from collections.abc import Container, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...models.base import Backbone
from .. import register_backbone
from ..grid.model import CONTEXT_INPUTS, Grid, LatentGridConfig, upsample_bilinear
from . import MCGRID

QUARTER = 4.0  # motion symbols are quarter pixels


LOW_DELAY, RANDOM_ACCESS = 0, 1  # config ``order``: P frames only, or a P frame then hierarchical B frames


@dataclass(frozen=True)
class MCGridConfig(LatentGridConfig):
    levels: int = 5
    gop: int = 16  # frames per closed group: one intra frame, then gop - 1 predicted ones
    block: int = 16  # pixels per side of a motion block
    # the finest latent grid has one value per finest x finest pixels: 4 measured 21.39 dB at 0.0407 bpp where 2
    # gave 21.22 dB at 0.0723 (BBB 320x180x32, lambda 0.3, 150 CPU-s; half the bits of 2 were its finest grid)
    finest: int = 4
    # LOW_DELAY: each predicted frame from the one before it; RANDOM_ACCESS: the group's last frame from its
    # first, then each frame between two decoded ones from both (hierarchical B frames, bi-prediction)
    order: int = LOW_DELAY

    def validate(self) -> None:
        super().validate()
        if not (1 <= self.gop <= 256 and self.block in (4, 8, 16, 32, 64) and self.finest in (1, 2, 4)):
            raise ValueError("gop must be in 1..256, block one of 4, 8, 16, 32, 64 and finest one of 1, 2, 4")
        if self.order not in (LOW_DELAY, RANDOM_ACCESS):
            raise ValueError("order must be 0 (low delay) or 1 (random access)")

    def to_json(self) -> dict:
        """``order`` only when not 0: a low-delay file is the 1.3 format's nine keys, readable by a 1.3 reader."""
        obj = super().to_json()
        return obj if self.order else {k: v for k, v in obj.items() if k != "order"}

    @classmethod
    def from_json(cls, obj: dict) -> "MCGridConfig":
        return super().from_json(obj if "order" in obj else {**obj, "order": LOW_DELAY})

    @property
    def references_per_frame(self) -> int:
        """R: the decoded frames one predicted frame may be made from (motion fields per frame)."""
        return 2 if self.order == RANDOM_ACCESS else 1

    def frames_per_slice(self, k: int) -> int:
        """Every grid has one slice per frame."""
        return 1

    def level_shape(self, k: int) -> tuple[int, int, int]:
        """Latent grid k < L (k = 0 is the coarsest), or motion grid k = L ... L + 2R - 1."""
        if k >= self.levels:
            return (self.num_frames, math.ceil(self.height / self.block), math.ceil(self.width / self.block))
        factor = self.finest * 2 ** (self.levels - 1 - k)
        return (self.num_frames, math.ceil(self.height / factor), math.ceil(self.width / factor))

    def is_intra(self, frame: int) -> bool:
        return frame % self.gop == 0

    def group(self, frame: int) -> range:
        """The frames of ``frame``'s closed group."""
        start = frame - frame % self.gop
        return range(start, min(start + self.gop, self.num_frames))

    def references(self, frame: int) -> tuple[int, ...]:
        """The decoded frames ``frame`` is made from: () for an intra frame, (r,) for a P frame, (a, b) a B frame."""
        group = self.group(frame)
        return tuple(group.start + r for r in _structure(len(group), self.order)[frame - group.start][0])

    def depth(self, frame: int) -> int:
        """0 intra, 1 P, 2 and on the B frames' levels of the hierarchy (low delay: every P frame 1)."""
        group = self.group(frame)
        return _structure(len(group), self.order)[frame - group.start][1]

    def backward_ratio(self, frame: int) -> float:
        """A B frame f between a and b: (b - f) / (f - a), the motion toward b that linear motion predicts
        from the motion toward a, times -1 (its second motion field codes the difference); 0 otherwise."""
        references = self.references(frame)
        if len(references) < 2:
            return 0.0
        a, b = references
        return (b - frame) / (frame - a)

    def made_from(self, frames: Iterable[int], have: Container[int] = ()) -> set[int]:
        """``frames`` and every frame they are made from, directly or not, but those in ``have``."""
        needed: set[int] = set()
        todo = [f for f in frames if f not in have]
        while todo:
            frame = todo.pop()
            if frame not in needed:
                needed.add(frame)
                todo += [r for r in self.references(frame) if r not in have]
        return needed

    def coding_order(self, frame: int) -> list[int]:
        """The frames of ``frame``'s group in the order they are made (each after its references)."""
        group = self.group(frame)
        return [group.start + f for f in _structure(len(group), self.order)]


@functools.lru_cache(maxsize=64)
def _structure(length: int, order: int) -> dict[int, tuple[tuple[int, ...], int]]:
    """A group of ``length`` frames in coding order: frame -> (references, depth), all relative to its start."""
    frames: dict[int, tuple[tuple[int, ...], int]] = {0: ((), 0)}
    if order == LOW_DELAY or length < 3:
        frames.update({f: ((f - 1,), 1) for f in range(1, length)})
        return frames
    last = length - 1
    frames[last] = ((0,), 1)
    spans = [(0, last, 2)]
    while spans:  # breadth first: every frame of a level before the next level's
        a, b, depth = spans.pop(0)
        if b - a < 2:
            continue
        middle = (a + b) // 2
        frames[middle] = ((a, b), depth)
        spans += [(a, middle, depth + 1), (middle, b, depth + 1)]
    return frames


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
        refs = config.references_per_frame
        self.context = nn.Sequential(
            nn.Linear(CONTEXT_INPUTS, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2)
        )
        self.synthesis = _convs([levels, channels, channels, 3])  # intra frames
        self.refine = nn.ModuleList(nn.Conv2d(3, 3, 3, padding=1) for _ in range(2))
        # predicted frames: [X, P_1 .. P_R] -> a correction (and, with two references, the blend's logit)
        self.predicted = _convs([levels + 3 * refs, channels, channels, 3 + refs - 1])
        self.predicted_refine = nn.Conv2d(3, 3, 3, padding=1)
        self.latents = nn.ParameterList(
            nn.Parameter(torch.zeros(config.level_shape(k))) for k in range(config.levels + 2 * refs)
        )
        self.slice_estimates: list[torch.Tensor] | None = None
        # decoding: (key, {frame: decoded frame}) of the current group's frames that others still refer to
        self._cache: tuple | None = None
        self.frames_rendered = 0  # decoding: frames synthesized, including the references of those asked for
        # predicted frames start as their prediction (the plain mean of both with two references)
        self.start_small(*self.refine, self.predicted_refine, self.predicted[-1])

    # --- sizing -------------------------------------------------------------------------
    @classmethod
    def latent_count(cls, config: MCGridConfig) -> int:
        return sum(math.prod(config.level_shape(k)) for k in range(config.levels + 2 * config.references_per_frame))

    def coarser_of(self, level: int) -> int | None:
        return level - 1 if 0 < level < self.config.levels else None

    def motion_levels(self) -> tuple[int, ...]:
        """The motion grids: x then y of the first reference, then of the second (random access)."""
        return tuple(range(self.config.levels, len(self.latents)))

    def motion_tensors(self) -> tuple[str, ...]:
        return tuple(f"latents.{k}" for k in self.motion_levels())

    def macs_split(self) -> dict[str, float]:
        """Decoder multiply-adds per output pixel, averaged over a group: motion, residual, synthesis."""
        cfg = self.config
        pixels = cfg.height * cfg.width
        w, c, levels, refs = cfg.context_width, cfg.synthesis_width, cfg.levels, cfg.references_per_frame
        context = CONTEXT_INPUTS * w + w * w + 2 * w
        predicted = (cfg.gop - 1) / cfg.gop  # share of predicted frames
        motion_latents = 2 * refs * math.prod(cfg.level_shape(levels)[1:]) / pixels
        residual_latents = sum(math.prod(cfg.level_shape(k)[1:]) for k in range(levels)) / pixels
        intra = levels * c + c * c + 3 * c + 2 * 27 * 3
        inter = (levels + 3 * refs) * c + c * c + (3 + refs - 1) * c + 27 * 3 + (refs - 1) * 9
        return {
            # the motion's context model, per reference its bilinear field (2 x 4) and bicubic fetch (16 x 3)
            "motion": predicted * (motion_latents * context + refs * (8 + 48)),
            "residual": residual_latents * context + 4 * levels,
            "synthesis": predicted * inter + (1 - predicted) * intra,
        }

    def macs_per_pixel(self) -> float:
        return sum(self.macs_split().values())

    # --- rendering ----------------------------------------------------------------------
    def synthesize(
        self, frames: torch.Tensor, grids: list[torch.Tensor] | None = None, offsets: list[int] | None = None
    ) -> torch.Tensor:
        """Frame indices [B] -> RGB [B, 3, H, W] (unclamped), each predicted frame from the decoded
        frames it refers to (rendered here first, or kept from the previous call when decoding)."""
        cfg = self.config
        grids = list(self.latents) if grids is None else grids
        offsets = offsets or [0] * len(grids)
        wanted = [int(i) for i in frames.tolist()]
        key = self._cache_key(grids)
        rendered: dict[int, torch.Tensor] = {}
        if self._cache is not None and self._cache[0] == key:
            rendered.update(self._cache[1])
        needed = cfg.made_from(wanted, have=rendered)
        groups = sorted({i - i % cfg.gop for i in needed})
        todo = [j for g in groups for j in cfg.coding_order(g) if j in needed]  # each after its references
        if todo:
            indices = torch.tensor(todo, device=grids[0].device)
            # per frame by unbind, not by slicing: a slice's backward fills a zero tensor the size of all
            # the frames' planes, once per frame (a quarter of a step's time on 16-frame groups)
            latents, flows = (planes.unbind(0) for planes in self._planes(indices, grids, offsets))
            for n, j in enumerate(todo):
                # training: a frame learns to predict from its references, not to change them (as Cool-chic
                # trains a frame once those it refers to are final); a gradient down the chain made the first
                # steps on whole groups move the intra frame's latents by 3x their learning rate and broke it
                references = [rendered[r].detach() for r in cfg.references(j)]
                flow = flows[n]
                if len(references) == 2:  # the second field codes the difference from linear motion
                    flow = torch.cat([flow[0:2], flow[2:4] - cfg.backward_ratio(j) * flow[0:2]])
                rendered[j] = self._frame(latents[n][None], references, flow)
            self.frames_rendered += len(todo)
        if key is not None and wanted:
            self._cache = (key, self._still_referred(rendered, wanted[-1]))
        return torch.stack([rendered[i][0] for i in wanted])

    def _still_referred(self, rendered: dict[int, torch.Tensor], last: int) -> dict[int, torch.Tensor]:
        """The decoded frames of ``last``'s group that a frame after ``last`` refers to (a decoder asks
        for frames in increasing order): all the next call may need without rendering them again."""
        cfg = self.config
        later = [f for f in cfg.group(last) if f > last]
        referred = {r for f in later for r in cfg.references(f)}
        return {f: image for f, image in rendered.items() if f in referred}

    def _cache_key(self, grids: list[torch.Tensor]) -> tuple | None:
        """What the decoding cache is valid for: these tensors at these versions (None while training)."""
        if torch.is_grad_enabled():
            return None
        # inference tensors (a decoder's, never changed after loading) keep no version counter
        return tuple((id(t), -1 if t.is_inference() else t._version) for t in [*grids, *self.parameters()])

    def _planes(
        self, frames: torch.Tensor, grids: list[torch.Tensor], offsets: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The frames' latent planes at full size [n, L, H, W] and motion fields in pixels [n, 2R, H, W]
        (bilinear, half-pixel centres): everything that does not depend on decoded pixels, at once."""
        cfg = self.config
        size = (cfg.height, cfg.width)

        def full(k: int) -> torch.Tensor:
            plane = grids[k][frames - offsets[k]]
            return upsample_bilinear(plane, size) if plane.shape[-2:] != size else plane

        latents = torch.stack([full(k) for k in range(cfg.levels)], dim=1)
        return latents, torch.stack([full(k) for k in self.motion_levels()], 1) / QUARTER

    def _frame(self, x: torch.Tensor, references: list[torch.Tensor], flows: torch.Tensor) -> torch.Tensor:
        """One frame [1, 3, H, W] from its latent planes ``x`` [1, L, H, W]: intra (no ``references``),
        or predicted from the decoded ``references``, reference r along ``flows[2r : 2r + 2]``."""
        if not references:
            return self.picture(x)  # as a grid frame
        predictions = [warp(image.clamp(0.0, 1.0), flows[2 * r : 2 * r + 2]) for r, image in enumerate(references)]
        predictions += predictions[-1:] * (self.config.references_per_frame - len(predictions))  # a P frame: P, P
        x = torch.cat([x, *predictions], dim=1)
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.predicted(x)
        prediction = predictions[0]
        if len(predictions) == 2:  # bi-prediction: a per-pixel blend of the two
            blend = torch.sigmoid(out[:, 3:4])
            prediction = predictions[1] + blend * (predictions[0] - predictions[1])
        # out first: the sum takes its memory layout (channels last on the CPU), where the 3x3 refinement
        # trains 3.5x faster than on the warp's contiguous layout (fwd + bwd 2.0 against 7.1 ms, 320x180)
        z = out[:, :3] + prediction
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
