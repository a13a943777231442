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
MAX_SYMBOL = (1 << 15) - 1  # |symbol| bound: any tensor's alphabet then fits entropy.MAX_ALPHABET
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
    steps = np.clip(_row_max_abs(rows) / levels_for_bits(bits), MIN_STEP, MAX_STEP).astype(np.float16)
    return quantize_with_steps(weights, steps)


def quantize_with_steps(weights: np.ndarray, steps: np.ndarray) -> QuantizedTensor:
    """Quantize with given binary16 steps (learned by rate-aware training), one per row of ``choose_axis``
    or a single one for the whole tensor. A step so fine that a symbol would pass ``MAX_SYMBOL`` is
    widened to the finest that keeps it there: whatever training produced, the alphabet fits the coder."""
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    shape = tuple(int(d) for d in weights.shape)
    axis = choose_axis(shape)
    steps = np.asarray(steps, dtype=np.float16).reshape(-1)
    if axis == QuantAxis.PER_CHANNEL and len(steps) == 1 and shape[0] != 1:
        axis = QuantAxis.PER_TENSOR  # one step for the whole tensor (e.g. latent grids)
    if len(steps) != (shape[0] if axis == QuantAxis.PER_CHANNEL else 1):
        raise ValueError(f"{len(steps)} steps for a tensor of shape {shape} ({axis.name})")
    steps = fitting_steps(weights.reshape(len(steps), -1), steps)
    symbols = np.rint(weights.reshape(len(steps), -1) / steps.astype(np.float32)[:, None]).astype(np.int64).ravel()
    return QuantizedTensor(shape, axis, steps, symbols)


def scale_steps(tensors: list[np.ndarray], steps: list[np.ndarray], factor: float) -> list[np.ndarray]:
    """Every step times ``factor``, as binary16 (widened as ``quantize_with_steps`` would)."""
    return [
        fitting_steps(weights.reshape(len(rows), -1), np.clip(rows.astype(np.float32) * factor, MIN_STEP, MAX_STEP))
        for weights, rows in zip(tensors, steps)
    ]


def fitting_steps(rows: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``steps`` as binary16, each at least the finest that keeps its row's symbols within +-MAX_SYMBOL.

    The floor is rounded up, not to nearest: among the binary16 subnormals a step rounded to
    nearest can lose a third of its value (a floor meant for 29,900 levels gave 46,391, an
    alphabet of 92,782 symbols, which the coder refused after a 300-s encode).
    """
    floor = _row_max_abs(rows) / np.float32(MAX_SYMBOL)
    if not np.all(floor <= MAX_STEP):
        raise ValueError("a weight is too large to quantize (|w| > 2^31): training diverged")
    floor16 = np.clip(floor, MIN_STEP, MAX_STEP).astype(np.float16)
    below = floor16.astype(np.float32) < floor
    floor16[below] = np.nextafter(floor16[below], np.float16(np.inf))
    steps16 = np.asarray(steps, np.float32).astype(np.float16)
    return np.maximum(np.where(steps16 > 0, steps16, np.float16(MIN_STEP)), floor16).astype(np.float16)


def _row_max_abs(rows: np.ndarray) -> np.ndarray:
    """Largest |weight| of each row (0 for an empty tensor)."""
    return np.abs(rows).max(axis=1) if rows.size else np.zeros(rows.shape[0], np.float32)


def dequantize(symbols: np.ndarray, steps: np.ndarray, shape: tuple[int, ...], axis: QuantAxis) -> np.ndarray:
    """The normative reconstruction: float32(q) * float32(step), row-major."""
    rows = symbols.astype(np.float32).reshape(len(steps), -1)
    return (rows * steps.astype(np.float32)[:, None]).reshape(shape)
