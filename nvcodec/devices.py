"""Where torch work runs, and the settings a device needs to give the same bytes every time.

Both pipelines use this module (the encoder trains on a device, the decoder renders on one), so
it sits below both. Everything here is a no-op on the CPU, the device this project is measured
on; the CUDA branches follow PyTorch's reproducibility notes:

* ``reproducible``: deterministic kernels (``torch.use_deterministic_algorithms``) and the cuBLAS
  workspace setting they need, so that two encodes on one GPU give the same bytes. It is set
  before CUDA starts, once per process.
* ``binary32``: TF32 off for matrix products and convolutions while decoding: the spec's
  arithmetic is IEEE binary32, and TF32 rounds the inputs of a product to 10 bits of mantissa.
* ``synchronize``: CUDA kernels run asynchronously, so a timing must wait for them.
* ``bf16_native``: bf16 autocast only where the GPU computes bf16 itself (not emulated).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

from .errors import UsageError

# `nvc decode`'s default device (the CLI spells it too, without importing torch). The encoder measures the
# quality it reports on this device's decode, whatever device trained the model.
DECODE_DEVICE = "cpu"
DECODE_BATCH = 4  # frames the decoder renders at once (the reference decoder renders in batches of 4: spec 8.5)
CUBLAS_WORKSPACE = ":4096:8"  # what deterministic cuBLAS needs (CUDA's reproducibility notes)


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` (the current GPU) or ``cuda:N``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise UsageError(f"--device {name!r}: use cpu, cuda, cuda:N or auto")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA device is available; use --device cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(name)


def worker_device(name: str, slot: int) -> str:
    """The device of worker number ``slot`` (a ``--jobs`` process, a torchrun rank): GPUs are
    shared round-robin, one per worker while there are enough; the CPU stays the CPU."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if name.startswith("cuda:"):
        return name  # the user chose one GPU for every worker
    return f"cuda:{slot % max(1, torch.cuda.device_count())}"


_reproducible_done = False


def reproducible(device: torch.device) -> None:
    """Deterministic CUDA kernels from here on in this process (nothing to do on the CPU, whose
    kernels are deterministic for a fixed thread count)."""
    global _reproducible_done
    if device.type != "cuda" or _reproducible_done:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # read when cuBLAS starts
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False  # autotuning may pick other kernels from run to run
    _reproducible_done = True


@contextlib.contextmanager
def binary32(device: torch.device) -> Iterator[None]:
    """IEEE binary32 products inside the block: TF32 off for matmul and cuDNN (CUDA only)."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (before reading a clock that times it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bf16_native(device: torch.device) -> bool:
    """Whether bf16 autocast is worth trying: always on the CPU (the trial measures it), on CUDA
    only where the GPU has bf16 arithmetic of its own (Ampere and later), not emulated."""
    if device.type == "cpu":
        return True
    if device.type != "cuda":
        return False
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # a torch without the argument: its answer is the native one
        return torch.cuda.is_bf16_supported()


def host_frames(frames, device: torch.device) -> torch.Tensor:
    """uint8 frames [T, H, W, 3] as a host tensor [T, 3, H, W] to copy from batch by batch: pinned
    for a GPU (asynchronous copies), the frames themselves on the CPU. A whole segment never goes
    to GPU memory at once (8 s of 1080p is about 1.2 GB of uint8, 5 GB as floats)."""
    return host_table(torch.from_numpy(frames), device).permute(0, 3, 1, 2)  # pinned as stored: views stay pinned


def host_table(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A per-frame or per-pixel table an objective copies rows of to ``device`` each step: pinned
    for a GPU (asynchronous copies), the tensor itself on the CPU."""
    return tensor.pin_memory() if device.type == "cuda" else tensor


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device`` (asynchronously from pinned memory)."""
    return tensor.to(device, non_blocking=True)
