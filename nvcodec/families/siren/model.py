"""SIREN (Sitzmann et al., 2020) for video: (x, y, t) -> sine MLP -> RGB, one pixel at a time.

    (x, y, t) in [0, 1] --2c-1--> [sin(w0 (W h + b))] x depth --> Linear --> 0.5 + 0.5 y

Used as in "Optical flow regularization of implicit neural representations for video frame
interpolation" (the seed paper): the network's exact derivatives are what the encoder-side
optical-flow regularizer constrains (families/siren/objective.py), so the decoder gets a
plain SIREN and renders any size and any time through ``PixelBackbone``.

Initialization (SIREN, Sec. 3.2): first layer W ~ U(-1/3, 1/3) (fan-in 3), later layers
W ~ U(-sqrt(6/n)/w0, sqrt(6/n)/w0); biases keep PyTorch's default. Inputs are mapped to
[-1, 1], the range that initialization assumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ...models.base import BackboneConfig, PixelBackbone
from .. import register_backbone
from . import SIREN

IN_FEATURES, OUT_FEATURES = 3, 3


@dataclass(frozen=True)
class SirenConfig(BackboneConfig):
    hidden: int = 128  # features per sine layer (the paper's "width")
    depth: int = 5  # sine layers; a linear head follows
    omega_0: float = 30.0  # first layer's frequency factor
    omega_hidden: float = 30.0  # later layers' frequency factor

    def validate(self) -> None:
        super().validate()
        if not (1 <= self.hidden <= 4096 and 1 <= self.depth <= 32):
            raise ValueError("hidden must be in [1, 4096] and depth in [1, 32]")
        if not (0.0 < self.omega_0 <= 1000.0 and 0.0 < self.omega_hidden <= 1000.0):
            raise ValueError("omega_0 and omega_hidden must be in (0, 1000]")


@register_backbone
class Siren(PixelBackbone):
    name = SIREN.name
    arch_version = 1
    config_cls = SirenConfig
    tile_pixels = 8192  # decoding: 40 frames/s of 320x180 at the 0.1 bpp size on 2 threads, 36 with 65536

    def __init__(self, config: SirenConfig) -> None:
        super().__init__(config)
        widths = [IN_FEATURES] + [config.hidden] * config.depth
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.head = nn.Linear(config.hidden, OUT_FEATURES)
        self.omegas = [config.omega_0] + [config.omega_hidden] * (config.depth - 1)
        self._siren_init()

    @torch.no_grad()
    def _siren_init(self) -> None:
        first = self.layers[0]
        first.weight.uniform_(-1.0 / IN_FEATURES, 1.0 / IN_FEATURES)
        for layer in [*self.layers[1:], self.head]:
            bound = math.sqrt(6.0 / layer.in_features) / self.config.omega_hidden
            layer.weight.uniform_(-bound, bound)

    @classmethod
    def config_for_budget(cls, height: int, width: int, num_frames: int, params: int) -> SirenConfig:
        """Depth 5 (the paper's narrow-network regime); the widest layers the budget allows."""
        depth = SirenConfig.depth

        def count(w: int) -> int:
            return (IN_FEATURES + 1) * w + (depth - 1) * (w + 1) * w + (w + 1) * OUT_FEATURES

        best = 4
        while best < 4096 and count(best + 1) <= params:
            best += 1
        return SirenConfig(height, width, num_frames, hidden=best, depth=depth)

    def folded_layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, bias) of each sine layer, then of the head, with the scalars folded in.

        sin(w0 (W (2c - 1) + b)) ... 0.5 + 0.5 (W h + b) becomes plain linear maps and sines, so
        the per-pixel work is only GEMMs and sin: no extra element-wise passes over [N, hidden]
        activations, in the forward and in the regularizer's derivatives.
        """
        folded = []
        for index, (layer, omega) in enumerate(zip(self.layers, self.omegas)):
            weight, bias = layer.weight * omega, layer.bias * omega
            if index == 0:  # w0 (W (2c - 1) + b) = 2 w0 W c + w0 (b - W 1)
                weight, bias = 2.0 * weight, bias - weight.sum(dim=1)
            folded.append((weight, bias))
        return [*folded, (0.5 * self.head.weight, 0.5 * self.head.bias + 0.5)]

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """coords [N, 3] (x, y, t) in [0, 1] -> RGB [N, 3], unclamped (training sees the raw value)."""
        *sines, (weight, bias) = self.folded_layers()
        h = coords
        for w, b in sines:
            h = torch.sin(F.linear(h, w, b))
        return F.linear(h, weight, bias)

    def value_and_tangent(self, coords: torch.Tensor, direction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(coords) [N, 3], J_f(coords[:n]) . direction [n, 3]) for the first n = len(direction) points.

        The exact Jacobian-vector product, carried through the layers beside the forward pass
        (d sin(z) = cos(z) dz): what forward-mode autograd computes, written out in plain tensor
        operations so that ``torch.compile`` fuses it and an ordinary ``backward`` trains it.
        """
        *sines, (weight, bias) = self.folded_layers()
        n = direction.shape[0]
        h, dh = coords, direction
        for w, b in sines:
            z = F.linear(h, w, b)
            h, dh = torch.sin(z), torch.cos(z[:n]) * F.linear(dh, w)
        return F.linear(h, weight, bias), F.linear(dh, weight)

    def render_pixels(self, coords: torch.Tensor) -> torch.Tensor:
        return self(coords).clamp(0.0, 1.0)
