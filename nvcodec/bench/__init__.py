"""Rate-distortion benchmark of nvcodec against x264, x265 and SVT-AV1 anchors (run through PyAV).

Modules, one job each:

* ``anchors``      conventional codecs behind one interface (encode frames -> bytes -> frames)
* ``annexb``, ``obu`` the parts of an H.264/HEVC or AV1 stream that are not coded video
* ``bjontegaard``  BD-rate / BD-PSNR with PCHIP interpolation, numpy only
* ``clips``        test clips and their content hash
* ``points``       measuring one RD point the same way for every codec
* ``cache``        one JSON per point, so interrupted runs resume
* ``environment``  versions and machine recorded with the results
* ``report``       CSV, JSON, markdown and PNG outputs
* ``rd``           the driver: ``run_benchmark(BenchConfig) -> BenchResults``
* ``command``      the click command: ``nvc bench``, also run as ``benchmarks/rd_curve.py``
"""

__all__ = [
    "ANCHORS",
    "Anchor",
    "AnchorUnavailable",
    "BDResult",
    "BenchConfig",
    "BenchResults",
    "ClipSpec",
    "RDPoint",
    "SvtAv1Anchor",
    "X264Anchor",
    "X265Anchor",
    "bd_psnr",
    "bd_rate",
    "run_benchmark",
]

_HOMES = {
    "ANCHORS": "anchors",
    "Anchor": "anchors",
    "AnchorUnavailable": "anchors",
    "X264Anchor": "anchors",
    "X265Anchor": "anchors",
    "SvtAv1Anchor": "anchors",
    "BDResult": "bjontegaard",
    "bd_psnr": "bjontegaard",
    "bd_rate": "bjontegaard",
    "ClipSpec": "clips",
    "RDPoint": "points",
    "BenchConfig": "rd",
    "BenchResults": "rd",
    "run_benchmark": "rd",
}


def __getattr__(name: str):
    """Import on first use, so that `nvc` (which registers `nvc bench`) starts without torch."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
