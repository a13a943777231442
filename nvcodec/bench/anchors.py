"""Conventional codecs (x264, x265) as anchors, run in-process through PyAV.

Why in-process: no ffmpeg binary to locate or version-match, and the bytes we count are
exactly the packets the encoder emitted, which we then feed back to FFmpeg's own decoder.

Every anchor follows the same rules, so the points are comparable with nvcodec's:

* Colour: RGB to Y'CbCr and back with the BT.601 matrix, limited (16-235) range, bilinear
  chroma resampling (swscale), the same way in both directions, and signalled in the VUI
  (matrix SMPTE 170M, limited range) so any other decoder converts back identically.
  yuv420p by default, yuv444p on request.
* Rate: the raw Annex-B elementary stream, i.e. the sum of all packet sizes with no container.
  Parameter sets are in-band, and so is the user-data SEI in which x264/x265 write their
  version and full option string (about 0.5-2 kB; reported separately as ``version_sei_bytes``
  so a reader can subtract it).
* Quality is measured on what ``decode`` returns: FFmpeg's decoder run on those exact bytes.
* Threads: one by default, so the bytes do not depend on the machine (x264's frame threads
  change its output); x265 runs with ``frame-threads=1`` and a pool of ``threads``.
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import av
import numpy as np

from ..errors import NvcError, UsageError

DEFAULT_CRFS = (23.0, 28.0, 33.0, 38.0, 43.0)
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
PIX_FMTS = ("yuv420p", "yuv444p")

# swscale names for the conversion, and the H.273 code points written to the VUI.
_MATRIX, _RANGE, _INTERPOLATION = "ITU601", "MPEG", "BILINEAR"
_VUI_MATRIX_SMPTE170M, _VUI_RANGE_LIMITED = 6, 1

COLOUR_NOTE = "BT.601 matrix, limited range, bilinear chroma resampling (swscale), both directions"


class AnchorUnavailable(NvcError, RuntimeError):
    """The FFmpeg inside PyAV lacks the encoder or decoder an anchor needs."""


class AnchorError(NvcError, RuntimeError):
    """An anchor's encoder or decoder failed or returned the wrong number of frames."""


@dataclass(frozen=True)
class Anchor(ABC):
    """A reference codec: ``encode(frames) -> bytes`` and ``decode(bytes) -> frames``.

    One instance is one operating point (codec, preset, pixel format, CRF); ``curve`` names the
    curve the point belongs to (everything but the CRF).
    """

    crf: float = 23.0
    preset: str = "medium"
    pix_fmt: str = "yuv420p"
    threads: int = 1

    name: ClassVar[str]
    stream_suffix: ClassVar[str] = ".bin"  # file name suffix for the stored bitstream

    @classmethod
    @abstractmethod
    def unavailable_reason(cls) -> str | None:
        """None when this anchor can run here, else why not."""

    @classmethod
    def available(cls) -> bool:
        return cls.unavailable_reason() is None

    @property
    @abstractmethod
    def version(self) -> str:
        """Version of the encoder library, as far as it can be discovered."""

    @abstractmethod
    def encode(self, frames: np.ndarray, fps: Fraction = Fraction(25)) -> bytes:
        """Encode uint8 RGB frames [T, H, W, 3]; return the bitstream whose size is the rate."""

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Decode ``data`` back to uint8 RGB frames [T, H, W, 3]."""

    def version_sei_bytes(self, data: bytes) -> int:
        """Bytes of ``data`` spent on the encoder's version string (0 if none)."""
        return 0

    @property
    def curve(self) -> str:
        label = f"{self.name} {self.preset}"
        return label if self.pix_fmt == "yuv420p" else f"{label} {self.pix_fmt}"

    def settings(self) -> dict[str, object]:
        """Everything that changes the output bytes (used in cache keys and reports)."""
        return {"codec": self.name, "crf": self.crf, "preset": self.preset, "pix_fmt": self.pix_fmt, "threads": self.threads}


def _check_frames(frames: np.ndarray) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise UsageError("anchor input must be uint8 RGB frames shaped [T, H, W, 3]")
    if frames.shape[0] == 0:
        raise UsageError("anchor input has no frames")
    return frames


def annexb_nal_units(data: bytes) -> list[tuple[int, int, int]]:
    """Split an Annex-B stream into (start, header, end): start code at ``start``, NAL header at
    ``header``, next unit at ``end``."""
    starts = [(m.start(), m.end()) for m in re.finditer(rb"\x00?\x00\x00\x01", data)]
    return [(s, h, starts[i + 1][0] if i + 1 < len(starts) else len(data)) for i, (s, h) in enumerate(starts)]


