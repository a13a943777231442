"""Grid: latent grids at L resolutions -> trilinear upsampling -> tiny synthesis (spec/families/grid.md).

    latents[k]: [T_k, H_k, W_k], k = 0 (coarsest) .. L-1 (finest), with
                T_k = ceil(T / (s * 2^(L-1-k))), H_k = ceil(H / 2^(L-1-k)), W_k likewise: a 3-D grid halved in t,
                y, x per level (s = finest_frames_per_slice, the finest grid's step in frames)
    frame f    = sum over levels of the grid read at (t, y, x) of f's pixels (linear in t, bilinear in y, x)
                 -> 1x1 convs (L -> C -> C -> 3, GELU) + 0.5 -> two residual 3x3 convs -> RGB

Each latent is coded (``LatentCodec``) under a Laplace whose centre and scale the context MLP
predicts, in fixed point (compress/context.py), from 13 integers: its six face neighbours in the
grid (t +- 1, y +- 1, x +- 1), known only in the second of two checkerboard passes; five values of
the next coarser grid around it; the pass; the level. Both passes of a level decode all their
latents at once.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...compress.context import (
    fixed_point,
    integer_mlp,
    laplace_bits,
    tables_from_outputs,
)
from ...compress.entropy import (
    CodedSymbols,
    ConditionalDecoder,
    ConditionalEncoder,
    ModelId,
    conditional_code_length,
)
from ...errors import PayloadError, UsageError
from ...models.base import MAX_PARAMS, Backbone, BackboneConfig
from .. import register_backbone
from . import GRID

CONTEXT_INPUTS = 13  # 6 neighbours, 5 coarser values, pass, level
CHUNK_POSITIONS = 1 << 18  # latents whose context features are built at once (whole slices, at least one)
MAX_FRAME_PIXELS = 1 << 21  # 1920x1088: the decoder's context features for one slice stay under about 1 GB
MAX_TENSOR_ELEMENTS = 1 << 26  # a decoder's limit on one tensor (bitstream_spec.md, Annex A.7): the finest grid


@dataclass(frozen=True)
class LatentGridConfig(BackboneConfig):
    """What every latent-grid family has: L grids, a synthesis and a context MLP of these widths."""

    levels: int = 7
    synthesis_width: int = 16
    context_width: int = 16

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.levels <= 12:
            raise ValueError("levels must be between 1 and 12")
        if not (1 <= self.synthesis_width <= 64 and 1 <= self.context_width <= 32):
            raise ValueError("synthesis_width must be in 1..64 and context_width in 1..32")
        if self.height * self.width > MAX_FRAME_PIXELS:
            raise ValueError(f"frames of {self.width}x{self.height} exceed {MAX_FRAME_PIXELS} pixels")


@dataclass(frozen=True)
class GridConfig(LatentGridConfig):
    finest_frames_per_slice: int = 1  # temporal step of the finest grid (each coarser grid doubles it)

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.finest_frames_per_slice <= 64:
            raise ValueError("finest_frames_per_slice must be in 1..64")

    def frames_per_slice(self, k: int) -> int:
        """Frames one slice of grid k spans (k = 0 is the coarsest)."""
        return self.finest_frames_per_slice * 2 ** (self.levels - 1 - k)

    def level_shape(self, k: int) -> tuple[int, int, int]:
        """Grid k's size (k = 0 is the coarsest)."""
        factor = 2 ** (self.levels - 1 - k)
        return (
            math.ceil(self.num_frames / self.frames_per_slice(k)),
            math.ceil(self.height / factor),
            math.ceil(self.width / factor),
        )


