"""A few timed training steps before the real run: which precision is faster, and how fast.

Small models with few channels can be slower in bf16 on CPU (oneDNN picks generic kernels), so
the precision is measured rather than assumed; the same steps give the step time from which an
epoch-counted encode's duration is predicted before it starts.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..cputuning import flush_denormals, keep_freed_memory
from ..devices import DECODE_BATCH, DECODE_DEVICE, bf16_native, synchronize
from ..models.base import Backbone
from .fit import autocast_for
from .objectives import objective_for

TRIAL_FRAMES = 2
WARMUP_STEPS, TIMED_STEPS, ROUNDS = 2, 3, 3


@dataclass(frozen=True)
class Trial:
    amp: bool  # bf16 autocast chosen
    step_seconds: float  # wall seconds per training step at the chosen precision
    steps_per_epoch: int  # of the whole clip
    render_seconds: float  # wall seconds to render the whole clip once (as the decoder does)

    def finishing_seconds(self, decodes: int = 2) -> float:
        """After training: the writes of the final step search, then ``decodes`` decodes of the file
        and their metrics, about 1.5 renders of the clip each, plus a little. A file decodes twice
        (the quality written into mETA, then the report), a segment of a longer file once."""
        return 1.5 * decodes * self.render_seconds + 2.0

    def epochs_seconds(self, epochs: int) -> float:
        """The predicted duration of ``epochs`` epochs of training."""
        return epochs * self.steps_per_epoch * self.step_seconds


class _TimedSteps:
    """Training steps of a copy of the model on the first frames, at one precision."""

    def __init__(self, model: Backbone, frames: np.ndarray, device: torch.device, amp: bool) -> None:
        self.model = copy.deepcopy(model).to(device)
        if device.type == "cpu":
            self.model.to(memory_format=torch.channels_last)
        self.objective = objective_for(self.model, frames[:TRIAL_FRAMES], device, "l2", 0)
        self.autocast = lambda: autocast_for(device, amp)
        self.device = device
        self.seconds = float("inf")  # the fastest round's time per step
        self.run(WARMUP_STEPS)

    def run(self, steps: int) -> None:
        synchronize(self.device)  # a GPU runs asynchronously: time from idle to idle
        start = time.perf_counter()
        for _ in range(steps):
            self.objective.step(0, 0, self.autocast())[0].backward()
        synchronize(self.device)
        self.seconds = min(self.seconds, (time.perf_counter() - start) / steps)


def _step_seconds(
    model: Backbone, frames: np.ndarray, device: torch.device, options: tuple[bool, ...]
) -> tuple[dict[bool, float], int]:
    """Seconds per step at each precision: the best of ROUNDS rounds, the precisions taking turns,
    so that a moment of noise on the machine does not pick the slower one."""
    runs = {amp: _TimedSteps(model, frames, device, amp) for amp in options}
    for _ in range(ROUNDS):
        for run in runs.values():
            run.run(TIMED_STEPS)
    return {amp: run.seconds for amp, run in runs.items()}, next(iter(runs.values())).objective.steps_per_epoch


@torch.inference_mode()
def _render_seconds(model: Backbone, frames: np.ndarray, device: torch.device) -> float:
    """One group of the decoder's frames rendered, scaled to the clip (on the device the encoder
    decodes its file with)."""
    trial = copy.deepcopy(model).to(device).eval()
    count = min(DECODE_BATCH, len(frames))
    times = torch.linspace(0, 1, count, device=device)
    trial.render_frames(times[:1])  # warm-up
    synchronize(device)
    start = time.perf_counter()
    trial.render_frames(times)
    synchronize(device)
    return (time.perf_counter() - start) * len(frames) / count


@flush_denormals()  # as in fit
def run_trial(model: Backbone, frames: np.ndarray, device: torch.device, requested_amp: bool | None) -> Trial:
    """Time a few steps in fp32 and bf16 (only the requested precision if one is given)."""
    keep_freed_memory()  # as in fit, so that the timings are fit's
    if requested_amp is None:
        options = (False, True) if bf16_native(device) else (False,)  # emulated bf16 is never faster
    else:
        options = (requested_amp,)
    timings, per_epoch = _step_seconds(model, frames, device, options)
    amp = requested_amp if requested_amp is not None else timings.get(True, math.inf) < 0.9 * timings[False]
    trial_frames = min(TRIAL_FRAMES, len(frames))
    # steps per epoch grow with the frame count, both for frame batches and for pixel batches
    return Trial(
        amp,
        timings[amp],
        max(1, round(per_epoch * len(frames) / trial_frames)),
        _render_seconds(model, frames, torch.device(DECODE_DEVICE)),
    )
