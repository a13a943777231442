"""Training losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..metrics import ssim_torch


def fusion_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """NeRV's 0.7 * L1 + 0.3 * (1 - SSIM) on [N, 3, H, W] in [0, 1]."""
    return 0.7 * F.l1_loss(pred, target) + 0.3 * (1.0 - ssim_torch(pred, target))
