"""A structure-aware mutator for .nvc files.

Random bytes almost never get past a chunk's CRC, and a zstd frame or a JSON object almost never
survives a flipped bit, so a plain byte fuzzer only tests the first check. This mutator splits
a file into its chunks, mutates one level of structure (the chunk list, a chunk's payload, the
JSON inside ARCH or mETA, a length field), and then re-frames and re-checksums the chunks, so
that its mutations reach the parsers behind those checks. ``mutate_bytes`` is the byte-level
step; the atheris runner passes libFuzzer's own mutator in its place.
"""

from __future__ import annotations

import json
import random
import zlib
from typing import Callable

import zstandard

from nvcodec.bitstream.format import CHUNK_OVERHEAD, PREAMBLE_SIZE

ByteMutator = Callable[[bytes, random.Random], bytes]
INTERESTING_INTS = (
    0,
    1,
    2,
    3,
    7,
    8,
    15,
    16,
    17,
    31,
    32,
    63,
    64,
    127,
    128,
    255,
    256,
    1023,
    1024,
    4096,
    16384,
    16385,
    65535,
    65536,
    2**24,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**53,
    2**63,
    -1,
    -2,
    -128,
    -(2**31),
)
INTERESTING_JSON = (
    *INTERESTING_INTS,
    0.5,
    -0.5,
    1e308,
    float("inf"),
    float("nan"),
    "",
    "x" * 300,
    None,
    True,
    [],
    {},
    [1, 2, 3],
    {"a": 1},
)


def split_chunks(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
    """(preamble, [(type, payload), ...]) of a well-framed file; None if the framing is broken."""
    if len(data) < PREAMBLE_SIZE:
        return None
    pos, chunks = PREAMBLE_SIZE, []
    while pos < len(data):
        if len(data) - pos < CHUNK_OVERHEAD:
            return None
        length = int.from_bytes(data[pos : pos + 4], "little")
        if length > len(data) - pos - CHUNK_OVERHEAD:
            return None
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += CHUNK_OVERHEAD + length
    return data[:PREAMBLE_SIZE], chunks


def join_chunks(preamble: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """Frame each chunk again with its length and a correct CRC."""
    out = [preamble]
    for kind, payload in chunks:
        body = kind + payload
        out.append(len(payload).to_bytes(4, "little") + body + (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "little"))
    return b"".join(out)


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """A few classic byte-level mutations (flips, interesting values, inserts, deletes, splices)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[min(pos, len(buf) - 1)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF))
        elif op == 2:
            value = rng.choice(INTERESTING_INTS) & 0xFFFFFFFF
            buf[pos : pos + 4] = value.to_bytes(4, "little")
        elif op == 3:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 4 and buf:
            del buf[pos : pos + rng.randint(1, 16)]
        elif op == 5 and buf:
            start = rng.randrange(len(buf))
            buf[pos:pos] = buf[start : start + rng.randint(1, 32)]
        elif op == 6:
            del buf[pos:]
    return bytes(buf)


def _mutate_json(blob: bytes, rng: random.Random) -> bytes | None:
    try:
        obj = json.loads(blob)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not obj:
        return None
    target, key = obj, rng.choice(list(obj))
    while isinstance(target[key], dict) and target[key] and rng.random() < 0.7:  # walk into nested objects
        target, key = target[key], rng.choice(list(target[key]))
    choice = rng.randrange(4)
    if choice == 0:
        del target[key]
    elif choice == 1:
        target[key + "_"] = rng.choice(INTERESTING_JSON)
    elif choice == 2 and isinstance(target[key], (int, float)) and not isinstance(target[key], bool):
        target[key] = target[key] * rng.choice((-1, 0, 2, 10, 1000)) + rng.choice((-1, 0, 1))
    else:
        target[key] = rng.choice(INTERESTING_JSON)
    return json.dumps(obj, allow_nan=True).encode()


def _mutate_arch_config(payload: bytes, rng: random.Random) -> bytes | None:
    """ARCH = name, u16 version, u8 format, uleb length + config, manifest: mutate the JSON config."""
    pos = 0
    name_len = payload[0] if payload else 0  # family names are short: one uleb byte
    pos = 1 + name_len + 2
    if pos >= len(payload):
        return None
    fmt = payload[pos]
    length, shift, cursor = 0, 0, pos + 1
    while cursor < len(payload):
        byte = payload[cursor]
        length |= (byte & 0x7F) << shift
        cursor += 1
        shift += 7
        if byte < 0x80:
            break
    config = payload[cursor : cursor + length]
    try:
        plain = zstandard.ZstdDecompressor().decompress(config) if fmt == 1 else config
    except zstandard.ZstdError:
        return None
    mutated = _mutate_json(plain, rng)
    if mutated is None:
        return None
    packed = zstandard.ZstdCompressor(write_content_size=True).compress(mutated) if fmt == 1 else mutated
    n, uleb = len(packed), bytearray()
    while True:
        uleb.append((n & 0x7F) | (0x80 if n >= 0x80 else 0))
        n >>= 7
        if not n:
            break
    return payload[: pos + 1] + bytes(uleb) + packed + payload[cursor + length :]


def _mutate_meta(payload: bytes, rng: random.Random) -> bytes | None:
    try:
        plain = zstandard.ZstdDecompressor().decompress(payload)
    except zstandard.ZstdError:
        return None
    mutated = _mutate_json(plain, rng)
    return None if mutated is None else zstandard.ZstdCompressor(write_content_size=True).compress(mutated)


def mutate(data: bytes, rng: random.Random, byte_mutator: ByteMutator = mutate_bytes) -> bytes:
    """One structure-aware mutation of ``data`` (falls back to bytes when the framing is broken)."""
    parts = split_chunks(data)
    if parts is None or not parts[1] or rng.random() < 0.1:
        return byte_mutator(data, rng)
    preamble, chunks = parts
    chunks = list(chunks)
    index = rng.randrange(len(chunks))
    kind, payload = chunks[index]
    op = rng.randrange(10)
    if op == 0:
        del chunks[index]
    elif op == 1:
        chunks.insert(rng.randrange(len(chunks) + 1), chunks[index])
    elif op == 2:
        other = rng.randrange(len(chunks))
        chunks[index], chunks[other] = chunks[other], chunks[index]
    elif op in (3, 4) and kind == b"ARCH":
        chunks[index] = (kind, _mutate_arch_config(payload, rng) or byte_mutator(payload, rng))
    elif op == 3 and kind == b"mETA":
        chunks[index] = (kind, _mutate_meta(payload, rng) or byte_mutator(payload, rng))
    elif op == 5:
        return join_chunks(preamble, chunks)[: rng.randrange(len(data) + 1)]  # truncation
    else:
        chunks[index] = (kind, byte_mutator(payload, rng))
    return join_chunks(preamble, chunks)
