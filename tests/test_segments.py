"""Segmented files: scene cuts, the segment index, random access, audio, parallel and torchrun encodes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zlib
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from nvcodec.bench.clips import write_clip_with_tone
from nvcodec.bitstream import format as fmt
from nvcodec.bitstream.container import NvcReader, write_segmented
from nvcodec.cli import main
from nvcodec.errors import CRCError, StructureError, TruncatedError
from nvcodec.io import read_video, sample_clip_path
from nvcodec.scenes import SHARE_LIMITS, Segment, chains, scene_cuts, share_bits, split
from nvcodec.source import audio_packets, read_frames, scan
from tests.conftest import CONFORMANCE

STREAM = CONFORMANCE / "c1_nerv_9x17x3.nvc"  # a 3-frame single-segment stream


def two_segment_file(**changes) -> bytes:
    stream = STREAM.read_bytes()
    header = replace(fmt.read(stream).header, num_frames=6, **changes)
    return write_segmented(header, [stream, stream], [3, 3], audio=b"not really matroska", metadata={"k": 1})


def test_index_round_trip_and_random_access(tmp_path):
    path = tmp_path / "two.nvc"
    path.write_bytes(two_segment_file())
    reader = NvcReader(path)
    assert reader.segmented and reader.version == "1.1"
    assert [(e.first_frame, e.num_frames) for e in reader.segments] == [(0, 3), (3, 3)]
    assert reader.overlapping(4, 5) == [1]
    before = reader.bytes_read
    assert reader.read_segment(1).header.num_frames == 3
    assert reader.bytes_read - before == reader.segments[1].length + fmt.CHUNK_OVERHEAD  # that segment only
    assert reader.audio() == b"not really matroska" and reader.metadata() == {"k": 1}


def test_segmented_layout_is_frozen():
    """Golden bytes: two copies of conformance vector c1 as a 6-frame segmented file (spec section 10)."""
    import hashlib

    data = two_segment_file()
    assert data[8:12] == b"\x01\x00\x01\x00"  # version 1.1
    assert (len(data), hashlib.sha256(data).hexdigest()) == (
        11051,
        "14737a09b0abd39a95e27cc28bdbdfec8febef0e4f0933011aaa2403a2e73441",
    )


def _rewrite_index(data: bytes, edit) -> bytes:
    """``edit`` the SIDX payload, then give the chunk a valid CRC again (a forged, not a damaged, index)."""
    reader_pos = fmt.PREAMBLE_SIZE + fmt.CHUNK_OVERHEAD + int.from_bytes(data[16:20], "little")
    length = int.from_bytes(data[reader_pos : reader_pos + 4], "little")
    payload = bytearray(data[reader_pos + 8 : reader_pos + 8 + length])
    edit(payload)
    body = b"SIDX" + bytes(payload)
    return (
        data[: reader_pos + 4]
        + body
        + (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "little")
        + data[reader_pos + 12 + length :]
    )


@pytest.mark.parametrize(
    "name, edit, error, words",
    [
        (
            "frame count",
            lambda p: p.__setitem__(slice(5, 9), (4).to_bytes(4, "little")),
            StructureError,
            "segment 1 must start at frame 4",
        ),
        ("overlap", lambda p: p.__setitem__(slice(33, 41), (20).to_bytes(8, "little")), StructureError, "overlaps"),
        ("segment crc", lambda p: p.__setitem__(slice(21, 25), b"\0\0\0\0"), CRCError, "segment 0"),
    ],
)
def test_forged_index_is_refused(tmp_path, name, edit, error, words):
    path = tmp_path / "forged.nvc"
    path.write_bytes(_rewrite_index(two_segment_file(), edit))
    with pytest.raises(error, match=words):
        NvcReader(path).read_segment(0)


def test_corrupt_index_is_one_line_error(tmp_path):
    data = bytearray(two_segment_file())
    data[fmt.PREAMBLE_SIZE + 60] ^= 0xFF  # inside SIDX
    path = tmp_path / "bad.nvc"
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["info", str(path)])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 5 and len(lines) == 1 and "SIDX" in lines[0] and "CRC" in lines[0]


def test_truncated_file_keeps_its_whole_segments(tmp_path):
    data = two_segment_file()
    path = tmp_path / "cut.nvc"
    path.write_bytes(data)
    path.write_bytes(data[: NvcReader(path).segments[0].end + 10])
    reader = NvcReader(path)
    assert reader.complete() == [0]
    assert reader.read_segment(0).header.num_frames == 3
    with pytest.raises(TruncatedError, match="segment 1"):
        reader.read_segment(1)


def test_segment_must_match_the_file_header(tmp_path):
    path = tmp_path / "other.nvc"
    path.write_bytes(two_segment_file(width=10))
    with pytest.raises(StructureError, match="does not match"):
        NvcReader(path).read_segment(0)


# ------------------------------------------------------------------------------------ planning


def cut_clip(frames: int = 16, cut: int = 8) -> np.ndarray:
    """Two scenes: smooth waves drifting right, then other waves (in other colours) drifting down."""
    y, x = np.mgrid[0:24, 0:32]
    first = 127 + 100 * np.sin(x / 4.0)[..., None] * np.array([1.0, 0.5, -0.5])
    second = 127 + 100 * np.cos((x + 2 * y) / 3.0)[..., None] * np.array([-0.6, 1.0, 0.3])
    clip = []
    for t in range(frames):
        clip.append(np.roll(first, t, axis=1) if t < cut else np.roll(second, t, axis=0))
    return np.stack(clip).round().astype(np.uint8)


def test_scene_cut_and_split():
    thumbs = cut_clip(40, 17)[..., 0]
    assert scene_cuts(thumbs, 8.0) == [17]
    segments = split(thumbs, 8.0, 3.0)  # 12 to 24 frames
    assert segments[0] == Segment(0, 17) and segments[-1].stop == 40
    assert all(12 <= s.num_frames <= 24 for s in segments)
    assert split(thumbs, 8.0, 0) == [Segment(0, 40)]


def test_share_bits_adds_up_and_stays_in_bounds():
    bits = share_bits(1000.0, [100, 100, 200], [1.0, 100.0, 9.0])
    assert sum(bits) == pytest.approx(1000.0)
    rates = np.array(bits) / np.array([100, 100, 200])
    even = 1000.0 / 400
    assert rates[1] > rates[2] > rates[0]
    assert rates.max() / rates.min() <= SHARE_LIMITS[1] / SHARE_LIMITS[0] + 1e-9
    assert rates.max() <= 2 * even


def test_seeking_read_equals_a_sequential_read():
    info, thumbs = scan(sample_clip_path(), (10, 90), (64, 36))
    assert info.num_frames == 80 and thumbs.shape == (80, 36, 64) and info.has_audio
    assert np.array_equal(read_frames(info, 50, 58).frames, read_video(sample_clip_path(), (60, 68), (64, 36)).frames)


# ------------------------------------------------------------------------------------ end to end


def write_clip_with_audio(path: Path, frames: np.ndarray, fps: int = 8) -> None:
    """FFV1 video (lossless) and an AAC tone, as a real input would carry."""
    seconds = len(frames) / fps
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(16000 * seconds)) / 16000)).astype(np.float32)
    write_clip_with_tone(path, frames, fps, tone, 16000)


ENCODE = [
    "--threads",
    "1",
    "encode",
    "--model",
    "nerv",
    "--bpp",
    "12",
    "--epochs",
    "2",
    "--no-amp",
    "--segment-seconds",
    "1.5",
    "-q",
]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "cut.mkv"
    write_clip_with_audio(path, cut_clip())
    return path


def test_two_segment_round_trip_with_audio(clip, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = tmp_path / "cut.nvc"
    result = CliRunner().invoke(main, [*ENCODE, str(clip), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    reader = NvcReader(out)
    assert [(e.first_frame, e.stop_frame) for e in reader.segments] == [(0, 8), (8, 16)]
    assert audio_packets(reader.audio()) == audio_packets(clip)
    assert not list(tmp_path.glob(".*"))  # the work folder is gone
    # a middle range reads only its segment and, as the two segments form one chain (the scan's thumbnails
    # see no cut in so small a clip), the one it is predicted from; not the audio or the metadata
    result = CliRunner().invoke(main, ["decode", str(out), "-o", str(tmp_path / "mid.y4m"), "--frames", "9:12"])
    assert result.exit_code == 0 and "segment 1 of 2, and the weights of segment 0" in result.output, result.output
    read = int(result.output.split("read ")[1].split(" of")[0])
    assert read <= reader.segments[1].end
    # the whole file, with its audio, decodes to what the encoder measured
    result = CliRunner().invoke(main, ["decode", str(out), "-o", str(tmp_path / "all.mkv")])
    assert result.exit_code == 0 and "audio copied" in result.output, result.output
    assert audio_packets(tmp_path / "all.mkv") == audio_packets(clip)
    from nvcodec.metrics import psnr

    measured = reader.metadata()["measured"]["psnr"]
    assert psnr(read_video(clip).frames, read_video(tmp_path / "all.mkv").frames) == pytest.approx(measured, abs=1e-6)


def test_parallel_and_torchrun_encodes_write_the_same_bytes(clip, tmp_path, monkeypatch):
    """--jobs 1, --jobs 2 and a 2-process torchrun (gloo) run give one and the same file."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    outputs = []
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}.nvc"
        result = CliRunner().invoke(main, [*ENCODE, str(clip), "-o", str(out), "--jobs", str(jobs)])
        assert result.exit_code == 0, result.output
        outputs.append(out.read_bytes())
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    out = tmp_path / "torchrun.nvc"
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", "NVC_COMPILE": "0"}
    subprocess.run(
        [
            torchrun,
            "--nproc-per-node",
            "2",
            "--no-python",
            sys.executable,
            "-m",
            "nvcodec.cli",
            *ENCODE,
            str(clip),
            "-o",
            str(out),
        ],
        check=True,
        timeout=300,
        env=env,
        capture_output=True,
    )
    outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]


