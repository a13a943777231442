"""SIREN (Sitzmann et al., NeurIPS 2020): a sine-activated MLP of (x, y, t), with the optical-flow
regularizer of the frame-interpolation paper (its Jacobian along the flow is pushed to zero)."""

from ...models.capabilities import ANY_SCALE, ANY_TIME, PIXELWISE
from .. import Family, Option


def objective():
    from .objective import SirenObjective

    return SirenObjective


SIREN = Family(
    "siren",
    "pixel-wise: sine-activated MLP of (x, y, t), optical-flow regularizer (SIREN)",
    frozenset({PIXELWISE, ANY_SCALE, ANY_TIME}),
    objective,
    # bf16 cannot hold sin(30 z) (3 significant digits): SIREN trains in fp32.
    # The paper's lr (1e-5 over 5000 GPU epochs) is far too slow for CPU budgets:
    # on BBB 64x36x8, 150-300 steps, 3e-4 / 1e-3 / 3e-3 / 1e-2 gave 17.2 / 21.8 / 24.3 / 12.6 dB at
    # width 32 and 3e-3 was also best at width 128 (30.8 dB); 2e-3 keeps a margin from divergence.
    # torch.compile: 1.3x the steps per second (benchmarks/results/throughput).
    train_overrides={"amp": False, "lr": 2e-3, "finetune_lr": 2e-4, "warmup": 0.05, "compile": True},
    encode_options=(
        Option("of_weight", "weight of the optical-flow regularizer (paper 0.12; 0 disables)", 0.12, 0.0, 0.999),
        Option("of_fraction", "share of each batch's pixels that carry the flow term", 0.25, 0.01, 1.0),
    ),
)
DECLARATIONS = (SIREN,)
