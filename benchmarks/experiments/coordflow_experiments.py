"""CoordFlow acceptance experiments (issue 3), each training run on a budget of process CPU seconds.

    python benchmarks/experiments/coordflow_experiments.py --only roundtrip --cpu-seconds 120
    python benchmarks/experiments/coordflow_experiments.py --only ablation,upsampling,interpolation,stabilization,denoising \
        --cpu-seconds 30 --small-bpp 1.0
    python benchmarks/experiments/coordflow_experiments.py --only throughput,flowbits

Results: ``benchmarks/experiments/results/coordflow/<experiment>.json`` (+ videos from the round-trip file).

Budgets: every encode trains for B seconds of process CPU time (``EncodeSettings.train_seconds`` with the "cpu"
clock; 5/6 training, 1/6 fine-tuning after pruning, the learning-rate schedule following the budget spent), in the
precision ``train.trial.run_trial`` picks. Process CPU time, not wall time, so other jobs on the machine do not bias a
comparison.
Every PSNR is measured on what the decoder renders from the written .nvc file (``api.encode`` / ``api.decode``).

Experiments
- roundtrip: Big Buck Bunny 320x180, frames 0:32, bpp 0.2, 2 layers + flow; then ``nvc decode`` to a lossless .mkv
  and ``nvc eval`` against the source, plus ``--segmentation`` and ``--remove-layer`` videos.
- ablation (Table 5 in spirit): the same clip (default 160x90, 32 frames), rate (hence parameter budget) and CPU
  budget: 2 layers + flow / 1 layer + flow / 1 layer without flow.
- upsampling: train on the clip at 160x90 (area downscale of the source, as ``--resize 160x90``), decode
  ``--scale 2``; PSNR against the true 320x180 frames, and bilinear / bicubic upsampling of the 160x90 frames.
- interpolation: train on the even frames (0, 2, ..., 30) of the clip at 160x90, decode at twice the frame rate;
  PSNR of the odd times against the true odd frames 1..29, and of the average of the two neighbours: the true
  ones (a lossless source) and the ones decoded from the same file (what a decoder of it has); also classical
  motion-compensated interpolation (OpenCV DIS, ``motion.midpoint_frames``) of the true even frames. With
  ``--interp-weight W`` > 0 the encode also fits those midpoints (results ``interpolation_interp.json``):
      python benchmarks/experiments/coordflow_experiments.py --only interpolation --cpu-seconds 400 --small-bpp 4
      python benchmarks/experiments/coordflow_experiments.py --only interpolation --cpu-seconds 400 --small-bpp 4 \
          --interp-weight 0.5
  ``--only interpolation-rescore`` recomputes these scores from the existing file(s).
- stabilization: the 160x90 clip shaken by a seeded random translation per frame (sigma 1.5 px); decode plain
  and with ``--stabilize``. Global motion = mean length of the frame-to-frame translation that OpenCV phase
  correlation finds between consecutive grey frames (Hanning window), in pixels.
- denoising: the 160x90 clip plus seeded Gaussian noise (sigma 10/255); PSNR of the reconstruction against the
  clean clip, against the noisy input, and of the noisy input (and of a 3x3 Gaussian blur of it) against the clean.
- flowbits: PSNR of the round-trip file as written (flow at quant bits + 4) and with its flow re-quantized to the
  colour networks' bits.
- throughput: training pixels per CPU-second and per wall-second at 1 and 2 threads, fp32 and bf16.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from nvcodec import api
from nvcodec.families.coordflow.model import CoordFlow
from nvcodec.families.coordflow.objective import CoordFlowObjective
from nvcodec.io import Video, read_video, sample_clip_path
from nvcodec.metrics import psnr
from nvcodec.train.fit import autocast_for
from nvcodec.train.motion import midpoint_frames
from nvcodec.train.objectives import objective_for

RESULTS = Path(__file__).parent / "results" / "coordflow"
CLIP = (0, 32)


def clip(width: int, height: int) -> Video:
    return read_video(sample_clip_path(), CLIP, (width, height))


@contextmanager
def variant(layers: int = 2, use_flow: bool = True):
    """Size CoordFlow for the budget with another layer count / without flow (the file stores the config)."""

    def config_for_budget(height, width, num_frames, params):
        return CoordFlow.recipe(height, width, num_frames, params, layers=layers, use_flow=use_flow)

    with mock.patch.object(CoordFlow, "config_for_budget", staticmethod(config_for_budget)):
        yield


def budget_encode(
    video: Video, path: Path, bpp: float, cpu_seconds: float, objective_options: dict | None = None
) -> dict:
    """Encode with ``cpu_seconds`` of training; return the report and what was spent."""
    steps: list[int] = []
    start = time.process_time()
    report = api.encode(
        video,
        path,
        api.EncodeSettings(
            model="coordflow",
            bpp=bpp,
            train_seconds=cpu_seconds,
            train_clock="cpu",
            device="cpu",
            resume=False,
            objective_options=objective_options or {},
        ),
        progress=lambda p: steps.append(p.step),
    )
    config = api.inspect(path)["model"]["config"]
    return {
        "report": asdict(report),
        "steps": steps[-1],
        "train_cpu_seconds": cpu_seconds,
        "encode_cpu_seconds": time.process_time() - start,
        "layers": config["layers"],
        "use_flow": config["use_flow"],
        "color_hidden": config["color_hidden"],
    }


def cli(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "nvcodec.cli", "--threads", "1", *args], check=True, capture_output=True, text=True
    )
    return out.stdout


def save(name: str, data: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str))
    print(json.dumps({name: data}, default=str)[:3000], flush=True)


# --- experiments ---------------------------------------------------------------------------
def roundtrip(cpu_seconds: float) -> None:
    """320x180, 32 frames, bpp 0.2, 2 layers + flow; CLI decode + eval; segmentation / inpainting videos."""
    path = RESULTS / "bbb320_2l_flow.nvc"
    run = budget_encode(clip(320, 180), path, 0.2, cpu_seconds)
    rec, seg, inp = RESULTS / "bbb320_rec.mkv", RESULTS / "bbb320_segmentation.mp4", RESULTS / "bbb320_no_layer0.mp4"
    cli("decode", str(path), "-o", str(rec))
    evaluation = json.loads(
        cli("eval", str(sample_clip_path()), str(rec), "--frames", "0:32", "--resize", "320x180", "--json")
    )
    cli("decode", str(path), "-o", str(RESULTS / "bbb320_lossy.mp4"), "--segmentation", str(seg))
    cli("decode", str(path), "-o", str(inp), "--remove-layer", "0")
    share = api.decode(path, request=api.RenderRequest(render_options={"segmentation": True})).frames
    save(
        "roundtrip",
        {
            "run": run,
            "nvc_eval": evaluation,
            "videos": [str(rec), str(seg), str(inp)],
            "segmentation_mean_rgb": share.reshape(-1, 3).mean(0).tolist(),
        },
    )


def ablation(cpu_seconds: float, bpp: float, size: tuple[int, int]) -> None:
    """Same clip, rate (so parameter budget) and CPU budget for the three variants of Table 5."""
    video = clip(*size)
    runs = {}
    for label, layers, use_flow in [
        ("2 layers + flow", 2, True),
        ("1 layer + flow", 1, True),
        ("1 layer, no flow", 1, False),
    ]:
        path = RESULTS / f"ablation_{size[0]}x{size[1]}_{layers}l_{'flow' if use_flow else 'noflow'}.nvc"
        with variant(layers, use_flow):
            runs[label] = budget_encode(video, path, bpp, cpu_seconds)
        runs[label]["file"] = str(path)
        save("ablation", {"size": size, "bpp": bpp, "runs": runs})


def upsampling(cpu_seconds: float, bpp: float) -> None:
    low, high = clip(160, 90), clip(320, 180)
    path = RESULTS / "upsampling_160x90.nvc"
    run = budget_encode(low, path, bpp, cpu_seconds)
    up = api.decode(path, request=api.RenderRequest(scale=2.0)).frames
    frames = torch.from_numpy(low.frames).permute(0, 3, 1, 2).float()
    baselines = {}
    for mode in ("bilinear", "bicubic"):
        big = F.interpolate(frames, size=(180, 320), mode=mode, align_corners=False)
        baselines[mode] = psnr(high.frames, big.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    save(
        "upsampling",
        {
            "run": run,
            "coordflow_x2_psnr": psnr(high.frames, up),
            "coded_160x90_psnr": run["report"]["psnr"],
            "baselines_psnr": baselines,
        },
    )


def interpolation(cpu_seconds: float, bpp: float, interp_weight: float) -> None:
    full = clip(160, 90)
    even = Video(np.ascontiguousarray(full.frames[::2]), full.fps / 2)
    name = "interpolation_interp" if interp_weight > 0 else "interpolation"
    path = RESULTS / f"{name}_even.nvc"
    run = budget_encode(even, path, bpp, cpu_seconds, {"interp_weight": interp_weight} if interp_weight else None)
    save(name, {"run": run, "interp_weight": interp_weight, **interpolation_scores(path, full)})


def interpolation_scores(path: Path, full: Video) -> dict:
    """PSNR of the odd frames: CoordFlow rendered at the odd times, and the baselines.

    Baselines from the true even frames (what a lossless source would give: averaging, repeating,
    and classical motion-compensated interpolation) and from the even frames decoded from the same
    file (what a decoder holding this file could do without rendering between frames).
    """
    doubled = api.decode(path, request=api.RenderRequest(fps=Fraction(full.fps))).frames  # 0, 0.5, ..., 15
    decoded = api.decode(path).frames
    truth_odd = full.frames[1:-1:2]
    odd = doubled[1::2]
    assert len(odd) == len(truth_odd) == 15

    def average(frames: np.ndarray) -> np.ndarray:
        return ((frames[:-1].astype(np.float64) + frames[1:]) / 2).round().astype(np.uint8)

    return {
        "coordflow_odd_psnr": psnr(truth_odd, odd),
        "coordflow_even_psnr": psnr(full.frames[::2], doubled[0::2]),
        "average_neighbours_psnr": psnr(truth_odd, average(full.frames[::2])),
        "motion_compensated_neighbours_psnr": psnr(truth_odd, midpoint_frames(full.frames[::2])),
        "repeat_previous_psnr": psnr(truth_odd, full.frames[0:-2:2]),
        "average_decoded_neighbours_psnr": psnr(truth_odd, average(decoded)),
        "repeat_decoded_previous_psnr": psnr(truth_odd, decoded[:-1]),
    }


def global_motion(frames: np.ndarray) -> float:
    """Mean length (px) of the frame-to-frame translation OpenCV phase correlation finds."""
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in frames]
    window = cv2.createHanningWindow(grey[0].shape[::-1], cv2.CV_32F)
    shifts = [cv2.phaseCorrelate(a, b, window)[0] for a, b in zip(grey, grey[1:])]
    return float(np.mean([np.hypot(dx, dy) for dx, dy in shifts]))


def stabilization(cpu_seconds: float, bpp: float) -> None:
    clean = clip(160, 90)
    rng = np.random.default_rng(0)
    offsets = rng.normal(0, 1.5, size=(clean.num_frames, 2))
    shaky = np.stack(
        [
            cv2.warpAffine(
                f,
                np.float32([[1, 0, dx], [0, 1, dy]]),
                (160, 90),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT,
            )
            for f, (dx, dy) in zip(clean.frames, offsets)
        ]
    )
    path = RESULTS / "stabilization_shaky.nvc"
    run = budget_encode(Video(shaky, clean.fps), path, bpp, cpu_seconds)
    motion = {
        "clean_input": global_motion(clean.frames),
        "shaky_input": global_motion(shaky),
        "reconstruction": global_motion(api.decode(path).frames),
    }
    for sigma in (1.0, 2.0, 4.0):
        out = api.decode(path, request=api.RenderRequest(render_options={"stabilize": sigma})).frames
        motion[f"stabilize_{sigma:g}"] = global_motion(out)
        motion[f"stabilize_{sigma:g}_psnr_vs_clean"] = psnr(clean.frames, out)
    save("stabilization", {"run": run, "global_motion_px": motion, "shake_sigma_px": 1.5})


def denoising(cpu_seconds: float, bpp: float) -> None:
    clean = clip(160, 90)
    rng = np.random.default_rng(0)
    noisy = np.clip(clean.frames + rng.normal(0, 10, clean.frames.shape), 0, 255).round().astype(np.uint8)
    path = RESULTS / "denoising_noisy.nvc"
    run = budget_encode(Video(noisy, clean.fps), path, bpp, cpu_seconds)
    rec = api.decode(path).frames
    blur = np.stack([cv2.GaussianBlur(f, (3, 3), 0) for f in noisy])
    save(
        "denoising",
        {
            "run": run,
            "noise_sigma": 10,
            "reconstruction_vs_clean": psnr(clean.frames, rec),
            "reconstruction_vs_noisy": psnr(noisy, rec),
            "noisy_vs_clean": psnr(clean.frames, noisy),
            "gaussian_blur_3x3_vs_clean": psnr(clean.frames, blur),
        },
    )


def flow_bits() -> None:
    """Does the flow's extra precision (tensor_bits: +4) pay? Re-quantize the round-trip file's flow to the colour bits."""
    from nvcodec.compress.quantize import quantize
    from nvcodec.render import build_backbone

    path = RESULTS / "bbb320_2l_flow.nvc"
    bits = api.inspect(path)["metadata"]["quant_bits"]
    source = clip(320, 180).frames
    model = build_backbone(api.read_nvc(path))
    as_written = psnr(source, api.decode(path).frames)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if name.startswith("flow."):
                tensor.copy_(torch.from_numpy(quantize(tensor.numpy(), bits).dequantize()))
        times = model.frame_times(torch.arange(model.config.num_frames))
        from nvcodec.render import to_uint8

        frames = np.concatenate([to_uint8(model.render_frames(t[None])) for t in times])
    flow = sum(t.numel() for k, t in model.state_dict().items() if k.startswith("flow."))
    save(
        "flow_bits",
        {
            "quant_bits": bits,
            "flow_params": flow,
            "all_params": CoordFlow.count_params(model.config),
            "psnr_flow_at_bits_plus_4": as_written,
            "psnr_flow_at_colour_bits": psnr(source, frames),
            "extra_bytes_upper_bound": flow * 4 / 8,
        },
    )


def throughput() -> None:
    video = clip(320, 180)
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for amp in (False, True):
            model = CoordFlow(api.plan_model(CoordFlow, video, 0.2))
            objective = objective_for(model, video.frames, torch.device("cpu"), "l2", 0)
            opt = torch.optim.AdamW(model.parameters(), 1e-3)
            for i in range(25):
                if i == 5:
                    cpu, wall = time.process_time(), time.perf_counter()
                loss, _ = objective.step(0, i, autocast_for(torch.device("cpu"), amp))
                opt.zero_grad()
                loss.backward()
                opt.step()
            pixels = 20 * objective.pixels_per_step
            rows.append(
                {
                    "threads": threads,
                    "bf16": amp,
                    "params": CoordFlow.count_params(model.config),
                    "pixels_per_cpu_second": pixels / (time.process_time() - cpu),
                    "pixels_per_wall_second": pixels / (time.perf_counter() - wall),
                }
            )
    save("throughput", {"rows": rows, "note": "wall figures depend on the other jobs running on the machine"})


def summary() -> str:
    """A markdown table of whatever results exist (written to results/coordflow/README.md)."""

    def load(name):
        path = RESULTS / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def budget(run):
        r = run["report"]
        if "train_cpu_seconds" in run:
            return (
                f"{r['num_params']} params, {r['bpp']:.3f} bpp, {run['train_cpu_seconds']:g} CPU-s of training "
                f"({run['steps']} steps of {CoordFlowObjective.pixels_per_step} pixels)"
            )
        # runs made before the CPU budget was enforced inside fit(): epochs predicted from a timed step
        return (
            f"{r['num_params']} params, {r['bpp']:.3f} bpp, {run['epochs']}+{run['finetune_epochs']} epochs "
            f"({run['steps_per_epoch']} steps x {run['step_cpu_seconds'] * 1000:.0f} ms CPU, "
            f"{'bf16' if run['amp'] else 'fp32'})"
        )

    lines = [
        "# CoordFlow experiments (issue 3)",
        "",
        "Generated by `python benchmarks/experiments/coordflow_experiments.py "
        "--summary` from the JSON files here; commands in the script's docstring.",
        "",
        "| experiment | figure | value (dB or px) | run |",
        "|---|---|---|---|",
    ]
    if rt := load("roundtrip"):
        run = rt["run"]
        lines += [
            f"| round trip 320x180x32 @0.2 bpp | PSNR from the file (encoder report) | {run['report']['psnr']:.2f} | {budget(run)} |",
            f"| | `nvc eval` of `nvc decode` output | {rt['nvc_eval']['psnr']:.2f} | |",
        ]
    if ab := load("ablation"):
        for label, run in ab["runs"].items():
            lines.append(
                f"| ablation {ab['size'][0]}x{ab['size'][1]}x32 @{ab['bpp']:g} bpp | {label} | "
                f"{run['report']['psnr']:.2f} | {budget(run)} |"
            )
    if up := load("upsampling"):
        lines += [
            f"| upsampling 160x90 -> 320x180 | CoordFlow --scale 2 | {up['coordflow_x2_psnr']:.2f} | {budget(up['run'])} |",
            f"| | bilinear of the 160x90 frames | {up['baselines_psnr']['bilinear']:.2f} | |",
            f"| | bicubic of the 160x90 frames | {up['baselines_psnr']['bicubic']:.2f} | |",
            f"| | (CoordFlow at the coded 160x90) | {up['coded_160x90_psnr']:.2f} | |",
        ]
    for it in filter(None, (load("interpolation"), load("interpolation_interp"))):
        aid = f", --interp-weight {it['interp_weight']:g}" if it.get("interp_weight") else ""
        lines += [
            f"| interpolation (odd frames 1..29{aid}) | CoordFlow at odd times | {it['coordflow_odd_psnr']:.2f} | {budget(it['run'])} |",
            f"| | average of the two true neighbours | {it['average_neighbours_psnr']:.2f} | |",
            f"| | repeat the previous true frame | {it['repeat_previous_psnr']:.2f} | |",
            f"| | motion-compensated midpoint of the true neighbours (OpenCV DIS) | {it['motion_compensated_neighbours_psnr']:.2f} | |",
            f"| | average of the two neighbours decoded from the file | {it['average_decoded_neighbours_psnr']:.2f} | |",
            f"| | repeat the previous decoded frame | {it['repeat_decoded_previous_psnr']:.2f} | |",
            f"| | (CoordFlow at the coded even frames) | {it['coordflow_even_psnr']:.2f} | |",
        ]
    if st := load("stabilization"):
        m = st["global_motion_px"]
        lines += [
            f"| stabilization: mean frame-to-frame shift (px) | shaky input | {m['shaky_input']:.2f} | {budget(st['run'])} |",
            f"| | clean clip (before shaking) | {m['clean_input']:.2f} | |",
            f"| | reconstruction | {m['reconstruction']:.2f} | |",
        ]
        lines += [
            f"| | --stabilize {k.split('_')[1]} | {v:.2f} | |"
            for k, v in m.items()
            if k.startswith("stabilize_") and not k.endswith("clean")
        ]
    if dn := load("denoising"):
        lines += [
            f"| denoising (noise sigma 10) | reconstruction vs clean | {dn['reconstruction_vs_clean']:.2f} | {budget(dn['run'])} |",
            f"| | noisy input vs clean | {dn['noisy_vs_clean']:.2f} | |",
            f"| | 3x3 Gaussian blur of the input vs clean | {dn['gaussian_blur_3x3_vs_clean']:.2f} | |",
            f"| | reconstruction vs noisy input | {dn['reconstruction_vs_noisy']:.2f} | |",
        ]
    if fb := load("flow_bits"):
        lines += [
            f"| flow precision (round-trip file) | flow at quant bits + 4 (as written) | {fb['psnr_flow_at_bits_plus_4']:.2f} | "
            f"{fb['flow_params']} of {fb['all_params']} params, <= {fb['extra_bytes_upper_bound']:.0f} extra bytes |",
            f"| | flow at the colour bits ({fb['quant_bits']:.3g}) | {fb['psnr_flow_at_colour_bits']:.2f} | |",
        ]
    if tp := load("throughput"):
        for row in tp["rows"]:
            lines.append(
                f"| training throughput ({row['params']} params) | {row['threads']} thread(s), "
                f"{'bf16' if row['bf16'] else 'fp32'} | {row['pixels_per_cpu_second']:.0f} px/CPU-s, "
                f"{row['pixels_per_wall_second']:.0f} px/wall-s | |"
            )
    text = "\n".join(lines) + "\n"
    (RESULTS / "README.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="roundtrip,ablation,upsampling,interpolation,stabilization,denoising")
    parser.add_argument("--cpu-seconds", type=float, default=120.0, help="training CPU budget per run")
    parser.add_argument("--small-bpp", type=float, default=1.0, help="rate of the 160x90 experiments")
    parser.add_argument("--roundtrip-cpu-seconds", type=float, default=None, help="default: --cpu-seconds")
    parser.add_argument("--ablation-size", default="160x90", help="WxH of the ablation clip")
    parser.add_argument("--interp-weight", type=float, default=0.0, help="interpolation: fit in-between midpoints")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--summary", action="store_true", help="only write results/coordflow/README.md")
    args = parser.parse_args()
    if args.summary:
        print(summary())
        return
    torch.set_num_threads(args.threads)
    only = set(args.only.split(","))
    if "roundtrip" in only:
        roundtrip(args.roundtrip_cpu_seconds or args.cpu_seconds)
    if "ablation" in only:
        width, height = (int(v) for v in args.ablation_size.split("x"))
        ablation(args.cpu_seconds, args.small_bpp, (width, height))
    for name, fn in (("upsampling", upsampling), ("stabilization", stabilization), ("denoising", denoising)):
        if name in only:
            fn(args.cpu_seconds, args.small_bpp)
    if "interpolation" in only:
        interpolation(args.cpu_seconds, args.small_bpp, args.interp_weight)
    if "throughput" in only:
        throughput()
    if "flowbits" in only:
        flow_bits()
    if "interpolation-rescore" in only:  # the scores again from the existing file(s) (no training)
        for name in ("interpolation", "interpolation_interp"):
            if (RESULTS / f"{name}.json").is_file():
                data = json.loads((RESULTS / f"{name}.json").read_text())
                save(name, {**data, **interpolation_scores(RESULTS / f"{name}_even.nvc", clip(160, 90))})
    summary()


if __name__ == "__main__":
    main()
