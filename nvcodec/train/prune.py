"""Global magnitude pruning: zero the smallest weights across all conv/linear kernels."""

from __future__ import annotations

import torch
from torch import nn


def magnitude_masks(model: nn.Module, amount: float) -> dict[str, torch.Tensor]:
    """Masks (1 = keep) that remove the ``amount`` fraction of smallest |w| over all kernels.

    Only weights of rank >= 2 are pruned; biases and norms are few and sensitive.
    """
    kernels = {n: p for n, p in model.named_parameters() if p.dim() >= 2}
    if amount <= 0 or not kernels:
        return {}
    magnitudes = torch.cat([p.detach().abs().flatten().float() for p in kernels.values()])
    k = int(amount * magnitudes.numel())
    if k == 0:
        return {}
    threshold = torch.kthvalue(magnitudes, k).values
    return {n: (p.detach().abs() > threshold).to(p.dtype) for n, p in kernels.items()}


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the pruned weights again (after every optimizer step during fine-tuning)."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        params[name].mul_(mask)
