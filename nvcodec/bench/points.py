"""Measuring one rate-distortion point: encode, decode the real bytes, score the reconstruction.

Why one place for both kinds of codec: the rate rule, the metrics and the timing must be the
same for the anchors and for nvcodec, or the curves are not comparable.

* Anchors: rate = the coded video: every packet (in-band parameter sets included) less what is
  not video (x264's version/options SEI, AV1's temporal delimiters; ``Anchor.uncounted_bytes``),
  the raw stream size kept beside it; quality measured here on FFmpeg's decode of all the bytes;
  encode time includes the RGB to Y'CbCr conversion, decode time the conversion back.
* nvcodec: rate = the whole .nvc file; quality measured here on ``nvcodec.api.decode`` of that
  file (the same scoring code as the anchors), decode time measured around that call; encode time
  as ``nvcodec.api.encode`` reports it (training, compression, writing, its own verification).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from ..fsutil import atomic_write_bytes
from ..metrics import bpp, ms_ssim, psnr, y_psnr
from .anchors import COLOUR_NOTE, Anchor, AnchorError
from .clips import Clip

# Bump when a metric's definition changes: every cached point then becomes a miss.
METRICS_VERSION = 1
# Bump when what counts as an anchor's rate changes: cached anchor points then become misses.
ANCHOR_RATE_VERSION = 2

RATE_ANCHOR = (
    "the coded video: the elementary stream (sum of packet sizes, no container, in-band parameter sets "
    "included) less what is not video (uncounted_bytes): SEI NAL units holding only user_data_unregistered "
    "messages (x264's version and option string; x265 runs with info=0 and writes none) and AV1 temporal "
    "delimiter OBUs (SVT-AV1 writes no metadata OBU); file_bytes is the raw stream"
)
RATE_NVCODEC = "the whole .nvc file as written"
RATE_TRAINING_OFF = " rate-training off"  # ends the curve name of the post-training pipeline


@dataclass(frozen=True)
class RDPoint:
    """One measured operating point of one codec on one clip."""

    clip: str
    codec: str  # "x264", "x265", "nvcodec"
    curve: str  # the curve this point belongs to, e.g. "x265 medium", "nvcodec nerv medium"
    knob: str  # what was swept: "crf" or "bpp_target"
    knob_value: float
    file_bytes: int  # the stream as written
    rate_bytes: int  # what the rate counts: file_bytes less uncounted_bytes
    bpp: float  # of rate_bytes
    psnr: float  # mean per-frame RGB PSNR, dB
    y_psnr: float  # mean per-frame BT.601 full-range luma PSNR, dB
    ms_ssim: float
    encode_seconds: float
    decode_seconds: float
    width: int
    height: int
    frames: int
    version: str
    rate_counted: str
    uncounted_bytes: int | None  # anchors only: bytes of the stream that are not coded video
    stream: str  # stored bitstream, relative to the output folder
    key: str
    settings: dict[str, object] = field(default_factory=dict)
    from_cache: bool = False

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object], **changes: object) -> "RDPoint":
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        known.setdefault("rate_bytes", known.get("file_bytes"))  # records from before the two counts
        known.setdefault("uncounted_bytes", None)
        return cls(**{**known, **changes})


def _score(clip: Clip, decoded: np.ndarray) -> dict[str, float]:
    ref = clip.video.frames
    if decoded.shape != ref.shape:
        raise AnchorError(f"decoder returned frames shaped {decoded.shape}, expected {ref.shape}")
    return {"psnr": psnr(ref, decoded), "y_psnr": y_psnr(ref, decoded), "ms_ssim": ms_ssim(ref, decoded)}


@dataclass(frozen=True)
class AnchorJob:
    """One anchor operating point (codec, preset, pixel format, CRF)."""

    anchor: Anchor

    @property
    def codec(self) -> str:
        return self.anchor.name

    @property
    def curve(self) -> str:
        return self.anchor.curve

    @property
    def knob(self) -> tuple[str, float]:
        return "crf", float(self.anchor.crf)

    @property
    def stream_suffix(self) -> str:
        return self.anchor.stream_suffix

    def identity(self) -> dict[str, object]:
        return {
            "kind": "anchor",
            **self.anchor.settings(),
            "version": self.anchor.version,
            "colour": COLOUR_NOTE,
            "metrics": METRICS_VERSION,
            "rate": ANCHOR_RATE_VERSION,
        }

    def measure(self, clip: Clip, stream_path: Path, key: str) -> RDPoint:
        video = clip.video
        start = time.perf_counter()
        data = self.anchor.encode(video.frames, video.fps)
        encoded = time.perf_counter()
        decoded = self.anchor.decode(data)
        done = time.perf_counter()
        scores = _score(clip, decoded)
        atomic_write_bytes(stream_path, data)
        rate_bytes = self.anchor.rate_bytes(data)
        return RDPoint(
            clip=clip.name,
            codec=self.codec,
            curve=self.curve,
            knob="crf",
            knob_value=float(self.anchor.crf),
            file_bytes=len(data),
            rate_bytes=rate_bytes,
            bpp=bpp(rate_bytes, video.width, video.height, video.num_frames),
            **scores,
            encode_seconds=encoded - start,
            decode_seconds=done - encoded,
            width=video.width,
            height=video.height,
            frames=video.num_frames,
            version=f"{self.anchor.name} {type(self.anchor).parse_version(data) or self.anchor.version}",
            rate_counted=RATE_ANCHOR,
            uncounted_bytes=len(data) - rate_bytes,
            stream=f"{stream_path.parent.name}/{stream_path.name}",
            key=key,
            settings=self.anchor.settings(),
        )


@dataclass(frozen=True)
class NvcodecJob:
    """One nvcodec operating point (family, bpp target, preset, seed)."""

    model: str
    bpp: float
    preset: str = "medium"
    seed: int = 0
    device: str = "cpu"
    epochs: int | None = None
    nvcodec_version: str = "unknown"  # part of the cache identity: a new codec build recomputes
    train_seconds: float | None = None  # equal training time per point instead of the preset's epochs
    train_clock: str = "wall"  # of train_seconds: "wall" or "cpu" (process CPU seconds)
    rate_training: bool = True  # False: the post-training quantization pipeline (the ablation)
    options: tuple[tuple[str, object], ...] = ()  # the family's encode options (sorted), e.g. (("gop", 1),)

    codec = "nvcodec"
    stream_suffix = ".nvc"

    @property
    def curve(self) -> str:
        length = f"{self.train_seconds:g}s" if self.train_seconds else self.preset
        if self.train_seconds and self.train_clock == "cpu":
            length += " cpu"
        options = "".join(f" {k}={v}" for k, v in self.options)
        return f"nvcodec {self.model} {length}{options}" + ("" if self.rate_training else RATE_TRAINING_OFF)

    @property
    def knob(self) -> tuple[str, float]:
        return "bpp_target", float(self.bpp)

    def settings(self) -> dict[str, object]:
        return {
            "model": self.model,
            "bpp": self.bpp,
            "preset": self.preset,
            "seed": self.seed,
            "device": self.device,
            "epochs": self.epochs,
            "train_seconds": self.train_seconds,
            "train_clock": self.train_clock,
            "rate_training": self.rate_training,
            # only when set: the cache identity of a point without options stays what it was
            **({"objective_options": dict(self.options)} if self.options else {}),
        }

    def identity(self) -> dict[str, object]:
        return {"kind": "nvcodec", **self.settings(), "version": self.nvcodec_version, "metrics": METRICS_VERSION}

    def measure(self, clip: Clip, stream_path: Path, key: str) -> RDPoint:
        from .. import api  # the codec is optional for anchor-only runs

        settings = api.EncodeSettings(**self.settings())
        report = api.encode(clip.video, str(stream_path), settings, progress=None)
        file_bytes = stream_path.stat().st_size  # the whole file, whatever the report says
        video = clip.video
        extras: dict[str, object] = {"model_params": int(getattr(report, "num_params", 0))}
        if hasattr(api, "decode"):  # score the file with exactly the code that scores the anchors
            start = time.perf_counter()
            decoded = api.decode(str(stream_path), device=self.device).frames
            decode_seconds = time.perf_counter() - start
            scores = _score(clip, decoded)
            extras["reported"] = {
                "psnr": float(report.psnr),
                "decode_seconds": float(report.decode_seconds),
                "estimated_bytes": getattr(report, "estimated_bytes", None),
                "lambda": getattr(report, "lam", None),  # where training's rate control ended (None: no rate term)
            }
        else:
            decode_seconds = float(report.decode_seconds)
            scores = {"psnr": float(report.psnr), "y_psnr": float(report.y_psnr), "ms_ssim": float(report.ms_ssim)}
        return RDPoint(
            clip=clip.name,
            codec=self.codec,
            curve=self.curve,
            knob="bpp_target",
            knob_value=float(self.bpp),
            file_bytes=file_bytes,
            rate_bytes=file_bytes,
            bpp=bpp(file_bytes, video.width, video.height, video.num_frames),
            **scores,
            encode_seconds=float(report.encode_seconds),
            decode_seconds=decode_seconds,
            width=video.width,
            height=video.height,
            frames=video.num_frames,
            version=f"nvcodec {self.nvcodec_version}",
            rate_counted=RATE_NVCODEC,
            uncounted_bytes=None,
            stream=f"{stream_path.parent.name}/{stream_path.name}",
            key=key,
            settings={**self.settings(), **extras},
        )


Job = Union[AnchorJob, NvcodecJob]
