"""Encoding an input of any length: scan -> split -> share the rate -> encode segments -> assemble -> verify.

* ``scan``      decode the input once for its frame times, thumbnails, colour and audio (source.py)
* ``split``     closed segments at scene cuts, ``--segment-seconds`` long at most (scenes.py)
* ``share``     one ``--bpp`` for the file, spent by each segment's difficulty; the training
                budget shared by pixels; the precision decided once, so every worker trains alike
* ``chain``     consecutive segments form warm chains (``--chain-length``, restarting at scene
                cuts): a segment's training starts from the model the previous segment's stream
                decodes to, so it need not learn the content afresh, and its weights are coded as
                differences from that model's (``--no-predict``: every stream decodable alone)
* ``encode``    each segment its own stream (encoder.py), read from the input by seeking:
                memory follows the segment length. Serially, in ``--jobs N`` processes, or one
                chain per rank under ``torchrun`` (torch.distributed over gloo): a worker takes
                whole chains, so the bytes do not depend on the number of workers
* ``assemble``  one file: index, audio, segments (bitstream/container.py), written atomically;
                its quality is each segment's as measured by decoding that very stream with the
                real decoder (every segment is read back from the file and must be those bytes)

Finished segments are kept in a work folder beside the output, so an interrupted encode
resumes where it stopped; the folder is removed once the file is written. A clip that is
one segment without audio is written as a plain single-stream file.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .bitstream import format as nvc_format
from .bitstream.container import write_segmented
from .encoder import encode, file_metadata, plan_model, video_header
from .errors import NvcError, RateError, UsageError
from .fsutil import atomic_path, check_writable, write_measured
from .metrics import bpp as bits_per_pixel
from .presets import PRESETS, format_seconds
from .scenes import Segment, chains, difficulty, scene_cuts, share_bits, split
from .settings import EncodeSettings, FileOptions, check_settings
from .source import SourceInfo, read_audio, read_frames, scan
from .versions import usable_cores

Say = Callable[[str], None]


@dataclass(frozen=True)
class SegmentJob:
    index: int
    source: SourceInfo
    segment: Segment
    settings: EncodeSettings  # this segment's target and budget
    path: str  # its stream, in the work folder
    threads: int | None
    warm_from: tuple[str, ...] = ()  # the streams of the chain's segments before this one (none: the chain's first)
    predict: bool = False  # code the weights against that stream's (a predicted segment)


@dataclass(frozen=True)
class SegmentResult:
    index: int
    report: dict  # the segment's EncodeReport, measured on its own decoded stream
    stream: bytes


@dataclass(frozen=True)
class FileReport:
    """Measured on the decoder's reconstruction of the file's segment streams (measured_quality)."""

    path: str
    model: str
    width: int
    height: int
    num_frames: int
    file_bytes: int
    bpp: float  # the whole file (audio included)
    video_bpp: float  # the file without its audio chunk: what --bpp aims at
    target_bpp: float | None
    psnr: float
    y_psnr: float
    ms_ssim: float
    audio_bytes: int
    encode_seconds: float
    decode_seconds: float
    workers: int
    notes: tuple[str, ...]
    segments: tuple[dict, ...]  # per segment: frames, bytes, bpp, target, PSNR (its own decode), seconds


# ------------------------------------------------------------------------------------ planning


@dataclass(frozen=True)
class FilePlan:
    source: SourceInfo
    segments: tuple[Segment, ...]
    settings: tuple[EncodeSettings, ...]  # per segment
    work: Path  # folder of finished segment streams
    notes: tuple[str, ...]
    chains: tuple[tuple[int, ...], ...]  # segment indices, each chain warm-started in order (scenes.chains)
    predict: bool = True  # a warm segment's weights coded against the previous segment's (FileOptions.predict)

    @property
    def plain(self) -> bool:
        """One segment and no audio: written as a plain single-stream (1.0) file."""
        return len(self.segments) == 1 and not self.source.has_audio


def container_overhead(source: SourceInfo, count: int, settings: EncodeSettings) -> int:
    """Bytes of a segmented file beyond its segment streams and audio: the file written around
    empty segments, with mETA as the final one holds it."""
    rng = np.random.default_rng(0)  # placeholder records as long, and as hard to pack, as real ones
    records = [
        {"frames": [int(a), int(a) + 100], "bytes": int(b), "bpp": float(r), "target_bpp": float(r), "psnr": float(q)}
        for a, b, r, q in zip(
            rng.integers(0, 10**6, count), rng.integers(0, 10**6, count), rng.random(count), 20 + 20 * rng.random(count)
        )
    ]
    meta = {
        **file_metadata(settings),
        "segments": records,
        "measured": {"psnr": 30.123456789012345, "ms_ssim": 0.9123456789012345},
    }
    header = video_header(source.width, source.height, source.num_frames, source.fps, source.colour)
    return len(write_segmented(header, [b""] * count, [1] * count, None, meta))


def plan_file(
    source: SourceInfo, thumbs: np.ndarray, output: Path, settings: EncodeSettings, options: FileOptions
) -> FilePlan:
    """Segments, each one's target and budget; the precision decided once for all of them."""
    segments = split(thumbs, float(source.fps), options.segment_seconds)
    links = chains(segments, set(scene_cuts(thumbs, float(source.fps))), options.chain_length)
    frame_pixels = source.width * source.height
    pixels = [s.num_frames * frame_pixels for s in segments]
    total_bits = settings.bpp * source.num_pixels
    if len(segments) > 1 or source.has_audio:
        total_bits -= 8 * container_overhead(source, len(segments), settings)
        if total_bits <= 0:
            raise RateError(
                f"--bpp {settings.bpp:g} cannot be met at {source.width}x{source.height}, "
                f"{source.num_frames} frames: the container of {len(segments)} segment(s) (index, "
                f"metadata) alone needs more; raise --bpp"
                + (", or leave the audio out (--no-audio)" if source.has_audio else "")
            )
    # Bits by difficulty, warm or cold: giving a chain's first segment 1.3 / 1.6 / 2 times its share measured
    # 28.86 / 28.84 / 28.93 dB against 28.51 dB for nerv's predicted chains (frames 0:300 of benchmarks/long_video.py's
    # 30-s clip, 0.05 bpp, 12 epochs), but 26.94 against 28.16 dB for its independent chains, and coordflow's
    # predicted chain lost its last segment (11 dB) at 1.6: no weight that is safe for every family.
    bits = share_bits(total_bits, pixels, [difficulty(thumbs, s) for s in segments])
    _check_rates(source, settings, segments, [b / p for b, p in zip(bits, pixels)])
    budgets: list[float | None] = [None] * len(segments)
    if settings.epochs is None:
        whole = settings.train_seconds or PRESETS[settings.preset].train_seconds(source.num_pixels)
        # By pixels, warm or cold: giving a chain's first segment 1.5 / 2 / 3 times the time per pixel of a warm one
        # measured 29.31 / 29.96 / 29.07 dB against 29.53 dB (frames 0:180 of benchmarks/long_video.py's 30-s clip,
        # nerv, 0.05 bpp, 60 CPU-s, two segments in one chain): no trend beyond the runs' spread of 0.4 dB.
        budgets = [whole * p / sum(pixels) for p in pixels]
    per_segment = tuple(replace(settings, bpp=b / p, train_seconds=t) for b, p, t in zip(bits, pixels, budgets))
    work = output.with_name(f".{output.name}.segments")
    return FilePlan(source, tuple(segments), per_segment, work, source.notes, tuple(links), options.predict)


