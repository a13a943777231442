"""The maths of a context model: a small MLP predicting each latent's Laplace from decoded neighbours.

Two evaluations of one network, for two jobs:

* ``laplace_bits`` (float, differentiable): the code length of (noisy or rounded) latents under
  the Laplace the float MLP predicts; rate-aware training minimizes it;
* ``integer_mlp`` (exact): the same MLP in fixed point, what encoder and decoder both run to
  choose each symbol's table. Weights become integers ``rint(w * 2^F)``, activations are
  integers in units of 2^-F, and every matrix product is computed in float64 on integer values
  whose sums stay below 2^53, so the result is exact whatever the BLAS, thread count or
  summation order: every machine picks the same table for every symbol (bitstream_spec.md,
  spec/families/grid.md).

The network's two outputs are the centre (in symbol units) and a scale index z: the Laplace
scale is ``b = SCALE_B0 * 2^(z / 4)``. The file's table for a symbol is that of scale index
``clamp(round(z), 0, 63)`` around the centre rounded to a half-integer (``entropy.context_counts``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .entropy import NUM_SCALES
from .proxy import round_ste

FRACTION_BITS = 12  # F: fixed-point weights and activations are integers in units of 2^-12
WEIGHT_LIMIT = float(1 << 20)  # |w| * 2^F is clamped to this (|w| < 256)
ACTIVATION_LIMIT = float(1 << 26)  # |activation| * 2^F is clamped to this: sums of 32 products stay < 2^52
SCALE_B0 = 0.04  # Laplace scale of index 0 (entropy.SCALE_TABLE)
MIN_PROBABILITY = 2.0**-24  # the coder's probability resolution: no symbol costs more than 24 bits
MAX_SYMBOL_BITS = 24.0
LN2 = math.log(2.0)


def fixed_point(weights: np.ndarray) -> torch.Tensor:
    """Decoded float32 weights -> integer-valued float64, ``clamp(rint(w * 2^F))`` (round half to even)."""
    scaled = np.rint(np.asarray(weights, np.float64) * float(1 << FRACTION_BITS))
    return torch.from_numpy(np.clip(scaled, -WEIGHT_LIMIT, WEIGHT_LIMIT))


def integer_mlp(inputs: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Exact fixed-point MLP: integer inputs [N, C] (symbol units) -> outputs [N, K] in units of 2^-F.

    ``layers``: (weight [out, in], bias [out]) as ``fixed_point`` gives them. Each layer computes
    ``floor((x @ W^T) / 2^F) + b``, clamped, with ReLU between layers (not after the last).
    """
    one = float(1 << FRACTION_BITS)
    x = (inputs.to(torch.float64) * one).clamp(-ACTIVATION_LIMIT, ACTIVATION_LIMIT)
    for index, (weight, bias) in enumerate(layers):
        x = torch.floor((x @ weight.T) / one) + bias
        x = x.clamp(-ACTIVATION_LIMIT, ACTIVATION_LIMIT)
        if index < len(layers) - 1:
            x = x.clamp_min(0.0)
    return x


def tables_from_outputs(outputs: torch.Tensor, sym_min: int, sym_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer MLP outputs [N, 2] -> (doubled centres round(2 x centre) clamped to [2 sym_min,
    2 sym_max], scale indices round(z) clamped to [0, 63]). Rounding is floor(x + 1/2) on exact values."""
    one, half = float(1 << FRACTION_BITS), float(1 << (FRACTION_BITS - 1))
    centres2 = torch.floor((2 * outputs[:, 0] + half) / one).to(torch.int64).clamp(2 * sym_min, 2 * sym_max)
    scales = torch.floor((outputs[:, 1] + half) / one).to(torch.int64).clamp(0, NUM_SCALES - 1)
    return centres2.numpy(), scales.numpy()


def laplace_bits(
    values: torch.Tensor, centre: torch.Tensor, scale_index: torch.Tensor, reach: float | None = None
) -> torch.Tensor:
    """Bits of integer ``values`` under Laplace(centre, b(scale_index)) integrated over unit bins,
    with the centre rounded to a half-integer and the index to an integer as the file's tables are
    (straight-through): what the coder will spend. Differentiable in all three. Elementwise.

    ``reach`` (the record's sym_max - sym_min = R): the file's table holds only the residuals
    -(R+1)..R+1 around the centre (entropy.context_counts), so the probability is renormalized to
    that mass; without it a scale near or above the range is priced far above its cost (a uniform
    table over 2R + 3 symbols, not log2(2b) bits).

    Computed from the log of the bin's probability, so that a value far out in the tail still
    has a gradient (a clamped probability would have none, and neither the latent nor the context
    model would learn from it); the value is capped at the coder's 24 bits, the gradient is not.
    """
    centre = round_ste(2 * centre) / 2
    z = round_ste(scale_index).clamp(0.0, NUM_SCALES - 1.0)
    b = SCALE_B0 * torch.exp2(z / 4.0)
    distance = (values - centre).abs()
    # beyond half a bin: P = exp(-(d - 1/2) / b) (1 - exp(-1/b)) / 2, in logs
    tail = -(distance - 0.5).clamp_min(0.0) / b + torch.log(-torch.expm1(-1.0 / b)) - LN2
    # within half a bin of the centre: P = 1 - (exp(-(1/2 - d) / b) + exp(-(1/2 + d) / b)) / 2
    near = torch.log(
        (1.0 - 0.5 * (torch.exp(-(0.5 - distance).clamp_min(0.0) / b) + torch.exp(-(0.5 + distance) / b))).clamp_min(
            MIN_PROBABILITY
        )
    )
    bits = -torch.where(distance >= 0.5, tail, near) / LN2
    if reach is not None:  # + log2 of the table's mass: tails beyond R + 1.5 (integer centre) or
        # R + 1 and R + 2 (half-integer centre: one bin more below than above) are not in it
        half = torch.remainder(torch.round(2 * centre.detach()), 2.0) == 1
        outside = torch.where(
            half, 0.5 * (torch.exp(-(reach + 1.0) / b) + torch.exp(-(reach + 2.0) / b)), torch.exp(-(reach + 1.5) / b)
        )
        bits = bits + torch.log1p(-outside.clamp_max(1.0 - MIN_PROBABILITY)) / LN2
    return bits + (bits.clamp_max(MAX_SYMBOL_BITS) - bits).detach()
