"""The .nvc container: conformance, exact round trips, and hostile input."""

from __future__ import annotations

import hashlib
import json
import zlib

import numpy as np
import pytest

from nvcodec import errors
from nvcodec.api import decode
from nvcodec.bitstream import format as fmt
from nvcodec.bitstream.descriptors import ByteReader
from nvcodec.bitstream.tensors import decompress_tensors
from nvcodec.cli import main
from nvcodec.compress.entropy import ModelId
from nvcodec.compress.quantize import QuantAxis
from nvcodec.compress.varint import leb128
from nvcodec.families import backbone_class

from .conftest import CONFORMANCE


def chunks(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, payload length, type) of every chunk."""
    out, pos = [], fmt.PREAMBLE_SIZE
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "little")
        out.append((pos, length, data[pos + 4 : pos + 8]))
        pos += 12 + length
    return out


def make_chunk(kind: bytes, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "little") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "little")


def insert_before_end(data: bytes, chunk: bytes) -> bytes:
    return data[:-12] + chunk + data[-12:]


# ---------------------------------------------------------------- conformance (Annex B)


VECTOR_NAMES = ["c1_nerv_9x17x3", "c2_nerv_36x64x2", "c3_grid_12x20x4", "c5_mcgrid_16x24x6", "c6_mcgrid_ra_16x24x6"]


def manifest_of(name: str) -> dict:
    return json.loads((CONFORMANCE / f"{name}.json").read_text())


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_conformance_vector_bytes_are_reproduced_exactly(name):
    """The writer still produces each released vector byte for byte (catches format drift)."""
    from .conformance.make_vectors import build_vector

    data = (CONFORMANCE / f"{name}.nvc").read_bytes()
    assert hashlib.sha256(data).hexdigest() == manifest_of(name)["file_sha256"]
    assert build_vector(name) == data


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_conformance_weights_are_bit_exact(name):
    """Tier W: entropy decoding and dequantization reproduce the weights' SHA-256 exactly."""
    nvc = fmt.read((CONFORMANCE / f"{name}.nvc").read_bytes())
    assert [t.coded.model_id.name for t in nvc.tensors] == manifest_of(name)["entropy_models"]
    family = backbone_class(nvc.arch.family)
    context = family(family.config_cls.from_json(nvc.arch.config)).context_codec()  # None but for latent grids
    assert fmt.weights_digest(decompress_tensors(nvc, context)).hex() == manifest_of(name)["weights_sha256"]


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_conformance_frames_within_tolerance(name):
    """Tier P: decoded frames within the stated tolerance of the reference decoder's."""
    manifest = manifest_of(name)
    expected = np.frombuffer((CONFORMANCE / f"{name}.rgb").read_bytes(), np.uint8).reshape(manifest["frames_shape"])
    frames = decode(CONFORMANCE / f"{name}.nvc").frames
    assert frames.shape == expected.shape
    assert np.abs(frames.astype(int) - expected).max() <= manifest["frames_tolerance"]["max_abs_diff"]


def test_on_disk_enums_match_the_spec_tables():
    """Wire identifiers are literals mirrored in bitstream_spec.md Annex A."""
    assert [c.value for c in fmt.ChunkType] == [
        b"NHDR",
        b"ARCH",
        b"TENS",
        b"NEND",
        b"wHSH",
        b"mETA",
        b"SIDX",
        b"SEGM",
        b"aUDI",
        b"PRED",
    ]
    assert {q.name: q.value for q in fmt.QuantType} == {"UNIFORM": 1, "RESIDUAL": 2}
    assert {m.name: m.value for m in ModelId} == {"CATEGORICAL": 0, "GEOMETRIC": 1, "CONTEXT": 2}
    assert {a.name: a.value for a in QuantAxis} == {"PER_CHANNEL": 0, "PER_TENSOR": 255}
    assert {c.name: c.value for c in fmt.ConfigFormat} == {"JSON": 0, "ZSTD_JSON": 1}
    assert fmt.SIGNATURE == bytes([0x8B, 0x4E, 0x56, 0x43, 0x0D, 0x0A, 0x1A, 0x0A])
    spec = (CONFORMANCE.parent.parent / "bitstream_spec.md").read_text()
    for text in [
        "`NHDR`",
        "`ARCH`",
        "`TENS`",
        "`NEND`",
        "`wHSH`",
        "`mETA`",
        "8B 4E 56 43 0D 0A 1A 0A",
        "| 0 | CATEGORICAL",
        "| 1 | GEOMETRIC",
        "| 2 | CONTEXT",
        "| 255 | PER_TENSOR",
        "| 1 | UNIFORM",
        "| 2 | RESIDUAL",
        "`PRED` | 50 52 45 44",
        "| 0 | PER_CHANNEL",
    ]:
        assert text in spec, text


