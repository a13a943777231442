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
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .bitstream import format as nvc_format
from .bitstream.container import NvcReader
from .devices import DECODE_DEVICE, resolve_device
from .errors import BitstreamError, StructureError, UsageError
from .families import backbone_class
from .fsutil import check_writable
from .io import (
    AudioTrack,
    Colour,
    FrameRange,
    Video,
    holds_audio,
    output_kind,
    write_frames,
)
from .metrics import bpp as bits_per_pixel
from .models.base import Backbone
from .render import build_backbone, coded_weights, render_frames
from .renderplan import RenderRequest, plan_render

ProgressFn = Callable[[int, int, float], None]  # frames done, frames in all, seconds so far


Source = str | Path | nvc_format.NvcFile | NvcReader  # a file on disk, or one already opened or read


def read_nvc(source: Source) -> nvc_format.NvcFile:
    """Read and validate a single-segment file (size checked before reading it into memory)."""
    if isinstance(source, nvc_format.NvcFile):
        return source
    reader = source if isinstance(source, NvcReader) else NvcReader(source)
    if reader.segmented:
        raise UsageError(
            f"{reader.path} holds {len(reader.segments)} segments: decode it, or read one with NvcReader.read_segment"
        )
    return reader.read_segment(0)


@dataclass(frozen=True)
class RenderPlan:
    model: Backbone  # rebuilt, weights loaded, render options set
    times: list[float]  # normalized times of the frames to render
    size: tuple[int, int]  # (height, width)
    fps: Fraction


def prepare(source: Source, request: RenderRequest, reference: list[np.ndarray] | None = None) -> RenderPlan:
    """read -> build -> plan render of a single-segment stream: everything before the first pixel.

    ``reference``: for a predicted segment on its own, the weights of the segment before it.
    """
    nvc = read_nvc(source)
    return _plan_for(build_backbone(nvc, reference), nvc, request)


def _plan_for(model: Backbone, nvc: nvc_format.NvcFile, request: RenderRequest) -> RenderPlan:
    times, size, fps = plan_render(nvc, request)
    model.set_render_options(**request.render_options)
    return RenderPlan(model, times, size, fps)


class SegmentModels:
    """Each segment's model; a predicted segment's rebuilt on the weights of the segment before it.

    The model of a predicted segment needs the weights (not the frames) of every segment back to
    the start of its chain: they are decoded in order, reading each segment once, and the last
    weights are kept, so that decoding a file segment after segment decodes each one once.
    """

    def __init__(self, reader: NvcReader, reference: list[np.ndarray] | None = None) -> None:
        self.reader = reader
        # (segment, its decoded weights); a predicted stream given on its own is segment 0 of its reader
        self._last: tuple[int, list[np.ndarray]] | None = None if reference is None else (-1, reference)
        self.first_decoded: int | None = None  # the first segment whose weights were decoded

    def _holds(self, index: int) -> bool:
        return self._last is not None and self._last[0] == index

    def model(self, index: int) -> Backbone:
        links = [(index, self.reader.read_segment(index))]
        while links[-1][1].predicted and links[-1][0] > 0 and not self._holds(links[-1][0] - 1):
            links.append((links[-1][0] - 1, self.reader.read_segment(links[-1][0] - 1)))
        reference = self._last[1] if self._holds(links[-1][0] - 1) else None
        for segment, nvc in reversed(links):
            try:
                model = build_backbone(nvc, reference)
            except BitstreamError as exc:
                raise type(exc)(f"segment {segment}: {exc}") from None
            reference = coded_weights(model)
        self._last = (index, reference)
        first = links[-1][0]
        self.first_decoded = first if self.first_decoded is None else min(first, self.first_decoded)
        return model


@dataclass(frozen=True)
class Piece:
    """The part of one segment a request needs, in the segment's own frame numbers."""

    segment: int
    request: RenderRequest


