"""compress() / decompress(): model tensors <-> quantized, entropy-coded tensor records.

The symmetric pair the rest of the codec uses (CompressAI's shape): the encoder calls
``compress_tensors``, the decoder ``decompress_tensors``; both sides share the normative
dequantization in ``compress.quantize.dequantize``.
"""

from __future__ import annotations

import numpy as np

from ..compress.entropy import decode_symbols, encode_symbols
from ..compress.quantize import QuantAxis, dequantize, quantize, quantize_with_steps
from ..errors import PayloadError
from .format import NvcFile, TensorRecord, weights_digest


def compress_tensors(tensors: list[np.ndarray], bits: float | list[float] | None = None,
                     steps: list[np.ndarray] | None = None) -> tuple[tuple[TensorRecord, ...], bytes]:
    """Quantize and entropy-code each tensor: at one bit depth, one per tensor, or with given steps.

    ``steps`` (binary16, one array per tensor) are those learned by rate-aware training.
    Returns the records and the digest of their reconstruction.
    """
    if steps is not None:
        quantized = [quantize_with_steps(t, s) for t, s in zip(tensors, steps)]
    else:
        depths = bits if isinstance(bits, list) else [bits] * len(tensors)
        quantized = [quantize(t, depth) for t, depth in zip(tensors, depths)]
    records = tuple(TensorRecord(index, q.axis, q.steps, encode_symbols(q.symbols)) for index, q in enumerate(quantized))
    return records, weights_digest([q.dequantize() for q in quantized])


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
