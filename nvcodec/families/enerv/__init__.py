"""E-NeRV (Li et al., ECCV 2022): NeRV with disentangled spatial and temporal contexts."""

from ...models.capabilities import ANY_TIME, FRAMEWISE
from .. import Family, frames_objective

ENERV = Family(
    "enerv",
    "frame-wise: spatial grid x temporal code, transformer + upgraded NeRV blocks (E-NeRV)",
    frozenset({FRAMEWISE, ANY_TIME}),
    frames_objective,
)
DECLARATIONS = (ENERV,)
