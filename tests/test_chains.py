"""Predicted segments (format 1.2): weights coded against the previous segment's, chains, and broken links."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from nvcodec import errors
from nvcodec.api import decode
from nvcodec.bitstream import format as fmt
from nvcodec.bitstream.container import NvcReader, write_segmented
from nvcodec.bitstream.tensors import compress_tensors, decompress_tensors
from nvcodec.cli import main

from .conftest import CONFORMANCE

VECTOR = "c4_nerv_chain_8x16x6"


def vector_bytes() -> bytes:
    return (CONFORMANCE / f"{VECTOR}.nvc").read_bytes()


def manifest() -> dict:
    return json.loads((CONFORMANCE / f"{VECTOR}.json").read_text())


def streams_of(data: bytes, tmp_path) -> list[bytes]:
    path = tmp_path / "v.nvc"
    path.write_bytes(data)
    reader = NvcReader(path)
    return [reader.segment_bytes(i) for i in range(len(reader.segments))]


def rewrite(tmp_path, streams: list[bytes], name: str = "edited.nvc") -> str:
    """A segmented file of ``streams`` (2 frames each), as the chain vector is written."""
    first = fmt.read(streams[0]).header
    header = replace(first, num_frames=first.num_frames * len(streams))
    path = tmp_path / name
    path.write_bytes(write_segmented(header, streams, [first.num_frames] * len(streams), None, {"conformance": "x"}))
    return str(path)


def one_line_error(path: str, tmp_path, *args: str) -> str:
    result = CliRunner().invoke(main, ["decode", path, "-o", str(tmp_path / "out.y4m"), *args])
    assert result.exit_code == 5, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nvc: error:"), result.output
    return lines[0]


# ---------------------------------------------------------------- the conformance vector (Annex B.3)


def test_chain_vector_is_reproduced_and_decodes_bit_exactly(tmp_path):
    """Bytes, each segment's weights (each on the one before: tier W), its records' types, and frames (tier P)."""
    from .conformance.make_vectors import build_vector

    data = vector_bytes()
    expected = manifest()
    assert hashlib.sha256(data).hexdigest() == expected["file_sha256"] and build_vector(VECTOR) == data
    reference, predicted = None, []
    for index, stream in enumerate(streams_of(data, tmp_path)):
        nvc = fmt.read(stream)
        predicted.append(nvc.predicted)
        assert [t.coded.model_id.name for t in nvc.tensors] == expected["entropy_models"][index]
        assert [("RESIDUAL" if t.residual else "UNIFORM") for t in nvc.tensors] == expected["quant_types"][index]
        reference = decompress_tensors(nvc, reference=reference)
        assert fmt.weights_digest(reference).hex() == expected["weights_sha256"][index]
    assert predicted == [False, True, True]
    assert {"RESIDUAL", "UNIFORM"} <= set(expected["quant_types"][1])  # both kinds in one predicted segment
    frames = decode(CONFORMANCE / f"{VECTOR}.nvc").frames
    rgb = np.frombuffer((CONFORMANCE / f"{VECTOR}.rgb").read_bytes(), np.uint8).reshape(expected["frames_shape"])
    assert np.abs(frames.astype(int) - rgb).max() <= expected["frames_tolerance"]["max_abs_diff"]
    assert NvcReader(CONFORMANCE / f"{VECTOR}.nvc").version == "1.2"


def test_residual_reconstruction_is_one_binary32_addition():
    """w = ref + float32(q) x float32(step): the product rounded, then the sum (spec 8.2.4)."""
    rng = np.random.default_rng(0)
    reference = [rng.standard_normal((32, 16)).astype(np.float32)]
    tensors = [reference[0] + np.float32(0.01) * rng.standard_normal((32, 16)).astype(np.float32)]
    records, digest = compress_tensors(tensors, 6.0, reference=reference)
    assert records[0].residual
    arch = fmt.ArchRecord("nerv", 1, {}, ((32, 16),))
    nvc = fmt.NvcFile(fmt.VideoHeader(4, 4, 1, 25, 1), arch, records, digest, {}, (), fmt.weights_digest(reference))
    nvc = fmt.read(fmt.write(nvc))
    (decoded,) = decompress_tensors(nvc, reference=reference)
    symbols = np.rint((tensors[0] - reference[0]) / records[0].steps.astype(np.float32)[:, None])
    product = (symbols.astype(np.float32) * records[0].steps.astype(np.float32)[:, None]).astype(np.float32)
    assert np.array_equal(decoded, (reference[0] + product).astype(np.float32))
    assert np.abs(decoded - tensors[0]).max() <= records[0].steps.astype(np.float32).max() / 2 + 1e-6


# ---------------------------------------------------------------- decoding chains


def test_random_access_decodes_the_chain_before_it(tmp_path):
    """Frames of the third segment: the weights of the two before are decoded (not rendered), and the
    frames are the whole decode's; the CLI says what it read."""
    path = str(CONFORMANCE / f"{VECTOR}.nvc")
    whole = decode(path).frames
    reader = NvcReader(path)
    assert np.array_equal(decode(reader, frames=(4, 6)).frames, whole[4:6])
    # the chain, every segment of it read once: all the file up to the end of segment 2
    assert sum(e.length for e in reader.segments) < reader.bytes_read <= reader.segments[2].end
    result = CliRunner().invoke(main, ["decode", path, "-o", str(tmp_path / "end.y4m"), "--frames", "4:6"])
    assert result.exit_code == 0 and "segment 2 of 3, and the weights of segments 0-1" in result.output, result.output
    first = NvcReader(path)
    assert np.array_equal(decode(first, frames=(0, 2)).frames, whole[:2])
    assert first.bytes_read <= first.segments[1].offset  # an independent segment reads only itself
    info = CliRunner().invoke(main, ["info", path, "--json"])
    segments = json.loads(info.output)["segments"]
    assert [(s["predicted"], s["chain_start"]) for s in segments] == [(False, 0), (True, 0), (True, 0)]
    assert segments[2]["chain_bytes"] == sum(e.length for e in reader.segments)


