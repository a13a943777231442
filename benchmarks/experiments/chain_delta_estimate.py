"""Would coding a warm segment's weights as the difference from the previous segment's pay? (issue 28)

The estimate that led to predicted segments (format 1.2, built since); it reads a file written
with ``--no-predict``, whose segments decode alone.

Offline, with the real entropy coder: for each segment of a segmented file whose tensors have the
previous segment's shapes, the bytes of its tensor records as written, against the bytes of
round((w - w_prev) / step) under the same steps (w, w_prev: the decoded weights). No retraining,
so it is the saving a writer alone would get.

    python benchmarks/experiments/chain_delta_estimate.py benchmarks/results/long_video/chains_long_30s_coordflow_2-4s_warmchains.nvc
"""

from __future__ import annotations

import sys

import numpy as np

from nvcodec.bitstream import format as fmt
from nvcodec.bitstream.container import NvcReader
from nvcodec.bitstream.tensors import decompress_tensors
from nvcodec.compress.entropy import CodedSymbols, encode_symbols


def record_bytes(coded: CodedSymbols) -> int:
    return coded.table_bytes + coded.payload_bytes


def main(path: str) -> None:
    reader = NvcReader(path)
    previous = None
    for index in range(len(reader.segments)):
        nvc = fmt.read(reader.segment_bytes(index))
        weights = decompress_tensors(nvc)
        direct = sum(record_bytes(r.coded) for r in nvc.tensors)
        if previous is None or [w.shape for w in previous] != [w.shape for w in weights]:
            print(f"segment {index}: {direct} B (other shapes than the segment before)")
        else:
            delta = 0
            for record, before, now in zip(nvc.tensors, previous, weights):
                steps = record.steps.astype(np.float32)[:, None]
                symbols = np.rint((now - before).reshape(len(record.steps), -1) / steps).astype(np.int64)
                delta += record_bytes(encode_symbols(symbols.ravel()))
            print(f"segment {index}: {direct} B, as a difference {delta} B ({delta / direct - 1:+.0%})")
        previous = weights


if __name__ == "__main__":
    main(sys.argv[1])
