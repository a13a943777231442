"""Training objectives: how a family samples a batch and scores it.

``fit`` owns optimization (schedule, pruning, checkpoints, progress); an objective owns what
one step looks at. A family's declaration (nvcodec/families/<name>/__init__.py) names its
objective: one of the two generic ones below, or its own in its folder's ``objective.py``.

Encoder-side aids an objective computes (optical flow, loss weights) never go in the file.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..devices import host_frames, to_device
from ..models.base import Backbone
from .compiled import maybe_compiled
from .losses import LOSSES


def objective_for(
    model: Backbone,
    frames: np.ndarray,
    device: torch.device,
    loss: str,
    seed: int,
    batch_frames: int = 1,
    options: dict | None = None,
) -> "Objective":
    """``options``: the family's encode options (its declaration checks them). The family is the
    model's: its class carries its declaration (``Backbone.declaration``)."""
    cls = type(model).declaration.objective()
    if options:
        return cls(model, frames, device, loss, seed, batch_frames, options=options)
    return cls(model, frames, device, loss, seed, batch_frames)


def error_255(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """The batch's mean squared error in 8-bit units squared, for progress lines: a detached
    device tensor (reading it as a float would make the host wait for the device every step)."""
    with torch.no_grad():
        return torch.mean((pred.detach() - gt) ** 2) * 255.0**2


class Objective:
    """One training step's data and loss. ``step`` returns (loss, mse in 8-bit units squared).

    The frames stay in host memory (pinned for a GPU) and each step copies its batch to the
    device: a segment's frames and per-pixel aids would not all fit in GPU memory at 1080p.
    """

    steps_per_epoch: int
    rate = None  # train.rate.RateTerm when training is rate-aware (set by fit)
    compile = False  # set by fit: run ``kernel`` functions through torch.compile (train/compiled.py)

    def __init__(
        self, model: Backbone, frames: np.ndarray, device: torch.device, loss: str, seed: int, batch_frames: int
    ) -> None:
        self.model = model
        self.device = device
        self.loss_fn = LOSSES[loss]
        self.seed = seed
        self.target = host_frames(frames, device)  # uint8 [T, 3, H, W] in host memory
        self.batch_frames = batch_frames

    def frames(self, idx: torch.Tensor) -> torch.Tensor:
        """Frames ``idx`` (host or device indices) on the device, as floats in [0, 1] [B, 3, H, W]."""
        return to_device(self.target[idx.cpu()], self.device).float().div_(255.0)

    def take_options(self, options: dict | None) -> dict:
        """The family's encode options: its declared defaults overridden by ``options``, range-checked."""
        self.options = type(self.model).declaration.check_encode_options(options or {})
        return self.options

    def step(self, epoch: int, index: int, autocast) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def steers_lambda(self) -> bool:
        """Whether this step's rate estimate describes the file being trained, so that lambda may be
        steered by it (mcgrid: not while only the intra frames train and the rest are still zero)."""
        return True

    def kernel(self, name: str, fn: Callable) -> Callable:
        """``fn``, compiled on first use when ``compile`` is set: a pure tensor function of the step."""
        kernels = self.__dict__.setdefault("_kernels", {})
        key = (name, self.compile)
        if key not in kernels:
            kernels[key] = maybe_compiled(fn, self.compile, self.device.type)
        return kernels[key]

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        """Encoder-side parameters optimized with the model's (e.g. HNeRV's frame encoder); never stored."""
        return []

    def own_parameters(self) -> list[torch.nn.Parameter]:
        """Model parameters this objective updates itself in ``update`` (left out of fit's optimizer)."""
        return []

    def update(self, lr: float) -> None:
        """After the optimizer's step, at its learning rate: update ``own_parameters``."""

    def start(self, stage: str) -> None:
        """A stage ("train", "finetune") begins or resumes."""

    def schedule(self, stage: str, fraction: float) -> None:
        """Before each step: how far the stage has gone (0 to 1, by steps or by the time budget)."""

    def finish(self, stage: str) -> None:
        """A stage ended: runs before its checkpoint and before pruning (e.g. write embeddings into the model)."""


class FrameObjective(Objective):
    """Frame-wise backbones: every frame once per epoch, in a seeded random order."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.num_frames = self.target.shape[0]
        self.steps_per_epoch = math.ceil(self.num_frames / self.batch_frames)
        self._order_epoch, self._order = -1, None

    def frame_batch(self, epoch: int, index: int) -> torch.Tensor:
        if epoch != self._order_epoch:
            self._order = torch.randperm(
                self.num_frames, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch)
            )
            self._order_epoch = epoch
        return self._order[index * self.batch_frames : (index + 1) * self.batch_frames].to(self.device)

    def step(self, epoch: int, index: int, autocast) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.frame_batch(epoch, index)
        gt = self.frames(idx)
        with autocast:
            pred = self.model.render_frames(self.model.frame_times(idx))
        pred = pred.float()
        loss = self.loss_fn(pred, gt)
        mse = error_255(pred, gt)
        return loss, mse


class PixelObjective(Objective):
    """Pixel-wise backbones: seeded random (x, y, t) samples; an epoch sees T x H x W samples."""

    pixels_per_step = 32768

    def __init__(self, *args) -> None:
        super().__init__(*args)
        t, _, h, w = self.target.shape
        self.shape = (t, h, w)
        self.steps_per_epoch = max(1, math.ceil(t * h * w / self.pixels_per_step))
        self.colours = self.target.permute(0, 2, 3, 1).reshape(-1, 3)  # uint8 [T*H*W, 3]

    def sample(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(flat indices on the host, coords [N, 3] as (x, y, t) in [0, 1], target colours [N, 3] in
        [0, 1]), the last two on the device."""
        g = torch.Generator().manual_seed((self.seed * 100003 + epoch) * 1000003 + index)
        t, h, w = self.shape
        flat = torch.randint(0, t * h * w, (self.pixels_per_step,), generator=g)  # on the host, as the frames
        coords = self.model.pixel_coords(to_device(flat, self.device), t, h, w)
        return flat, coords, self.rows(self.colours, flat).float().div_(255.0)

    def rows(self, table: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        """Rows ``flat`` (host indices) of a per-pixel host table, on the device."""
        return to_device(table[flat], self.device)

    def step(self, epoch: int, index: int, autocast) -> tuple[torch.Tensor, torch.Tensor]:
        _, coords, gt = self.sample(epoch, index)
        with autocast:
            pred = self.model.render_pixels(coords)
        pred = pred.float()
        loss = self.loss_fn(pred, gt)
        mse = error_255(pred, gt)
        return loss, mse
