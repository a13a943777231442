"""Bad inputs a user meets in the first hour: each gets one ``nvc: error:`` line, the documented
exit code, and words that name the problem and the fix; none of them trains first.

``CASES`` is also the table in ``benchmarks/results/bad_inputs.md`` (``python
benchmarks/bad_inputs.py`` runs every case with the real ``nvc`` and writes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from nvcodec.cli import main
from nvcodec.io import Video, sample_clip_path, write_video

CONFORMANCE_FILE = Path(__file__).parent / "conformance" / "c1_nerv_9x17x3.nvc"  # a nerv file, 17x9, 3 frames


@dataclass(frozen=True)
class Case:
    what: str
    args: tuple[str, ...]  # {sample}, {tmp}, {nerv_file} and the names made by make_inputs() are filled in
    exit_code: int
    words: tuple[str, ...]  # the message must contain each of them


def make_inputs(folder: Path) -> dict[str, str]:
    """The input files the cases refer to, made in ``folder``."""
    (folder / "notes.mp4").write_text("these are my notes, not a video\n")
    empty = folder / "empty.y4m"  # a video stream with no frames
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        container.start_encoding()
    write_video(folder / "one_pixel", Video(np.full((4, 1, 1, 3), 128, np.uint8), Fraction(25)))
    return {
        "sample": str(sample_clip_path()),
        "tmp": str(folder),
        "nerv_file": str(CONFORMANCE_FILE),
        "notes": str(folder / "notes.mp4"),
        "empty": str(empty),
        "one_pixel": str(folder / "one_pixel"),
    }


ENCODE = ("encode", "{sample}", "--frames", "0:4", "--resize", "64x36")
CASES = (
    Case("missing input", ("encode", "{tmp}/missing.mp4", "-o", "{tmp}/x.nvc"), 3, ("missing.mp4", "no such file")),
    Case("not a video", ("encode", "{notes}", "-o", "{tmp}/x.nvc"), 3, ("notes.mp4", "not a video")),
    Case("zero frames", ("encode", "{empty}", "-o", "{tmp}/x.nvc"), 3, ("zero frames",)),
    Case(
        "frame range past the end",
        ("encode", "{sample}", "--frames", "500:600", "-o", "{tmp}/x.nvc"),
        3,
        ("no frames in the range 500:600",),
    ),
    Case("1x1 video", ("encode", "{one_pixel}", "-o", "{tmp}/x.nvc"), 4, ("cannot be met", "raise --bpp")),
    Case(
        "odd size, too small a rate",
        ENCODE[:-1] + ("33x17", "--bpp", "0.05", "-o", "{tmp}/x.nvc"),
        4,
        ("cannot be met", "33x17"),
    ),
    Case(
        "impossible --bpp (too low)",
        ENCODE + ("--bpp", "0.001", "-o", "{tmp}/x.nvc"),
        4,
        ("--bpp 0.001 cannot be met", "raise --bpp"),
    ),
    Case("impossible --bpp (too high)", ENCODE + ("--bpp", "100000", "-o", "{tmp}/x.nvc"), 4, ("lower --bpp",)),
    Case("--bpp not a number", ENCODE + ("--bpp", "abc", "-o", "{tmp}/x.nvc"), 2, ("'--bpp'", "abc")),
    Case("--bpp negative", ENCODE + ("--bpp", "-1", "-o", "{tmp}/x.nvc"), 2, ("'--bpp'", "x>0")),
    Case("--train-time zero", ENCODE + ("--train-time", "0", "-o", "{tmp}/x.nvc"), 2, ("--train-time",)),
    Case("--frames not a range", ENCODE[:2] + ("--frames", "ten", "-o", "{tmp}/x.nvc"), 2, ("--frames",)),
    Case("--resize not a size", ENCODE[:4] + ("--resize", "big", "-o", "{tmp}/x.nvc"), 2, ("--resize",)),
    Case("--threads zero", ("--threads", "0", "models"), 2, ("--threads",)),
    Case("unknown backbone", ENCODE + ("--model", "vp9", "-o", "{tmp}/x.nvc"), 2, ("vp9", "available: coordflow")),
    Case("encode output not .nvc", ENCODE + ("-o", "{tmp}/x.mp4"), 2, ("must end in .nvc",)),
    Case(
        "output folder missing", ENCODE + ("-o", "{tmp}/no/such/folder/x.nvc"), 6, ("no/such/folder", "does not exist")
    ),
    Case("output not writable", ENCODE + ("-o", "/proc/x.nvc"), 6, ("/proc/x.nvc",)),
    Case(
        "option of another backbone (encode)",
        ENCODE + ("--model", "nerv", "--of-weight", "0.1", "-o", "{tmp}/x.nvc"),
        2,
        ("--of-weight", "--model siren"),
    ),
    Case(
        "loss the backbone cannot train",
        ENCODE + ("--model", "coordflow", "--loss", "fusion", "-o", "{tmp}/x.nvc"),
        2,
        ("--loss fusion", "--loss l2"),
    ),
    Case(
        "--lambda with post-training quantization",
        ENCODE + ("--lambda", "0.01", "--rate-training", "off", "-o", "{tmp}/x.nvc"),
        2,
        ("--lambda",),
    ),
    Case("decode: missing file", ("decode", "{tmp}/missing.nvc", "-o", "{tmp}/r.mkv"), 3, ("no such file",)),
    Case("decode: not an .nvc", ("decode", "{sample}", "-o", "{tmp}/r.mkv"), 5, ("signature",)),
    Case("decode: unknown output type", ("decode", "{nerv_file}", "-o", "{tmp}/r.avi"), 6, (".avi", ".mkv")),
    Case("decode: output not writable", ("decode", "{nerv_file}", "-o", "/proc/r.mkv"), 6, ("/proc/r.mkv",)),
    Case("decode: odd size into H.264 4:2:0", ("decode", "{nerv_file}", "-o", "{tmp}/r.mp4"), 6, ("17x9", ".mkv")),
    Case(
        "decode: --scale on a frame-wise backbone",
        ("decode", "{nerv_file}", "-o", "{tmp}/r.mkv", "--scale", "2"),
        2,
        ("--scale", "pixel-wise"),
    ),
    Case(
        "decode: --fps not positive",
        ("decode", "{nerv_file}", "-o", "{tmp}/r.mkv", "--fps", "-5"),
        2,
        ("'--fps'", "x>0"),
    ),
    Case(
        "decode: option of another backbone",
        ("decode", "{nerv_file}", "-o", "{tmp}/r.mkv", "--stabilize", "2"),
        2,
        ("--stabilize", "coordflow"),
    ),
    Case(
        "decode: frames past the end",
        ("decode", "{nerv_file}", "-o", "{tmp}/r.mkv", "--frames", "5:9"),
        2,
        ("3 frames",),
    ),
    Case("info: not an .nvc", ("info", "{notes}"), 5, ("signature",)),
)


def fill(args: tuple[str, ...], inputs: dict[str, str]) -> list[str]:
    return [arg.format(**inputs) for arg in args]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    return make_inputs(tmp_path_factory.mktemp("bad_inputs"))


@pytest.mark.parametrize("case", CASES, ids=[c.what for c in CASES])
def test_bad_input_is_one_clear_line(case: Case, inputs, runner):
    result = runner.invoke(main, fill(case.args, inputs))
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nvc: error: "), result.output
    assert result.exit_code == case.exit_code, (result.exit_code, lines[0])
    for word in case.words:
        assert word.format(**inputs) in lines[0], (word, lines[0])
    assert not list(Path(inputs["tmp"]).glob("x.nvc*")), "nothing is written for a bad input"
