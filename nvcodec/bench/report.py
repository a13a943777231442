"""Writing benchmark results: CSV (points), JSON (everything), markdown (tables) and a PNG plot.

Why four files: the CSV feeds spreadsheets, the JSON is the complete machine-readable record
(versions, machine, settings, measurement rules), the markdown is what a person reads in a PR,
and the plot shows the curves at a glance. All are written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..fsutil import atomic_path, atomic_write_bytes
from .anchors import COLOUR_NOTE
from .points import RATE_ANCHOR, RATE_NVCODEC, RDPoint

if TYPE_CHECKING:
    from .rd import BenchResults

RESULTS_SCHEMA = "nvcodec-rd/1"
FILES = {"csv": "rd_points.csv", "json": "rd_results.json", "markdown": "rd_summary.md", "png": "rd_curve.png"}

MEASUREMENT = {
    "rate_anchors": RATE_ANCHOR,
    "rate_nvcodec": RATE_NVCODEC,
    "bpp": "8 x rate bytes / (width x height x frames)",
    "psnr": "RGB-PSNR: mean over frames of per-frame PSNR on 8-bit RGB, peak 255",
    "y_psnr": "Y-PSNR: mean over frames of per-frame PSNR of BT.601 full-range luma (0.299 R + 0.587 G + 0.114 B)",
    "ms_ssim": (
        "MS-SSIM on RGB in [0, 1], 11x11 Gaussian window (sigma 1.5), standard five weights "
        "(nvcodec.metrics; anchors evaluated in float32, which differs from float64 by about 1e-7)"
    ),
    "anchor_colour": COLOUR_NOTE,
    "quality_source": "every metric is computed on what the codec's real decoder returns from the stored bytes",
    "timing": (
        "wall-clock seconds; anchors: encode includes RGB to Y'CbCr conversion, decode includes the "
        "conversion back; nvcodec: encode as reported by nvcodec.api.encode (all of training, compression, "
        "writing and its verification decode), decode measured around nvcodec.api.decode"
    ),
    "bd": (
        "Bjontegaard deltas of RGB-PSNR vs bpp: piecewise cubic Hermite (PCHIP) interpolation over the "
        "overlapping range, integrated exactly in natural-log rate; BD-rate < 0 and BD-PSNR > 0 favour the test curve"
    ),
}

CSV_COLUMNS = (
    "clip",
    "codec",
    "curve",
    "knob",
    "knob_value",
    "file_bytes",
    "uncounted_bytes",
    "rate_bytes",
    "bpp",
    "psnr",
    "y_psnr",
    "ms_ssim",
    "encode_seconds",
    "decode_seconds",
    "width",
    "height",
    "frames",
    "version",
    "stream",
    "from_cache",
    "key",
)


def json_safe(value: object) -> object:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def results_dict(results: "BenchResults", plot_problem: str | None = None) -> dict[str, object]:
    return json_safe(
        {
            "schema": RESULTS_SCHEMA,
            "measurement": MEASUREMENT,
            "environment": results.environment,
            "config": results.config_dict(),
            "clips": list(results.clips),
            "points": [p.to_dict() for p in results.points],
            "bd": [b.to_dict() for b in results.bd],
            "skipped": [s.to_dict() for s in results.skipped],
            "computed": results.computed,
            "cached": results.cached,
            "plot": plot_problem or FILES["png"],
        }
    )


def write_csv(path: Path, points: tuple[RDPoint, ...]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for point in points:
        row = point.to_dict()
        writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
    atomic_write_bytes(path, buffer.getvalue().encode())


_INT_COLUMNS = ("file_bytes", "uncounted_bytes", "rate_bytes", "width", "height", "frames")
_FLOAT_COLUMNS = ("knob_value", "bpp", "psnr", "y_psnr", "ms_ssim", "encode_seconds", "decode_seconds")


def read_csv(path: Path) -> list[RDPoint]:
    """The points of an ``rd_points.csv`` (this format, or the older one with ``version_sei_bytes``,
    whose ``bpp`` counted the whole stream)."""
    points = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            values: dict[str, object] = dict(row)
            for name in _INT_COLUMNS:
                values[name] = int(row[name]) if row.get(name) else None
            for name in _FLOAT_COLUMNS:
                values[name] = float(row[name])
            values["from_cache"] = row.get("from_cache") == "True"
            values["rate_counted"] = RATE_NVCODEC if row["codec"] == "nvcodec" else f"as in {path}"
            points.append(RDPoint.from_dict({k: v for k, v in values.items() if v is not None}))
    return points


def write_json(path: Path, results: "BenchResults", plot_problem: str | None = None) -> None:
    text = json.dumps(results_dict(results, plot_problem), indent=2, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def markdown(results: "BenchResults", plot_problem: str | None = None) -> str:
    env = results.environment
    machine = env.get("machine", {}) if isinstance(env, dict) else {}
    lines = [
        "# Rate-distortion benchmark",
        "",
        f"nvcodec {env['nvcodec']['version']} ({env['nvcodec']['git_commit'] or 'no git commit'}), "
        f"PyAV {env['pyav']}, FFmpeg {env['ffmpeg']}, "
        + ", ".join(f"{k} {v}" for k, v in env["encoders"].items())
        + f", torch {env['torch']['version']}; "
        f"{machine.get('cpu')}, {machine.get('usable_cores')} usable cores.",
        "",
        "## How the numbers are measured",
        "",
        *(f"- **{k.replace('_', ' ')}**: {v}" for k, v in MEASUREMENT.items()),
        "",
    ]
    for clip in results.clips:
        name = clip["name"]
        frames = clip["frames"]
        lines += [
            f"## {name}: {clip['width']}x{clip['height']}, {clip['num_frames']} frames"
            + (f" ({frames[0]}:{frames[1]})" if frames else "")
            + f" at {clip['fps']} fps",
            "",
            "| curve | setting | stream bytes | not video (left out) | rate bytes | bpp | RGB-PSNR (dB) | Y-PSNR (dB) | MS-SSIM "
            "| encode (s) | decode (s) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for p in sorted((p for p in results.points if p.clip == name), key=lambda p: (p.curve, p.bpp)):
            knob = f"CRF {p.knob_value:g}" if p.knob == "crf" else f"target {p.knob_value:g} bpp"
            lines.append(
                f"| {p.curve} | {knob} | {p.file_bytes} | {'-' if p.uncounted_bytes is None else p.uncounted_bytes} "
                f"| {p.rate_bytes} "
                f"| {p.bpp:.4f} | {_fmt(p.psnr, 2)} | {_fmt(p.y_psnr, 2)} "
                f"| {_fmt(p.ms_ssim, 4)} | {p.encode_seconds:.2f} | {p.decode_seconds:.2f} |"
            )
        bd = [b for b in results.bd if b.clip == name]
        if bd:
            lines += [
                "",
                "Bjontegaard deltas (RGB-PSNR vs bpp of the rate bytes, i.e. anchors without their "
                "version SEI / temporal delimiters; PCHIP):",
                "",
                "| test | anchor | BD-rate (%) | BD-PSNR (dB) | note |",
                "|---|---|---:|---:|---|",
            ]
            lines += [f"| {b.test} | {b.anchor} | {_fmt(b.bd_rate, 1)} | {_fmt(b.bd_psnr, 2)} | {b.note} |" for b in bd]
        lines.append("")
    if results.skipped:
        lines += ["## Skipped or failed", ""]
        lines += [f"- {s.clip or 'all clips'}: {s.what}: {s.status}: {s.reason}" for s in results.skipped]
        lines.append("")
    if plot_problem:
        lines += [f"No plot: {plot_problem}.", ""]
    else:
        lines += [f"![RGB-PSNR vs bpp]({FILES['png']})", ""]
    lines.append(f"{results.computed} points computed, {results.cached} reused from the cache.")
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, results: "BenchResults", plot_problem: str | None = None) -> None:
    atomic_write_bytes(path, markdown(results, plot_problem).encode())


def write_plot(path: Path, results: "BenchResults") -> str | None:
    """RGB-PSNR vs bpp, one panel per clip and one curve per codec setting; None or why not."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    except ImportError:
        return "matplotlib is not installed (pip install 'nvcodec[bench]')"
    clips = [c["name"] for c in results.clips]
    if not clips:
        return "no clips"
    figure = Figure(figsize=(6.4 * len(clips), 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(clips), squeeze=False)[0]
    for ax, clip in zip(axes, clips):
        points = [p for p in results.points if p.clip == clip]
        for curve in sorted({p.curve for p in points}):
            curve_points = sorted((p for p in points if p.curve == curve), key=lambda p: p.bpp)
            style = "o-" if curve_points[0].codec == "nvcodec" else "s--"
            ax.plot([p.bpp for p in curve_points], [p.psnr for p in curve_points], style, label=curve)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("bits per pixel (log scale)")
        ax.set_ylabel("RGB-PSNR (dB)")
        ax.set_title(clip)
        ax.grid(True, which="both", alpha=0.3)
        if points:
            ax.legend()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    return None


def write_all(out_dir: Path, results: "BenchResults", plot: bool = True) -> dict[str, str]:
    """Write every output into ``out_dir``; return {kind: path} of what was written."""
    paths = {kind: out_dir / name for kind, name in FILES.items()}
    write_csv(paths["csv"], results.points)
    plot_problem = write_plot(paths["png"], results) if plot else "disabled (--no-plot)"
    if plot_problem:
        del paths["png"]
    write_json(paths["json"], results, plot_problem)
    write_markdown(paths["markdown"], results, plot_problem)
    return {kind: str(p) for kind, p in paths.items()}
