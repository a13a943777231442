"""AV1 low-overhead bitstreams (AV1 spec section 5): the OBUs an encoder wrote, by type.

Why: SVT-AV1's rate is its coded video. Its stream, as FFmpeg hands it over, is a sequence of
OBUs each with a size field: a temporal delimiter (2 bytes, no payload) opening every temporal
unit, a sequence header, frames and frame headers, and no metadata OBU (no version string, unlike
x264/x265). The temporal delimiters carry nothing a decoder needs beyond the unit boundary, and
MP4 and Matroska drop them (AV1-ISOBMFF 2.4), so they are left out of the rate.
"""

from __future__ import annotations

OBU_TEMPORAL_DELIMITER = 2
OBU_METADATA = 5
OBU_PADDING = 15


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 value at ``pos``: (value, next position)."""
    value = 0
    for index in range(8):
        byte = data[pos + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, pos + index + 1
    raise ValueError("LEB128 value longer than 8 bytes")


def obu_sizes(data: bytes) -> list[tuple[int, int]]:
    """(obu_type, bytes including its header) of every OBU; ValueError if one has no size field."""
    units: list[tuple[int, int]] = []
    pos = 0
    while pos < len(data):
        header = data[pos]
        if not header & 0x02:
            raise ValueError(f"OBU at byte {pos} has no size field")
        extension = 1 if header & 0x04 else 0
        size, body = _leb128(data, pos + 1 + extension)
        units.append(((header >> 3) & 0x0F, body + size - pos))
        pos = body + size
    if pos != len(data):
        raise ValueError("the last OBU runs past the end of the stream")
    return units


def bytes_by_type(data: bytes) -> dict[int, int]:
    """Bytes of the stream per OBU type."""
    totals: dict[int, int] = {}
    for kind, size in obu_sizes(data):
        totals[kind] = totals.get(kind, 0) + size
    return totals


def temporal_delimiter_bytes(data: bytes) -> int:
    """Bytes of the temporal delimiter OBUs."""
    return bytes_by_type(data).get(OBU_TEMPORAL_DELIMITER, 0)
