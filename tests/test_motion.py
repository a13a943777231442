"""Encoder-side motion aids (nvcodec/train/motion.py): DIS velocity and motion-compensated midpoints."""

from __future__ import annotations

import numpy as np
import pytest

from nvcodec.metrics import psnr
from nvcodec.train.motion import dis_flow, midpoint_frames

from .conftest import moving_pattern


def test_dis_flow_measures_pixels_per_frame():
    velocity = dis_flow(moving_pattern(2.0))
    inner = velocity[:, 8:-8, 8:-8]
    assert velocity.shape == (4, 48, 64, 2)
    assert np.median(inner[..., 0]) == pytest.approx(2.0, abs=0.2)  # u: 2 px per frame to the right
    assert abs(np.median(inner[..., 1])) < 0.2
    assert dis_flow(moving_pattern(2.0)[:1]).max() == 0  # one frame: no motion to measure


def test_midpoints_follow_the_motion_where_averaging_blurs():
    """Every other frame of a texture moving 3 px/frame: the midpoints should be the dropped frames."""
    clip = moving_pattern(3.0, frames=7)
    coded, dropped = clip[::2], clip[1::2]
    mids = midpoint_frames(coded)
    assert mids.shape == (3, 48, 64, 3) and mids.dtype == np.uint8
    inner = (slice(None), slice(8, -8), slice(8, -8))
    average = np.rint((coded[:-1].astype(np.float64) + coded[1:]) / 2).astype(np.uint8)
    assert psnr(dropped[inner], mids[inner]) > psnr(dropped[inner], average[inner]) + 10
    assert psnr(dropped[inner], mids[inner]) > 35
    assert midpoint_frames(coded[:1]).shape == (0, 48, 64, 3)
