"""What a user does instead of ``nvc decode --scale``: resample the decoded frames with swscale.

``--scale`` is worth having only where it beats decoding at the coded size and resampling with a
standard filter (issue 29), so these are the baselines of ``benchmarks/any_scale.py`` and of the
test that watches it. swscale (through PyAV) is what ffmpeg users get; its filters adapt their
support to the ratio, so a downscale is anti-aliased.
"""

from __future__ import annotations

from typing import Literal

import av
import numpy as np

Filter = Literal["bilinear", "bicubic", "lanczos", "area"]
FILTERS: tuple[Filter, ...] = ("bilinear", "bicubic", "lanczos", "area")


def resample(frames: np.ndarray, width: int, height: int, method: Filter) -> np.ndarray:
    """uint8 RGB frames [T, H, W, 3] -> [T, height, width, 3] through swscale's ``method``."""
    if method not in FILTERS:
        raise ValueError(f"filter {method!r}: use one of {', '.join(FILTERS)}")
    return np.stack(
        [
            av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            .reformat(width=width, height=height, format="rgb24", interpolation=method.upper())
            .to_ndarray()
            for frame in frames
        ]
    )
