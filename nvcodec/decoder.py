"""The decoder pipeline: read -> build -> plan render -> render -> write.

Each stage is one function, so a reader can follow a file from bytes to pixels:

* ``read_nvc``       the validated container (limits checked before anything is allocated)
* ``build_backbone`` registry name + JSON config -> the model, weights from the payload (render.py)
* ``plan_render``    which times and which size to render, refused where the family cannot (renderplan.py)
* ``render_frames``  uint8 frames in bounded batches (render.py)
* ``write_frames``   streamed to a video file or a PNG folder (io.py)

Imports nothing from ``nvcodec.train``: decoding never needs the encoder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .bitstream import format as nvc_format
from .errors import UsageError
from .families import backbone_class
from .fsutil import check_writable
from .io import FrameRange, Video, output_kind, write_frames
from .metrics import bpp as bits_per_pixel
from .models.base import Backbone
from .render import build_backbone, render_frames
from .renderplan import RenderRequest, plan_render

ProgressFn = Callable[[int, int, float], None]  # frames done, frames in all, seconds so far


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"--device {name!r}: use cpu, cuda or auto")
    return torch.device(name)



Source = str | Path | nvc_format.NvcFile  # a file on disk, or one already read


def read_nvc(source: Source) -> nvc_format.NvcFile:
    """Read and validate a file (size checked before reading it into memory); a parsed file passes through."""
    return source if isinstance(source, nvc_format.NvcFile) else nvc_format.read_file(source)


@dataclass(frozen=True)
class RenderPlan:
    model: Backbone  # rebuilt, weights loaded, render options set
    times: list[float]  # normalized times of the frames to render
    size: tuple[int, int]  # (height, width)
    fps: Fraction


def prepare(source: Source, request: RenderRequest) -> RenderPlan:
    """read -> build -> plan render: everything before the first pixel."""
    nvc = read_nvc(source)
    model = build_backbone(nvc)
    times, size, fps = plan_render(nvc, request)
    model.set_render_options(**request.render_options)
    return RenderPlan(model, times, size, fps)


def decode(source: Source, frames: FrameRange | None = None, device: str | torch.device = "cpu",
           request: RenderRequest | None = None) -> Video:
    """Decode a file (or a frame range of it, or a resampling of it) into memory."""
    plan = prepare(source, request or RenderRequest(frames=frames))
    device = resolve_device(device) if isinstance(device, str) else device
    return Video(np.concatenate(list(render_frames(plan.model, plan.times, device, plan.size))), plan.fps)


def decode_to_file(source: Source, output: str | Path, request: RenderRequest = RenderRequest(),
                   device: str = "cpu", lossless: bool = False, progress: ProgressFn | None = None) -> int:
    """Decode straight to a video file in bounded-memory batches; return the frame count.

    ``progress(frames_done, frames_total, seconds)`` is called after every batch.
    """
    output_kind(output)
    check_writable(output)  # before any work
    plan = prepare(source, request)
    height, width = plan.size
    batches = render_frames(plan.model, plan.times, resolve_device(device), plan.size)
    write_frames(output, _reporting(batches, len(plan.times), progress), width, height, plan.fps, lossless)
    return len(plan.times)


def _reporting(batches: Iterator[np.ndarray], total: int, progress: ProgressFn | None) -> Iterator[np.ndarray]:
    started, done = time.monotonic(), 0
    for batch in batches:
        yield batch
        done += len(batch)
        if progress is not None:
            progress(done, total, time.monotonic() - started)


def _macs_per_pixel(nvc: nvc_format.NvcFile) -> float | None:
    """The family's stated decoder cost, from the config alone (a model built on the meta device)."""
    cls = backbone_class(nvc.arch.family, for_decoding=True)
    with torch.device("meta"):
        macs = cls(cls.config_cls.from_json(nvc.arch.config)).macs_per_pixel()
    return None if macs is None else round(macs, 1)


def inspect(path: str | Path) -> dict:
    """Header, architecture, per-tensor bits and totals of a file, as plain data."""
    nvc = read_nvc(path)
    size = Path(path).stat().st_size
    h = nvc.header
    tensors = []
    for record, shape in zip(nvc.tensors, nvc.arch.shapes):
        c = record.coded
        tensors.append({
            "index": record.index, "shape": list(shape), "axis": record.axis.name.lower(),
            "model": c.model_id.name.lower(), "symbols": [c.sym_min, c.sym_max],
            "table_bytes": c.table_bytes, "payload_bytes": c.payload_bytes, "step_bytes": 2 * len(record.steps),
            "bits_per_weight": round(8 * (c.payload_bytes + c.table_bytes + 2 * len(record.steps)) / int(np.prod(shape)), 3),
        })
    return {
        "file": str(path), "bytes": size, "format_version": f"{nvc_format.VERSION_MAJOR}.{nvc_format.VERSION_MINOR}",
        "video": {"width": h.width, "height": h.height, "frames": h.num_frames, "fps": f"{h.fps_num}/{h.fps_den}"},
        "bpp": bits_per_pixel(size, h.width, h.height, h.num_frames),
        "model": {"family": nvc.arch.family, "arch_version": nvc.arch.arch_version, "config": nvc.arch.config,
                  "params": int(sum(np.prod(s) for s in nvc.arch.shapes))},
        "tensors": tensors,
        "payload_bytes": sum(t["payload_bytes"] + t["table_bytes"] + t["step_bytes"] for t in tensors),
        "latent_bytes": sum(t["payload_bytes"] + t["table_bytes"] + t["step_bytes"] for t in tensors
                            if t["model"] == "context"),
        "decoder_macs_per_pixel": _macs_per_pixel(nvc),
        "weights_sha256": nvc.weights_sha256.hex() if nvc.weights_sha256 else None,
        "metadata": nvc.metadata,
        "skipped_chunks": list(nvc.skipped_chunks),
    }
