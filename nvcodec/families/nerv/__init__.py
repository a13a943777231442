"""NeRV (Chen et al., NeurIPS 2021): a positional encoding of t through an MLP and upsampling
conv blocks to a whole frame. The baseline the other frame-wise families build on."""

from ...models.capabilities import ANY_TIME, FRAMEWISE
from .. import Family, frames_objective

NERV = Family(
    "nerv", "frame-wise: t -> MLP -> upsampling conv blocks (NeRV)", frozenset({FRAMEWISE, ANY_TIME}), frames_objective
)
DECLARATIONS = (NERV,)
