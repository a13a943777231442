"""Tests of the time curve (benchmarks/time_curve.py): its cache keys, anchor levels and parity times."""

from __future__ import annotations

import math

import pytest

from nvcodec.bench.cache import point_key
from nvcodec.bench.points import NvcodecJob, RDPoint
from nvcodec.bench.timecurve import anchor_psnr_at, parity_time


def _job(budget: float, seed: int = 0) -> NvcodecJob:
    return NvcodecJob("nerv", 0.1, seed=seed, nvcodec_version="v", train_seconds=budget, train_clock="cpu")


def test_cache_key_holds_the_budget_and_the_seed():
    keys = {point_key("clip", _job(b, s).identity()) for b in (30, 60, 60.5) for s in (0, 1)}
    assert len(keys) == 6
    assert point_key("clip", _job(60).identity()) != point_key("other clip", _job(60).identity())


def _point(rate: float, quality: float) -> RDPoint:
    return RDPoint(
        "c", "x265", "x265 medium", "crf", 0, 1, 1, rate, quality, quality, 0.9, 0, 0, 1, 1, 1, "", "", None, "", ""
    )


def test_anchor_level_is_read_off_its_curve_in_log_rate():
    points = [_point(0.05, 28.0), _point(0.2, 32.0)]  # two points: linear in log-rate, 0.1 is half-way
    assert anchor_psnr_at(points, 0.1) == pytest.approx(30.0)
    assert math.isnan(anchor_psnr_at(points, 0.3)) and math.isnan(anchor_psnr_at(points[:1], 0.05))


@pytest.mark.parametrize(
    "psnrs, target, seconds, how",
    [
        ([25.0, 27.0, 29.0], 28.0, math.sqrt(60 * 120), "interpolated"),  # half-way in log-time
        ([25.0, 27.0, 29.0], 24.0, 30.0, "before the shortest budget"),
        ([25.0, 27.0, 29.0], 31.0, 240.0, "extrapolated"),  # +2 dB per doubling: one more doubling
        ([25.0, 27.0, 26.0], 28.0, None, "not reached"),  # falling at the end: no extrapolation
        ([25.0, math.nan, 29.0], 27.0, math.sqrt(30 * 120), "interpolated"),  # a budget with no landed point
    ],
)
def test_parity_time(psnrs, target, seconds, how):
    parity = parity_time([30.0, 60.0, 120.0], psnrs, target, "x265 medium")
    assert parity.how == how
    assert parity.seconds == (None if seconds is None else pytest.approx(seconds))
    text = parity.text(120.0)
    assert ("extrapolated" in text) == (how == "extrapolated")
    assert ("not within 120 s" in text) == (how in ("not reached", "extrapolated"))  # an estimate is no parity


def test_a_far_extrapolation_is_not_given_as_a_figure():
    crawling = parity_time([30.0, 60.0, 120.0], [25.0, 27.0, 27.1], 31.0, "x265 medium")
    assert crawling.how == "extrapolated" and crawling.text(120.0) == "not within 120 s (extrapolated: beyond 12000 s)"
