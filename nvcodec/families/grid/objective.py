"""The grid family's objective: frames rendered from latents seen through their quantization proxy,
plus lambda x the bits of the rounded latents under the context model.

The rate term (train/rate.py) prices the networks' weights and holds lambda; this objective
prices the latents, which are most of the file. Each step draws the frames of a batch, and the
rate of each grid is that of the slices those frames read, scaled to the whole grid (every slice
is read equally often over an epoch), so a step never evaluates the context model on the whole
video. The per-slice figures are kept as the running estimate of the latents' bits that lambda
is steered by. The rate is priced in every step.

The latents are updated here, not by fit's optimizer: a step reads three slices of each grid,
so only those are updated (Adam with lazy moments, as TensorFlow's LazyAdam), instead of a
dense update of millions of latents that the step did not touch. Their moments are not in the
checkpoint: a resumed encode starts them afresh (its latents and networks resume exactly).
"""

from __future__ import annotations

import math

import torch

from ...compress.proxy import ProxyMode, kumaraswamy_noise, round_ste, soft_round
from ...devices import to_device
from ...train.objectives import FrameObjective, error_255
from .model import Grid

BETAS, EPS = (0.9, 0.999), 1e-8  # Adam's defaults (C3 trains with them)
# The latents' rate is in every step. NVRC (Kwan et al. 2024) prices the rate once per 8 steps "with
# no measurable loss"; here a latent is only updated in the steps that read its slice, and with the
# rate in every 4th step it could not pull the latents back: at 90 CPU-s and 0.1 bpp that ended at
# 0.28 bpp whatever lambda, the rate in every step landed on 0.103.
# The latents' learning rate relative to the networks' (a slice is updated only in the steps that
# read it): at 90 CPU-s and 0.1 bpp with the rate every step, 3x gave 23.2 dB at 0.103 bpp and 5x
# 23.9 dB at 0.128 bpp (off target); 1x (rate every 4th step) 21.2 dB at 0.099. Unquantized, 3x fits
# the clip to 37.9 dB in 60 CPU-s against 32.0 dB at 1x.
LATENT_LR_SCALE = 3.0


# C3's soft rounding over the noise stage (Cool-chic 5's temperatures): the latents are seen through
# soft_round(soft_round(x, T) + n, T), T annealed from the first value to the second, and the noise
# n from uniform toward the centre (Kumaraswamy a from 1 to 2); the hard-rounding stage follows.
SOFT_TEMPERATURE = (0.35, 0.08)
KUMARASWAMY_A = (1.0, 2.0)


def _runs(mask: torch.Tensor) -> list[tuple[int, int]]:
    """(start, stop) of every run of True in a 1-D bool ``mask``."""
    edges = torch.diff(torch.cat([mask.new_zeros(1), mask, mask.new_zeros(1)]).to(torch.int8))
    starts, stops = torch.nonzero(edges == 1).flatten().tolist(), torch.nonzero(edges == -1).flatten().tolist()
    return list(zip(starts, stops))


def _anneal(ends: tuple[float, float], fraction: float) -> float:
    return ends[0] + (ends[1] - ends[0]) * min(max(fraction, 0.0), 1.0)


