"""The mcgrid objective: grid's (latents through their quantization proxy, lambda x their bits under
the context model, lazy Adam on the slices a step reads) on whole groups of pictures, in the order
Cool-chic trains a video: intra frames first, then each group with a predicted frame learning to
predict from its decoded reference (model.py keeps the gradient from running down the group).
The motion starts from OpenCV DIS's flow (motion.py).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..grid.objective import GridObjective
from .model import MCGrid
from .motion import initial_motion, unused_motion


class MCGridObjective(GridObjective):
    model: MCGrid
    # A latent is updated about 150 times in 300 CPU-s; at grid's 3x (0.03 a step) the latents stayed
    # within +-2 and drowned in the quantization noise: 20x measured 21.0 dB against 17.1 (intra
    # weight 8, lambda 0.3, 160 steps), 40x 20.9 dB.
    latent_lr_scale = 20.0
    # The share of the training stage spent first on each group's first two frames in coding order
    # (--intra-share; 0 measured a BD-rate of +79 %, BBB 320x180x32, 300 CPU-s).
    intra_share: float
    # How much a frame's error counts. An intra frame: its group's length (16 measured 21.5 dB at 0.049
    # bpp, 8 21.0 at 0.040, 4 20.6 at 0.034; lambda 0.3, 160 steps, 16-frame groups of P frames). A
    # predicted frame: 1 + propagation x the frames made from it, directly or through others (lambda
    # per depth: a reference's error reaches all of them); --propagation, 0.25 by default (BD-rate -34 %
    # against 0, BBB 320x180x32, 300 CPU-s; docs/results.md).
    propagation: float

    def __init__(self, *args, options: dict | None = None) -> None:
        super().__init__(*args)
        config = self.model.config
        self.take_options(options)
        self.intra_share = float(self.options["intra_share"])
        self.soft_rounding = bool(self.options["soft_round"])
        self.propagation = float(self.options["propagation"])
        self.batch_frames = config.gop  # runs of batch_frames from multiples of it: exactly the groups
        self.steps_per_epoch = math.ceil(self.num_frames / config.gop)
        self.batch: list[int] = []  # the frames of the coming step
        self.weights = self.frame_weights()
        self.loss_fn = self.weighted(self.loss_fn)
        motion = [self.model.latents[k] for k in self.model.motion_levels()]
        # where a frame has no such reference (intra frames, a P frame's second), motion stays 0
        self.idle_motion = torch.from_numpy(unused_motion(config)).to(self.device)
        # always (a warm-started segment holds the motion of the segment before; a resumed encode loads its
        # own from the checkpoint after this); a model on "meta" has no values to start from
        if motion[0].device.type != "meta":
            frames = self.target.permute(0, 2, 3, 1).numpy()
            estimate = torch.from_numpy(initial_motion(frames, config))
            with torch.no_grad():
                for axis, grid in enumerate(motion):
                    grid[: len(estimate)] = estimate[:, axis].to(grid.device)  # a timing trial has fewer frames

    def frame_weights(self) -> list[float]:
        """Every frame's weight in the loss (``propagation``)."""
        config = self.model.config
        followers = [0] * config.num_frames  # the frames made from each frame, directly or not
        for frame in range(config.num_frames):
            for ancestor in config.made_from(config.references(frame)):
                followers[ancestor] += 1
        return [
            float(followers[f] + 1) if config.is_intra(f) else 1.0 + self.propagation * followers[f]
            for f in range(config.num_frames)
        ]

    def weighted(self, loss_fn: Callable) -> Callable:
        """``loss_fn`` per frame of the batch, each counted as ``frame_weights`` says."""

        def loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
            weights = [self.weights[f] for f in self.batch]
            # unbind, not slices: each slice's backward would fill a zero tensor of the whole batch
            pairs = zip(pred.unbind(0), gt.unbind(0))
            return sum(w * loss_fn(p[None], g[None]) for (p, g), w in zip(pairs, weights)) / len(weights)

        return loss

    def frame_batch(self, epoch: int, index: int) -> torch.Tensor:
        """A group of pictures; first, for ``intra_share`` of the training stage, each group's first
        two frames in coding order (the intra frame and the first predicted from it): the intra frames
        are what the rest is predicted from, at a fraction of a group's cost, and the predicted frames'
        networks then learn from the start (a first Adam step of full size on untrained ones took every
        predicted frame to 7-10 dB)."""
        if self.intra_phase():
            config = self.model.config
            starts = range(0, self.num_frames, config.gop)
            batch = torch.tensor(sorted(f for s in starts for f in config.coding_order(s)[:2] if f < self.num_frames))
        else:
            batch = super().frame_batch(epoch, index)
        self.batch = batch.tolist()
        return batch

    def intra_phase(self) -> bool:
        """Whether the coming step is in the first ``intra_share`` of the training stage."""
        return self.phase[0] == "train" and self.phase[1] < self.intra_share

    def steers_lambda(self) -> bool:
        """Not in the intra phase: its estimate counts the predicted frames' latents, still near zero,
        so lambda fell to its floor there (0.01 x its start, BBB 0.1 bpp, 600 CPU-s) and took half
        of the whole-group steps to climb back while the rate grew to 2.3x its target unpriced."""
        return not self.intra_phase()

    def frames_read(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames`` and every frame they are made from (random access: later frames of the group too)."""
        needed = self.model.config.made_from(frames.tolist())
        return torch.tensor(sorted(needed))

    def trained_slices(self, read: torch.Tensor, count: int) -> torch.Tensor:
        """Only the frames the step renders and prices: a window's other slices are context, read as
        constants. Trained, a group's last frame took a full Adam step on the gradient of the next
        group's intra rate alone in every step of that group, and grew to 1.3-1.9 KB, 10-15x its
        group's other predicted frames, while decoding below its own prediction (BBB 320x180x32,
        300 CPU-s, 0.05-0.2 bpp)."""
        trained = torch.zeros(count, dtype=torch.bool)
        trained[read] = True
        return trained

    @torch.no_grad()
    def update(self, lr: float) -> None:
        """Grid's lazy Adam; motion a frame does not use stays 0 (it would only follow the rate term)."""
        super().update(lr)
        for slot, k in enumerate(self.model.motion_levels()):
            grid = self.model.latents[k]
            grid[self.idle_motion[: len(grid), slot // 2]] = 0.0
