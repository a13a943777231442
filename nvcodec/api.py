"""The Python API the CLI and the benchmarks call: encode(), decode(), inspect().

Every quality and rate figure ``encode`` reports is measured on what the real decoder
reconstructs from the file on disk, with bpp = 8 x file size / (W x H x frames).
"""

from __future__ import annotations

import datetime
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from . import __version__
from .bitstream import format as nvc_format
from .compress.codec import compress_tensors
from .compress.quantize import scale_steps
from .compress.ratecontrol import (
    MAX_BITS,
    MIN_BITS,
    expected_file_bytes,
    land_on_target,
    land_on_target_by_scale,
    param_budget,
)
from .errors import InputError, RateError, UsageError
from .fsutil import atomic_path, check_writable, remove_stale_temporaries, require_file
from .io import FrameRange, Video, output_kind, write_frames
from .metrics import bpp as bits_per_pixel
from .metrics import ms_ssim, psnr, y_psnr
from .models.base import ANY_SCALE, ANY_TIME, FRAMEWISE, Backbone
from .models.registry import available_models, backbone_class
from .render import build_backbone, render_frames

MAX_ENCODE_PARAMS = 20_000_000


@dataclass(frozen=True)
class EncodeSettings:
    model: str = "nerv"
    bpp: float = 0.1
    preset: str = "medium"  # a training time that fits the clip (train.presets)
    epochs: int | None = None  # train for this many epochs instead
    train_seconds: float | None = None  # or for this many seconds (overrides the preset)
    train_clock: str = "wall"  # clock of train_seconds: "wall", or "cpu" (process CPU time, for fair benchmarks)
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None  # None: bf16 autocast if it measures faster on this device
    prune: float = 0.10
    loss: str = "l2"  # or "fusion" (0.7 L1 + 0.3 (1 - SSIM))
    quant_bits: float | None = None  # fixed bit depth instead of landing on --bpp
    resume: bool = True  # keep a checkpoint beside the output and resume from it
    rate_training: bool = True  # train against the file's rate (D + lambda x R); False: quantize after training
    lam: float | None = None  # constant lambda (quality mode; --bpp then only sizes the model) instead of a target
    rate_options: dict = field(default_factory=dict)  # train.rate.RateSettings fields, for ablations
    objective_options: dict = field(default_factory=dict)  # the family objective's knobs, e.g. {"of_weight": 0.12}


@dataclass(frozen=True)
class EncodeReport:
    """Measured on the decoder's reconstruction of the written file."""

    path: str
    model: str
    num_params: int
    width: int
    height: int
    num_frames: int
    file_bytes: int
    bpp: float
    target_bpp: float | None  # None in constant-lambda mode
    quant_bits: float | None  # the searched bit depth; None when rate-aware training learned the steps
    psnr: float
    y_psnr: float
    ms_ssim: float
    train_seconds: float
    encode_seconds: float
    decode_seconds: float
    estimated_bytes: int | None = None  # rate-aware training's estimate of the file size, before writing it
    lam: float | None = None  # the lambda training ended with (rate-aware)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"--device {name!r}: use cpu, cuda or auto")
    return torch.device(name)


def _check_settings(settings: EncodeSettings, video: Video) -> type[Backbone]:
    from .train.presets import PRESETS

    cls = backbone_class(settings.model)
    if settings.preset not in PRESETS:
        raise UsageError(f"--preset {settings.preset!r}: use one of {', '.join(PRESETS)}")
    if not settings.bpp > 0:
        raise UsageError("--bpp must be positive")
    if settings.epochs is not None and settings.epochs < 1:
        raise UsageError("--epochs must be at least 1")
    if settings.train_seconds is not None:
        if not settings.train_seconds > 0:
            raise UsageError("--train-time must be positive")
        if settings.epochs is not None:
            raise UsageError("--epochs and --train-time: give one of them")
    if settings.train_clock not in ("wall", "cpu"):
        raise UsageError(f"train_clock {settings.train_clock!r}: use wall or cpu")
    if settings.loss not in ("l2", "fusion"):
        raise UsageError(f"--loss {settings.loss!r}: use l2 or fusion")
    if settings.loss == "fusion" and FRAMEWISE not in cls.capabilities:
        raise UsageError(f"--loss fusion needs whole frames (SSIM); {cls.name} trains on pixels: use --loss l2")
    if not 0 <= settings.prune < 1:
        raise UsageError("--prune must be in [0, 1)")
    if settings.quant_bits is not None and not MIN_BITS <= settings.quant_bits <= MAX_BITS:
        raise UsageError(f"--bits must be between {MIN_BITS:g} and {MAX_BITS:g}")
    if settings.lam is not None:
        if not settings.lam > 0:
            raise UsageError("--lambda must be positive")
        if not settings.rate_training or settings.quant_bits is not None:
            raise UsageError("--lambda prices bits during rate-aware training: drop --rate-training off and --bits")
    if settings.objective_options:
        from .train.objectives import check_objective_options  # encoder-only; the decoder path never gets here

        try:
            check_objective_options(cls.objective, dict(settings.objective_options))
        except ValueError as exc:
            raise UsageError(f"--model {cls.name}: {exc}") from None
    if video.num_frames < 1:
        raise InputError("the input has zero frames")
    return cls