def test_fps_across_segments_is_refused(clip, tmp_path):
    out = tmp_path / "cut.nvc"
    assert CliRunner().invoke(main, [*ENCODE, str(clip), "-o", str(out)]).exit_code == 0
    result = CliRunner().invoke(
        main, ["decode", str(out), "-o", str(tmp_path / "x.mkv"), "--frames", "2:12", "--fps", "16"]
    )
    assert result.exit_code == 2 and "segments" in result.stderr


def test_frame_rate_and_colour_are_kept(tmp_path):
    path = tmp_path / "ntsc.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 32, 24, "bgr0"
        stream.codec_context.color_primaries, stream.codec_context.color_trc = 1, 1  # BT.709
        for frame in cut_clip(4, 4):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    info, _ = scan(path)
    assert info.fps == Fraction(30000, 1001) and (info.colour.primaries, info.colour.transfer) == (1, 1)


def test_mutated_segmented_files_fail_cleanly(tmp_path):
    """Flipped bytes, cuts and forged (CRC-valid) indices: read or refused with an NvcError, nothing else."""
    from nvcodec.errors import NvcError

    data = two_segment_file()
    rng = np.random.default_rng(1)
    path = tmp_path / "m.nvc"
    for trial in range(300):
        if trial % 3 == 0:
            mutated = bytearray(data)
            for at in rng.integers(0, len(data), 1 + trial % 4):
                mutated[at] ^= int(rng.integers(1, 256))
        elif trial % 3 == 1:
            mutated = data[: int(rng.integers(0, len(data)))]
        else:
            at, value = int(rng.integers(1, 49)), int(rng.integers(0, 256))
            mutated = _rewrite_index(data, lambda p, at=at, value=value: p.__setitem__(at, value))
        path.write_bytes(bytes(mutated))
        try:
            reader = NvcReader(path)
            for index in reader.complete():
                reader.read_segment(index)
            reader.audio()
            reader.metadata()
        except NvcError:
            pass


