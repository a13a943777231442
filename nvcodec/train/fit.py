"""The overfitting loop for frame-wise backbones: train, prune, fine-tune; resumable.

CPU-first: channels_last, one frame per step (faster per epoch than larger batches on CPU),
and bf16 autocast when it measures faster for the model at hand (trial.run_trial: it pays for
wide models, not for the narrow ones small rate targets give). The same code runs on CUDA.

A checkpoint (an .npz of plain arrays plus a JSON string, read with ``allow_pickle=False``)
is written atomically every ``checkpoint_seconds`` and at the end of each stage, so an
interrupted encode resumes where it stopped.

Training length is either a number of epochs or a time budget (``train_seconds`` seconds of the
``train_clock``: "wall", or "cpu" = process CPU time, which other jobs on the machine do not
bias, so benchmarks compare backbones at equal compute). With a budget, the learning-rate
schedule follows the fraction of the budget spent instead of the fraction of steps done.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..choices import LossName, TrainClock
from ..cputuning import flush_denormals, keep_freed_memory
from ..devices import bf16_native
from ..fsutil import atomic_path
from ..metrics import psnr_from_mse
from ..models.base import Backbone
from .compiled import compile_wanted
from .objectives import Objective, objective_for
from .prune import apply_masks, magnitude_masks
from .rate import NO_RATE, NoRate, RateTerm


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 150
    finetune_epochs: int = 30  # after pruning
    prune_amount: float = 0.10
    optimizer: str = "adam"  # or "adamw"
    weight_decay: float = 0.0
    lr: float = 5e-3
    finetune_lr: float = 1e-3
    warmup: float = 0.1  # fraction of steps with a linear warm-up from 0.1 x lr
    batch_frames: int = 1
    amp: bool = True
    compile: bool = False  # torch.compile the objective's loss (train/compiled.py; the families that gain ask for it)
    loss: LossName = "l2"  # a key of losses.LOSSES
    seed: int = 0
    checkpoint_seconds: float = 60.0
    objective_options: dict = field(default_factory=dict)  # the family objective's knobs (e.g. of_weight)
    train_seconds: float | None = None  # seconds for both stages, shared as epochs : finetune_epochs; None: epochs
    train_clock: TrainClock = "wall"  # "wall" or "cpu" (process CPU seconds, all threads)

    def __post_init__(self) -> None:
        if self.train_clock not in CLOCKS:
            raise ValueError(f"train_clock must be one of {sorted(CLOCKS)}")
        if self.train_seconds is not None and not self.train_seconds > 0:
            raise ValueError("train_seconds must be positive")


def process_cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the C++ compiler torch.compile runs)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.monotonic, "cpu": process_cpu_seconds}  # by TRAIN_CLOCKS
FIRST_CHECKPOINT_SECONDS = 10.0  # then every checkpoint_seconds


@dataclass(frozen=True)
class Progress:
    stage: str
    step: int
    total_steps: int  # 0 under a time budget (the step count is not known in advance)
    fraction: float  # of the whole run done, by steps or by the time budget
    loss: float
    psnr: float  # of the training batches since the last report (through the quantization proxy if rate-aware)
    elapsed: float
    eta: float
    bpp: float = 0.0  # rate-aware training: the file's estimated bits per pixel (0 otherwise)


ProgressFn = Callable[[Progress], None]


def autocast_for(device: torch.device, enabled: bool):
    """bf16 autocast where the device supports it, else a no-op context."""
    if enabled and device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    if enabled and device.type == "cuda" and bf16_native(device):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def _lr_at(fraction: float, base: float, warmup: float) -> float:
    """Linear warm-up from 0.1 x base over the first ``warmup`` of the stage, then cosine to 0."""
    if fraction < warmup:
        return base * (0.1 + 0.9 * fraction / warmup)
    progress = (fraction - warmup) / max(1e-9, 1 - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class _StageClock:
    """How far a stage has got: by epochs, or by seconds of its share of a time budget.

    Seconds spent before an interruption are carried in the checkpoint, so a resumed run ends
    where an uninterrupted one would.
    """

    def __init__(self, epochs: int, steps_per_epoch: int, budget: float | None, clock: str, spent: float) -> None:
        self.epochs, self.steps_per_epoch, self.budget, self.read = epochs, steps_per_epoch, budget, CLOCKS[clock]
        self.spent_before, self.started = spent, self.read()

    def spent(self) -> float:
        return self.spent_before + self.read() - self.started

    def fraction(self, epoch: int, index: int) -> float:
        if self.budget is None:
            total = self.epochs * self.steps_per_epoch
            return (epoch * self.steps_per_epoch + index) / total if total > 0 else 1.0
        return min(1.0, self.spent() / self.budget) if self.budget > 0 else 1.0

    def done(self, epoch: int) -> bool:
        """No epoch left to start (by count or by budget)."""
        return self.fraction(epoch, 0) >= 1.0


@dataclass(frozen=True)
class Stage:
    name: str  # "train", then "finetune" (after pruning; hard rounding when rate-aware)
    epochs: int
    lr: float
    share: float  # of the whole run, by epochs or by the time budget


def _stages(cfg: TrainConfig) -> list[Stage]:
    plan = [("train", cfg.epochs, cfg.lr), ("finetune", cfg.finetune_epochs, cfg.finetune_lr)]
    total = sum(epochs for _, epochs, _ in plan)
    return [Stage(name, epochs, lr, epochs / total) for name, epochs, lr in plan]


@dataclass(frozen=True)
class Position:
    """How far a run has got: what a checkpoint records beside its arrays, as JSON."""

    run: dict  # the run's identity: a checkpoint of another run is not resumed
    stage: int = 0  # the stage under way (len(stages): training is done)
    epoch: int = 0  # epochs finished in it
    spent: float = 0.0  # seconds of its share of a time budget spent
    rate: dict = field(default_factory=dict)  # the rate term's state (lambda, calibration)

    def to_json(self) -> dict:
        return {"stage": self.stage, "epoch": self.epoch, "spent": self.spent, "run": self.run, **self.rate}

    @classmethod
    def from_json(cls, state: dict) -> "Position":
        rate = {k: v for k, v in state.items() if k not in ("stage", "epoch", "spent", "run")}
        return cls(state["run"], state["stage"], state["epoch"], state["spent"], rate)


class Checkpoint:
    """Model, optimizer and masks as plain arrays; position as JSON. Never unpickles."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def save(
        self, model: Backbone, opt: torch.optim.Optimizer, masks: dict, position: Position, extra=(), steps=()
    ) -> None:
        if self.path is None:
            return
        arrays = {f"model/{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        arrays.update({f"extra/{i}": p.detach().cpu().numpy() for i, p in enumerate(extra)})  # objective's encoder
        arrays.update({f"steps/{i}": p.detach().cpu().numpy() for i, p in enumerate(steps)})  # learned log-steps
        arrays.update({f"mask/{k}": v.cpu().numpy() for k, v in masks.items()})
        for i, st in opt.state_dict()["state"].items():
            arrays.update({f"opt/{i}/{k}": torch.as_tensor(v).cpu().numpy() for k, v in st.items()})
        arrays["state"] = np.array(json.dumps(position.to_json()))
        with atomic_path(self.path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

    def load(
        self, model: Backbone, opt: torch.optim.Optimizer, device: torch.device, expected_run: dict, extra=(), steps=()
    ) -> tuple[Position, dict] | None:
        """Restore a checkpoint of the same run; None (start over) for none or another run's."""
        if self.path is None or not self.path.is_file():
            return None
        with np.load(self.path, allow_pickle=False) as data:
            state = json.loads(str(data["state"]))
            if state.get("run") != expected_run:
                return None
            model.load_state_dict({k[6:]: torch.from_numpy(data[k]) for k in data.files if k.startswith("model/")})
            with torch.no_grad():
                for prefix, params in (("extra", extra), ("steps", steps)):
                    for i, p in enumerate(params):
                        if f"{prefix}/{i}" in data.files:
                            p.copy_(torch.from_numpy(data[f"{prefix}/{i}"]))
            masks = {k[5:]: torch.from_numpy(data[k]).to(device) for k in data.files if k.startswith("mask/")}
            opt_state: dict[int, dict] = {}
            for k in data.files:
                if k.startswith("opt/"):
                    _, i, key = k.split("/")
                    opt_state.setdefault(int(i), {})[key] = torch.from_numpy(data[k]).to(device)
        if opt_state:
            sd = opt.state_dict()
            sd["state"] = opt_state
            opt.load_state_dict(sd)
            _match_layouts(opt)
        return Position.from_json(state), masks


def _match_layouts(opt: torch.optim.Optimizer) -> None:
    """Each optimizer state tensor in its parameter's memory layout. The arrays come back
    contiguous, and fused Adam walks a parameter and its moments as flat memory: a channels-last
    weight with contiguous moments would be updated with another element's moments."""
    for group in opt.param_groups:
        for param in group["params"]:
            state = opt.state.get(param, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _run_identity(model: Backbone, cfg: TrainConfig, rate: RateTerm | NoRate) -> dict:
    """What a checkpoint must match to be resumed: the model and the training trajectory.

    Precision (``amp``), compilation and the save interval may differ between the two runs.
    """
    trajectory = {k: v for k, v in asdict(cfg).items() if k not in ("amp", "compile", "checkpoint_seconds")}
    identity = {"family": model.name, "model": model.config.to_json(), "train": trajectory}
    return identity if rate.identity() is None else {**identity, "rate": rate.identity()}


def _optimizer(
    model: Backbone, cfg: TrainConfig, lr: float, extra=(), rate: RateTerm | NoRate = NO_RATE, own=()
) -> torch.optim.Optimizer:
    """Adam(W) over the model (but the parameters the objective updates itself, ``own``), the
    objective's encoder-side parameters and the learned steps (own lr scale)."""
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.optimizer]
    mine = {id(p) for p in own}
    groups = [{"params": [*(p for p in model.parameters() if id(p) not in mine), *extra]}]
    if rate.step_parameters():
        groups.append({"params": rate.step_parameters(), "lr_scale": rate.settings.step_lr_scale, "weight_decay": 0.0})
    # fused: one kernel for the whole update of every tensor (CPU and CUDA); about 1 % of coordflow's
    # step faster than the foreach form
    return kind(groups, lr=lr, weight_decay=cfg.weight_decay, fused=True)


def training_state(
    model: Backbone, frames: np.ndarray, cfg: TrainConfig, device: torch.device, rate: RateTerm | None = None
) -> tuple[Objective, torch.optim.Optimizer]:
    """The model, its rate term, objective and optimizer, all on ``device``.

    The encoder builds the model and its rate term on the CPU (sizing, the fixed bits); whatever
    trains must follow the model to its device, or the first step mixes devices.
    """
    model.to(device)
    if device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    term = NO_RATE if rate is None else rate.to(device)
    objective = objective_for(model, frames, device, cfg.loss, cfg.seed, cfg.batch_frames, cfg.objective_options)
    objective.rate = rate
    objective.compile = compile_wanted(cfg.compile, device.type)
    opt = _optimizer(model, cfg, cfg.lr, objective.extra_parameters(), term, objective.own_parameters())
    return objective, opt


@flush_denormals()
def fit(
    model: Backbone,
    frames: np.ndarray,
    cfg: TrainConfig,
    device: torch.device,
    progress: ProgressFn | None = None,
    checkpoint: Path | None = None,
    rate: RateTerm | None = None,
    clock_started: float | None = None,
    say: Callable[[str], None] | None = None,
    finishing_seconds: float = 0.0,
) -> Backbone:
    """Overfit ``model`` to uint8 frames [T, H, W, 3]; return it pruned and fine-tuned.

    ``clock_started``: the budget clock's reading when the caller's set-up began, so that a time
    budget also pays for the set-up (sizing, timing trial, objective) and ends where it says.
    ``say`` tells what a silent wait is (compiling); ``finishing_seconds`` (what follows training:
    coding, writing, checking) is added to the ETA, which is the whole encode's.

    With ``rate`` (attached to ``model``), the loss is D + lambda x R through quantization proxies:
    additive noise in the "train" stage, where lambda is steered toward the target, then hard
    rounding (straight-through) in the "finetune" stage at the lambda reached.
    """
    torch.manual_seed(cfg.seed)
    keep_freed_memory()
    objective, opt = training_state(model, frames, cfg, device, rate)
    if objective.compile and say is not None:
        say("compiling the training step (torch.compile; the first steps wait for it) ...")
    term = NO_RATE if rate is None else rate
    stages = _stages(cfg)
    loop = _Loop(model, objective, opt, term, cfg, device, Checkpoint(checkpoint), say)
    position = loop.resume(Position(_run_identity(model, cfg, term)), stages)
    loop.report = _Reporter(
        progress,
        0 if cfg.train_seconds else sum(s.epochs for s in stages) * loop.steps_per_epoch,
        cfg.train_seconds,
        cfg.train_clock,
        finishing_seconds,
    )
    for index in range(position.stage, len(stages)):
        resumed = index == position.stage
        spent = position.spent if resumed else 0.0
        if clock_started is not None:  # this process's set-up counts once, in the first stage it runs
            spent, clock_started = spent + CLOCKS[cfg.train_clock]() - clock_started, None
        loop.run_stage(stages, index, position.epoch if resumed else 0, spent, position)
        position = replace(position, stage=index + 1, epoch=0, spent=0.0, rate=term.state())
        loop.save(position)
    loop.report.finish()
    model.eval()
    return model.to(memory_format=torch.contiguous_format)


class _Loop:
    """One run's training state between stages: the optimizer (new after pruning), the pruning
    masks, the global step count and the checkpoint timer."""

    def __init__(
        self,
        model: Backbone,
        objective: Objective,
        opt: torch.optim.Optimizer,
        rate: RateTerm | NoRate,
        cfg: TrainConfig,
        device: torch.device,
        ckpt: Checkpoint,
        say: Callable[[str], None] | None,
    ) -> None:
        self.model, self.objective, self.opt, self.rate = model, objective, opt, rate
        self.cfg, self.device, self.ckpt, self.say = cfg, device, ckpt, say
        self.steps_per_epoch = objective.steps_per_epoch
        self.masks: dict[str, torch.Tensor] = {}
        self.step = 0
        self.last_bpp = 0.0  # the rate term's latest estimate (rate-aware training)
        self.report: _Reporter | None = None
        # the first checkpoint after min(FIRST_CHECKPOINT_SECONDS, checkpoint_seconds), then every checkpoint_seconds
        self.last_save = time.monotonic() - max(0.0, cfg.checkpoint_seconds - FIRST_CHECKPOINT_SECONDS)

    def resume(self, start: Position, stages: list[Stage]) -> Position:
        """The checkpoint's position if it holds this run (its weights, moments and masks restored), else ``start``."""
        restored = self.ckpt.load(
            self.model, self.opt, self.device, start.run, self.objective.extra_parameters(), self.rate.step_parameters()
        )
        position = start
        if restored is not None:
            position, self.masks = restored
            self.rate.load_state(position.rate)
        self.step = (sum(s.epochs for s in stages[: position.stage]) + position.epoch) * self.steps_per_epoch
        return position

    def save(self, position: Position) -> None:
        self.ckpt.save(
            self.model, self.opt, self.masks, position, self.objective.extra_parameters(), self.rate.step_parameters()
        )

    def run_stage(self, stages: list[Stage], index: int, epoch: int, spent: float, position: Position) -> None:
        """Stage ``index`` from epoch ``epoch`` (``spent`` seconds of its budget already gone) to its end."""
        cfg, stage = self.cfg, stages[index]
        if stage.name == "finetune" and not self.masks and position.epoch == 0:
            self.masks = magnitude_masks(self.model, cfg.prune_amount)
            apply_masks(self.model, self.masks)
            self.opt = _optimizer(
                self.model, cfg, stage.lr, self.objective.extra_parameters(), self.rate, self.objective.own_parameters()
            )
        budget = None if cfg.train_seconds is None else cfg.train_seconds * stage.share
        clock = _StageClock(stage.epochs, self.steps_per_epoch, budget, cfg.train_clock, spent)
        done_before = sum(s.share for s in stages[:index])
        self.model.train()
        self.objective.start(stage.name)
        while not clock.done(epoch):
            for batch in range(self.steps_per_epoch):
                fraction = clock.fraction(epoch, batch)
                if fraction >= 1.0:
                    break
                self.train_step(stage, index, epoch, batch, fraction)
                self.report.add(
                    stage.name,
                    self.step,
                    done_before + stage.share * clock.fraction(epoch, batch + 1),
                    *self.last_losses,
                    self.last_bpp,
                )
            epoch += 1
            if self.ckpt.path is not None and time.monotonic() - self.last_save > cfg.checkpoint_seconds:
                self.save(replace(position, stage=index, epoch=epoch, spent=clock.spent(), rate=self.rate.state()))
                self.last_save = time.monotonic()
        self.objective.finish(stage.name)

    def train_step(self, stage: Stage, index: int, epoch: int, batch: int, fraction: float) -> None:
        """One optimizer step at ``fraction`` of the stage (learning rate and proxy follow it)."""
        for group in self.opt.param_groups:
            group["lr"] = _lr_at(fraction, stage.lr, self.cfg.warmup) * group.get("lr_scale", 1.0)
        self.rate.schedule(stage.name, fraction)
        self.objective.schedule(stage.name, fraction)
        loss, mse, bits = _eager_on_error(
            self.objective,
            self.say,
            _forward_backward,
            self.objective,
            self.opt,
            self.rate,
            self.step,
            self.cfg.seed,
            (index * 1_000_003 + epoch, batch),
            autocast_for(self.device, self.cfg.amp),
        )
        self.opt.step()
        self.objective.update(self.opt.param_groups[0]["lr"])
        if self.masks:
            apply_masks(self.model, self.masks)
        if bits is not None:  # the controller runs on the host, every rate.settings.every steps
            self.last_bpp = self.rate.observe(bits, steer=self.objective.steers_lambda())
        self.step += 1
        self.last_losses = (loss, mse)


def _forward_backward(
    objective: Objective,
    opt: torch.optim.Optimizer,
    rate: RateTerm | NoRate,
    step: int,
    seed: int,
    position: tuple[int, int],
    autocast,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One step's gradients: (loss, mse, the rate estimate in bits if this step priced it), all
    detached device tensors, so that nothing waits for the device here."""
    opt.zero_grad(set_to_none=True)
    bits = None
    rate.perturb(seed=seed * 1_000_003 + step)
    try:
        loss, mse = objective.step(*position, autocast)
        if rate.due(step):
            bits = rate.bits()
            loss = loss + rate.penalty(bits)
        loss.backward()
    finally:
        rate.restore()  # the float weights back, also after an error (a retry starts from them)
    return loss.detach(), torch.as_tensor(mse).detach(), None if bits is None else bits.detach()


def _eager_on_error(objective: Objective, say: Callable[[str], None] | None, run: Callable, *args):
    """``run(*args)``; if it fails while the objective is compiled (a missing toolchain, an op the
    compiler cannot take, also in the backward pass, which compiles on first use), the same step
    again without compiling, once. Errors of eager PyTorch are raised as they are."""
    if not objective.compile:
        return run(*args)
    try:
        return run(*args)
    except Exception as exc:  # any compiler failure: train on, uncompiled
        objective.compile = False
        first_line = (str(exc).splitlines() or [""])[0]
        message = f"torch.compile failed ({type(exc).__name__}: {first_line}); training without it"
        warnings.warn(message, stacklevel=2)
        if say is not None:
            say(f"note: {message}")
        return run(*args)


class _Reporter:
    """Averages loss and MSE between reports; reports about twice a second at most.

    The sums stay on the device: the host waits for it only when a line is printed.

    ETA: of the whole encode, in wall seconds. Under a time budget, what is left of the budget
    on its own clock, turned into wall seconds at the rate that clock has run since the first
    step (1 for the wall clock; about the thread count for process-CPU time); by epochs, the wall
    time per step since the first step (not since the start: compiling and the first step's
    set-up are not a rate). Plus the finishing estimate (coding, writing, checking the file).
    """

    interval = 0.5  # seconds between reports

    def __init__(
        self,
        progress: ProgressFn | None,
        total_steps: int,
        budget: float | None = None,
        clock: str = "wall",
        finishing_seconds: float = 0.0,
    ) -> None:
        self.progress, self.total = progress, total_steps
        self.budget, self.read_clock, self.finishing = budget, CLOCKS[clock], finishing_seconds
        self.loss: torch.Tensor | float = 0.0
        self.mse: torch.Tensor | float = 0.0
        self.bpp = 0.0
        self.count = 0
        self.start = time.monotonic()
        self.clock_start = self.read_clock()
        self.last = 0.0
        self.first: tuple[float, float, float] | None = None  # (wall, budget clock, fraction) at the first step
        self.stage, self.step, self.fraction = "", 0, 0.0
        self.reported = 0.0  # the fraction of the last report

    def add(self, stage: str, step: int, fraction: float, loss, mse, bpp: float = 0.0) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = (now, self.read_clock(), fraction)
        if self.count == 0:  # a new window
            self.loss = self.mse = 0.0
        self.loss = self.loss + loss
        self.mse = self.mse + mse
        self.bpp = bpp  # the latest estimate, not a mean
        self.count += 1
        self.stage, self.step, self.fraction = stage, step, fraction
        if now - self.last >= self.interval or fraction >= 1.0:  # and always the run's last step
            self.flush()
            self.last = now

    def flush(self) -> None:
        if self.progress is None or self.count == 0:
            return
        self.loss, self.mse = float(self.loss) / self.count, float(self.mse) / self.count  # the window's means
        self._emit(time.monotonic() - self.start, self.eta())
        self.count = 0

    def eta(self) -> float:
        """Wall seconds left in the encode (see the class's docstring)."""
        if self.fraction >= 1.0:
            return self.finishing
        now = time.monotonic()
        first_wall, first_clock, first_fraction = self.first or (self.start, self.clock_start, 0.0)
        if self.budget is not None:
            wall, ticks = now - first_wall, self.read_clock() - first_clock
            if wall < 1.0:  # too short to measure the clock's rate: since the start instead
                wall, ticks = now - self.start, self.read_clock() - self.clock_start
            clock_per_wall = ticks / wall if wall > 0 and ticks > 0 else 1.0
            return self.budget * (1 - self.fraction) / clock_per_wall + self.finishing
        done = self.fraction - first_fraction
        training = (now - first_wall) * (1 - self.fraction) / done if done > 0 else 0.0
        return training + self.finishing

    def finish(self) -> None:
        """The last report says the whole run is done (a budget ends between two clock readings)."""
        self.fraction = 1.0
        if self.count:
            self.flush()
        elif self.step and self.reported < 1.0:
            self._emit(time.monotonic() - self.start, self.finishing)

    def _emit(self, elapsed: float, eta: float) -> None:
        if self.progress is None:
            return
        self.reported = self.fraction
        self.progress(
            Progress(
                self.stage,
                self.step,
                self.total,
                self.fraction,
                float(self.loss),
                psnr_from_mse(float(self.mse)),
                elapsed,
                max(0.0, eta),
                self.bpp,
            )
        )
