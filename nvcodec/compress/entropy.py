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

A third model, ``CONTEXT``, carries no parameters: every symbol has its own centre and scale,
predicted by a family's context model from symbols decoded before it (the latent grids of the
``grid`` family, ``compress/context.py``). ``ConditionalEncoder`` / ``ConditionalDecoder`` code
such symbols pass by pass, grouped by table (scale and whole or half-integer centre).

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
MAX_CONTEXT_REACH = MAX_ALPHABET // 2 - 3  # sym_max - sym_min of a CONTEXT record: 2R + 3 residuals fit the alphabet


class ModelId(enum.IntEnum):
    """On-disk entropy-model identifiers (bitstream_spec.md, Table A.3)."""

    CATEGORICAL = 0
    GEOMETRIC = 1
    CONTEXT = 2  # per-symbol centre and scale from a family's context model (no parameters in the record)


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
        return GEOMETRIC_PARAM_BYTES if self.model_id == ModelId.GEOMETRIC else 0

    @property
    def payload_bytes(self) -> int:
        return 4 * len(self.words)

    def table(self) -> np.ndarray:
        """Integer counts for every symbol in [sym_min, sym_max]."""
        if self.model_id == ModelId.CATEGORICAL:
            return self.counts
        centre, decay = self.geometric
        return geometric_counts(self.sym_min, self.sym_max, centre, decay)


def geometric_counts(sym_min: int, sym_max: int, centre: int, decay: int, first: int | None = None) -> np.ndarray:
    """count(k) = g[|k - centre|] with g[0] = 2^24, g[d] = max(1, (g[d-1] * decay) >> 16);
    ``first`` (CONTEXT tables) replaces ``decay`` for g[1]."""
    reach = max(centre - sym_min, sym_max - centre) + 1
    g = np.ones(reach, dtype=np.uint64)
    value = GEOMETRIC_PEAK
    for d in range(reach):
        g[d] = value
        if value == 1:
            break
        value = max(1, (value * (first if d == 0 and first is not None else decay)) >> 16)
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
    geometric = CodedSymbols(
        ModelId.GEOMETRIC, sym_min, sym_max, None, (centre, decay), _encode(symbols, table, sym_min)
    )
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
    except Exception as exc:  # any error: constriction reports corrupt data in several ways
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


# ------------------------------------------------------------------ context-coded symbols

# The table of scale index s is the Laplace of scale b_s = 0.04 * 2^(s / 4) integrated over unit
# bins around an integer centre, as counts: c(0) = 2^24, c(1) = max(1, (c(0) * first) >> 16),
# c(d) = max(1, (c(d-1) * decay) >> 16) for d >= 2, with (first, decay) below:
#   first = round(65536 * P(1) / P(0)), decay = round(65536 * exp(-1 / b_s)), both clamped to [1, 65535].
# The integers are normative (bitstream_spec.md, A.3.1): a decoder uses this table, not the formula.
SCALE_TABLE: tuple[tuple[int, int], ...] = (
    (1, 1),
    (1, 1),
    (5, 1),
    (19, 1),
    (63, 1),
    (172, 2),
    (399, 10),
    (816, 39),
    (1503, 127),
    (2538, 342),
    (3990, 789),
    (5908, 1594),
    (8308, 2879),
    (11174, 4734),
    (14450, 7191),
    (18051, 10221),
    (21871, 13737),
    (25795, 17614),
    (29714, 21709),
    (33533, 25882),
    (37174, 30005),
    (40582, 33976),
    (43719, 37719),
    (46569, 41185),
    (49126, 44344),
    (51399, 47187),
    (53401, 49719),
    (55152, 51953),
    (56674, 53908),
    (57990, 55610),
    (59123, 57082),
    (60095, 58350),
    (60926, 59439),
    (61634, 60369),
    (62238, 61163),
    (62750, 61839),
    (63184, 62413),
    (63552, 62900),
    (63863, 63312),
    (64126, 63661),
    (64348, 63955),
    (64536, 64204),
    (64694, 64414),
    (64827, 64592),
    (64939, 64741),
    (65034, 64867),
    (65113, 64973),
    (65180, 65062),
    (65237, 65137),
    (65284, 65201),
    (65324, 65254),
    (65358, 65299),
    (65386, 65336),
    (65410, 65368),
    (65430, 65395),
    (65447, 65417),
    (65461, 65436),
    (65473, 65452),
    (65483, 65465),
    (65491, 65477),
    (65499, 65486),
    (65504, 65494),
    (65509, 65501),
    (65514, 65506),
)
NUM_SCALES = len(SCALE_TABLE)


