"""Training and decoding throughput of every family against the machine's measured peaks.

    python benchmarks/throughput.py --label before [--seconds 20] [--models nerv,siren] [--eager] [--profile]

For each family, at the size its 0.1 bpp encode of Big Buck Bunny 320x180x32 uses and in the
precision the encoder would pick (the same trial), compiled where the family asks for it (not
with ``--eager``), under fit's CPU settings: optimizer steps per second (the encoder's own
step: objective, backward, Adam), pixels per second, floating-point operations per step counted
by ``torch.utils.flop_counter`` (forward and backward), the GFLOP/s that makes, and that as a
share of the fp32 and bf16 GEMM peaks measured in the same run on the same threads. Then decode
frames per second (rendering every frame as ``nvc decode`` does) and the process's peak RSS.
Each family runs in its own process, so RSS and warm-up do not leak between them.

Writes benchmarks/results/throughput/<label>/results.{json,md} and, with ``--profile``, each
family's operator profile over 20 steps (profile_<family>.txt; the profiler's memory then shows
in the peak RSS). Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from nvcodec.cputuning import flush_denormals

ROOT = Path(__file__).resolve().parents[1]

OUT = ROOT / "benchmarks" / "results" / "throughput"
BPP = 0.1


def gemm_peak(dtype, size: int = 2048, seconds: float = 2.0) -> float:
    """GFLOP/s of a square matrix product in ``dtype`` on the current threads."""
    import torch

    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - start) / 1e9


@flush_denormals()  # as in fit (the decode below runs with it too; it is only timed)
def measure_family(name: str, seconds: float, eager: bool = False, profile_to: str | None = None) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nvcodec.cputuning import keep_freed_memory
    from nvcodec.encoder import plan_model
    from nvcodec.families import backbone_class, declaration
    from nvcodec.io import read_video, sample_clip_path
    from nvcodec.render import render_frames
    from nvcodec.train.compiled import compile_wanted
    from nvcodec.train.fit import TrainConfig, _optimizer, autocast_for
    from nvcodec.train.objectives import objective_for
    from nvcodec.train.trial import run_trial

    keep_freed_memory()  # as nvc and fit do
    video = read_video(sample_clip_path(), (0, 32), (320, 180))
    cls, family = backbone_class(name), declaration(name)
    torch.manual_seed(0)
    model = cls(plan_model(cls, video, BPP))
    device = torch.device("cpu")
    trial = run_trial(model, video.frames, device, family.train_overrides.get("amp"))
    model.to(memory_format=torch.channels_last)
    objective = objective_for(model, video.frames, device, "l2", 0)
    cfg = TrainConfig(**{**family.train_overrides, "amp": trial.amp})
    opt = _optimizer(model, cfg, cfg.lr, objective.extra_parameters())
    autocast = autocast_for(device, trial.amp)
    compile_it = compile_wanted(cfg.compile, device.type) and not eager

    def step(index: int) -> None:
        opt.zero_grad(set_to_none=True)
        loss, _ = objective.step(0, index % objective.steps_per_epoch, autocast)
        loss.backward()
        opt.step()

    step(0)
    with FlopCounterMode(display=False) as counter:  # counted on the eager step: the same operations
        step(0)
    flops = counter.get_total_flops()
    objective.compile = compile_it
    started = time.perf_counter()
    for i in range(3):
        step(i)
    warmup_seconds = time.perf_counter() - started  # includes compiling
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(steps)
        steps += 1
    elapsed = time.perf_counter() - start
    if profile_to is not None:  # what bounds the step: the operators' self CPU time over 20 steps
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(20):
                step(i)
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60)
        Path(profile_to).write_text(f"{name}: 20 training steps, {torch.get_num_threads()} threads\n{table}\n")
    pixels_per_step = getattr(objective, "pixels_per_step", None) or video.width * video.height * objective.batch_frames

    model.eval()
    times = [i / (video.num_frames - 1) for i in range(video.num_frames)]
    list(render_frames(model, times[:4], device))  # warm-up
    start = time.perf_counter()
    for _ in render_frames(model, times, device):
        pass
    decode_seconds = time.perf_counter() - start
    return {
        "family": name,
        "params": cls.count_params(model.config),
        "bf16": trial.amp,
        "compiled": compile_it,
        "warmup_seconds": warmup_seconds,
        "steps": steps,
        "steps_per_s": steps / elapsed,
        "pixels_per_s": steps * pixels_per_step / elapsed,
        "gflop_per_step": flops / 1e9,
        "gflop_per_s": flops * steps / elapsed / 1e9,
        "decode_fps": video.num_frames / decode_seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="now")
    parser.add_argument("--seconds", type=float, default=20.0, help="Timed training per family.")
    parser.add_argument("--models", default="")
    parser.add_argument("--eager", action="store_true", help="Never torch.compile (what the families gain by it).")
    parser.add_argument("--profile", action="store_true", help="Also write each family's operator profile.")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one family in this process
    opts = parser.parse_args()
    import torch

    if opts.one:
        profile_to = str(OUT / opts.label / f"profile_{opts.one}.txt") if opts.profile else None
        print(json.dumps(measure_family(opts.one, opts.seconds, opts.eager, profile_to)))
        return
    from nvcodec.families import family_names

    threads = torch.get_num_threads()
    peaks = {"fp32": gemm_peak(torch.float32), "bf16": gemm_peak(torch.bfloat16)}
    rows = []
    (OUT / opts.label).mkdir(parents=True, exist_ok=True)
    for name in opts.models.split(",") if opts.models else family_names():
        flags = [*(["--eager"] if opts.eager else []), *(["--profile"] if opts.profile else [])]
        done = subprocess.run(
            [sys.executable, __file__, "--one", name, "--seconds", str(opts.seconds), "--label", opts.label, *flags],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["share_of_peak"] = row["gflop_per_s"] / peaks["bf16" if row["bf16"] else "fp32"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = OUT / opts.label
    (out / "results.json").write_text(
        json.dumps({"threads": threads, "peaks_gflop_per_s": peaks, "rows": rows}, indent=1) + "\n"
    )
    lines = [
        f"# Throughput ({opts.label})",
        "",
        f"`python benchmarks/throughput.py --label {opts.label} --seconds {opts.seconds:g}`; {threads} threads; "
        f"GEMM peaks measured in the same run: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s. "
        f"Each family at its 0.1 bpp size for Big Buck Bunny 320x180x32, in the precision the encoder's trial "
        "picks, compiled where the family asks for torch.compile (warm-up: the first 3 steps, compiling "
        "included); FLOPs of one optimizer step (forward + backward) from torch.utils.flop_counter.",
        "",
        "| family | params | precision | compiled (warm-up s) | steps/s | pixels/s | GFLOP/step | GFLOP/s | of peak | decode fps | "
        "peak RSS (MiB) |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        compiled = f"yes ({r['warmup_seconds']:.1f})" if r.get("compiled") else "no"
        lines.append(
            f"| {r['family']} | {r['params']} | {'bf16' if r['bf16'] else 'fp32'} | {compiled} | "
            f"{r['steps_per_s']:.1f} | "
            f"{r['pixels_per_s'] / 1e6:.2f}M | {r['gflop_per_step']:.3f} | {r['gflop_per_s']:.1f} | "
            f"{100 * r['share_of_peak']:.1f} % | {r['decode_fps']:.0f} | {r['peak_rss_mib']:.0f} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
