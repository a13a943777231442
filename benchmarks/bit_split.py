"""Where the bits of .nvc files go: latents (per grid), networks, headers and container.

    python benchmarks/bit_split.py benchmarks/results/grid_bbb320_landed/streams

Reads each file with `nvcodec.api.inspect` (what `nvc info --json` prints); prints one markdown row
per file, sorted by size.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nvcodec.api import inspect


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
        "per_grid": latents,
        "networks": payload - info.get("latent_bytes", 0),
        "header": info["bytes"] - payload,
        "psnr": info["metadata"].get("measured", {}).get("psnr"),
    }


def main(folder: str) -> None:
    rows = sorted((split(p) for p in Path(folder).glob("*.nvc")), key=lambda r: r["bytes"])
    print(
        "| file | bytes | bpp | decoded PSNR (dB) | latents | networks | headers + container | latents per grid, coarsest first |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        psnr = f"{r['psnr']:.2f}" if r["psnr"] is not None else "-"
        print(
            f"| {r['file'][:60]} | {r['bytes']} | {r['bpp']:.4f} | {psnr} | {r['latents']} "
            f"({100 * r['latents'] / r['bytes']:.0f} %) | {r['networks']} | {r['header']} | "
            f"{' / '.join(map(str, r['per_grid']))} |"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
