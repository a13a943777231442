import dataclasses
import sys

import torch

from nvcodec.families.grid import model as gm

orig = gm.Grid.config_for_budget.__func__


def patched(cls, h, w, n, params):
    return dataclasses.replace(orig(cls, h, w, n, params), finest_frames_per_slice=int(sys.argv[3]))


gm.Grid.config_for_budget = classmethod(patched)
from nvcodec.encoder import encode  # noqa: E402 (after the patch above)
from nvcodec.io import read_video, sample_clip_path  # noqa: E402 (after the patch above)
from nvcodec.settings import EncodeSettings  # noqa: E402 (after the patch above)

torch.set_num_threads(2)
video = read_video(sample_clip_path(), (0, 32), (320, 180))
r = encode(
    video,
    "/tmp/ctrl/fps.nvc",
    EncodeSettings(model="grid", bpp=float(sys.argv[1]), train_seconds=float(sys.argv[2]), train_clock="cpu"),
)
print(
    "finest_frames_per_slice",
    sys.argv[3],
    "target",
    sys.argv[1],
    "file bpp",
    round(r.bpp, 4),
    "psnr",
    round(r.psnr, 2),
    "train s",
    round(r.train_seconds, 1),
)
