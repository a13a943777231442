#!/usr/bin/env python
"""Rate-distortion curves of nvcodec against x264/x265 (thin wrapper over nvcodec.bench).

    PYTHONPATH=. python benchmarks/rd_curve.py --anchors-only -o rd_out
    PYTHONPATH=. python benchmarks/rd_curve.py --models nerv --bpp 0.05,0.1,0.2 -o rd_out

Run with --help for every option. Interrupted runs resume from rd_out/cache.
"""

from nvcodec.bench.command import main

if __name__ == "__main__":
    main()