def test_truncated_chain_keeps_its_whole_leading_segments(tmp_path):
    data = vector_bytes()
    reader = NvcReader(CONFORMANCE / f"{VECTOR}.nvc")
    cut = tmp_path / "cut.nvc"
    cut.write_bytes(data[: reader.segments[2].offset + 40])
    assert np.array_equal(decode(cut).frames, decode(CONFORMANCE / f"{VECTOR}.nvc").frames[:4])
    assert "truncated" in one_line_error(str(cut), tmp_path, "--frames", "4:6")


def test_a_predicted_segment_alone_is_refused(tmp_path):
    alone = tmp_path / "alone.nvc"
    alone.write_bytes(streams_of(vector_bytes(), tmp_path)[1])
    assert "predicted segment" in one_line_error(str(alone), tmp_path)


def test_a_broken_link_is_refused_naming_the_segment(tmp_path):
    """A segment coded against other weights than the one before decodes to: refused, not decoded wrong."""
    streams = streams_of(vector_bytes(), tmp_path)
    # the digest a predicted segment names is not its reference's
    second = fmt.read(streams[1])
    forged = fmt.write(replace(second, reference_sha256=bytes(32)))
    line = one_line_error(rewrite(tmp_path, [streams[0], forged, streams[2]]), tmp_path)
    assert "segment 1" in line and "broken link" in line, line
    # segments spliced from another chain: the third segment no longer follows the second it was made after
    line = one_line_error(rewrite(tmp_path, [streams[0], streams[2], streams[1]], "spliced.nvc"), tmp_path)
    assert "segment 1" in line and "broken link" in line, line
    # the frames before the broken link still decode
    assert decode(rewrite(tmp_path, [streams[0], forged, streams[2]]), frames=(0, 2)).frames.shape[0] == 2


def test_predicted_structure_is_checked(tmp_path):
    """PRED's place, size and version; RESIDUAL without PRED; a predicted first segment."""
    streams = streams_of(vector_bytes(), tmp_path)
    second = fmt.read(streams[1])
    with pytest.raises(errors.StructureError, match="without PRED"):
        fmt.read(fmt.write(replace(second, reference_sha256=None)))
    data = fmt.write(second)
    at = data.index(b"PRED") - 4
    pred = data[at : at + 12 + 33]
    arch = data.index(b"ARCH") - 4
    before_arch = data[:arch] + pred + data[arch:at] + data[at + len(pred) :]
    with pytest.raises(errors.StructureError, match="PRED chunk must come after ARCH"):
        fmt.read(before_arch)
    with pytest.raises(errors.StructureError, match="without PRED"):  # a RESIDUAL record is met before it
        fmt.read(data[:at] + data[at + len(pred) : -12] + pred + data[-12:])
    with pytest.raises(errors.StructureError, match="more than one PRED"):
        fmt.read(data[: at + len(pred)] + pred + data[at + len(pred) :])
    minor0 = fmt.write(replace(second, header=replace(second.header, min_reader_minor=0)))  # write() raises it to 2
    assert fmt.read(minor0).header.min_reader_minor == fmt.PREDICTED_MINOR
    line = one_line_error(rewrite(tmp_path, [streams[1], streams[2]], "first.nvc"), tmp_path)
    assert "segment 0 is predicted" in line, line


def test_independent_files_keep_their_versions(tmp_path):
    """Files without predicted segments are written as before: 1.0 streams, 1.1 segmented files."""
    streams = streams_of(vector_bytes(), tmp_path)
    reader = NvcReader(rewrite(tmp_path, [streams[0], streams[0]], "plain.nvc"))
    assert reader.version == "1.1" and reader.header.min_reader_minor == 1
    assert NvcReader(CONFORMANCE / "c1_nerv_9x17x3.nvc").version == "1.0"


def test_mutated_predicted_segments_fail_cleanly(tmp_path):
    """Segment 1 of the chain vector mutated behind its CRCs (fuzz/mutate.py re-frames it) and the file
    rewritten with a valid index: every decode gives frames or an NvcError, nothing else."""
    import random

    from fuzz.mutate import mutate

    streams = streams_of(vector_bytes(), tmp_path)
    rng = random.Random(0)
    outcomes, attempts = set(), 0
    for trial in range(300):
        mutant = mutate(streams[1], rng)
        try:
            path = rewrite(tmp_path, [streams[0], mutant, streams[2]], f"m{trial % 2}.nvc")
        except errors.NvcError:  # the writer reads each stream (is it predicted?): this one is not a stream
            continue
        attempts += 1
        try:
            frames = decode(path).frames
            outcomes.add("decoded" if frames.shape[0] == 6 else "short")
        except errors.NvcError as exc:
            outcomes.add(exc.code if isinstance(exc, errors.BitstreamError) else type(exc).__name__)
    assert attempts >= 10 and "E_PAYLOAD" in outcomes, (attempts, outcomes)
