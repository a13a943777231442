"""SNeRV's training objective: the encoder sees the LL band only; the loss covers frames and bands.

Loss (paper, eq. 3): L(frame) + L(wavelet coefficients), L the run's ``--loss``: with ``fusion``
(0.7 L1 + 0.3 (1 - SSIM), the paper's) the band term weighs each band's structure; with ``l2`` the
orthonormal Haar transform makes the band term equal to the frame term, so it only doubles the
loss (Adam is scale-invariant): l2 runs are frame-l2 runs.

SNeRV-T: a second encoder maps the spatio-temporal LL band of each frame pair (t-1, t) -- the
temporal Haar low-pass (LL_{t-1} + LL_t) / sqrt(2) of the two spatial LL bands -- to the pair's
temporal embedding; pair j covers frames (j-1, j) clamped to the clip, j = 0..T.
"""

from __future__ import annotations

import math

import torch

from ...devices import host_table, to_device
from ...models.layers import haar_dwt, haar_idwt
from ..hnerv.objective import EmbeddingObjective, FrameEncoder
from .model import SNeRVT


class WaveletObjective(EmbeddingObjective):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        with torch.no_grad():
            # the target's wavelet bands, computed and kept in host memory like the frames (rows go to the
            # device per step)
            bands = torch.cat(
                [haar_dwt(self.target[idx].float().div_(255.0)) for idx in torch.arange(self.num_frames).split(8)]
            )
            self.bands = host_table(bands, self.device)
        self.size = tuple(self.target.shape[-2:])

    def band_rows(self, idx: torch.Tensor, channels: int | None = None) -> torch.Tensor:
        """The bands of frames ``idx`` (the first ``channels``: 3 is the LL band) on the device."""
        return to_device(self.bands[idx.cpu(), :channels], self.device)

    coded_rows = {"embeddings": ("embeddings", 0), "backward": ("temporal", 0), "forward": ("temporal", 1)}

    def make_encoders(self) -> dict:
        cfg = self.model.config
        encoders = {"embeddings": FrameEncoder(cfg.strides, cfg.embed_channels)}
        if isinstance(self.model, SNeRVT):
            encoders["temporal"] = FrameEncoder(cfg.strides[cfg.temporal_start :], cfg.temporal_channels)
        return encoders

    def pair_lows(self, pairs: torch.Tensor) -> torch.Tensor:
        """Spatio-temporal LL band of the frame pairs (j-1, j), clamped at the ends."""
        last = self.num_frames - 1
        before, after = (pairs - 1).clamp(0, last), pairs.clamp(0, last)
        return (self.band_rows(before, 3) + self.band_rows(after, 3)) / math.sqrt(2.0)

    def encode(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        embeds = {"embeddings": self.encoders["embeddings"](self.band_rows(idx, 3))}
        if "temporal" in self.encoders:
            embeds["backward"], embeds["forward"] = self.encoders["temporal"](
                self.pair_lows(torch.cat([idx, idx + 1]))
            ).chunk(2)
        return embeds

    @torch.no_grad()
    def write_embeddings(self) -> None:
        super().write_embeddings()
        if "temporal" in self.encoders:
            for pairs in torch.arange(self.num_frames + 1, device=self.device).split(8):
                self.stored("temporal")[pairs] = self.encoders["temporal"](self.pair_lows(pairs)).float()

    def predict(self, embeds: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.decode_bands(embeds)

    def score(self, out: torch.Tensor, idx: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bands = out.float()
        pred = haar_idwt(bands, self.size)
        return self.loss_fn(pred, gt) + self.loss_fn(bands, self.band_rows(idx)), pred
