"""The .nvc container, format 1.0: writer and validating reader (bitstream_spec.md).

    file     := signature(8) version_major u16 version_minor u16 preamble_crc u32 chunk*
    chunk    := length u32 | type 4cc | payload(length) | crc u32    (crc over type || payload)
    order    := NHDR, ARCH, [PRED], TENS (index 0, 1, ... once each), NEND; ancillary chunks anywhere between

A stream with PRED (format 1.2) is a predicted segment of a segmented file: its RESIDUAL
tensors are differences from the previous segment's decoded weights, whose digest PRED holds.

The reader checks every length and count against ``Limits`` before it allocates, checks
every CRC, and raises a ``BitstreamError`` subclass naming the problem. Nothing is executed
or unpickled: the architecture is a registry name plus a JSON object.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import os
import zlib
from dataclasses import dataclass, field, replace

import numpy as np
import zstandard

from ..compress.entropy import MAX_ALPHABET, MAX_CONTEXT_REACH, CodedSymbols, ModelId
from ..compress.quantize import QuantAxis
from ..errors import (
    CRCError,
    LimitError,
    SignatureError,
    StructureError,
    TruncatedError,
    UnknownCriticalChunkError,
    UnsupportedVersionError,
)
from ..fsutil import require_file
from .descriptors import ByteReader, ByteWriter

SIGNATURE = b"\x8bNVC\r\n\x1a\n"
VERSION_MAJOR = 1
VERSION_MINOR = 0  # what a single-segment stream is written as
READER_MINOR = 4  # the newest minor version this reader reads (1: segmented files, 2: predicted segments, 3: mcgrid,
# 4: mcgrid's random-access order)
PREDICTED_MINOR = 2  # what a predicted segment (a stream with PRED) is written as, and needs
FAMILY_MINOR = {"mcgrid": 3}  # families registered after 1.0 (Annex A.5): the minor version their streams need
# configurations added to a family later (Annex A.5): (family, config key, value) -> the minor version they need
CONFIG_MINOR = {("mcgrid", "order", 1): 4}
PREAMBLE_SIZE = 16
CHUNK_OVERHEAD = 12  # length + type + crc
MAX_COUNT = 1 << 40  # one categorical count
MAX_COUNT_SUM = 1 << 53  # a table's total, so float64 sums of counts are exact


class ChunkType(bytes, enum.Enum):
    """Chunk types (Table A.1). Lower-case first letter = ancillary (may be skipped)."""

    NHDR = b"NHDR"
    ARCH = b"ARCH"
    TENS = b"TENS"
    NEND = b"NEND"
    WHSH = b"wHSH"
    META = b"mETA"
    SIDX = b"SIDX"  # segmented files (minor 1): the segment index
    SEGM = b"SEGM"  # one segment: a complete stream (a 1.0 one, or a predicted 1.2 one)
    AUDI = b"aUDI"  # an audio track carried as is (Matroska)
    PRED = b"PRED"  # a predicted segment (minor 2): the digest of the weights its RESIDUAL tensors add to


class ConfigFormat(enum.IntEnum):
    """How ARCH carries its JSON config (Table A.4)."""

    JSON = 0
    ZSTD_JSON = 1


class QuantType(enum.IntEnum):
    """Tensor reconstruction methods (Table A.2)."""

    UNIFORM = 1  # w = q x step
    RESIDUAL = 2  # w = reference + q x step (minor 2; only in a stream with PRED)


class HashAlgorithm(enum.IntEnum):
    SHA256 = 1


@dataclass(frozen=True)
class Limits:
    """Resource caps a decoder enforces before allocating (Annex C)."""

    max_file_bytes: int = 1 << 31
    max_dimension: int = 16384
    max_frames: int = 1 << 20
    max_tensors: int = 4096
    max_rank: int = 8
    max_tensor_elements: int = 1 << 26
    max_total_elements: int = 1 << 27
    max_config_bytes: int = 1 << 16
    max_metadata_bytes: int = 1 << 20
    max_alphabet: int = MAX_ALPHABET
    max_segments: int = 1 << 16
    max_audio_bytes: int = 1 << 28


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class VideoHeader:
    """NHDR: what was coded. Colour code points are ITU-T H.273 (defaults: sRGB, RGB, full range)."""

    width: int
    height: int
    num_frames: int
    fps_num: int
    fps_den: int
    colour_primaries: int = 1
    transfer_characteristics: int = 13
    matrix_coefficients: int = 0
    full_range: int = 1
    min_reader_minor: int = 0


@dataclass(frozen=True)
class ArchRecord:
    """ARCH: family registry name, its version, config, and the shapes of its tensors."""

    family: str
    arch_version: int
    config: dict
    shapes: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class TensorRecord:
    """TENS: one quantized, entropy-coded tensor."""

    index: int
    axis: QuantAxis
    steps: np.ndarray  # float16
    coded: CodedSymbols
    residual: bool = False  # QuantType.RESIDUAL: added to the reference's tensor of the same index


@dataclass(frozen=True)
class NvcFile:
    header: VideoHeader
    arch: ArchRecord
    tensors: tuple[TensorRecord, ...]
    weights_sha256: bytes | None = None
    metadata: dict = field(default_factory=dict)
    skipped_chunks: tuple[str, ...] = ()  # unknown ancillary chunk types the reader passed over
    reference_sha256: bytes | None = None  # PRED: a predicted segment, coded against weights of this digest

    @property
    def predicted(self) -> bool:
        return self.reference_sha256 is not None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _no_duplicate_keys(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def parse_json_object(blob: bytes, what: str) -> dict:
    """Strict JSON (RFC 8259, UTF-8): an object, no duplicate keys, no NaN/Infinity."""
    try:
        value = json.loads(blob.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise StructureError(f"{what}: not valid strict UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise StructureError(f"{what}: must be a JSON object")
    return value


def canonical_json(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def weights_digest(tensors: list[np.ndarray]) -> bytes:
    """SHA-256 over every reconstructed tensor as float32 little-endian, in manifest order."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(np.ascontiguousarray(t, dtype="<f4").tobytes())
    return digest.digest()


