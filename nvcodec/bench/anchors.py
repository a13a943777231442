"""Conventional codecs (x264, x265, SVT-AV1) as anchors, run in-process through PyAV.

Why in-process: no ffmpeg binary to locate or version-match, and the bytes we count are
exactly the packets the encoder emitted, which we then feed back to FFmpeg's own decoder.

Every anchor follows the same rules, so the points are comparable with nvcodec's:

* Colour: RGB to Y'CbCr and back with the BT.601 matrix, limited (16-235) range, bilinear
  chroma resampling (swscale), the same way in both directions, and signalled in the VUI
  (matrix SMPTE 170M, limited range) so any other decoder converts back identically.
  yuv420p by default, yuv444p on request.
* Rate: the coded video. The stream is every packet the encoder emitted, with no container
  (Annex-B for H.264/HEVC, low-overhead OBUs for AV1), parameter sets in-band; from its size we
  leave out what is not video (``uncounted_bytes``): x264's version and option string, a
  user-data SEI (``annexb``), and AV1's temporal delimiters (``obu``; MP4 and Matroska drop them
  too). x265 is told ``info=0`` so it writes no such SEI. The raw size stays in the results.
* Quality is measured on what ``decode`` returns: FFmpeg's decoder run on those exact bytes.
* Threads: one by default, so the bytes do not depend on the machine (x264's frame threads
  change its output); x265 runs with ``frame-threads=1`` and a pool of ``threads``, SVT-AV1
  with ``lp=threads``.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import av
import numpy as np

from ..errors import NvcError, UsageError
from . import annexb, obu

DEFAULT_CRFS = (23.0, 28.0, 33.0, 38.0, 43.0)
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
# SVT-AV1's CRF scale is 1-63, not 0-51: these give about the rates of x264/x265 at DEFAULT_CRFS
# and below (0.03-0.25 bpp on the sample clip at 320x180).
SVTAV1_CRFS = (23.0, 30.0, 37.0, 44.0, 51.0, 58.0, 63.0)
SVTAV1_PRESET = "4"
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

    def uncounted_bytes(self, data: bytes) -> int:
        """Bytes of the stream ``data`` that are not coded video, left out of the rate (0 if none)."""
        return 0

    def rate_bytes(self, data: bytes) -> int:
        """The rate: the stream's bytes less ``uncounted_bytes``."""
        return len(data) - self.uncounted_bytes(data)

    @property
    def curve(self) -> str:
        label = f"{self.name} {self.preset}"
        return label if self.pix_fmt == "yuv420p" else f"{label} {self.pix_fmt}"

    def settings(self) -> dict[str, object]:
        """Everything that changes the output bytes (used in cache keys and reports)."""
        return {
            "codec": self.name,
            "crf": self.crf,
            "preset": self.preset,
            "pix_fmt": self.pix_fmt,
            "threads": self.threads,
        }


def _check_frames(frames: np.ndarray) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise UsageError("anchor input must be uint8 RGB frames shaped [T, H, W, 3]")
    if frames.shape[0] == 0:
        raise UsageError("anchor input has no frames")
    return frames


@dataclass(frozen=True)
class PyAVAnchor(Anchor):
    """An anchor made of an FFmpeg encoder and decoder pair driven through PyAV codec contexts."""

    encoder_name: ClassVar[str]
    decoder_name: ClassVar[str]
    presets: ClassVar[tuple[str, ...]] = PRESETS
    crf_range: ClassVar[tuple[float, float]] = (0, 51)
    probe_preset: ClassVar[str] = "ultrafast"  # the fastest, for reading the version
    pix_fmts: ClassVar[tuple[str, ...]] = PIX_FMTS

    def __post_init__(self) -> None:
        if self.preset not in self.presets:
            raise UsageError(f"{self.name}: unknown preset {self.preset!r}; choose from {', '.join(self.presets)}")
        if self.pix_fmt not in self.pix_fmts:
            raise UsageError(
                f"{self.name}: pixel format {self.pix_fmt!r} not supported; choose {' or '.join(self.pix_fmts)}"
            )
        low, high = self.crf_range
        if not low <= float(self.crf) <= high:
            raise UsageError(f"{self.name}: CRF {self.crf} outside {low:g}..{high:g}")
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

    def _options(self, probe: bool = False) -> dict[str, str]:
        """Encoder options; ``probe``: the run that reads the version (which may need it written)."""
        return {"crf": f"{float(self.crf):g}", "preset": self.preset}

    def encode(self, frames: np.ndarray, fps: Fraction = Fraction(25)) -> bytes:
        return self._encode(frames, fps, self._options())

    def _encode(self, frames: np.ndarray, fps: Fraction, options: dict[str, str]) -> bytes:
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
        ctx.options = options
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

    def uncounted_bytes(self, data: bytes) -> int:
        """x264's version and option string: SEI units of user_data_unregistered only."""
        return annexb.user_data_sei_bytes(data, annexb.H264)

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

    def _options(self, probe: bool = False) -> dict[str, str]:
        """``info=0``: no version SEI in the stream (the probe keeps it, to read the version)."""
        params = f"log-level=error:pools={self.threads}:frame-threads=1:info={int(probe)}"
        return {**super()._options(probe), "x265-params": params}

    def uncounted_bytes(self, data: bytes) -> int:
        """None written with ``info=0``; counted the same way as x264's in case a stream has one."""
        return annexb.user_data_sei_bytes(data, annexb.HEVC)

    @classmethod
    def parse_version(cls, data: bytes) -> str | None:
        match = re.search(rb"x265 \(build (\d+)\) - ([0-9A-Za-z.+_-]+)", data)
        return f"{match.group(2).decode()} (build {match.group(1).decode()})" if match else None


