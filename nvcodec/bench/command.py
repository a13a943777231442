"""Command line for the RD benchmark: ``nvc bench`` and ``benchmarks/rd_curve.py`` are this one command.

Why a separate module: ``rd.run_benchmark`` stays click-free; this file only turns options into
a ``BenchConfig`` and errors into exit codes (``nvcodec/cli.py`` adds it to the ``nvc`` group).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from ..choices import TRAIN_CLOCKS
from ..errors import NvcError, UsageError
from ..io import parse_frame_range, parse_size
from .anchors import ANCHORS, DEFAULT_CRFS, PIX_FMTS, SVTAV1_CRFS, SVTAV1_PRESET

if TYPE_CHECKING:
    from .rd import BenchConfig


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _numbers(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in _split(text))
    except ValueError:
        raise UsageError(f"{what} {text!r}: expected comma-separated numbers, e.g. 23,28,33") from None


@click.command("bench")
@click.option(
    "--clip",
    "clips",
    multiple=True,
    metavar="PATH",
    help="Video file or PNG folder (repeatable). Default: the Big Buck Bunny sample.",
)
@click.option(
    "--frames", default="0:32", show_default=True, help="Frame range A:B (B excluded); 'all' for every frame."
)
@click.option("--resize", default="320x180", show_default=True, help="Scale to WxH; 'none' keeps the size.")
@click.option(
    "-o", "--out", "out_dir", default="rd_out", show_default=True, help="Output folder (also holds the point cache)."
)
@click.option(
    "--anchors",
    default=",".join(ANCHORS),
    show_default=True,
    help=f"Anchors to run, comma-separated ({', '.join(ANCHORS)}); '' for none.",
)
@click.option("--presets", default="medium", show_default=True, help="x264/x265 presets, comma-separated.")
@click.option(
    "--crf", "crfs", default=",".join(f"{c:g}" for c in DEFAULT_CRFS), show_default=True, help="x264/x265 CRFs."
)
@click.option(
    "--svtav1-presets", default=SVTAV1_PRESET, show_default=True, help="SVT-AV1 presets (0-13), comma-separated."
)
@click.option(
    "--svtav1-crf",
    "svtav1_crfs",
    default=",".join(f"{c:g}" for c in SVTAV1_CRFS),
    show_default=True,
    help="SVT-AV1 CRFs (its scale is 1-63).",
)
@click.option(
    "--pix-fmt", type=click.Choice(PIX_FMTS), default="yuv420p", show_default=True, help="Anchor pixel format."
)
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="Anchor encoder/decoder threads.")
@click.option("--models", default="nerv", show_default=True, help="nvcodec families, comma-separated.")
@click.option("--bpp", "bpps", default="0.05,0.1,0.2", show_default=True, help="nvcodec bpp targets.")
@click.option("--anchors-only", is_flag=True, help="Run no nvcodec points.")
@click.option("--nvc-preset", default="medium", show_default=True, help="nvcodec preset.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--epochs", type=click.IntRange(1), default=None, help="Override the preset's training epochs.")
@click.option(
    "--rate-training",
    "rate_training",
    type=click.Choice(["on", "off", "both"]),
    default="on",
    show_default=True,
    help="nvcodec pipeline: rate-aware training, post-training quantization, or both "
    "(two curves per family, for the ablation).",
)
@click.option(
    "--train-clock",
    type=click.Choice(TRAIN_CLOCKS),
    default="wall",
    show_default=True,
    help="Clock of --train-time: wall, or process CPU seconds (equal compute whatever else runs).",
)
@click.option(
    "--train-time",
    "--train-seconds",
    "train_seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Train every nvcodec point for this many wall-clock seconds (equal encode effort; overrides the preset).",
)
@click.option(
    "--nvcodec-points",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Reuse the nvcodec rows of this rd_points.csv (same clip) instead of encoding; with --anchors-only "
    "this re-measures only the anchors.",
)
@click.option(
    "--model-options",
    default="{}",
    show_default=True,
    help="The families' encode options as JSON, e.g. '{\"gop\": 1}' (an ablation: part of each point's curve name).",
)
@click.option("--fresh", is_flag=True, help="Ignore cached points and measure everything again.")
@click.option("--no-plot", is_flag=True, help="Skip the PNG plot.")
def bench(**opts: object) -> None:
    """Rate-distortion benchmark of nvcodec against x264, x265 and SVT-AV1 (CSV, JSON, markdown, PNG).

    The same benchmark as benchmarks/rd_curve.py. Anchor rates count the coded video only (no
    version SEI, no AV1 temporal delimiters); the raw stream size is kept in the CSV."""
    from .rd import run_benchmark  # torch loads here, not when `nvc` starts

    try:
        config = _config(opts)
        results = run_benchmark(config)
    except NvcError as exc:
        click.echo(f"nvc: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    for kind, path in results.outputs.items():
        click.echo(f"{kind}: {path}")
    if results.failed:
        click.echo(f"nvc: error: {len(results.failed)} point(s) failed; see the markdown summary", err=True)
        sys.exit(1)


def _config(opts: dict[str, object]) -> BenchConfig:
    from .clips import ClipSpec
    from .rd import BenchConfig

    frames_text, resize_text = str(opts["frames"]), str(opts["resize"])
    frames = None if frames_text.lower() == "all" else parse_frame_range(frames_text)
    resize = None if resize_text.lower() in ("none", "") else parse_size(resize_text)
    paths = list(opts["clips"]) or [None]
    return BenchConfig(
        out_dir=str(opts["out_dir"]),
        clips=tuple(ClipSpec(p, frames, resize) for p in paths),
        anchors=tuple(_split(str(opts["anchors"]))),
        anchor_presets=tuple(_split(str(opts["presets"]))),
        crfs=_numbers(str(opts["crfs"]), "--crf"),
        svtav1_presets=tuple(_split(str(opts["svtav1_presets"]))),
        svtav1_crfs=_numbers(str(opts["svtav1_crfs"]), "--svtav1-crf"),
        pix_fmt=str(opts["pix_fmt"]),
        threads=int(opts["threads"]),
        models=() if opts["anchors_only"] else tuple(_split(str(opts["models"]))),
        bpps=() if opts["anchors_only"] else _numbers(str(opts["bpps"]), "--bpp"),
        nvc_preset=str(opts["nvc_preset"]),
        seed=int(opts["seed"]),
        device=str(opts["device"]),
        epochs=opts["epochs"],
        train_seconds=opts["train_seconds"],
        rate_training={"on": (True,), "off": (False,), "both": (True, False)}[str(opts["rate_training"])],
        train_clock=str(opts["train_clock"]),
        resume=not opts["fresh"],
        plot=not opts["no_plot"],
        nvcodec_points=opts["nvcodec_points"],
        model_options=_json_object(str(opts["model_options"])),
    )


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--model-options") from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--model-options")
    return value


def main(argv: list[str] | None = None) -> None:
    """Entry point taking an argument list (for scripts and tests)."""
    bench.main(args=argv, prog_name="rd_curve.py")