def test_leb128_is_minimal_and_round_trips():
    for value in [0, 1, 127, 128, 300, 2**32, 2**56 - 1]:
        encoded = leb128(value)
        assert ByteReader(encoded, "t").uleb(2**56) == value
        assert encoded[-1] < 0x80 and (len(encoded) == 1 or encoded[-1] != 0)


# ---------------------------------------------------------------- hostile input (Annex C)


def run_info(runner, tmp_path, data: bytes):
    path = tmp_path / "bad.nvc"
    path.write_bytes(data)
    return runner.invoke(main, ["info", str(path)])


def assert_one_line_error(result, code: int = errors.BitstreamError.exit_code):
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nvc: error: "), result.stderr
    assert "Traceback" not in result.output + result.stderr


def flip_positions(data: bytes) -> dict[str, int]:
    """One byte in every region of the file."""
    positions = {"signature": 0, "version": 9, "preamble_crc": 13}
    for offset, length, kind in chunks(data):
        name = kind.decode()
        positions[f"{name}@{offset}:length"] = offset + 1
        positions[f"{name}@{offset}:type"] = offset + 5
        if length:
            positions[f"{name}@{offset}:payload"] = offset + 8 + length // 2
        positions[f"{name}@{offset}:crc"] = offset + 8 + length + 2
    return positions


def test_flipped_byte_in_every_region_is_a_one_line_error(runner, tmp_path, conformance_bytes):
    for region, pos in flip_positions(conformance_bytes).items():
        corrupt = bytearray(conformance_bytes)
        corrupt[pos] ^= 0x10
        result = run_info(runner, tmp_path, bytes(corrupt))
        assert result.exit_code != 0, region
        assert_one_line_error(result)


def test_truncation_at_every_chunk_boundary_and_inside(runner, tmp_path, conformance_bytes):
    cuts = [0, 4, 8, 15] + [offset for offset, _, _ in chunks(conformance_bytes)]
    cuts += [offset + 6 for offset, _, _ in chunks(conformance_bytes)] + [len(conformance_bytes) - 1]
    for cut in cuts:
        result = run_info(runner, tmp_path, conformance_bytes[:cut])
        assert_one_line_error(result)
    with pytest.raises(errors.TruncatedError):
        fmt.read(conformance_bytes[: chunks(conformance_bytes)[-1][0]])


def with_preamble(data: bytes, major: int, minor: int) -> bytes:
    head = fmt.SIGNATURE + major.to_bytes(2, "little") + minor.to_bytes(2, "little")
    return head + zlib.crc32(head).to_bytes(4, "little") + data[16:]


def test_unknown_major_version_is_refused(runner, tmp_path, conformance_bytes):
    result = run_info(runner, tmp_path, with_preamble(conformance_bytes, 2, 0))
    assert_one_line_error(result)
    assert "version 2" in result.stderr
    with pytest.raises(errors.UnsupportedVersionError):
        fmt.read(with_preamble(conformance_bytes, 2, 0))


def test_newer_minor_with_unknown_ancillary_chunk_decodes(conformance_bytes):
    data = insert_before_end(with_preamble(conformance_bytes, 1, 7), make_chunk(b"xTRA", b"future data"))
    nvc = fmt.read(data)
    assert nvc.skipped_chunks == ("xTRA",)
    assert fmt.weights_digest(decompress_tensors(nvc)) == nvc.weights_sha256


def test_unknown_critical_chunk_is_refused(runner, tmp_path, conformance_bytes):
    data = insert_before_end(conformance_bytes, make_chunk(b"XTRA", b"must understand"))
    result = run_info(runner, tmp_path, data)
    assert_one_line_error(result)
    assert "XTRA" in result.stderr
    with pytest.raises(errors.UnknownCriticalChunkError):
        fmt.read(data)


def test_bytes_after_end_and_chunk_order(conformance_bytes):
    with pytest.raises(errors.StructureError):
        fmt.read(conformance_bytes + make_chunk(b"xTRA", b""))
    first, second = chunks(conformance_bytes)[:2]
    nhdr = conformance_bytes[first[0] : second[0]]
    arch_end = chunks(conformance_bytes)[2][0]
    arch = conformance_bytes[second[0] : arch_end]
    swapped = conformance_bytes[:16] + arch + nhdr + conformance_bytes[arch_end:]
    with pytest.raises(errors.StructureError):
        fmt.read(swapped)


