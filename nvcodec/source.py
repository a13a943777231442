"""An input video read segment by segment, so memory follows the segment, not the clip.

``scan`` decodes the input once: it counts the frames, keeps each frame's presentation time
stamp (so a segment can later be read by seeking to it), a small luma thumbnail per frame (for
scene cuts and difficulty, ``scenes.py``), and what the input carries that the codec must keep
or state: frame rate (variable rates are detected), colour (H.273 code points), bit depth, and
an audio track. ``read_frames`` then reads any [start, stop) of it with a seek, and
``read_audio`` copies the audio packets, unchanged, into a small Matroska file (the ``aUDI``
chunk of bitstream_spec.md, section 10).
"""

from __future__ import annotations

import io as bytes_io
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import InputError
from .io import (
    Colour,
    FrameRange,
    Size,
    Video,
    copy_audio_packets,
    frame_to_rgb,
    list_pictures,
    open_video,
    read_picture,
    stream_colour,
)

THUMB_SIZE = (64, 36)  # (width, height) of the luma thumbnails scenes.py works on


@dataclass(frozen=True)
class SourceInfo:
    """What ``scan`` learned: enough to read any segment again, and what to tell the user."""

    path: Path
    width: int  # after --resize
    height: int
    num_frames: int  # after --frames
    fps: Fraction
    colour: Colour
    frame_pts: tuple[int, ...] | None  # each kept frame's time stamp in ``time_base`` units; None: not seekable
    time_base: Fraction | None
    first_index: int  # the input's index of frame 0 (--frames A:)
    resize: Size | None
    has_audio: bool
    to_end: bool = True  # the kept frames run to the input's last frame
    notes: tuple[str, ...] = ()  # what the codec changes on the way in (bit depth, variable rate)

    @property
    def num_pixels(self) -> int:
        return self.num_frames * self.width * self.height

    def start_seconds(self) -> float:
        """Time of frame 0 in the input's clock (audio is cut from here)."""
        if self.frame_pts is None or self.time_base is None:
            return 0.0
        return float(self.frame_pts[0] * self.time_base)


def _thumbnail(frame: av.VideoFrame) -> np.ndarray:
    w, h = THUMB_SIZE
    return frame.reformat(width=w, height=h, format="gray", interpolation="AREA").to_ndarray()


def _bit_depth(pix_fmt: str | None) -> int:
    if not pix_fmt:
        return 8
    descriptor = av.VideoFormat(pix_fmt)
    return max((c.bits for c in descriptor.components), default=8)