def _check_rates(source: SourceInfo, settings: EncodeSettings, segments: list[Segment], rates: list[float]) -> None:
    """Every segment's target must be one its family can meet: refused now, not after hours of training."""
    from .compress.ratecontrol import RateControl
    from .families import backbone_class

    cls = backbone_class(settings.model)
    RateControl(settings.bpp, source.width, source.height, source.num_frames).size_model(cls)  # as the user asked
    for index, (segment, rate) in enumerate(zip(segments, rates)):
        try:
            RateControl(rate, source.width, source.height, segment.num_frames).size_model(cls)
        except RateError as exc:
            raise RateError(
                f"segment {index} (frames {segment.start}:{segment.stop}) gets {rate:.4g} bpp of the "
                f"file's {settings.bpp:g}: {exc}"
            ) from None


def decide_precision(plan: FilePlan, settings: EncodeSettings, jobs: int = 1) -> bool | None:
    """bf16 or not, measured once on the first segment, so that every worker trains the same way.

    With several ``--jobs`` on a GPU the trial runs in a process of its own: a CUDA context in the
    parent would hold GPU memory for the whole encode while the workers train.
    """
    if settings.amp is not None or len(plan.segments) == 1:  # one segment: its own encode decides
        return settings.amp
    from .devices import resolve_device
    from .families import declaration

    fixed = declaration(settings.model).train_overrides.get("amp")
    if fixed is not None:
        return fixed
    if jobs > 1 and resolve_device(settings.device).type == "cuda":
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            return pool.submit(_measure_precision, plan, settings).result()
    return _measure_precision(plan, settings)