def test_hostile_sizes_are_refused_before_allocation(conformance_bytes):
    nvc = fmt.read(conformance_bytes)
    huge = fmt.ArchRecord(nvc.arch.family, 1, nvc.arch.config, ((1 << 20, 1 << 20),) + nvc.arch.shapes[1:])
    data = fmt.write(fmt.NvcFile(nvc.header, huge, nvc.tensors))
    with pytest.raises(errors.LimitError):
        fmt.read(data)
    big_header = fmt.VideoHeader(100000, 100000, 1, 25, 1)
    with pytest.raises(errors.LimitError):
        fmt.read(fmt.write(fmt.NvcFile(big_header, nvc.arch, nvc.tensors)))
    # a length field that points far past the end of the file
    pos = chunks(conformance_bytes)[1][0]
    lying = bytearray(conformance_bytes)
    lying[pos : pos + 4] = (0xFFFFFFF0).to_bytes(4, "little")
    with pytest.raises(errors.TruncatedError):
        fmt.read(bytes(lying))


def test_zstd_bomb_in_config_is_refused(conformance_bytes):
    import zstandard

    bomb = zstandard.ZstdCompressor(write_content_size=True).compress(b"{" + b" " * (1 << 20) + b"}")
    payload = (
        leb128(4)
        + b"nerv"
        + (1).to_bytes(2, "little")
        + bytes([fmt.ConfigFormat.ZSTD_JSON])
        + leb128(len(bomb))
        + bomb
        + leb128(0)
    )
    with pytest.raises(errors.LimitError):
        fmt._parse_arch(payload, fmt.DEFAULT_LIMITS)


def test_bad_config_and_unknown_family_are_arch_errors(conformance_bytes, tmp_path):
    from nvcodec.render import build_backbone

    nvc = fmt.read(conformance_bytes)
    for config in [
        {**nvc.arch.config, "mlp_hidden": "16"},
        {**nvc.arch.config, "evil": 1},
        {**nvc.arch.config, "mlp_hidden": 10**9},
    ]:
        arch = fmt.ArchRecord("nerv", 1, config, nvc.arch.shapes)
        with pytest.raises(errors.ArchitectureError):
            build_backbone(fmt.NvcFile(nvc.header, arch, nvc.tensors, nvc.weights_sha256))
    unknown = fmt.ArchRecord("pickle", 1, nvc.arch.config, nvc.arch.shapes)
    with pytest.raises(errors.ArchitectureError):
        build_backbone(fmt.NvcFile(nvc.header, unknown, nvc.tensors))


def test_garbage_coder_words_are_payload_errors(conformance_bytes):
    from dataclasses import replace

    nvc = fmt.read(conformance_bytes)
    for words in ([0xFFFFFFFF, 0xFFFFFFFF], [], [0, 0, 0, 0, 0, 0]):
        record = replace(nvc.tensors[1], coded=replace(nvc.tensors[1].coded, words=np.array(words, "<u4")))
        with pytest.raises(errors.PayloadError):
            decompress_tensors(replace(nvc, tensors=(nvc.tensors[0], record) + nvc.tensors[2:]))


def test_strict_json_and_overflowing_shapes(conformance_bytes):
    nvc = fmt.read(conformance_bytes)
    for config_text in [b'{"a": NaN}', b'{"a": 1, "a": 2}', b"[1]", b'{"pe_base": 1' + b"0" * 400 + b"}"]:
        payload = leb128(4) + b"nerv" + (1).to_bytes(2, "little") + bytes([0]) + leb128(len(config_text)) + config_text
        with pytest.raises(errors.BitstreamError):
            from nvcodec.render import build_backbone

            arch = fmt._parse_arch(payload + leb128(0), fmt.DEFAULT_LIMITS)
            build_backbone(fmt.NvcFile(nvc.header, arch, ()))
    wrapping = (65535, 641, 65537, 6700417)  # product 2^64 - 1: wraps to -1 in int64
    payload = leb128(4) + b"nerv" + (1).to_bytes(2, "little") + bytes([0]) + leb128(2) + b"{}" + leb128(1)
    payload += bytes([4]) + b"".join(leb128(d) for d in wrapping)
    with pytest.raises(errors.LimitError):
        fmt._parse_arch(payload, fmt.DEFAULT_LIMITS)
    meta_list = insert_before_end(
        conformance_bytes,
        make_chunk(b"mETA", __import__("zstandard").ZstdCompressor(write_content_size=True).compress(b"[1]")),
    )
    meta_list = meta_list.replace(b"mETA", b"mETA", 1)
    with pytest.raises(errors.StructureError):
        fmt.read(meta_list)


def test_left_over_payload_and_wrong_digest_are_payload_errors(conformance_bytes):
    from dataclasses import replace

    nvc = fmt.read(conformance_bytes)
    record = nvc.tensors[0]
    padded = replace(
        record, coded=replace(record.coded, words=np.concatenate([record.coded.words, [7, 7, 7]]).astype("<u4"))
    )
    with pytest.raises(errors.PayloadError):
        decompress_tensors(replace(nvc, tensors=(padded,) + nvc.tensors[1:]))
    with pytest.raises(errors.PayloadError):
        decompress_tensors(replace(nvc, weights_sha256=bytes(32)))
