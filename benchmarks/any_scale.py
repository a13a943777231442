"""Is ``nvc decode --scale`` worth it? The pixel-wise families against resampling their native decode.

A family that renders any size from one file earns that use only where it beats what a user would
otherwise do: decode at the coded size and resample with a standard filter. For each family, clip,
rate and seed this trains at a reduced size (the source area-downscaled, as ``--resize`` does),
decodes the file at x2, x1.5, x0.5 and at the coded size, and scores each against the true frames at
that size (the source area-downscaled to it). Beside it: swscale's bilinear, bicubic, Lanczos and
area filters on the same file's native decode (the user's alternatives), and the same filters on
the uncoded reduced frames (an oracle: what resampling could give with no coding loss at all).

    python benchmarks/any_scale.py -o benchmarks/results/any_scale            # 2 families x 2 clips x 2 rates x 3 seeds
    python benchmarks/any_scale.py --models coordflow --clips bbb --bpps 0.3 --seeds 1 -o /tmp/x

Every run is cached as JSON in the output folder under a key of its settings and the commit, so a
rerun only measures what is missing; ``summary.md`` holds the table (mean and spread over seeds).
Budgets are process-CPU seconds of training on the threads torch is given (``--threads``).
"""

from __future__ import annotations

import functools
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import numpy as np
import torch

from nvcodec.api import EncodeSettings, RenderRequest, decode, encode
from nvcodec.bench.cache import PointCache, point_key
from nvcodec.bench.environment import environment
from nvcodec.bench.resample import FILTERS, resample
from nvcodec.fsutil import atomic_write_bytes
from nvcodec.io import read_video, sample_clip_path
from nvcodec.metrics import psnr
from nvcodec.renderplan import scaled_size


@dataclass(frozen=True)
class ClipChoice:
    """A source, its frames, and the reduced size the codec is trained at (half the true size)."""

    source: str
    frames: tuple[int, int]
    true_size: tuple[int, int]  # (width, height) of the truth at x2

    @property
    def coded_size(self) -> tuple[int, int]:
        return self.true_size[0] // 2, self.true_size[1] // 2


CLIPS = {
    "bbb": lambda: ClipChoice(str(sample_clip_path()), (0, 32), (320, 180)),
    "carphone": lambda: ClipChoice(str(sample_clip_path().parent / "carphone_pristine.mp4"), (0, 32), (176, 144)),
}
SCALES = (1.0, 2.0, 1.5, 0.5)
ALTERNATIVES = {2.0: "bicubic", 1.5: "bicubic", 0.5: "area"}  # the filter each scale must beat (issue 29)


