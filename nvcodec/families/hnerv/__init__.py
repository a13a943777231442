"""HNeRV (Chen et al., CVPR 2023): a learned embedding per frame (coded in the file) decoded by
NeRV blocks; the encoder that makes the embeddings trains with it and is never stored."""

from ...models.capabilities import ANY_TIME, FRAMEWISE
from .. import Family


def objective():
    from .objective import EmbeddingObjective

    return EmbeddingObjective


HNERV = Family(
    "hnerv",
    "frame-wise: coded per-frame embeddings -> NeRV blocks (HNeRV)",
    frozenset({FRAMEWISE, ANY_TIME}),
    objective,
    train_overrides={"lr": 1e-3},
)  # the paper's Adam lr with cosine decay (fit's schedule)
DECLARATIONS = (HNERV,)
