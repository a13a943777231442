"""CoordFlow's training objective (paper, section 2.3): weighted L1 + 0.25 L2, plus the layer loss.

Per-pixel weights w (computed once, encoder-side, never stored in the file) grow with the
Laplacian magnitude, Canny edges (OpenCV) and the temporal variance of the clip, plus a
constant bias; they are normalized to mean 1 so the learning rate means the same as without.

    L_combined = mean(w * (|d| + 0.25 d^2)),   d = F_model(c) - video(c)              (eq. 5)
    L_layer    = mean(sum_i softmax(alpha)_i * w * (|d_i| + 0.25 d_i^2)),  d_i from layer i's RGB  (eq. 6)
    L          = L_combined + 0.1 L_layer

Batches are random pixels of the whole clip (an epoch sees T x H x W samples).

In-between supervision (``interp_weight`` mu > 0; an encoder aid of ours, not the paper's). The
coded frames say nothing about the times between them, where ``nvc decode --fps`` renders. With
mu > 0 every step also fits a quarter batch of pixels at the half-way times k + 1/2 to the
motion-compensated midpoints of the neighbours (``motion.midpoint_frames``, OpenCV DIS):

    L += mu * mean(|d| + 0.25 d^2),   d = F_model(x, y, k + 1/2) - midpoint_k(x, y)

Measured (benchmarks/experiments/results/coordflow, 160x90, 4 bpp): mu = 0.5 lifts the in-between frames from
below to above averaging the two true neighbours (32.33 -> 33.66 dB, average 32.86) and costs the
coded frames about 1 dB (38.15 -> 37.17), so it is off by default.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ...devices import host_table, to_device
from ...train.motion import midpoint_frames
from ...train.objectives import PixelObjective, error_255

L2_WEIGHT = 0.25  # lambda of eq. 5
LAYER_GAMMA = 0.1  # gamma of the end-to-end loss
WEIGHT_BIAS = 1.0  # the constant that keeps flat regions in the loss
CANNY_THRESHOLDS = (100, 200)


def _normalized(x: np.ndarray) -> np.ndarray:
    """Scale to about [0, 1] by the 99th percentile (robust to a few extreme pixels)."""
    top = float(np.percentile(x, 99)) if x.size else 0.0
    return np.clip(x / top, 0.0, 1.0) if top > 0 else np.zeros_like(x)


def pixel_weights(frames: np.ndarray) -> np.ndarray:
    """uint8 frames [T, H, W, 3] -> float32 loss weights [T, H, W] with mean 1.

    w = bias + |Laplacian| + Canny edges + temporal variance, each term scaled to [0, 1]. The
    temporal variance is over the frame and its two neighbours (one-sided at the ends).
    """
    grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    laplacian = np.stack([np.abs(cv2.Laplacian(g.astype(np.float32), cv2.CV_32F, ksize=3)) for g in grey])
    edges = np.stack([cv2.Canny(g, *CANNY_THRESHOLDS) > 0 for g in grey]).astype(np.float32)
    g = grey.astype(np.float32) / 255.0
    padded = np.concatenate([g[:1], g, g[-1:]]) if len(g) > 1 else np.concatenate([g, g, g])
    window = np.stack([padded[:-2], padded[1:-1], padded[2:]])
    variance = window.var(axis=0)
    weights = WEIGHT_BIAS + _normalized(laplacian) + edges + _normalized(variance)
    return (weights / weights.mean()).astype(np.float32)


def combined(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-pixel w * (|d| + 0.25 d^2), averaged over the colour channels: [..., N, 3] -> [..., N]."""
    d = pred - target
    return weights * (d.abs() + L2_WEIGHT * d * d).mean(-1)


class CoordFlowObjective(PixelObjective):
    pixels_per_step = 4096  # at equal CPU time, 4096 beat 8192 and 16384 (more, smaller steps)

    def __init__(self, *args, options: dict | None = None) -> None:
        super().__init__(*args)
        self.take_options(options)
        frames = self.target.permute(0, 2, 3, 1).numpy()  # the host frames [T, H, W, 3]
        self.weights = host_table(torch.from_numpy(pixel_weights(frames)).reshape(-1), self.device)  # rows per step
        self.interp_weight = float(self.options["interp_weight"]) if len(frames) > 1 else 0.0
        if self.interp_weight > 0:
            self.midpoints = host_table(torch.from_numpy(midpoint_frames(frames)).reshape(-1, 3), self.device)

    def midpoint_sample(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(coords [N, 3] at times k + 1/2, their motion-compensated colours [N, 3]), seeded like ``sample``."""
        g = torch.Generator().manual_seed(((self.seed * 100003 + epoch) * 1000003 + index) * 7 + 1)
        t, h, w = self.shape
        flat = torch.randint(0, (t - 1) * h * w, (self.pixels_per_step // 4,), generator=g)
        coords = self.model.pixel_coords(to_device(flat, self.device), t - 1, h, w)  # frame k's pixel centres ...
        coords[:, 2] += 0.5 / (t - 1)  # ... half a frame later
        return coords, self.rows(self.midpoints, flat).float().div_(255.0)

    def coded_loss(
        self, coords: torch.Tensor, frames: torch.Tensor, gt: torch.Tensor, w: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(eq. 5 + gamma x eq. 6 on pixels of the coded frames, the mixed prediction [N, 3])."""
        rgb, alpha = self.model.layer_outputs(coords, frames)
        rgb, alpha = rgb.float(), alpha.float()
        mix, pred = self.model.mix(rgb, alpha)
        return combined(pred, gt, w).mean() + LAYER_GAMMA * (mix * combined(rgb, gt, w)).sum(0).mean(), pred

    def step(self, epoch: int, index: int, autocast) -> tuple[torch.Tensor, torch.Tensor]:
        flat, coords, gt = self.sample(epoch, index)
        frames = to_device(flat // (self.shape[1] * self.shape[2]), self.device)
        with autocast:  # the precision applies inside the (possibly compiled) loss
            loss, pred = self.kernel("coded_loss", self.coded_loss)(coords, frames, gt, self.rows(self.weights, flat))
        if self.interp_weight > 0:
            between, target = self.midpoint_sample(epoch, index)
            with autocast:
                rgb_between, alpha_between = self.model.layer_outputs(between)
            _, pred_between = self.model.mix(rgb_between.float(), alpha_between.float())
            loss = loss + self.interp_weight * combined(pred_between, target, 1.0).mean()
        mse = error_255(pred, gt)
        return loss, mse
