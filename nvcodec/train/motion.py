"""Encoder-side motion aids from OpenCV's DIS optical flow; none of it reaches the file.

Two objectives use the clip's motion as a prior for times between the coded frames:

- ``dis_flow``: the velocity of every pixel, for SIREN's optical-flow regularizer;
- ``midpoint_frames``: a motion-compensated estimate of the frame halfway between each pair of
  neighbours, for CoordFlow's in-between supervision (``interp_weight``).

DIS (Kroeger et al., 2016) ships with ``opencv-python-headless``, already an encoder dependency
(Canny for CoordFlow's loss weights); the papers used learned flow (GMA), which we cannot download.
"""

from __future__ import annotations

import numpy as np


def _dis(height: int, width: int):
    import cv2  # encoder-only dependency (opencv-python-headless)

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    if min(height, width) < 16:  # DIS patches are 8x8 (medium preset); tiny frames need smaller ones
        dis.setPatchSize(4)
        dis.setPatchStride(2)
    return dis


def _grey(frames: np.ndarray) -> list[np.ndarray]:
    import cv2

    return [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]


def dis_flow(frames: np.ndarray) -> np.ndarray:
    """Per-frame velocity in pixels per frame, float32 [T, H, W, 2] as (u, v), from OpenCV DIS.

    The velocity at frame k is the central estimate (flow(k -> k+1) - flow(k -> k-1)) / 2,
    one-sided at the ends.
    """
    count, height, width = frames.shape[:3]
    velocity = np.zeros((count, height, width, 2), np.float32)
    if count < 2:
        return velocity
    grey, dis = _grey(frames), _dis(height, width)
    weight = np.zeros((count, 1, 1, 1), np.float32)
    for k in range(count - 1):
        velocity[k] += dis.calc(grey[k], grey[k + 1], None)  # where frame k's pixels go at k + 1
        velocity[k + 1] -= dis.calc(grey[k + 1], grey[k], None)  # minus where k + 1's pixels came from
        weight[k] += 1
        weight[k + 1] += 1
    return velocity / weight


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: out(x) = image(x + flow(x)), bilinear, edges replicated."""
    import cv2

    height, width = image.shape[:2]
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def midpoint_frames(frames: np.ndarray) -> np.ndarray:
    """uint8 frames [T, H, W, 3] -> uint8 [T - 1, H, W, 3]: the frames at times k + 1/2.

    Classical bidirectional motion-compensated interpolation: frame k fetched half-way along the
    flow from k + 1 back to k, frame k + 1 half-way along the flow from k to k + 1, averaged. It
    assumes the flow at the midpoint's pixel equals the flow at the same pixel of the neighbours,
    which holds for the smooth, small motion it is used on. Rounded to uint8 like the frames, so a
    long clip's midpoints take no more memory than the clip.
    """
    count, height, width = frames.shape[:3]
    if count < 2:
        return np.zeros((0, height, width, 3), np.uint8)
    grey, dis = _grey(frames), _dis(height, width)
    mids = np.empty((count - 1, height, width, 3), np.uint8)
    for k in range(count - 1):
        forward = dis.calc(grey[k], grey[k + 1], None)
        backward = dis.calc(grey[k + 1], grey[k], None)
        before = _warp(frames[k].astype(np.float32), backward / 2)
        after = _warp(frames[k + 1].astype(np.float32), forward / 2)
        mids[k] = np.clip(np.rint((before + after) / 2), 0, 255)
    return mids
