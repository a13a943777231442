"""Decoder side: rebuild a model from a parsed file and render frames in bounded batches.

Imports nothing from ``nvcodec.train``: decoding needs only the bitstream, the registry and
the model definitions.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .bitstream.format import NvcFile
from .bitstream.tensors import decompress_tensors
from .cputuning import keep_freed_memory
from .devices import DECODE_BATCH, binary32
from .errors import ArchitectureError
from .families import backbone_class
from .models.base import MAX_PARAMS, Backbone


def build_backbone(nvc: NvcFile, reference: list[np.ndarray] | None = None) -> Backbone:
    """Registry name + validated JSON config -> model with the file's weights loaded.

    ``reference``: the previous segment's decoded weights, which a predicted segment's are coded against.
    """
    cls = backbone_class(nvc.arch.family, for_decoding=True)
    if nvc.arch.arch_version != cls.arch_version:
        raise ArchitectureError(
            f"{nvc.arch.family} architecture version {nvc.arch.arch_version} is not supported "
            f"(this decoder has version {cls.arch_version})"
        )
    config = cls.config_cls.from_json(nvc.arch.config)
    h = nvc.header
    if (config.height, config.width, config.num_frames) != (h.height, h.width, h.num_frames):
        raise ArchitectureError("ARCH config geometry differs from the NHDR header")
    if cls.count_params(config) > MAX_PARAMS:
        raise ArchitectureError(f"config asks for more than {MAX_PARAMS} parameters")
    with torch.device("meta"):
        shapes = tuple(tuple(t.shape) for t in cls(config).coded_tensors().values())
    if shapes != nvc.arch.shapes:
        raise ArchitectureError("tensor manifest does not match the architecture rebuilt from the config")
    model = cls(config)
    weights = decompress_tensors(nvc, model.context_codec(), reference)
    names = list(model.coded_tensors())
    # strict=False: a model may hold encoder-only tensors the file does not carry (see coded_tensors)
    result = model.load_state_dict({n: torch.from_numpy(w) for n, w in zip(names, weights)}, strict=False)
    if result.unexpected_keys or set(result.missing_keys) & set(names):
        raise ArchitectureError("file tensors do not match the model's coded tensors")
    return model.eval()


def coded_weights(model: Backbone) -> list[np.ndarray]:
    """The model's coded tensors as float32 arrays, in manifest order: what a predicted segment after it adds to."""
    return [t.detach().float().cpu().numpy().copy() for t in model.coded_tensors().values()]


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [0, 1] -> uint8 [B, H, W, 3]: NaN -> 0, clamp, round half up (spec 8.5)."""
    return (
        torch.floor(torch.nan_to_num(frames.float(), nan=0.0).clamp(0, 1) * 255.0 + 0.5)
        .to(torch.uint8)
        .permute(0, 2, 3, 1)
        .cpu()
        .numpy()
    )


@torch.inference_mode()
def render_frames(
    model: Backbone,
    times: list[float],
    device: torch.device,
    size: tuple[int, int] | None = None,
    batch: int = DECODE_BATCH,
) -> Iterator[np.ndarray]:
    """Yield uint8 [B, H, W, 3] batches of the frames at normalized ``times``.

    ``size`` (height, width) renders at another resolution (``any_scale`` backbones only).
    A coded frame decodes to the same pixels whichever range or frame rate it is asked in: CPU
    kernels may round differently with a batch's size and contents, so coded frames are always
    rendered in the same groups (frames g x batch ... g x batch + batch - 1) and picked out;
    times between coded frames are rendered together per batch.
    """
    keep_freed_memory()
    model.to(device)
    last = max(model.config.num_frames - 1, 1)
    groups = _GroupCache(model, device, size, batch, last)
    for start in range(0, len(times), batch):
        window = times[start : start + batch]
        frames: list[np.ndarray | None] = [None] * len(window)
        between = [i for i, t in enumerate(window) if abs(t * last - round(t * last)) > 1e-9]
        if between:
            rendered = _render(model, [window[i] for i in between], device, size)
            for i, frame in zip(between, rendered):
                frames[i] = frame
        for i, t in enumerate(window):
            if frames[i] is None:
                frames[i] = groups.frame(round(t * last))
        yield np.stack(frames)


def _render(model: Backbone, times: list[float], device: torch.device, size: tuple[int, int] | None) -> np.ndarray:
    with binary32(device):  # the spec's arithmetic: no TF32 on a GPU
        return to_uint8(model.render_frames(torch.tensor(times, device=device, dtype=torch.float32), size))


class _GroupCache:
    """Coded frames rendered in fixed groups of ``batch`` (the last group padded by repeating its last frame)."""

    def __init__(self, model: Backbone, device: torch.device, size, batch: int, last: int) -> None:
        self.model, self.device, self.size, self.batch, self.last = model, device, size, batch, last
        self.group, self.frames = -1, None

    def frame(self, index: int) -> np.ndarray:
        group = index // self.batch
        if group != self.group:
            final = self.model.config.num_frames - 1  # = last, but for a one-frame model (last is then 1)
            members = [min(k, final) for k in range(group * self.batch, (group + 1) * self.batch)]
            self.group, self.frames = (
                group,
                _render(self.model, [k / self.last for k in members], self.device, self.size),
            )
        return self.frames[index - group * self.batch]
