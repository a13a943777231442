"""Grid (after C3 and Cool-chic): multi-resolution 3-D latent grids, coded under an autoregressive
context model, turned into pixels by trilinear upsampling and a tiny synthesis network.

Most of the file is latents (one value per pixel at the finest level, a quarter of that per level
above), each coded with a Laplace whose centre and scale a small MLP predicts from its decoded
neighbours; the networks are a few hundred weights. Rate-aware training is what makes it work:
the rate of the latents under the context model is in the loss from the first step.
"""

from ...models.capabilities import FRAMEWISE
from .. import Family


def objective():
    from .objective import GridObjective

    return GridObjective


GRID = Family(
    "grid", "frame-wise: multi-resolution latent grids + context model + tiny synthesis (C3 / Cool-chic class)",
    frozenset({FRAMEWISE}), objective,
    # C3: Adam, lr 1e-2 with cosine decay, then a short hard-rounding phase at a lower lr
    # (fp32: bf16 autocast measured slower for these narrow layers); 4 consecutive frames per step
    train_overrides={"lr": 1e-2, "finetune_lr": 1e-3, "warmup": 0.02, "amp": False, "batch_frames": 4},
    # the rate of the latents is in the loss from the start (a float warm-up would grow them unpriced)
    # lambda starts near the slope of x265's curve at 0.1 bpp on 320x180 (about 1e-2 mse per bpp)
    # (the default controller gain: 0.2 landed a 90-CPU-s encode within 3 % but drove a 300-s one to
    # 0.013 bpp for 0.1, lambda overshooting; 0.05 ended 300 s at 0.086 bpp and 23.9 dB)
    rate_overrides={"proxy_start": 0.0, "calibrate": False, "lam": 1e-2, "max_log_error": 0.5},
    requires_rate_training=True,
)
DECLARATIONS = (GRID,)
