"""SIREN's objective: L2 on random pixels plus the seed paper's optical-flow regularizer.

    loss = (1 - lambda) * mean ||f(x, y, t) - v||^2 + lambda * mean |J_f(x, y, t) . d(x, y, t)|

``J_f`` is the network's exact 3x3 Jacobian (RGB over x, y, t) and ``d`` the motion direction
built from the optical flow (u, v) at the observed pixel. The flow is computed once, here, at
encode time with OpenCV's DIS (``motion.dis_flow``; the paper used the learned GMA, which we cannot
download); it is an encoder-side aid and never reaches the file.

Units. Coordinates are normalized (x = (col + 0.5) / W, y = (row + 0.5) / H, t = frame / (T - 1))
and the flow is in pixels per frame, so the direction per frame is
``d = (u / W, v / H, 1 / (T - 1))`` and ``J_f . d`` is the colour change per frame along the
motion (0..1 colour units): the same meaning whatever the clip's size or length. The velocity at
frame k is the central estimate (flow(k -> k+1) - flow(k -> k-1)) / 2, one-sided at the ends.

Cost. ``J_f . d`` is a Jacobian-vector product, so it is computed in forward mode (one pass
beside the forward, ``Siren.value_and_tangent``, written out so that torch.compile fuses it;
``jacobian_dot`` is the same by torch's forward-mode autograd) and differentiated by ordinary
backward; the same exact value by reverse mode would need three ``create_graph`` backward passes
and a double backward (``jacobian_dot_reverse``, kept for the tests and the cost probe). It is evaluated on a
sampled ``of_fraction`` of each batch only; benchmarks/experiments/results/siren/ has the measured cost.
"""

from __future__ import annotations

import math

import torch
import torch.autograd.forward_ad as fwAD

from ...devices import host_table
from ...train.motion import dis_flow
from ...train.objectives import PixelObjective, error_255


def jacobian_dot(
    model: torch.nn.Module, coords: torch.Tensor, direction: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(coords), J_f(coords) . direction), both [N, 3], by forward-mode autograd.

    The tangent stays differentiable with respect to the parameters (backward through the
    forward-mode pass), so the regularizer trains with one ordinary ``backward``.
    """
    with fwAD.dual_level():
        out = model(fwAD.make_dual(coords, direction))
        primal, tangent = fwAD.unpack_dual(out)
    return primal, tangent


def jacobian_dot_reverse(
    model: torch.nn.Module, coords: torch.Tensor, direction: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same as ``jacobian_dot`` by reverse mode: one ``create_graph`` backward per channel."""
    coords = coords.detach().requires_grad_(True)
    out = model(coords)
    rows = [torch.autograd.grad(out[:, c].sum(), coords, create_graph=True)[0] for c in range(out.shape[1])]
    return out, torch.stack([(row * direction).sum(dim=1) for row in rows], dim=1)


class SirenObjective(PixelObjective):
    """Random pixel batches; the flow term on the first ``of_fraction`` of each batch."""

    pixels_per_step = 16384

    def __init__(self, *args, options: dict | None = None) -> None:
        super().__init__(*args)
        self.take_options(options)
        self.of_weight = float(self.options["of_weight"])
        t, h, w = self.shape
        self.of_count = 0
        self.flow_seconds = 0.0
        if self.of_weight > 0 and t > 1:
            import time

            start = time.process_time()
            frames = self.target.permute(0, 2, 3, 1).numpy()  # the host frames [T, H, W, 3]
            velocity = torch.from_numpy(dis_flow(frames)).reshape(-1, 2)  # [T*H*W, 2] pixels per frame
            scale = torch.tensor([1.0 / w, 1.0 / h], dtype=torch.float32)
            steps = torch.cat([velocity * scale, torch.full((velocity.shape[0], 1), 1.0 / (t - 1))], dim=1)
            self.directions = host_table(steps, self.device)  # rows go to the device per step
            self.of_count = max(1, math.ceil(self.options["of_fraction"] * self.pixels_per_step))
            self.flow_seconds = time.process_time() - start

    def regularized_loss(
        self, coords: torch.Tensor, direction: torch.Tensor, gt: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the paper's loss, the prediction [N, 3]); the flow term on the first len(direction) pixels."""
        pred, tangent = self.model.value_and_tangent(coords, direction)
        data = torch.mean((pred - gt) ** 2)
        return (1.0 - self.of_weight) * data + self.of_weight * tangent.abs().mean(), pred

    def step(self, epoch: int, index: int, autocast) -> tuple[torch.Tensor, torch.Tensor]:
        # ``autocast`` is ignored on purpose: sin(30 z) needs fp32 (and so do its derivatives).
        flat, coords, gt = self.sample(epoch, index)
        if self.of_count:
            direction = self.rows(self.directions, flat[: self.of_count])
            loss, pred = self.kernel("regularized_loss", self.regularized_loss)(coords, direction, gt)
        else:
            pred = self.model(coords)
            loss = torch.mean((pred - gt) ** 2)
        mse = error_255(pred.detach().clamp(0, 1), gt)
        return loss, mse
