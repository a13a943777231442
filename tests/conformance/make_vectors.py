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
from nvcodec.bitstream.tensors import compress_tensors
from nvcodec.families.nerv.model import NeRV, NeRVConfig

HERE = Path(__file__).parent
VECTORS = {
    # name: (config, bits, description)
    "c1_nerv_9x17x3": (
        NeRVConfig(height=9, width=17, num_frames=3, mlp_hidden=16, stem_channels=4, strides=(2,), channels=(6,),
                   pe_levels=8),
        8.0,
        "NeRV 9x17, 3 frames, seeded weights, 8-bit steps: GEOMETRIC models, odd size (pad + crop)",
    ),
    "c2_nerv_36x64x2": (
        NeRVConfig(height=36, width=64, num_frames=2, mlp_hidden=24, stem_channels=8, strides=(2, 2),
                   channels=(12, 8), pe_levels=16),
        6.0,
        "NeRV 36x64, 2 frames, 6-bit steps: CATEGORICAL and GEOMETRIC models, a one-symbol (all-zero) "
        "tensor, per-channel and per-tensor steps",
    ),
}


def vector_tensors(name: str) -> list[np.ndarray]:
    """Seeded weights; in c2 the head bias is zeroed to give a one-symbol alphabet."""
    config, _, _ = VECTORS[name]
    torch.manual_seed(20261122)
    model = NeRV(config)
    tensors = {k: v.detach().numpy().copy() for k, v in model.coded_tensors().items()}
    if name.startswith("c2"):
        tensors["head.bias"][:] = 0
        tensors["stem.2.weight"] *= np.float32(40.0)  # a large tensor whose histogram model pays for itself
    return list(tensors.values())


def build_vector(name: str = "c1_nerv_9x17x3") -> bytes:
    config, bits, _ = VECTORS[name]
    tensors = vector_tensors(name)
    records, digest = compress_tensors(tensors, bits)
    arch = nvc_format.ArchRecord(NeRV.name, NeRV.arch_version, config.to_json(), tuple(t.shape for t in tensors))
    header = nvc_format.VideoHeader(config.width, config.height, config.num_frames, 25, 1)
    return nvc_format.write(nvc_format.NvcFile(header, arch, records, digest, {"conformance": name}))


def main() -> None:
    if not os.environ.get("GENERATE_EXPECTED"):
        sys.exit("refusing to overwrite released vectors; set GENERATE_EXPECTED=1 to do it on purpose")
    from nvcodec.api import decode

    for name, (_, _, description) in VECTORS.items():
        data = build_vector(name)
        path = HERE / f"{name}.nvc"
        path.write_bytes(data)
        frames = decode(path, device="cpu").frames
        (HERE / f"{name}.rgb").write_bytes(frames.tobytes())
        nvc = nvc_format.read(data)
        manifest = {
            "id": name,
            "description": description,
            "file_sha256": hashlib.sha256(data).hexdigest(),
            "weights_sha256": nvc.weights_sha256.hex(),
            "entropy_models": [t.coded.model_id.name for t in nvc.tensors],
            "frames_shape": list(frames.shape),
            "frames_sha256": hashlib.sha256(frames.tobytes()).hexdigest(),
            "frames_tolerance": {"max_abs_diff": 1, "note": "float rendering may differ by one level across machines"},
        }
        (HERE / f"{name}.json").write_text(json.dumps(manifest, indent=2) + "\n")
        print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
