"""What a GPU user meets, checked in one run: `python benchmarks/gpu_smoke.py [--device cuda]`.

One line per check (PASS or FAIL, seconds, what was measured), then "N passed, M failed"; the
exit status is 1 if any check failed. It runs on any device: `--device cpu` is how CI-less
machines keep it from rotting (a few minutes on 2 cores); on one GPU it is meant to finish within
10 minutes. Checks:

* every family through a short rate-aware encode on the device, bf16 autocast on and off;
  coordflow and siren also with torch.compile;
* the same file decoded on the CPU and on the device: at most 1 apart in every sample (the
  spec's tier P tolerance, Annex B), and the conformance vectors decoded on the device;
* an encode killed mid-way and run again gives the bytes of an uninterrupted one;
* two encodes of the same command give identical bytes (nerv, hnerv, coordflow, grid: the
  families whose backward passes gather or interpolate);
* a two-segment clip with `--jobs 2` and with a 2-rank torchrun gives the serial file's bytes;
* peak memory of a 1080p segment's encode (GPU memory on CUDA, resident memory on the CPU);
* training steps per second of each family at 320x180 (the 0.1 bpp model), on the device and
  on the CPU.

Set-up on a machine with its own PyTorch and no package index: on a machine with one, fetch the
other dependencies' wheels for the GPU machine's Python (`pip download -d wheels --only-binary
:all: --python-version 3.X av constriction==0.5.0 zstandard click numpy opencv-python-headless
setuptools`), bring them with the project, then `pip install --no-index --find-links wheels av
constriction zstandard click opencv-python-headless && pip install --no-index --no-deps
--no-build-isolation -e .` (the installed torch is kept).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

NVC = [sys.executable, "-m", "nvcodec.cli"]
TINY_BPP = {
    "nerv": 3.0,
    "enerv": 4.0,
    "hnerv": 3.0,
    "snerv-b": 3.0,
    "snerv-t": 3.0,
    "coordflow": 2.0,
    "siren": 3.0,
    "grid": 1.5,
}  # what each family's smallest model meets on 8 frames of 64x36
TINY_EPOCHS = 20
REPRODUCED = ("nerv", "hnerv", "coordflow", "grid")
COMPILED = ("coordflow", "siren")
FIXED_TIME = {"SOURCE_DATE_EPOCH": "1764633600"}  # mETA's creation time, so that bytes can be compared


class Smoke:
    """The run's folder, device and results; one method per kind of check."""

    def __init__(self, device: str, folder: Path, threads: int | None) -> None:
        self.device, self.folder, self.threads = device, folder, threads
        self.results: list[tuple[str, bool, float, str]] = []
        self.files: dict[str, Path] = {}

    # --- running ---------------------------------------------------------------------------
    def check(self, name: str, fn: Callable[[], str]) -> None:
        start = time.monotonic()
        try:
            detail, ok = fn(), True
        except Exception as exc:  # any error: a check's failure is a result, not a crash of the run
            detail, ok = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}", False
        seconds = time.monotonic() - start
        self.results.append((name, ok, seconds, detail))
        print(f"{'PASS' if ok else 'FAIL'}  {name:32s} {seconds:6.1f} s  {detail}", flush=True)

    def nvc(self, *args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        threads = ["--threads", str(self.threads)] if self.threads else []
        done = subprocess.run(
            [*NVC, *threads, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **FIXED_TIME, **(env or {})},
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip() or f"exit {done.returncode}")
        return done

    def encode_args(self, family: str, clip: Path, output: Path, *extra: str) -> list[str]:
        return [
            "encode",
            str(clip),
            "-o",
            str(output),
            "--model",
            family,
            "--bpp",
            str(TINY_BPP[family]),
            "--epochs",
            str(TINY_EPOCHS),
            "--device",
            self.device,
            "--seed",
            "0",
            "-q",
            "--json",
            *extra,
        ]

    # --- the checks ----------------------------------------------------------------------------
    def encode(self, family: str, amp: bool, clip: Path, compiled: bool = False) -> str:
        output = self.folder / f"{family}_{'amp' if amp else 'fp32'}{'_compiled' if compiled else ''}.nvc"
        done = self.nvc(
            *self.encode_args(family, clip, output, "--amp" if amp else "--no-amp", "--no-resume"),
            env={"NVC_COMPILE": "1" if compiled else "0"},
        )
        if compiled and "torch.compile failed" in done.stderr:
            raise RuntimeError("fell back to eager: " + done.stderr.strip().splitlines()[-1])
        report = json.loads(done.stdout)
        if not np.isfinite(report["psnr"]) or report["psnr"] < 12.0:
            raise AssertionError(f"PSNR {report['psnr']:.2f} dB: training did not work")
        self.files.setdefault(family, output)
        return f"{report['bpp']:.3f} bpp, {report['psnr']:.2f} dB"

    def decodes_agree(self, family: str) -> str:
        from nvcodec.api import decode

        path = self.files[family]
        on_cpu, on_device = decode(path, device="cpu").frames, decode(path, device=self.device).frames
        diff = int(np.abs(on_cpu.astype(np.int16) - on_device.astype(np.int16)).max())
        if diff > 1:
            raise AssertionError(f"max |cpu - {self.device}| = {diff} > 1")
        return f"max |cpu - {self.device}| = {diff}"

    def conformance(self, vector: Path) -> str:
        from nvcodec.api import decode

        manifest = json.loads(vector.with_suffix(".json").read_text())
        frames = decode(vector, device=self.device).frames
        reference = np.frombuffer(vector.with_suffix(".rgb").read_bytes(), np.uint8).reshape(frames.shape)
        diff = int(np.abs(frames.astype(np.int16) - reference.astype(np.int16)).max())
        if diff > manifest["frames_tolerance"]["max_abs_diff"]:
            raise AssertionError(f"frames differ by {diff}")
        return f"max diff {diff}"

    def kill_and_resume(self, clip: Path) -> str:
        reference = self.folder / "uninterrupted.nvc"
        args = self.encode_args("nerv", clip, reference, "--no-amp", "--checkpoint-every", "1")
        args[args.index("--epochs") + 1] = "400"
        start = time.monotonic()
        self.nvc(*args)
        full = time.monotonic() - start
        killed = self.folder / "killed.nvc"
        args[args.index(str(reference))] = str(killed)
        threads = ["--threads", str(self.threads)] if self.threads else []
        process = subprocess.Popen(
            [*NVC, *threads, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **FIXED_TIME},
        )
        time.sleep(0.6 * full)
        process.send_signal(signal.SIGKILL)
        process.wait()
        checkpoint = Path(str(killed) + ".ckpt.npz").is_file()
        self.nvc(*args)
        if killed.read_bytes() != reference.read_bytes():
            raise AssertionError("the resumed file differs from the uninterrupted one")
        return f"killed at {0.6 * full:.1f} s of {full:.1f} s ({'from a checkpoint' if checkpoint else 'no checkpoint yet'}), identical"

    def reproducible(self, family: str, clip: Path) -> str:
        first, second = self.folder / f"{family}_again1.nvc", self.folder / f"{family}_again2.nvc"
        for output in (first, second):
            self.nvc(*self.encode_args(family, clip, output, "--no-amp", "--no-resume"))
        a, b = first.read_bytes(), second.read_bytes()
        if a != b:
            raise AssertionError(f"two encodes differ ({len(a)} and {len(b)} bytes)")
        return f"{len(a)} bytes, sha256 {hashlib.sha256(a).hexdigest()[:12]} twice"

    def workers(self, clip: Path) -> str:
        common = ["--segment-seconds", "0.7", "--no-amp", "--no-resume"]
        serial, jobs, ranks = (self.folder / f"segments_{n}.nvc" for n in ("serial", "jobs", "torchrun"))
        timings = {}
        for output, extra in ((serial, []), (jobs, ["--jobs", "2"])):
            start = time.monotonic()
            self.nvc(*self.encode_args("nerv", clip, output, *common, *extra))
            timings[output] = time.monotonic() - start
        start = time.monotonic()
        launch = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "-m",
            "nvcodec.cli",
            "--threads",
            "1",
            *self.encode_args("nerv", clip, ranks, *common),
        ]
        done = subprocess.run(launch, capture_output=True, text=True, timeout=600, env={**os.environ, **FIXED_TIME})
        if done.returncode != 0:
            raise RuntimeError("torchrun: " + (done.stderr.strip().splitlines() or ["failed"])[-1])
        timings[ranks] = time.monotonic() - start
        segments = json.loads(
            subprocess.run([*NVC, "info", str(serial), "--json"], capture_output=True, text=True, check=True).stdout
        ).get("segments", [])
        if len(segments) < 2:
            raise AssertionError(f"the clip gave {len(segments)} segment(s), not several")
        for output in (jobs, ranks):
            if output.read_bytes() != serial.read_bytes():
                raise AssertionError(f"{output.name} differs from the serial file")
        return (
            f"{len(segments)} segments; serial {timings[serial]:.1f} s, --jobs 2 {timings[jobs]:.1f} s, "
            f"torchrun x2 {timings[ranks]:.1f} s; identical bytes"
        )

    def peak_1080p(self, frames: int) -> str:
        code = f"""
import resource, sys, torch
from nvcodec.api import EncodeSettings, encode
from nvcodec.io import read_video, sample_clip_path
clip = read_video(sample_clip_path(), (0, {frames}), (1920, 1080))
device = {self.device!r}
if device.startswith("cuda"):
    torch.cuda.reset_peak_memory_stats()
encode(clip, {str(self.folder / "hd.nvc")!r}, EncodeSettings(model="nerv", bpp=0.05, epochs=1, device=device,
       resume=False))
if device.startswith("cuda"):
    print(f"peak GPU memory {{torch.cuda.max_memory_allocated() / 2**30:.2f}} GiB "
          f"of {{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f}} GiB")
else:
    print(f"peak resident memory {{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f}} GiB")
"""
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError((done.stderr.strip().splitlines() or ["failed"])[-1])
        return f"{frames} frames of 1920x1080, nerv at 0.05 bpp, 1+1 epochs: {done.stdout.strip()}"

    def steps_per_second(self, families: list[str]) -> str:
        import torch

        from nvcodec.api import plan_model
        from nvcodec.devices import resolve_device
        from nvcodec.families import backbone_class
        from nvcodec.io import read_video, sample_clip_path
        from nvcodec.train.trial import run_trial

        clip = read_video(sample_clip_path(), (0, 32), (320, 180))
        devices = [resolve_device(self.device)] + ([] if self.device == "cpu" else [torch.device("cpu")])
        rows = []
        for family in families:
            cls = backbone_class(family)
            cells = []
            for device in devices:
                trial = run_trial(cls(plan_model(cls, clip, 0.1)), clip.frames, device, None)
                cells.append(f"{1 / trial.step_seconds:7.1f}{' bf16' if trial.amp else ' fp32'}")
            rows.append(f"{family}: " + " | ".join(cells))
        header = " | ".join(d.type for d in devices)
        return f"steps/s at 320x180x32, 0.1 bpp model ({header}): " + "; ".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of each nvc process")
    parser.add_argument(
        "--hd-frames",
        type=int,
        default=None,
        help="frames of the 1080p memory check (default: 50 on a GPU, 2 on the CPU)",
    )
    opts = parser.parse_args()

    from nvcodec.families import family_names
    from nvcodec.io import read_video, sample_clip_path, write_video

    families = family_names()
    conformance = sorted((Path(__file__).resolve().parents[1] / "tests" / "conformance").glob("*.nvc"))
    with tempfile.TemporaryDirectory() as tmp:
        smoke = Smoke(opts.device, Path(tmp), opts.threads)
        tiny, longer = Path(tmp) / "tiny.y4m", Path(tmp) / "two_segments.y4m"
        write_video(tiny, read_video(sample_clip_path(), (0, 8), (64, 36)))
        write_video(longer, read_video(sample_clip_path(), (0, 32), (64, 36)))
        print(
            f"gpu_smoke on {opts.device}: {len(families)} families, {len(conformance)} conformance vectors", flush=True
        )
        for family in families:
            for amp in (False, True):
                smoke.check(
                    f"encode {family} {'bf16' if amp else 'fp32'}", lambda f=family, a=amp: smoke.encode(f, a, tiny)
                )
        for family in COMPILED:
            smoke.check(f"encode {family} compiled", lambda f=family: smoke.encode(f, False, tiny, compiled=True))
        for family in families:
            if family in smoke.files:
                smoke.check(f"decode {family} cpu vs {opts.device}", lambda f=family: smoke.decodes_agree(f))
        for vector in conformance:
            smoke.check(f"conformance {vector.stem}", lambda v=vector: smoke.conformance(v))
        smoke.check("kill and resume", lambda: smoke.kill_and_resume(tiny))
        for family in REPRODUCED:
            smoke.check(f"reproducible {family}", lambda f=family: smoke.reproducible(f, tiny))
        smoke.check("--jobs 2 and torchrun x2", lambda: smoke.workers(longer))
        hd_frames = opts.hd_frames or (2 if opts.device == "cpu" else 50)
        smoke.check("peak memory 1080p", lambda: smoke.peak_1080p(hd_frames))
        smoke.check("steps per second", lambda: smoke.steps_per_second(families))
    failed = sum(not ok for _, ok, _, _ in smoke.results)
    print(f"{len(smoke.results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