@dataclass(frozen=True)
class SvtAv1Anchor(PyAVAnchor):
    """AV1 via SVT-AV1, decoded by dav1d.

    Preset 4 by default, the one a user picks for quality: the fastest of the slow presets, whose
    encode of the sample clip (320x180x32, one thread) still takes about a second, while the
    slower ones cost several times its time for a few percent of bits (measured by
    ``nvc bench --anchors-only --anchors svtav1 --svtav1-presets 2,3,4,5,6,8``; docs/results.md). The stream carries no metadata OBU (no version string); its temporal
    delimiters (2 bytes a frame) are left out of the rate.
    """

    name: ClassVar[str] = "svtav1"
    encoder_name: ClassVar[str] = "libsvtav1"
    decoder_name: ClassVar[str] = "libdav1d"
    stream_suffix: ClassVar[str] = ".obu"
    presets: ClassVar[tuple[str, ...]] = tuple(str(p) for p in range(14))
    crf_range: ClassVar[tuple[float, float]] = (1, 63)
    probe_preset: ClassVar[str] = "13"
    pix_fmts: ClassVar[tuple[str, ...]] = ("yuv420p",)  # SVT-AV1 codes the main profile only
    preset: str = SVTAV1_PRESET

    def _options(self, probe: bool = False) -> dict[str, str]:
        os.environ.setdefault("SVT_LOG", "1")  # errors only: SVT-AV1 prints its banner to stderr otherwise
        return {**super()._options(probe), "svtav1-params": f"lp={self.threads}"}

    def uncounted_bytes(self, data: bytes) -> int:
        return obu.temporal_delimiter_bytes(data)

    @property
    def version(self) -> str:
        return _svtav1_version()


ANCHORS: dict[str, type[PyAVAnchor]] = {"x264": X264Anchor, "x265": X265Anchor, "svtav1": SvtAv1Anchor}


def anchor_class(name: str) -> type[PyAVAnchor]:
    """The anchor class registered as ``name`` ('x264', 'x265' or 'svtav1')."""
    try:
        return ANCHORS[name]
    except KeyError:
        raise UsageError(f"unknown anchor {name!r}; choose from {', '.join(ANCHORS)}") from None


@functools.lru_cache(maxsize=None)
def _probe_version(cls: type[PyAVAnchor]) -> str:
    """Encode two tiny frames and read the version the encoder writes into its SEI."""
    if cls.unavailable_reason():
        return "unavailable"
    anchor = cls(crf=30, preset=cls.probe_preset)
    try:
        data = anchor._encode(np.full((2, 64, 64, 3), 128, np.uint8), Fraction(25), anchor._options(probe=True))
    except NvcError:
        return "unknown"
    return cls.parse_version(data) or "unknown"


@functools.lru_cache(maxsize=None)
def _svtav1_version() -> str:
    """SVT-AV1 writes no version into its stream: ask the library PyAV bundles (``svt_av1_get_version``)."""
    if SvtAv1Anchor.unavailable_reason():
        return "unavailable"
    libs = Path(av.__file__).resolve().parent.parent / "av.libs"
    for path in sorted(libs.glob("libSvtAv1Enc*")):
        try:
            get_version = ctypes.CDLL(str(path)).svt_av1_get_version
        except (OSError, AttributeError):
            continue
        get_version.restype = ctypes.c_char_p
        return get_version().decode()
    return "unknown"
