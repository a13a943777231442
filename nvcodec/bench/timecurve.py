"""Quality against training time: at one rate, the decoded PSNR of each family per process-CPU budget.

Why: an INR codec's quality is a function of how long it trains, which an RD table at one budget
hides. A user wants to know how many CPU-seconds buy x264's quality at a rate, and x265's and
SVT-AV1's. Each point is an ordinary RD point (``points.NvcodecJob`` with ``train_seconds`` on the
CPU clock), measured and cached by the RD driver's ``measure_point``; its cache identity holds the
budget and the seed, so every (family, budget, seed) is its own point and a rerun reuses them all.
The anchors' PSNR at the rate is read off their RD curves (PCHIP in log-rate, as Bjontegaard).
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import NvcError
from ..fsutil import atomic_path, atomic_write_bytes
from . import report
from .anchors import DEFAULT_CRFS, SVTAV1_CRFS, SVTAV1_PRESET, SvtAv1Anchor, X264Anchor, X265Anchor
from .bjontegaard import pchip_eval
from .cache import PointCache
from .clips import Clip, ClipSpec, load_clip
from .environment import environment
from .points import AnchorJob, NvcodecJob, RDPoint
from .rd import measure_point, nvcodec_version, point_line

DEFAULT_BUDGETS = (30.0, 60.0, 120.0, 300.0, 600.0, 1200.0)
LANDING_TOLERANCE = 0.03  # a point counts only when its file is within 3 % of the target rate
X26X_CRFS = (18.0, *DEFAULT_CRFS, 48.0, 51.0)  # down to CRF 51 so that low-rate clips are bracketed too


@dataclass(frozen=True)
class TimeCurveConfig:
    out_dir: str
    clips: tuple[ClipSpec, ...]
    models: tuple[str, ...] = ("coordflow", "nerv")
    budgets: tuple[float, ...] = DEFAULT_BUDGETS  # process-CPU seconds of training per point
    seeds: int = 1  # points per (family, budget): seeds 0..seeds-1
    bpp: float = 0.1
    device: str = "cpu"


@dataclass(frozen=True)
class Parity:
    """When a family's mean PSNR first reaches an anchor's: ``seconds`` and how it was found."""

    anchor: str
    anchor_psnr: float
    seconds: float | None
    how: str  # "measured", "interpolated", "before the shortest budget", "extrapolated", "not reached"

    def text(self, longest: float) -> str:
        if self.how == "not reached":
            return f"not within {longest:g} s"
        if self.how == "before the shortest budget":
            return f"at or before {self.seconds:g} s"
        if self.how == "extrapolated":  # an estimate, not a measurement; far past the data it is no figure
            guess = f"about {self.seconds:.0f} s" if self.seconds <= 100 * longest else f"beyond {100 * longest:g} s"
            return f"not within {longest:g} s (extrapolated: {guess})"
        return f"{self.seconds:.0f} s"


@dataclass(frozen=True)
class FamilyCurve:
    """One family on one clip: the points per budget (one per seed) and the parity times."""

    clip: str
    model: str
    points: dict[float, list[RDPoint]]
    parity: list[Parity] = field(default_factory=list)

    def landed(self, budget: float, target: float) -> list[RDPoint]:
        return [p for p in self.points.get(budget, []) if abs(p.bpp / target - 1) <= LANDING_TOLERANCE]

    def mean_psnr(self, budget: float, target: float) -> float:
        landed = self.landed(budget, target)
        return statistics.fmean(p.psnr for p in landed) if landed else math.nan


def anchor_psnr_at(points: list[RDPoint], rate: float) -> float:
    """An anchor curve's PSNR at ``rate`` bpp: PCHIP in log-rate; NaN outside its measured range."""
    curve = sorted((p.bpp, p.psnr) for p in points)
    if len(curve) < 2 or not curve[0][0] <= rate <= curve[-1][0]:
        return math.nan
    rates = np.log([r for r, _ in curve])
    return float(pchip_eval(rates, np.array([q for _, q in curve]), np.array([math.log(rate)]))[0])


def parity_time(budgets: list[float], psnrs: list[float], target: float, anchor: str) -> Parity:
    """The first budget at which ``psnrs`` reaches ``target``: linear in log-time between the two
    budgets around the crossing; past the longest budget, extrapolated from its last two points
    (and marked so) only when they still rise, else "not reached"."""
    known = [(b, q) for b, q in zip(budgets, psnrs) if math.isfinite(q)]
    if not known or not math.isfinite(target):
        return Parity(anchor, target, None, "not reached")
    if known[0][1] >= target:
        return Parity(anchor, target, known[0][0], "before the shortest budget")
    for (b0, q0), (b1, q1) in zip(known, known[1:]):
        if q0 < target <= q1:
            return Parity(anchor, target, _log_time_at(b0, q0, b1, q1, target), "interpolated")
    if len(known) >= 2 and known[-1][1] > known[-2][1]:
        (b0, q0), (b1, q1) = known[-2:]
        return Parity(anchor, target, _log_time_at(b0, q0, b1, q1, target), "extrapolated")
    return Parity(anchor, target, None, "not reached")