class GridObjective(FrameObjective):
    model: Grid
    latent_lr_scale = LATENT_LR_SCALE
    soft_rounding = False  # the noise stage's proxy: plain uniform noise, or C3's annealed soft rounding

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.moments = [(torch.zeros_like(g), torch.zeros_like(g)) for g in self.model.latents]
        self.updates = 0
        # this step's windows (leaf tensors), where they start, and which of their slices it trains
        self.leaves: list[tuple[torch.Tensor, int, torch.Tensor]] = []
        self.phase = ("", 0.0)  # (stage, fraction) of the coming step

    def schedule(self, stage: str, fraction: float) -> None:
        self.phase = (stage, fraction)

    def frame_batch(self, epoch: int, index: int) -> torch.Tensor:
        """``batch_frames`` consecutive frames (runs of a seeded random order of runs): a step then
        reads few slices of each grid however large the batch."""
        runs = math.ceil(self.num_frames / self.batch_frames)
        if epoch != self._order_epoch:
            self._order = torch.randperm(runs, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch))
            self._order_epoch = epoch
        start = int(self._order[index]) * self.batch_frames
        return torch.arange(start, min(start + self.batch_frames, self.num_frames))  # host indices

    def frames_read(self, frames: torch.Tensor) -> torch.Tensor:
        """The frames whose latents rendering ``frames`` reads (mcgrid: with their references)."""
        return frames

    def trained_slices(self, read: torch.Tensor, count: int) -> torch.Tensor:
        """bool [count]: the slices of a window of ``count`` that a step trains, given the slices ``read``
        whose rate it prices: here all (a frame's synthesis reads its time between two slices, one of
        them beside its own)."""
        return torch.ones(count, dtype=torch.bool)

    def own_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.latents)

    @torch.no_grad()
    def update(self, lr: float) -> None:
        """Adam on the slices this step trains; the other slices and their moments stay as they are."""
        self.updates += 1
        correction1, correction2 = 1 - BETAS[0] ** self.updates, 1 - BETAS[1] ** self.updates
        for grid, (first, second), (leaf, low, trained) in zip(self.model.latents, self.moments, self.leaves):
            if leaf.grad is None:
                continue
            for start, stop in _runs(trained):
                window, grad = slice(low + start, low + stop), leaf.grad[start:stop]
                first[window].lerp_(grad, 1 - BETAS[0])
                second[window].mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
                denominator = (second[window] / correction2).sqrt_().add_(EPS)
                grid[window].addcdiv_(first[window], denominator, value=-self.latent_lr_scale * lr / correction1)
        self.leaves = []

    def proxy(self, grid: torch.Tensor, mode: ProxyMode, generator: torch.Generator) -> torch.Tensor:
        """What the decoder will see of ``grid``: uniform noise of one step (or C3's annealed soft
        rounding), or rounding (straight-through)."""
        if mode == ProxyMode.NOISE:
            uniform = torch.rand(grid.shape, generator=generator, device=grid.device)
            if not self.soft_rounding:
                return grid + (uniform - 0.5)
            fraction = self.phase[1]
            temperature = _anneal(SOFT_TEMPERATURE, fraction)
            noise = kumaraswamy_noise(uniform, _anneal(KUMARASWAMY_A, fraction))
            return soft_round(soft_round(grid, temperature) + noise, temperature)
        if mode == ProxyMode.HARD:
            return round_ste(grid)
        return grid

    def step(self, epoch: int, index: int, autocast) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.model
        frames = self.frame_batch(epoch, index)
        gt = self.frames(frames)
        mode = ProxyMode.OFF if self.rate is None else self.rate.mode
        generator = torch.Generator(device=gt.device).manual_seed((self.seed * 100003 + epoch) * 1000003 + index)
        # per grid: the slices the frames read (rate), and a window one slice wider (synthesis, context)
        read, inputs, windows, offsets = [], [], [], []
        self.leaves = []
        needed = self.frames_read(frames)
        for level, grid in enumerate(model.latents):
            slices = torch.unique(needed // model.config.frames_per_slice(level)).clamp_max(len(grid) - 1)
            low, high = max(0, int(slices[0]) - 1), min(len(grid) - 1, int(slices[-1]) + 1)
            leaf = grid.detach()[low : high + 1].clone().requires_grad_(True)
            trained = self.trained_slices(slices - low, len(leaf))
            self.leaves.append((leaf, low, trained))
            read.append(slices - low)
            # the slices a step does not train are read as constants (context only)
            if bool(trained.all()):
                inputs.append(leaf)
            else:
                inputs.append(torch.where(trained.to(leaf.device)[:, None, None], leaf, leaf.detach()))
            windows.append(self.proxy(inputs[-1], mode, generator))
            offsets.append(low)
        with autocast:
            pred = model.synthesize(to_device(frames, self.device), windows, offsets)
        pred = pred.float()
        loss = self.loss_fn(pred, gt)
        mse = error_255(pred, gt)
        if mode != ProxyMode.OFF:
            model.latent_bits()  # the running estimate exists from here on
            # the rate of the rounded latents (straight-through), as the file codes them: under the
            # noise proxy small-scale latents would be priced far above what they will cost
            rounded = [round_ste(values) for values in inputs]
            bits = torch.zeros((), device=gt.device)
            for level, (slices, low) in enumerate(zip(read, offsets)):
                per_slice = model.slice_bits(rounded, level, slices, offsets)
                model.slice_estimates[level][slices + low] = per_slice.detach()
                bits = bits + per_slice.sum() * (len(model.latents[level]) / len(slices))
            loss = loss + self.rate.controller.lam * bits / self.rate.settings.num_pixels
        return loss, mse