def test_unreadable_audio_chunk_is_one_line_error(tmp_path):
    """aUDI comes from the file: FFmpeg's refusal of it is an nvc error, and a decode without audio still works."""
    path = tmp_path / "two.nvc"
    path.write_bytes(two_segment_file())  # its aUDI is not Matroska
    for args in (["info", str(path)], ["decode", str(path), "-o", str(tmp_path / "x.mkv")]):
        result = CliRunner().invoke(main, args)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 5 and len(lines) == 1 and "aUDI" in lines[0], result.output
    result = CliRunner().invoke(main, ["decode", str(path), "-o", str(tmp_path / "x.mkv"), "--no-audio"])
    assert result.exit_code == 0 and "6 frames" in result.output, result.output


def test_interrupted_segmented_encode_resumes_to_the_same_file(clip, tmp_path, monkeypatch):
    """A kill after the first segment: running the same command again keeps that segment and ends
    with the bytes an uninterrupted encode writes."""
    import nvcodec.segmented as segmented
    from nvcodec.settings import EncodeSettings

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    settings = EncodeSettings(model="nerv", bpp=12, epochs=2, amp=False)
    options = segmented.FileOptions(segment_seconds=1.5)
    real = segmented.encode_segment

    def interrupted(job, progress=None, say=None):
        if job.index == 1:
            raise KeyboardInterrupt
        return real(job, progress, say)

    out = tmp_path / "resumed.nvc"
    monkeypatch.setattr(segmented, "encode_segment", interrupted)
    with pytest.raises(KeyboardInterrupt):
        segmented.encode_file(clip, out, settings, options)
    work = tmp_path / ".resumed.nvc.segments"
    assert not out.exists() and (work / "segment_00000.nvc.json").is_file()
    done = []

    def noting(job, progress=None, say=None):  # which segments were already finished when their turn came
        done.append((job.index, Path(job.path + ".json").is_file()))
        return real(job, progress, say)

    monkeypatch.setattr(segmented, "encode_segment", noting)
    segmented.encode_file(clip, out, settings, options)
    assert done == [(0, True), (1, False)] and not work.exists()
    segmented.encode_file(clip, tmp_path / "straight.nvc", settings, options)
    assert out.read_bytes() == (tmp_path / "straight.nvc").read_bytes()