def plan_model(cls: type[Backbone], video: Video, target_bpp: float):
    """Size the backbone for the target, or say why the target cannot be met."""
    target_bytes = target_bpp * video.num_pixels / 8
    smallest = cls.config_for_budget(video.height, video.width, video.num_frames, 0)
    smallest_bpp = bits_per_pixel(expected_file_bytes(cls.count_params(smallest)), video.width, video.height,
                                  video.num_frames)
    budget = param_budget(target_bytes)
    if budget < cls.count_params(smallest):
        raise RateError(
            f"--bpp {target_bpp:g} cannot be met: the smallest {cls.name} model costs about {smallest_bpp:.3g} bpp "
            f"on {video.num_frames} frames of {video.width}x{video.height}; raise --bpp or encode more frames "
            "(an INR's weights are paid once for all frames)"
        )
    if budget > MAX_ENCODE_PARAMS:
        raise RateError(
            f"--bpp {target_bpp:g} asks for about {budget / 1e6:.0f}M parameters, above the {MAX_ENCODE_PARAMS / 1e6:.0f}M "
            "this encoder trains; lower --bpp"
        )
    return cls.config_for_budget(video.height, video.width, video.num_frames, budget)


def _header(video: Video) -> nvc_format.VideoHeader:
    fps = Fraction(video.fps).limit_denominator(65535)
    return nvc_format.VideoHeader(video.width, video.height, video.num_frames, fps.numerator, fps.denominator)


def library_versions() -> dict[str, str]:
    """Versions of nvcodec and the native libraries it runs on (for --version and mETA)."""
    from importlib.metadata import version

    import av

    return {
        "nvcodec": __version__,
        "torch": torch.__version__,
        "constriction": version("constriction"),
        "av": av.__version__,
        "ffmpeg": getattr(av, "ffmpeg_version_info", "unknown"),
    }


@dataclass(frozen=True)
class TrainingLength:
    epochs: int  # with a budget, epochs : finetune_epochs only split it between the two stages
    finetune_epochs: int
    budget: float | None  # seconds of settings.train_clock, or None: run the epochs
    message: str  # what the user is told before training starts


