"""How much could a predicted frame get from the frame before it, and what would its motion cost? (issue 27)

An upper bound for the design of a motion-compensated family, on the RD benchmark's clips (BBB
320x180x32, carphone 176x144x96): each frame t >= 1 predicted from the *source* frame t - 1 (a
decoder would have the decoded one, so these PSNRs are optimistic), with

* no motion (copy the frame before);
* one motion vector per BxB block (the mean of OpenCV DIS's dense flow over the block, rounded to
  1/4 pixel), the reference fetched with bicubic interpolation;
* the dense DIS flow itself, per pixel (no motion bits counted);
* bidirectional: the mean of the blockwise predictions from t - 1 and t + 1 (a B frame).

Motion bits: the empirical entropy of each vector's difference from the vector to its left (per
component, quarter-pixel units, pooled over the clip) times the number of vectors: what an
adaptive coder of that simple kind would spend, per frame and as bpp. Compare with what a frame may
spend in all: 0.05 bpp is 360 bytes per 320x180 frame.

    python benchmarks/experiments/inter_prediction_potential.py   # the table of results/inter_prediction_potential/summary.md
"""

from __future__ import annotations

import numpy as np

from nvcodec.bench.clips import ClipSpec, load_clip
from nvcodec.families.mcgrid.motion import block_field  # one vector per block, quarter pixels
from nvcodec.io import sample_clip_path
from nvcodec.metrics import psnr

BLOCKS = (4, 8, 16, 32)
QUARTER = 4  # motion vectors in quarter pixels


def flows_to_previous(frames: np.ndarray, step: int) -> list[np.ndarray]:
    """Dense backward flow of every frame t to frame t - step (where t's pixels come from)."""
    import cv2

    grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    if step > 0:
        return [dis.calc(grey[t], grey[t - step], None) for t in range(step, len(frames))]
    return [dis.calc(grey[t], grey[t - step], None) for t in range(len(frames) + step)]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward bicubic warp: out(x) = image(x + flow(x)), edges replicated; float32."""
    import cv2

    height, width = image.shape[:2]
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(
        image.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )


def expand(field: np.ndarray, block: int, height: int, width: int) -> np.ndarray:
    """Block vectors (quarter pixels) as a per-pixel flow in pixels."""
    return np.repeat(np.repeat(field, block, axis=0), block, axis=1)[:height, :width].astype(np.float32) / QUARTER


def entropy_bits(values: np.ndarray) -> float:
    """Empirical entropy of the values, in bits per value."""
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def to_uint8(frames: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def study(name: str, spec: ClipSpec) -> list[str]:
    frames = load_clip(spec).video.frames
    count, height, width = frames.shape[:3]
    truth = frames[1:]
    rows = [f"| {name}, copy of t - 1 | - | {psnr(truth, frames[:-1]):.2f} | - | - | - |"]
    backward = flows_to_previous(frames, 1)  # t -> t - 1, t = 1 .. count - 1
    forward = flows_to_previous(frames, -1)  # t -> t + 1, t = 0 .. count - 2
    dense = np.stack([warp(frames[t], f) for t, f in zip(range(count - 1), backward)])
    rows.append(f"| {name}, dense DIS flow, bicubic fetch | pixel | {psnr(truth, to_uint8(dense)):.2f} | - | - | - |")
    for block in BLOCKS:
        fields = [block_field(f, block) for f in backward]
        predicted = np.stack(
            [warp(frames[t], expand(v, block, height, width)) for t, v in zip(range(count - 1), fields)]
        )
        differences = np.concatenate([np.diff(v, axis=1, prepend=0).reshape(-1, 2) for v in fields])
        bits_per_vector = entropy_bits(differences[:, 0]) + entropy_bits(differences[:, 1])
        vectors = fields[0].shape[0] * fields[0].shape[1]
        frame_bytes = bits_per_vector * vectors / 8
        middle = range(1, count - 1)  # frames with both neighbours
        back = {t: v for t, v in zip(range(1, count), fields)}
        ahead = {t: block_field(f, block) for t, f in zip(range(count - 1), forward)}
        both = np.stack(
            [
                (
                    warp(frames[t - 1], expand(back[t], block, height, width))
                    + warp(frames[t + 1], expand(ahead[t], block, height, width))
                )
                / 2
                for t in middle
            ]
        )
        rows.append(
            f"| {name}, {block}x{block} blocks, 1/4 px | {vectors} | {psnr(truth, to_uint8(predicted)):.2f} | "
            f"{psnr(frames[1:-1], to_uint8(both)):.2f} | {frame_bytes:.0f} | {8 * frame_bytes / (height * width):.4f} |"
        )
    return rows


def main() -> None:
    carphone = str(sample_clip_path().parent / "carphone_pristine.mp4")
    lines = [
        "# Inter prediction potential (issue 27): each frame from the source frame before it",
        "",
        "Made by `python benchmarks/experiments/inter_prediction_potential.py` (the script's docstring says "
        "how). PSNR: RGB, of the prediction alone (no residual), over frames 1..N-1; B: the mean of the "
        "predictions from both neighbours, over frames 1..N-2. Motion bytes: per frame, entropy-coded as "
        "left-neighbour differences. At 0.05 bpp a 320x180 frame has 360 bytes in all, a 176x144 frame 158.",
        "",
        "| clip, prediction | vectors per frame | P PSNR dB | B PSNR dB | motion bytes per frame | motion bpp |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += study("BBB 320x180x32", ClipSpec(None, (0, 32), (320, 180)))
    lines += study("carphone 176x144x96", ClipSpec(carphone, (0, 96), None))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
