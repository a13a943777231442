"""The rate-distortion benchmark driver: ``run_benchmark(config) -> BenchResults``.

Click-free on purpose, so the ``nvc bench`` command, ``benchmarks/rd_curve.py`` and tests all
call the same function. It plans every (clip, codec point) job, reuses cached points, measures
the rest (one progress line per point on stderr), computes Bjontegaard deltas of every curve
against every anchor curve and writes CSV, JSON, markdown and PNG into ``config.out_dir``.

A missing anchor codec or an unimportable ``nvcodec.api`` is recorded as skipped, not fatal;
a point that fails is recorded as failed and the run goes on (``BenchResults.failed`` says so).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..errors import NvcError, UsageError
from . import report
from .anchors import DEFAULT_CRFS, PIX_FMTS, SVTAV1_CRFS, SVTAV1_PRESET, PyAVAnchor, SvtAv1Anchor, anchor_class
from .bjontegaard import bd_psnr, bd_rate
from .cache import PointCache, point_key
from .clips import Clip, ClipSpec, load_clip
from .environment import environment
from .points import RATE_TRAINING_OFF, AnchorJob, Job, NvcodecJob, RDPoint


@dataclass(frozen=True)
class BenchConfig:
    """Everything a benchmark run depends on."""

    out_dir: str
    clips: tuple[ClipSpec, ...] = (ClipSpec(),)  # default: the sample clip, 320x180, frames 0:32
    anchors: tuple[str, ...] = ("x264", "x265", "svtav1")
    anchor_presets: tuple[str, ...] = ("medium",)  # x264 and x265
    crfs: tuple[float, ...] = DEFAULT_CRFS  # x264 and x265
    svtav1_presets: tuple[str, ...] = (SVTAV1_PRESET,)
    svtav1_crfs: tuple[float, ...] = SVTAV1_CRFS  # its own scale (1-63)
    pix_fmt: str = "yuv420p"
    threads: int = 1  # anchor encoder/decoder threads; 1 keeps the bytes machine-independent
    models: tuple[str, ...] = ()  # nvcodec families; empty = anchors only
    bpps: tuple[float, ...] = ()  # nvcodec bpp targets
    nvc_preset: str = "medium"
    seed: int = 0
    device: str = "cpu"
    epochs: int | None = None
    train_seconds: float | None = None  # training per nvcodec point (overrides the preset's epochs)
    train_clock: str = "wall"  # of train_seconds: "wall" or "cpu" (process CPU seconds)
    rate_training: tuple[bool, ...] = (True,)  # pipelines to measure: rate-aware (True), post-training (False)
    resume: bool = True  # reuse cached points
    plot: bool = True
    nvcodec_points: str | None = None  # an rd_points.csv whose nvcodec rows are reused instead of encoding
    model_options: dict = field(default_factory=dict)  # the families' encode options (ablations)


@dataclass(frozen=True)
class Skipped:
    """Something that did not produce points, and why."""

    what: str
    reason: str
    status: str = "skipped"  # "skipped" (unavailable here) or "failed" (an error while measuring)
    clip: str | None = None

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BDEntry:
    """Bjontegaard deltas of one curve (``test``) against one anchor curve on one clip."""

    clip: str
    test: str
    anchor: str
    bd_rate: float  # percent; NaN if undefined
    bd_psnr: float  # dB; NaN if undefined
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BenchResults:
    config: BenchConfig
    clips: tuple[dict[str, object], ...]
    points: tuple[RDPoint, ...]
    bd: tuple[BDEntry, ...]
    skipped: tuple[Skipped, ...]
    environment: dict[str, object]
    outputs: dict[str, str] = field(default_factory=dict)  # kind -> path of each written file

    @property
    def computed(self) -> int:
        """Points measured in this run (0 when everything came from the cache)."""
        return sum(not p.from_cache for p in self.points)

    @property
    def cached(self) -> int:
        return sum(p.from_cache for p in self.points)

    @property
    def failed(self) -> tuple[Skipped, ...]:
        return tuple(s for s in self.skipped if s.status == "failed")

    def config_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self.config)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _validate(config: BenchConfig) -> None:
    if config.pix_fmt not in PIX_FMTS:
        raise UsageError(f"pixel format {config.pix_fmt!r}: choose {' or '.join(PIX_FMTS)}")
    if config.anchors and not config.crfs:
        raise UsageError("anchors need at least one CRF")
    if not config.clips:
        raise UsageError("no clips to benchmark")
    if any(not b > 0 for b in config.bpps):
        raise UsageError("bpp targets must be positive")
    if config.models and not config.bpps:
        raise UsageError("nvcodec models need at least one bpp target (--bpp)")


def _anchor_jobs(config: BenchConfig) -> tuple[list[Job], list[Skipped]]:
    jobs: list[Job] = []
    skipped: list[Skipped] = []
    for name in dict.fromkeys(config.anchors):
        cls = anchor_class(name)
        reason = cls.unavailable_reason()
        if config.pix_fmt not in cls.pix_fmts:
            reason = f"{name} codes {' or '.join(cls.pix_fmts)} only, not {config.pix_fmt}"
        if reason:
            skipped.append(Skipped(name, reason))
            continue
        presets, crfs = _sweep(config, cls)
        for preset in dict.fromkeys(presets):
            for crf in dict.fromkeys(crfs):
                jobs.append(AnchorJob(cls(crf=crf, preset=preset, pix_fmt=config.pix_fmt, threads=config.threads)))
    return jobs, skipped


def _sweep(config: BenchConfig, cls: type[PyAVAnchor]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """An anchor's presets and CRFs: SVT-AV1 numbers both differently from x264/x265."""
    if cls is SvtAv1Anchor:
        return config.svtav1_presets, config.svtav1_crfs
    return config.anchor_presets, config.crfs


