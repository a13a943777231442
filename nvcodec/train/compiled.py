"""Optional ``torch.compile`` of an objective's loss, with a clean fall-back to eager PyTorch.

Why: a training step of the small pixel-wise models is many small element-wise kernels around
a few GEMMs; inductor fuses them (and their backward) into a few C++ loops. Measured on this
machine's 2 cores at the 0.1 bpp size of BBB 320x180 (benchmarks/results/throughput): coordflow
and siren gain about 1.4x per step, nerv (convolutions, bf16) was 30 % *slower*, so only the
families that gain declare ``compile`` in their training overrides.

Compiling costs about 8 CPU-seconds the first time in a process (less with inductor's on-disk
cache); it is paid from the training budget like any other set-up. ``NVC_COMPILE=0`` (the test
suite sets it), a CPU without a C++ compiler or a GPU without Triton keeps eager PyTorch; so does
any error while compiling, with one warning: here in the forward pass, in ``fit`` (which retries
the step eagerly) in the backward pass, which compiles on its first use.
"""

from __future__ import annotations

import os
import shutil
import warnings
from typing import Callable


def compile_wanted(requested: bool, device_type: str) -> bool:
    """Whether to compile: asked for, not switched off by NVC_COMPILE=0, and a compiler exists."""
    setting = os.environ.get("NVC_COMPILE", "")
    if setting in ("0", "1"):
        requested = setting == "1"
    if not requested:
        return False
    if device_type == "cuda":  # inductor writes Triton kernels for a GPU
        from torch.utils._triton import has_triton

        return has_triton()
    return device_type == "cpu" and any(shutil.which(cc) for cc in ("g++", "c++", "clang++"))


def maybe_compiled(fn: Callable, enabled: bool, device_type: str = "cpu") -> Callable:
    """``fn`` compiled by inductor (static shapes) if ``enabled``, else ``fn``; eager again on any compile error."""
    if not enabled:
        return fn
    import torch
    import torch._inductor.config as inductor

    if device_type == "cpu":
        # compile in this process, so that a CPU-time budget (which counts reaped children) sees the
        # work; a GPU's budget is its wall clock, which parallel compile workers shorten
        inductor.compile_threads = 1
    compiled = torch.compile(fn, dynamic=False)
    state = {"fn": compiled}

    def call(*args, **kwargs):
        try:
            return state["fn"](*args, **kwargs)
        except Exception as exc:  # a missing toolchain or an unsupported op: train on, uncompiled
            if state["fn"] is fn:
                raise
            warnings.warn(f"torch.compile failed ({type(exc).__name__}: {exc}); training without it", stacklevel=2)
            state["fn"] = fn
            return fn(*args, **kwargs)

    return call
