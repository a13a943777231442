"""CoordFlow (Silver & Kimmel, 2025): a pixel-wise video INR made of n motion-compensated layers.

Layer i (eqs. 1-2): a flow network on PE(t) gives a similarity transform (scale s, rotation
theta, translation dx, dy) that moves the pixel's centred coordinates (u, v) into the layer's
canonical space; a colour network on PE(u', v', t) gives RGB and alpha there. The pixel is the
softmax(alpha)-weighted sum of the layers' RGB (eqs. 3-4).

All layers run at once: their weights are stacked and evaluated with batched matmuls
(``torch.baddbmm``), so the hot path has no Python loop over layers or pixels. The flow runs
once per distinct time in a batch (a frame has one transform per layer), in float32 even under
bf16 autocast, since a translation error of a fraction of a pixel costs more than it saves.

Decode-time options (``set_render_options``): ``segmentation`` (the softmax weights as a
colour map), ``remove_layer`` (drop a layer and renormalize the others: inpainting) and
``stabilize`` (Gaussian smoothing of the flow parameters over time, Algorithm 1 of the paper).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ...errors import UsageError
from ...models.base import BackboneConfig, PixelBackbone
from ...models.layers import ACTIVATIONS, PositionalEncoding
from .. import register_backbone
from . import COORDFLOW

# Colour of each layer in a segmentation map (layer 0 red, 1 green, 2 blue, ...).
PALETTE = (
    (1.0, 0.2, 0.2),
    (0.2, 0.9, 0.2),
    (0.2, 0.4, 1.0),
    (1.0, 0.9, 0.1),
    (0.9, 0.2, 0.9),
    (0.1, 0.9, 0.9),
    (1.0, 0.6, 0.1),
    (0.6, 0.6, 0.6),
)
MAX_LAYERS = len(PALETTE)
# Parameter counts of the paper's S / M / L models (Table 1, UVG 1080p); ``paper_size`` scales the recipe to them.
PAPER_SIZES = {"S": 3_130_000, "M": 6_110_000, "L": 12_680_000}


@dataclass(frozen=True)
class CoordFlowConfig(BackboneConfig):
    layers: int = 2
    use_flow: bool = True  # False: the colour network sees (x, y, t) directly (the paper's "w/o flow" ablation)
    color_hidden: int = 64
    color_layers: int = 4  # hidden linear layers of width color_hidden (then one to RGB + alpha)
    flow_hidden: int = 16
    flow_layers: int = 2
    pe_base_xy: float = 1.6
    pe_levels_xy: int = 10
    pe_base_t: float = 2.0
    pe_levels_t: int = 5
    activation: str = "relu"  # measured: same CPU time, +1.6 dB over GELU (GELU costs a quarter of a step)

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.layers <= MAX_LAYERS:
            raise ValueError(f"layers must be between 1 and {MAX_LAYERS}")
        if not (1 <= self.color_hidden <= 2048 and 1 <= self.color_layers <= 16):
            raise ValueError("colour network: width 1..2048, 1..16 layers")
        if not (1 <= self.flow_hidden <= 512 and 1 <= self.flow_layers <= 8):
            raise ValueError("flow network: width 1..512, 1..8 layers")
        for base, levels in ((self.pe_base_xy, self.pe_levels_xy), (self.pe_base_t, self.pe_levels_t)):
            if not (1.0 <= base <= 8.0 and 1 <= levels <= 32):
                raise ValueError("positional encoding: base 1..8, 1..32 levels")
            if base ** (levels - 1) > 1e5:
                raise ValueError("positional encoding frequencies above 1e5 (base ** (levels - 1))")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}")


def encoding_for_geometry(height: int, width: int, num_frames: int) -> dict:
    """PE sizes from the sampling grid: top frequencies at half the Nyquist rate in x, y and t.

    Centred coordinates span [-1, 1] on the long side (pixel pitch 2 / max(H, W)), so Nyquist is
    pi * max(H, W) / 2; time spans [0, 1] with pitch 1 / (T - 1), Nyquist pi * (T - 1). Staying at
    half of it keeps rendering between samples (upsampling, interpolation) smooth.
    """
    top_xy = max(2.0, max(height, width) / 4)
    levels_xy = max(2, min(16, math.ceil(math.log2(top_xy)) + 2))
    top_t = max(1.0, (num_frames - 1) / 2)
    levels_t = max(1, min(12, math.ceil(math.log2(top_t)) + 1))
    base_t = top_t ** (1 / (levels_t - 1)) if levels_t > 1 else 1.0
    return {
        "pe_base_xy": round(top_xy ** (1 / (levels_xy - 1)), 4),
        "pe_levels_xy": levels_xy,
        "pe_base_t": round(max(1.0, base_t), 4),
        "pe_levels_t": levels_t,
    }


class StackedLinear(nn.Module):
    """n independent linear maps applied at once: x [n, N, in] -> [n, N, out].

    The weight is stored as [n * out, in] so the codec's per-channel quantization (one step per
    row) gets one step per output neuron of every layer.
    """

    def __init__(self, n: int, in_features: int, out_features: int, zero: bool = False) -> None:
        super().__init__()
        self.n, self.in_features, self.out_features = n, in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(n * out_features, in_features))
        self.bias = nn.Parameter(torch.empty(n * out_features))
        if zero:  # an identity flow at the start
            nn.init.zeros_(self.weight)
            nn.init.zeros_(self.bias)
        else:
            nn.init.uniform_(self.weight, -bound, bound)
            nn.init.uniform_(self.bias, -bound, bound)

    def stacked_weight(self) -> torch.Tensor:
        """[n, in, out]: the n weight matrices, transposed for ``x @ w``."""
        return self.weight.view(self.n, self.out_features, self.in_features).transpose(1, 2)

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bmm(x, self.stacked_weight())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.view(self.n, 1, self.out_features), x, self.stacked_weight())


class StackedMLP(nn.Module):
    """n MLPs of the same shape, evaluated together (act after every layer but the last)."""

    def __init__(
        self,
        n: int,
        in_features: int,
        hidden: int,
        depth: int,
        out_features: int,
        activation: str,
        zero_last: bool = False,
    ) -> None:
        super().__init__()
        widths = [in_features] + [hidden] * depth
        self.hidden = nn.ModuleList(StackedLinear(n, a, b) for a, b in zip(widths, widths[1:]))
        self.last = StackedLinear(n, widths[-1], out_features, zero=zero_last)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or not isinstance(self.act, nn.ReLU):
            for layer in self.hidden:
                x = self.act(layer(x))
            return self.last(x)
        for layer in self.hidden:  # decoding: bias and ReLU in place, no extra pass over [n, N, width]
            x = layer.matmul(x).add_(layer.bias.view(layer.n, 1, layer.out_features)).relu_()
        return self.last(x)


@register_backbone
class CoordFlow(PixelBackbone):
    name = COORDFLOW.name
    arch_version = 1
    config_cls = CoordFlowConfig
    # Decoding in tiles of 4096 pixels keeps each layer's activations in cache: 34 frames/s of
    # 320x180 at the 0.1 bpp size on 2 threads, against 30 with tiles of 65536 (17 before the
    # in-place bias and ReLU and cputuning.keep_freed_memory).
    tile_pixels = 4096

    def __init__(self, config: CoordFlowConfig) -> None:
        super().__init__(config)
        n = config.layers
        self.pe_xy = PositionalEncoding(config.pe_base_xy, config.pe_levels_xy)
        self.pe_t = PositionalEncoding(config.pe_base_t, config.pe_levels_t)
        if config.use_flow:
            self.flow = StackedMLP(
                n, self.pe_t.out_features, config.flow_hidden, config.flow_layers, 4, config.activation, zero_last=True
            )
        color_in = 2 * self.pe_xy.out_features + self.pe_t.out_features
        self.color = StackedMLP(n, color_in, config.color_hidden, config.color_layers, 4, config.activation)
        longest = max(config.height, config.width)
        self.register_buffer(
            "aspect", torch.tensor([config.width / longest, config.height / longest]), persistent=False
        )
        self.register_buffer("palette", torch.tensor(PALETTE[:n]), persistent=False)
        self._segmentation = False
        self._removed: int | None = None
        self._stabilize: float | None = None
        self._frame_flow: torch.Tensor | None = None  # [n, T, 4] flow at the coded frame times (stabilization)

    # --- sizing -------------------------------------------------------------------------
    @classmethod
    def recipe(
        cls, height: int, width: int, num_frames: int, params: int, layers: int = 2, use_flow: bool = True
    ) -> CoordFlowConfig:
        """The widest colour network within ``params``; the flow network is a quarter as wide.

        That keeps about 98% of the parameters in the colour networks, the paper's proportion
        (98.3%), once the colour width is above ~100.
        """

        def config(width_c: int) -> CoordFlowConfig:
            return CoordFlowConfig(
                height,
                width,
                num_frames,
                layers=layers,
                use_flow=use_flow,
                color_hidden=width_c,
                flow_hidden=max(8, min(512, width_c // 4)),
                **encoding_for_geometry(height, width, num_frames),
            )

        lo, hi = 4, 2048  # bisection: the count grows with the width
        if cls.count_params(config(lo)) > params:
            return config(lo)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if cls.count_params(config(mid)) <= params:
                lo = mid
            else:
                hi = mid - 1
        return config(lo)

    @classmethod
    def config_for_budget(cls, height: int, width: int, num_frames: int, params: int) -> CoordFlowConfig:
        return cls.recipe(height, width, num_frames, params)

    @classmethod
    def paper_size(cls, size: str, height: int, width: int, num_frames: int) -> CoordFlowConfig:
        """The paper's S / M / L parameter counts with this recipe (for 1080p-scale inputs)."""
        if size not in PAPER_SIZES:
            raise UsageError(f"size {size!r}: use one of {', '.join(PAPER_SIZES)}")
        return cls.recipe(height, width, num_frames, PAPER_SIZES[size])

    def color_fraction(self) -> float:
        """Share of the parameters in the colour networks (the paper: about 98%)."""
        color = sum(p.numel() for p in self.color.parameters())
        return color / sum(p.numel() for p in self.parameters())

    def tensor_bits(self, name: str, bits: float) -> float:
        # The paper keeps the flow unquantized; here it gets 4 more bits: it is ~2% of the weights, and an
        # error in a translation moves a whole layer.
        return bits + 4 if name.startswith("flow.") else bits

    # --- the model ----------------------------------------------------------------------
    def flow_params(self, times: torch.Tensor) -> torch.Tensor:
        """Normalized times [U] -> flow outputs [n, U, 4] as (log s, theta, dx, dy), float32."""
        with torch.autocast(times.device.type, enabled=False):
            features = self.pe_t(times.float()).expand(self.config.layers, -1, -1)
            raw = self.flow(features.float())
        if self._stabilize is not None and self._frame_flow is not None:
            raw = self._smoothed(times, raw)
        return raw

    def layer_outputs(
        self, coords: torch.Tensor, frames: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """coords [N, 3] as (x, y, t) in [0, 1] -> (RGB [n, N, 3] in [0, 1], alpha logits [n, N]).

        ``frames`` [N]: the coded frame each coordinate lies on, when it is known (training): the
        flow then runs once per coded frame, with shapes that do not depend on the batch (what
        ``torch.compile`` needs), instead of once per distinct time found by sorting.
        """
        n = self.config.layers
        uv = (coords[:, :2].float() * 2 - 1) * self.aspect  # centred, isotropic: the long side spans [-1, 1]
        t = coords[:, 2].float()
        if self.config.use_flow:
            if frames is None:
                times, inverse = torch.unique(t, return_inverse=True)
            else:
                times, inverse = self.frame_times(torch.arange(self.config.num_frames, device=t.device)), frames
            p = self.flow_params(times)[:, inverse]  # [n, N, 4]
            scale, theta = torch.exp(p[..., 0]), p[..., 1]
            cos, sin = scale * torch.cos(theta), scale * torch.sin(theta)
            u = cos * uv[:, 0] - sin * uv[:, 1] + p[..., 2]
            v = sin * uv[:, 0] + cos * uv[:, 1] + p[..., 3]
        else:
            u, v = uv[:, 0].expand(n, -1), uv[:, 1].expand(n, -1)
        features = torch.cat([self.pe_xy(u), self.pe_xy(v), self.pe_t(t).expand(n, -1, -1)], dim=-1)
        out = self.color(features)
        return torch.sigmoid(out[..., :3]), out[..., 3]

    def mix(self, rgb: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eqs. 3-4: softmax weights [n, N] over the layers and the weighted RGB [N, 3]."""
        if self._removed is not None:
            alpha = alpha.float().index_fill(0, torch.tensor([self._removed], device=alpha.device), float("-inf"))
        weights = torch.softmax(alpha.float(), dim=0)
        return weights, (weights[..., None] * rgb.float()).sum(0)

    def render_pixels(self, coords: torch.Tensor) -> torch.Tensor:
        weights, rgb = self.mix(*self.layer_outputs(coords))
        if self._segmentation:
            return weights.T @ self.palette.to(weights.device)
        return rgb

    # --- decode-time applications -------------------------------------------------------
    def set_render_options(
        self, segmentation: bool = False, remove_layer: int | None = None, stabilize: float | None = None
    ) -> None:
        """Rendering switches (see the module docstring); each is checked here.

        ``stabilize`` is a Gaussian sigma in coded frames: every layer's (log s, theta, dx, dy) at a
        render time becomes the Gaussian-weighted mean of its values at the coded frame times. The
        effect is measured (benchmarks/experiments/coordflow_experiments.py) as the frame-to-frame global
        translation of the output found by OpenCV phase correlation, against the same for the input.
        """
        n = self.config.layers
        if remove_layer is not None:
            if isinstance(remove_layer, bool) or not isinstance(remove_layer, int) or not 0 <= remove_layer < n:
                raise UsageError(f"--remove-layer {remove_layer}: this {self.name} file has layers 0..{n - 1}")
            if n < 2:
                raise UsageError(f"--remove-layer: this {self.name} file has a single layer; nothing would remain")
        if stabilize is not None:
            if not self.config.use_flow:
                raise UsageError(f"--stabilize: this {self.name} file was encoded without a flow network")
            if not (isinstance(stabilize, (int, float)) and math.isfinite(stabilize) and 0 < stabilize <= 1e4):
                raise UsageError(f"--stabilize {stabilize}: give a sigma in frames, > 0")
        self._segmentation = bool(segmentation)
        self._removed = remove_layer
        self._stabilize = None
        self._frame_flow = None
        if stabilize is not None:
            with torch.no_grad():
                frames = torch.arange(self.config.num_frames, device=self.palette.device)
                self._frame_flow = self.flow_params(self.frame_times(frames))
            self._stabilize = float(stabilize)

    def _smoothed(self, times: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """Nadaraya-Watson smoothing of the coded frames' flow, evaluated at ``times`` [U]."""
        last = max(self.config.num_frames - 1, 1)
        frames = self._frame_flow.to(times.device)
        positions = times.float()[:, None] * last - torch.arange(frames.shape[1], device=times.device)[None]
        kernel = torch.exp(-0.5 * (positions / self._stabilize) ** 2)  # [U, T]
        kernel = kernel / kernel.sum(1, keepdim=True).clamp_min(1e-12)
        smooth = torch.einsum("ut,ntc->nuc", kernel, frames)
        return smooth.to(raw.dtype)
