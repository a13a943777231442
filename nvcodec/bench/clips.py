"""Test clips: what the user asked for (``ClipSpec``) and the decoded frames (``Clip``).

Why a content hash: cached points are keyed by the exact frames that were coded, so renaming or
moving a file keeps its cache, while re-encoding it or changing the range or size does not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from ..io import FrameRange, Size, Video, read_video, sample_clip_path

DEFAULT_FRAMES: FrameRange = (0, 32)
DEFAULT_SIZE: Size = (320, 180)


@dataclass(frozen=True)
class ClipSpec:
    """A clip to benchmark: a file PyAV reads (or a PNG folder), a frame range and a size.

    ``path=None`` means the Big Buck Bunny sample clip.
    """

    path: str | None = None
    frames: FrameRange | None = DEFAULT_FRAMES
    resize: Size | None = DEFAULT_SIZE
    name: str | None = None  # label in tables and plots; defaults to the file stem


@dataclass(frozen=True)
class Clip:
    """A decoded clip ready to be coded by every codec."""

    name: str
    path: str
    frames: FrameRange | None
    resize: Size | None
    video: Video
    sha256: str  # of the decoded RGB frames, their shape and the frame rate

    def describe(self) -> dict[str, object]:
        v = self.video
        return {
            "name": self.name,
            "path": self.path,
            "frames": list(self.frames) if self.frames else None,
            "resize": list(self.resize) if self.resize else None,
            "width": v.width,
            "height": v.height,
            "num_frames": v.num_frames,
            "fps": str(v.fps),
            "sha256": self.sha256,
        }


def frames_digest(video: Video) -> str:
    digest = hashlib.sha256()
    digest.update(f"{video.frames.shape}|{video.fps}|".encode())
    digest.update(video.frames.tobytes())
    return digest.hexdigest()


def load_clip(spec: ClipSpec) -> Clip:
    """Read and hash the clip; the name defaults to the file stem."""
    path = Path(spec.path) if spec.path is not None else sample_clip_path()
    video = read_video(path, frames=spec.frames, resize=spec.resize)
    name = spec.name or path.stem
    return Clip(name, str(path), spec.frames, spec.resize, video, frames_digest(video))


def write_clip_with_tone(
    path: Path,
    frames: np.ndarray,
    fps: int,
    tone: np.ndarray,
    sample_rate: int,
    codec: str = "ffv1",
    pix_fmt: str = "bgr0",
    options: dict[str, str] | None = None,
) -> None:
    """A test input as a real one comes: uint8 RGB ``frames`` [T, H, W, 3] in ``codec`` plus a mono
    AAC track of ``tone`` (float32 samples in [-1, 1] at ``sample_rate``)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        video.options = options or {}
        audio = out.add_stream("aac", rate=sample_rate)
        audio.layout = "mono"
        for start in range(0, len(tone), 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = sample_rate, start
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
        for frame in frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(video.encode(None))