def _nvcodec_jobs(config: BenchConfig, nvcodec_version: str) -> tuple[list[Job], list[Skipped]]:
    if not config.models:
        return [], []
    try:
        from ..api import EncodeSettings, encode  # noqa: F401  (only checking the codec is there)
        from ..families import family_names
    except ImportError as exc:
        return [], [Skipped("nvcodec " + ", ".join(config.models), f"nvcodec.api is not importable ({exc})")]
    known = family_names()
    unknown = [m for m in config.models if m not in known]
    if unknown:
        raise UsageError(f"unknown nvcodec model(s) {', '.join(unknown)}; available: {', '.join(known)}")
    jobs: list[Job] = [
        NvcodecJob(
            m,
            b,
            config.nvc_preset,
            config.seed,
            config.device,
            config.epochs,
            nvcodec_version,
            config.train_seconds,
            config.train_clock,
            rate_aware,
            tuple(sorted(config.model_options.items())),
        )
        for m in dict.fromkeys(config.models)
        for rate_aware in config.rate_training
        for b in dict.fromkeys(config.bpps)
    ]
    return jobs, []


def _load_clips(specs: tuple[ClipSpec, ...]) -> list[Clip]:
    clips: list[Clip] = []
    for spec in specs:
        clip = load_clip(spec)
        taken = {c.name for c in clips}
        if clip.name in taken:  # same file twice (other range or size): keep names unique
            suffix = 2
            while f"{clip.name}#{suffix}" in taken:
                suffix += 1
            clip = dataclasses.replace(clip, name=f"{clip.name}#{suffix}")
        clips.append(clip)
    return clips


def _describe(job: Job) -> str:
    knob, value = job.knob
    return f"{job.curve} {'crf' if knob == 'crf' else 'bpp target'} {value:g}"


def _bd_entries(clip: str, points: list[RDPoint], pairs: list[tuple[str, str]]) -> list[BDEntry]:
    """BD deltas of each (test curve, reference curve) pair that has points on this clip."""
    curves: dict[str, list[RDPoint]] = {}
    for p in points:
        curves.setdefault(p.curve, []).append(p)
    entries = []
    for test, anchor in pairs:
        if test not in curves or anchor not in curves:
            continue
        ref, test_points = curves[anchor], curves[test]
        args = (
            [p.bpp for p in ref],
            [p.psnr for p in ref],
            [p.bpp for p in test_points],
            [p.psnr for p in test_points],
        )
        rate, quality = bd_rate(*args), bd_psnr(*args)
        notes = list(dict.fromkeys(n for n in (rate.reason, quality.reason) if n))
        entries.append(BDEntry(clip, test, anchor, rate.value, quality.value, "; ".join(notes)))
    return entries


def _bd_pairs(points: list[RDPoint]) -> list[tuple[str, str]]:
    """Every curve against every anchor curve, and each rate-aware nvcodec curve against the
    post-training curve of the same family and length (the ablation of rate-aware training)."""
    curves = list(dict.fromkeys(p.curve for p in points))
    anchors = list(dict.fromkeys(p.curve for p in points if p.codec != "nvcodec"))
    pairs = [(test, anchor) for test in curves for anchor in anchors if test != anchor]
    for curve in curves:
        post_training = curve + RATE_TRAINING_OFF
        if curve not in anchors and not curve.endswith(RATE_TRAINING_OFF) and post_training in curves:
            pairs.append((curve, post_training))
    return pairs


