"""Does an encode give the same bytes at two commits? (the house restructure's acceptance check)

Encodes 8 frames of the bundled sample at 64x36 with a fixed seed, 1 thread, 20 epochs and a
fixed creation time, and prints the file's size, SHA-256 prefix and PSNR. Run it from a worktree
of each commit and compare:

    git worktree add /tmp/at_X X --detach
    (cd /tmp/at_X && PYTHONPATH=/tmp/at_X python /path/to/benchmarks/byte_identity.py nerv rate /tmp/X.nvc)

FAMILY is any family; MODE is ``rate`` (rate-aware training) or ``off`` (post-training quantization).
"""

import hashlib
import importlib
import sys

import torch

torch.set_num_threads(1)

from nvcodec.io import read_video, sample_clip_path  # noqa: E402 (after torch's thread count is set)

for name in ("nvcodec.api", "nvcodec.encoder"):  # where the creation time is stamped, at either commit
    try:
        module = importlib.import_module(name)
    except ImportError:
        continue
    if hasattr(module, "_utc_now"):
        module._utc_now = lambda: "2026-12-02T00:00:00+00:00"

from nvcodec.api import EncodeSettings, encode  # noqa: E402 (after the creation time is fixed)

family, mode, out = sys.argv[1:4]
clip = read_video(sample_clip_path(), (0, 8), (64, 36))
settings = EncodeSettings(
    model=family,
    bpp=3.0,
    epochs=20,
    device="cpu",
    amp=False,
    resume=False,
    **({} if mode == "rate" else {"rate_training": False}),
)
report = encode(clip, out, settings)
data = open(out, "rb").read()
print(family, mode, len(data), hashlib.sha256(data).hexdigest()[:16], round(report.psnr, 3))
