"""The encoder's first guess of each predicted frame's motion: OpenCV DIS optical flow, one vector per block.

Training refines it through the rate-distortion loss; without it the motion would have to be
learned from zero, which a few hundred steps of gradient descent on a warp do not manage (the
gradient of a bicubic fetch reaches a pixel or two). Encoder only: nothing here is in the file.
"""

from __future__ import annotations

import math

import numpy as np

from .model import MCGridConfig


def backward_flows(frames: np.ndarray, pairs: list[tuple[int, int]]) -> list[np.ndarray]:
    """Dense flow of frame t to frame r (where t's pixels come from in r), [H, W, 2] pixels, for each
    pair (t, r), from uint8 RGB frames [T, H, W, 3]."""
    import cv2

    grey = {i: cv2.cvtColor(np.ascontiguousarray(frames[i]), cv2.COLOR_RGB2GRAY) for i in {i for p in pairs for i in p}}
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return [dis.calc(grey[t], grey[r], None) for t, r in pairs]


def block_mean(flow: np.ndarray, block: int) -> np.ndarray:
    """One vector per ``block`` x ``block`` block: the mean flow over it (edges replicated) [rows, cols, 2]."""
    height, width = flow.shape[:2]
    rows, cols = math.ceil(height / block), math.ceil(width / block)
    padded = np.pad(flow, ((0, rows * block - height), (0, cols * block - width), (0, 0)), mode="edge")
    return padded.reshape(rows, block, cols, block, 2).mean(axis=(1, 3))


def initial_motion(frames: np.ndarray, config: MCGridConfig) -> np.ndarray:
    """Quarter-pixel block motion of every frame [T, 2R, rows, cols] as the file codes it (x, then y, per
    reference): toward the first reference, then the second's difference from the first scaled to its
    distance (``MCGridConfig.backward_ratio``); zero where a frame has no such reference."""
    refs = config.references_per_frame
    rows, cols = math.ceil(frames.shape[1] / config.block), math.ceil(frames.shape[2] / config.block)
    motion = np.zeros((len(frames), 2 * refs, rows, cols), np.float32)
    # (a timing trial fits the first frames only: references beyond them get no estimate)
    pairs = [(t, r) for t in range(len(frames)) for r in config.references(t) if r < len(frames)]
    flows = dict(zip(pairs, backward_flows(frames, pairs)))
    for t in range(len(frames)):
        estimates = [flows[t, r] for r in config.references(t) if (t, r) in flows]
        if estimates:
            motion[t, 0:2] = np.rint(4 * block_mean(estimates[0], config.block)).transpose(2, 0, 1)
        if len(estimates) == 2:
            direct = -config.backward_ratio(t) * motion[t, 0:2]  # where linear motion would put it
            motion[t, 2:4] = np.rint(4 * block_mean(estimates[1], config.block).transpose(2, 0, 1) - direct)
    return motion


def unused_motion(config: MCGridConfig) -> np.ndarray:
    """bool [N, R]: True where frame t has no r-th reference (its motion there is unused)."""
    counts = np.array([len(config.references(t)) for t in range(config.num_frames)])
    return np.arange(config.references_per_frame)[None, :] >= counts[:, None]