@functools.lru_cache(maxsize=None)
def true_frames(source: str, frames: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """The source area-downscaled to ``size``: the truth at that size (read once per clip and size)."""
    return read_video(source, frames=frames, resize=size).frames


def measure(clip: ClipChoice, model: str, bpp: float, seed: int, budget: float, options: dict, folder: Path) -> dict:
    """One encode at the coded size and every decode and baseline: PSNR per (scale, method)."""
    small = read_video(clip.source, frames=clip.frames, resize=clip.coded_size)
    path = folder / "streams" / f"{model}_{Path(clip.source).stem}_{bpp:g}_s{seed}.nvc"
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = EncodeSettings(
        model=model,
        bpp=bpp,
        train_seconds=budget,
        train_clock="cpu",
        seed=seed,
        device="cpu",
        resume=False,
        objective_options=options,
    )
    started = time.process_time()
    report = encode(small, path, settings)
    native = decode(path).frames
    scores: dict[str, dict[str, float]] = {}
    for scale in SCALES:
        width, height = scaled_size(*clip.coded_size, scale)
        truth = true_frames(clip.source, clip.frames, (width, height))
        rendered = native if scale == 1.0 else decode(path, request=RenderRequest(scale=scale)).frames
        row = {"family": psnr(truth, rendered)}
        if scale != 1.0:
            for method in FILTERS:
                row[f"{method} of native"] = psnr(truth, resample(native, width, height, method))
                row[f"{method} of uncoded"] = psnr(truth, resample(small.frames, width, height, method))
        scores[f"x{scale:g}"] = row
    return {
        "bpp": report.bpp,
        "native_psnr": report.psnr,
        "cpu_seconds": time.process_time() - started,
        "scores": scores,
    }


def cached_run(cache: PointCache, identity: dict, run) -> dict:
    """A run's result from the cache (the RD benchmark's), or measured and stored there."""
    key = point_key(identity["clip_choice"]["source"], identity)
    label = f"{identity['model']}_{identity['clip']}_{identity['bpp']:g}_s{identity['seed']}"
    result = cache.load(key, label)
    if result is None:
        result = {"identity": identity, **run()}
        cache.store(key, label, result)
    return result


def _margin(runs: list[dict], scale: str) -> str:
    """The family's PSNR minus that of the filter it must beat (``ALTERNATIVES``) on the same
    file's native decode, seed by seed: paired, so the seeds' common spread cancels."""
    bar = ALTERNATIVES.get(float(scale[1:]))
    if bar is None:
        return ""
    gaps = [r["scores"][scale]["family"] - r["scores"][scale][f"{bar} of native"] for r in runs]
    return f"{statistics.mean(gaps):+.3f} ({min(gaps):+.3f} to {max(gaps):+.3f}) vs {bar}"


def summary(results: list[dict]) -> str:
    """One table per (family, clip, rate): mean PSNR over seeds and its spread (max - min)."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        i = r["identity"]
        groups.setdefault((i["model"], i["clip"], i["bpp"]), []).append(r)
    lines = []
    for (model, clip, bpp), runs in sorted(groups.items()):
        i = runs[0]["identity"]
        bpps = [r["bpp"] for r in runs]
        lines += [
            f"### {model}, {clip}, {bpp:g} bpp ({len(runs)} seeds, {i['budget']:g} CPU-s each, {i['threads']} threads, "
            f"commit {i['commit']}; file {min(bpps):.3f}-{max(bpps):.3f} bpp)",
            "",
            "| scale | family | "
            + " | ".join(f"{m} of native" for m in FILTERS)
            + " | "
            + " | ".join(f"{m} of uncoded" for m in FILTERS)
            + " | family - the bar (per seed: mean, min to max) |",
            "|---|" + "---:|" * (2 + 2 * len(FILTERS)),
        ]
        for scale in (f"x{s:g}" for s in SCALES):  # the cache stores keys sorted
            cells = []
            for column in ["family"] + [f"{m} of {s}" for s in ("native", "uncoded") for m in FILTERS]:
                got = [r["scores"][scale].get(column) for r in runs]
                if None in got:  # no filters at the coded size
                    cells.append("")
                    continue
                spread = f" ({max(got) - min(got):.2f})" if len(got) > 1 else ""
                cells.append(f"{statistics.mean(got):.2f}{spread}")
            lines.append(f"| {scale} | " + " | ".join(cells) + f" | {_margin(runs, scale)} |")
        lines.append("")
    return "\n".join(lines)


@click.command()
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--models", default="coordflow,siren", show_default=True)
@click.option("--clips", default="bbb,carphone", show_default=True, help=f"Of {', '.join(CLIPS)}.")
@click.option("--bpps", default="0.1,0.3", show_default=True)
@click.option("--seeds", default=3, show_default=True)
@click.option("--budget", default=60.0, show_default=True, help="Process-CPU seconds of training per encode.")
@click.option("--threads", default=2, show_default=True)
@click.option("--options", default="{}", help="Objective options (JSON), e.g. a variant under test.")
@click.option("--tag", default=None, help="Cache key in place of the commit (an experiment's label).")
def main(out_dir, models, clips, bpps, seeds, budget, threads, options, tag) -> None:
    torch.set_num_threads(threads)
    folder = Path(out_dir)
    cache = PointCache(folder / "runs")
    commit = tag or environment()["nvcodec"]["git_commit"]
    objective_options = json.loads(options)
    results = []
    for clip_name in clips.split(","):
        clip = CLIPS[clip_name]()
        for model in models.split(","):
            for bpp in (float(b) for b in bpps.split(",")):
                for seed in range(seeds):
                    identity = {
                        "model": model,
                        "clip": clip_name,
                        "clip_choice": asdict(clip) | {"source": Path(clip.source).name},
                        "bpp": bpp,
                        "seed": seed,
                        "budget": budget,
                        "threads": threads,
                        "options": objective_options,
                        "commit": commit,
                    }
                    print(f"{model} {clip_name} {bpp:g} bpp seed {seed} ...", file=sys.stderr, flush=True)
                    result = cached_run(
                        cache,
                        identity,
                        functools.partial(measure, clip, model, bpp, seed, budget, objective_options, folder),
                    )
                    print(json.dumps(result["scores"]["x2"]), file=sys.stderr, flush=True)
                    results.append(result)
    text = summary(results)
    atomic_write_bytes(folder / "summary.md", text.encode())
    print(text)


if __name__ == "__main__":
    main()
