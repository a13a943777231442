"""Kill `nvc encode` with SIGKILL at random moments, resume it, and compare with an unkilled run.

    python benchmarks/kill_resume.py --trials 20

Each trial starts an encode of a tiny clip (1 thread, fixed seed, epochs, fp32), kills it after
a random delay, checks that no partial .nvc is left (a killed write leaves at most a hidden
`.part` temporary, never a file under the output's name or suffix), then
runs the same command again until it finishes. The resumed file must equal the unkilled one in
every chunk; mETA may differ only in its creation time. Writes a JSON summary and a markdown
table to benchmarks/results/kill_resume/.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for fuzz.mutate (the checkout's fuzzing helpers, not a package module)
OUT = ROOT / "benchmarks" / "results" / "kill_resume"


def comparable(path: Path) -> list:
    """The file's chunks, with mETA's creation time taken out."""
    import zstandard

    from fuzz.mutate import split_chunks

    _, chunks = split_chunks(path.read_bytes())
    out = []
    for kind, payload in chunks:
        if kind == b"mETA":
            meta = json.loads(zstandard.ZstdDecompressor().decompress(payload))
            meta.pop("created", None)
            out.append((kind, meta))
        else:
            out.append((kind, payload))
    return out


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args()

    from nvcodec.io import read_video, sample_clip_path, write_video

    rng = random.Random(opts.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = folder / "clip.y4m"
        write_video(clip, read_video(sample_clip_path(), (0, 8), (64, 36)))
        command = [
            "nvc",
            "--threads",
            "1",
            "encode",
            str(clip),
            "--epochs",
            str(opts.epochs),
            "--bpp",
            "3",
            "--no-amp",
            "--seed",
            "0",
            "--checkpoint-every",
            "2",
            "-q",
        ]
        reference_dir = folder / "reference"
        reference_dir.mkdir()
        start = time.monotonic()
        subprocess.run([*command, "-o", str(reference_dir / "out.nvc")], check=True, capture_output=True)
        full_seconds = time.monotonic() - start
        reference = comparable(reference_dir / "out.nvc")
        rows = []
        for trial in range(opts.trials):
            work = folder / f"trial{trial}"
            work.mkdir()
            output = work / "out.nvc"
            delay = rng.uniform(0.5, 0.8 * full_seconds)  # inside the run, whatever its jitter
            process = subprocess.Popen(
                [*command, "-o", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                process.wait(timeout=delay)
                killed = False
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                killed = True
            after_kill = files_in(work)
            partial = [name for name in after_kill if name.endswith(".nvc") and name != "out.nvc"] + (
                ["out.nvc (incomplete)"] if output.exists() and comparable(output) != reference else []
            )
            checkpoint = (work / "out.nvc.ckpt.npz").exists()
            done = subprocess.run([*command, "-o", str(output)], capture_output=True, text=True)
            same = done.returncode == 0 and comparable(output) == reference
            leftovers = [p.name for p in work.iterdir() if p.name != "out.nvc"]
            rows.append(
                {
                    "trial": trial,
                    "killed_after_s": round(delay, 2),
                    "killed": killed,
                    "checkpoint_existed": checkpoint,
                    "files_after_kill": after_kill,
                    "partial_files": partial,
                    "resumed_identical": same,
                    "leftovers_after_resume": leftovers,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    identical = sum(r["resumed_identical"] for r in rows)
    partial = sum(bool(r["partial_files"]) for r in rows)
    OUT.mkdir(parents=True, exist_ok=True)
    summary = {
        "command": " ".join(command),
        "uninterrupted_seconds": round(full_seconds, 1),
        "trials": len(rows),
        "killed": sum(r["killed"] for r in rows),
        "resumed_from_checkpoint": sum(r["checkpoint_existed"] for r in rows),
        "identical": identical,
        "with_partial_files": partial,
        "rows": rows,
    }
    (OUT / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = [
        "# SIGKILL and resume",
        "",
        f"`python benchmarks/kill_resume.py --trials {opts.trials}`; each trial: "
        f"`{' '.join(command)} -o out.nvc` killed after a random delay, then run again to the end.",
        f"Uninterrupted encode: {full_seconds:.1f} s.",
        "",
        f"**{identical} of {len(rows)} resumed files identical to the unkilled run** (every chunk; mETA without its "
        f"creation time); {partial} trials left a partial .nvc. A kill during a write leaves a hidden "
        "`.out.nvc.XXXX.part` at most, which the next run removes.",
        "",
        "| trial | killed after (s) | checkpoint to resume | files after the kill | identical after resume |",
        "|---:|---:|---|---|---|",
    ]
    lines += [
        f"| {r['trial']} | {r['killed_after_s']} | {'yes' if r['checkpoint_existed'] else 'no'} | "
        f"{', '.join(r['files_after_kill']) or 'none'} | {'yes' if r['resumed_identical'] else 'NO'} |"
        for r in rows
    ]
    (OUT / "results.md").write_text("\n".join(lines) + "\n")
    print(f"{identical}/{len(rows)} identical, {partial} with partial files; wrote {OUT}")
    if identical != len(rows) or partial:
        sys.exit(1)


if __name__ == "__main__":
    main()
