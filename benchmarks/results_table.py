#!/usr/bin/env python
"""The tables of docs/results.md from committed RD folders: each nvcodec curve's points and its
BD-rates against every anchor, and with ``--before COMMIT`` the BD-rates of that commit's
rd_points.csv beside them (there, the anchors' rate counted their version SEI).

    python benchmarks/results_table.py benchmarks/results/rd_bbb320_rate
    python benchmarks/results_table.py --before d9ffc6a benchmarks/results/rd_bbb320_rate benchmarks/results/grid_carphone_landed

Computed from rd_points.csv alone (PCHIP Bjontegaard in nvcodec.bench), so no encode runs.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from pathlib import Path

import click

from nvcodec.bench.bjontegaard import bd_psnr, bd_rate
from nvcodec.bench.points import RDPoint
from nvcodec.bench.report import read_csv

ANCHORS = ("x264 medium", "x265 medium", "svtav1 4")


def _curves(points: list[RDPoint]) -> dict[tuple[str, str], list[RDPoint]]:
    curves: dict[tuple[str, str], list[RDPoint]] = {}
    for p in points:
        curves.setdefault((p.clip, p.curve), []).append(p)
    return curves


def _bd(curves: dict[tuple[str, str], list[RDPoint]], clip: str, test: str, anchor: str, psnr: bool = False) -> str:
    if (clip, anchor) not in curves:
        return "-"
    ref, new = curves[(clip, anchor)], curves[(clip, test)]
    result = (bd_psnr if psnr else bd_rate)(
        [p.bpp for p in ref], [p.psnr for p in ref], [p.bpp for p in new], [p.psnr for p in new]
    )
    if not math.isfinite(result.value):
        return "n/a"
    return f"{result.value:+.2f} dB" if psnr else f"{result.value:+.0f} %"


def _points_at(commit: str, folder: Path) -> list[RDPoint]:
    text = subprocess.run(
        ["git", "show", f"{commit}:{folder / 'rd_points.csv'}"], capture_output=True, text=True, check=True
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".csv") as fh:
        fh.write(text)
        fh.flush()
        return read_csv(Path(fh.name))


def table(folder: Path, before: str | None) -> str:
    points = read_csv(folder / "rd_points.csv")
    curves = _curves(points)
    old = _curves(_points_at(before, folder)) if before else {}
    head = ["clip", "curve", "RGB-PSNR (dB) @ bpp"] + [f"BD-rate vs {a}" for a in ANCHORS] + ["BD-PSNR vs x265 medium"]
    if before:
        head += [f"with SEI ({before}): vs {a}" for a in ANCHORS[:2]]
    lines = [f"`{folder}`:", "", "| " + " | ".join(head) + " |", "|---|---|---|" + "---:|" * (len(head) - 3)]
    for (clip, curve), members in curves.items():
        if members[0].codec != "nvcodec":
            continue
        at = " / ".join(f"{p.psnr:.2f} @ {p.bpp:.4f}" for p in sorted(members, key=lambda p: p.bpp))
        cells = [clip, curve, at] + [_bd(curves, clip, curve, a) for a in ANCHORS]
        cells.append(_bd(curves, clip, curve, "x265 medium", psnr=True))
        if before:
            cells += [_bd(old, clip, curve, a) if (clip, curve) in old else "-" for a in ANCHORS[:2]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@click.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--before", default=None, help="A commit whose rd_points.csv (anchors counted with SEI) goes beside.")
def main(folders: tuple[Path, ...], before: str | None) -> None:
    """Print one markdown table per folder."""
    print("\n".join(table(f, before) for f in folders))


if __name__ == "__main__":
    main()
