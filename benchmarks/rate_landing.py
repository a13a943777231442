#!/usr/bin/env python
"""Does every backbone land on --bpp, and does rate-aware training's estimate match the file?

For each backbone and target, one rate-aware encode of Big Buck Bunny (320x180, 32 frames) with
a short process-CPU training budget; the table gives the written bpp against the target and the
estimated against the written bytes, or the encoder's message where the target cannot be met.

    python benchmarks/rate_landing.py --cpu-seconds 20 -o benchmarks/results/rate_landing

Quality is not the point here (the budgets are short); landing is.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from nvcodec.api import EncodeSettings, encode
from nvcodec.errors import RateError
from nvcodec.families import family_names as available_models
from nvcodec.io import read_video, sample_clip_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(available_models()))
    parser.add_argument("--bpp", default="0.05,0.1,0.2")
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-o", "--out", default="benchmarks/results/rate_landing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    video = read_video(sample_clip_path(), (0, 32), (320, 180))
    rows = []
    for model in args.models.split(","):
        for target in (float(b) for b in args.bpp.split(",")):
            settings = EncodeSettings(
                model=model, bpp=target, train_seconds=args.cpu_seconds, train_clock="cpu", resume=False
            )
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    r = encode(video, Path(tmp) / "x.nvc", settings)
                except RateError as exc:
                    rows.append({"model": model, "target_bpp": target, "error": str(exc)})
                    print(f"{model} {target}: {exc}", flush=True)
                    continue
            row = {
                "model": model,
                "target_bpp": target,
                "bpp": r.bpp,
                "file_bytes": r.file_bytes,
                "estimated_bytes": r.estimated_bytes,
                "psnr": r.psnr,
                "lambda": r.lam,
            }
            row["landing_pct"] = 100 * (r.bpp - target) / target
            row["estimate_pct"] = 100 * (r.estimated_bytes - r.file_bytes) / r.file_bytes
            rows.append(row)
            print(
                f"{model} {target}: {r.bpp:.4f} bpp ({row['landing_pct']:+.1f} %), estimate "
                f"{r.estimated_bytes} vs {r.file_bytes} bytes ({row['estimate_pct']:+.1f} %), {r.psnr:.2f} dB",
                flush=True,
            )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({"cpu_seconds": args.cpu_seconds, "threads": args.threads, "rows": rows}, indent=1)
    )
    lines = [
        "| backbone | target bpp | written bpp | landing | estimated / written bytes | estimate error | PSNR (dB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['model']} | {row['target_bpp']:g} | - | - | - | - | {row['error']} |")
        else:
            lines.append(
                f"| {row['model']} | {row['target_bpp']:g} | {row['bpp']:.4f} | {row['landing_pct']:+.1f} % | "
                f"{row['estimated_bytes']} / {row['file_bytes']} | {row['estimate_pct']:+.1f} % | "
                f"{row['psnr']:.2f} |"
            )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
