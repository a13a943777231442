"""Differentiable quantization and the rate of the bits it makes: the maths of rate-aware training.

Every coded tensor gets a learned step per output channel (or one per tensor, as
``quantize.choose_axis`` decides), log-parameterized. During training the network sees its
weights through a *proxy* of the decoder's reconstruction ``round(w / step) * step``:

* ``NOISE``: ``w + step * u`` with ``u ~ U(-1/2, 1/2)`` (the additive-noise relaxation of Balle
  et al.): smooth in ``w`` and in ``step``, so distortion learns how coarse each channel may be;
* ``OFF``: the float weights, for a warm-up (the proxy and the rate term cost as much as a small
  model's own step, so the first part of training runs without them);
* ``HARD``: the real rounding with straight-through gradients, and the step rounded to binary16
  as the file stores it: the network ends trained on exactly the values the decoder will use.

The rate of a tensor is the code length of its rounded symbols under the two-sided geometric
distribution (the discrete Laplace) whose decay is the maximum-likelihood fit to them: the same
family, fitted the same way, as the file's ``GEOMETRIC`` entropy model (``entropy.py``), so the
estimate is what the range coder will spend on it (``record_bits`` also takes CATEGORICAL's cost
when the encoder will choose it). Its gradient pushes each step toward coarser values.
"""

from __future__ import annotations

import enum

import numpy as np
import torch
from torch import nn

from .entropy import categorical_record_bits
from .quantize import MAX_STEP, MIN_STEP, QuantAxis, choose_axis, levels_for_bits