# ------------------------------------------------------------------------------------ writer


def chunk(kind: ChunkType, payload: bytes) -> bytes:
    body = kind.value + payload
    return len(payload).to_bytes(4, "little") + body + (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "little")


def header_payload(h: VideoHeader) -> bytes:
    w = ByteWriter()
    w.u16(h.min_reader_minor)
    w.u8(0)  # reserved flags
    for v in (h.width, h.height, h.num_frames, h.fps_num, h.fps_den):
        w.u32(v)
    for v in (h.colour_primaries, h.transfer_characteristics, h.matrix_coefficients, h.full_range):
        w.u8(v)
    return w.getvalue()


def _arch_payload(a: ArchRecord) -> bytes:
    w = ByteWriter()
    w.string(a.family)
    w.u16(a.arch_version)
    plain = canonical_json(a.config)
    packed = zstandard.ZstdCompressor(level=19, write_content_size=True).compress(plain)
    fmt, config = (ConfigFormat.ZSTD_JSON, packed) if len(packed) < len(plain) else (ConfigFormat.JSON, plain)
    w.u8(fmt)
    w.blob(config)
    w.uleb(len(a.shapes))
    for shape in a.shapes:
        w.u8(len(shape))
        for d in shape:
            w.uleb(d)
    return w.getvalue()


