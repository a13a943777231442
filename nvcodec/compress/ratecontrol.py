"""Rate control: a --bpp target -> a model size before training, then a quantization step after.

``RateControl`` is the one object an encode asks both questions; the functions below are its
arithmetic (and the lambda controller rate-aware training steers with).

Before training, the parameter budget is the target's bits divided by the bits one weight is
expected to cost at about 6-bit steps after pruning and entropy coding (measured on a trained
NeRV: 6-bit steps cost 25% fewer bytes than 8-bit for 0.13 dB less PSNR). After training, the
step size is searched (by bisection on a fractional bit depth, with real entropy coding of
every candidate) until the written file lands on the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from ..errors import RateError

EXPECTED_BITS_PER_PARAM = 6.0  # measured 5.9 bits/param at 6-bit steps on a trained NeRV
FILE_OVERHEAD_BYTES = 200  # preamble, NHDR, ARCH, wHSH, mETA, NEND (typical)
PER_TENSOR_OVERHEAD_BYTES = 24  # chunk framing + record fields, before steps and tables
MIN_BITS, MAX_BITS = 3.0, 12.0
TOLERANCE = 0.03  # stop the search within 3% of the target
MAX_ENCODE_PARAMS = 20_000_000  # the largest model the encoder trains
PLAIN_ROUNDING = 0.5  # the latents' dead zone of plain rounding: |x| < 0.5 is coded as 0 anyway
DEAD_ZONE_GROWTH = 1.15  # the steps of the latents' dead-zone search
# The widest dead zone: latents that round to +-1 are coded as 0, larger ones never. A file that needs more
# is left over its target, as trained: where the motion and networks alone nearly filled it, a zone wide
# enough zeroed every latent and wrote a grey 12.3 dB video at its target (mcgrid, random access, 40
# epochs); and on an mcgrid file it could not land, whose last training steps read 24.9 dB, the widest
# zone decoded at 22.7 dB, still 15 % over (BBB 320x180x32, 0.1 bpp, 300 CPU-s).
MAX_DEAD_ZONE = 1.5


@dataclass(frozen=True)
class RateControl:
    """The two rate decisions of an encode, in one place.

    Before training: the model size a --bpp target affords (or why none does). After training:
    the one number (a common factor on learned steps, or a bit depth) whose real file, written
    by the caller's ``size_at`` function, lands closest to the target.
    """

    target_bpp: float
    width: int
    height: int
    frames: int

    @property
    def target_bytes(self) -> float:
        return self.target_bpp * self.width * self.height * self.frames / 8

    def size_model(self, family) -> object:
        """The config of ``family`` (a Backbone class) for the target; RateError if it cannot be met."""
        smallest = family.config_for_budget(self.height, self.width, self.frames, 0)
        smallest_bpp = (
            8 * expected_file_bytes(family.network_params(smallest)) / (self.width * self.height * self.frames)
        )
        budget = param_budget(self.target_bytes)
        if budget < family.network_params(smallest):
            raise RateError(
                f"--bpp {self.target_bpp:g} cannot be met: the smallest {family.name} model costs about "
                f"{smallest_bpp:.3g} bpp on {self.frames} frames of {self.width}x{self.height}; raise --bpp or encode "
                "more frames (an INR's weights are paid once for all frames)"
            )
        if budget > MAX_ENCODE_PARAMS:
            raise RateError(
                f"--bpp {self.target_bpp:g} asks for about {budget / 1e6:.0f}M parameters, above the "
                f"{MAX_ENCODE_PARAMS / 1e6:.0f}M this encoder trains; lower --bpp"
            )
        return family.config_for_budget(self.height, self.width, self.frames, budget)

    def step_factor(self, size_at_factor: Callable[[float], int]) -> float:
        """Rate-aware training: the factor on every learned step whose file is closest to the target."""
        return land_on_target_by_scale(size_at_factor, self.target_bytes)

    def bit_depth(self, size_at_bits: Callable[[float], int]) -> float:
        """Post-training quantization: the bit depth whose file is closest to the target."""
        return land_on_target(size_at_bits, self.target_bytes)

    def latent_dead_zone(self, size_at_dead_zone: Callable[[float], int], largest: float) -> float:
        """Context-coded latents (step 1, most of the file): the dead zone (latents of magnitude
        below it are coded as 0; ``largest`` zeroes them all) whose file lands closest to the target.

        PLAIN_ROUNDING when the file already fits: a dead zone can only take bits away, so a file
        under its target stays as trained, and so does one that no zone up to MAX_DEAD_ZONE lands (a zone
        that does not land the file costs quality for nothing the target asks).
        """
        if size_at_dead_zone(PLAIN_ROUNDING) <= self.target_bytes * (1 + TOLERANCE):
            return PLAIN_ROUNDING
        fits = self.target_bytes  # (the measured quality the file then takes in adds a few bytes)
        # the mildest zone that fits, searched upward: the size is not monotonic in the zone (zeroed
        # latents change their neighbours' contexts), and a bisection over the whole range once landed
        # a tiny mcgrid file 5 % over its target on a zone that took it from 22.3 to 13.0 dB
        widest = min(max(largest, PLAIN_ROUNDING), MAX_DEAD_ZONE)
        too_big, zone = PLAIN_ROUNDING, PLAIN_ROUNDING
        while True:
            zone = min(zone * DEAD_ZONE_GROWTH, widest)
            if size_at_dead_zone(zone) <= fits:
                break
            if zone >= widest:
                return PLAIN_ROUNDING
            too_big = zone
        for _ in range(4):  # then closer to the largest file that fits
            middle = 0.5 * (too_big + zone)
            if size_at_dead_zone(middle) <= fits:
                zone = middle
            else:
                too_big = middle
        return zone


def param_budget(target_bytes: float, num_tensors_guess: int = 12) -> int:
    """Parameters affordable for ``target_bytes`` at the expected cost per parameter."""
    payload = target_bytes - FILE_OVERHEAD_BYTES - PER_TENSOR_OVERHEAD_BYTES * num_tensors_guess
    return max(0, int(payload * 8 / EXPECTED_BITS_PER_PARAM))


def expected_file_bytes(params: int, num_tensors_guess: int = 12) -> int:
    """The inverse of ``param_budget``: file bytes expected for ``params`` parameters."""
    overhead = FILE_OVERHEAD_BYTES + PER_TENSOR_OVERHEAD_BYTES * num_tensors_guess
    return int(overhead + params * EXPECTED_BITS_PER_PARAM / 8)


def _closest_by_bisection(
    size_at: Callable[[float], int],
    target_bytes: float,
    lo: float,
    hi: float,
    grows: bool,
    iterations: int,
    start: float | None = None,
) -> float:
    """The x in [lo, hi] (or ``start``) whose real size is closest to the target; stops within TOLERANCE.

    ``grows``: the size grows with x (else it falls). ``start`` is tried first, if given.
    """
    best, best_error = (lo + hi) / 2, float("inf")
    if start is not None:
        best, best_error = start, abs(size_at(start) - target_bytes) / target_bytes
    for _ in range(iterations):
        if best_error <= TOLERANCE:
            break
        mid = 0.5 * (lo + hi)
        size = size_at(mid)
        error = abs(size - target_bytes) / target_bytes
        if error < best_error:
            best, best_error = mid, error
        if (size > target_bytes) == grows:
            hi = mid
        else:
            lo = mid
    return best


def land_on_target(size_at_bits: Callable[[float], int], target_bytes: float, iterations: int = 14) -> float:
    """The bit depth in [MIN_BITS, MAX_BITS] whose file size is closest to the target.

    ``size_at_bits`` returns the real size of the file written with that bit depth; the size
    grows with the bit depth, so a bisection converges.
    """
    return _closest_by_bisection(size_at_bits, target_bytes, MIN_BITS, MAX_BITS, grows=True, iterations=iterations)


# ------------------------------------------------------------------ rate-aware training


class LambdaController:
    """Steers lambda so that the file's estimated bits settle on a target (a dual update).

    At each estimate: log(lambda) += gain x log(estimated / target), clamped. Bits above the
    target raise the price of a bit, bits below lower it; without a target lambda stays constant.
    """

    MIN_LAMBDA, MAX_LAMBDA = 1e-8, 1e3

    def __init__(
        self,
        target_bits: float | None,
        lam: float,
        gain: float = 0.05,
        max_log_error: float | None = None,
        release: float = 1.0,
        bounds: tuple[float, float] | None = None,
    ) -> None:
        """``max_log_error`` bounds |log(estimated / target)| in one update: a model whose rate starts
        far below the target (latents initialized to zero) would otherwise drive lambda down by
        orders of magnitude before the rate has had time to grow. ``release`` multiplies the gain
        while the estimate is under the target and lambda above its start: a lambda wound up while
        the rate lagged is let go that much faster (below its start it falls at the plain gain, or
        the zero latents of the first steps would drive it down at once)."""
        self.target_bits, self.lam, self.gain, self.max_log_error = target_bits, lam, gain, max_log_error
        self.release, self.start = release, lam
        # ``bounds`` (below, above): lambda stays within [start x below, start x above]
        below, above = bounds or (0.0, math.inf)
        self.low, self.high = max(self.MIN_LAMBDA, lam * below), min(self.MAX_LAMBDA, lam * above)

    def update(self, estimated_bits: float) -> float:
        if self.target_bits is not None and estimated_bits > 0:
            error = math.log(estimated_bits / self.target_bits)
            if self.max_log_error is not None:
                error = max(-self.max_log_error, min(self.max_log_error, error))
            released = error < 0 and self.lam > self.start  # letting go of what the lag wound up
            factor = math.exp(self.gain * error * (self.release if released else 1.0))
            self.lam = min(self.high, max(self.low, self.lam * factor))
        return self.lam


def land_on_target_by_scale(size_at_scale: Callable[[float], int], target_bytes: float, iterations: int = 16) -> float:
    """A common factor on all learned steps whose file lands closest to the target (1.0 if it does).

    The real size falls as the factor grows; bisection on log2(factor) in [-4, 4].
    """
    exponent = _closest_by_bisection(
        lambda x: size_at_scale(2.0**x), target_bytes, -4.0, 4.0, grows=False, iterations=iterations, start=0.0
    )
    return 2.0**exponent
