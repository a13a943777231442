"""Trace the lambda controller of one grid encode: lambda and estimate / target at every update.

    python benchmarks/experiments/grid_controller_trace.py --bpp 0.05 --train-time 120 --label base \
        [--rate-options '{"controller_gain": 0.2}']

Big Buck Bunny 320x180, frames 0:32, process-CPU budget, 2 threads; prints the file's bpp and
decoded PSNR, then 25 evenly spaced updates of the trace.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from nvcodec.compress import ratecontrol
from nvcodec.encoder import encode
from nvcodec.io import read_video, sample_clip_path
from nvcodec.settings import EncodeSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bpp", type=float, default=0.05)
    parser.add_argument("--train-time", type=float, default=120.0)
    parser.add_argument("--label", default="trace")
    parser.add_argument("--rate-options", default="{}", help="RateSettings fields as JSON")
    parser.add_argument("-o", "--output", default="/tmp")
    args = parser.parse_args()
    trace: list[tuple[float, float]] = []
    update = ratecontrol.LambdaController.update

    def traced(self, estimated_bits, *rest):
        lam = update(self, estimated_bits, *rest)
        trace.append((lam, estimated_bits / self.target_bits if self.target_bits else 0.0))
        return lam

    ratecontrol.LambdaController.update = traced
    torch.set_num_threads(2)
    video = read_video(sample_clip_path(), (0, 32), (320, 180))
    settings = EncodeSettings(
        model="grid",
        bpp=args.bpp,
        train_seconds=args.train_time,
        train_clock="cpu",
        rate_options=json.loads(args.rate_options),
    )
    report = encode(video, f"{args.output}/{args.label}.nvc", settings)
    t = np.array(trace)
    print(
        f"{args.label}: target {args.bpp} bpp, {args.train_time:g} CPU-s, rate options {args.rate_options}: "
        f"file {report.bpp:.4f} bpp, decoded PSNR {report.psnr:.2f} dB, {len(t)} controller updates"
    )
    for i in range(0, len(t), max(1, len(t) // 25)):
        print(f"  {i:6d} lambda {t[i, 0]:.3g} estimate/target {t[i, 1]:.3f}")
    print(f"  last   lambda {t[-1, 0]:.3g} estimate/target {t[-1, 1]:.3f}")


if __name__ == "__main__":
    main()
