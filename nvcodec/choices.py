"""The spelled-out choices of an encode, defined once (torch-free: the CLI checks them before torch loads).

Each is a ``Literal`` type for the settings dataclasses and a tuple of its values for the CLI's
``click.Choice`` and the checks; the code behind each value lives where it runs (the clocks in
``train/fit.py``, the losses in ``train/losses.py``), keyed by these names.
"""

from __future__ import annotations

from typing import Literal, get_args

TrainClock = Literal["wall", "cpu"]  # wall-clock seconds, or process CPU seconds (all threads; for benchmarks)
LossName = Literal["l2", "fusion"]  # mean squared error, or NeRV's 0.7 L1 + 0.3 (1 - SSIM)

TRAIN_CLOCKS: tuple[str, ...] = get_args(TrainClock)
LOSS_NAMES: tuple[str, ...] = get_args(LossName)
