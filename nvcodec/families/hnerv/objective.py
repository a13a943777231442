"""HNeRV's training objective: a ConvNeXt frame encoder trained jointly with the decoder.

The encoder is never stored. During the "train" stage every step encodes its frames and decodes
the result; when that stage ends (``finish``) the encoder's output for every frame is written into
the model's embedding tensors, and from then on (pruning, fine-tuning, quantization, the file) the
embeddings are the model's own parameters: what the file carries is exactly what the decoder was
last trained on.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...train.objectives import FrameObjective, error_255
from .model import EmbeddingBackbone

ENCODER_WIDTH = 32  # the paper's encoder is 64 -> 16 wide at 640x1280; it is not stored, so only CPU time counts


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> 1x1 (x4) -> GELU -> 1x1, plus the input (ConvNeXt's block)."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(x).permute(0, 2, 3, 1)
        return x + self.mlp(self.norm(y)).permute(0, 3, 1, 2)


class FrameEncoder(nn.Module):
    """Image [B, C, H, W] -> embedding [B, C_e, ceil(H / S), ceil(W / S)] for strides with product S.

    Per stride: a patchify conv (kernel = stride) and one ConvNeXt block; then a 1x1 conv to C_e.
    The input is padded (replicate) to a multiple of S, as the decoder's output is cropped.
    """

    def __init__(
        self, strides: tuple[int, ...], out_channels: int, in_channels: int = 3, width: int = ENCODER_WIDTH
    ) -> None:
        super().__init__()
        self.total = math.prod(strides)
        layers: list[nn.Module] = []
        channels = in_channels
        for s in strides:
            layers += [nn.Conv2d(channels, width, s, stride=s), ConvNeXtBlock(width, 5)]
            channels = width
        layers.append(nn.Conv2d(channels, out_channels, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.total, -width % self.total
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return self.net(x)


class EmbeddingObjective(FrameObjective):
    """Frames in seeded random order; encoder + decoder in "train", the stored embeddings after it."""

    model: EmbeddingBackbone

    def __init__(self, *args) -> None:
        super().__init__(*args)
        torch.manual_seed(self.seed + 7)  # the encoder's initialization, reproducible per seed
        self.encoders = nn.ModuleDict(self.make_encoders()).to(self.device)
        self.encoding = True

    # --- what a family changes ---------------------------------------------------------
    def make_encoders(self) -> dict[str, nn.Module]:
        cfg = self.model.config
        return {"embeddings": FrameEncoder(cfg.strides, cfg.embed_channels)}

    def encode(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Frame indices -> the decoder's inputs, from the encoders (the keys of ``frame_embeddings``)."""
        return {"embeddings": self.encoders["embeddings"](self.frames(idx))}

    def stored(self, name: str) -> torch.Tensor:
        """The model's coded tensor ``name`` as a writable float tensor (behind its quantizer, if any)."""
        return self.rate.latent(name) if self.rate is not None else getattr(self.model, name)

    def quantization_proxy(self, embeds: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rate-aware training: the encoder's embeddings as the decoder will get them.

        They are also copied into the stored tensor, so that the rate term prices what the
        encoder makes now rather than the tensor written at the end of the stage.
        """
        if self.rate is None:
            return embeds
        with torch.no_grad():
            self.stored("embeddings")[idx] = embeds["embeddings"].detach().float()
        proxied = {}
        for key, value in embeds.items():
            name, offset = self.coded_rows[key]
            proxied[key] = self.rate.proxy(name, value, idx + offset)
        return proxied

    # key of ``encode``'s output -> (the coded tensor it is stored in, offset of its rows from the frame index)
    coded_rows = {"embeddings": ("embeddings", 0)}

    @torch.no_grad()
    def write_embeddings(self) -> None:
        """Encode every frame into the model's embedding tensor."""
        for idx in torch.arange(self.num_frames, device=self.device).split(8):
            self.stored("embeddings")[idx] = self.encode(idx)["embeddings"].float()

    def predict(self, embeds: dict[str, torch.Tensor]) -> torch.Tensor:
        """The decoder's output for a batch (under autocast)."""
        return self.model.decode(embeds)

    def score(self, out: torch.Tensor, idx: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, predicted frames) in float32 for one batch."""
        pred = out.float()
        return self.loss_fn(pred, gt), pred

    # --- the hooks fit calls -------------------------------------------------------------
    def extra_parameters(self) -> list[nn.Parameter]:
        return list(self.encoders.parameters()) if self.encoding else []

    def start(self, stage: str) -> None:
        self.encoding = stage == "train"
        self.encoders.train(self.encoding)

    def finish(self, stage: str) -> None:
        if stage == "train":
            self.encoders.eval()
            self.write_embeddings()
            self.encoding = False

    def step(self, epoch: int, index: int, autocast) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.frame_batch(epoch, index)
        gt = self.frames(idx)
        with autocast:
            embeds = (
                self.quantization_proxy(self.encode(idx), idx) if self.encoding else self.model.frame_embeddings(idx)
            )
            out = self.predict(embeds)
        loss, pred = self.score(out, idx, gt)
        mse = error_255(pred.detach(), gt)
        return loss, mse