def _parity(slices: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(t + y + x) mod 2 for every position of the given slices: 0 = first pass, 1 = second."""
    ys, xs = torch.arange(height, device=slices.device), torch.arange(width, device=slices.device)
    return (slices[:, None, None] + ys[None, :, None] + xs[None, None, :]) % 2


def context_features(
    grid: torch.Tensor,
    coarser: torch.Tensor | None,
    level: int,
    slices: torch.Tensor,
    offset: int = 0,
    coarser_offset: int = 0,
    time_ratio: int = 2,
) -> torch.Tensor:
    """The context model's inputs for every position of ``slices`` of ``grid``: [n, H, W, 13].

    Neighbours outside the grid are 0; the six same-grid neighbours are 0 at first-pass positions.
    ``grid`` and ``coarser`` may be windows of whole grids starting at slice ``offset`` and
    ``coarser_offset`` (training reads only the slices it needs; a window ends at the grid's edge
    or one slice beyond those asked for). ``coarser`` has half the rows and columns of ``grid`` and
    one slice per ``time_ratio`` of its slices (grid: 2; per-frame latents: 1).
    """
    _, height, width = grid.shape
    slices = slices.to(grid.device)
    padded = F.pad(grid, (1, 1, 1, 1, 1, 1))
    s = slices + 1
    same = torch.stack(
        [
            padded[s - 1, 1:-1, 1:-1],
            padded[s + 1, 1:-1, 1:-1],
            padded[s, :-2, 1:-1],
            padded[s, 2:, 1:-1],
            padded[s, 1:-1, :-2],
            padded[s, 1:-1, 2:],
        ],
        dim=-1,
    )
    parity = _parity(slices + offset, height, width).to(grid.dtype)
    same = same * parity[..., None]
    if coarser is None:
        around = torch.zeros(same.shape[:-1] + (5,), dtype=grid.dtype, device=grid.device)
    else:
        plane = F.pad(coarser, (1, 1, 1, 1))[(slices + offset) // time_ratio - coarser_offset]  # [n, H'+2, W'+2]
        ys = torch.arange(height, device=grid.device) // 2 + 1
        xs = torch.arange(width, device=grid.device) // 2 + 1

        def at(dy: int, dx: int) -> torch.Tensor:
            return plane[:, ys + dy][:, :, xs + dx]

        around = torch.stack([at(0, 0), at(-1, 0), at(1, 0), at(0, -1), at(0, 1)], dim=-1)
    level_feature = torch.full_like(parity, float(level))
    return torch.cat([same, around, parity[..., None], level_feature[..., None]], dim=-1)


def _chunks(grid: torch.Tensor) -> list[torch.Tensor]:
    """Runs of whole slices of ``grid`` with about CHUNK_POSITIONS latents each (at least one slice)."""
    step = max(1, CHUNK_POSITIONS // (grid.shape[1] * grid.shape[2]))
    return [torch.arange(start, min(start + step, grid.shape[0])) for start in range(0, grid.shape[0], step)]


@register_backbone
class Grid(Backbone):
    name = GRID.name
    arch_version = 1
    config_cls = GridConfig

    def __init__(self, config: GridConfig) -> None:
        super().__init__(config)
        width, channels = config.context_width, config.synthesis_width
        self.context = nn.Sequential(
            nn.Linear(CONTEXT_INPUTS, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2)
        )
        self.synthesis = nn.Sequential(
            nn.Conv2d(config.levels, channels, 1),
            nn.GELU(),
            nn.Conv2d(channels, channels, 1),
            nn.GELU(),
            nn.Conv2d(channels, 3, 1),
        )
        self.refine = nn.ModuleList(nn.Conv2d(3, 3, 3, padding=1) for _ in range(2))
        self.latents = nn.ParameterList(nn.Parameter(torch.zeros(config.level_shape(k))) for k in range(config.levels))
        self.slice_estimates: list[torch.Tensor] | None = (
            None  # bits per slice of each grid (training's running estimate)
        )
        self.start_small(*self.refine)

    def start_small(self, *zeroed: nn.Module) -> None:
        """The context model starts predicting small scales (untrained latents are all zero), and the
        ``zeroed`` layers (corrections on top of a first guess) start as nothing."""
        if self.context[-1].weight.is_meta:
            return
        with torch.no_grad():
            self.context[-1].weight.mul_(0.1)
            self.context[-1].bias.copy_(torch.tensor([0.0, 8.0]))
            for layer in zeroed:
                layer.weight.zero_()
                layer.bias.zero_()

    # --- sizing -------------------------------------------------------------------------
    @classmethod
    def config_for_budget(cls, height: int, width: int, num_frames: int, params: int) -> GridConfig:
        """One size for every rate: lambda, not the parameter count, sets what the latents spend."""
        if height * width > MAX_FRAME_PIXELS:
            raise UsageError(
                f"--model {cls.name} takes frames of at most {MAX_FRAME_PIXELS} pixels (1920x1088), not "
                f"{width}x{height}: scale the input down with --resize, or use another --model"
            )
        config = cls.config_cls(height, width, num_frames)
        latents = cls.latent_count(config)
        finest = math.prod(config.level_shape(config.levels - 1))
        if latents > MAX_PARAMS // 2 or finest > MAX_TENSOR_ELEMENTS:
            raise UsageError(
                f"--model {cls.name} would hold {latents} latents for {num_frames} frames of {width}x{height}, "
                f"above the decoder's limit: encode fewer frames (--frames) or a smaller size (--resize)"
            )
        return config

    @classmethod
    def latent_count(cls, config: GridConfig) -> int:
        return sum(math.prod(config.level_shape(k)) for k in range(config.levels))

    @classmethod
    def network_params(cls, config: GridConfig) -> int:
        return cls.count_params(config) - cls.latent_count(config)

    def context_coded(self) -> tuple[str, ...]:
        return tuple(f"latents.{k}" for k in range(len(self.latents)))

    time_ratio = 2  # slices of a grid per slice of its coarser grid

    def coarser_of(self, level: int) -> int | None:
        """The grid whose values around a latent are context for it (half the rows and columns)."""
        return level - 1 if level > 0 else None

    def context_inputs(self) -> tuple[str, ...]:
        """The context MLP's tensors (weight, bias per layer): what the latents' tables are computed from."""
        return tuple(name for name in self.coded_tensors() if name.startswith("context."))

    def macs_per_pixel(self) -> float:
        """Decoder multiply-adds per output pixel: context model (per latent), upsampling, synthesis."""
        cfg = self.config
        latents = sum(math.prod(cfg.level_shape(k)) for k in range(cfg.levels)) / (
            cfg.num_frames * cfg.height * cfg.width
        )
        w, c = cfg.context_width, cfg.synthesis_width
        context = CONTEXT_INPUTS * w + w * w + 2 * w
        synthesis = cfg.levels * c + c * c + 3 * c + 2 * 27 * 3
        return latents * context + 6 * cfg.levels + synthesis

    # --- rendering ----------------------------------------------------------------------
    def synthesize(
        self, frames: torch.Tensor, grids: list[torch.Tensor] | None = None, offsets: list[int] | None = None
    ) -> torch.Tensor:
        """Frame indices [B] -> RGB [B, 3, H, W] (unclamped) from ``grids`` (default: the latents),
        which may be windows starting at slices ``offsets``."""
        cfg = self.config
        grids = list(self.latents) if grids is None else grids
        planes = []
        for k, grid in enumerate(grids):
            factor = cfg.frames_per_slice(k)
            last = cfg.level_shape(k)[0] - 1
            position = ((frames.to(torch.float32) + 0.5) / factor - 0.5).clamp(0, last)
            t0 = position.floor().long()
            t1 = (t0 + 1).clamp_max(last)
            weight = (position - t0).to(grid.dtype)[:, None, None]
            start = offsets[k] if offsets else 0
            plane = grid[t0 - start] * (1 - weight) + grid[t1 - start] * weight
            if plane.shape[-2:] != (cfg.height, cfg.width):
                plane = upsample_bilinear(plane, (cfg.height, cfg.width))
            planes.append(plane)
        return self.picture(torch.stack(planes, dim=1))

    def picture(self, x: torch.Tensor) -> torch.Tensor:
        """Latent planes at full size [B, L, H, W] -> RGB [B, 3, H, W] (unclamped): synthesis, refinements."""
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.synthesis(x) + 0.5
        x = x + self.refine[0](x)
        return x + self.refine[1](F.gelu(x))

    def render_frames(self, t: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        frames = torch.round(t * max(self.config.num_frames - 1, 1)).long()
        return self.synthesize(frames)

    # --- rate (training) ----------------------------------------------------------------
    def slice_bits(
        self,
        grids: list[torch.Tensor],
        level: int,
        slices: torch.Tensor,
        offsets: list[int] | None = None,
        reach: float | None = None,
    ) -> torch.Tensor:
        """Bits of ``slices`` of grid ``level`` (values as given: noisy or rounded) under the float
        context model, one sum per slice [n]; differentiable in the values and the context MLP.
        ``grids`` may be windows starting at ``offsets``; ``slices`` index the window. ``reach``:
        the level's ``level_reach`` when the caller already has it."""
        up = self.coarser_of(level)
        coarser = None if up is None else grids[up]
        offset, coarser_offset = (offsets[level], 0 if up is None else offsets[up]) if offsets else (0, 0)
        features = context_features(grids[level], coarser, level, slices, offset, coarser_offset, self.time_ratio)
        outputs = self.context(features)
        reach = self.level_reach(level) if reach is None else reach
        bits = laplace_bits(grids[level][slices], outputs[..., 0], outputs[..., 1], reach)
        return bits.flatten(1).sum(dim=1)

    @torch.no_grad()
    def level_reach(self, level: int) -> float:
        """sym_max - sym_min of grid ``level`` as rounded now: the range its CONTEXT record will code."""
        low, high = torch.aminmax(self.latents[level].detach())
        return float(torch.round(high) - torch.round(low))

    def latent_bits(self, exact: bool = False) -> float:
        """Estimated bits of every latent under the float context model: the running estimate the
        objective keeps per slice, or (``exact``, or none yet) every rounded latent's afresh."""
        if exact or self.slice_estimates is None:
            grids = [torch.round(g.detach()) for g in self.latents]
            with torch.no_grad():
                self.slice_estimates = [
                    torch.cat([self.slice_bits(grids, level, slices, reach=reach) for slices in _chunks(grid)])
                    for level, (grid, reach) in enumerate(zip(grids, map(self.level_reach, range(len(grids)))))
                ]
        return float(sum(float(bits.sum()) for bits in self.slice_estimates))

    # --- coding -------------------------------------------------------------------------
    def context_codec(self) -> "LatentCodec":
        return LatentCodec(self)


class LatentCodec:
    """Codes the latent grids under the integer context model (the bitstream's context hook).

    ``decoded`` is every tensor before ``index`` in manifest order, as the decoder reconstructs
    them: the context MLP's weights, then the coarser grids. Coded records are remembered, so the
    encoder's writes of one file (before and after its measured quality goes into mETA) code each
    grid once.
    """

    def __init__(self, model: Grid) -> None:
        names = list(model.coded_tensors())
        coded = [names.index(name) for name in model.context_coded()]
        self.levels = {index: level for level, index in enumerate(coded)}
        self.shapes = {index: tuple(model.latents[level].shape) for index, level in self.levels.items()}
        self.coarser = {
            index: None if model.coarser_of(k) is None else coded[model.coarser_of(k)]
            for index, k in self.levels.items()
        }
        self.time_ratio = model.time_ratio
        self.context = [names.index(name) for name in model.context_inputs()]
        self._coded: dict[bytes, CodedSymbols] = {}

    def codes(self, index: int) -> bool:
        return index in self.levels

    def encode(self, index: int, symbols: np.ndarray, decoded: list[np.ndarray]) -> CodedSymbols | None:
        """A CONTEXT record for a latent grid; None for any other tensor (coded as usual)."""
        if index not in self.levels:
            return None
        # everything the tables depend on: the context MLP, the coarser grid (a context input) and the symbols
        inputs = self.context + ([] if self.coarser[index] is None else [self.coarser[index]])
        key = hashlib.sha256(
            b"".join(np.ascontiguousarray(decoded[i], "<f4").tobytes() for i in inputs)
            + symbols.astype("<i8").tobytes()
            + index.to_bytes(4, "little")
        ).digest()
        if key not in self._coded:
            sym_min, sym_max = int(symbols.min()), int(symbols.max())
            if sym_min == sym_max:  # one-symbol alphabet: the record's range says it all
                self._coded[key] = CodedSymbols(ModelId.CONTEXT, sym_min, sym_max, None, None, np.zeros(0, "<u4"))
            else:
                coder = ConditionalEncoder(sym_min, sym_max)
                grid = torch.from_numpy(symbols.astype(np.float64).reshape(self.shapes[index]))
                self._passes(index, grid, decoded, coder, sym_min, sym_max)
                self._coded[key] = coder.finish()
        return self._coded[key]

    def decode(self, index: int, coded: CodedSymbols, decoded: list[np.ndarray]) -> np.ndarray | None:
        """A latent grid's symbols (flat, raster order); None for any other tensor."""
        if index not in self.levels:
            return None
        if coded.model_id != ModelId.CONTEXT:
            raise PayloadError(f"tensor {index}: a latent grid must use the CONTEXT entropy model")
        count = math.prod(self.shapes[index])
        if coded.sym_min == coded.sym_max:
            if len(coded.words):
                raise PayloadError(f"tensor {index}: payload must be empty for a one-symbol alphabet")
            return np.full(count, coded.sym_min, np.int64)
        decoder = ConditionalDecoder(coded)
        grid = torch.zeros(self.shapes[index], dtype=torch.float64)
        self._passes(index, grid, decoded, decoder, coded.sym_min, coded.sym_max)
        decoder.finish()
        return grid.reshape(-1).numpy().astype(np.int64)

    def slice_bits(self, index: int, symbols: np.ndarray, decoded: list[np.ndarray]) -> np.ndarray:
        """The ideal bits of each slice of latent grid ``index`` under its tables (for reports: e.g.
        an mcgrid file's intra frames against its predicted ones); zeros for a one-symbol grid."""
        grid = torch.from_numpy(symbols.astype(np.float64).reshape(self.shapes[index]))
        bits = np.zeros(grid.shape[0])
        sym_min, sym_max = int(symbols.min()), int(symbols.max())
        if sym_min == sym_max:
            return bits
        plane = grid.shape[1] * grid.shape[2]
        for where, centres2, scales in self._pass_tables(index, grid, decoded, sym_min, sym_max):
            values, slices = grid.view(-1)[where].numpy().astype(np.int64), (where // plane).numpy()
            for t in np.unique(slices):
                chosen = slices == t
                bits[t] += conditional_code_length(values[chosen], centres2[chosen], scales[chosen], sym_max - sym_min)
        return bits

    def _passes(
        self, index: int, grid: torch.Tensor, decoded: list[np.ndarray], coder, sym_min: int, sym_max: int
    ) -> None:
        """The two checkerboard passes over one grid: the encoder codes ``grid``, the decoder fills it in."""
        flat = grid.view(-1)
        for where, centres2, scales in self._pass_tables(index, grid, decoded, sym_min, sym_max):
            if isinstance(coder, ConditionalEncoder):
                coder.encode(flat[where].numpy().astype(np.int64), centres2, scales)
            else:
                flat[where] = torch.from_numpy(coder.decode(centres2, scales).astype(np.float64))

    def _pass_tables(
        self, index: int, grid: torch.Tensor, decoded: list[np.ndarray], sym_min: int, sym_max: int
    ) -> Iterator[tuple[torch.Tensor, np.ndarray, np.ndarray]]:
        """The tables of pass 0, then of pass 1, over one grid, each computed when asked for: a decoder
        fills in pass 0's positions before pass 1's tables read them."""
        up = self.coarser[index]
        coarser = None if up is None else torch.from_numpy(decoded[up].astype(np.float64))
        tensors = [fixed_point(decoded[i]) for i in self.context]
        layers = list(zip(tensors[0::2], tensors[1::2]))
        for parity in (0, 1):
            yield self._tables(layers, grid, coarser, self.levels[index], parity, sym_min, sym_max, self.time_ratio)

    @staticmethod
    def _tables(
        layers,
        grid: torch.Tensor,
        coarser: torch.Tensor | None,
        level: int,
        parity: int,
        sym_min: int,
        sym_max: int,
        time_ratio: int,
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """(flat positions, doubled centres, scale indices) of one pass, in raster order (t, y, x)."""
        positions, centres, scales = [], [], []
        plane = grid.shape[1] * grid.shape[2]
        for slices in _chunks(grid):
            features = context_features(grid, coarser, level, slices, time_ratio=time_ratio)
            chosen = (features[..., CONTEXT_INPUTS - 2] == parity).reshape(-1)
            c, s = tables_from_outputs(
                integer_mlp(features.reshape(-1, CONTEXT_INPUTS)[chosen], layers), sym_min, sym_max
            )
            positions.append(torch.nonzero(chosen).reshape(-1) + int(slices[0]) * plane)
            centres.append(c)
            scales.append(s)
        return torch.cat(positions), np.concatenate(centres), np.concatenate(scales)


def upsample_bilinear(planes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Planes [B, h, w] -> [B, H, W], bilinear with half-pixel centres (``align_corners=False``).

    While training, the same interpolation runs as two products with interpolation matrices:
    F.interpolate's backward scatters (on CPU 3-8x slower than the GEMMs: 14 ms against 1.7-5.6 ms for
    16 planes to 320x180 on 2 threads; on CUDA it adds with atomics, which deterministic mode refuses).
    The decoder, which needs no gradient, always runs F.interpolate (the two differ by float rounding).
    """
    if not torch.is_grad_enabled():
        return F.interpolate(planes[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    rows = _interpolation_matrix(size[0], planes.shape[-2], planes.device, planes.dtype)
    cols = _interpolation_matrix(size[1], planes.shape[-1], planes.device, planes.dtype)
    return rows @ planes @ cols.T


def _interpolation_matrix(out: int, size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[out, size]: the linear weights of F.interpolate's half-pixel rule (sources below 0 clamp to 0)."""
    source = ((torch.arange(out, device=device, dtype=torch.float32) + 0.5) * (size / out) - 0.5).clamp(min=0)
    low = source.floor().long().clamp(max=size - 1)
    high = (low + 1).clamp(max=size - 1)
    weight = source - low
    matrix = torch.zeros(out, size, device=device, dtype=torch.float32)
    matrix[torch.arange(out, device=device), low] += 1 - weight
    matrix[torch.arange(out, device=device), high] += weight
    return matrix.to(dtype)
