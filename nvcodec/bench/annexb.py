"""Annex-B byte streams (H.264, HEVC): NAL units, their SEI payload types, and the bytes that are not video.

Why: an anchor's rate is its coded video. x264 writes its version and whole option string as a
``user_data_unregistered`` SEI message (payloadType 5) into the stream, x265 too unless told
``info=0``; a reader comparing codecs assumes that text is not counted. We leave out exactly the
SEI NAL units *all* of whose messages are user_data_unregistered, each with its start code (the
stream is one byte shorter per unit without it). SEI NAL units that carry anything else (buffering
period, picture timing, recovery point, decoded picture hash, ...) are kept: a decoder uses them.

H.264 (ITU-T H.264 7.3.1, 7.3.2.3): one header byte, ``nal_unit_type = byte & 0x1F``, SEI is 6.
HEVC (ITU-T H.265 7.3.1.2, 7.3.5): two header bytes, ``nal_unit_type = (byte0 >> 1) & 0x3F``,
prefix SEI 39, suffix SEI 40. Both: the payload is an RBSP (emulation-prevention bytes 0x03 after
two zero bytes removed) holding ``sei_message()``s, each a payloadType and a payloadSize coded as
runs of 0xFF plus a last byte, then the payload, until the rbsp_trailing_bits (0x80).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

USER_DATA_UNREGISTERED = 5

_START_CODE = re.compile(rb"\x00?\x00\x00\x01")


@dataclass(frozen=True)
class NalUnit:
    """One NAL unit of an Annex-B stream: its start code at ``start``, header at ``header``, next unit at ``end``."""

    start: int
    header: int
    end: int

    @property
    def size(self) -> int:
        """Bytes the unit takes in the stream, start code included."""
        return self.end - self.start


@dataclass(frozen=True)
class Syntax:
    """Where a codec's NAL header keeps the unit type, and which types are SEI."""

    header_bytes: int
    sei_types: tuple[int, ...]

    def unit_type(self, first_header_byte: int) -> int:
        return first_header_byte & 0x1F if self.header_bytes == 1 else (first_header_byte >> 1) & 0x3F


H264 = Syntax(header_bytes=1, sei_types=(6,))
HEVC = Syntax(header_bytes=2, sei_types=(39, 40))  # prefix and suffix SEI


def nal_units(data: bytes) -> list[NalUnit]:
    """Split an Annex-B stream at its start codes (3 bytes, or 4 with the leading zero_byte)."""
    starts = [(m.start(), m.end()) for m in _START_CODE.finditer(data)]
    ends = [s for s, _ in starts[1:]] + [len(data)]
    return [NalUnit(s, h, e) for (s, h), e in zip(starts, ends)]


def rbsp(payload: bytes) -> bytes:
    """Remove the emulation-prevention bytes (0x000003 -> 0x0000)."""
    return re.sub(rb"\x00\x00\x03", b"\x00\x00", payload)


def _read_ff_coded(data: bytes, pos: int) -> tuple[int, int]:
    """A payloadType or payloadSize: 255 per 0xFF byte plus the last byte; (value, next position)."""
    value = 0
    while data[pos] == 0xFF:
        value += 255
        pos += 1
    return value + data[pos], pos + 1


def sei_payload_types(body: bytes) -> list[int] | None:
    """The payloadType of every message in an SEI RBSP (NAL header removed); None if malformed."""
    types: list[int] = []
    pos = 0
    try:
        while pos < len(body) and body[pos:].rstrip(b"\x00") != b"\x80":  # more_rbsp_data()
            kind, pos = _read_ff_coded(body, pos)
            size, pos = _read_ff_coded(body, pos)
            if pos + size > len(body):
                return None
            types.append(kind)
            pos += size
    except IndexError:
        return None
    return types


def is_user_data_sei(data: bytes, unit: NalUnit, syntax: Syntax) -> bool:
    """True for an SEI NAL unit whose messages are all user_data_unregistered (and that parses)."""
    body_start = unit.header + syntax.header_bytes
    if body_start > unit.end or syntax.unit_type(data[unit.header]) not in syntax.sei_types:
        return False
    types = sei_payload_types(rbsp(data[body_start : unit.end].rstrip(b"\x00")))
    return bool(types) and all(t == USER_DATA_UNREGISTERED for t in types)


def user_data_sei_bytes(data: bytes, syntax: Syntax) -> int:
    """Bytes of ``data`` (start codes included) in SEI units that carry only user_data_unregistered."""
    return sum(unit.size for unit in nal_units(data) if is_user_data_sei(data, unit, syntax))
