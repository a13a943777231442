"""Entropy coding of integer symbols with constriction's range coder.

This is the only module that touches constriction. Every probability table is built from
integers that travel in the file, with exact integer arithmetic, so entropy decoding is
bit-exact on every machine (bitstream_spec.md, Annex A.3). The encoder picks whichever of two
models makes the smaller record:

* ``CATEGORICAL``: the symbols' own histogram, transmitted as leb128 counts. Within a
  fraction of a percent of the empirical entropy, plus the table.
* ``GEOMETRIC``: a two-sided geometric table (the discrete Laplace) given by an integer centre
  and a 16-bit decay, built by an integer recurrence. Six bytes of parameters: the choice for
  small tensors, where a histogram would cost more than it saves.

A one-symbol alphabet (``sym_min == sym_max``, e.g. a fully pruned tensor) has an empty payload.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import constriction
import numpy as np

from ..errors import PayloadError
from .varint import leb128_size, leb128_sizes

MAX_ALPHABET = 1 << 16  # symbols per model; a file declaring more is refused
GEOMETRIC_PEAK = 1 << 24  # count of the centre symbol in a GEOMETRIC table
GEOMETRIC_PARAM_BYTES = 6  # centre i32 + decay u16


class ModelId(enum.IntEnum):
    """On-disk entropy-model identifiers (bitstream_spec.md, Table A.3)."""

    CATEGORICAL = 0
    GEOMETRIC = 1


@dataclass(frozen=True)
class CodedSymbols:
    """Range-coded symbols plus the model that decodes them."""

    model_id: ModelId
    sym_min: int
    sym_max: int
    counts: np.ndarray | None  # CATEGORICAL: uint64 [sym_max - sym_min + 1]
    geometric: tuple[int, int] | None  # GEOMETRIC: (centre, decay)
    words: np.ndarray  # uint32 coder output

    @property
    def table_bytes(self) -> int:
        """Bytes the model parameters take in the file."""
        if self.model_id == ModelId.CATEGORICAL:
            return sum(leb128_size(int(c)) for c in self.counts)
        return GEOMETRIC_PARAM_BYTES

    @property
    def payload_bytes(self) -> int:
        return 4 * len(self.words)

    def table(self) -> np.ndarray:
        """Integer counts for every symbol in [sym_min, sym_max]."""
        if self.model_id == ModelId.CATEGORICAL:
            return self.counts
        centre, decay = self.geometric
        return geometric_counts(self.sym_min, self.sym_max, centre, decay)


def geometric_counts(sym_min: int, sym_max: int, centre: int, decay: int) -> np.ndarray:
    """count(k) = g[|k - centre|] with g[0] = 2^24, g[d] = max(1, (g[d-1] * decay) >> 16)."""
    reach = max(centre - sym_min, sym_max - centre) + 1
    g = np.ones(reach, dtype=np.uint64)
    value = GEOMETRIC_PEAK
    for d in range(reach):
        g[d] = value
        if value == 1:
            break
        value = max(1, (value * decay) >> 16)
    return g[np.abs(np.arange(sym_min, sym_max + 1) - centre)]


def _categorical(counts: np.ndarray) -> constriction.stream.model.Categorical:
    probabilities = counts.astype(np.float64) / float(counts.astype(np.float64).sum())
    return constriction.stream.model.Categorical(probabilities, perfect=False)


def _encode(symbols: np.ndarray, counts: np.ndarray, sym_min: int) -> np.ndarray:
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode((symbols - sym_min).astype(np.int32), _categorical(counts))
    return encoder.get_compressed().astype("<u4")


def _fit_geometric(symbols: np.ndarray, sym_min: int, sym_max: int) -> tuple[int, int]:
    """Centre = median; decay from the maximum-likelihood ratio, refined on nearby values."""
    centre = int(np.clip(np.round(np.median(symbols)), sym_min, sym_max))
    distances = np.bincount(np.abs(symbols - centre)).astype(np.float64)
    m = float((distances * np.arange(len(distances))).sum() / distances.sum())
    ratio = (np.sqrt(1 + m * m) - 1) / m if m > 0 else 0.0  # E|k| = 2r / (1 - r^2) solved for r
    guess = ratio * 65536
    best, best_bits = 1, float("inf")
    for factor in (0.9, 0.95, 0.98, 0.99, 1.0, 1.01, 1.02, 1.05):
        decay = int(np.clip(round(65536 - (65536 - guess) * factor), 1, 65535))
        table = geometric_counts(sym_min, sym_max, centre, decay).astype(np.float64)
        by_distance = geometric_counts(centre, centre + len(distances) - 1, centre, decay).astype(np.float64)
        bits = -(distances * np.log2(by_distance / table.sum())).sum()
        if bits < best_bits:
            best, best_bits = decay, bits
    return centre, best


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
    categorical = CodedSymbols(ModelId.CATEGORICAL, sym_min, sym_max, counts, None, _encode(symbols, counts, sym_min))
    centre, decay = _fit_geometric(symbols, sym_min, sym_max)
    table = geometric_counts(sym_min, sym_max, centre, decay)
    geometric = CodedSymbols(ModelId.GEOMETRIC, sym_min, sym_max, None, (centre, decay), _encode(symbols, table, sym_min))
    candidates = {ModelId.CATEGORICAL: categorical, ModelId.GEOMETRIC: geometric}
    if model is not None:
        return candidates[model]
    return min(candidates.values(), key=lambda c: c.table_bytes + c.payload_bytes)


def decode_symbols(coded: CodedSymbols, count: int) -> np.ndarray:
    """Decode exactly ``count`` symbols; refuse a payload that is malformed or has words left over."""
    if count == 0 or coded.sym_min == coded.sym_max:
        if len(coded.words):
            raise PayloadError("payload must be empty for an empty tensor or a one-symbol alphabet")
        return np.full(count, coded.sym_min, np.int64)
    try:
        decoder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(coded.words, dtype=np.uint32))
        symbols = decoder.decode(_categorical(coded.table()), count).astype(np.int64) + coded.sym_min
        exhausted = decoder.maybe_exhausted()
    except Exception as exc:  # noqa: BLE001 - constriction reports corrupt data in several ways
        raise PayloadError(f"entropy-coded payload is corrupt ({exc.__class__.__name__})") from None
    if not exhausted:
        raise PayloadError("entropy-coded payload has data left after the last symbol")
    return symbols


def categorical_record_bits(symbols: np.ndarray) -> float:
    """Bits of a CATEGORICAL record of integer ``symbols``: their empirical entropy plus the table
    (one leb128 count per symbol of [min, max]); the range coder's slack aside."""
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    counts = np.bincount(symbols - symbols.min())
    return empirical_entropy_bits(symbols) + 8 * int(leb128_sizes(counts).sum())


def empirical_entropy_bits(symbols: np.ndarray) -> float:
    """Total bits an ideal coder needs for these symbols under their own histogram."""
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    counts = np.bincount(symbols - symbols.min())  # faster than np.unique: it runs in rate-aware training steps
    counts = counts[counts > 0]
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())
