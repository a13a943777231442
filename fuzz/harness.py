"""One fuzz input through everything `nvc info` and `nvc decode` run on a file.

A finding is any exception other than the project's own errors (``NvcError``: the one-line
`nvc: error:` the CLI prints), a decode over ``MAX_SECONDS``, or a peak RSS that grows by more
than ``MAX_GROWTH_BYTES``. The harness decodes under a constrained profile of the decoder's
limits (Annex C allows a decoder to set lower ones): frames up to 256x256 and 64 frames, so
that one input renders in milliseconds; the limits themselves are what is under test.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass

import torch

from nvcodec.bitstream import format as nvc_format
from nvcodec.errors import NvcError
from nvcodec.render import build_backbone, render_frames

FUZZ_LIMITS = nvc_format.Limits(
    max_file_bytes=1 << 22, max_dimension=256, max_frames=64, max_total_elements=1 << 20, max_tensor_elements=1 << 20
)
MAX_SECONDS = 5.0
MAX_GROWTH_BYTES = 1 << 30


class Finding(Exception):
    """What the fuzzer is looking for: a crash, a hang or a huge allocation."""


@dataclass
class Outcome:
    accepted: bool  # decoded to pixels (False: refused with an NvcError)
    stage: str  # how far it got: read, build, render, done
    seconds: float


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def decode_one(data: bytes) -> Outcome:
    """What `nvc info` + the first batch of `nvc decode` do with ``data``; raise Finding on a bug."""
    start, rss_before, stage = time.monotonic(), peak_rss_bytes(), "read"
    try:
        nvc = nvc_format.read(data, FUZZ_LIMITS)
        stage = "build"
        model = build_backbone(nvc)
        stage = "render"
        last = max(nvc.header.num_frames - 1, 1)
        times = [k / last for k in range(min(4, nvc.header.num_frames))]
        next(iter(render_frames(model, times, torch.device("cpu"))))
        stage, accepted = "done", True
    except NvcError:
        accepted = False
    except Exception as exc:  # any error: exactly what the fuzzer hunts
        raise Finding(f"{stage}: {exc.__class__.__name__}: {exc}") from exc
    seconds = time.monotonic() - start
    if seconds > MAX_SECONDS:
        raise Finding(f"{stage}: took {seconds:.1f} s")
    if peak_rss_bytes() - rss_before > MAX_GROWTH_BYTES:
        raise Finding(f"{stage}: peak RSS grew by {(peak_rss_bytes() - rss_before) / 2**20:.0f} MiB")
    return Outcome(accepted, stage, seconds)
