"""Symmetric uniform quantization, one step size per output channel.

Zero stays exactly zero (pruned weights cost almost nothing after entropy coding), and a
weight is rebuilt as ``float32(q) * float32(step)`` with ``step`` a binary16 value from the
file, one correctly rounded IEEE binary32 product: every decoder gets the same bits
(bitstream_spec.md, 8.2).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

MIN_STEP = float(np.finfo(np.float16).smallest_subnormal)
MAX_STEP = float(np.finfo(np.float16).max)
CHANNEL_STEP_MIN_ELEMENTS = 16  # per-channel steps only where a channel has this many weights


class QuantAxis(enum.IntEnum):
    """On-disk quantization layouts (bitstream_spec.md, Table A.2)."""

    PER_CHANNEL = 0  # one step per index of dimension 0
    PER_TENSOR = 255


@dataclass(frozen=True)
class QuantizedTensor:
    shape: tuple[int, ...]
    axis: QuantAxis
    steps: np.ndarray  # float16 [dims[0]] or [1]
    symbols: np.ndarray  # int64, flat, C order

    def dequantize(self) -> np.ndarray:
        return dequantize(self.symbols, self.steps, self.shape, self.axis)


def levels_for_bits(bits: float) -> int:
    """Largest symbol magnitude for a (possibly fractional) bit depth: 8 bits -> 127."""
    return max(1, int(round(2.0 ** (bits - 1) - 1)))


def choose_axis(shape: tuple[int, ...]) -> QuantAxis:
    numel = int(np.prod(shape))
    if len(shape) >= 2 and numel // shape[0] >= CHANNEL_STEP_MIN_ELEMENTS:
        return QuantAxis.PER_CHANNEL
    return QuantAxis.PER_TENSOR


def quantize(weights: np.ndarray, bits: float) -> QuantizedTensor:
    """Quantize to ``levels_for_bits(bits)`` levels each side of zero."""
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    shape = tuple(int(d) for d in weights.shape)
    axis = choose_axis(shape)
    rows = weights.reshape(shape[0] if axis == QuantAxis.PER_CHANNEL else 1, -1)
    max_abs = np.abs(rows).max(axis=1) if rows.size else np.zeros(rows.shape[0], np.float32)
    steps = np.clip(max_abs / levels_for_bits(bits), MIN_STEP, MAX_STEP).astype(np.float16)
    return quantize_with_steps(weights, np.where(steps > 0, steps, np.float16(MIN_STEP)).astype(np.float16))


def quantize_with_steps(weights: np.ndarray, steps: np.ndarray) -> QuantizedTensor:
    """Quantize with given binary16 steps (learned by rate-aware training), one per row of ``choose_axis``
    or a single one for the whole tensor."""
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    shape = tuple(int(d) for d in weights.shape)
    axis = choose_axis(shape)
    steps = np.asarray(steps, dtype=np.float16).reshape(-1)
    if axis == QuantAxis.PER_CHANNEL and len(steps) == 1 and shape[0] != 1:
        axis = QuantAxis.PER_TENSOR  # one step for the whole tensor (e.g. latent grids)
    if len(steps) != (shape[0] if axis == QuantAxis.PER_CHANNEL else 1):
        raise ValueError(f"{len(steps)} steps for a tensor of shape {shape} ({axis.name})")
    symbols = np.rint(weights.reshape(len(steps), -1) / steps.astype(np.float32)[:, None]).astype(np.int64).ravel()
    return QuantizedTensor(shape, axis, steps, symbols)


def scale_steps(tensors: list[np.ndarray], steps: list[np.ndarray], factor: float) -> list[np.ndarray]:
    """Every step times ``factor``, as binary16, never so fine that a symbol passes +-30,000."""
    scaled = []
    for weights, rows in zip(tensors, steps):
        floor = np.abs(weights.reshape(len(rows), -1)).max(axis=1) / 29_900  # binary16 rounding stays under 30,000
        scaled.append(
            np.clip(np.maximum(rows.astype(np.float32) * factor, floor), MIN_STEP, MAX_STEP).astype(np.float16)
        )
    return scaled


def dequantize(symbols: np.ndarray, steps: np.ndarray, shape: tuple[int, ...], axis: QuantAxis) -> np.ndarray:
    """The normative reconstruction: float32(q) * float32(step), row-major."""
    rows = symbols.astype(np.float32).reshape(len(steps), -1)
    return (rows * steps.astype(np.float32)[:, None]).reshape(shape)
