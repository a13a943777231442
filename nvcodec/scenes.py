"""Where to cut a long video into independently coded segments, and how to share the bits.

Works on the small luma thumbnails ``source.scan`` keeps (numpy only, no torch):

* a **scene cut** is a frame much unlike the one before it, both absolutely and against the
  motion around it (so a fast pan is not a cut);
* segments run from cut to cut, no shorter than ``min_seconds`` (short scenes merge) and no
  longer than ``max_seconds`` (a long scene is cut where the picture changes most);
* each segment's **difficulty** is its detail plus its motion; the one ``--bpp`` of the file
  is shared by pixels times the square root of difficulty, within 0.6-1.6x of the even share,
  so hard segments get more bits without starving easy ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CUT_LEVEL = 12.0  # mean absolute luma difference (0..255) a cut must exceed
CUT_CONTRAST = 3.0  # ... and this many times the typical difference around it
SHARE_LIMITS = (0.6, 1.6)  # a segment's bits per pixel, relative to the whole file's


@dataclass(frozen=True)
class Segment:
    start: int  # first frame
    stop: int  # one past the last frame

    @property
    def num_frames(self) -> int:
        return self.stop - self.start


def frame_differences(thumbs: np.ndarray) -> np.ndarray:
    """Mean absolute luma difference of each frame to the one before (0 for the first)."""
    if len(thumbs) < 2:
        return np.zeros(len(thumbs))
    steps = np.abs(np.diff(thumbs.astype(np.int16), axis=0)).mean(axis=(1, 2))
    return np.concatenate([[0.0], steps])


def scene_cuts(thumbs: np.ndarray, fps: float) -> list[int]:
    """Frames that start a new scene."""
    diff = frame_differences(thumbs)
    window = max(2, round(fps))
    cuts = []
    for t in range(1, len(diff)):
        around = np.concatenate([diff[max(1, t - window) : t], diff[t + 1 : t + 1 + window]])
        typical = float(np.median(around)) if len(around) else 0.0
        if diff[t] > CUT_LEVEL and diff[t] > CUT_CONTRAST * typical:
            cuts.append(t)
    return cuts


def split(thumbs: np.ndarray, fps: float, max_seconds: float) -> list[Segment]:
    """Segments of ``max_seconds / 2`` to ``max_seconds`` that start at scene cuts where they can.

    ``max_seconds`` 0 (or a clip shorter than it) gives one segment.
    """
    total = len(thumbs)
    if max_seconds <= 0 or total <= max_seconds * fps:
        return [Segment(0, total)]
    longest = max(1, round(max_seconds * fps))
    shortest = max(1, longest // 2)
    diff = frame_differences(thumbs)
    cuts = set(scene_cuts(thumbs, fps))
    bounds, start = [0], 0
    while total - start > longest:
        window = range(start + shortest, min(start + longest, total - shortest) + 1)
        at_cuts = [t for t in window if t in cuts]
        # the first scene cut in reach; else the biggest change in reach
        start = at_cuts[0] if at_cuts else max(window, key=lambda t: (diff[t], -t)) if len(window) else start + longest
        bounds.append(start)
    bounds.append(total)
    return [Segment(a, b) for a, b in zip(bounds, bounds[1:])]


def chains(segments: list[Segment], cuts: set[int], length: int) -> list[tuple[int, ...]]:
    """Segment indices grouped into chains of consecutive segments, each warm-started from the one
    before: a chain starts at the first segment, at a segment that starts at a scene cut (its
    content is new) and after ``length`` segments. Fixed by the plan alone, never by the workers."""
    grouped: list[list[int]] = []
    for index, segment in enumerate(segments):
        if not grouped or segment.start in cuts or len(grouped[-1]) >= length:
            grouped.append([])
        grouped[-1].append(index)
    return [tuple(chain) for chain in grouped]


def difficulty(thumbs: np.ndarray, segment: Segment) -> float:
    """Detail (mean gradient) plus motion (mean frame difference) of the segment's thumbnails."""
    part = thumbs[segment.start : segment.stop].astype(np.float32)
    detail = float(np.abs(np.diff(part, axis=1)).mean() + np.abs(np.diff(part, axis=2)).mean())
    motion = float(np.abs(np.diff(part, axis=0)).mean()) if len(part) > 1 else 0.0
    return 1.0 + detail + 2.0 * motion


def share_bits(total_bits: float, pixels: list[int], difficulties: list[float]) -> list[float]:
    """Each segment's bits: pixels x sqrt(difficulty), its rate clipped to SHARE_LIMITS of the
    file's, then all scaled to add up to ``total_bits``."""
    count, weight = np.array(pixels, np.float64), np.sqrt(np.array(difficulties, np.float64))
    relative = np.clip(weight * count.sum() / (weight * count).sum(), *SHARE_LIMITS)
    bits = relative * count
    return [float(b) for b in bits * total_bits / bits.sum()]
