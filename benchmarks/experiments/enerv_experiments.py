#!/usr/bin/env python
"""E-NeRV experiments (issue 4): .nvc round trip, E-NeRV vs NeRV at equal parameters and CPU time,
and frame interpolation by time input. One thread; every PSNR is measured on the decoder's output
of the written file.

    PYTHONPATH=. python benchmarks/experiments/enerv_experiments.py                  # everything (~12 CPU-minutes)
    PYTHONPATH=. python benchmarks/experiments/enerv_experiments.py --only compare --budget-cpu 270
    PYTHONPATH=. python benchmarks/experiments/enerv_experiments.py --only interp --interp-budget-cpu 60
    PYTHONPATH=. python benchmarks/experiments/enerv_experiments.py --only steptime

Equal CPU time: each model's training (train + prune fine-tune) gets the same process-CPU budget
(``time.process_time``, immune to other processes on the machine). Since ``fit`` works in epochs, the
epochs are chosen from the model's measured CPU cost per step (a calibration run of a few steps on the
same data), and the CPU time the training really took is recorded beside it. Both models get the same
--bpp target, hence the same parameter budget (``config_for_budget``) and the same rate control.

Results: benchmarks/experiments/results/enerv/<experiment>.json and summary.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from nvcodec.api import EncodeSettings, RenderRequest, decode, encode, plan_model
from nvcodec.compress.ratecontrol import (
    EXPECTED_BITS_PER_PARAM,
    FILE_OVERHEAD_BYTES,
    PER_TENSOR_OVERHEAD_BYTES,
)
from nvcodec.families import backbone_class
from nvcodec.io import Video, read_video, sample_clip_path
from nvcodec.metrics import psnr
from nvcodec.train.fit import autocast_for
from nvcodec.train.objectives import objective_for

FINETUNE_SHARE = 0.2  # api.encode fine-tunes for epochs // 5 after pruning
CPU = torch.device("cpu")


def bpp_for_params(params: int, video: Video) -> float:
    """The --bpp whose parameter budget (ratecontrol.param_budget) is ``params``."""
    target_bytes = params * EXPECTED_BITS_PER_PARAM / 8 + FILE_OVERHEAD_BYTES + 12 * PER_TENSOR_OVERHEAD_BYTES + 1
    return 8 * target_bytes / video.num_pixels


@contextlib.contextmanager
def variant(spec: str):
    """``name`` or ``name:field=value``: the backbone's own budget recipe with one config field changed.

    The changed field is part of the config the file carries, so the decoder rebuilds the variant.
    """
    name, _, change = spec.partition(":")
    cls = backbone_class(name)
    if not change:
        yield name
        return
    field, value = change.split("=")
    original = cls.__dict__["config_for_budget"]

    def patched(klass, *args):
        config = original.__func__(klass, *args)
        return dataclasses.replace(config, **{field: type(getattr(config, field))(value)})

    cls.config_for_budget = classmethod(patched)
    try:
        yield name
    finally:
        cls.config_for_budget = original


def step_cpu_seconds(model_name: str, video: Video, bpp: float, amp: bool, steps: int = 8) -> tuple[float, int]:
    """Process-CPU seconds of one training step (forward, backward, Adam) and the model's size."""
    cls = backbone_class(model_name)
    config = plan_model(cls, video, bpp)
    torch.manual_seed(0)
    model = cls(config).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    objective = objective_for(model, video.frames, CPU, "l2", 0)
    timings = []
    for i in range(steps + 3):
        start = time.process_time()
        loss, _ = objective.step(0, i % objective.steps_per_epoch, autocast_for(CPU, amp))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        timings.append(time.process_time() - start)
    return float(np.median(timings[3:])), cls.count_params(config)


def timed_encode(spec: str, video: Video, bpp: float, budget_cpu: float, path: Path, amp: bool) -> dict:
    """Encode with epochs chosen to spend ``budget_cpu`` CPU-seconds training; report from the file."""
    with variant(spec) as model_name:
        row = _timed_encode(model_name, video, bpp, budget_cpu, path, amp)
    return {**row, "model": spec}


