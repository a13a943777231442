"""SIREN with and without the optical-flow regularizer (issue 5), at equal CPU time.

Every PSNR here is measured on frames the real decoder renders from the written ``.nvc`` file.

    python benchmarks/experiments/siren_experiments.py cost          # per-step CPU cost of the regularizer
    python benchmarks/experiments/siren_experiments.py interp        # interpolation: BBB 160x90, fit 8 even of 16 frames
    python benchmarks/experiments/siren_experiments.py narrow        # fitting 16 frames with narrow SIRENs (hidden <= 50)
    python benchmarks/experiments/siren_experiments.py roundtrip     # default pipeline (--bpp landing, pruning) to .nvc
    python benchmarks/experiments/siren_experiments.py all           # the four, one after the other

Options: ``--budget SECONDS`` (CPU seconds of training per run; defaults per experiment below),
``--out DIR`` (default benchmarks/experiments/results/siren). One thread (``torch.set_num_threads(1)``).

Equal CPU time: for each run the per-step CPU cost (``time.process_time``) of that model and
objective is measured on a few steps first, and the epochs are chosen so training (the main
stage plus the fine-tune stage ``fit`` adds, epochs // 5) fills the budget; the training CPU
time actually spent is measured too (between the first and last progress report) and written
beside the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from nvcodec import api
from nvcodec.compress.ratecontrol import expected_file_bytes
from nvcodec.families.siren.model import Siren, SirenConfig
from nvcodec.families.siren.objective import jacobian_dot, jacobian_dot_reverse
from nvcodec.io import Video, read_video, sample_clip_path
from nvcodec.metrics import psnr
from nvcodec.train.objectives import objective_for

ROOT = Path(__file__).resolve().parents[2]

SIZE = (160, 90)
FRAMES = 16
LAMBDA = 0.12


def clip() -> Video:
    return read_video(sample_clip_path(), (0, FRAMES), SIZE)


def bpp_for_hidden(video: Video, hidden: int) -> float:
    """The --bpp whose model plan gives exactly ``hidden`` features (so runs compare one network)."""
    cfg = SirenConfig(video.height, video.width, video.num_frames, hidden=hidden)
    bpp = 8 * (expected_file_bytes(Siren.count_params(cfg)) + 400) / video.num_pixels
    for _ in range(200):
        planned = api.plan_model(Siren, video, bpp).hidden
        if planned == hidden:
            return bpp
        bpp *= 0.997 if planned > hidden else 1.003
    raise RuntimeError(f"no --bpp plans hidden={hidden}")


def step_cost(video: Video, hidden: int, of_weight: float, steps: int = 6) -> float:
    """CPU seconds of one training step (forward, loss, backward, Adam) for this model and objective."""
    model = Siren(SirenConfig(video.height, video.width, video.num_frames, hidden=hidden))
    objective = objective_for(model, video.frames, torch.device("cpu"), "l2", 0, 1, {"of_weight": of_weight})
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    start = 0.0
    for i in range(steps + 2):
        if i == 2:
            start = time.process_time()
        loss, _ = objective.step(0, i, None)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.process_time() - start) / steps


def steps_per_epoch(video: Video) -> int:
    from nvcodec.families.siren.objective import SirenObjective

    return max(1, math.ceil(video.num_pixels / SirenObjective.pixels_per_step))


def epochs_for_budget(video: Video, hidden: int, of_weight: float, budget: float) -> tuple[int, float]:
    cost = step_cost(video, hidden, of_weight)
    epochs = max(1, int(budget / (cost * steps_per_epoch(video) * 1.2)))  # + epochs // 5 of fine-tuning
    return epochs, cost


def encode_run(
    video: Video,
    out: Path,
    hidden: int,
    of_weight: float,
    budget: float,
    *,
    bits: float | None = 8.0,
    prune: float = 0.0,
    bpp: float | None = None,
) -> dict:
    """One encode through api.encode; returns its report plus measured CPU times."""
    epochs, cost = epochs_for_budget(video, hidden, of_weight, budget)
    marks: list[float] = []

    def progress(p) -> None:
        marks.append(time.process_time())

    settings = api.EncodeSettings(
        model="siren",
        bpp=bpp or bpp_for_hidden(video, hidden),
        epochs=epochs,
        seed=0,
        device="cpu",
        amp=False,
        prune=prune,
        quant_bits=bits,
        resume=False,
        objective_options={"of_weight": of_weight},
    )
    start = time.process_time()
    report = api.encode(video, out, settings, progress=progress)
    total = time.process_time() - start
    record = {
        **report.__dict__,
        "hidden": hidden,
        "of_weight": of_weight,
        "epochs": epochs,
        "step_cpu_seconds": round(cost, 4),
        "train_cpu_seconds": round(marks[-1] - marks[0], 1),
        "encode_cpu_seconds": round(total, 1),
        "cpu_budget": budget,
    }
    print(
        json.dumps({k: record[k] for k in ("hidden", "of_weight", "epochs", "train_cpu_seconds", "psnr", "bpp")}),
        flush=True,
    )
    return record


def neighbour_average(frames: np.ndarray) -> np.ndarray:
    """Odd frames 1, 3, ... predicted as the rounded mean of their even neighbours."""
    even = frames[0::2].astype(np.uint16)
    return ((even[:-1] + even[1:] + 1) // 2).astype(np.uint8)


def run_interp(out: Path, budget: float) -> dict:
    """Fit SIREN (hidden 128, depth 5) to frames 0, 2, ..., 14; decode at twice the frame rate."""
    video = clip()
    observed = Video(video.frames[0::2], Fraction(video.fps) / 2)
    odd = video.frames[1:-1:2]  # frames 1..13: between two observed frames (15 would be extrapolation)
    rows = []
    for of_weight in (LAMBDA, 0.0):
        path = out / f"interp_lambda{of_weight:g}.nvc"
        record = encode_run(observed, path, 128, of_weight, budget)
        doubled = api.decode(path, request=api.RenderRequest(fps=Fraction(video.fps)))
        assert doubled.num_frames == 2 * observed.num_frames - 1
        record["observed_psnr_from_file"] = psnr(observed.frames, doubled.frames[0::2])
        record["interpolated_psnr_from_file"] = psnr(odd, doubled.frames[1::2])
        rows.append(record)
    baseline = psnr(odd, neighbour_average(video.frames[:15]))
    result = {
        "experiment": "interp",
        "clip": f"BBB {SIZE[0]}x{SIZE[1]}, frames 0-15; fit on 0,2,..,14",
        "neighbour_average_psnr": baseline,
        "runs": rows,
    }
    (out / "interp.json").write_text(json.dumps(result, indent=2))
    return result


def run_narrow(out: Path, budget: float, widths=(24, 48)) -> dict:
    """Fit all 16 frames with narrow SIRENs, with and without the regularizer (seed paper, Sec. 4.5)."""
    video = clip()
    rows = []
    for hidden in widths:
        for of_weight in (LAMBDA, 0.0):
            rows.append(encode_run(video, out / f"narrow_h{hidden}_lambda{of_weight:g}.nvc", hidden, of_weight, budget))
    result = {"experiment": "narrow", "clip": f"BBB {SIZE[0]}x{SIZE[1]}, frames 0-15", "runs": rows}
    (out / "narrow.json").write_text(json.dumps(result, indent=2))
    return result


def run_roundtrip(out: Path, budget: float) -> dict:
    """The default pipeline: --bpp 1.0 sizes the model, 10% pruning, quantization landed on the target."""
    video = clip()
    hidden = api.plan_model(Siren, video, 1.0).hidden
    record = encode_run(video, out / "roundtrip_bpp1.nvc", hidden, LAMBDA, budget, bits=None, prune=0.10, bpp=1.0)
    again = api.decode(out / "roundtrip_bpp1.nvc")
    record["psnr_redecoded"] = psnr(video.frames, again.frames)
    result = {"experiment": "roundtrip", "clip": f"BBB {SIZE[0]}x{SIZE[1]}, frames 0-15", "runs": [record]}
    (out / "roundtrip.json").write_text(json.dumps(result, indent=2))
    return result


def run_cost(out: Path) -> dict:
    """Per-step CPU seconds: plain, regularized (forward-mode JVP), and the reverse-mode alternative."""
    video = clip()
    observed = Video(video.frames[0::2], Fraction(video.fps) / 2)
    rows = []
    for hidden in (24, 48, 128):
        plain, reg = step_cost(observed, hidden, 0.0), step_cost(observed, hidden, LAMBDA)
        model = Siren(SirenConfig(90, 160, 8, hidden=hidden))
        coords, direction = torch.rand(4096, 3), torch.randn(4096, 3) * 0.01
        timings = {}
        for name, fn in (("jvp", jacobian_dot), ("reverse", jacobian_dot_reverse)):
            fn(model, coords, direction)
            start = time.process_time()
            for _ in range(5):
                primal, tangent = fn(model, coords, direction)
                (primal.square().mean() + tangent.abs().mean()).backward()
            timings[name] = (time.process_time() - start) / 5
        start = time.process_time()
        for _ in range(5):
            model(coords).square().mean().backward()
        timings["plain"] = (time.process_time() - start) / 5
        rows.append(
            {
                "hidden": hidden,
                "step_plain_s": round(plain, 4),
                "step_regularized_s": round(reg, 4),
                "ratio": round(reg / plain, 2),
                "per_4096_plain_s": round(timings["plain"], 4),
                "per_4096_jvp_s": round(timings["jvp"], 4),
                "per_4096_reverse_s": round(timings["reverse"], 4),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    result = {"experiment": "cost", "batch": 16384, "of_fraction": 0.25, "rows": rows}
    (out / "cost.json").write_text(json.dumps(result, indent=2))
    return result


def write_markdown(out: Path) -> None:
    """results.md from whichever JSON files exist."""
    lines = ["# SIREN + optical-flow regularizer: measured results", ""]
    if (out / "cost.json").is_file():
        cost = json.loads((out / "cost.json").read_text())
        lines += [
            "## Cost of the regularizer (CPU s, 1 thread; batch 16384, regularizer on 25%)",
            "",
            "| hidden | step plain | step regularized | ratio | 4096 px plain | + JVP (fwd-mode) | + reverse (create_graph) |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['hidden']} | {r['step_plain_s']} | {r['step_regularized_s']} | {r['ratio']} | "
            f"{r['per_4096_plain_s']} | {r['per_4096_jvp_s']} | {r['per_4096_reverse_s']} |"
            for r in cost["rows"]
        ]
        lines.append("")
    if (out / "interp.json").is_file():
        interp = json.loads((out / "interp.json").read_text())
        lines += [
            f"## Interpolation ({interp['clip']}), PSNR from the .nvc",
            "",
            "| method | epochs | train CPU s | observed PSNR | interpolated PSNR | file bpp |",
            "|---|---|---|---|---|---|",
        ]
        for r in interp["runs"]:
            lines.append(
                f"| SIREN h{r['hidden']} lambda={r['of_weight']:g} | {r['epochs']} | {r['train_cpu_seconds']} | "
                f"{r['observed_psnr_from_file']:.2f} | {r['interpolated_psnr_from_file']:.2f} | {r['bpp']:.3f} |"
            )
        lines += [f"| average of the two neighbours | - | - | - | {interp['neighbour_average_psnr']:.2f} | - |", ""]
    if (out / "narrow.json").is_file():
        narrow = json.loads((out / "narrow.json").read_text())
        lines += [
            f"## Fitting with narrow networks ({narrow['clip']}), PSNR from the .nvc",
            "",
            "| hidden | params | lambda | epochs | train CPU s | PSNR | file bpp |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['hidden']} | {r['num_params']} | {r['of_weight']:g} | {r['epochs']} | {r['train_cpu_seconds']} | "
            f"{r['psnr']:.2f} | {r['bpp']:.3f} |"
            for r in narrow["runs"]
        ]
        lines.append("")
    if (out / "roundtrip.json").is_file():
        r = json.loads((out / "roundtrip.json").read_text())["runs"][0]
        lines += [
            "## Round trip through .nvc (default pipeline: --bpp 1.0, 10% pruning, landed quantization)",
            "",
            f"hidden {r['hidden']}, {r['num_params']} parameters, {r['epochs']} epochs ({r['train_cpu_seconds']} CPU s), "
            f"{r['file_bytes']} bytes = {r['bpp']:.3f} bpp at {r['quant_bits']}-bit steps; PSNR from the file "
            f"{r['psnr']:.2f} dB (decoded again: {r['psnr_redecoded']:.2f} dB), MS-SSIM {r['ms_ssim']:.4f}",
            "",
        ]
    (out / "results.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=["cost", "interp", "narrow", "roundtrip", "all", "report"])
    parser.add_argument("--budget", type=float, default=None, help="CPU seconds of training per run")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/experiments/results/siren"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.experiment in ("cost", "all"):
        run_cost(out)
    if args.experiment in ("interp", "all"):
        run_interp(out, args.budget or 300.0)
    if args.experiment in ("narrow", "all"):
        run_narrow(out, args.budget or 150.0)
    if args.experiment in ("roundtrip", "all"):
        run_roundtrip(out, args.budget or 150.0)
    write_markdown(out)
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
