"""SNeRV (Kim et al., CVPR 2024): HNeRV-style embeddings with Haar wavelet bands, multi-resolution
fusion (MFU) and high-frequency restoration (HFR); snerv-t adds the temporal extension."""

from ...models.capabilities import ANY_TIME, FRAMEWISE
from .. import Family


def wavelet_objective():
    from .objective import WaveletObjective

    return WaveletObjective


SNERV_B = Family(
    "snerv-b",
    "frame-wise: embeddings + Haar wavelet bands, MFU and HFR (SNeRV)",
    frozenset({FRAMEWISE, ANY_TIME}),
    wavelet_objective,
    train_overrides={"lr": 1e-3},
)
SNERV_T = Family(
    "snerv-t",
    "frame-wise: SNeRV with the temporal extension (groups of frames)",
    frozenset({FRAMEWISE, ANY_TIME}),
    wavelet_objective,
    train_overrides={"lr": 1e-3},
)
DECLARATIONS = (SNERV_B, SNERV_T)