def _timed_encode(model_name: str, video: Video, bpp: float, budget_cpu: float, path: Path, amp: bool) -> dict:
    step, params = step_cpu_seconds(model_name, video, bpp, amp)
    steps_per_epoch = video.num_frames  # FrameObjective, one frame per step
    epochs = max(1, int(budget_cpu / (step * steps_per_epoch * (1 + FINETUNE_SHARE))))
    marks: list[float] = []
    settings = EncodeSettings(model=model_name, bpp=bpp, epochs=epochs, device="cpu", amp=amp, resume=False)
    start = time.process_time()
    report = encode(video, path, settings, progress=lambda _p: marks.append(time.process_time()))
    total_cpu = time.process_time() - start
    decoded = decode(path)
    measured = psnr(video.frames, decoded.frames)
    assert measured == report.psnr, "report must equal a fresh decode of the file"
    print(
        f"  {model_name}: {params} params, {epochs} epochs, step {1000 * step:.1f} ms CPU, "
        f"{report.psnr:.2f} dB at {report.bpp:.4f} bpp",
        flush=True,
    )
    return {
        "model": model_name,
        "params": params,
        "epochs": epochs,
        "finetune_epochs": max(1, epochs // 5),
        "step_cpu_ms": round(1000 * step, 2),
        "budget_cpu_s": budget_cpu,
        "train_cpu_s": round(marks[-1] - start, 1) if marks else None,  # last progress report = end of training
        "encode_cpu_s": round(total_cpu, 1),
        "psnr_redecoded": measured,
        "amp": amp,
        "report": asdict(report),
    }


def bbb(frames: int, size: tuple[int, int]) -> Video:
    return read_video(sample_clip_path(), (0, frames), size)


def run_steptime(args) -> dict:
    video = bbb(args.frames, (320, 180))
    bpp = bpp_for_params(args.params, video)
    rows = []
    for name in ("nerv", "enerv"):
        for amp in (False, True):
            step, params = step_cpu_seconds(name, video, bpp, amp, steps=10)
            rows.append({"model": name, "params": params, "amp": amp, "step_cpu_ms": round(1000 * step, 1)})
            print(f"  {rows[-1]}", flush=True)
    return {"size": "320x180", "bpp_target": bpp, "rows": rows}


def run_compare(args) -> dict:
    """NeRV vs E-NeRV on BBB 320x180 x 32 at the same parameter budget, rate target and CPU time."""
    video = bbb(args.frames, (320, 180))
    bpp = bpp_for_params(args.params, video)
    rows = [
        timed_encode(name, video, bpp, args.budget_cpu, args.out / f"compare_{name}.nvc", args.amp)
        for name in ("nerv", "enerv")
    ]
    return {
        "video": f"BBB 320x180 x {args.frames}",
        "param_budget": args.params,
        "bpp_target": bpp,
        "threads": torch.get_num_threads(),
        "rows": rows,
    }


def run_epochs(args) -> dict:
    """NeRV at E-NeRV's epoch count from the equal-CPU run: the papers compare at equal schedules."""
    video = bbb(args.frames, (320, 180))
    bpp = bpp_for_params(args.params, video)
    enerv = next(
        r for r in json.loads((args.out / "results.json").read_text())["compare"]["rows"] if r["model"] == "enerv"
    )
    path = args.out / "epochs_nerv.nvc"
    settings = EncodeSettings(model="nerv", bpp=bpp, epochs=enerv["epochs"], device="cpu", amp=args.amp, resume=False)
    start = time.process_time()
    report = encode(video, path, settings)
    row = {
        "model": "nerv",
        "params": report.num_params,
        "epochs": enerv["epochs"],
        "finetune_epochs": max(1, enerv["epochs"] // 5),
        "step_cpu_ms": None,
        "train_cpu_s": None,
        "encode_cpu_s": round(time.process_time() - start, 1),
        "report": asdict(report),
    }
    print(f"  nerv at {enerv['epochs']} epochs: {report.psnr:.2f} dB at {report.bpp:.4f} bpp", flush=True)
    return {"video": f"BBB 320x180 x {args.frames}, equal epochs", "rows": [row, enerv]}


def run_interp(args) -> dict:
    """Train on the even frames of 16 at 160x90; render the odd ones by time at double frame rate."""
    full = bbb(16, (160, 90))
    even = Video(full.frames[0::2], full.fps / 2)
    odd_truth = full.frames[1:-1:2]  # frames 1, 3, ..., 13: between coded frames 0, 2, ..., 14
    bpp = bpp_for_params(args.interp_params, even)
    result = {
        "video": "BBB 160x90, 16 frames; coded: 8 even frames",
        "param_budget": args.interp_params,
        "bpp_target": bpp,
        "rows": [],
    }
    for name in args.interp_models.split(","):
        path = args.out / f"interp_{name.replace(':', '_')}.nvc"
        row = timed_encode(name, even, bpp, args.interp_budget_cpu, path, args.amp)
        doubled = decode(path, request=RenderRequest(fps=full.fps)).frames  # 15 frames: 0, 0.5, 1, ... 7
        coded = decode(path).frames
        assert np.array_equal(doubled[0::2], coded)
        between = doubled[1::2]
        average_decoded = ((coded[:-1].astype(np.float64) + coded[1:]) / 2 + 0.5).astype(np.uint8)
        average_truth = ((even.frames[:-1].astype(np.float64) + even.frames[1:]) / 2 + 0.5).astype(np.uint8)
        row.update(
            {
                "coded_frames_psnr": row["report"]["psnr"],
                "odd_frames_psnr_by_time": psnr(odd_truth, between),
                "odd_frames_psnr_average_of_decoded_neighbours": psnr(odd_truth, average_decoded),
                "odd_frames_psnr_average_of_original_neighbours": psnr(odd_truth, average_truth),
                "odd_frames_psnr_repeat_previous_decoded": psnr(odd_truth, coded[:-1]),
            }
        )
        print(
            f"  {name}: odd frames by time {row['odd_frames_psnr_by_time']:.2f} dB, average of decoded "
            f"neighbours {row['odd_frames_psnr_average_of_decoded_neighbours']:.2f} dB",
            flush=True,
        )
        result["rows"].append(row)
        args.save_partial("interp", result)
    return result


def summary(results: dict) -> str:
    lines = [
        "# E-NeRV experiments",
        "",
        "Produced by `benchmarks/experiments/enerv_experiments.py` (1 thread); PSNR/bpp from the decoded .nvc file.",
        "",
    ]
    if "steptime" in results:
        lines += [
            "## CPU cost per training step (320x180, one frame, forward+backward+Adam)",
            "",
            "| model | params | bf16 autocast | step CPU ms |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['model']} | {r['params']} | {r['amp']} | {r['step_cpu_ms']} |" for r in results["steptime"]["rows"]
        ]
        lines.append("")
    for key, title in (
        ("compare", "Equal parameters and CPU time"),
        ("epochs", "Equal parameters and epochs"),
        ("interp", "Interpolation"),
    ):
        if key not in results:
            continue
        res = results[key]
        lines += [
            f"## {title}: {res['video']}",
            "",
            "| model | params | epochs | step CPU ms | train CPU s | bpp | PSNR dB |"
            + (" odd by time | avg decoded nbrs | avg original nbrs |" if key == "interp" else ""),
            "|---|---|---|---|---|---|---|" + ("---|---|---|" if key == "interp" else ""),
        ]
        for r in res["rows"]:
            line = (
                f"| {r['model']} | {r['params']} | {r['epochs']}+{r['finetune_epochs']} | {r['step_cpu_ms']} | "
                f"{r['train_cpu_s']} | {r['report']['bpp']:.4f} | {r['report']['psnr']:.2f} |"
            )
            if key == "interp":
                line += (
                    f" {r['odd_frames_psnr_by_time']:.2f} | {r['odd_frames_psnr_average_of_decoded_neighbours']:.2f}"
                    f" | {r['odd_frames_psnr_average_of_original_neighbours']:.2f} |"
                )
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("steptime", "compare", "interp", "epochs"), action="append")
    parser.add_argument("--params", type=int, default=300_000, help="parameter budget for the comparison")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--budget-cpu", type=float, default=270.0, help="training CPU-seconds per model (compare)")
    parser.add_argument("--interp-params", type=int, default=100_000)
    parser.add_argument("--interp-budget-cpu", type=float, default=60.0)
    parser.add_argument(
        "--interp-models",
        default="enerv,enerv:tin_pe_base=1.05,nerv",
        help="tin_pe_base=1.05: the paper's interpolation setting of the norm branch (sec. 5.7)",
    )
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True, help="bf16 autocast (both)")
    parser.add_argument("-o", "--out", type=Path, default=Path("benchmarks/experiments/results/enerv"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = {"steptime": run_steptime, "compare": run_compare, "interp": run_interp, "epochs": run_epochs}
    store = args.out / "results.json"
    results = json.loads(store.read_text()) if store.is_file() else {}

    def save_partial(name: str, partial: dict) -> None:
        results[name] = {**partial, "partial": True}
        store.write_text(json.dumps(results, indent=1))
        (args.out / "summary.md").write_text(summary(results))

    args.save_partial = save_partial
    for name in args.only or list(runs):
        print(f"{name} ...", flush=True)
        started = time.monotonic()
        results[name] = {
            **runs[name](args),
            "wall_s": round(time.monotonic() - started, 1),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        store.write_text(json.dumps(results, indent=1))
        (args.out / "summary.md").write_text(summary(results))
    print(summary(results))


if __name__ == "__main__":
    main()