@dataclass(frozen=True)
class PyAVAnchor(Anchor):
    """An anchor made of an FFmpeg encoder and decoder pair driven through PyAV codec contexts."""

    encoder_name: ClassVar[str]
    decoder_name: ClassVar[str]
    version_tag: ClassVar[bytes]  # text that starts the encoder's version SEI

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise UsageError(f"{self.name}: unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        if self.pix_fmt not in PIX_FMTS:
            raise UsageError(f"{self.name}: pixel format {self.pix_fmt!r} not supported; choose {' or '.join(PIX_FMTS)}")
        if not 0 <= float(self.crf) <= 51:
            raise UsageError(f"{self.name}: CRF {self.crf} outside 0..51")
        if self.threads < 1:
            raise UsageError(f"{self.name}: threads must be at least 1")

    @classmethod
    def unavailable_reason(cls) -> str | None:
        for codec, mode, role in ((cls.encoder_name, "w", "encoder"), (cls.decoder_name, "r", "decoder")):
            try:
                av.codec.Codec(codec, mode)
            except ValueError:
                return f"the FFmpeg in PyAV {av.__version__} has no {codec} {role}"
        return None

    @property
    def version(self) -> str:
        return _probe_version(type(self))

    @classmethod
    def parse_version(cls, data: bytes) -> str | None:
        """The encoder version written in a bitstream's SEI, if present."""
        return None

    def _options(self) -> dict[str, str]:
        return {"crf": f"{float(self.crf):g}", "preset": self.preset}

    def _is_sei(self, header: int) -> bool:
        raise NotImplementedError

    def version_sei_bytes(self, data: bytes) -> int:
        return sum(
            end - start
            for start, header, end in annexb_nal_units(data)
            if header < len(data) and self._is_sei(data[header]) and self.version_tag in data[header:end]
        )

    def encode(self, frames: np.ndarray, fps: Fraction = Fraction(25)) -> bytes:
        frames = _check_frames(frames)
        height, width = frames.shape[1:3]
        if self.pix_fmt == "yuv420p" and (width % 2 or height % 2):
            raise UsageError(f"{self.name}: yuv420p needs even width and height, got {width}x{height} (use --resize)")
        if self.unavailable_reason():
            raise AnchorUnavailable(self.unavailable_reason())
        fps = Fraction(fps)
        ctx = av.CodecContext.create(self.encoder_name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, self.pix_fmt
        ctx.time_base, ctx.framerate = 1 / fps, fps
        ctx.thread_count = self.threads
        ctx.colorspace, ctx.color_range = _VUI_MATRIX_SMPTE170M, _VUI_RANGE_LIMITED
        ctx.options = self._options()
        packets: list[av.Packet] = []
        try:
            for index, rgb in enumerate(frames):
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(
                    format=self.pix_fmt, dst_colorspace=_MATRIX, dst_color_range=_RANGE, interpolation=_INTERPOLATION
                )
                picture.pts = index
                packets.extend(ctx.encode(picture))
            packets.extend(ctx.encode(None))
        except av.FFmpegError as exc:
            raise AnchorError(f"{self.encoder_name} failed: {exc}") from None
        return b"".join(bytes(packet) for packet in packets)

    def decode(self, data: bytes) -> np.ndarray:
        if not data:
            raise AnchorError(f"{self.name}: nothing to decode")
        ctx = av.CodecContext.create(self.decoder_name, "r")
        ctx.thread_count = self.threads
        pictures: list[av.VideoFrame] = []
        try:
            packets = ctx.parse(data)
            packets += ctx.parse(None)  # flush: the parser holds back the last access unit
            for packet in packets:
                pictures.extend(ctx.decode(packet))
            pictures.extend(ctx.decode(None))
        except av.FFmpegError as exc:
            raise AnchorError(f"{self.decoder_name} failed: {exc}") from None
        if not pictures:
            raise AnchorError(f"{self.decoder_name} returned no pictures")
        return np.stack(
            [
                p.reformat(
                    format="rgb24", src_colorspace=_MATRIX, src_color_range=_RANGE, interpolation=_INTERPOLATION
                ).to_ndarray()
                for p in pictures
            ]
        )


@dataclass(frozen=True)
class X264Anchor(PyAVAnchor):
    """H.264 / AVC via libx264."""

    name: ClassVar[str] = "x264"
    encoder_name: ClassVar[str] = "libx264"
    decoder_name: ClassVar[str] = "h264"
    stream_suffix: ClassVar[str] = ".264"
    version_tag: ClassVar[bytes] = b"x264 - core"

    def _is_sei(self, header: int) -> bool:
        return header & 0x1F == 6

    @classmethod
    def parse_version(cls, data: bytes) -> str | None:
        match = re.search(rb"x264 - (core \d+(?: r\d+(?: [0-9a-f]+)?)?)", data)
        return match.group(1).decode() if match else None


@dataclass(frozen=True)
class X265Anchor(PyAVAnchor):
    """H.265 / HEVC via libx265 (logging turned down to errors)."""

    name: ClassVar[str] = "x265"
    encoder_name: ClassVar[str] = "libx265"
    decoder_name: ClassVar[str] = "hevc"
    stream_suffix: ClassVar[str] = ".265"
    version_tag: ClassVar[bytes] = b"x265 (build"

    def _options(self) -> dict[str, str]:
        params = f"log-level=error:pools={self.threads}:frame-threads=1"
        return {**super()._options(), "x265-params": params}

    def _is_sei(self, header: int) -> bool:
        return (header >> 1) & 0x3F in (39, 40)  # prefix / suffix SEI

    @classmethod
    def parse_version(cls, data: bytes) -> str | None:
        match = re.search(rb"x265 \(build (\d+)\) - ([0-9A-Za-z.+_-]+)", data)
        return f"{match.group(2).decode()} (build {match.group(1).decode()})" if match else None


ANCHORS: dict[str, type[PyAVAnchor]] = {"x264": X264Anchor, "x265": X265Anchor}


def anchor_class(name: str) -> type[PyAVAnchor]:
    """The anchor class registered as ``name`` ('x264' or 'x265')."""
    try:
        return ANCHORS[name]
    except KeyError:
        raise UsageError(f"unknown anchor {name!r}; choose from {', '.join(ANCHORS)}") from None


@functools.lru_cache(maxsize=None)
def _probe_version(cls: type[PyAVAnchor]) -> str:
    """Encode two tiny frames and read the version the encoder writes into its SEI."""
    if cls.unavailable_reason():
        return "unavailable"
    try:
        data = cls(crf=30, preset="ultrafast").encode(np.full((2, 64, 64, 3), 128, np.uint8))
    except NvcError:
        return "unknown"
    return cls.parse_version(data) or "unknown"
