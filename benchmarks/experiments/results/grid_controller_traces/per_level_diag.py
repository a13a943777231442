"""Grid 300-s encode: at each controller update, the running estimate per level; every 20th, the exact one."""

import sys

import torch

from nvcodec.encoder import encode
from nvcodec.families.grid import model as gm
from nvcodec.io import read_video, sample_clip_path
from nvcodec.settings import EncodeSettings
from nvcodec.train import rate as rate_mod

log = []
orig_bits = rate_mod.RateTerm.bits


def bits(self, exact=False):
    total = orig_bits(self, exact)
    m = self.model
    if isinstance(m, gm.Grid) and m.slice_estimates is not None and not exact:
        running = [float(e.sum()) for e in m.slice_estimates]
        row = {
            "n": len(log),
            "lam": self.controller.lam,
            "total": float(total),
            "target": self.settings.target_bits,
            "running": running,
            "fixed": self.settings.fixed_bits,
        }
        if len(log) % 20 == 0:
            grids = [torch.round(g.detach()) for g in m.latents]
            with torch.no_grad():
                row["exact"] = [
                    float(sum(float(m.slice_bits(grids, lv, s, reach=m.level_reach(lv)).sum()) for s in gm._chunks(g)))
                    for lv, g in enumerate(grids)
                ]
            row["absmax"] = [float(g.detach().abs().max()) for g in m.latents]
            row["nonzero"] = [float((torch.round(g.detach()) != 0).float().mean()) for g in m.latents]
        log.append(row)
    return total


rate_mod.RateTerm.bits = bits
torch.set_num_threads(2)
seconds = float(sys.argv[1])
video = read_video(sample_clip_path(), (0, 32), (320, 180))
r = encode(
    video, "/tmp/ctrl/diag.nvc", EncodeSettings(model="grid", bpp=0.05, train_seconds=seconds, train_clock="cpu")
)
print("file bpp", round(r.bpp, 4), "psnr", round(r.psnr, 2), "updates", len(log))
for row in log:
    if "exact" in row:
        t = row["target"]
        print(
            f"{row['n']:4d} lam {row['lam']:.3g} total/target {row['total'] / t:.2f} fixed/target {row['fixed'] / t:.2f} "
            f"running {[round(x / t, 2) for x in row['running']]} exact {[round(x / t, 2) for x in row['exact']]} "
            f"absmax {[round(x, 1) for x in row['absmax']]} nonzero {[round(x, 3) for x in row['nonzero']]}"
        )
