"""Bjontegaard deltas between two rate-distortion curves, in plain numpy.

Why PCHIP and not the original cubic fit: a cubic polynomial through four points can
overshoot and even turn back between them, which makes BD numbers swing with a single noisy
point. A piecewise cubic Hermite interpolant with Fritsch-Carlson slopes passes through every
point, stays monotone wherever the data is, and is what current codec-evaluation practice uses.

* BD-rate: interpolate log(rate) as a function of PSNR for both curves, integrate each over the
  PSNR range the two curves share, and turn the mean gap into a percentage:
  ``(exp(mean(log R_test - log R_ref)) - 1) x 100``. Negative means the test curve needs fewer
  bits for the same quality.
* BD-PSNR: interpolate PSNR as a function of log(rate) over the shared log-rate range; the mean
  gap in dB. Positive means the test curve is better.

The integrals are exact (a Hermite cubic integrates in closed form), so identical curves give
exactly 0, rates scaled by k give exactly (k - 1) x 100 % and a +1 dB shift gives exactly +1.
When the answer is undefined the value is NaN and ``reason`` says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class BDResult:
    """One Bjontegaard delta; ``value`` is NaN when undefined, and ``reason`` then says why.

    A finite value can still carry a ``reason`` as a caveat (e.g. a non-monotone curve).
    """

    value: float
    reason: str = ""
    overlap: tuple[float, float] | None = None  # the shared range that was integrated over

    @property
    def ok(self) -> bool:
        return math.isfinite(self.value)


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson derivatives at the knots (x strictly increasing, at least 2 points)."""
    h = np.diff(x)
    delta = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        d[:] = delta[0]
        return d
    for k in range(1, n - 1):
        a, b = delta[k - 1], delta[k]
        if a == 0 or b == 0 or np.sign(a) != np.sign(b):
            continue  # local extremum or flat piece: zero slope keeps the shape
        w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
        d[k] = (w1 + w2) / (w1 / a + w2 / b)  # weighted harmonic mean
    d[0] = _end_slope(h[0], h[1], delta[0], delta[1])
    d[-1] = _end_slope(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _end_slope(h0: float, h1: float, del0: float, del1: float) -> float:
    """Shape-preserving one-sided three-point slope at an end knot."""
    d = ((2 * h0 + h1) * del0 - h0 * del1) / (h0 + h1)
    if np.sign(d) != np.sign(del0):
        return 0.0
    if np.sign(del0) != np.sign(del1) and abs(d) > abs(3 * del0):
        return 3 * del0
    return float(d)


def _coefficients(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-interval polynomial y_i + c1 s + c2 s^2 + c3 s^3 in s = x - x_i."""
    h = np.diff(x)
    delta = np.diff(y) / h
    d = pchip_slopes(x, y)
    c1 = d[:-1]
    c2 = (3 * delta - 2 * d[:-1] - d[1:]) / h
    c3 = (d[:-1] + d[1:] - 2 * delta) / h**2
    return y[:-1], c1, c2, c3


def pchip_eval(x: Sequence[float], y: Sequence[float], xq: Sequence[float] | float) -> np.ndarray:
    """Evaluate the PCHIP interpolant of (x, y) at ``xq`` (inside [x0, x_last])."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    xq = np.atleast_1d(np.asarray(xq, float))
    c0, c1, c2, c3 = _coefficients(x, y)
    i = np.clip(np.searchsorted(x, xq, side="right") - 1, 0, len(x) - 2)
    s = xq - x[i]
    return c0[i] + s * (c1[i] + s * (c2[i] + s * c3[i]))


def pchip_integral(x: Sequence[float], y: Sequence[float], lo: float, hi: float) -> float:
    """Exact integral of the PCHIP interpolant of (x, y) from ``lo`` to ``hi`` (inside the knots)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    c0, c1, c2, c3 = _coefficients(x, y)
    total = 0.0
    for i in range(len(x) - 1):
        a, b = max(lo, x[i]), min(hi, x[i + 1])
        if a >= b:
            continue
        total += _antiderivative(b - x[i], c0[i], c1[i], c2[i], c3[i])
        total -= _antiderivative(a - x[i], c0[i], c1[i], c2[i], c3[i])
    return float(total)


def _antiderivative(s: float, c0: float, c1: float, c2: float, c3: float) -> float:
    return s * (c0 + s * (c1 / 2 + s * (c2 / 3 + s * c3 / 4)))


def _prepare(
    xs: Sequence[float], ys: Sequence[float], what: str, axis: str
) -> tuple[np.ndarray, np.ndarray, str] | str:
    """Sort by x; return (x, y, caveat) or an error string."""
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    if x.shape != y.shape or x.ndim != 1:
        return f"{what}: rate and quality lists differ in length"
    if len(x) < 2:
        return f"{what}: needs at least 2 points, has {len(x)}"
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return f"{what}: has non-finite values"
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if np.any(np.diff(x) == 0):
        return f"{what}: two points share the same {axis}"
    caveat = "" if np.all(np.diff(y) > 0) else f"{what} is not monotone (more rate, not more quality)"
    return x, y, caveat


def _mean_gap(ref_x, ref_y, test_x, test_y, axis: str, shown=lambda v: v) -> BDResult:
    """Mean of (test - ref) over the shared x range of two interpolated curves.

    ``shown`` maps an abscissa to the unit a reader expects in messages (rate, not log-rate).
    """
    ref = _prepare(ref_x, ref_y, "reference curve", axis)
    test = _prepare(test_x, test_y, "test curve", axis)
    for prepared in (ref, test):
        if isinstance(prepared, str):
            return BDResult(math.nan, prepared)
    (rx, ry, rc), (tx, ty, tc) = ref, test
    lo, hi = max(rx[0], tx[0]), min(rx[-1], tx[-1])
    if not lo < hi:
        return BDResult(
            math.nan,
            f"curves do not overlap in {axis}: reference spans [{shown(rx[0]):.4g}, {shown(rx[-1]):.4g}], "
            f"test spans [{shown(tx[0]):.4g}, {shown(tx[-1]):.4g}]",
        )
    gap = (pchip_integral(tx, ty, lo, hi) - pchip_integral(rx, ry, lo, hi)) / (hi - lo)
    caveat = "; ".join(c for c in (rc, tc) if c)
    return BDResult(float(gap), caveat, (float(lo), float(hi)))


def _log_rates(rates: Sequence[float]) -> np.ndarray | None:
    r = np.asarray(rates, float)
    return None if np.any(~(r > 0)) else np.log(r)


def bd_rate(
    ref_rates: Sequence[float], ref_psnr: Sequence[float], test_rates: Sequence[float], test_psnr: Sequence[float]
) -> BDResult:
    """BD-rate in percent of the test curve against the reference (negative = test saves bits)."""
    ref_log, test_log = _log_rates(ref_rates), _log_rates(test_rates)
    if ref_log is None or test_log is None:
        return BDResult(math.nan, "rates must be positive")
    gap = _mean_gap(ref_psnr, ref_log, test_psnr, test_log, "PSNR")
    if not gap.ok:
        return gap
    return BDResult(float(np.expm1(gap.value) * 100.0), gap.reason, gap.overlap)


def bd_psnr(
    ref_rates: Sequence[float], ref_psnr: Sequence[float], test_rates: Sequence[float], test_psnr: Sequence[float]
) -> BDResult:
    """BD-PSNR in dB of the test curve against the reference (positive = test is better).

    ``overlap`` is reported in rate units (not log-rate).
    """
    ref_log, test_log = _log_rates(ref_rates), _log_rates(test_rates)
    if ref_log is None or test_log is None:
        return BDResult(math.nan, "rates must be positive")
    gap = _mean_gap(ref_log, ref_psnr, test_log, test_psnr, "rate", math.exp)
    if gap.overlap is None:
        return gap
    lo, hi = gap.overlap
    return BDResult(gap.value, gap.reason, (math.exp(lo), math.exp(hi)))