def test_chains_restart_at_cuts_and_after_their_length():
    segments = [Segment(0, 8), Segment(8, 16), Segment(16, 24), Segment(24, 32), Segment(32, 40)]
    assert chains(segments, set(), 4) == [(0, 1, 2, 3), (4,)]
    assert chains(segments, {16}, 4) == [(0, 1), (2, 3, 4)]
    assert chains(segments, {16}, 1) == [(0,), (1,), (2,), (3,), (4,)]


def test_a_warm_chain_round_trip_with_the_same_bytes_for_any_worker_count(tmp_path, monkeypatch):
    """One scene in 3 segments: one chain, segments 2 and 3 start from the model before them (same
    architecture) and their weights are coded against it; 1 or 2 workers write the same file; with
    --no-predict every segment decodes on its own."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    clip = tmp_path / "pan.mkv"
    write_clip_with_audio(clip, cut_clip(24, 24))
    out = tmp_path / "chain.nvc"
    talking = [arg for arg in ENCODE if arg != "-q"]
    result = CliRunner().invoke(main, [*talking, str(clip), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 segment(s)" in result.output and "in 1 chain(s)" in result.output, result.output
    assert result.output.count("starting from the previous segment's model") == 2
    reader = NvcReader(out)
    configs = [dict(fmt.read(reader.segment_bytes(i)).arch.config) for i in range(3)]
    assert sum(c.pop("num_frames") for c in configs) == 24 and configs[0] == configs[1] == configs[2]
    assert [reader.read_segment(i).predicted for i in range(3)] == [False, True, True] and reader.version == "1.2"
    decoded = CliRunner().invoke(main, ["decode", str(out), "-o", str(tmp_path / "all.mkv")])
    assert decoded.exit_code == 0, decoded.output
    from nvcodec.metrics import psnr

    measured = reader.metadata()["measured"]["psnr"]
    assert psnr(read_video(clip).frames, read_video(tmp_path / "all.mkv").frames) == pytest.approx(measured, abs=1e-6)
    # cut inside the third segment: the two before it still decode (the second on the first's weights)
    cut = tmp_path / "cut.nvc"
    cut.write_bytes(out.read_bytes()[: reader.segments[2].offset + 100])
    assert NvcReader(cut).complete() == [0, 1]
    second = CliRunner().invoke(main, ["decode", str(cut), "-o", str(tmp_path / "second.mkv"), "--frames", "7:13"])
    assert second.exit_code == 0, second.output
    assert np.array_equal(read_video(tmp_path / "second.mkv").frames, read_video(tmp_path / "all.mkv").frames[7:13])
    outputs = []
    for jobs in (1, 2):  # two chains, (1, 2) and (3): a worker takes a whole chain
        path = tmp_path / f"jobs{jobs}.nvc"
        args = [*talking, str(clip), "-o", str(path), "--chain-length", "2", "--jobs", str(jobs)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and "in 2 chain(s)" in result.output, result.output
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]
    alone = tmp_path / "alone.nvc"
    result = CliRunner().invoke(main, [*talking, str(clip), "-o", str(alone), "--no-predict"])
    assert result.exit_code == 0, result.output
    reader = NvcReader(alone)
    assert reader.version == "1.1" and not any(reader.read_segment(i).predicted for i in range(3))


def test_torchrun_ranks_get_even_shares_of_the_chains():
    """Longest chain first to the least loaded rank: chains of 4, 2, 4 and 2 segments give each of 2
    ranks 6 (index mod world gave 8 and 4); every chain dealt once, each rank's in the plan's order."""
    from nvcodec.segmented import FilePlan, deal_chains

    def plan(*lengths: int) -> FilePlan:
        segments, chains, first = [], [], 0
        for length in lengths:
            chains.append(tuple(range(len(segments), len(segments) + length)))
            segments += [Segment(first + 10 * k, first + 10 * (k + 1)) for k in range(length)]
            first += 10 * length
        return FilePlan(None, tuple(segments), (), Path("."), (), tuple(chains))

    assert deal_chains(plan(4, 2, 4, 2), 2) == [[0, 1], [2, 3]]
    assert deal_chains(plan(4, 4, 2), 2) == [[0, 2], [1]]
    assert deal_chains(plan(1), 3) == [[0], [], []]
    shares = deal_chains(plan(3, 1, 2, 2, 4, 1), 3)
    assert sorted(i for share in shares for i in share) == list(range(6))
