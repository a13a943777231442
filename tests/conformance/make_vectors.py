"""Regenerate the conformance vectors (only on purpose: a released vector is frozen).

    GENERATE_EXPECTED=1 python tests/conformance/make_vectors.py [NAME ...]

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
from nvcodec.bitstream.container import NvcReader, write_segmented
from nvcodec.bitstream.tensors import compress_tensors, decompress_tensors
from nvcodec.compress.quantize import quantize
from nvcodec.families.grid.model import Grid, GridConfig
from nvcodec.families.mcgrid.model import RANDOM_ACCESS, MCGrid, MCGridConfig
from nvcodec.families.mcgrid.motion import unused_motion
from nvcodec.families.nerv.model import NeRV, NeRVConfig

HERE = Path(__file__).parent
VECTORS = {
    # name: (config, bits, description)
    "c1_nerv_9x17x3": (
        NeRVConfig(
            height=9, width=17, num_frames=3, mlp_hidden=16, stem_channels=4, strides=(2,), channels=(6,), pe_levels=8
        ),
        8.0,
        "NeRV 9x17, 3 frames, seeded weights, 8-bit steps: GEOMETRIC models, odd size (pad + crop)",
    ),
    "c2_nerv_36x64x2": (
        NeRVConfig(
            height=36,
            width=64,
            num_frames=2,
            mlp_hidden=24,
            stem_channels=8,
            strides=(2, 2),
            channels=(12, 8),
            pe_levels=16,
        ),
        6.0,
        "NeRV 36x64, 2 frames, 6-bit steps: CATEGORICAL and GEOMETRIC models, a one-symbol (all-zero) "
        "tensor, per-channel and per-tensor steps",
    ),
    "c3_grid_12x20x4": (
        GridConfig(height=12, width=20, num_frames=4, levels=3, synthesis_width=8, context_width=8),
        8.0,
        "Grid 12x20, 4 frames, 3 latent grids: CONTEXT records (both checkerboard passes, integer and "
        "half-integer centres, many scales), a one-symbol (all-zero) grid, networks with 8-bit steps",
    ),
    "c5_mcgrid_16x24x6": (
        MCGridConfig(
            height=16, width=24, num_frames=6, levels=2, synthesis_width=8, context_width=8, gop=6, block=8, finest=2
        ),
        8.0,
        "MC-grid 16x24, 6 frames in one group: an intra frame and five predicted frames (bicubic warps "
        "along non-zero quarter-pixel motion, edges replicated), latents and motion as CONTEXT records",
    ),
    "c6_mcgrid_ra_16x24x6": (
        MCGridConfig(
            height=16,
            width=24,
            num_frames=6,
            levels=2,
            synthesis_width=8,
            context_width=8,
            gop=6,
            block=8,
            finest=2,
            order=RANDOM_ACCESS,
        ),
        8.0,
        "MC-grid 16x24, 6 frames in one random-access group (format 1.4): intra frame 0, P frame 5, "
        "B frames 2, 1, 3, 4 bi-predicted from decoded frames on both sides, blended per pixel",
    ),
    "c4_nerv_chain_8x16x6": (
        NeRVConfig(
            height=8, width=16, num_frames=2, mlp_hidden=16, stem_channels=4, strides=(2,), channels=(6,), pe_levels=8
        ),
        8.0,
        "A segmented file (format 1.2) of three NeRV 8x16 segments of 2 frames in one chain: segment 0 "
        "independent (8-bit steps); segments 1 and 2 predicted (PRED), each one's weights the previous "
        "segment's decoded weights plus seeded changes, with the steps of the tensors' own 6-bit "
        "quantization: RESIDUAL records, and one UNIFORM record (the all-zero head bias)",
    ),
}
CHAIN_SEGMENTS = 3


def chain_streams() -> list[bytes]:
    """The chain vector's three segment streams: each predicted one coded against the weights the
    decoder reconstructs from the one before."""
    config = VECTORS["c4_nerv_chain_8x16x6"][0]
    torch.manual_seed(20261207)
    tensors = [t.detach().numpy().copy() for t in NeRV(config).coded_tensors().values()]
    arch = nvc_format.ArchRecord(NeRV.name, NeRV.arch_version, config.to_json(), tuple(t.shape for t in tensors))
    header = nvc_format.VideoHeader(config.width, config.height, config.num_frames, 25, 1)
    rng = np.random.default_rng(20261207)
    streams, reference = [], None
    for _ in range(CHAIN_SEGMENTS):
        if reference is None:
            records, digest = compress_tensors(tensors, 8.0)
        else:  # small seeded changes to every tensor; the last (the head's bias) becomes all zero
            tensors = [
                r + np.float32(0.05) * r.std() * rng.standard_normal(r.shape).astype(np.float32) for r in reference
            ]
            tensors[-1] = np.zeros_like(tensors[-1])
            records, digest = compress_tensors(tensors, 6.0, reference=reference)
        prediction = None if reference is None else nvc_format.weights_digest(reference)
        stream = nvc_format.write(nvc_format.NvcFile(header, arch, records, digest, {}, (), prediction))
        streams.append(stream)
        reference = decompress_tensors(nvc_format.read(stream), reference=reference)
    return streams


def grid_vector(name: str = "c3_grid_12x20x4") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Seeded network weights and Laplace-distributed integer latents (the coarsest grid all zero);
    for mcgrid also motion of up to 3 pixels in the predicted frames."""
    config = VECTORS[name][0]
    torch.manual_seed(20261202)
    model = (MCGrid if isinstance(config, MCGridConfig) else Grid)(config)
    with torch.no_grad():
        for layer in model.context[::2]:  # weights large enough to spread the centres and scales
            layer.weight.mul_(4.0)
        model.context[-1].bias.copy_(torch.tensor([0.3, 20.0]))
        for conv in [*model.refine, *getattr(model, "predicted", [])[-1:]]:  # trained ones are not zero
            conv.weight.normal_(0.0, 0.1)
    tensors = {k: v.detach().numpy().copy() for k, v in model.coded_tensors().items()}
    rng = np.random.default_rng(20261202)
    for level in range(1, config.levels):
        key = f"latents.{level}"
        tensors[key] = np.rint(rng.laplace(0.0, 1.5, tensors[key].shape)).astype(np.float32)
    if isinstance(model, MCGrid):
        for level in model.motion_levels():
            key = f"latents.{level}"
            tensors[key] = np.rint(rng.uniform(-12, 12, tensors[key].shape)).astype(np.float32)
            slot = (level - config.levels) // 2
            tensors[key][unused_motion(config)[:, slot]] = 0  # the intra frame's, a P frame's second
    steps = [
        np.ones(1, np.float16) if name.startswith("latents.") else quantize(t, 8.0).steps for name, t in tensors.items()
    ]
    return list(tensors.values()), steps