class ProxyMode(str, enum.Enum):
    OFF = "off"  # the float weights (a warm-up before the proxy starts)
    NOISE = "noise"
    HARD = "hard"


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer; gradient 1 (straight-through)."""
    return x + (torch.round(x) - x).detach()


def soft_round(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """A differentiable rounding (Agustsson & Theis 2020): ``round(x)`` as the temperature goes to 0,
    ``x`` as it grows (C3's and Cool-chic's latent proxy)."""
    floor = torch.floor(x)
    return floor + 0.5 + 0.5 * torch.tanh((x - floor - 0.5) / temperature) / np.tanh(0.5 / temperature)


def kumaraswamy_noise(uniform: torch.Tensor, a: float) -> torch.Tensor:
    """Noise in (-1/2, 1/2) from ``uniform`` in [0, 1): Kumaraswamy(a, b) with b set so that its mode is
    1/2 (C3): a = 1 is uniform, larger ``a`` gathers it toward 0."""
    b = (2**a * (a - 1) + 1) / a
    return (1 - (1 - uniform) ** (1 / b)) ** (1 / a) - 0.5


def to_binary16_ste(x: torch.Tensor) -> torch.Tensor:
    """The binary16 value the file will store, as float32; gradient 1."""
    return x + (x.to(torch.float16).to(x.dtype) - x).detach()


def geometric_bits(symbols: torch.Tensor) -> torch.Tensor:
    """Bits of ``symbols`` (rounded, any shape) under the ML-fitted two-sided geometric model.

    p(k) = r^|k| (1 - r) / (1 + r), with r the maximum-likelihood decay for the mean |k| = m:
    r = (sqrt(1 + m^2) - 1) / m = m / (sqrt(1 + m^2) + 1). The decay is held constant in the
    gradient (at the ML point the code length's derivative in r is zero anyway). All zeros cost
    (almost) nothing, as in the file.
    """
    magnitude = symbols.abs()
    with torch.no_grad():
        m = magnitude.mean().float()
        r = (m / (torch.sqrt(1 + m * m) + 1)).clamp(1 / 65536, 1 - 1 / 65536)  # the file's 16-bit decay range
    return magnitude.numel() * torch.log2((1 + r) / (1 - r)) - torch.log2(r) * magnitude.sum()


# Bits a record costs beyond its symbols' code length and an all-zero record (whose one count byte
# the fixed part already holds): GEOMETRIC's 6 bytes of parameters, and the last 32-bit word's slack.
# Fitted on the records of small encodes (the estimate was 5-6 bytes high per record before).
GEOMETRIC_SIDE_BITS = 52
CATEGORICAL_SIDE_BITS = 8


def record_bits(symbols: torch.Tensor) -> torch.Tensor:
    """Bits the file will spend on a tensor's rounded ``symbols``, beyond an all-zero record.

    The value is that of the model the encoder will choose (the smaller of GEOMETRIC and
    CATEGORICAL, as ``entropy.encode_symbols`` does); the gradient is the geometric code length's.
    """
    geometric = geometric_bits(symbols)
    if not bool(symbols.detach().any()):
        return geometric
    geometric = geometric + GEOMETRIC_SIDE_BITS
    categorical = categorical_record_bits(symbols.detach().to(torch.int64).cpu().numpy())
    chosen = min(float(geometric.detach()), categorical + CATEGORICAL_SIDE_BITS)
    return geometric + (chosen - geometric.detach())


class LearnedQuantizer(nn.Module):
    """One coded tensor's learned steps and its proxy.

    ``forward`` is the proxy with autograd (for tensors an encoder makes during training, e.g.
    HNeRV's embeddings); ``train.rate.RateTerm`` applies the same proxy to a model's weights in
    place, with the steps' gradient written by hand.
    """

    def __init__(self, weight: torch.Tensor, init_bits: float) -> None:
        super().__init__()
        shape = tuple(weight.shape)
        self.axis = choose_axis(shape)
        rows = shape[0] if self.axis == QuantAxis.PER_CHANNEL else 1
        self.log_step = nn.Parameter(torch.zeros(rows, device=weight.device))
        self.row_shape = (rows,) + (1,) * (len(shape) - 1) if len(shape) else ()
        self.mode = ProxyMode.NOISE
        # what the file codes the difference from (a predicted segment: the previous segment's
        # decoded tensor); None: zero. Not in a checkpoint: the encoder rebuilds it from that segment.
        self.register_buffer("origin", None, persistent=False)
        self.reset(weight, init_bits)

    def set_origin(self, origin: torch.Tensor) -> None:
        self.origin = origin.detach().float().clone()

    def base(self, rows: torch.Tensor | None = None) -> torch.Tensor | float:
        """The origin (of rows ``rows``), or 0."""
        if self.origin is None:
            return 0.0
        return self.origin if rows is None else self.origin[rows]

    def _from_origin(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.float() - self.base()

    @torch.no_grad()
    def reset(self, weight: torch.Tensor, bits: float) -> None:
        """Each row's step: its range (from the origin) over ``bits`` bits (``quantize.quantize``'s rule)."""
        max_abs = self._from_origin(weight.detach()).reshape(self.log_step.shape[0], -1).abs().amax(dim=1)
        self.log_step.copy_((max_abs / levels_for_bits(max(2.0, bits))).clamp(MIN_STEP * 64, MAX_STEP).log())

    def step(self) -> torch.Tensor:
        """Steps broadcastable to the weight (binary16 values in the HARD phase)."""
        step = self.log_step.exp().clamp(MIN_STEP * 64, MAX_STEP)
        if self.mode == ProxyMode.HARD:
            step = to_binary16_ste(step)
        return step.reshape(self.row_shape)

    def symbols(self, weight: torch.Tensor) -> torch.Tensor:
        """round((w - origin) / step) with straight-through gradients to w and step (what the file codes)."""
        return round_ste(self._from_origin(weight) / self.step())

    def forward(self, weight: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The proxy of ``weight``, or of the rows ``rows`` of the tensor when ``weight`` holds only those."""
        if self.mode == ProxyMode.OFF:
            return weight
        step = self.step()
        if rows is not None and self.axis == QuantAxis.PER_CHANNEL:
            step = step[rows]
        if self.mode == ProxyMode.HARD:
            base = self.base(rows)
            return (base + round_ste((weight.float() - base) / step) * step).to(weight.dtype)
        return weight + (step * (torch.rand_like(weight, dtype=torch.float32) - 0.5)).to(weight.dtype)

    @torch.no_grad()
    def file_steps(self) -> np.ndarray:
        """The binary16 steps the file stores, one per row."""
        return self.step().reshape(-1).to(torch.float16).cpu().numpy()
