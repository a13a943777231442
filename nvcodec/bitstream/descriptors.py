"""The primitive field types of the .nvc format (bitstream_spec.md, section 4.2).

All multi-byte integers are little-endian; ``leb128`` is unsigned, at most 8 bytes, and
writers use the minimal encoding. ``ByteReader`` checks every read against the bytes that
are really there, so a truncated or lying length can never read past its buffer.
"""

from __future__ import annotations

import struct

import numpy as np

from ..compress.varint import LEB128_MAX_BYTES, leb128
from ..errors import StructureError, TruncatedError


class ByteWriter:
    """Append-only builder for one chunk payload."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, v: int) -> None:
        self._parts.append(struct.pack("<B", v))

    def u16(self, v: int) -> None:
        self._parts.append(struct.pack("<H", v))

    def u32(self, v: int) -> None:
        self._parts.append(struct.pack("<I", v))

    def i32(self, v: int) -> None:
        self._parts.append(struct.pack("<i", v))

    def u64(self, v: int) -> None:
        self._parts.append(struct.pack("<Q", v))

    def uleb(self, v: int) -> None:
        self._parts.append(leb128(v))

    def raw(self, data: bytes) -> None:
        self._parts.append(bytes(data))

    def blob(self, data: bytes) -> None:
        """``bytes(leb128)``: a length, then the bytes."""
        self.uleb(len(data))
        self.raw(data)

    def string(self, text: str) -> None:
        self.blob(text.encode("utf-8"))

    def array(self, values: np.ndarray, dtype: str) -> None:
        self.raw(np.ascontiguousarray(values, dtype=dtype).tobytes())

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class ByteReader:
    """Bounds-checked reader over one chunk payload; ``what`` names it in errors."""

    def __init__(self, data: bytes | memoryview, what: str) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int) -> memoryview:
        if n < 0 or n > self.remaining:
            raise TruncatedError(f"{self.what}: needs {n} more bytes, only {self.remaining} left")
        view = self._data[self._pos : self._pos + n]
        self._pos += n
        return view

    def _unpack(self, fmt: str, size: int):
        return struct.unpack(fmt, self.take(size))[0]

    def u8(self) -> int:
        return self._unpack("<B", 1)

    def u16(self) -> int:
        return self._unpack("<H", 2)

    def u32(self) -> int:
        return self._unpack("<I", 4)

    def u64(self) -> int:
        return self._unpack("<Q", 8)

    def i32(self) -> int:
        return self._unpack("<i", 4)

    def uleb(self, limit: int) -> int:
        """Read a leb128 and refuse values above ``limit`` (checked before any allocation)."""
        value = 0
        for i in range(LEB128_MAX_BYTES):
            byte = self.u8()
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                break
        else:
            raise StructureError(f"{self.what}: leb128 longer than {LEB128_MAX_BYTES} bytes")
        if value > limit:
            raise StructureError(f"{self.what}: value {value} above its limit {limit}")
        return value

    def blob(self, limit: int) -> bytes:
        return bytes(self.take(self.uleb(limit)))

    def string(self, limit: int = 256) -> str:
        try:
            return self.blob(limit).decode("utf-8")
        except UnicodeDecodeError:
            raise StructureError(f"{self.what}: string is not valid UTF-8") from None

    def array(self, count: int, dtype: str) -> np.ndarray:
        item = np.dtype(dtype).itemsize
        return np.frombuffer(self.take(count * item), dtype=dtype).copy()
