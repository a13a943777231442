"""Unsigned LEB128: the variable-length integers of the .nvc format, and their sizes.

The sizes live here, below the bitstream layer, because rate estimates count the bytes a
record's integers will take (e.g. a categorical table's counts) without writing them.
"""

from __future__ import annotations

import numpy as np

LEB128_MAX_BYTES = 8


def leb128(value: int) -> bytes:
    """Minimal unsigned LEB128 encoding of ``value`` (0 <= value < 2**56)."""
    if value < 0 or value >= 1 << (7 * LEB128_MAX_BYTES):
        raise ValueError(f"leb128 value out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def leb128_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def leb128_sizes(values: np.ndarray) -> np.ndarray:
    """``leb128_size`` of every value of a non-negative integer array, at once."""
    values = np.asarray(values, dtype=np.uint64)
    return 1 + sum((values >= np.uint64(1 << (7 * k))).astype(np.int64) for k in range(1, LEB128_MAX_BYTES))
