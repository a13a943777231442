"""Segmented .nvc files (format 1.1, bitstream_spec.md section 10): many streams, one index.

    file  := preamble(minor 1) NHDR SIDX SEGM* [aUDI] [mETA] NEND
    SIDX  := count uleb, then per segment: first_frame u32, num_frames u32, offset u64,
             length u32, crc u32   (offset: the SEGM chunk's first byte; crc: CRC-32 of its payload)
    SEGM  := a complete single-segment stream (format.py) of the segment's frames; from format
             1.2 it may be predicted: its weights coded against the previous segment's (PRED)

The index sits before the segments, so a reader reads the preamble, NHDR and SIDX and then
only the segments it needs (``NvcReader.bytes_read`` counts what it read); the audio and the
metadata come after the last segment (where the index says it ends), so a truncated file
still yields every segment that is whole. A 1.0 single-stream file reads as one segment.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, replace
from functools import cached_property

from ..errors import (
    CRCError,
    LimitError,
    StructureError,
    TruncatedError,
    UnknownCriticalChunkError,
)
from ..fsutil import require_file
from . import format as fmt
from .descriptors import ByteReader, ByteWriter

SEGMENTED_MINOR = 1
INDEX_ENTRY_BYTES = 24


@dataclass(frozen=True)
class SegmentEntry:
    first_frame: int
    num_frames: int
    offset: int  # of the SEGM chunk (its length field), from the start of the file
    length: int  # of the SEGM payload
    crc: int  # CRC-32 of the SEGM payload

    @property
    def stop_frame(self) -> int:
        return self.first_frame + self.num_frames

    @property
    def end(self) -> int:
        """One past the SEGM chunk's last byte."""
        return self.offset + fmt.CHUNK_OVERHEAD + self.length


def _index_payload(entries: list[SegmentEntry]) -> bytes:
    w = ByteWriter()
    w.uleb(len(entries))
    for e in entries:
        w.u32(e.first_frame)
        w.u32(e.num_frames)
        w.u64(e.offset)
        w.u32(e.length)
        w.u32(e.crc)
    return w.getvalue()


def write_segmented(
    header: fmt.VideoHeader,
    streams: list[bytes],
    frame_counts: list[int],
    audio: bytes | None = None,
    metadata: dict | None = None,
) -> bytes:
    """One file of many single-segment streams (each a complete stream of its frames; one whose
    weights are coded against the previous segment's makes the file need a 1.2 reader)."""
    parsed = [fmt.read(stream) for stream in streams if stream]
    # what the file needs (section 9, rule 4): its streams' features, and segments (1.1)
    minor = max([SEGMENTED_MINOR] + [fmt.stream_minor(s.predicted, s.arch) for s in parsed])
    header = replace(header, min_reader_minor=minor)
    head = fmt.preamble(minor) + fmt.chunk(fmt.ChunkType.NHDR, fmt.header_payload(header))
    placeholder = [SegmentEntry(0, 0, 0, 0, 0)] * len(streams)
    position = len(head) + fmt.CHUNK_OVERHEAD + len(_index_payload(placeholder))
    entries, first = [], 0
    for stream, count in zip(streams, frame_counts):
        entries.append(SegmentEntry(first, count, position, len(stream), zlib.crc32(stream) & 0xFFFFFFFF))
        first += count
        position += fmt.CHUNK_OVERHEAD + len(stream)
    parts = [head, fmt.chunk(fmt.ChunkType.SIDX, _index_payload(entries))]
    parts += [fmt.chunk(fmt.ChunkType.SEGM, s) for s in streams]
    if audio:
        parts.append(fmt.chunk(fmt.ChunkType.AUDI, audio))
    if metadata:
        parts.append(fmt.metadata_chunk(metadata))
    parts.append(fmt.chunk(fmt.ChunkType.NEND, b""))
    return b"".join(parts)


