"""Entropy coding of integer symbols with constriction's range coder.

This is the only module that touches constriction. Every model is built from integers or
from float parameters that travel in the file, never from anything computed by a network,
so decoding is bit-exact on every machine (bitstream_spec.md, Annex A.3).

Two models, the encoder picks whichever makes the smaller record:

* ``CATEGORICAL``: the symbols' own histogram, transmitted as leb128 counts. Costs within a
  fraction of a percent of the empirical entropy, plus the table.
* ``LAPLACE``: a quantized Laplace(mean, scale) with two float32 parameters. Cheaper for
  small tensors, where a histogram table would cost more than it saves.

A one-symbol alphabet (``sym_min == sym_max``, e.g. a fully pruned tensor) has an empty payload.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import constriction
import numpy as np

from ..bitstream.descriptors import leb128_size
from ..errors import PayloadError

MAX_ALPHABET = 1 << 16  # symbols per model; a file declaring more is refused


class ModelId(enum.IntEnum):
    """On-disk entropy-model identifiers (bitstream_spec.md, Table A.3)."""

    CATEGORICAL = 0
    LAPLACE = 1


@dataclass(frozen=True)
class CodedSymbols:
    """Range-coded symbols plus the model that decodes them."""

    model_id: ModelId
    sym_min: int
    sym_max: int
    counts: np.ndarray | None  # CATEGORICAL: uint64 [sym_max - sym_min + 1]
    laplace: tuple[float, float] | None  # LAPLACE: (mean, scale) as float32 values
    words: np.ndarray  # uint32 coder output

    @property
    def table_bytes(self) -> int:
        """Bytes the model parameters take in the file."""
        if self.model_id == ModelId.CATEGORICAL:
            return sum(leb128_size(int(c)) for c in self.counts)
        return 8

    @property
    def payload_bytes(self) -> int:
        return 4 * len(self.words)


def _categorical(counts: np.ndarray) -> constriction.stream.model.Categorical:
    total = float(counts.sum())
    probabilities = counts.astype(np.float64) / total
    return constriction.stream.model.Categorical(probabilities, perfect=False)


def _laplace(sym_min: int, sym_max: int, mean: float, scale: float):
    return constriction.stream.model.QuantizedLaplace(sym_min, sym_max, float(mean), float(scale))


def _model(coded: CodedSymbols):
    if coded.model_id == ModelId.CATEGORICAL:
        return _categorical(coded.counts), coded.sym_min
    mean, scale = coded.laplace
    return _laplace(coded.sym_min, coded.sym_max, mean, scale), 0


def _encode(symbols: np.ndarray, model, offset: int) -> np.ndarray:
    encoder = constriction.stream.queue.RangeEncoder()
    if symbols.size:
        encoder.encode((symbols - offset).astype(np.int32), model)
    return encoder.get_compressed().astype("<u4")


def encode_symbols(symbols: np.ndarray, model: ModelId | None = None) -> CodedSymbols:
    """Code a flat int array with ``model``, or (None) whichever model gives the smaller record."""
    symbols = np.ascontiguousarray(symbols, dtype=np.int64).ravel()
    if symbols.size == 0:
        return CodedSymbols(ModelId.CATEGORICAL, 0, 0, np.ones(1, np.uint64), None, np.zeros(0, "<u4"))
    sym_min, sym_max = int(symbols.min()), int(symbols.max())
    if sym_max - sym_min + 1 > MAX_ALPHABET:
        raise ValueError(f"alphabet of {sym_max - sym_min + 1} symbols exceeds {MAX_ALPHABET}")
    counts = np.bincount(symbols - sym_min, minlength=sym_max - sym_min + 1).astype(np.uint64)
    if sym_min == sym_max:  # a constant tensor: the model alone says everything
        return CodedSymbols(ModelId.CATEGORICAL, sym_min, sym_max, counts, None, np.zeros(0, "<u4"))
    categorical = CodedSymbols(
        ModelId.CATEGORICAL, sym_min, sym_max, counts, None, _encode(symbols, _categorical(counts), sym_min)
    )
    mean = np.float32(np.median(symbols))
    scale = np.float32(max(np.mean(np.abs(symbols - mean)), 0.05))
    laplace = CodedSymbols(
        ModelId.LAPLACE,
        sym_min,
        sym_max,
        None,
        (float(mean), float(scale)),
        _encode(symbols, _laplace(sym_min, sym_max, mean, scale), 0),
    )
    candidates = {ModelId.CATEGORICAL: categorical, ModelId.LAPLACE: laplace}
    if model is not None:
        return candidates[model]
    return min(candidates.values(), key=lambda c: c.table_bytes + c.payload_bytes)


def decode_symbols(coded: CodedSymbols, count: int) -> np.ndarray:
    """Decode exactly ``count`` symbols; refuse a payload with words left over."""
    if count == 0:
        if len(coded.words):
            raise PayloadError("payload holds words but the tensor is empty")
        return np.zeros(0, np.int64)
    if coded.sym_min == coded.sym_max:
        if len(coded.words):
            raise PayloadError("payload of a one-symbol alphabet must be empty")
        return np.full(count, coded.sym_min, np.int64)
    model, offset = _model(coded)
    decoder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(coded.words, dtype=np.uint32))
    symbols = decoder.decode(model, count).astype(np.int64) + offset
    if not decoder.maybe_exhausted():
        raise PayloadError("entropy-coded payload has data left after the last symbol")
    return symbols


def empirical_entropy_bits(symbols: np.ndarray) -> float:
    """Total bits an ideal coder needs for these symbols under their own histogram."""
    _, counts = np.unique(np.asarray(symbols).ravel(), return_counts=True)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())
