"""Rate-distortion benchmark of nvcodec against x264/x265 anchors (run through PyAV).

Modules, one job each:

* ``anchors``      conventional codecs behind one interface (encode frames -> bytes -> frames)
* ``bjontegaard``  BD-rate / BD-PSNR with PCHIP interpolation, numpy only
* ``clips``        test clips and their content hash
* ``points``       measuring one RD point the same way for every codec
* ``cache``        one JSON per point, so interrupted runs resume
* ``environment``  versions and machine recorded with the results
* ``report``       CSV, JSON, markdown and PNG outputs
* ``rd``           the driver: ``run_benchmark(BenchConfig) -> BenchResults``
* ``command``      the click command behind ``benchmarks/rd_curve.py`` (and ``nvc bench``)
"""

from .anchors import ANCHORS, Anchor, AnchorUnavailable, X264Anchor, X265Anchor
from .bjontegaard import BDResult, bd_psnr, bd_rate
from .clips import ClipSpec
from .points import RDPoint
from .rd import BenchConfig, BenchResults, run_benchmark

__all__ = [
    "ANCHORS",
    "Anchor",
    "AnchorUnavailable",
    "BDResult",
    "BenchConfig",
    "BenchResults",
    "ClipSpec",
    "RDPoint",
    "X264Anchor",
    "X265Anchor",
    "bd_psnr",
    "bd_rate",
    "run_benchmark",
]