class NvcReader:
    """Random access to a .nvc file: the header and index up front, segments on demand.

    Everything is validated as it is read; every length is checked against ``limits`` and the
    file's size before anything is allocated.
    """

    def __init__(self, path: str | os.PathLike, limits: fmt.Limits = fmt.DEFAULT_LIMITS) -> None:
        self.path = require_file(path)
        self.limits = limits
        self.file_bytes = self.path.stat().st_size
        self.bytes_read = 0
        self._last: tuple[int, fmt.NvcFile] | None = None  # the segment read last (planning reads it first)
        preamble = self._read(0, min(fmt.PREAMBLE_SIZE, self.file_bytes))
        fmt.check_preamble(preamble)
        self.version_minor = int.from_bytes(preamble[10:12], "little")
        kind, payload, after = self._chunk_at(fmt.PREAMBLE_SIZE)
        following = self._peek_type(after)
        if kind != fmt.ChunkType.NHDR.value or following != fmt.ChunkType.SIDX.value:
            self._plain = fmt.read_file(self.path, limits)  # a single-segment stream: all of it, validated
            self.bytes_read = self.file_bytes
            self.header = self._plain.header
            self.segments = (SegmentEntry(0, self.header.num_frames, 0, self.file_bytes, 0),)
            return
        self._plain = None
        self.header = fmt.parse_header(payload, limits)
        if (
            self.header.min_reader_minor < SEGMENTED_MINOR
            or int.from_bytes(preamble[10:12], "little") < SEGMENTED_MINOR
        ):
            raise StructureError("a segmented file must carry version_minor and NHDR min_reader_minor of at least 1")
        _, index, after_index = self._chunk_at(after)
        self.segments = self._parse_index(index, after_index)

    # -------------------------------------------------------------------- reading bytes

    def _read(self, offset: int, size: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        self.bytes_read += len(data)
        return data

    def _peek_type(self, offset: int) -> bytes | None:
        """The type of the chunk at ``offset`` (not counted in ``bytes_read``: the chunk is read next)."""
        if self.file_bytes - offset < 8:
            return None
        with open(self.path, "rb") as f:
            f.seek(offset + 4)
            return f.read(4)

    def _chunk_at(self, offset: int, max_length: int | None = None) -> tuple[bytes, bytes, int]:
        """(type, payload, offset after the chunk), framing and CRC checked."""
        if self.file_bytes - offset < fmt.CHUNK_OVERHEAD:
            raise TruncatedError(f"file ends inside a chunk header at byte {offset}")
        head = self._read(offset, 8)
        length, kind = int.from_bytes(head[:4], "little"), head[4:]
        if length > self.file_bytes - offset - fmt.CHUNK_OVERHEAD:
            raise TruncatedError(
                f"{kind.decode(errors='replace')} chunk at byte {offset} declares {length} bytes, "
                "past the end of the file (truncated)"
            )
        if max_length is not None and length > max_length:
            raise LimitError(
                f"{kind.decode(errors='replace')} chunk at byte {offset}: {length} bytes, above {max_length}"
            )
        rest = self._read(offset + 8, length + 4)
        payload, crc = rest[:length], int.from_bytes(rest[length:], "little")
        if zlib.crc32(kind + payload) & 0xFFFFFFFF != crc:
            raise CRCError(f"{kind.decode(errors='replace')} chunk at byte {offset}: CRC mismatch (file is corrupt)")
        return kind, payload, offset + fmt.CHUNK_OVERHEAD + length

    def _parse_index(self, payload: bytes, after: int) -> tuple[SegmentEntry, ...]:
        r = ByteReader(payload, "SIDX")
        count = r.uleb(self.limits.max_segments)
        if count < 1 or r.remaining != count * INDEX_ENTRY_BYTES:
            raise StructureError(
                f"SIDX: {count} segments need {count * INDEX_ENTRY_BYTES} bytes of entries, found {r.remaining}"
            )
        entries, first, position = [], 0, after
        for i in range(count):
            e = SegmentEntry(r.u32(), r.u32(), r.u64(), r.u32(), r.u32())
            if e.first_frame != first or e.num_frames < 1:
                raise StructureError(f"SIDX: segment {i} must start at frame {first} and hold at least one frame")
            if e.offset < position:
                raise StructureError(f"SIDX: segment {i} at byte {e.offset} overlaps what comes before it")
            if e.length > self.limits.max_file_bytes:
                raise LimitError(f"SIDX: segment {i} of {e.length} bytes is above {self.limits.max_file_bytes}")
            entries.append(e)
            first, position = e.stop_frame, e.end
        if first != self.header.num_frames:
            raise StructureError(f"SIDX: segments hold {first} frames, NHDR says {self.header.num_frames}")
        return tuple(entries)

    # -------------------------------------------------------------------- what a decoder asks

    @property
    def segmented(self) -> bool:
        return self._plain is None

    @property
    def version(self) -> str:
        return f"{fmt.VERSION_MAJOR}.{self.version_minor}"

    def complete(self) -> list[int]:
        """Indices of the segments whose bytes are all in the file (all of them unless it is truncated)."""
        return [i for i, e in enumerate(self.segments) if not self.segmented or e.end <= self.file_bytes]

    def overlapping(self, start: int, stop: int) -> list[int]:
        return [i for i, e in enumerate(self.segments) if e.first_frame < stop and e.stop_frame > start]

    def read_segment(self, index: int) -> fmt.NvcFile:
        """Segment ``index`` as a validated stream (its frames numbered from 0)."""
        if self._plain is not None:
            return self._plain
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        e = self.segments[index]
        stream = fmt.read(self.segment_bytes(index), self.limits)
        h, outer = stream.header, self.header
        same = (h.width, h.height, h.fps_num, h.fps_den) == (outer.width, outer.height, outer.fps_num, outer.fps_den)
        minor = fmt.stream_minor(stream.predicted, stream.arch)
        if not same or h.num_frames != e.num_frames or h.min_reader_minor != minor or outer.min_reader_minor < minor:
            raise StructureError(
                f"segment {index}: its NHDR does not match the file's (size, rate, frame count or version)"
            )
        if stream.predicted and (index == 0 or outer.min_reader_minor < fmt.PREDICTED_MINOR):
            raise StructureError(
                f"segment {index} is predicted (PRED), but "
                + ("the first segment has none before it" if index == 0 else "the file's NHDR does not say so")
            )
        self._last = (index, stream)
        return stream

    def segment_bytes(self, index: int) -> bytes:
        """The SEGM payload of segment ``index``, its framing and both CRCs checked (not yet parsed)."""
        e = self.segments[index]
        if e.end > self.file_bytes:
            whole = self.complete()
            have = (
                f"frames 0:{self.segments[whole[-1]].stop_frame} decode"
                if whole and whole == list(range(len(whole)))
                else "no leading segment is whole"
            )
            raise TruncatedError(
                f"segment {index} (frames {e.first_frame}:{e.stop_frame}) is cut off: the file is truncated ({have})"
            )
        kind, payload, _ = self._chunk_at(e.offset)
        if kind != fmt.ChunkType.SEGM.value or len(payload) != e.length:
            raise StructureError(f"SIDX: segment {index} does not point at a SEGM chunk of {e.length} bytes")
        if zlib.crc32(payload) & 0xFFFFFFFF != e.crc:
            raise CRCError(f"segment {index}: CRC mismatch with the index (file is corrupt)")
        return payload

    def _tail_chunks(self) -> dict[bytes, bytes]:
        """The ancillary chunks after the last segment (aUDI, mETA), read on demand."""
        found: dict[bytes, bytes] = {}
        position = self.segments[-1].end
        while self._peek_type(position) not in (None, fmt.ChunkType.NEND.value):
            kind, payload, position = self._chunk_at(position, self.limits.max_audio_bytes)
            if kind[0] < 97:
                raise UnknownCriticalChunkError(
                    f"unknown critical chunk {kind.decode(errors='replace')!r}: "
                    "written by a newer nvcodec; upgrade to decode it"
                )
            if kind in found:
                raise StructureError(f"more than one {kind.decode(errors='replace')} chunk")
            found[kind] = payload
        return found

    def audio(self) -> bytes | None:
        """The carried audio track (a Matroska file), if any."""
        return None if self._plain is not None else self._ancillary.get(fmt.ChunkType.AUDI.value)

    def metadata(self) -> dict:
        if self._plain is not None:
            return self._plain.metadata
        blob = self._ancillary.get(fmt.ChunkType.META.value)
        if blob is None:
            return {}
        return fmt.parse_json_object(fmt.unzstd(blob, self.limits.max_metadata_bytes, "mETA"), "mETA")

    @cached_property
    def _ancillary(self) -> dict[bytes, bytes]:
        if self.segments[-1].end > self.file_bytes:
            return {}
        return self._tail_chunks()