def _reused_points(config: BenchConfig, clip: Clip, log: Callable[[str], None]) -> list[RDPoint]:
    """The nvcodec rows of ``config.nvcodec_points`` measured on ``clip`` (same name and shape)."""
    if not config.nvcodec_points:
        return []
    rows = [p for p in report.read_csv(Path(config.nvcodec_points)) if p.codec == "nvcodec" and p.clip == clip.name]
    video = clip.video
    for p in rows:
        if (p.width, p.height, p.frames) != (video.width, video.height, video.num_frames):
            raise UsageError(
                f"{config.nvcodec_points}: {p.curve} was measured on {p.width}x{p.height}x{p.frames}, "
                f"not on {clip.name} as given ({video.width}x{video.height}x{video.num_frames})"
            )
    log(f"{clip.name}: {len(rows)} nvcodec points reused from {config.nvcodec_points}")
    return [replace(p, from_cache=True) for p in rows]


def nvcodec_version(env: dict[str, object]) -> str:
    """The codec build as cache identities name it: a new commit recomputes nvcodec points."""
    nvc = env["nvcodec"]
    return f"{nvc['version']} ({nvc['git_commit'] or 'no commit'})"


def measure_point(job: Job, clip: Clip, cache: PointCache, streams: Path, resume: bool = True) -> RDPoint:
    """The job's point on ``clip``: from the cache when it holds the same identity, else measured and stored."""
    key = point_key(clip.sha256, job.identity())
    label = f"{clip.name}-{job.curve}-{job.knob[0]}{job.knob[1]:g}"
    cached = cache.load(key, label) if resume else None
    if cached is not None:
        return RDPoint.from_dict(cached, clip=clip.name, from_cache=True)
    streams.mkdir(parents=True, exist_ok=True)
    point = job.measure(clip, streams / f"{clip.name}-{job.curve}-{key}{job.stream_suffix}".replace(" ", "_"), key)
    cache.store(key, label, point.to_dict())
    return point


def point_line(point: RDPoint) -> str:
    """One progress line's worth of a point."""
    return (
        f"{point.bpp:.4f} bpp, {point.psnr:.2f} dB RGB-PSNR, {point.y_psnr:.2f} dB Y-PSNR, "
        f"MS-SSIM {point.ms_ssim:.4f} (encode {point.encode_seconds:.2f} s, decode {point.decode_seconds:.2f} s)"
        + (" [cached]" if point.from_cache else "")
    )


def run_benchmark(config: BenchConfig, log: Callable[[str], None] | None = _stderr) -> BenchResults:
    """Measure every point (or reuse it from the cache), compute BD deltas, write all outputs."""
    log = log or (lambda line: None)
    _validate(config)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    streams, cache = out_dir / "streams", PointCache(out_dir / "cache")
    streams.mkdir(exist_ok=True)

    env = environment()
    anchor_jobs, skipped = _anchor_jobs(config)
    nvc_jobs, nvc_skipped = _nvcodec_jobs(config, nvcodec_version(env))
    skipped += nvc_skipped
    for s in skipped:
        log(f"skip {s.what}: {s.reason}")
    jobs = anchor_jobs + nvc_jobs
    clips = _load_clips(config.clips)

    points: list[RDPoint] = []
    bd: list[BDEntry] = []
    total, index = len(clips) * len(jobs), 0
    for clip in clips:
        clip_points: list[RDPoint] = []
        for job in jobs:
            index += 1
            prefix = f"[{index}/{total}] {clip.name} {_describe(job)}"
            try:
                point = measure_point(job, clip, cache, streams, config.resume)
            except NvcError as exc:
                if isinstance(exc, UsageError) and isinstance(job, AnchorJob):
                    raise
                skipped.append(Skipped(_describe(job), f"{type(exc).__name__}: {exc}", "failed", clip.name))
                log(f"{prefix}: FAILED: {exc}")
                continue
            clip_points.append(point)
            log(f"{prefix}: {point_line(point)}")
        clip_points += _reused_points(config, clip, log)
        points += clip_points
        bd += _bd_entries(clip.name, clip_points, _bd_pairs(clip_points))

    results = BenchResults(
        config=config,
        clips=tuple(c.describe() for c in clips),
        points=tuple(points),
        bd=tuple(bd),
        skipped=tuple(skipped),
        environment=env,
    )
    outputs = report.write_all(out_dir, results, plot=config.plot)
    log(f"{results.computed} points computed, {results.cached} from cache; results in {out_dir}")
    return dataclasses.replace(results, outputs=outputs)