def plan_pieces(reader: NvcReader, request: RenderRequest) -> list[Piece]:
    """Which segments a request touches, and what to render from each; refused before any is read."""
    total = reader.header.num_frames
    whole = reader.complete()
    if request.frames is None and len(whole) < len(reader.segments):  # truncated: what is whole, from the start
        if not whole or whole[0] != 0:
            reader.read_segment(0)  # raises: the first segment is cut off
        request = replace(request, frames=(0, reader.segments[whole[-1]].stop_frame))
    start, stop = request.frames if request.frames is not None else (0, total)
    if start >= total:
        raise UsageError(f"--frames {start}:{stop}: the file has {total} frames (0..{total - 1})")
    stop = min(stop, total)
    touched = reader.overlapping(start, stop)
    if request.fps is not None and len(touched) > 1:
        raise UsageError(
            f"--fps renders between the frames of one segment; frames {start}:{stop} span "
            f"{len(touched)} segments (`nvc info` lists them): decode a range inside one"
        )
    pieces = []
    for index in touched:
        e = reader.segments[index]
        local = (max(start, e.first_frame) - e.first_frame, min(stop, e.stop_frame) - e.first_frame)
        pieces.append(Piece(index, replace(request, frames=local)))
    return pieces


def plan_output(source: Source, request: RenderRequest) -> tuple[tuple[int, int], Fraction]:
    """(height, width) and frame rate of what a request renders, refused where the family cannot (no torch)."""
    if isinstance(source, nvc_format.NvcFile):
        return plan_render(source, request)[1:]
    reader = source if isinstance(source, NvcReader) else NvcReader(source)
    first = plan_pieces(reader, request)[0]
    return plan_render(reader.read_segment(first.segment), first.request)[1:]


@dataclass
class _Rendering:
    """The requested frames as batches, segment after segment, and what the output needs to know."""

    batches: Iterator[np.ndarray]
    count: int
    size: tuple[int, int]  # (height, width)
    fps: Fraction
    reader: NvcReader | None  # None: a single stream already in memory
    segments: tuple[int, ...]  # the segments rendered
    models: SegmentModels | None = None  # which segments' weights were decoded (chains)
    rendered_by: list[Backbone] = field(default_factory=list)  # the models that rendered, as they are used

    def synthesized(self) -> int | None:
        """Frames the models made, the references of predicted frames included (None: no such family)."""
        counts = [m.frames_rendered for m in self.rendered_by if m.frames_rendered is not None]
        return sum(counts) if counts else None


def _render_source(
    source: Source, request: RenderRequest, device: torch.device, reference: list[np.ndarray] | None = None
) -> _Rendering:
    """One segment's model in memory at a time."""
    if isinstance(source, nvc_format.NvcFile):
        plan = prepare(source, request, reference)
        return _Rendering(
            render_frames(plan.model, plan.times, device, plan.size),
            len(plan.times),
            plan.size,
            plan.fps,
            None,
            (),
            rendered_by=[plan.model],
        )
    reader = source if isinstance(source, NvcReader) else NvcReader(source)
    pieces = plan_pieces(reader, request)
    times, size, fps = plan_render(reader.read_segment(pieces[0].segment), pieces[0].request)
    count = len(times) if len(pieces) == 1 else sum(p.request.frames[1] - p.request.frames[0] for p in pieces)
    models = SegmentModels(reader, reference)
    used: list[Backbone] = []

    def batches() -> Iterator[np.ndarray]:
        for piece in pieces:
            nvc = reader.read_segment(piece.segment)  # first: the reader keeps only the segment read last
            plan = _plan_for(models.model(piece.segment), nvc, piece.request)
            used.append(plan.model)
            yield from render_frames(plan.model, plan.times, device, plan.size)

    return _Rendering(batches(), count, size, fps, reader, tuple(p.segment for p in pieces), models, used)


