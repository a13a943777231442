"""The encoder pipeline: plan -> fit -> code -> write -> verify by decoding.

* ``plan``    check the settings, size the model for the target (``RateControl``), time a few
              steps (precision, duration), fix everything of the file but its tensors
* ``fit``     overfit the model (train/fit.py): resumable, against the file's rate if rate-aware
* ``code``    the final steps (or bit depth) whose real file lands on the target
* ``write``   atomically, with the quality measured by decoding that very file in mETA
* ``verify``  decode the written file again and report what the decoder gives

Every quality and rate figure the report holds is measured on what the real decoder
reconstructs from the file on disk, with bpp = 8 x file size / (W x H x frames).
"""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .bitstream import format as nvc_format
from .bitstream.tensors import ContextCodec, compress_tensors
from .compress.quantize import scale_steps
from .compress.ratecontrol import MAX_BITS, MIN_BITS, PLAIN_ROUNDING, RateControl
from .decoder import decode
from .devices import DECODE_DEVICE, reproducible, resolve_device
from .errors import InputError
from .families import backbone_class, configured
from .fsutil import atomic_path, check_writable, remove_stale_temporaries, write_measured
from .io import Colour, Video
from .metrics import bpp as bits_per_pixel
from .metrics import ms_ssim, psnr, y_psnr
from .models.base import Backbone
from .presets import FINETUNE_SHARE, PRESETS, format_seconds
from .render import build_backbone, coded_weights
from .settings import EncodeSettings, check_settings
from .train.fit import CLOCKS, Progress, TrainConfig, fit
from .train.rate import RateSettings, RateTerm
from .train.trial import Trial, run_trial
from .versions import library_versions


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


def plan_model(cls: type[Backbone], video: Video, target_bpp: float):
    """Size the model for the target, or say why the target cannot be met."""
    return RateControl(target_bpp, video.width, video.height, video.num_frames).size_model(cls)


def warm_started(cls: type[Backbone], chain: Sequence[bytes], video: Video) -> Backbone | None:
    """The previous segment's decoded model, given this segment's geometry: a chain's warm start.

    ``chain``: the streams of the chain's segments before this one, in order (a predicted one
    decodes only on the weights of the one before it). The weights are the ones a decoder gets,
    so resuming, or encoding the chain on another worker, starts from the same point. None (the
    segment starts cold) when the family or a tensor's shape differs (e.g. per-frame embeddings
    of another frame count).
    """
    reference = None
    for stream in chain:
        prior = build_backbone(nvc_format.read(stream), reference)
        reference = coded_weights(prior)
    if type(prior) is not cls:
        return None
    model = cls(replace(prior.config, height=video.height, width=video.width, num_frames=video.num_frames))
    theirs, mine = prior.coded_tensors(), model.coded_tensors()
    if [tuple(t.shape) for t in theirs.values()] != [tuple(t.shape) for t in mine.values()]:
        return None
    model.load_state_dict(theirs, strict=False)
    return model


def file_metadata(settings: EncodeSettings) -> dict:
    """mETA as written before the measured quality is known."""
    return {"encoder": library_versions(), "settings": asdict(settings), "created": _utc_now()}


def video_header(width: int, height: int, num_frames: int, fps: Fraction, colour: Colour) -> nvc_format.VideoHeader:
    """NHDR of what is coded (the rate as a fraction of 16-bit terms)."""
    rate = Fraction(fps).limit_denominator(65535)
    return nvc_format.VideoHeader(
        width,
        height,
        num_frames,
        rate.numerator,
        rate.denominator,
        colour.primaries,
        colour.transfer,
        colour.matrix,
        colour.full_range,
    )


@dataclass(frozen=True)
class TrainingLength:
    epochs: int  # with a budget, epochs : finetune_epochs only split it between the two stages
    finetune_epochs: int
    budget: float | None  # seconds of settings.train_clock, or None: run the epochs
    message: str  # what the user is told before training starts


