"""CoordFlow (pixel-wise, layered, motion-compensated): each layer an MLP of (x, y, t) warped by
its own flow, mixed by a softmax; segmentation, inpainting (layer removal) and stabilization
come from the layers and their flows."""

from ...models.capabilities import ANY_SCALE, ANY_TIME, LAYERS, PIXELWISE
from .. import Family, Option


def objective():
    from .objective import CoordFlowObjective

    return CoordFlowObjective


COORDFLOW = Family(
    "coordflow",
    "pixel-wise: layers of flow-warped MLPs mixed by a softmax (CoordFlow)",
    frozenset({PIXELWISE, ANY_SCALE, ANY_TIME, LAYERS}),
    objective,
    # The paper: AdamW, lr 5e-4, cosine annealing (53 epochs of 1080p on a GPU). Our CPU budgets are a few
    # dozen epochs of small clips: at 30 CPU-s on 16 frames of 160x90, peak lr 5e-4 / 2e-3 / 5e-3 / 1e-2 / 2e-2
    # gave 18.8 / 23.2 / 25.0 / 28.3 / 27.7 dB (batches of 4096 pixels), so 1e-2 with the paper's schedule.
    # torch.compile: 1.4x the steps per second (benchmarks/results/throughput).
    train_overrides={
        "optimizer": "adamw",
        "weight_decay": 0.0,
        "lr": 1e-2,
        "finetune_lr": 1e-3,
        "warmup": 0.05,
        "compile": True,
    },
    encode_options=(
        Option(
            "interp_weight",
            "also fit motion-compensated in-between frames with this weight, for "
            "decoding at a higher --fps (0 disables; 0.5 measured well)",
            0.0,
            0.0,
            10.0,
        ),
    ),
    render_options=(
        Option("segmentation", "the layers' weights as a colour map", False),
        Option("remove_layer", "render without layer K, the others renormalized", 0),  # the model checks K
        Option("stabilize", "smooth the flow over time: Gaussian sigma in frames", 0.0, 0.0, 1000.0),
    ),
)
DECLARATIONS = (COORDFLOW,)