def decode(
    source: Source,
    frames: FrameRange | None = None,
    device: str | torch.device = DECODE_DEVICE,
    request: RenderRequest | None = None,
    reference: list[np.ndarray] | None = None,
) -> Video:
    """Decode a file (or a frame range of it, or a resampling of it) into memory.

    ``reference``: for a predicted segment's stream on its own, the weights of the segment before it.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    rendering = _render_source(source, request or RenderRequest(frames=frames), device, reference)
    return Video(np.concatenate(list(rendering.batches)), rendering.fps)


@dataclass(frozen=True)
class Decoded:
    """What ``decode_to_file`` did."""

    frames: int
    segments: tuple[int, ...]  # the segments it read
    bytes_read: int | None  # of the .nvc file (None: it was already in memory)
    file_bytes: int | None
    audio: str  # "copied", "none", or why it was left out
    chain_from: int | None = None  # the first segment whose weights were decoded (before ``segments``: a chain)
    synthesized: int | None = None  # frames made, references of predicted frames included (None: no such family)


def decode_to_file(
    source: Source,
    output: str | Path,
    request: RenderRequest = RenderRequest(),
    device: str = DECODE_DEVICE,
    lossless: bool = False,
    progress: ProgressFn | None = None,
    audio: bool = True,
) -> Decoded:
    """Decode straight to a video file in bounded-memory batches (segment after segment).

    ``progress(frames_done, frames_total, seconds)`` is called after every batch. A carried
    audio track is copied into outputs that hold audio, cut to the decoded frames.
    """
    output_kind(output)
    check_writable(output)  # before any work
    r = _render_source(source, request, resolve_device(device))
    reader = r.reader
    header = source.header if reader is None else reader.header
    audio_track, audio_note = _audio_for(reader, request, output, header) if audio else (None, "left out (--no-audio)")
    colour = Colour(header.colour_primaries, header.transfer_characteristics)
    (height, width) = r.size
    write_frames(output, _reporting(r.batches, r.count, progress), width, height, r.fps, lossless, colour, audio_track)
    return Decoded(
        r.count,
        r.segments,
        None if reader is None else reader.bytes_read,
        None if reader is None else reader.file_bytes,
        audio_note,
        None if r.models is None else r.models.first_decoded,
        r.synthesized(),
    )


def _audio_for(
    reader: NvcReader | None, request: RenderRequest, output: str | Path, header: nvc_format.VideoHeader
) -> tuple[AudioTrack | None, str]:
    if not holds_audio(output):  # checked first: the audio is not even read
        return None, f"none written: {output_kind(output)} output holds no audio (.mkv and .mp4 do)"
    blob = None if reader is None else reader.audio()
    if blob is None:
        return None, "none"
    if request.fps is not None:
        return None, "left out: --fps changes the timing"
    fps = Fraction(header.fps_num, header.fps_den)
    start, stop = request.frames if request.frames is not None else (0, header.num_frames)
    end = float(stop / fps) if stop < header.num_frames else float("inf")
    return AudioTrack(blob, float(start / fps), end), "copied"


def _reporting(batches: Iterator[np.ndarray], total: int, progress: ProgressFn | None) -> Iterator[np.ndarray]:
    started, done = time.monotonic(), 0
    for batch in batches:
        yield batch
        done += len(batch)
        if progress is not None:
            progress(done, total, time.monotonic() - started)


def _family_facts(nvc: nvc_format.NvcFile) -> tuple[float | None, dict[str, float], set[int]]:
    """From the config alone (a model built on the meta device): the family's stated decoder cost per
    pixel, its parts where the family splits it (motion, residual, synthesis), and the indices of the
    tensors that code motion."""
    cls = backbone_class(nvc.arch.family, for_decoding=True)
    with torch.device("meta"):
        model = cls(cls.config_cls.from_json(nvc.arch.config))
        macs, split = model.macs_per_pixel(), model.macs_split()
        names = list(model.coded_tensors())
        motion = {names.index(name) for name in model.motion_tensors()}
    return None if macs is None else round(macs, 1), {k: round(v, 1) for k, v in split.items()}, motion


def _stream_summary(nvc: nvc_format.NvcFile, size: int) -> dict:
    """Architecture, per-tensor bits and totals of one single-segment stream of ``size`` bytes."""
    tensors = []
    for record, shape in zip(nvc.tensors, nvc.arch.shapes):
        c = record.coded
        tensors.append(
            {
                "index": record.index,
                "shape": list(shape),
                "axis": record.axis.name.lower(),
                "model": c.model_id.name.lower(),
                "symbols": [c.sym_min, c.sym_max],
                "table_bytes": c.table_bytes,
                "payload_bytes": c.payload_bytes,
                "step_bytes": 2 * len(record.steps),
                "bits_per_weight": round(
                    8 * (c.payload_bytes + c.table_bytes + 2 * len(record.steps)) / int(np.prod(shape)), 3
                ),
            }
        )
    h = nvc.header
    macs, macs_split, motion = _family_facts(nvc)
    return {
        "bytes": size,
        "bpp": bits_per_pixel(size, h.width, h.height, h.num_frames),
        "model": {
            "family": nvc.arch.family,
            "arch_version": nvc.arch.arch_version,
            "config": nvc.arch.config,
            "params": int(sum(np.prod(s) for s in nvc.arch.shapes)),
        },
        "tensors": tensors,
        "payload_bytes": sum(t["payload_bytes"] + t["table_bytes"] + t["step_bytes"] for t in tensors),
        "latent_bytes": sum(
            t["payload_bytes"] + t["table_bytes"] + t["step_bytes"] for t in tensors if t["model"] == "context"
        ),
        "motion_bytes": sum(
            t["payload_bytes"] + t["table_bytes"] + t["step_bytes"] for t in tensors if t["index"] in motion
        ),
        "decoder_macs_per_pixel": macs,
        "decoder_macs_split": macs_split,
        "weights_sha256": nvc.weights_sha256.hex() if nvc.weights_sha256 else None,
        "predicted": nvc.predicted,  # coded against the previous segment's weights (PRED)
        "residual_tensors": sum(r.residual for r in nvc.tensors),
    }


def _audio_summary(blob: bytes | None) -> dict | None:
    if blob is None:
        return None
    import io

    import av

    try:
        with av.open(io.BytesIO(blob)) as container:
            stream = container.streams.audio[0] if container.streams.audio else None
            packets = sum(1 for p in container.demux(stream) if p.size) if stream is not None else 0
            codec = stream.codec_context.name if stream is not None else "none"
    except av.FFmpegError as exc:  # the track came from a file: it may be anything
        raise StructureError(f"aUDI: not a readable Matroska audio track ({exc.__class__.__name__})") from None
    return {"bytes": len(blob), "codec": codec, "packets": packets}


def inspect(path: str | Path) -> dict:
    """Header, segments, architecture, per-tensor bits and totals of a file, as plain data.

    A single-segment file's model and tensors are at the top level; a segmented file lists
    each segment's summary under ``segments``.
    """
    reader = NvcReader(path)
    h = reader.header
    record = {
        "file": str(path),
        "bytes": reader.file_bytes,
        "format_version": reader.version,
        "video": {
            "width": h.width,
            "height": h.height,
            "frames": h.num_frames,
            "fps": f"{h.fps_num}/{h.fps_den}",
            "colour": {
                "primaries": h.colour_primaries,
                "transfer": h.transfer_characteristics,
                "matrix": h.matrix_coefficients,
                "full_range": h.full_range,
            },
        },
        "bpp": bits_per_pixel(reader.file_bytes, h.width, h.height, h.num_frames),
    }
    if not reader.segmented:
        nvc = reader.read_segment(0)
        return {
            **record,
            **_stream_summary(nvc, reader.file_bytes),
            "bpp": record["bpp"],
            "metadata": nvc.metadata,
            "skipped_chunks": list(nvc.skipped_chunks),
        }
    segments, start = [], 0
    for index in reader.complete():
        e = reader.segments[index]
        summary = _stream_summary(reader.read_segment(index), e.length)
        summary["bpp"] = bits_per_pixel(e.length, h.width, h.height, e.num_frames)
        start = start if summary["predicted"] else index
        # a decoder of this segment reads (and decodes the weights of) every segment from its chain's start
        chain = {"chain_start": start, "chain_bytes": sum(reader.segments[i].length for i in range(start, index + 1))}
        segments.append(
            {"index": index, "frames": [e.first_frame, e.stop_frame], "offset": e.offset, **summary, **chain}
        )
    missing = len(reader.segments) - len(segments)
    audio = _audio_summary(reader.audio())
    video_bytes = reader.file_bytes - (audio["bytes"] + nvc_format.CHUNK_OVERHEAD if audio else 0)
    return {
        **record,
        "segments": segments,
        "missing_segments": missing,
        "audio": audio,
        "video_bpp": bits_per_pixel(video_bytes, h.width, h.height, h.num_frames),
        "metadata": reader.metadata() if not missing else {},
    }
