"""Rendering a pixel-wise file at another size must beat resampling its native decode (issue 29).

``benchmarks/any_scale.py`` measures it on real clips; these tests keep it from regressing
unseen on the session's tiny files (8 frames of Big Buck Bunny at 64x36, scored against the same
frames at 128x72 and 32x18).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nvcodec.api import RenderRequest, decode
from nvcodec.bench.resample import resample
from nvcodec.io import read_video
from nvcodec.metrics import psnr
from nvcodec.models.resampling import area_matrix, lanczos_matrix, resize

# Measured on the tiny files at seeds 0, 1, 2 (x2: family - bilinear of the native decode, dB):
# coordflow +0.03, +0.02, +0.03 and siren +0.08, +0.15, +0.20. At 23 dB native the coding error
# dominates every x2 figure, so the margin is small; the test asks for more than the seeds' spread
# (0.01 dB). Point-sampling the model at x2 (the render before issue 29) gave +0.01 to +0.18 here,
# so at x2 this guards against falling below bilinear, while the x0.5 test below tells the two
# renders apart (point samples: -0.09 to -0.22 dB against area for coordflow).
MARGIN_X2_DB = 0.01


@pytest.mark.parametrize("family", ["coordflow", "siren"])
def test_scale_2_beats_bilinear_of_the_native_decode(family, tiny_encode, sample_path):
    path, _ = tiny_encode(family)
    native = decode(path).frames
    truth = read_video(sample_path, (0, 8), (128, 72)).frames
    twice = decode(path, request=RenderRequest(scale=2.0)).frames
    margin = psnr(truth, twice) - psnr(truth, resample(native, 128, 72, "bilinear"))
    assert margin > MARGIN_X2_DB, f"{family} --scale 2 only {margin:+.2f} dB over bilinear of its native decode"


@pytest.mark.parametrize("family", ["coordflow", "siren"])
def test_scale_half_is_anti_aliased(family, tiny_encode, sample_path):
    """The half-size frames are box averages of the coded grid (point samples aliased: -0.5 dB and more)."""
    path, _ = tiny_encode(family)
    native = decode(path).frames
    truth = read_video(sample_path, (0, 8), (32, 18)).frames
    half = psnr(truth, decode(path, request=RenderRequest(scale=0.5)).frames)
    assert half >= psnr(truth, resample(native, 32, 18, "area")) - 0.01


def test_resampling_matrices():
    lanczos, area = lanczos_matrix(5, 11), area_matrix(10, 4)
    assert torch.allclose(lanczos.sum(1), torch.ones(11)) and torch.allclose(area.sum(1), torch.ones(4))
    # area: output pixel 0 of 10 -> 4 covers input pixels 0, 1 and half of 2
    assert torch.allclose(area[0, :3], torch.tensor([0.4, 0.4, 0.2]))
    # a linear ramp stays linear inside the frame under Lanczos (it reproduces polynomials of degree 1)
    ramp = torch.arange(8, dtype=torch.float32)
    up = lanczos_matrix(8, 16) @ ramp
    assert torch.allclose(up[6:10], (torch.arange(6, 10) + 0.5) / 2 - 0.5, atol=0.02)
    frames = torch.rand(2, 3, 6, 8)
    assert torch.equal(resize(frames, (6, 8)), frames)
    smooth = torch.sin(torch.arange(8.0) / 3)[None] * torch.cos(torch.arange(6.0) / 3)[:, None]
    assert torch.allclose(
        resize(resize(smooth[None, None], (12, 16)), (6, 8))[0, 0, 1:-1, 1:-1], smooth[1:-1, 1:-1], atol=0.03
    )
    assert np.isclose(float(resize(torch.ones(1, 1, 5, 7), (3, 2)).std()), 0.0, atol=1e-6)
