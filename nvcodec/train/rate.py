"""Rate-aware training: every coded tensor seen through its quantization proxy, loss D + lambda x R.

``RateTerm`` keeps a ``LearnedQuantizer`` (``compress/proxy.py``) for each coded parameter of a
model. Around each training step it swaps every coded weight for its proxy value in place
(``perturb``) and back (``restore``), turning the gradient of the proxy into the steps' gradient
by hand (noise: sum g x u x s; hard rounding: sum g x (round(w/s) - w/s) x s, straight-through
to w). The family's model and objective code run unchanged and pay no autograd graph for the
proxy: on a small model that graph cost as much as the model's own step. ``RateTerm`` also
estimates the bits of the whole file (the measured fixed part plus each tensor's code length under
the entropy model the file will choose) and holds the lambda that prices them, steered by
``ratecontrol.LambdaController``.

Lambda is in the loss's units per bit per pixel: loss = mse (on [0, 1] values) + lambda x bpp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..compress.proxy import LearnedQuantizer, ProxyMode, record_bits
from ..compress.ratecontrol import LambdaController
from ..models.base import Backbone

CONSTANT_LAMBDA_START_BITS = 6.0


@dataclass(frozen=True)
class RateSettings:
    """What rate-aware training aims at: a file size, or a constant lambda."""

    num_pixels: int  # W x H x frames: bits / num_pixels = bpp
    fixed_bits: float  # bits of the file that do not depend on the symbols (header, steps, metadata; measured)
    target_bits: float | None = None  # steer lambda toward this file size; None: keep ``lam``
    lam: float = 1e-4  # the start (or constant) lambda (the controller settled at 2e-5..3e-3 on 160x90 nerv)
    train_proxy: ProxyMode = ProxyMode.NOISE  # the "train" stage's proxy; "finetune" is always HARD
    proxy_start: float = 0.5  # fraction of the "train" stage run on float weights, without the rate term
    step_lr_scale: float = 5.0  # the steps' learning rate relative to the weights'
    every: int = 4  # the rate term's period in steps (weighted by it): it costs as much as a small model's step
    calibrate: bool = True  # set the steps to meet the target as each proxy phase starts (else start at 6 bits)
    max_log_error: float | None = None  # bound on one controller update's |log(estimate / target)| (None: none)
    controller_gain: float = 0.05  # log(lambda) moves by gain x log(estimate / target) at each estimate
    controller_release: float = (
        1.0  # the gain's multiplier while the estimate is under the target, lambda above its start
    )
    lam_floor: float | None = None  # lambda stays at or above lam_floor x its start (None: unbounded)
    lam_ceiling: float | None = None  # ... and at or below lam_ceiling x its start
    lam_x_bpp: float | None = None  # with a target: lambda starts at lam_x_bpp / target bpp instead of ``lam``

    def __post_init__(self) -> None:
        object.__setattr__(self, "train_proxy", ProxyMode(self.train_proxy))  # e.g. "hard" from JSON options

    def start_lambda(self) -> float:
        """Where lambda starts: a price that falls as the target rate rises, or ``lam``."""
        if self.target_bits is None or self.lam_x_bpp is None:
            return self.lam
        return self.lam_x_bpp * self.num_pixels / self.target_bits


class RateTerm:
    """Learned quantizers on a model's coded tensors, the file's estimated bits and lambda."""

    def __init__(self, model: Backbone, settings: RateSettings, origin: dict[str, torch.Tensor] | None = None) -> None:
        """``origin``: per coded tensor, what the file will code its difference from (a predicted
        segment: the previous segment's decoded weights), so that the proxy, the steps and the
        rate are those of that difference."""
        self.model, self.settings = model, settings
        self.manifest = list(model.coded_tensors())
        # context-coded latents have a fixed step of 1 and their own rate, priced by the family's objective
        self.names = [n for n in self.manifest if n not in model.context_coded()]
        params = dict(model.named_parameters())
        missing = [n for n in self.names if n not in params]
        if missing:
            raise ValueError(f"rate-aware training needs every coded tensor to be a parameter: {missing}")
        self.params = [params[name] for name in self.names]
        # placeholders: ``calibrate`` sets every step when the proxy starts, from the weights trained by then
        self.quantizers = [
            LearnedQuantizer(p, model.tensor_bits(n, CONSTANT_LAMBDA_START_BITS)).to(p.device)
            for n, p in zip(self.names, self.params)
        ]
        self.predicted = bool(origin)
        for name, param, quantizer in zip(self.names, self.params, self.quantizers):
            if origin and name in origin:
                quantizer.set_origin(origin[name].to(param.device))
                quantizer.reset(param, model.tensor_bits(name, CONSTANT_LAMBDA_START_BITS))
        self.controller = LambdaController(
            settings.target_bits,
            settings.start_lambda(),
            settings.controller_gain,
            settings.max_log_error,
            settings.controller_release,
            (settings.lam_floor or 0.0, settings.lam_ceiling or math.inf),
        )
        self.calibrated = ""  # the last proxy mode whose start set the steps to meet the target ("" none yet)
        self._swapped: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def to(self, device: torch.device) -> "RateTerm":
        """The learned steps on ``device``, and the model's coded parameters looked up again: call
        it once the model has moved there (a move may replace a parameter object, e.g. to another
        kind of tensor, and the rate term must swap the model's own)."""
        params = dict(self.model.named_parameters())
        self.params = [params[name] for name in self.names]
        for quantizer in self.quantizers:
            quantizer.to(device)
        return self

    # --- what training calls --------------------------------------------------------------
    def latent(self, name: str) -> torch.Tensor:
        """The float weights of tensor ``name`` (writable: e.g. HNeRV's embeddings), also mid-step."""
        index = self.names.index(name)
        return self._swapped[index][0] if self._swapped else self.params[index]

    @property
    def mode(self) -> ProxyMode:
        return self.quantizers[0].mode

    @torch.no_grad()
    def perturb(self, seed: int) -> None:
        """Before a step's forward: every coded weight holds its proxy value (nothing with the proxy OFF).

        The noise comes from ``seed`` (the step's), so a resumed encode draws what an uninterrupted one would.
        """
        if self.mode == ProxyMode.OFF:
            return
        generator = torch.Generator(device=self.params[0].device).manual_seed(seed)
        for param, quantizer in zip(self.params, self.quantizers):
            step = quantizer.step()
            original = param.detach().clone()
            if self.mode == ProxyMode.NOISE:
                slope = torch.empty_like(original).uniform_(-0.5, 0.5, generator=generator)  # d proxy / d step
                param.add_(step * slope)
            else:
                base = quantizer.base()
                ratio = (original - base) / step
                slope = torch.round(ratio) - ratio
                param.copy_(base + torch.round(ratio) * step)
            self._swapped.append((original, slope, step))

    @torch.no_grad()
    def restore(self) -> None:
        """After backward: the steps' gradients from the weights', and the float weights back.

        The weights keep their gradient unchanged (straight-through for both proxies).
        """
        for param, quantizer, (original, slope, step) in zip(self.params, self.quantizers, self._swapped):
            if param.grad is not None:
                rows = quantizer.log_step.shape[0]
                grad = (param.grad * slope * step).reshape(rows, -1).sum(dim=1)
                quantizer.log_step.grad = grad if quantizer.log_step.grad is None else quantizer.log_step.grad + grad
            param.copy_(original)
        self._swapped = []

    def proxy(self, name: str, value: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``value``, rows ``rows`` of tensor ``name``, through its quantizer (e.g. an encoder's embeddings)."""
        return self.quantizers[self.names.index(name)](value, rows)

    def step_parameters(self) -> list[nn.Parameter]:
        return [quantizer.log_step for quantizer in self.quantizers]

    def set_mode(self, mode: ProxyMode) -> None:
        for quantizer in self.quantizers:
            quantizer.mode = mode

    def bits(self, exact: bool = False) -> torch.Tensor:
        """Estimated bits of the whole file, differentiable in the steps.

        Context-coded latents add the family's estimate: its running one during training, one
        computed afresh over every latent with ``exact``.

        The weights get no rate gradient: measured, a rate pull on the weights drove them to zero
        instead of coarsening the steps, and lost PSNR at equal rate.
        """
        total = torch.zeros((), device=self.quantizers[0].log_step.device) + self.settings.fixed_bits
        total = total + self.model.latent_bits(exact)
        for name, quantizer in zip(self.names, self.quantizers):
            symbols = quantizer.symbols(self.latent(name).detach())
            total = total + record_bits(symbols)
        return total

    def schedule(self, stage: str, fraction: float) -> None:
        """The proxy for this point of training: OFF, then the train proxy, then HARD in "finetune"."""
        if stage != "train":
            mode = ProxyMode.HARD
        else:
            mode = ProxyMode.OFF if fraction < self.settings.proxy_start else self.settings.train_proxy
        if mode != self.mode:
            self.set_mode(mode)
        if mode != ProxyMode.OFF and self.calibrated != mode.value:
            self.calibrate(mode)

    @torch.no_grad()
    def calibrate(self, mode: ProxyMode, iterations: int = 12) -> None:
        """Set the steps so that the estimate meets the target as a phase starts.

        When the noise proxy starts, every row's step is its range over b bits (``quantize``'s
        rule) with b bisected; when hard rounding starts, the learned steps are scaled by one
        common factor, bisected. Each phase then trains at the rate it must end on, so the
        final search with the real coder has (almost) nothing left to move.
        """
        first = self.calibrated == ""
        self.calibrated = mode.value
        if self.settings.target_bits is None or not self.settings.calibrate:  # start from 6-bit steps (D.1)
            if first:
                for name, quantizer in zip(self.names, self.quantizers):
                    quantizer.reset(self.latent(name), self.model.tensor_bits(name, CONSTANT_LAMBDA_START_BITS))
            return
        learned = [q.log_step.detach().clone() for q in self.quantizers]
        lo, hi = (2.0, 12.0) if first else (-3.0, 3.0)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            for name, quantizer, log_step in zip(self.names, self.quantizers, learned):
                if first:
                    quantizer.reset(self.latent(name), self.model.tensor_bits(name, mid))
                else:  # a factor 2^-mid on the learned steps
                    quantizer.log_step.copy_(log_step - mid * math.log(2.0))
            if float(self.bits()) > self.settings.target_bits:
                hi = mid
            else:
                lo = mid

    def observe(self, bits: torch.Tensor, steer: bool = True) -> float:
        """A step's estimate to the lambda controller (on the host; not when ``steer`` is False);
        the estimate in bits per pixel."""
        estimate = float(bits)
        if steer:
            self.controller.update(estimate)
        return estimate / self.settings.num_pixels

    def state(self) -> dict:
        """What a checkpoint keeps beyond the steps (which are parameters)."""
        return {"lambda": self.controller.lam, "calibrated": self.calibrated}

    def load_state(self, state: dict) -> None:
        self.controller.lam, self.calibrated = state["lambda"], state["calibrated"]

    def due(self, step: int) -> bool:
        """Whether step number ``step`` carries the rate term (never while the proxy is off)."""
        return self.mode != ProxyMode.OFF and step % self.settings.every == 0

    def penalty(self, bits: torch.Tensor) -> torch.Tensor:
        """lambda x bpp, weighted by the period so that its mean over steps is lambda x bpp."""
        return self.controller.lam * self.settings.every * bits / self.settings.num_pixels

    # --- what the encoder calls after training ----------------------------------------------
    def export(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(float weights, binary16 steps) of every coded tensor, in manifest order (latents: step 1)."""
        coded = self.model.coded_tensors()
        weights, steps = [], []
        for name in self.manifest:
            weights.append(coded[name].detach().float().contiguous().cpu().numpy())
            if name in self.names:
                steps.append(self.quantizers[self.names.index(name)].file_steps())
            else:
                steps.append(np.ones(1, np.float16))
        return weights, steps

    @torch.no_grad()
    def file_bits(self) -> float:
        """Estimated bits of the file as it will be written: every coded weight at its decoded value
        meanwhile, so context-coded latents are priced under the context model the decoder rebuilds
        (its float weights predicted other tables: 14 % off on a 30-s grid encode)."""
        mode = self.mode
        self.set_mode(ProxyMode.HARD)
        self.perturb(seed=0)  # hard rounding draws nothing
        try:
            return float(self.bits(exact=True))
        finally:
            self.restore()
            self.set_mode(mode)

    @property
    def keeps_steps(self) -> bool:
        """Whether the final search must leave the learned steps alone: in a family with context-coded
        latents most bits are latents, whose step is fixed, and rescaling the networks' steps would
        mostly cost quality (measured: up to 3 dB, for a few %)."""
        return bool(self.model.context_coded())

    @torch.no_grad()
    def set_steps(self, steps: list[np.ndarray]) -> None:
        """Replace the learned steps (e.g. after the encoder's final search with the real coder)."""
        for name, rows in zip(self.manifest, steps):
            if name in self.names:
                quantizer = self.quantizers[self.names.index(name)]
                quantizer.log_step.copy_(torch.from_numpy(rows.astype(np.float32)).log().to(quantizer.log_step.device))

    def identity(self) -> dict:
        """What a resumed run must share with the interrupted one."""
        s = self.settings
        return {
            "target_bits": s.target_bits,
            "lam": s.lam,
            "num_pixels": s.num_pixels,
            "train_proxy": s.train_proxy.value,
            "step_lr_scale": s.step_lr_scale,
            "every": s.every,
            "proxy_start": s.proxy_start,
            "max_log_error": s.max_log_error,
            "controller_gain": s.controller_gain,
            "controller_release": s.controller_release,
            "lam_floor": s.lam_floor,
            "lam_ceiling": s.lam_ceiling,
            "lam_x_bpp": s.lam_x_bpp,
            **({"predicted": True} if self.predicted else {}),
        }


class NoRate:
    """Training without a rate term (quantization after training): the hooks fit calls, as no-ops."""

    def to(self, device: torch.device) -> "NoRate":
        return self

    def schedule(self, stage: str, fraction: float) -> None:
        pass

    def perturb(self, seed: int) -> None:
        pass

    def restore(self) -> None:
        pass

    def due(self, step: int) -> bool:
        return False

    def step_parameters(self) -> list[nn.Parameter]:
        return []

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass

    def identity(self) -> None:
        return None


NO_RATE = NoRate()
