"""Video I/O through PyAV: exact round trips where the format is lossless, clear errors otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from nvcodec import errors
from nvcodec.io import Video, parse_frame_range, parse_size, read_video, write_video


@pytest.mark.parametrize(
    "name, lossless, tolerance",
    [
        ("out.mkv", False, 0),
        ("out.mp4", True, 0),
        ("frames", False, 0),
        ("out.y4m", False, 2),
    ],
)
def test_round_trip(tmp_path, tiny_clip, name, lossless, tolerance):
    write_video(tmp_path / name, tiny_clip, lossless=lossless)
    back = read_video(tmp_path / name)
    assert back.frames.shape == tiny_clip.frames.shape
    assert np.abs(back.frames.astype(int) - tiny_clip.frames).max() <= tolerance
    assert back.fps == tiny_clip.fps


def test_lossy_mp4_is_close(tmp_path, tiny_clip):
    write_video(tmp_path / "out.mp4", tiny_clip)
    from nvcodec.metrics import psnr

    # 4:2:0 chroma alone caps RGB PSNR (about 40 dB at 320x180, lower on this detailed 64x36 clip)
    assert psnr(tiny_clip.frames, read_video(tmp_path / "out.mp4").frames) > 30


def test_odd_sizes(tmp_path, odd_clip):
    for name in ("odd.mkv", "odd.y4m", "odd_png"):
        write_video(tmp_path / name, odd_clip)
        assert read_video(tmp_path / name).frames.shape == (3, 9, 17, 3)
    with pytest.raises(errors.OutputError, match="even width and height"):
        write_video(tmp_path / "odd.mp4", odd_clip)
    assert not (tmp_path / "odd.mp4").exists()


def test_frame_range_and_area_resize(sample_path):
    clip = read_video(sample_path, (3, 6), (32, 18))
    assert clip.frames.shape == (3, 18, 32, 3) and clip.frames.dtype == np.uint8
    full = read_video(sample_path, (3, 4))
    assert full.frames.shape == (1, 720, 1280, 3)
    # an area filter keeps the mean colour of the picture
    assert abs(full.frames.mean() - read_video(sample_path, (3, 4), (320, 180)).frames.mean()) < 1.0


def test_bad_inputs_name_the_problem(tmp_path, sample_path):
    with pytest.raises(errors.InputError, match="no such file"):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "text.mp4").write_text("hello, not a video")
    with pytest.raises(errors.InputError, match="not a video"):
        read_video(tmp_path / "text.mp4")
    with pytest.raises(errors.InputError, match="no frames in the range"):
        read_video(sample_path, (500, 510))
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.InputError, match="no .png frames"):
        read_video(tmp_path / "empty")
    with pytest.raises(errors.OutputError, match="unknown output type"):
        write_video(tmp_path / "out.avi", Video(np.zeros((1, 4, 4, 3), np.uint8), 25))


def test_argument_parsers():
    assert parse_frame_range("0:32") == (0, 32) and parse_frame_range("5:")[0] == 5
    assert parse_size("320x180") == (320, 180)
    for bad in ("3", "5:2", "a:b"):
        with pytest.raises(errors.UsageError):
            parse_frame_range(bad)
    for bad in ("320", "0x10", "x"):
        with pytest.raises(errors.UsageError):
            parse_size(bad)


def test_outputs_get_the_umask_mode_and_clear_errors(tmp_path):
    import os

    from nvcodec.errors import OutputError
    from nvcodec.fsutil import atomic_path, atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        with atomic_path(tmp_path / "frames", directory=True) as folder:
            (folder / "0.png").write_bytes(b"")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644  # as open() would make it, not mkstemp's 0600
    assert (tmp_path / "frames").stat().st_mode & 0o777 == 0o755
    with pytest.raises(OutputError, match="missing"):
        atomic_write_bytes(tmp_path / "missing" / "a.bin", b"x")
    with pytest.raises(OutputError, match="/proc/x.nvc"):
        atomic_write_bytes("/proc/x.nvc", b"x")


def test_decode_to_file_reports_progress_and_writes_readable_files(tmp_path):
    """Progress after every batch, ending at the frame count; the output gets the umask's mode."""
    import os

    from nvcodec.decoder import decode_to_file
    from tests.conftest import CONFORMANCE

    calls = []
    old = os.umask(0o022)
    try:
        count = decode_to_file(
            CONFORMANCE / "c2_nerv_36x64x2.nvc",
            tmp_path / "r.mkv",
            progress=lambda done, total, seconds: calls.append((done, total)),
        )
    finally:
        os.umask(old)
    assert count.frames == 2 and calls[-1] == (2, 2) and all(total == 2 for _, total in calls)
    assert (tmp_path / "r.mkv").stat().st_mode & 0o777 == 0o644
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