def _tensor_payload(t: TensorRecord) -> bytes:
    w = ByteWriter()
    w.uleb(t.index)
    w.u8(QuantType.RESIDUAL if t.residual else QuantType.UNIFORM)
    w.u8(t.axis)
    w.array(t.steps, "<f2")
    c = t.coded
    w.u8(c.model_id)
    w.i32(c.sym_min)
    w.i32(c.sym_max)
    if c.model_id == ModelId.CATEGORICAL:
        for count in c.counts:
            w.uleb(int(count))
    elif c.model_id == ModelId.GEOMETRIC:
        centre, decay = c.geometric
        w.i32(centre)
        w.u16(decay)
    w.uleb(len(c.words))
    w.array(c.words, "<u4")
    return w.getvalue()


def preamble(minor: int = VERSION_MINOR) -> bytes:
    head = SIGNATURE + VERSION_MAJOR.to_bytes(2, "little") + minor.to_bytes(2, "little")
    return head + (zlib.crc32(head) & 0xFFFFFFFF).to_bytes(4, "little")


def metadata_chunk(metadata: dict) -> bytes:
    meta = zstandard.ZstdCompressor(level=19, write_content_size=True).compress(canonical_json(metadata))
    return chunk(ChunkType.META, meta)


def arch_minor(arch: ArchRecord) -> int:
    """The minor version the architecture needs: its family's (FAMILY_MINOR) or a configuration's
    added later (CONFIG_MINOR)."""
    later = [
        m for (family, key, value), m in CONFIG_MINOR.items() if family == arch.family and arch.config.get(key) == value
    ]
    return max([FAMILY_MINOR.get(arch.family, 0), *later])


def stream_minor(predicted: bool, arch: ArchRecord) -> int:
    """The minor version a single-segment stream is written as and needs (section 9, rule 4): what
    its features were added in (PRED: 2; a family or configuration registered later: ``arch_minor``)."""
    return max(VERSION_MINOR, PREDICTED_MINOR if predicted else 0, arch_minor(arch))


def write(nvc: NvcFile) -> bytes:
    """Serialize a complete file (chunk order as in the module docstring), carrying the minor
    version its features need (a predicted segment: PRED and 1.2)."""
    minor = stream_minor(nvc.predicted, nvc.arch)
    header = replace(nvc.header, min_reader_minor=max(nvc.header.min_reader_minor, minor))
    parts = [preamble(minor)]
    parts.append(chunk(ChunkType.NHDR, header_payload(header)))
    parts.append(chunk(ChunkType.ARCH, _arch_payload(nvc.arch)))
    if nvc.predicted:
        parts.append(chunk(ChunkType.PRED, bytes([HashAlgorithm.SHA256]) + nvc.reference_sha256))
    parts.extend(chunk(ChunkType.TENS, _tensor_payload(t)) for t in nvc.tensors)
    if nvc.weights_sha256 is not None:
        parts.append(chunk(ChunkType.WHSH, bytes([HashAlgorithm.SHA256]) + nvc.weights_sha256))
    if nvc.metadata:
        parts.append(metadata_chunk(nvc.metadata))
    parts.append(chunk(ChunkType.NEND, b""))
    return b"".join(parts)


# ------------------------------------------------------------------------------------ reader


def check_preamble(data: bytes) -> None:
    if len(data) < len(SIGNATURE) or data[: len(SIGNATURE)] != SIGNATURE:
        raise SignatureError("not an .nvc file (bad signature)")
    if len(data) < PREAMBLE_SIZE:
        raise TruncatedError("file ends inside the preamble")
    if zlib.crc32(data[:12]) & 0xFFFFFFFF != int.from_bytes(data[12:16], "little"):
        raise CRCError("preamble CRC mismatch (version field corrupt)")
    major = int.from_bytes(data[8:10], "little")
    if major != VERSION_MAJOR:
        raise UnsupportedVersionError(
            f"format version {major}.x is not supported (this decoder reads {VERSION_MAJOR}.x); upgrade nvcodec"
        )