def _log_time_at(b0: float, q0: float, b1: float, q1: float, target: float) -> float:
    return math.exp(math.log(b0) + (target - q0) / (q1 - q0) * (math.log(b1) - math.log(b0)))


def _anchor_jobs() -> list[AnchorJob]:
    """x264 and x265 medium over X26X_CRFS, SVT-AV1 at its default preset over its CRFs."""
    jobs = [AnchorJob(cls(crf=crf)) for cls in (X264Anchor, X265Anchor) for crf in X26X_CRFS]
    if SvtAv1Anchor.available():
        jobs += [AnchorJob(SvtAv1Anchor(crf=crf, preset=SVTAV1_PRESET)) for crf in SVTAV1_CRFS]
    return jobs


def run_time_curve(config: TimeCurveConfig, log: Callable[[str], None] = print) -> dict[str, object]:
    """Measure (or reuse) every point, find the parity times, write markdown, JSON, CSV and one PNG per clip."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache, streams = PointCache(out / "cache"), out / "streams"
    env = environment()
    version = nvcodec_version(env)
    summary: dict[str, object] = {"config": dataclasses.asdict(config), "environment": env, "clips": {}}
    all_points: list[RDPoint] = []
    for spec in config.clips:
        clip = load_clip(spec)
        anchors = _measure_anchors(clip, cache, streams, log)
        levels = {name: anchor_psnr_at(points, config.bpp) for name, points in anchors.items()}
        curves = [_family_curve(config, clip, model, version, cache, streams, levels, log) for model in config.models]
        all_points += [p for c in curves for ps in c.points.values() for p in ps]
        all_points += [p for ps in anchors.values() for p in ps]
        summary["clips"][clip.name] = _clip_summary(config, clip, curves, levels)
        problem = write_plot(out / f"time_curve_{clip.name}.png", config, clip.name, curves, levels)
        if problem:
            log(f"no plot: {problem}")
    report.write_csv(out / "time_points.csv", tuple(all_points))
    atomic_write_bytes(out / "time_curve.json", json.dumps(report.json_safe(summary), indent=2).encode())
    atomic_write_bytes(out / "time_curve.md", markdown(config, summary).encode())
    return summary


def _measure_anchors(
    clip: Clip, cache: PointCache, streams: Path, log: Callable[[str], None]
) -> dict[str, list[RDPoint]]:
    curves: dict[str, list[RDPoint]] = {}
    for job in _anchor_jobs():
        point = measure_point(job, clip, cache, streams)
        log(f"{clip.name} {job.curve} crf {job.anchor.crf:g}: {point_line(point)}")
        curves.setdefault(job.curve, []).append(point)
    return curves


def _family_curve(
    config: TimeCurveConfig,
    clip: Clip,
    model: str,
    version: str,
    cache: PointCache,
    streams: Path,
    levels: dict[str, float],
    log: Callable[[str], None],
) -> FamilyCurve:
    points: dict[float, list[RDPoint]] = {}
    for budget in config.budgets:
        for seed in range(config.seeds):
            job = NvcodecJob(
                model,
                config.bpp,
                seed=seed,
                device=config.device,
                nvcodec_version=version,
                train_seconds=budget,
                train_clock="cpu",
            )
            try:
                point = measure_point(job, clip, cache, streams)
            except NvcError as exc:
                log(f"{clip.name} {model} {budget:g} s seed {seed}: FAILED: {exc}")
                continue
            log(f"{clip.name} {model} {budget:g} CPU-s seed {seed}: {point_line(point)}")
            points.setdefault(budget, []).append(point)
    curve = FamilyCurve(clip.name, model, points)
    budgets = list(config.budgets)
    means = [curve.mean_psnr(b, config.bpp) for b in budgets]
    return dataclasses.replace(
        curve, parity=[parity_time(budgets, means, level, name) for name, level in levels.items()]
    )


def _clip_summary(
    config: TimeCurveConfig, clip: Clip, curves: list[FamilyCurve], levels: dict[str, float]
) -> dict[str, object]:
    longest = max(config.budgets)
    return {
        "clip": clip.describe(),
        "anchors_psnr_at_rate": levels,
        "families": {
            c.model: {
                "budgets": [
                    {
                        "cpu_seconds": b,
                        "seeds": len(c.points.get(b, [])),
                        "landed": len(c.landed(b, config.bpp)),
                        "psnr": [p.psnr for p in c.points.get(b, [])],
                        "bpp": [p.bpp for p in c.points.get(b, [])],
                    }
                    for b in config.budgets
                ],
                "parity": {p.anchor: {**dataclasses.asdict(p), "text": p.text(longest)} for p in c.parity},
            }
            for c in curves
        },
    }


def _spread(psnrs: list[float]) -> str:
    """mean, and min-max when there is more than one."""
    if not psnrs:
        return "-"
    mean = f"{statistics.fmean(psnrs):.2f}"
    return mean if len(psnrs) == 1 else f"{mean} ({min(psnrs):.2f}-{max(psnrs):.2f})"


def markdown(config: TimeCurveConfig, summary: dict[str, object]) -> str:
    """Per clip: the anchors' PSNR at the rate, each family's PSNR per budget (mean, min-max over seeds), parity times."""
    lines = [
        f"# RGB-PSNR at {config.bpp:g} bpp against process-CPU seconds of training",
        "",
        f"Points count only when the file lands within {LANDING_TOLERANCE:.0%} of {config.bpp:g} bpp; "
        f"{config.seeds} seed(s) per point (mean, and min-max when several). Anchors' rate without their "
        "version SEI / temporal delimiters.",
        "",
    ]
    longest = max(config.budgets)
    for name, clip in summary["clips"].items():
        levels = clip["anchors_psnr_at_rate"]
        lines += [
            f"## {name}",
            "",
            "Anchors at that rate: "
            + ", ".join(
                f"{a} {q:.2f} dB" if math.isfinite(q) else f"{a} outside its measured range" for a, q in levels.items()
            ),
            "",
            "| family | "
            + " | ".join(f"{b:g} s" for b in config.budgets)
            + " | "
            + " | ".join(f"time to {a}" for a in levels)
            + " |",
            "|---|" + "---:|" * (len(config.budgets) + len(levels)),
        ]
        for model, family in clip["families"].items():
            cells = []
            for entry in family["budgets"]:
                landed = [
                    q for q, r in zip(entry["psnr"], entry["bpp"]) if abs(r / config.bpp - 1) <= LANDING_TOLERANCE
                ]
                missed = entry["seeds"] - len(landed)
                cells.append(_spread(landed) + (f" ({missed} missed the rate)" if missed else ""))
            lines.append(
                f"| {model} | "
                + " | ".join(cells)
                + " | "
                + " | ".join(family["parity"][a]["text"] for a in levels)
                + " |"
            )
        lines += ["", f"![PSNR against training time](time_curve_{name}.png)", ""]
    lines.append(
        f"Times interpolate the mean PSNR linearly in log-time between budgets; past {longest:g} s an "
        "extrapolation from the last two budgets is marked as one."
    )
    return "\n".join(lines) + "\n"


def write_plot(
    path: Path, config: TimeCurveConfig, clip: str, curves: list[FamilyCurve], levels: dict[str, float]
) -> str | None:
    """PSNR against CPU seconds (log), mean with min-max bars per family; anchors as horizontal lines."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return "matplotlib is not installed (pip install 'nvcodec[bench]')"
    figure = Figure(figsize=(6.4, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    for curve in curves:
        budgets = [b for b in config.budgets if curve.landed(b, config.bpp)]
        if not budgets:
            continue
        psnrs = [[p.psnr for p in curve.landed(b, config.bpp)] for b in budgets]
        means = [statistics.fmean(q) for q in psnrs]
        errors = [[m - min(q) for m, q in zip(means, psnrs)], [max(q) - m for m, q in zip(means, psnrs)]]
        ax.errorbar(budgets, means, yerr=errors, fmt="o-", capsize=3, label=f"nvcodec {curve.model}")
    for (name, level), style in zip(levels.items(), ("--", "-.", ":")):
        if math.isfinite(level):
            ax.axhline(level, linestyle=style, color="grey", label=f"{name} at {config.bpp:g} bpp")
    ax.set_xscale("log")
    ax.set_xlim(min(config.budgets) / 1.25, max(config.budgets) * 1.25)
    ax.set_xlabel("process-CPU seconds of training (log scale)")
    ax.set_ylabel(f"RGB-PSNR at {config.bpp:g} bpp (dB)")
    ax.set_title(clip)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    return None
