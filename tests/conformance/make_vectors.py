"""Regenerate the conformance vectors (only on purpose: a released vector is frozen).

    GENERATE_EXPECTED=1 python tests/conformance/make_vectors.py

The vector is made from seeded random weights (no training), so it is a few KB and its bytes
depend only on this script, the quantizer and the range coder.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from nvcodec.bitstream import format as nvc_format
from nvcodec.compress.codec import compress_tensors
from nvcodec.models.nerv import NeRV, NeRVConfig

HERE = Path(__file__).parent
CONFIG = NeRVConfig(height=9, width=17, num_frames=3, mlp_hidden=16, stem_channels=4, strides=(2,), channels=(6,),
                    pe_levels=8)
BITS = 8.0


def build_vector() -> bytes:
    torch.manual_seed(20261122)
    model = NeRV(CONFIG)
    tensors = [t.detach().numpy() for t in model.coded_tensors().values()]
    records, digest = compress_tensors(tensors, BITS)
    arch = nvc_format.ArchRecord(NeRV.name, NeRV.arch_version, CONFIG.to_json(), tuple(t.shape for t in tensors))
    header = nvc_format.VideoHeader(CONFIG.width, CONFIG.height, CONFIG.num_frames, 25, 1)
    return nvc_format.write(nvc_format.NvcFile(header, arch, records, digest, {"conformance": "c1_nerv_9x17x3"}))


def main() -> None:
    if not os.environ.get("GENERATE_EXPECTED"):
        sys.exit("refusing to overwrite released vectors; set GENERATE_EXPECTED=1 to do it on purpose")
    from nvcodec.api import decode

    data = build_vector()
    path = HERE / "c1_nerv_9x17x3.nvc"
    path.write_bytes(data)
    frames = decode(path, device="cpu").frames
    (HERE / "c1_nerv_9x17x3.rgb").write_bytes(frames.tobytes())
    nvc = nvc_format.read(data)
    manifest = {
        "id": "c1_nerv_9x17x3",
        "description": "NeRV, 9x17, 3 frames, seeded weights, 8-bit per-channel steps, range-coded",
        "file_sha256": hashlib.sha256(data).hexdigest(),
        "weights_sha256": nvc.weights_sha256.hex(),
        "frames_shape": list(frames.shape),
        "frames_sha256": hashlib.sha256(frames.tobytes()).hexdigest(),
        "frames_tolerance": {"max_abs_diff": 1, "note": "float rendering may differ by one level across machines"},
    }
    (HERE / "c1_nerv_9x17x3.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
