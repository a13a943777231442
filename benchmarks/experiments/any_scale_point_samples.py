"""The rendering before issue 29, on the files ``benchmarks/any_scale.py`` wrote: the model point-sampled
on the output grid (``PixelBackbone.render_grid``), paired per seed against the same filters as there.

    python benchmarks/experiments/any_scale_point_samples.py benchmarks/results/any_scale

Prints, per family, clip, rate and scale: mean (min to max over seeds) of point samples minus the bar.
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path

import torch

from nvcodec.api import decode
from nvcodec.bench.resample import resample
from nvcodec.bitstream import format as fmt
from nvcodec.io import read_video, sample_clip_path
from nvcodec.metrics import psnr
from nvcodec.render import build_backbone, to_uint8
from nvcodec.renderplan import scaled_size

SOURCES = {"bigbuckbunny": sample_clip_path(), "carphone_pristine": sample_clip_path().parent / "carphone_pristine.mp4"}
BARS = ((2.0, "bicubic"), (1.5, "bicubic"), (0.5, "area"))


def main(folder: Path) -> None:
    torch.set_num_threads(2)
    gaps = defaultdict(list)
    for path in sorted((folder / "streams").glob("*.nvc")):
        name = path.stem.rsplit("_s", 1)[0]  # family_source_bpp
        source = next(s for key, s in SOURCES.items() if f"_{key}_" in path.name)
        model = build_backbone(fmt.read(path.read_bytes()))
        height, width, frames = model.config.height, model.config.width, model.config.num_frames
        native = decode(path).frames
        times = torch.arange(frames) / max(frames - 1, 1)
        for scale, bar in BARS:
            w, h = scaled_size(width, height, scale)
            truth = read_video(source, frames=(0, frames), resize=(w, h)).frames
            with torch.inference_mode():
                points = to_uint8(model.render_grid(times, (h, w)))
            gaps[(name, scale)].append(psnr(truth, points) - psnr(truth, resample(native, w, h, bar)))
    for (name, scale), values in sorted(gaps.items()):
        print(f"{name} x{scale:g}: {statistics.mean(values):+.3f} ({min(values):+.3f} to {max(values):+.3f})")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