def _iter_chunks(data: bytes):
    """Yield (type, payload) after checking framing and CRC of each chunk."""
    pos = PREAMBLE_SIZE
    while pos < len(data):
        if len(data) - pos < CHUNK_OVERHEAD:
            raise TruncatedError(f"file ends inside a chunk header at byte {pos}")
        length = int.from_bytes(data[pos : pos + 4], "little")
        kind = bytes(data[pos + 4 : pos + 8])
        if length > len(data) - pos - CHUNK_OVERHEAD:
            raise TruncatedError(f"chunk at byte {pos} declares {length} bytes, past the end of the file")
        if not all(65 <= c <= 90 or 97 <= c <= 122 for c in kind) or any(c >= 97 for c in kind[1:]):
            raise StructureError(f"chunk at byte {pos} has an invalid type {kind!r}")
        body = data[pos + 4 : pos + 8 + length]
        crc = int.from_bytes(data[pos + 8 + length : pos + 12 + length], "little")
        if zlib.crc32(body) & 0xFFFFFFFF != crc:
            raise CRCError(f"{kind.decode()} chunk at byte {pos}: CRC mismatch (file is corrupt)")
        yield kind, body[4:], pos
        pos += CHUNK_OVERHEAD + length


def parse_header(payload: bytes, limits: Limits) -> VideoHeader:
    r = ByteReader(payload, "NHDR")
    min_minor = r.u16()
    r.u8()  # reserved flags
    width, height, frames, fps_num, fps_den = (r.u32() for _ in range(5))
    colour = [r.u8() for _ in range(4)]
    if min_minor > READER_MINOR:
        raise UnsupportedVersionError(
            f"file needs a 1.{min_minor} decoder (this one reads 1.{READER_MINOR}); upgrade nvcodec"
        )
    if not (1 <= width <= limits.max_dimension and 1 <= height <= limits.max_dimension):
        raise LimitError(f"NHDR: frame size {width}x{height} outside 1..{limits.max_dimension}")
    if not 1 <= frames <= limits.max_frames:
        raise LimitError(f"NHDR: frame count {frames} outside 1..{limits.max_frames}")
    if fps_num == 0 or fps_den == 0:
        raise StructureError("NHDR: frame rate must be a positive fraction")
    return VideoHeader(width, height, frames, fps_num, fps_den, *colour, min_reader_minor=min_minor)


def _parse_arch(payload: bytes, limits: Limits) -> ArchRecord:
    r = ByteReader(payload, "ARCH")
    family = r.string(64)
    arch_version = r.u16()
    fmt = r.u8()
    config_bytes = r.blob(limits.max_config_bytes)
    if fmt == ConfigFormat.ZSTD_JSON:
        config_bytes = unzstd(config_bytes, limits.max_config_bytes, "ARCH config")
    elif fmt != ConfigFormat.JSON:
        raise StructureError(f"ARCH: unknown config format {fmt}")
    config = parse_json_object(config_bytes, "ARCH config")
    count = r.uleb(limits.max_tensors)
    shapes, total = [], 0
    for _ in range(count):
        rank = r.u8()
        if rank > limits.max_rank:
            raise LimitError(f"ARCH: tensor rank {rank} above {limits.max_rank}")
        shape = tuple(r.uleb(limits.max_tensor_elements) for _ in range(rank))
        numel = math.prod(shape)  # Python integers: no wrap-around
        if numel == 0 or numel > limits.max_tensor_elements:
            raise LimitError(f"ARCH: tensor of shape {shape} outside 1..{limits.max_tensor_elements} elements")
        total += numel
        shapes.append(shape)
    if total > limits.max_total_elements:
        raise LimitError(f"ARCH: {total} weights in all, above the limit {limits.max_total_elements}")
    return ArchRecord(family, arch_version, config, tuple(shapes))