def vector_tensors(name: str) -> list[np.ndarray]:
    """Seeded weights; in c2 the head bias is zeroed to give a one-symbol alphabet."""
    if name.startswith(("c3", "c5", "c6")):
        return grid_vector(name)[0]
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
    if name.startswith("c4"):
        header = nvc_format.VideoHeader(config.width, config.height, config.num_frames * CHAIN_SEGMENTS, 25, 1)
        counts = [config.num_frames] * CHAIN_SEGMENTS
        return write_segmented(header, chain_streams(), counts, None, {"conformance": name})
    if name.startswith(("c3", "c5", "c6")):
        family = MCGrid if isinstance(config, MCGridConfig) else Grid
        tensors, steps = grid_vector(name)
        records, digest = compress_tensors(tensors, steps=steps, context=family(config).context_codec())
    else:
        family = NeRV
        tensors = vector_tensors(name)
        records, digest = compress_tensors(tensors, bits)
    arch = nvc_format.ArchRecord(family.name, family.arch_version, config.to_json(), tuple(t.shape for t in tensors))
    header = nvc_format.VideoHeader(config.width, config.height, config.num_frames, 25, 1)
    return nvc_format.write(nvc_format.NvcFile(header, arch, records, digest, {"conformance": name}))


def main() -> None:
    """Write the vectors named on the command line (default: all)."""
    if not os.environ.get("GENERATE_EXPECTED"):
        sys.exit("refusing to overwrite released vectors; set GENERATE_EXPECTED=1 to do it on purpose")
    from nvcodec.api import decode

    for name, (_, _, description) in VECTORS.items():
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue
        data = build_vector(name)
        path = HERE / f"{name}.nvc"
        path.write_bytes(data)
        frames = decode(path, device="cpu").frames
        (HERE / f"{name}.rgb").write_bytes(frames.tobytes())
        reader = NvcReader(path)
        streams = [reader.read_segment(i) for i in range(len(reader.segments))]
        records = {  # a segmented vector lists its segments' records, a single stream its own
            "weights_sha256": [s.weights_sha256.hex() for s in streams],
            "entropy_models": [[t.coded.model_id.name for t in s.tensors] for s in streams],
            "quant_types": [["RESIDUAL" if t.residual else "UNIFORM" for t in s.tensors] for s in streams],
        }
        if not reader.segmented:
            records = {key: value[0] for key, value in records.items() if key != "quant_types"}
        manifest = {
            "id": name,
            "description": description,
            "file_sha256": hashlib.sha256(data).hexdigest(),
            **records,
            "frames_shape": list(frames.shape),
            "frames_sha256": hashlib.sha256(frames.tobytes()).hexdigest(),
            "frames_tolerance": {"max_abs_diff": 1, "note": "float rendering may differ by one level across machines"},
        }
        (HERE / f"{name}.json").write_text(json.dumps(manifest, indent=2) + "\n")
        print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
