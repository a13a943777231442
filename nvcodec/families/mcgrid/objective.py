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
from .motion import initial_motion


class MCGridObjective(GridObjective):
    model: MCGrid
    # A latent is updated about 150 times in 300 CPU-s; at grid's 3x (0.03 a step) the latents stayed
    # within +-2 and drowned in the quantization noise: 20x measured 21.0 dB against 17.1 (intra
    # weight 8, lambda 0.3, 160 steps), 40x 20.9 dB.
    latent_lr_scale = 20.0
    # The share of the training stage spent first on the intra frames (and the frame after each).
    intra_share = 0.3
    # How many times an intra frame's error counts (None: the group's length), since its decoded
    # picture is what the rest of its group is predicted from: 16 measured 21.5 dB at 0.049 bpp,
    # 8 21.0 at 0.040, 4 20.6 at 0.034 (lambda 0.3, 160 steps, 16-frame groups).
    intra_weight: float | None = None

    def __init__(self, *args) -> None:
        super().__init__(*args)
        config = self.model.config
        self.batch_frames = config.gop  # runs of batch_frames from multiples of it: exactly the groups
        self.steps_per_epoch = math.ceil(self.num_frames / config.gop)
        self.phase = ("", 0.0)  # (stage, fraction) of the coming step
        self.batch: list[int] = []  # the frames of the coming step
        self.loss_fn = self.weighted(self.loss_fn)
        motion = [self.model.latents[k] for k in self.model.motion_levels()]
        # always (a warm-started segment holds the motion of the segment before; a resumed encode loads its
        # own from the checkpoint after this); a model on "meta" has no values to start from
        if motion[0].device.type != "meta":
            frames = self.target.permute(0, 2, 3, 1).numpy()
            estimate = torch.from_numpy(initial_motion(frames, config.gop, config.block))
            with torch.no_grad():
                for axis, grid in enumerate(motion):
                    grid[: len(estimate)] = estimate[:, axis].to(grid.device)  # a timing trial has fewer frames

    def weighted(self, loss_fn: Callable) -> Callable:
        """``loss_fn`` per frame of the batch, an intra frame's counted ``intra_weight`` times."""

        def loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
            intra = self.intra_weight or float(self.model.config.gop)
            weights = [intra if self.model.config.is_intra(f) else 1.0 for f in self.batch]
            return sum(w * loss_fn(pred[n : n + 1], gt[n : n + 1]) for n, w in enumerate(weights)) / len(weights)

        return loss

    def schedule(self, stage: str, fraction: float) -> None:
        self.phase = (stage, fraction)

    def frame_batch(self, epoch: int, index: int) -> torch.Tensor:
        """A group of pictures; first, for ``intra_share`` of the training stage, the intra frames
        with the frame after each (where the group has one): the intra frames are what the rest is
        predicted from, at a fraction of a group's cost, and the predicted frames' networks then
        learn from the start (a first Adam step of full size on untrained ones took every predicted
        frame to 7-10 dB)."""
        if self.phase[0] == "train" and self.phase[1] < self.intra_share:
            gop = self.model.config.gop
            firsts = torch.arange(0, self.num_frames, gop)
            seconds = firsts[firsts + 1 < torch.clamp(firsts + gop, max=self.num_frames)] + 1
            batch = torch.sort(torch.cat([firsts, seconds])).values
        else:
            batch = super().frame_batch(epoch, index)
        self.batch = batch.tolist()
        return batch

    @torch.no_grad()
    def update(self, lr: float) -> None:
        """Grid's lazy Adam; intra frames' motion stays 0 (unused, it would only follow the rate term)."""
        super().update(lr)
        for k in self.model.motion_levels():
            self.model.latents[k][:: self.model.config.gop] = 0.0
