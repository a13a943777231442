"""Frame-wise backbones (issue 4) at an equal parameter budget and equal CPU training time.

Regression (all 32 frames) and interpolation (train on the 16 even frames, score the 15 odd frames
between them, rendered from the file at twice the frame rate); the listed models run one after another:

    python benchmarks/experiments/framewise_experiments.py --models nerv,enerv,hnerv,snerv-b,snerv-t --cpu-seconds 300
    python benchmarks/experiments/framewise_experiments.py --interpolation --models nerv,enerv,hnerv,snerv-b,snerv-t --cpu-seconds 300
    python benchmarks/experiments/framewise_experiments.py --table          # results.md from the JSON files

Setup: Big Buck Bunny (the bundled sample) at 320x180, frames 0-31; every model sized by its own
``config_for_budget`` to at most --params parameters (embeddings included: they are in the file);
1 thread, the encoder's own precision choice (bf16 autocast where it measures faster), seed 0,
default loss (l2), the backbone's own lr and schedule. Equal CPU time: every encode trains for
--cpu-seconds of process CPU time (``train_seconds`` with the "cpu" clock: ``time.process_time``,
not wall time, so other jobs on the machine do not bias it), 5/6 of it training and 1/6
fine-tuning after 10% pruning, the learning-rate schedule following the budget spent; the table
reports the training CPU seconds actually spent. Quantization at a fixed 8 bits (embeddings
6 bits, the papers' setting); bpp and PSNR are measured on the decoder's output of the written .nvc.
Results: benchmarks/experiments/results/framewise/{regression,interpolation}_<model>.json and results.md (the
.nvc files are left beside them, not committed).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from nvcodec.api import EncodeSettings, RenderRequest, decode, encode
from nvcodec.compress.ratecontrol import (
    EXPECTED_BITS_PER_PARAM,
    FILE_OVERHEAD_BYTES,
    PER_TENSOR_OVERHEAD_BYTES,
)
from nvcodec.families import backbone_class
from nvcodec.families import family_names as available_models
from nvcodec.io import Video, read_video, sample_clip_path
from nvcodec.metrics import psnr
from nvcodec.models.base import ANY_TIME

RESULTS = Path(__file__).parent / "results" / "framewise"
WIDTH, HEIGHT, FRAMES = 320, 180, 32


def bpp_for_params(params: int, video: Video) -> float:
    """The --bpp whose parameter budget (ratecontrol.param_budget) is ``params``: sizes every model alike."""
    target_bytes = params * EXPECTED_BITS_PER_PARAM / 8 + FILE_OVERHEAD_BYTES + PER_TENSOR_OVERHEAD_BYTES * 12 + 1
    return 8 * target_bytes / video.num_pixels


def run(name: str, video: Video, params: int, cpu_seconds: float, out: Path) -> dict:
    settings = EncodeSettings(
        model=name,
        bpp=bpp_for_params(params, video),
        train_seconds=cpu_seconds,
        train_clock="cpu",
        device="cpu",
        amp=None,
        quant_bits=8.0,
        resume=False,
        seed=0,
    )
    marks: list[tuple[float, int]] = []
    start = time.process_time()
    report = encode(video, out, settings, progress=lambda p: marks.append((time.process_time(), p.step)))
    total = time.process_time() - start
    return {
        "model": name,
        "steps": marks[-1][1] if marks else 0,
        "train_cpu_s": round(marks[-1][0] - start, 1) if marks else None,
        "encode_cpu_s": round(total, 1),
        "report": asdict(report),
    }


def regression(name: str, args) -> dict:
    video = read_video(sample_clip_path(), (0, FRAMES), (WIDTH, HEIGHT))
    result = run(name, video, args.params, args.cpu_seconds, RESULTS / f"regression_{name}{args.suffix}.nvc")
    result["setting"] = {
        "frames": FRAMES,
        "size": [WIDTH, HEIGHT],
        "params_budget": args.params,
        "cpu_seconds": args.cpu_seconds,
    }
    return result


def interpolation(name: str, args) -> dict:
    """Train on frames 0, 2, ..., 30; render the file at twice its frame rate; score frames 1, 3, ..., 29."""
    full = read_video(sample_clip_path(), (0, FRAMES), (WIDTH, HEIGHT))
    even = Video(np.ascontiguousarray(full.frames[0::2]), Fraction(full.fps) / 2)
    path = RESULTS / f"interpolation_{name}{args.suffix}.nvc"
    result = run(name, even, args.params, args.cpu_seconds, path)
    doubled = decode(path, request=RenderRequest(fps=Fraction(full.fps))).frames  # 31 frames: 0, 0.5, ..., 15
    odd_true = full.frames[1 : FRAMES - 1 : 2]
    result["interpolated_psnr"] = psnr(odd_true, doubled[1::2])
    result["coded_frames_psnr"] = psnr(even.frames, doubled[0::2])
    result["setting"] = {
        "train_frames": "0,2,...,30",
        "scored_frames": "1,3,...,29",
        "size": [WIDTH, HEIGHT],
        "params_budget": args.params,
        "cpu_seconds": args.cpu_seconds,
    }
    return result


def table() -> str:
    lines = ["# Frame-wise backbones: BBB 320x180, 32 frames, equal parameters and CPU time", ""]
    rows = sorted(RESULTS.glob("regression_*.json"))
    if rows:
        lines += [
            "| model | params | steps | train CPU s | bpp | PSNR (dB) | MS-SSIM |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in rows:
            r = json.loads(p.read_text())
            rep = r["report"]
            lines.append(
                f"| {p.stem.removeprefix('regression_')} | {rep['num_params']} | {r['steps']} "
                f"| {r['train_cpu_s']} | {rep['bpp']:.4f} | {rep['psnr']:.2f} | {rep['ms_ssim']:.4f} |"
            )
    rows = sorted(RESULTS.glob("interpolation_*.json"))
    if rows:
        lines += [
            "",
            "Interpolation: trained on the 16 even frames, PSNR of the 15 odd frames between them.",
            "",
            "| model | params | steps | train CPU s | coded frames PSNR | interpolated PSNR |",
            "|---|---|---|---|---|---|",
        ]
        for p in rows:
            r = json.loads(p.read_text())
            lines.append(
                f"| {p.stem.removeprefix('interpolation_')} | {r['report']['num_params']} | {r['steps']} "
                f"| {r['train_cpu_s']} | {r['coded_frames_psnr']:.2f} | {r['interpolated_psnr']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="nerv,enerv,hnerv,snerv-b,snerv-t")
    parser.add_argument("--params", type=int, default=300_000)
    parser.add_argument("--cpu-seconds", type=float, default=240.0)
    parser.add_argument("--interpolation", action="store_true")
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--suffix", default="", help="appended to the result names, e.g. _171s for an extra budget")
    args = parser.parse_args()
    torch.set_num_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.table:
        for name in args.models.split(","):
            if name not in available_models():
                print(f"skip {name}: not registered in this build")
                continue
            if args.interpolation and ANY_TIME not in backbone_class(name).capabilities:
                print(f"skip {name}: does not declare any_time")
                continue
            kind = "interpolation" if args.interpolation else "regression"
            try:
                result = interpolation(name, args) if args.interpolation else regression(name, args)
            except Exception as exc:  # one broken backbone must not stop the others' runs
                print(f"{name} failed: {exc!r}", flush=True)
                continue
            (RESULTS / f"{kind}_{name}{args.suffix}.json").write_text(json.dumps(result, indent=2))
            print(
                json.dumps({k: v for k, v in result.items() if k != "report"}),
                result["report"]["psnr"],
                result["report"]["bpp"],
                flush=True,
            )
    (RESULTS / "results.md").write_text(table())
    print(table())


if __name__ == "__main__":
    main()