def _parse_tensor(
    payload: bytes, shapes: tuple[tuple[int, ...], ...], expected_index: int, limits: Limits, predicted: bool
) -> TensorRecord:
    r = ByteReader(payload, f"TENS {expected_index}")
    index = r.uleb(limits.max_tensors)
    if index != expected_index:
        raise StructureError(f"TENS: expected tensor {expected_index}, found {index}")
    if index >= len(shapes):
        raise StructureError(f"TENS: tensor {index} is not in the ARCH manifest ({len(shapes)} tensors)")
    shape = shapes[index]
    quant_type = r.u8()
    if quant_type not in (QuantType.UNIFORM, QuantType.RESIDUAL):
        raise StructureError(f"TENS {index}: unknown quantization type")
    if quant_type == QuantType.RESIDUAL and not predicted:
        raise StructureError(f"TENS {index}: a RESIDUAL tensor in a stream without PRED (nothing to add it to)")
    try:
        axis = QuantAxis(r.u8())
    except ValueError:
        raise StructureError(f"TENS {index}: unknown quantization axis") from None
    if axis == QuantAxis.PER_CHANNEL and not shape:
        raise StructureError(f"TENS {index}: per-channel steps on a scalar")
    steps = r.array(shape[0] if axis == QuantAxis.PER_CHANNEL else 1, "<f2")
    if not (np.isfinite(steps).all() and (steps > 0).all()):
        raise StructureError(f"TENS {index}: quantization steps must be finite and positive")
    try:
        model_id = ModelId(r.u8())
    except ValueError:
        raise StructureError(f"TENS {index}: unknown entropy model") from None
    sym_min, sym_max = r.i32(), r.i32()
    if not 0 <= sym_max - sym_min < limits.max_alphabet:
        raise LimitError(f"TENS {index}: symbol range [{sym_min}, {sym_max}] outside 1..{limits.max_alphabet} symbols")
    counts, geometric = None, None
    if model_id == ModelId.CATEGORICAL:
        counts = np.array([r.uleb(MAX_COUNT) for _ in range(sym_max - sym_min + 1)], dtype=np.uint64)
        total = sum(int(c) for c in counts)
        if not 0 < total <= MAX_COUNT_SUM:
            raise StructureError(f"TENS {index}: categorical counts must sum to 1..2^53")
    elif model_id == ModelId.GEOMETRIC:
        centre, decay = r.i32(), r.u16()
        if not (sym_min <= centre <= sym_max and decay >= 1):
            raise StructureError(f"TENS {index}: geometric centre outside [sym_min, sym_max] or decay 0")
        geometric = (centre, decay)
    elif model_id == ModelId.CONTEXT:
        if not (len(steps) == 1 and steps[0] == 1.0):
            raise StructureError(f"TENS {index}: a CONTEXT record has exactly one step, equal to 1")
        if sym_max - sym_min > MAX_CONTEXT_REACH:
            raise LimitError(
                f"TENS {index}: CONTEXT symbol range [{sym_min}, {sym_max}] wider than {MAX_CONTEXT_REACH}"
            )
    words = r.array(r.uleb(r.remaining // 4), "<u4")
    coded = CodedSymbols(model_id, sym_min, sym_max, counts, geometric, words)
    return TensorRecord(index, axis, steps, coded, quant_type == QuantType.RESIDUAL)


def unzstd(blob: bytes, limit: int, what: str) -> bytes:
    try:
        params = zstandard.get_frame_parameters(blob)
    except zstandard.ZstdError:
        raise StructureError(f"{what}: not a zstd frame") from None
    if (
        params.content_size in (zstandard.CONTENTSIZE_UNKNOWN, zstandard.CONTENTSIZE_ERROR)
        or params.content_size > limit
    ):
        raise LimitError(f"{what}: zstd content size missing or above {limit} bytes")
    try:
        return zstandard.ZstdDecompressor().decompress(blob, max_output_size=limit)
    except zstandard.ZstdError:
        raise StructureError(f"{what}: corrupt zstd data") from None


def read_file(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> NvcFile:
    """Read and validate a file from disk (its size checked before it is read into memory)."""
    path = require_file(path)
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise LimitError(f"{path}: {size} bytes is above the decoder's limit of {limits.max_file_bytes}")
    return read(path.read_bytes(), limits)


def read(data: bytes, limits: Limits = DEFAULT_LIMITS) -> NvcFile:
    """Parse and validate a whole file held in memory."""
    if len(data) > limits.max_file_bytes:
        raise LimitError(f"file of {len(data)} bytes is above the limit of {limits.max_file_bytes}")
    check_preamble(data)
    header = arch = None
    tensors: list[TensorRecord] = []
    digest, reference, metadata, skipped = None, None, {}, []
    seen_ancillary: set[bytes] = set()
    ended = False
    for kind, payload, pos in _iter_chunks(data):
        if ended:
            raise StructureError(f"bytes after the NEND chunk (at byte {pos})")
        if kind == ChunkType.NHDR.value:
            if header is not None:
                raise StructureError("more than one NHDR chunk")
            header = parse_header(payload, limits)
            continue
        if header is None:
            raise StructureError(f"{kind.decode()} chunk before NHDR (NHDR must come first)")
        if kind == ChunkType.ARCH.value:
            if arch is not None:
                raise StructureError("more than one ARCH chunk")
            arch = _parse_arch(payload, limits)
            needed = arch_minor(arch)
            if header.min_reader_minor < needed:
                raise StructureError(f"a {arch.family} stream must carry NHDR min_reader_minor {needed}")
        elif kind == ChunkType.TENS.value:
            if arch is None:
                raise StructureError("TENS chunk before ARCH")
            tensors.append(_parse_tensor(payload, arch.shapes, len(tensors), limits, reference is not None))
        elif kind == ChunkType.PRED.value:
            reference = _parse_reference(payload, header, arch, reference, tensors)
        elif kind == ChunkType.NEND.value:
            if payload:
                raise StructureError("NEND chunk must be empty")
            ended = True
        elif kind in seen_ancillary:
            raise StructureError(f"more than one {kind.decode()} chunk")
        elif kind == ChunkType.WHSH.value:
            seen_ancillary.add(kind)
            if len(payload) != 33 or payload[0] != HashAlgorithm.SHA256:
                raise StructureError("wHSH: expected algorithm 1 (SHA-256) and a 32-byte digest")
            digest = bytes(payload[1:])
        elif kind == ChunkType.META.value:
            seen_ancillary.add(kind)
            metadata = parse_json_object(unzstd(payload, limits.max_metadata_bytes, "mETA"), "mETA")
        elif kind[0] >= 97:
            skipped.append(kind.decode())
        else:
            raise UnknownCriticalChunkError(
                f"unknown critical chunk {kind.decode()!r}: written by a newer nvcodec; upgrade to decode it"
            )
    if not ended:
        raise TruncatedError("file ends before its NEND chunk (truncated)")
    if arch is None:
        raise StructureError("no ARCH chunk")
    if len(tensors) != len(arch.shapes):
        raise StructureError(f"{len(tensors)} TENS chunks for {len(arch.shapes)} tensors in the manifest")
    return NvcFile(header, arch, tuple(tensors), digest, metadata, tuple(skipped), reference)


def _parse_reference(
    payload: bytes, header: VideoHeader, arch: ArchRecord | None, seen: bytes | None, tensors: list
) -> bytes:
    """PRED's digest, once its place, its size and the stream's version are checked."""
    if seen is not None:
        raise StructureError("more than one PRED chunk")
    if arch is None or tensors:
        raise StructureError("PRED chunk must come after ARCH and before the first TENS")
    if len(payload) != 33 or payload[0] != HashAlgorithm.SHA256:
        raise StructureError("PRED: expected algorithm 1 (SHA-256) and a 32-byte digest")
    if header.min_reader_minor < PREDICTED_MINOR:
        raise StructureError(f"a stream with PRED must carry NHDR min_reader_minor {PREDICTED_MINOR}")
    return bytes(payload[1:])
