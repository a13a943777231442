"""Does the default preset finish when it says? `nvc encode` of a 48-frame 320x180 clip at the
default preset, once per family: the training time printed before training, the training time
measured, and the whole encode's wall time.

    python benchmarks/preset_timing.py [--preset medium] [--bpp 0.1]

Writes benchmarks/results/preset_timing/results.{json,md}. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "preset_timing"


def seconds(text: str) -> float:
    """'2 min 04 s' / '45 s' / '1 h 30 min' -> seconds."""
    total = 0.0
    for value, unit in re.findall(r"(\d+) (h|min|s)\b", text):
        total += int(value) * {"h": 3600, "min": 60, "s": 1}[unit]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--bpp", type=float, default=0.1)
    parser.add_argument("--models", default="")
    opts = parser.parse_args()

    from nvcodec.families import family_names
    from nvcodec.io import read_video, sample_clip_path, write_video

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip48.y4m"
        write_video(clip, read_video(sample_clip_path(), (0, 48), (320, 180)))
        for model in opts.models.split(",") if opts.models else family_names():
            command = [
                "nvc",
                "encode",
                str(clip),
                "-o",
                str(Path(tmp) / f"{model}.nvc"),
                "--model",
                model,
                "--bpp",
                str(opts.bpp),
                "--preset",
                opts.preset,
                "--json",
            ]
            start = time.monotonic()
            done = subprocess.run(command, capture_output=True, text=True)
            wall = time.monotonic() - start
            if done.returncode != 0:
                rows.append({"model": model, "error": done.stderr.strip().splitlines()[-1]})
                print(rows[-1], flush=True)
                continue
            said = next(line for line in done.stderr.splitlines() if line.startswith("training: "))
            budget = seconds(said.split("(")[0])
            finishing = seconds(said.split("then about")[1].split("to code")[0]) if "then about" in said else 0.0
            report = json.loads(done.stdout)
            rows.append(
                {
                    "model": model,
                    "said": said,
                    "budget_s": budget,
                    "train_s": round(report["train_seconds"], 1),
                    "encode_s": round(report["encode_seconds"], 1),
                    "process_s": round(wall, 1),
                    "bpp": round(report["bpp"], 4),
                    "psnr": round(report["psnr"], 2),
                    "train_vs_budget_pct": round(100 * (report["train_seconds"] / budget - 1), 1),
                    "process_vs_budget_pct": round(100 * (wall / budget - 1), 1),
                    "expected_total_s": budget + finishing,
                    "process_vs_expected_pct": round(100 * (wall / (budget + finishing) - 1), 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [
        "# Default preset: the time printed before training against the time taken",
        "",
        f"`python benchmarks/preset_timing.py --preset {opts.preset} --bpp {opts.bpp:g}`: `nvc encode` of 48 frames of "
        "Big Buck Bunny at 320x180 (2.76 megapixels) for each family, alone on the machine, default threads.",
        "",
        "| family | printed before training | training (s) | vs printed | printed in all (s) | whole command (s) | "
        "vs printed | bpp | PSNR (dB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['error']} | | | | | | | |")
            continue
        lines.append(
            f"| {r['model']} | {r['said'].split(';')[0][len('training: ') :]} | {r['train_s']} | "
            f"{r['train_vs_budget_pct']:+.1f} % | {r['expected_total_s']:.0f} | {r['process_s']} | "
            f"{r['process_vs_expected_pct']:+.1f} % | {r['bpp']} | {r['psnr']} |"
        )
    (OUT / "results.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