def scan(
    path: str | os.PathLike, frames: FrameRange | None = None, resize: Size | None = None
) -> tuple[SourceInfo, np.ndarray]:
    """Decode the input once: its description and uint8 luma thumbnails [T, 36, 64]."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    start, stop = frames if frames is not None else (0, 2**31 - 1)
    if path.is_dir():
        pictures = list_pictures(path)[start:stop]
        if not pictures:
            raise InputError(f"{path}: no frames in the range {start}:{stop}")
        shape, thumbs = None, []
        for picture in pictures:  # one picture in memory at a time, as for a video file
            rgb = read_picture(picture, resize)
            if shape is not None and rgb.shape != shape:
                raise InputError(
                    f"{path}: pictures change size ({shape[1]}x{shape[0]} -> {rgb.shape[1]}x"
                    f"{rgb.shape[0]} at {picture.name}); use --resize WxH"
                )
            shape = rgb.shape
            thumbs.append(_thumbnail(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        info = SourceInfo(
            path, shape[1], shape[0], len(pictures), Fraction(25), Colour(), None, None, start, resize, False
        )
        return info, np.stack(thumbs)
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = Fraction(stream.average_rate or stream.guessed_rate or 25).limit_denominator(1_000_000)
        pts: list[int | None] = []
        thumbs: list[np.ndarray] = []
        size, to_end = None, True
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index >= stop:
                    to_end = False
                    break
                if index < start:
                    continue
                shape = (frame.width, frame.height)
                if size is None:
                    size = shape
                elif shape != size and resize is None:
                    raise InputError(f"{path}: frames change size mid-stream ({size} -> {shape}); use --resize WxH")
                pts.append(frame.pts)
                thumbs.append(_thumbnail(frame))
        except av.FFmpegError as exc:
            if not thumbs:
                raise InputError(f"{path}: cannot decode video ({exc})") from None
        if not thumbs:
            raise InputError(
                f"{path}: no frames in the range {start}:{stop}" if frames else f"{path}: video has zero frames"
            )
        width, height = resize if resize is not None else size
        notes = []
        depth = _bit_depth(stream.codec_context.pix_fmt)
        if depth > 8:
            notes.append(f"{depth}-bit input ({stream.codec_context.pix_fmt}): coded as 8-bit RGB")
        others = len(container.streams) - 1 - min(1, len(container.streams.audio))
        if others:
            notes.append(
                f"{others} other stream(s) (a second audio track, subtitles, data) left out: only the "
                "video and the first audio track are carried"
            )
        seekable = None not in pts and len(set(pts)) == len(pts)
        if seekable and _variable_rate(pts, stream.time_base, rate):
            notes.append(f"variable frame rate: coded at its average {float(rate):.3f} fps (frame times not kept)")
        info = SourceInfo(
            path,
            width,
            height,
            len(thumbs),
            rate,
            stream_colour(stream),
            tuple(pts) if seekable else None,
            stream.time_base if seekable else None,
            start,
            resize,
            bool(container.streams.audio),
            to_end,
            tuple(notes),
        )
    return info, np.stack(thumbs)


def _variable_rate(pts: list[int], time_base: Fraction, rate: Fraction) -> bool:
    if len(pts) < 3:
        return False
    gaps = np.diff(np.sort(np.array(pts, dtype=np.int64))) * float(time_base)
    return bool(np.abs(gaps - 1 / float(rate)).max() > 0.25 / float(rate))


def read_frames(info: SourceInfo, start: int, stop: int) -> Video:
    """Frames [start, stop) of the scanned input as RGB, seeking to them (bounded memory)."""
    if info.path.is_dir():
        pictures = list_pictures(info.path)[info.first_index + start : info.first_index + stop]
        return Video(np.stack([read_picture(p, info.resize) for p in pictures]), info.fps)
    with open_video(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if info.frame_pts is None:  # no usable time stamps: count frames from the start
            arrays = [
                frame_to_rgb(f, info.resize)
                for i, f in enumerate(container.decode(stream))
                if info.first_index + start <= i < info.first_index + stop
            ]
        else:
            wanted = {p: k for k, p in enumerate(info.frame_pts[start:stop])}
            container.seek(min(wanted), stream=stream, backward=True, any_frame=False)
            found: dict[int, np.ndarray] = {}
            for frame in container.decode(stream):
                if frame.pts in wanted:
                    found[wanted[frame.pts]] = frame_to_rgb(frame, info.resize)
                if len(found) == len(wanted) or (frame.pts is not None and frame.pts > max(wanted) + 1_000_000):
                    break
            arrays = [found[k] for k in sorted(found)]
    if len(arrays) != stop - start:
        raise InputError(
            f"{info.path}: frames {start}:{stop} could not be read again ({len(arrays)} found); "
            "the input changed since it was scanned, or it cannot seek (convert it to .mkv)"
        )
    return Video(np.stack(arrays), info.fps, info.colour)


def read_audio(info: SourceInfo) -> bytes | None:
    """The input's first audio track over the kept frames, its packets unchanged, as a Matroska file.

    Time stamps are made relative to frame 0, so ``--frames A:B`` keeps the audio in sync; a
    range that starts (ends) with the input keeps every packet before (after) it too.
    """
    if not info.has_audio:
        return None
    begin = info.start_seconds()
    end = begin + info.num_frames / float(info.fps) if not info.to_end else float("inf")
    buffer = bytes_io.BytesIO()
    with open_video(info.path) as container:
        audio = container.streams.audio[0]
        try:
            with av.open(buffer, "w", format="matroska", options={"fflags": "+bitexact"}) as out:
                track = out.add_stream_from_template(audio)
                copy_audio_packets(container, audio, out, track, begin, end, keep_before=info.first_index == 0)
        except (av.FFmpegError, ValueError) as exc:
            raise InputError(
                f"{info.path}: its audio track ({audio.codec_context.name}) cannot be carried "
                f"({exc}); drop it first, e.g. ffmpeg -i IN -an -c:v copy OUT"
            ) from None
    return buffer.getvalue()


def audio_packets(path: str | os.PathLike | bytes) -> list[bytes]:
    """The payload bytes of every packet of the first audio track (to compare round trips)."""
    source = bytes_io.BytesIO(path) if isinstance(path, bytes) else str(path)
    with av.open(source) as container:
        if not container.streams.audio:
            return []
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]
