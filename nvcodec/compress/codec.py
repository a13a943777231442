"""compress() / decompress(): model tensors <-> quantized, entropy-coded tensor records.

The symmetric pair the rest of the codec uses (CompressAI's shape): the encoder calls
``compress_tensors``, the decoder ``decompress_tensors``; both sides share the normative
dequantization in ``quantize.dequantize``.
"""

from __future__ import annotations

import numpy as np

from ..bitstream.format import NvcFile, TensorRecord, weights_digest
from ..errors import PayloadError
from .entropy import decode_symbols, encode_symbols
from .quantize import QuantAxis, dequantize, quantize


def compress_tensors(tensors: list[np.ndarray], bits: float | list[float]) -> tuple[tuple[TensorRecord, ...], bytes]:
    """Quantize (at one bit depth, or one per tensor) and entropy-code each tensor.

    Returns the records and the digest of their reconstruction.
    """
    depths = bits if isinstance(bits, list) else [bits] * len(tensors)
    records, rebuilt = [], []
    for index, (weights, depth) in enumerate(zip(tensors, depths)):
        q = quantize(weights, depth)
        records.append(TensorRecord(index, q.axis, q.steps, encode_symbols(q.symbols)))
        rebuilt.append(q.dequantize())
    return tuple(records), weights_digest(rebuilt)


def decompress_tensors(nvc: NvcFile) -> list[np.ndarray]:
    """Entropy-decode and dequantize every tensor (bit-exact); check the encoder's digest."""
    tensors = []
    for record, shape in zip(nvc.tensors, nvc.arch.shapes):
        count = int(np.prod(shape, dtype=np.int64))
        symbols = decode_symbols(record.coded, count)
        steps = record.steps
        if record.axis == QuantAxis.PER_CHANNEL and len(steps) != shape[0]:
            raise PayloadError(f"tensor {record.index}: {len(steps)} steps for {shape[0]} channels")
        tensors.append(dequantize(symbols, steps, shape, record.axis))
    if nvc.weights_sha256 is not None and weights_digest(tensors) != nvc.weights_sha256:
        raise PayloadError("reconstructed weights do not match the file's wHSH digest (corrupt file or decoder bug)")
    return tensors
