"""Write the fuzzer's seed corpus: one small, valid .nvc file per backbone (deterministic).

    python fuzz/make_corpus.py [FAMILY ...]      # default: every family

Each seed is a real encode (one epoch) of 4 frames of the sample clip at 32x18, so the seeds
exercise every family's architecture, tensors and entropy models, yet decode in milliseconds.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch

    from nvcodec.api import EncodeSettings, encode
    from nvcodec.bitstream.container import NvcReader
    from nvcodec.errors import RateError
    from nvcodec.families import family_names as available_models
    from nvcodec.io import read_video, sample_clip_path

    torch.set_num_threads(1)
    out = ROOT / "fuzz" / "corpus"
    out.mkdir(exist_ok=True)
    video = read_video(sample_clip_path(), (0, 4), (32, 18))
    for name in sys.argv[1:] or available_models():
        path = out / f"{name}.nvc"
        for bpp in (4.0, 16.0, 64.0):  # the smallest rate the family reaches on so tiny a clip
            try:
                encode(
                    video, path, EncodeSettings(model=name, bpp=bpp, epochs=1, device="cpu", amp=False, resume=False)
                )
                break
            except RateError:
                continue
        print(f"{path.name}: {path.stat().st_size} bytes")
    for vector in sorted((ROOT / "tests" / "conformance").glob("*.nvc")):
        if not NvcReader(vector).segmented:  # the harness decodes single streams (fuzz/harness.py)
            shutil.copy(vector, out / vector.name)


if __name__ == "__main__":
    main()
