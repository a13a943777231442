"""The encoder's first guess of each predicted frame's motion: OpenCV DIS optical flow, one vector per block.

Training refines it through the rate-distortion loss; without it the motion would have to be
learned from zero, which a few hundred steps of gradient descent on a warp do not manage (the
gradient of a bicubic fetch reaches a pixel or two). Encoder only: nothing here is in the file.
"""

from __future__ import annotations

import math

import numpy as np


def frame_flows(frames: np.ndarray) -> list[np.ndarray]:
    """Dense backward flow of every frame t >= 1 to frame t - 1 (where t's pixels come from), [H, W, 2]
    pixels, from uint8 RGB frames [T, H, W, 3]."""
    import cv2

    grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return [dis.calc(grey[t], grey[t - 1], None) for t in range(1, len(frames))]


def block_field(flow: np.ndarray, block: int, scale: float = 4.0) -> np.ndarray:
    """One vector per ``block`` x ``block`` block (the mean flow over it, edges replicated), times
    ``scale`` and rounded: int [rows, cols, 2]."""
    height, width = flow.shape[:2]
    rows, cols = math.ceil(height / block), math.ceil(width / block)
    padded = np.pad(flow, ((0, rows * block - height), (0, cols * block - width), (0, 0)), mode="edge")
    return np.rint(padded.reshape(rows, block, cols, block, 2).mean(axis=(1, 3)) * scale).astype(np.int64)


def initial_motion(frames: np.ndarray, gop: int, block: int) -> np.ndarray:
    """Quarter-pixel block motion of every frame [T, 2, rows, cols] (x, then y); zero for intra frames."""
    height, width = frames.shape[1:3]
    motion = np.zeros((len(frames), 2, math.ceil(height / block), math.ceil(width / block)), np.float32)
    for t, flow in enumerate(frame_flows(frames), start=1):
        if t % gop:
            motion[t] = block_field(flow, block).transpose(2, 0, 1)
    return motion