def plan_length(settings: EncodeSettings, video: Video, trial: Trial, finishing: float) -> TrainingLength:
    """How long to train, and the sentence that says so (and how to change it) before training."""
    if settings.epochs is not None:
        finetune = max(1, settings.epochs // 5)
        expected = trial.epochs_seconds(settings.epochs + finetune)
        return TrainingLength(
            settings.epochs,
            finetune,
            None,
            (
                f"training: {settings.epochs}+{finetune} epochs, expected to take about {format_seconds(expected)} "
                f"({trial.step_seconds * 1e3:.1f} ms per step measured), {_then(finishing)}; "
                "--train-time SECONDS sets a duration instead"
            ),
        )
    train_share = round((1 - FINETUNE_SHARE) / FINETUNE_SHARE)
    if settings.train_seconds is not None:
        budget, why = settings.train_seconds, "as --train-time asks"
    else:
        preset = PRESETS[settings.preset]
        budget = preset.train_seconds(video.num_pixels)
        why = (
            f"--preset {preset.name}: {preset.describe()}; this clip is {video.num_pixels / 1e6:.2f} megapixels; "
            f"--train-time SECONDS or another --preset changes it"
        )
    clock = "wall-clock" if settings.train_clock == "wall" else "process-CPU"
    return TrainingLength(
        train_share, 1, budget, f"training: {format_seconds(budget)} ({clock}), {_then(finishing)}; {why}"
    )


def _then(finishing: float) -> str:
    return f"then about {format_seconds(finishing)} to code, write and check the file"


@dataclass
class EncodePlan:
    """Everything fixed before training starts."""

    settings: EncodeSettings
    family: type[Backbone]
    model: Backbone
    device: torch.device
    output: Path
    checkpoint: Path | None
    train: TrainConfig
    writer: "_FileWriter"
    rate_control: RateControl
    rate: RateTerm | None  # rate-aware training's rate term; None: quantize after training
    started: float  # time.monotonic() at the start
    clock_started: float  # the budget clock at the start (a time budget pays for the set-up too)
    finishing_seconds: float = 0.0  # the trial's estimate of what follows training (for the ETA)


@dataclass
class CodedFile:
    """The trained model as a file, but for its measured-quality metadata."""

    write: Callable[[dict], bytes]  # metadata -> the file's bytes
    quant_bits: float | None  # the bit depth searched (post-training quantization)
    estimated_bytes: int | None  # rate-aware training's estimate of the file size
    train_seconds: float


def encode(
    video: Video,
    output: str | Path,
    settings: EncodeSettings = EncodeSettings(),
    progress: Callable[[Progress], None] | None = None,
    log: Callable[[str], None] | None = None,
    metadata: bool = True,
    warm: Sequence[bytes] = (),
    predict: bool = False,
) -> EncodeReport:
    """Fit, compress and write ``output``; then decode it and report what the decoder gives.

    ``metadata=False`` leaves out the mETA chunk (a segment of a longer file: the file has one).
    ``warm``: the streams of the chain's segments before this one, whose last decoded model
    training starts from (``warm_started``). ``predict``: code the weights as differences from
    that model's (a predicted segment, decodable only after the segment before it).
    """
    say = log or (lambda _msg: None)
    plan = plan_encode(video, output, settings, say, metadata, warm, predict)
    model = fit_model(plan, video, progress, say)
    coded = code(plan, model)
    write(plan, coded, video)
    return verify(plan, coded, video)


def plan_encode(
    video: Video,
    output: str | Path,
    settings: EncodeSettings,
    say: Callable[[str], None],
    metadata: bool = True,
    warm: Sequence[bytes] = (),
    predict: bool = False,
) -> EncodePlan:
    family = check_settings(settings)
    if video.num_frames < 1:
        raise InputError("the input has zero frames")
    cls = backbone_class(settings.model)
    device = resolve_device(settings.device)
    reproducible(device)  # two encodes on one GPU give the same bytes
    output = Path(output)
    check_writable(output)  # before training, not after it
    started, clock_started = time.monotonic(), CLOCKS[settings.train_clock]()
    torch.manual_seed(settings.seed)
    rate_aware = settings.rate_training and settings.quant_bits is None
    rate_control = RateControl(settings.bpp, video.width, video.height, video.num_frames)
    config = rate_control.size_model(cls)  # rate-aware or not: a larger start measured worse per step
    config = configured(family, config, settings.objective_options)  # e.g. mcgrid's --gop
    model = warm_started(cls, warm, video) if warm else None
    reference = None
    if model is not None:
        config = model.config
        reference = coded_weights(model) if predict else None
        say(
            f"{cls.name}: starting from the previous segment's model (a warm chain)"
            + ("; its weights coded as differences from that model's" if predict else "")
        )
    else:
        model = cls(config)
    say(f"{cls.name}: timing a few training steps on {device.type} (precision, speed) ...")
    trial = run_trial(
        model, video.frames, device, family.train_overrides.get("amp", settings.amp)
    )  # a family may fix amp
    finishing = trial.finishing_seconds(decodes=2 if metadata else 1)  # a segment's file is checked once
    length = plan_length(settings, video, trial, finishing)
    train_cfg = TrainConfig(
        **{
            "epochs": length.epochs,
            "finetune_epochs": length.finetune_epochs,
            "prune_amount": 0.0 if rate_aware else settings.prune,
            "amp": trial.amp,
            "loss": settings.loss,
            "seed": settings.seed,
            **family.train_overrides,
            "objective_options": dict(settings.objective_options),
            "train_seconds": length.budget,
            "train_clock": settings.train_clock,
            "checkpoint_seconds": settings.checkpoint_seconds,
        }
    )
    aim = (f"lambda {settings.lam:g}" if settings.lam else f"{settings.bpp:g} bpp") + (
        ", rate-aware" if rate_aware else ""
    )
    latents = cls.count_params(config) - cls.network_params(config)
    say(
        f"{cls.name}: {cls.network_params(config)} parameters{f' and {latents} latents' if latents else ''} for {aim}, "
        f"on {device.type}"
        f"{' (bf16 autocast)' if train_cfg.amp else ''}"
    )
    say(length.message)
    shapes = tuple(tuple(t.shape) for t in model.coded_tensors().values())
    writer = _FileWriter(
        video_header(video.width, video.height, video.num_frames, video.fps, video.colour),
        nvc_format.ArchRecord(cls.name, cls.arch_version, config.to_json(), shapes),
        file_metadata(settings) if metadata else None,
        model.context_codec(),
        reference,
    )
    rate = None
    if rate_aware:
        options = {**family.rate_overrides, **settings.rate_options} | ({"lam": settings.lam} if settings.lam else {})
        rate = RateTerm(
            model,
            RateSettings(
                num_pixels=video.num_pixels,
                fixed_bits=8 * writer.fixed_bytes(),
                target_bits=None if settings.lam else 8 * rate_control.target_bytes,
                **options,
            ),
            None if reference is None else dict(zip(model.coded_tensors(), map(torch.from_numpy, reference))),
        )
    checkpoint_path = output.with_name(output.name + ".ckpt.npz")
    for target in (output, checkpoint_path):
        remove_stale_temporaries(target)  # a killed run's partial writes
    return EncodePlan(
        settings,
        cls,
        model,
        device,
        output,
        checkpoint_path if settings.resume else None,
        train_cfg,
        writer,
        rate_control,
        rate,
        started,
        clock_started,
        finishing,
    )


def fit_model(
    plan: EncodePlan,
    video: Video,
    progress: Callable[[Progress], None] | None,
    say: Callable[[str], None] | None = None,
) -> Backbone:
    try:
        return fit(
            plan.model,
            video.frames,
            plan.train,
            plan.device,
            progress,
            plan.checkpoint,
            plan.rate,
            clock_started=plan.clock_started,
            say=say,
            finishing_seconds=plan.finishing_seconds,
        )
    except KeyboardInterrupt:
        if plan.checkpoint is not None and plan.checkpoint.is_file():
            raise KeyboardInterrupt(f"interrupted; the same command resumes from {plan.checkpoint}") from None
        raise KeyboardInterrupt("interrupted before the first checkpoint: nothing to resume") from None


def code(plan: EncodePlan, model: Backbone) -> CodedFile:
    """The steps (or bit depth) of the file, landed on the target with the real coder."""
    train_seconds = time.monotonic() - plan.started
    writer, rate, settings = plan.writer, plan.rate, plan.settings
    if rate is not None:
        tensors, learned = rate.export()

        def size_at_factor(factor: float) -> int:
            return len(writer.write(tensors, steps=scale_steps(tensors, learned, factor), metadata=writer.metadata))

        if rate.keeps_steps and not settings.lam:
            tensors = _land_latents(plan, tensors, learned)
        factor = 1.0 if settings.lam or rate.keeps_steps else plan.rate_control.step_factor(size_at_factor)
        final_steps = scale_steps(tensors, learned, factor)
        rate.set_steps(final_steps)  # the estimate of the steps the file will carry
        estimated_bytes = int(round(rate.file_bits() / 8))
        return CodedFile(
            lambda metadata: writer.write(tensors, steps=final_steps, metadata=metadata),
            None,
            estimated_bytes,
            train_seconds,
        )
    coded = model.coded_tensors()
    names, tensors = list(coded), [t.detach().cpu().float().numpy() for t in coded.values()]

    def write_at(bits: float, metadata: dict) -> bytes:
        depths = [min(MAX_BITS, max(MIN_BITS, model.tensor_bits(name, bits))) for name in names]
        return writer.write(tensors, bits=depths, metadata=metadata)

    bits = settings.quant_bits or plan.rate_control.bit_depth(lambda b: len(write_at(b, writer.metadata)))
    return CodedFile(lambda metadata: write_at(bits, metadata), bits, None, train_seconds)


def _land_latents(plan: EncodePlan, tensors: list[np.ndarray], steps: list[np.ndarray]) -> list[np.ndarray]:
    """A file of mostly context-coded latents that trained past its target lands on it by a dead
    zone on the latents (the smallest ones coded as 0), searched with the real coder; the model's
    latents get the same zone, so that the rate estimate and the reported lambda describe the file.

    Lambda steers the latents' rate slowly (they move a bounded step per update), so training
    alone lands anywhere within about 2x of the target; zeroing the latents that barely round
    away from 0 costs the least distortion per bit saved.
    """
    model, writer = plan.model, plan.writer
    # not motion: a vector of a quarter pixel is as useful as a long one (zoned, an mcgrid file lost 8 dB)
    zoned_names = [name for name in model.context_coded() if name not in model.motion_tensors()]
    coded = {i for i, name in enumerate(model.coded_tensors()) if name in zoned_names}

    def zoned(threshold: float) -> list[np.ndarray]:
        return [np.where(np.abs(t) < threshold, np.float32(0), t) if i in coded else t for i, t in enumerate(tensors)]

    largest = max(float(np.abs(tensors[i]).max(initial=0.0)) for i in coded) + 1.0
    threshold = plan.rate_control.latent_dead_zone(
        lambda x: len(writer.write(zoned(x), steps=steps, metadata=writer.metadata)), largest
    )
    if threshold == PLAIN_ROUNDING:
        return tensors
    with torch.no_grad():
        for name in zoned_names:
            param = model.get_parameter(name)
            param.masked_fill_(param.abs() < threshold, 0.0)
    return zoned(threshold)


def write(plan: EncodePlan, coded: CodedFile, video: Video) -> None:
    """The output appears once, complete, with the quality measured by decoding it in mETA."""
    if plan.writer.metadata is None:  # a segment of a longer file: the file's mETA says it
        with atomic_path(plan.output) as tmp:
            tmp.write_bytes(coded.write(None))
        return
    how = (
        {"quant_bits": coded.quant_bits}
        if coded.quant_bits is not None
        else {"lambda": plan.rate.controller.lam, "estimated_bytes": coded.estimated_bytes}
    )

    def measure(path: Path) -> dict:
        # what `nvc decode` gives by default, not the training device's
        decoded = decode(path, device=DECODE_DEVICE, reference=plan.writer.reference)
        return {"psnr": psnr(video.frames, decoded.frames), "ms_ssim": ms_ssim(video.frames, decoded.frames)}

    write_measured(plan.output, coded.write, {**plan.writer.metadata, **how}, measure)


def verify(plan: EncodePlan, coded: CodedFile, video: Video) -> EncodeReport:
    """Decode the written file and report what the decoder makes of it."""
    encode_seconds = time.monotonic() - plan.started
    decode_start = time.monotonic()
    final = decode(plan.output, device=DECODE_DEVICE, reference=plan.writer.reference)
    decode_seconds = time.monotonic() - decode_start
    if plan.checkpoint is not None:
        plan.checkpoint.unlink(missing_ok=True)
    size = plan.output.stat().st_size
    settings = plan.settings
    return EncodeReport(
        path=str(plan.output),
        model=plan.family.name,
        num_params=plan.family.count_params(plan.model.config),
        width=video.width,
        height=video.height,
        num_frames=video.num_frames,
        file_bytes=size,
        bpp=bits_per_pixel(size, video.width, video.height, video.num_frames),
        target_bpp=None if settings.lam else settings.bpp,
        quant_bits=None if coded.quant_bits is None else round(coded.quant_bits, 3),
        psnr=psnr(video.frames, final.frames),
        y_psnr=y_psnr(video.frames, final.frames),
        ms_ssim=ms_ssim(video.frames, final.frames),
        train_seconds=coded.train_seconds,
        encode_seconds=encode_seconds,
        decode_seconds=decode_seconds,
        estimated_bytes=coded.estimated_bytes,
        lam=None if plan.rate is None else plan.rate.controller.lam,
    )


class _FileWriter:
    """Everything of the file but the tensors is fixed before training: write it around any tensors.

    With ``reference`` (the previous segment's decoded weights) it writes a predicted segment.
    """

    # mETA as the final rewrite will hold it, for the fixed-size estimate. The creation time is a
    # placeholder too: its digits change how well zstd packs mETA, and a resumed encode must
    # estimate (hence calibrate and train) exactly as the interrupted one did.
    PLACEHOLDERS = {
        "measured": {"psnr": 30.123456789012345, "ms_ssim": 0.9123456789012345},
        "lambda": 0.012345678901234,
        "estimated_bytes": 12345,
        "created": "2000-01-01T00:00:00+00:00",
    }

    def __init__(
        self,
        header: nvc_format.VideoHeader,
        arch: nvc_format.ArchRecord,
        metadata: dict | None,
        context: ContextCodec | None = None,
        reference: list[np.ndarray] | None = None,
    ) -> None:
        self.header, self.arch, self.metadata, self.context = header, arch, metadata, context
        self.reference = reference
        self.reference_sha256 = None if reference is None else nvc_format.weights_digest(reference)

    def write(
        self,
        tensors: list[np.ndarray],
        metadata: dict | None,
        bits: list[float] | None = None,
        steps: list[np.ndarray] | None = None,
    ) -> bytes:
        records, digest = compress_tensors(tensors, bits, steps, self.context, self.reference)
        nvc = nvc_format.NvcFile(self.header, self.arch, records, digest, metadata or {}, (), self.reference_sha256)
        return nvc_format.write(nvc)

    def fixed_bytes(self) -> int:
        """Bytes of the file when every symbol is zero: all but the entropy-coded payloads."""
        zeros = [np.zeros(shape, np.float32) for shape in self.arch.shapes]
        if self.reference is not None:  # a predicted segment: zero differences (context-coded latents: zeros)
            latent = [self.context is not None and self.context.codes(i) for i in range(len(zeros))]
            zeros = [z if c else r for z, r, c in zip(zeros, self.reference, latent)]
        metadata = None if self.metadata is None else {**self.metadata, **self.PLACEHOLDERS}
        return len(self.write(zeros, metadata, bits=[8.0] * len(zeros)))


def _utc_now() -> str:
    """The creation time for mETA; SOURCE_DATE_EPOCH (the reproducible-builds convention) fixes it."""
    fixed = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (
        datetime.datetime.fromtimestamp(int(fixed), datetime.timezone.utc)
        if fixed and fixed.isdigit()
        else datetime.datetime.now(datetime.timezone.utc)
    )
    return moment.isoformat(timespec="seconds")
