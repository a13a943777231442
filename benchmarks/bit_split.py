"""Where the bits of .nvc files go: latents (per grid), networks, headers and container; for a
family with predicted frames (mcgrid) also motion, and latents of intra against predicted frames.

    python benchmarks/bit_split.py benchmarks/results/grid_bbb320_landed/streams

Reads each file with `nvcodec.api.inspect` (what `nvc info --json` prints); prints one markdown row
per file, sorted by size. The intra/predicted split of each latent grid's bytes is in proportion to
the ideal code length of its slices under the file's own tables (they match the coded sizes to
within 1 %).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from nvcodec.api import inspect
from nvcodec.bitstream import format as fmt
from nvcodec.bitstream.tensors import decompress_tensors
from nvcodec.families import backbone_class


def intra_and_predicted(path: Path, info: dict) -> tuple[int, int] | None:
    """Bytes of the latents (motion aside) of intra frames and of predicted frames; None where the
    family has no predicted frames."""
    nvc = fmt.read(path.read_bytes())
    cls = backbone_class(nvc.arch.family)
    config = cls.config_cls.from_json(nvc.arch.config)
    if not hasattr(config, "is_intra"):
        return None
    model = cls(config)
    codec = model.context_codec()
    decoded = decompress_tensors(nvc, codec)
    names = list(model.coded_tensors())
    motion = {names.index(name) for name in model.motion_tensors()}
    intra = np.array([config.is_intra(t) for t in range(config.num_frames)])
    shares = np.zeros(2)
    for index in sorted(set(codec.levels) - motion):
        bits = codec.slice_bits(index, decoded[index].astype(np.int64).reshape(-1), decoded[:index])
        coded = info["tensors"][index]["payload_bytes"] + info["tensors"][index]["table_bytes"]
        if bits.sum() > 0:
            shares += coded * np.array([bits[intra].sum(), bits[~intra].sum()]) / bits.sum()
    return int(round(shares[0])), int(round(shares[1]))


def split(path: Path) -> dict:
    info = inspect(path)
    latents = [
        t["payload_bytes"] + t["table_bytes"] + t["step_bytes"] for t in info["tensors"] if t["model"] == "context"
    ]
    payload = info["payload_bytes"]
    return {
        "file": path.name,
        "bytes": info["bytes"],
        "bpp": info["bpp"],
        "latents": info.get("latent_bytes", 0),
        "motion": info.get("motion_bytes", 0),
        "frames": intra_and_predicted(path, info),
        "per_grid": latents,
        "networks": payload - info.get("latent_bytes", 0),
        "header": info["bytes"] - payload,
        "psnr": info["metadata"].get("measured", {}).get("psnr"),
    }


def main(folder: str) -> None:
    rows = sorted((split(p) for p in Path(folder).glob("*.nvc")), key=lambda r: r["bytes"])
    print(
        "| file | bytes | bpp | decoded PSNR (dB) | latents | of them: motion / intra / predicted frames | networks "
        "| headers + container | latents per grid, coarsest first |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---:|---|")
    for r in rows:
        psnr = f"{r['psnr']:.2f}" if r["psnr"] is not None else "-"
        frames = "-" if r["frames"] is None else f"{r['motion']} / {r['frames'][0]} / {r['frames'][1]}"
        print(
            f"| {r['file'][:60]} | {r['bytes']} | {r['bpp']:.4f} | {psnr} | {r['latents']} "
            f"({100 * r['latents'] / r['bytes']:.0f} %) | {frames} | {r['networks']} | {r['header']} | "
            f"{' / '.join(map(str, r['per_grid']))} |"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
