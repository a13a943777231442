"""Resampling matrices (Lanczos-3 up, area down) for rendering a pixel-wise model at another size.

Why a pixel-wise model is not simply evaluated on the output grid (issue 29, measured by
``benchmarks/any_scale.py``): training fits the function at the coded pixel centres only.
Evaluated on a coarser grid it aliases (at x0.5, -0.01 to -4.3 dB against area-downscaling its
own decode on the benchmark's files); on a finer grid its between-sample values carry, besides real detail, the same coding
error a filter would interpolate. So ``PixelBackbone.render_frames`` builds another size as

    low band:  the coded grid, rendered and resampled (Lanczos-3 up, area down)
    high band: upscaling only, DETAIL_GAIN x what the model renders at the output size above the
               coded grid's band (its render minus that render taken down to the coded grid and back)

The gain was chosen on the first seed's files of the benchmark (2 families, 2 clips, 2 rates)
and two more BBB seeds: of (family - bicubic of the native decode) at x2 and x1.5, gain 1 gave
the best mean (+0.09 dB at x2) but -0.06 and -0.14 dB on coordflow's BBB files, where the
model's between-sample values are partly aliasing; gain 0.5 gave +0.07 dB and no loss beyond
-0.02 dB. Downscaling uses no model detail: the true smaller frames are box averages, which
area resampling of the coded grid already computes.

Each resize is separable, as two dense matrices: out = M_h @ frame @ M_w^T, with half-pixel
centres (as ``align_corners=False``) and edges replicated.
"""

from __future__ import annotations

import functools

import torch

LANCZOS_LOBES = 3
DETAIL_GAIN = 0.5  # of the model's own detail above the coded grid's band (see above)


def _lanczos(x: torch.Tensor) -> torch.Tensor:
    a = LANCZOS_LOBES
    return torch.where(x.abs() < a, torch.sinc(x) * torch.sinc(x / a), torch.zeros_like(x))


def lanczos_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """[n_out, n_in] Lanczos-3 interpolation of n_in samples at n_out >= n_in half-pixel centres."""
    centres = (torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
    taps = torch.floor(centres)[:, None] + torch.arange(1 - LANCZOS_LOBES, LANCZOS_LOBES + 1, dtype=torch.float64)
    weights = _lanczos(centres[:, None] - taps)
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
    matrix.scatter_add_(1, taps.clamp(0, n_in - 1).long(), weights)
    return (matrix / matrix.sum(1, keepdim=True)).float()


def area_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """[n_out, n_in] box average: output pixel i is the mean of the input over its footprint."""
    edges = torch.arange(n_out + 1, dtype=torch.float64) * (n_in / n_out)
    left, right = edges[:-1, None], edges[1:, None]
    pixels = torch.arange(n_in, dtype=torch.float64)[None]
    overlap = (torch.minimum(right, pixels + 1) - torch.maximum(left, pixels)).clamp_min(0)
    return (overlap / overlap.sum(1, keepdim=True)).float()


@functools.lru_cache(maxsize=16)
def resize_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """Lanczos-3 to a larger size, area to a smaller one, identity to the same (built once per
    pair of sizes: a decode asks for the same few matrices every frame; callers do not modify it)."""
    if n_out == n_in:
        return torch.eye(n_in)
    return lanczos_matrix(n_in, n_out) if n_out > n_in else area_matrix(n_in, n_out)


def resize(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, height, width], each axis by ``resize_matrix``."""
    height, width = size
    rows = resize_matrix(frames.shape[-2], height).to(frames.device, frames.dtype)
    columns = resize_matrix(frames.shape[-1], width).to(frames.device, frames.dtype)
    return rows @ frames @ columns.T


def is_upscale(coded: tuple[int, int], size: tuple[int, int]) -> bool:
    """Both axes at least as large and one larger: where the model's own detail is added."""
    return all(s >= c for s, c in zip(size, coded)) and size != coded
