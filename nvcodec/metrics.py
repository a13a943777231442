"""Quality and rate measures, computed the same way for nvcodec and for the anchors.

PSNR is the mean over frames of per-frame PSNR on 8-bit RGB (peak 255), the convention of the
INR literature. Y-PSNR uses BT.601 full-range luma (Y = 0.299 R + 0.587 G + 0.114 B).
SSIM uses an 11x11 Gaussian window (sigma 1.5) on [0, 1] values; MS-SSIM uses the five
standard weights, dropping the coarsest scales for pictures too small to hold them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
PSNR_CAP_DB = 100.0  # reported for identical frames instead of infinity


def bpp(file_bytes: int, width: int, height: int, frames: int) -> float:
    """Bits per pixel: 8 x file size / (W x H x frames)."""
    return 8.0 * file_bytes / (width * height * frames)


def _per_frame_mse(ref: np.ndarray, dist: np.ndarray) -> np.ndarray:
    if ref.shape != dist.shape:
        raise ValueError(f"shape mismatch: {ref.shape} vs {dist.shape}")
    diff = ref.astype(np.float64) - dist.astype(np.float64)
    return (diff * diff).reshape(ref.shape[0], -1).mean(axis=1)


def psnr_from_mse(mse: float, peak: float = 255.0) -> float:
    return PSNR_CAP_DB if mse <= 0 else min(PSNR_CAP_DB, 10.0 * math.log10(peak * peak / mse))


def psnr(ref: np.ndarray, dist: np.ndarray) -> float:
    """Mean of per-frame RGB PSNR in dB for uint8 [T, H, W, 3] videos."""
    return float(np.mean([psnr_from_mse(m) for m in _per_frame_mse(ref, dist)]))


def y_psnr(ref: np.ndarray, dist: np.ndarray) -> float:
    """Mean of per-frame PSNR of BT.601 full-range luma."""
    weights = np.array([0.299, 0.587, 0.114])
    return float(np.mean([psnr_from_mse(m) for m in _per_frame_mse(ref @ weights, dist @ weights)]))


def _gaussian_window(channels: int, size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image SSIM and contrast-structure terms for [N, C, H, W] inputs in [0, 1]."""
    c1, c2 = 0.01**2, 0.03**2
    channels = x.shape[1]
    pad = 0 if min(x.shape[-2:]) >= window.shape[-1] else None
    if pad is None:  # picture smaller than the window: shrink the window
        size = min(x.shape[-2:]) | 1
        window = _gaussian_window(channels, size, 1.5, x.device).to(x.dtype)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x * mu_x
    syy = blur(y * y) - mu_y * mu_y
    sxy = blur(x * y) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1) * cs
    return ssim_map.mean(dim=(1, 2, 3)), cs.mean(dim=(1, 2, 3))


def ssim_torch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Differentiable mean SSIM of [N, C, H, W] tensors in [0, 1] (used by the training loss)."""
    window = _gaussian_window(x.shape[1], device=x.device).to(x.dtype)
    return _ssim_terms(x, y, window)[0].mean()


def ms_ssim_torch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image MS-SSIM of [N, C, H, W] tensors in [0, 1]."""
    window = _gaussian_window(x.shape[1], device=x.device).to(x.dtype)
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and min(x.shape[-2:]) // 2**scales >= window.shape[-1]:
        scales += 1
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    values = []
    for level in range(scales):
        ssim, cs = _ssim_terms(x, y, window)
        values.append(torch.relu(ssim if level == scales - 1 else cs))
        if level < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stacked = torch.stack(values, dim=0)  # [scales, N]
    return torch.prod(stacked ** weights[:, None], dim=0)


def _as_tensor(frames: np.ndarray) -> torch.Tensor:
    """float32 is ample here (differs from float64 by about 1e-7) and about 60x faster on CPU."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(torch.float32) / 255.0


@torch.no_grad()
def ssim(ref: np.ndarray, dist: np.ndarray, batch: int = 8) -> float:
    """Mean SSIM over frames of uint8 RGB videos."""
    window = _gaussian_window(3)
    values = [
        _ssim_terms(_as_tensor(ref[i : i + batch]), _as_tensor(dist[i : i + batch]), window)[0]
        for i in range(0, len(ref), batch)
    ]
    return float(torch.cat(values).double().mean())


@torch.no_grad()
def ms_ssim(ref: np.ndarray, dist: np.ndarray, batch: int = 8) -> float:
    """Mean MS-SSIM over frames of uint8 RGB videos."""
    values = [
        ms_ssim_torch(_as_tensor(ref[i : i + batch]), _as_tensor(dist[i : i + batch]))
        for i in range(0, len(ref), batch)
    ]
    return float(torch.cat(values).double().mean())