def _measure_precision(plan: FilePlan, settings: EncodeSettings) -> bool:
    from .devices import resolve_device
    from .families import backbone_class
    from .train.trial import run_trial

    first = plan.segments[0]
    video = read_frames(plan.source, first.start, first.stop)
    cls = backbone_class(settings.model)
    model = cls(plan_model(cls, video, plan.settings[0].bpp))
    return run_trial(model, video.frames, resolve_device(settings.device), None).amp


def _fingerprint(plan: FilePlan) -> str:
    stat = plan.source.path.stat()
    record = {
        "input": str(plan.source.path.resolve()),
        "size": stat.st_size,
        "mtime": stat.st_mtime_ns,
        "segments": [asdict(s) for s in plan.segments],
        "chains": plan.chains,
        "predict": plan.predict,
        "settings": [asdict(s) for s in plan.settings],
        "first": plan.source.first_index,
        "resize": plan.source.resize,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def prepare_work(plan: FilePlan, resume: bool = True) -> None:
    """The work folder of this very plan: a stale one (other input or settings), or any with
    ``resume`` off, is cleared."""
    stamp = plan.work / "plan.sha256"
    fingerprint = _fingerprint(plan)
    stale = not resume or not stamp.is_file() or stamp.read_text() != fingerprint
    if plan.work.is_dir() and stale:
        shutil.rmtree(plan.work)
    plan.work.mkdir(exist_ok=True)
    stamp.write_text(fingerprint)


def jobs_for(plan: FilePlan, threads: int | None) -> list[list[SegmentJob]]:
    """One list of jobs per chain, in the chain's order."""
    path = [str(plan.work / f"segment_{i:05d}.nvc") for i in range(len(plan.segments))]
    return [
        [
            SegmentJob(
                i,
                plan.source,
                plan.segments[i],
                plan.settings[i],
                path[i],
                threads,
                tuple(path[j] for j in chain[:k]),
                plan.predict and k > 0,
            )
            for k, i in enumerate(chain)
        ]
        for chain in plan.chains
    ]


def deal_chains(plan: FilePlan, workers: int) -> list[list[int]]:
    """Chain indices per worker (torchrun ranks: each takes its share at the start): the longest
    chain first, each to the worker with the fewest frames so far (ties: the lower rank). Fixed by
    the plan, and the bytes do not depend on it (chains share nothing), only the wall time."""
    frames = [sum(plan.segments[i].num_frames for i in chain) for chain in plan.chains]
    shares: list[list[int]] = [[] for _ in range(workers)]
    load = [0] * workers
    for index in sorted(range(len(frames)), key=lambda i: (-frames[i], i)):
        worker = min(range(workers), key=lambda w: (load[w], w))
        shares[worker].append(index)
        load[worker] += frames[index]
    return [sorted(share) for share in shares]


# ------------------------------------------------------------------------------------ running


def encode_segment(job: SegmentJob, progress=None, say: Say | None = None) -> SegmentResult:
    """One segment, start to finish, in whatever process runs it (reads its own frames)."""
    if job.threads is not None:
        import torch

        torch.set_num_threads(job.threads)
    done = Path(job.path + ".json")
    if done.is_file() and Path(job.path).is_file():  # finished by an interrupted run
        return SegmentResult(job.index, json.loads(done.read_text()), Path(job.path).read_bytes())
    Path(job.path).parent.mkdir(parents=True, exist_ok=True)  # a torchrun node without the shared folder
    video = read_frames(job.source, job.segment.start, job.segment.stop)
    warm = [Path(p).read_bytes() for p in job.warm_from]
    try:
        report = encode(
            video, job.path, job.settings, progress=progress, log=say, metadata=False, warm=warm, predict=job.predict
        )
    except RateError as exc:
        raise RateError(f"segment {job.index} (frames {job.segment.start}:{job.segment.stop}): {exc}") from None
    record = asdict(report)
    with atomic_path(done) as tmp:
        tmp.write_text(json.dumps(record))
    return SegmentResult(job.index, record, Path(job.path).read_bytes())


def encode_chain(jobs: list[SegmentJob]) -> list[SegmentResult]:
    """A chain's segments in order, each starting from the one before (a worker's unit of work)."""
    return [encode_segment(job) for job in jobs]


def _run_serial(chains: list[list[SegmentJob]], say: Say, progress) -> Iterator[SegmentResult]:
    for job in (job for chain in chains for job in chain):
        say(
            f"segment {job.index + 1}: frames {job.segment.start}:{job.segment.stop}, target {job.settings.bpp:.4f} bpp"
            + (", from the previous segment's model" if job.warm_from else "")
            + (", its weights coded against it" if job.predict else "")
        )
        yield encode_segment(job, progress, say)


def _workers(count: int, device: str) -> ProcessPoolExecutor | contextlib.nullcontext:
    """``count`` processes (spawned: a forked torch is not safe), or none for one; on GPUs each
    process takes a slot and trains on its own GPU while there are enough."""
    if count == 1:
        return contextlib.nullcontext()
    context = get_context("spawn")
    slots = context.Queue()
    for slot in range(count):
        slots.put(slot)
    return ProcessPoolExecutor(
        max_workers=count, mp_context=context, initializer=_bind_device, initargs=(slots, device)
    )


def _bind_device(slots, device: str) -> None:
    """A worker's GPU (``cuda`` then means it); nothing on the CPU. The settings, and so the
    bytes, do not change with it."""
    bind_device(device, slots.get())


def bind_device(device: str, slot: int) -> None:
    """Worker ``slot``'s GPU as the current CUDA device, when ``device`` resolves to CUDA."""
    from .devices import worker_device

    chosen = worker_device(device, slot)
    if chosen.startswith("cuda"):
        import torch

        torch.cuda.set_device(torch.device(chosen))


def _run_pool(chains: list[list[SegmentJob]], pool: ProcessPoolExecutor) -> Iterator[SegmentResult]:
    """Results chain by chain as they finish; the rest cancelled on an error or an interrupt."""
    futures = [pool.submit(encode_chain, chain) for chain in chains]
    try:
        for future in as_completed(futures):
            yield from future.result()
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def distributed_world() -> tuple[int, int, int] | None:
    """(rank, world size, local world size) when launched by torchrun with more than one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return None
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_WORLD_SIZE", world))


# ------------------------------------------------------------------------------------ the pipeline


def encode_file(
    input_path: str | os.PathLike,
    output: str | os.PathLike,
    settings: EncodeSettings = EncodeSettings(),
    options: FileOptions = FileOptions(),
    progress=None,
    log: Say | None = None,
) -> FileReport | None:
    """Encode an input of any length into one .nvc file; None on a torchrun rank other than 0."""
    say = log or (lambda _msg: None)
    check_settings(settings)
    if options.segment_seconds < 0:
        raise UsageError("--segment-seconds must be 0 (one segment) or positive")
    if options.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if options.chain_length < 1:
        raise UsageError("--chain-length must be at least 1")
    output = Path(output)
    check_writable(output)
    world = distributed_world()
    if world is not None:
        return _encode_distributed(input_path, output, settings, options, say, *world)
    started = time.monotonic()
    plan = _plan(input_path, output, settings, options, say)
    if plan.plain:
        return _encode_single(plan, output, settings, progress, say, started)
    workers = min(options.jobs, len(plan.chains))
    threads = options.threads or (max(1, usable_cores() // workers) if workers > 1 else None)
    if workers * (threads or 1) > usable_cores():
        say(
            f"note: {workers} jobs x {threads} threads is more than the {usable_cores()} cores: they will slow each other"
        )
    _announce(plan, settings, workers, threads, say)
    chain_jobs = jobs_for(plan, threads)
    with _workers(workers, settings.device) as pool:
        results = _run_serial(chain_jobs, say, progress) if pool is None else _run_pool(chain_jobs, pool)
        collected = _collect(results, len(plan.segments), say, started)
    return assemble(plan, collected, output, settings, started, workers)


def _plan(input_path, output: Path, settings: EncodeSettings, options: FileOptions, say: Say) -> FilePlan:
    """scan -> split -> share; for a segmented file also the precision and the work folder."""
    # a long input takes a while to scan: say so then (a short or a bad one is answered first; the sample
    # clip's 132 frames of 720p scan in about 0.5 s)
    notice = threading.Timer(3.0, say, [f"planning: reading {input_path} once (frame times, scene cuts, audio) ..."])
    notice.daemon = True
    notice.start()
    try:
        source, thumbs = scan(input_path, options.frames, options.resize)
    finally:
        notice.cancel()
    source = replace(source, has_audio=source.has_audio and options.audio)
    plan = plan_file(source, thumbs, output, settings, options)
    for note in plan.notes:
        say(f"note: {note}")
    if plan.plain:
        return plan
    if len(plan.segments) > 1 and settings.amp is None:
        say(
            f"planning: timing {settings.model}'s training steps on the first segment (one precision for every "
            "segment) ..."
        )
    amp = decide_precision(plan, settings, options.jobs)
    plan = replace(plan, settings=tuple(replace(s, amp=amp) for s in plan.settings))
    prepare_work(plan, settings.resume)
    return plan


def _announce(plan: FilePlan, settings: EncodeSettings, workers: int, threads: int | None, say: Say) -> None:
    lengths = [s.num_frames / float(plan.source.fps) for s in plan.segments]
    budget = (
        ""
        if settings.epochs is not None
        else f", {format_seconds(sum(s.train_seconds for s in plan.settings))} of training in all"
    )
    say(
        f"{len(plan.segments)} segment(s) of {min(lengths):.1f}-{max(lengths):.1f} s in {len(plan.chains)} chain(s), "
        f"{settings.bpp:g} bpp shared by difficulty{budget}; {workers} process(es)"
        + (f" x {threads} threads" if threads else "")
    )
    for number, chain in enumerate(plan.chains, 1):
        parts = [
            f"{plan.segments[i].start}:{plan.segments[i].stop} {plan.settings[i].bpp:.4f} bpp"
            + ("" if settings.epochs is not None else f" {format_seconds(plan.settings[i].train_seconds)}")
            for i in chain
        ]
        say(
            f"  chain {number} (segments {chain[0] + 1}-{chain[-1] + 1}; each from the one before"
            + (", its weights coded against it" if plan.predict and len(chain) > 1 else "")
            + "): "
            + ", ".join(parts)
        )


def _collect(results: Iterator[SegmentResult], count: int, say: Say, started: float) -> list[SegmentResult]:
    collected: list[SegmentResult] = []
    for result in results:
        collected.append(result)
        r = result.report
        elapsed = time.monotonic() - started
        say(
            f"segment {result.index + 1}/{count} done ({len(collected)}/{count}): {r['bpp']:.4f} bpp, "
            f"PSNR {r['psnr']:.2f} dB, {r['encode_seconds']:.1f} s; ETA "
            f"{format_seconds(elapsed * (count - len(collected)) / len(collected))}"
        )
    return sorted(collected, key=lambda r: r.index)


def _encode_single(
    plan: FilePlan, output: Path, settings: EncodeSettings, progress, say: Say, started: float
) -> FileReport:
    """One segment, no audio: a plain single-stream file, exactly as a short clip always was."""
    video = read_frames(plan.source, 0, plan.source.num_frames)
    report = encode(video, output, settings, progress=progress, log=say)
    record = asdict(report)
    return FileReport(
        path=str(output),
        model=report.model,
        width=report.width,
        height=report.height,
        num_frames=report.num_frames,
        file_bytes=report.file_bytes,
        bpp=report.bpp,
        video_bpp=report.bpp,
        target_bpp=report.target_bpp,
        psnr=report.psnr,
        y_psnr=report.y_psnr,
        ms_ssim=report.ms_ssim,
        audio_bytes=0,
        encode_seconds=time.monotonic() - started,
        decode_seconds=report.decode_seconds,
        workers=1,
        notes=plan.notes,
        segments=(record,),
    )


def assemble(
    plan: FilePlan, results: list[SegmentResult], output: Path, settings: EncodeSettings, started: float, workers: int
) -> FileReport:
    """Write the one file (atomically) with its measured quality in mETA (``measured_quality``)."""
    source = plan.source
    header = video_header(source.width, source.height, source.num_frames, source.fps, source.colour)
    audio = read_audio(source)
    streams = [r.stream for r in results]
    counts = [s.num_frames for s in plan.segments]
    # no timings in the file: it is the same bytes whoever encoded which segment
    per_segment = [
        {
            "frames": [s.start, s.stop],
            "bytes": len(r.stream),
            "bpp": r.report["bpp"],
            "target_bpp": r.report["target_bpp"],
            "psnr": r.report["psnr"],
        }
        for s, r in zip(plan.segments, results)
    ]
    quality: dict[str, float] = {}

    def measure(path: Path) -> dict:
        quality.update(measured_quality(path, results))
        return {"psnr": quality["psnr"], "ms_ssim": quality["ms_ssim"]}

    write_measured(
        output,
        lambda metadata: write_segmented(header, streams, counts, audio, metadata),
        {**file_metadata(settings), "segments": per_segment},
        measure,
    )
    size = output.stat().st_size
    audio_bytes = len(audio) + nvc_format.CHUNK_OVERHEAD if audio else 0
    shutil.rmtree(plan.work, ignore_errors=True)
    return FileReport(
        path=str(output),
        model=settings.model,
        width=source.width,
        height=source.height,
        num_frames=source.num_frames,
        file_bytes=size,
        bpp=bits_per_pixel(size, source.width, source.height, source.num_frames),
        video_bpp=bits_per_pixel(size - audio_bytes, source.width, source.height, source.num_frames),
        target_bpp=settings.bpp,
        psnr=quality["psnr"],
        y_psnr=quality["y_psnr"],
        ms_ssim=quality["ms_ssim"],
        audio_bytes=audio_bytes,
        encode_seconds=time.monotonic() - started,
        decode_seconds=sum(r.report["decode_seconds"] for r in results),
        workers=workers,
        notes=plan.notes,
        segments=tuple({**p, "encode_seconds": r.report["encode_seconds"]} for p, r in zip(per_segment, results)),
    )


def measured_quality(path: Path, results: list[SegmentResult]) -> dict[str, float]:
    """The file's quality: each segment's, frame-weighted, as measured when its stream was decoded
    with the real decoder (encoder.verify); first every segment is read back from ``path`` through
    the index (framing and CRCs checked) and must be, byte for byte, the stream that was measured."""
    from .bitstream.container import NvcReader

    reader = NvcReader(path)
    for index, result in enumerate(results):
        if reader.segment_bytes(index) != result.stream:
            raise NvcError(f"segment {index} of {path} is not the stream that was measured")
    frames = [e.num_frames for e in reader.segments]
    return {name: sum(r.report[name] * n for r, n in zip(results, frames)) / sum(frames) for name in METRICS}


METRICS = ("psnr", "y_psnr", "ms_ssim")


def _encode_distributed(
    input_path,
    output: Path,
    settings: EncodeSettings,
    options: FileOptions,
    say: Say,
    rank: int,
    world: int,
    local_world: int,
) -> FileReport | None:
    """One process per torchrun rank: rank 0 plans and writes, every rank encodes its share of the chains.

    Results are Python objects (plans, reports, streams) and travel over gloo whatever the
    training device: NCCL moves tensors between GPUs, refuses two ranks on one GPU, and has no
    use here. A rank trains on GPU LOCAL_RANK mod the GPU count, so more ranks than GPUs share them.
    """
    import torch.distributed as dist

    bind_device(settings.device, int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))
    try:
        started = time.monotonic()
        shared: list = [None]
        if rank == 0:
            plan = _plan(input_path, output, settings, options, say)
            threads = options.threads or max(1, usable_cores() // local_world)
            if not plan.plain:
                _announce(plan, settings, world, threads, say)
            shared = [(plan, threads)]
        dist.broadcast_object_list(shared, src=0)
        plan, threads = shared[0]
        if plan.plain:  # a plain file, as without torchrun
            return _encode_single(plan, output, settings, None, say, started) if rank == 0 else None
        chains = jobs_for(plan, threads)
        mine = [chains[index] for index in deal_chains(plan, world)[rank]]
        done = [result for chain in mine for result in encode_chain(chain)]
        gathered: list | None = [None] * world if rank == 0 else None
        dist.gather_object(done, gathered, dst=0)
        if rank != 0:
            return None
        results = sorted((r for part in gathered for r in part), key=lambda r: r.index)
        return assemble(plan, results, output, settings, started, world)
    finally:
        dist.destroy_process_group()