def plan_length(settings: EncodeSettings, video: Video, trial) -> TrainingLength:
    """How long to train, and the sentence that says so (and how to change it) before training."""
    from .train.presets import FINETUNE_SHARE, PRESETS, format_seconds

    if settings.epochs is not None:
        finetune = max(1, settings.epochs // 5)
        expected = trial.epochs_seconds(settings.epochs + finetune)
        return TrainingLength(settings.epochs, finetune, None, (
            f"training: {settings.epochs}+{finetune} epochs, expected to take about {format_seconds(expected)} "
            f"({trial.step_seconds * 1e3:.1f} ms per step measured); --train-time SECONDS sets a duration instead"))
    train_share = round((1 - FINETUNE_SHARE) / FINETUNE_SHARE)
    if settings.train_seconds is not None:
        budget, why = settings.train_seconds, "as --train-time asks"
    else:
        preset = PRESETS[settings.preset]
        budget = preset.train_seconds(video.num_pixels)
        why = (f"--preset {preset.name}: {preset.describe()}; this clip is {video.num_pixels / 1e6:.2f} megapixels; "
               f"--train-time SECONDS or another --preset changes it")
    clock = "wall-clock" if settings.train_clock == "wall" else "process-CPU"
    return TrainingLength(train_share, 1, budget, f"training: {format_seconds(budget)} ({clock}), {why}")


def encode(
    video: Video,
    output: str | Path,
    settings: EncodeSettings = EncodeSettings(),
    progress: Callable | None = None,
    log: Callable[[str], None] | None = None,
) -> EncodeReport:
    """Fit, compress and write ``output``; then decode it and report what the decoder gives."""
    from .train.fit import CLOCKS, TrainConfig, fit  # the decoder path never imports training
    from .train.rate import RateSettings, RateTerm
    from .train.trial import run_trial

    say = log or (lambda _msg: None)
    cls = _check_settings(settings, video)
    device = resolve_device(settings.device)
    output = Path(output)
    check_writable(output)  # before training, not after it
    started = time.monotonic()
    clock_started = CLOCKS[settings.train_clock]()  # a time budget counts the set-up below too
    torch.manual_seed(settings.seed)
    rate_aware = settings.rate_training and settings.quant_bits is None
    config = plan_model(cls, video, settings.bpp)  # rate-aware or not: a larger start measured worse per step
    model = cls(config)
    num_params = cls.count_params(config)
    trial = run_trial(model, video.frames, device, cls.train_overrides.get("amp", settings.amp))  # a family may fix amp
    length = plan_length(settings, video, trial)
    train_cfg = TrainConfig(**{
        "epochs": length.epochs, "finetune_epochs": length.finetune_epochs,
        "prune_amount": 0.0 if rate_aware else settings.prune, "amp": trial.amp, "loss": settings.loss,
        "seed": settings.seed, **cls.train_overrides, "objective_options": dict(settings.objective_options),
        "time_budget": length.budget, "budget_clock": settings.train_clock,
    })
    aim = (f"lambda {settings.lam:g}" if settings.lam else f"{settings.bpp:g} bpp") + (
        ", rate-aware" if rate_aware else "")
    say(f"{cls.name}: {num_params} parameters for {aim}, on {device.type}{' (bf16 autocast)' if train_cfg.amp else ''}")
    say(length.message)
    shapes = tuple(tuple(t.shape) for t in model.coded_tensors().values())
    writer = _FileWriter(_header(video), nvc_format.ArchRecord(cls.name, cls.arch_version, config.to_json(), shapes),
                         {"encoder": library_versions(), "settings": asdict(settings), "created": _utc_now()})
    target_bytes = settings.bpp * video.num_pixels / 8
    rate = None
    if rate_aware:
        rate = RateTerm(model, RateSettings(
            num_pixels=video.num_pixels, fixed_bits=8 * writer.fixed_bytes(),
            target_bits=None if settings.lam else 8 * target_bytes, lam=settings.lam or RateSettings.lam,
            **settings.rate_options))
    checkpoint = output.with_name(output.name + ".ckpt.npz") if settings.resume else None
    for target in (output, output.with_name(output.name + ".ckpt.npz")):
        remove_stale_temporaries(target)  # a killed run's partial writes
    try:
        model = fit(model, video.frames, train_cfg, device, progress, checkpoint, rate, clock_started=clock_started)
    except KeyboardInterrupt:
        if checkpoint is not None and checkpoint.is_file():
            raise KeyboardInterrupt(f"interrupted; the same command resumes from {checkpoint}") from None
        raise KeyboardInterrupt("interrupted before the first checkpoint: nothing to resume") from None
    train_seconds = time.monotonic() - started

    estimated_bytes = None
    if rate is not None:
        tensors, learned = rate.export()
        bits = None

        def build(metadata: dict, scale: float) -> bytes:
            return writer.write(tensors, steps=scale_steps(tensors, learned, scale), metadata=metadata)

        scale = 1.0 if settings.lam else land_on_target_by_scale(lambda c: len(build(writer.metadata, c)), target_bytes)
        final_steps = scale_steps(tensors, learned, scale)
        rate.set_steps(final_steps)  # the estimate of the steps the file will carry
        with torch.no_grad():
            estimated_bytes = int(round(float(rate.bits()) / 8))
        write = lambda metadata: writer.write(tensors, steps=final_steps, metadata=metadata)  # noqa: E731
    else:
        coded = model.coded_tensors()
        names, tensors = list(coded), [t.detach().cpu().float().numpy() for t in coded.values()]

        def build_at(bits: float, metadata: dict) -> bytes:
            depths = [min(MAX_BITS, max(MIN_BITS, model.tensor_bits(name, bits))) for name in names]
            return writer.write(tensors, bits=depths, metadata=metadata)

        bits = settings.quant_bits or land_on_target(lambda b: len(build_at(b, writer.metadata)), target_bytes)
        write = lambda metadata: build_at(bits, metadata)  # noqa: E731

    with atomic_path(output) as tmp:  # the output appears once, complete, with its measured quality
        tmp.write_bytes(write(writer.metadata))
        first = decode(tmp, device=device)
        measured = {"psnr": psnr(video.frames, first.frames), "ms_ssim": ms_ssim(video.frames, first.frames)}
        # Rewrite with the measured quality in mETA (ancillary: it cannot change the decode) ...
        final_metadata = {**writer.metadata, "measured": measured}
        final_metadata.update({"quant_bits": bits} if bits is not None else
                              {"lambda": rate.controller.lam, "estimated_bytes": estimated_bytes})
        tmp.write_bytes(write(final_metadata))
    encode_seconds = time.monotonic() - started
    # ... and report what the decoder makes of the final file.
    decode_start = time.monotonic()
    final = decode(output, device=device)
    decode_seconds = time.monotonic() - decode_start
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    size = output.stat().st_size
    return EncodeReport(
        path=str(output), model=cls.name, num_params=num_params, width=video.width, height=video.height,
        num_frames=video.num_frames, file_bytes=size, bpp=bits_per_pixel(size, video.width, video.height, video.num_frames),
        target_bpp=None if settings.lam else settings.bpp, quant_bits=None if bits is None else round(bits, 3),
        psnr=psnr(video.frames, final.frames), y_psnr=y_psnr(video.frames, final.frames), ms_ssim=ms_ssim(video.frames, final.frames),
        train_seconds=train_seconds, encode_seconds=encode_seconds, decode_seconds=decode_seconds,
        estimated_bytes=estimated_bytes, lam=None if rate is None else rate.controller.lam,
    )


class _FileWriter:
    """Everything of the file but the tensors is fixed before training: write it around any tensors."""

    # mETA as the final rewrite will hold it, for the fixed-size estimate. The creation time is a
    # placeholder too: its digits change how well zstd packs mETA, and a resumed encode must
    # estimate (hence calibrate and train) exactly as the interrupted one did.
    PLACEHOLDERS = {"measured": {"psnr": 30.123456789012345, "ms_ssim": 0.9123456789012345},
                    "lambda": 0.012345678901234, "estimated_bytes": 12345, "created": "2000-01-01T00:00:00+00:00"}

    def __init__(self, header: nvc_format.VideoHeader, arch: nvc_format.ArchRecord, metadata: dict) -> None:
        self.header, self.arch, self.metadata = header, arch, metadata

    def write(self, tensors: list[np.ndarray], metadata: dict, bits: list[float] | None = None,
              steps: list[np.ndarray] | None = None) -> bytes:
        records, digest = compress_tensors(tensors, bits, steps)
        return nvc_format.write(nvc_format.NvcFile(self.header, self.arch, records, digest, metadata))

    def fixed_bytes(self) -> int:
        """Bytes of the file when every symbol is zero: all but the entropy-coded payloads."""
        zeros = [np.zeros(shape, np.float32) for shape in self.arch.shapes]
        return len(self.write(zeros, {**self.metadata, **self.PLACEHOLDERS}, bits=[8.0] * len(zeros)))


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def read_nvc(path: str | Path) -> nvc_format.NvcFile:
    """Read and validate a file (size checked before reading it into memory)."""
    path = require_file(path)
    size = path.stat().st_size
    if size > nvc_format.DEFAULT_LIMITS.max_file_bytes:
        raise nvc_format.LimitError(f"{path}: {size} bytes is above the decoder's limit")
    return nvc_format.read(path.read_bytes())


@dataclass(frozen=True)
class RenderRequest:
    """What to render from a file: a frame range, and optionally another size or frame rate."""

    frames: FrameRange | None = None
    size: tuple[int, int] | None = None  # (width, height)
    scale: float | None = None
    fps: Fraction | None = None
    # Backbone.set_render_options keywords (e.g. CoordFlow's segmentation, remove_layer, stabilize)
    render_options: dict = field(default_factory=dict)


def plan_render(nvc: nvc_format.NvcFile, cls: type[Backbone], request: RenderRequest) -> tuple[list[float], tuple[int, int], Fraction]:
    """Normalized times, output (height, width) and frame rate; refuse what the backbone cannot do."""
    h = nvc.header
    total = h.num_frames
    start, stop = request.frames if request.frames is not None else (0, total)
    if start >= total:
        raise UsageError(f"--frames {start}:{stop}: the file has {total} frames (0..{total - 1})")
    stop = min(stop, total)
    height, width = h.height, h.width
    for option in request.render_options:
        if option not in cls.render_option_names:
            able = [m for m in available_models() if option in backbone_class(m).render_option_names]
            raise UsageError(f"--{option.replace('_', '-')}: {cls.name} cannot do it; encode with "
                             f"{', '.join(able) or 'none in this build'}")
    if request.size is not None or request.scale is not None:
        if ANY_SCALE not in cls.capabilities:
            raise UsageError(
                f"--scale/--size: {cls.name} renders only its coded size ({h.width}x{h.height}); encode with a "
                f"pixel-wise model ({', '.join(models_with(ANY_SCALE)) or 'none in this build'}) to resample"
            )
        if request.size is not None:
            width, height = request.size
        else:
            if not request.scale > 0:
                raise UsageError("--scale must be positive")
            width, height = max(1, round(h.width * request.scale)), max(1, round(h.height * request.scale))
    fps_in = Fraction(h.fps_num, h.fps_den)
    last = max(total - 1, 1)
    if request.fps is None:
        return [i / last for i in range(start, stop)], (height, width), fps_in
    if ANY_TIME not in cls.capabilities:
        raise UsageError(f"--fps: {cls.name} cannot render between its frames; use one of "
                         f"{', '.join(models_with(ANY_TIME))}")
    if not request.fps > 0:
        raise UsageError("--fps must be positive")
    step = fps_in / request.fps  # input frames per output frame
    count = int((stop - 1 - start) / step) + 1
    return [float((start + k * step) / last) for k in range(count)], (height, width), Fraction(request.fps)


def models_with(capability: str) -> list[str]:
    return [m for m in available_models() if capability in backbone_class(m).capabilities]


def decode(path: str | Path, frames: FrameRange | None = None, device: str | torch.device = "cpu",
           request: RenderRequest | None = None) -> Video:
    """Decode a file (or a frame range of it, or a resampling of it) into memory."""
    nvc = read_nvc(path)
    model = build_backbone(nvc)
    request = request or RenderRequest(frames=frames)
    times, size, fps = plan_render(nvc, type(model), request)
    model.set_render_options(**request.render_options)
    device = resolve_device(device) if isinstance(device, str) else device
    return Video(np.concatenate(list(render_frames(model, times, device, size))), fps)


def decode_to_file(path: str | Path, output: str | Path, request: RenderRequest = RenderRequest(),
                   device: str = "cpu", lossless: bool = False,
                   progress: Callable[[int, int, float], None] | None = None) -> int:
    """Decode straight to a video file in bounded-memory batches; return the frame count.

    ``progress(frames_done, frames_total, seconds)`` is called after every batch.
    """
    output_kind(output)
    check_writable(output)
    nvc = read_nvc(path)
    model = build_backbone(nvc)
    times, (height, width), fps = plan_render(nvc, type(model), request)
    model.set_render_options(**request.render_options)
    batches = render_frames(model, times, resolve_device(device), (height, width))
    write_frames(output, _reporting(batches, len(times), progress), width, height, fps, lossless)
    return len(times)


def _reporting(batches: Iterator[np.ndarray], total: int, progress: Callable[[int, int, float], None] | None):
    started, done = time.monotonic(), 0
    for batch in batches:
        yield batch
        done += len(batch)
        if progress is not None:
            progress(done, total, time.monotonic() - started)


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
        "weights_sha256": nvc.weights_sha256.hex() if nvc.weights_sha256 else None,
        "metadata": nvc.metadata,
        "skipped_chunks": list(nvc.skipped_chunks),
    }
