"""compress() / decompress(): model tensors <-> quantized, entropy-coded tensor records.

The symmetric pair the rest of the codec uses (CompressAI's shape): the encoder calls
``compress_tensors``, the decoder ``decompress_tensors``; both sides share the normative
dequantization in ``compress.quantize.dequantize``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..compress.entropy import MAX_CONTEXT_REACH, CodedSymbols, ModelId, decode_symbols, encode_symbols
from ..compress.quantize import QuantAxis, dequantize, quantize, quantize_with_steps
from ..errors import PayloadError, StructureError
from .format import NvcFile, TensorRecord, weights_digest

CONTEXT_LIMIT = MAX_CONTEXT_REACH // 2  # |value| of a context-coded latent the writer keeps


class ContextCodec(Protocol):
    """A family's coder for tensors under the CONTEXT entropy model (e.g. the grid family's latents).

    ``encode`` and ``decode`` see every tensor before ``index`` as the decoder reconstructs it,
    and return None for a tensor they do not code.
    """

    def codes(self, index: int) -> bool: ...

    def encode(self, index: int, symbols: np.ndarray, decoded: list[np.ndarray]) -> CodedSymbols | None: ...

    def decode(self, index: int, coded: CodedSymbols, decoded: list[np.ndarray]) -> np.ndarray | None: ...


def compress_tensors(
    tensors: list[np.ndarray],
    bits: float | list[float] | None = None,
    steps: list[np.ndarray] | None = None,
    context: ContextCodec | None = None,
    reference: list[np.ndarray] | None = None,
) -> tuple[tuple[TensorRecord, ...], bytes]:
    """Quantize and entropy-code each tensor: at one bit depth, one per tensor, or with given steps.

    ``steps`` (binary16, one array per tensor) are those learned by rate-aware training.
    Returns the records and the digest of their reconstruction.

    With ``reference`` (the previous segment's decoded weights: a predicted segment), a tensor of
    the reference's shape is also coded as its difference from it (RESIDUAL) with the same steps,
    and whichever of the two records is smaller is kept.

    Whatever training produced is written: a step too fine for the coder's alphabet is widened
    (``quantize_with_steps``), and a context-coded tensor, whose step is 1 by the format, is
    clamped to +-``CONTEXT_LIMIT`` (bitstream_spec.md, A.3: R <= 32765).
    """
    latent = [context is not None and context.codes(i) for i in range(len(tensors))]
    tensors = [np.clip(t, -CONTEXT_LIMIT, CONTEXT_LIMIT) if c else t for t, c in zip(tensors, latent)]
    if steps is not None:
        steps = [np.ones(1, np.float16) if c else s for s, c in zip(steps, latent)]
    depths = bits if isinstance(bits, list) else [bits] * len(tensors)

    decoded: list[np.ndarray] = []
    records = []
    for index, tensor in enumerate(tensors):
        q = quantize_with_steps(tensor, steps[index]) if steps is not None else quantize(tensor, depths[index])
        coded = None if context is None else context.encode(index, q.symbols, decoded)
        best = (TensorRecord(index, q.axis, q.steps, coded or encode_symbols(q.symbols)), q.dequantize())
        base = None if reference is None or latent[index] else reference[index]
        if base is not None and base.shape == tensor.shape:
            # the same steps as the direct record (at a bit depth: the direct record's), so that the two
            # reconstruct within the same error and the smaller one is the better one
            r = quantize_with_steps(tensor - base, steps[index] if steps is not None else q.steps)
            record = TensorRecord(index, r.axis, r.steps, encode_symbols(r.symbols), residual=True)
            if _record_bytes(record) < _record_bytes(best[0]):
                best = (record, base + r.dequantize())
        records.append(best[0])
        decoded.append(best[1])
    return tuple(records), weights_digest(decoded)


def _record_bytes(record: TensorRecord) -> int:
    return record.coded.table_bytes + record.coded.payload_bytes + 2 * len(record.steps)


def decompress_tensors(
    nvc: NvcFile, context: ContextCodec | None = None, reference: list[np.ndarray] | None = None
) -> list[np.ndarray]:
    """Entropy-decode and dequantize every tensor (bit-exact); check the encoder's digest.

    A predicted segment needs ``reference``, the previous segment's decoded weights, and they
    must be the ones it was coded against (its PRED digest).
    """
    if nvc.predicted:
        if reference is None:
            raise StructureError(
                "a predicted segment (PRED): its weights are differences from the previous segment's; "
                "decode the file that holds its chain"
            )
        if weights_digest(reference) != nvc.reference_sha256:
            raise PayloadError(
                "coded against other weights than the previous segment decodes to (a broken link in the chain)"
            )
    tensors: list[np.ndarray] = []
    for record, shape in zip(nvc.tensors, nvc.arch.shapes):
        count = int(np.prod(shape, dtype=np.int64))
        symbols = None if context is None else context.decode(record.index, record.coded, tensors)
        if symbols is None:
            if record.coded.model_id == ModelId.CONTEXT:
                raise PayloadError(
                    f"tensor {record.index}: the CONTEXT entropy model is not defined for "
                    f"this tensor of family {nvc.arch.family!r}"
                )
            symbols = decode_symbols(record.coded, count)
        steps = record.steps
        if record.axis == QuantAxis.PER_CHANNEL and len(steps) != shape[0]:
            raise PayloadError(f"tensor {record.index}: {len(steps)} steps for {shape[0]} channels")
        tensor = dequantize(symbols, steps, shape, record.axis)
        if record.residual:
            base = reference[record.index] if record.index < len(reference) else None
            if base is None or base.shape != tuple(shape):
                raise PayloadError(
                    f"tensor {record.index}: RESIDUAL on a tensor of shape {tuple(shape)}, which the "
                    "previous segment does not have"
                )
            tensor = base + tensor  # one binary32 addition (bitstream_spec.md, 8.2.4)
        tensors.append(tensor)
    if nvc.weights_sha256 is not None and weights_digest(tensors) != nvc.weights_sha256:
        raise PayloadError("reconstructed weights do not match the file's wHSH digest (corrupt file or decoder bug)")
    return tensors