def context_counts(reach: int, scale: int, half: bool) -> np.ndarray:
    """Counts over residuals r in [-reach-1, reach+1] for scale index ``scale``.

    Integer centre (``half`` False): r = symbol - centre, count g'[|r|] with g' the table of
    ``SCALE_TABLE[scale]`` (first, decay). Half-integer centre c + 1/2 (``half`` True): r = symbol - c,
    count g[r - 1] for r >= 1 and g[-r] for r <= 0, g the geometric table of the decay alone:
    both are the Laplace of scale b_s integrated over unit bins.
    """
    first, decay = SCALE_TABLE[scale]
    width = reach + 1
    if not half:
        return geometric_counts(-width, width, 0, decay, first)
    g = geometric_counts(0, width, 0, decay)
    return np.concatenate([g[::-1], g[:width]])


def _context_model(reach: int, key: int, cache: dict) -> constriction.stream.model.Categorical:
    """The table for ``key`` = 2 x scale + half (how symbols are grouped), built once per record."""
    if key not in cache:
        cache[key] = _categorical(context_counts(reach, key // 2, bool(key % 2)))
    return cache[key]


def _context_keys(centres2: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(floor of each centre, table key 2 x scale + half) from doubled centres."""
    centres2 = np.asarray(centres2, np.int64)
    return centres2 >> 1, 2 * np.asarray(scales, np.int64) + (centres2 & 1)


class ConditionalEncoder:
    """Codes symbols whose centre and scale index are given one by one (model ``CONTEXT``).

    Centres come doubled (``centres2`` = round(2 x centre): integer and half-integer centres).
    Each ``encode`` call is one pass of the family's context process: the residuals are coded in
    increasing table key (2 x scale + half), in the pass's order within one key, so that a
    decoder holding the same centres and scales can take them back.
    """

    def __init__(self, sym_min: int, sym_max: int) -> None:
        if not 0 <= sym_max - sym_min <= MAX_CONTEXT_REACH:
            raise ValueError(f"symbol range [{sym_min}, {sym_max}] too wide for context coding")
        self.sym_min, self.sym_max, self.reach = sym_min, sym_max, sym_max - sym_min
        self._coder = constriction.stream.queue.RangeEncoder()
        self._models: dict = {}

    def encode(self, symbols: np.ndarray, centres2: np.ndarray, scales: np.ndarray) -> None:
        floors, keys = _context_keys(centres2, scales)
        residuals = np.asarray(symbols, np.int64) - floors + self.reach + 1
        for key in np.unique(keys):
            self._coder.encode(
                residuals[keys == key].astype(np.int32), _context_model(self.reach, int(key), self._models)
            )

    def finish(self) -> CodedSymbols:
        words = self._coder.get_compressed().astype("<u4")
        return CodedSymbols(ModelId.CONTEXT, self.sym_min, self.sym_max, None, None, words)


class ConditionalDecoder:
    """The inverse of ``ConditionalEncoder``; refuses symbols outside the record's range."""

    def __init__(self, coded: CodedSymbols) -> None:
        if coded.model_id != ModelId.CONTEXT:
            raise PayloadError("expected a CONTEXT record")
        self.sym_min, self.sym_max, self.reach = coded.sym_min, coded.sym_max, coded.sym_max - coded.sym_min
        self._coder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(coded.words, dtype=np.uint32))
        self._models: dict = {}

    def decode(self, centres2: np.ndarray, scales: np.ndarray) -> np.ndarray:
        floors, keys = _context_keys(centres2, scales)
        symbols = np.empty(len(floors), np.int64)
        try:
            for key in np.unique(keys):
                where = keys == key
                model = _context_model(self.reach, int(key), self._models)
                symbols[where] = self._coder.decode(model, int(where.sum())).astype(np.int64)
        except Exception as exc:  # any error: constriction reports corrupt data in several ways
            raise PayloadError(f"context-coded payload is corrupt ({exc.__class__.__name__})") from None
        symbols += floors - self.reach - 1
        if len(symbols) and (symbols.min() < self.sym_min or symbols.max() > self.sym_max):
            raise PayloadError("context-coded payload is corrupt (a symbol outside the record's range)")
        return symbols

    def finish(self) -> None:
        if not self._coder.maybe_exhausted():
            raise PayloadError("context-coded payload has data left after the last symbol")


def conditional_code_length(symbols: np.ndarray, centres2: np.ndarray, scales: np.ndarray, reach: int) -> float:
    """Ideal bits of ``symbols`` under their tables (the estimate of what ``ConditionalEncoder`` writes)."""
    floors, keys = _context_keys(centres2, scales)
    residuals = np.asarray(symbols, np.int64) - floors + reach + 1
    bits = 0.0
    for key in np.unique(keys):
        table = context_counts(reach, int(key) // 2, bool(key % 2)).astype(np.float64)
        bits -= float(np.log2(table[residuals[keys == key]] / table.sum()).sum())
    return bits
