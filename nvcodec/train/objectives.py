"""Training objectives: how a backbone family samples a batch and scores it.

``fit`` owns optimization (schedule, pruning, checkpoints, progress); an objective owns what
one step looks at. A backbone names its objective in ``Backbone.objective``; a family with its
own paper loss puts it in ``nvcodec/train/objective_<name>.py`` under
``@register_objective("<name>")``, imported on first use.

Encoder-side aids an objective computes (optical flow, loss weights) never go in the file.
"""

from __future__ import annotations

import importlib
import math
from typing import Callable

import numpy as np
import torch

from ..models.base import Backbone
from .losses import LOSSES

_OBJECTIVES: dict[str, type["Objective"]] = {}


def register_objective(name: str) -> Callable[[type["Objective"]], type["Objective"]]:
    def decorator(cls: type["Objective"]) -> type["Objective"]:
        if name in _OBJECTIVES:
            raise KeyError(f"objective {name!r} is registered twice")
        _OBJECTIVES[name] = cls
        return cls

    return decorator


def objective_class(name: str) -> type["Objective"]:
    if name not in _OBJECTIVES:
        importlib.import_module(f"{__package__}.objective_{name}")
    return _OBJECTIVES[name]


def check_objective_options(name: str, options: dict) -> None:
    """Refuse knobs the objective does not have, or values it does not accept (ValueError)."""
    cls = objective_class(name)
    unknown = sorted(set(options) - set(cls.option_defaults))
    if unknown:
        flags = ", ".join("--" + key.replace("_", "-") for key in unknown)
        takers = models_with_options(unknown)
        fix = f"; it applies to --model {' or '.join(takers)}" if takers else ""
        raise ValueError(f"{flags} is not an option of the {name!r} training objective{fix}")
    cls.check_options({**cls.option_defaults, **options})


def models_with_options(keys: list[str]) -> list[str]:
    """The backbones whose training objective takes every one of ``keys`` (for error messages)."""
    from ..models.registry import available_models, backbone_class

    return [model for model in available_models()
            if set(keys) <= set(objective_class(backbone_class(model).objective).option_defaults)]


def objective_for(model: Backbone, frames: np.ndarray, device: torch.device, loss: str, seed: int,
                  batch_frames: int = 1, options: dict | None = None) -> "Objective":
    """``options`` (knobs a family's objective declares in ``option_defaults``) go only to objectives that take them."""
    cls = objective_class(model.objective)
    if options:
        check_objective_options(model.objective, options)
        return cls(model, frames, device, loss, seed, batch_frames, options=options)
    return cls(model, frames, device, loss, seed, batch_frames)


class Objective:
    """One training step's data and loss. ``step`` returns (loss, mse in 8-bit units squared)."""

    steps_per_epoch: int
    rate = None  # train.rate.RateTerm when training is rate-aware (set by fit)
    option_defaults: dict[str, float] = {}  # knobs (e.g. SIREN's of_weight); subclasses taking them accept options=

    @classmethod
    def check_options(cls, options: dict) -> None:
        """Range checks on a full set of options; raise ValueError with the reason."""

    def __init__(self, model: Backbone, frames: np.ndarray, device: torch.device, loss: str, seed: int,
                 batch_frames: int) -> None:
        self.model = model
        self.device = device
        self.loss_fn = LOSSES[loss]
        self.seed = seed
        self.target = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2)  # uint8 [T, 3, H, W]
        self.batch_frames = batch_frames

    def take_options(self, options: dict | None) -> dict:
        """The family's knobs: ``option_defaults`` overridden by ``options``, range-checked."""
        self.options = {**self.option_defaults, **(options or {})}
        self.check_options(self.options)
        return self.options

    def step(self, epoch: int, index: int, autocast) -> tuple[torch.Tensor, float]:
        raise NotImplementedError

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        """Encoder-side parameters optimized with the model's (e.g. HNeRV's frame encoder); never stored."""
        return []

    def start(self, stage: str) -> None:
        """A stage ("train", "finetune") begins or resumes."""

    def finish(self, stage: str) -> None:
        """A stage ended: runs before its checkpoint and before pruning (e.g. write embeddings into the model)."""


@register_objective("frames")
class FrameObjective(Objective):
    """Frame-wise backbones: every frame once per epoch, in a seeded random order."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.num_frames = self.target.shape[0]
        self.steps_per_epoch = math.ceil(self.num_frames / self.batch_frames)
        self._order_epoch, self._order = -1, None

    def frame_batch(self, epoch: int, index: int) -> torch.Tensor:
        if epoch != self._order_epoch:
            self._order = torch.randperm(self.num_frames, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch))
            self._order_epoch = epoch
        return self._order[index * self.batch_frames : (index + 1) * self.batch_frames].to(self.device)

    def step(self, epoch: int, index: int, autocast) -> tuple[torch.Tensor, float]:
        idx = self.frame_batch(epoch, index)
        gt = self.target[idx].float().div_(255.0)
        with autocast:
            pred = self.model.render_frames(self.model.frame_times(idx))
        pred = pred.float()
        loss = self.loss_fn(pred, gt)
        with torch.no_grad():
            mse = float(torch.mean((pred - gt) ** 2)) * 255.0**2
        return loss, mse


@register_objective("pixels")
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
        """(flat indices, coords [N, 3] as (x, y, t) in [0, 1], target colours [N, 3] in [0, 1])."""
        g = torch.Generator().manual_seed((self.seed * 100003 + epoch) * 1000003 + index)
        t, h, w = self.shape
        flat = torch.randint(0, t * h * w, (self.pixels_per_step,), generator=g).to(self.device)
        coords = self.model.pixel_coords(flat, t, h, w)
        return flat, coords, self.colours[flat].float().div_(255.0)

    def step(self, epoch: int, index: int, autocast) -> tuple[torch.Tensor, float]:
        _, coords, gt = self.sample(epoch, index)
        with autocast:
            pred = self.model.render_pixels(coords)
        pred = pred.float()
        loss = self.loss_fn(pred, gt)
        with torch.no_grad():
            mse = float(torch.mean((pred - gt) ** 2)) * 255.0**2
        return loss, mse
