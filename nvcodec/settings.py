"""What an encode is asked to do, and the checks that refuse a bad request before any work.

Kept free of torch, so that `nvc encode` answers a bad option at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .choices import LOSS_NAMES, TRAIN_CLOCKS, LossName, TrainClock
from .compress.ratecontrol import MAX_BITS, MIN_BITS
from .errors import UsageError
from .families import Family, declaration
from .models.capabilities import FRAMEWISE
from .presets import PRESETS

if TYPE_CHECKING:
    from .io import FrameRange, Size


@dataclass(frozen=True)
class EncodeSettings:
    model: str = "nerv"
    bpp: float = 0.1
    preset: str = "medium"  # a training time that fits the clip (presets.py)
    epochs: int | None = None  # train for this many epochs instead
    train_seconds: float | None = None  # or for this many seconds (overrides the preset)
    train_clock: TrainClock = "wall"  # clock of train_seconds: "wall", or "cpu" (process CPU time, for fair benchmarks)
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None  # None: bf16 autocast if it measures faster on this device
    prune: float = 0.10
    loss: LossName = "l2"  # or "fusion" (0.7 L1 + 0.3 (1 - SSIM))
    quant_bits: float | None = None  # fixed bit depth instead of landing on --bpp
    resume: bool = True  # keep a checkpoint beside the output and resume from it
    checkpoint_seconds: float = 60.0  # between checkpoints (the first comes after at most 10 s)
    rate_training: bool = True  # train against the file's rate (D + lambda x R); False: quantize after training
    lam: float | None = None  # constant lambda (quality mode; --bpp then only sizes the model) instead of a target
    rate_options: dict = field(default_factory=dict)  # train.rate.RateSettings fields, for ablations
    objective_options: dict = field(default_factory=dict)  # the family objective's knobs, e.g. {"of_weight": 0.12}


@dataclass(frozen=True)
class FileOptions:
    """How an input becomes segments and how they are run."""

    frames: FrameRange | None = None
    resize: Size | None = None
    segment_seconds: float = 8.0  # longest segment; segments are at least half as long; 0: one segment
    jobs: int = 1  # processes on this machine (torchrun sets its own)
    threads: int | None = None  # torch threads per process; default: the cores shared out
    audio: bool = True  # carry the input's audio track
    chain_length: int = 4  # segments per warm-started chain (1: every segment trains from nothing)
    predict: bool = True  # a warm segment's weights coded as differences from the previous segment's


def check_settings(settings: EncodeSettings) -> Family:
    """Every setting checked before any work (and before torch loads): the family's declaration, or a UsageError."""
    family = declaration(settings.model)
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
    if not settings.checkpoint_seconds > 0:
        raise UsageError("--checkpoint-every must be positive")
    if settings.train_clock not in TRAIN_CLOCKS:
        raise UsageError(f"train_clock {settings.train_clock!r}: use {' or '.join(TRAIN_CLOCKS)}")
    if settings.loss not in LOSS_NAMES:
        raise UsageError(f"--loss {settings.loss!r}: use {' or '.join(LOSS_NAMES)}")
    if settings.loss == "fusion" and FRAMEWISE not in family.capabilities:
        raise UsageError(f"--loss fusion needs whole frames (SSIM); {family.name} trains on pixels: use --loss l2")
    if not 0 <= settings.prune < 1:
        raise UsageError("--prune must be in [0, 1)")
    if settings.quant_bits is not None and not MIN_BITS <= settings.quant_bits <= MAX_BITS:
        raise UsageError(f"--bits must be between {MIN_BITS:g} and {MAX_BITS:g}")
    if settings.lam is not None:
        if not settings.lam > 0:
            raise UsageError("--lambda must be positive")
        if not settings.rate_training or settings.quant_bits is not None:
            raise UsageError("--lambda prices bits during rate-aware training: drop --rate-training off and --bits")
    if family.requires_rate_training and (not settings.rate_training or settings.quant_bits is not None):
        raise UsageError(
            f"--model {family.name} trains its latents against their rate: drop --rate-training off and --bits"
        )
    try:
        family.check_encode_options(dict(settings.objective_options))
    except ValueError as exc:
        raise UsageError(f"--model {family.name}: {exc}") from None
    return family
