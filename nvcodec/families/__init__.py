"""Families of backbones: one folder each, one line each in ``FAMILY_FOLDERS``.

A family's folder holds its declaration (``__init__.py``: name, capabilities, training
overrides, encode and render options; no torch), its model (``model.py``, what the decoder
rebuilds) and, if it trains with its own loss, its objective (``objective.py``, encoder only).
The CLI builds its family options and ``nvc models`` its table from the declarations, so
adding a family is its folder plus one line below.

Names are what the .nvc file stores (ARCH.family); they never change once released.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, TypedDict

from ..errors import ArchitectureError, UsageError

if TYPE_CHECKING:
    from ..models.base import Backbone
    from ..train.objectives import Objective

# family name -> its folder under nvcodec/families (one line per family)
FAMILY_FOLDERS: dict[str, str] = {
    "nerv": "nerv",
    "enerv": "enerv",
    "hnerv": "hnerv",
    "snerv-b": "snerv",
    "snerv-t": "snerv",
    "coordflow": "coordflow",
    "siren": "siren",
    "grid": "grid",
    "mcgrid": "mcgrid",
}


@dataclass(frozen=True)
class Option:
    """A family's knob: ``--name-with-dashes VALUE`` on the command line."""

    name: str  # a Python identifier, e.g. "of_weight"
    help: str
    default: float | int | bool = 0.0
    low: float | None = None  # inclusive range checked before any work
    high: float | None = None
    config: bool = False  # a field of the model's config (in the file), not a knob of the objective

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def type(self) -> type:
        return type(self.default)

    def check(self, value) -> None:
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ValueError(f"{self.flag} {value:g} is outside [{self.low:g}, {self.high:g}]")


class TrainOverrides(TypedDict, total=False):
    """The fields of train.fit.TrainConfig a family sets (its paper's recipe); tests check the names."""

    optimizer: str
    weight_decay: float
    lr: float
    finetune_lr: float
    warmup: float
    amp: bool
    compile: bool
    batch_frames: int


class RateOverrides(TypedDict, total=False):
    """The fields of train.rate.RateSettings a family sets; tests check the names."""

    proxy_start: float
    calibrate: bool
    lam: float
    lam_x_bpp: float
    lam_floor: float
    lam_ceiling: float
    controller_release: float
    max_log_error: float


@dataclass(frozen=True)
class Family:
    """What a family is, declared without torch."""

    name: str
    summary: str  # one line for `nvc models`
    capabilities: frozenset[str]
    objective: Callable[[], type["Objective"]]  # imports the training objective when called (encoder only)
    train_overrides: TrainOverrides = field(
        default_factory=dict
    )  # TrainConfig fields the paper sets (optimizer, lr, amp)
    encode_options: tuple[Option, ...] = ()  # the objective's knobs
    render_options: tuple[Option, ...] = ()  # Backbone.set_render_options keywords
    rate_overrides: RateOverrides = field(default_factory=dict)  # train.rate.RateSettings fields the family needs
    requires_rate_training: bool = False  # e.g. latents that only the rate term keeps small

    def option(self, name: str, kind: str = "encode") -> Option | None:
        options = self.encode_options if kind == "encode" else self.render_options
        return next((o for o in options if o.name == name), None)

    def check_encode_options(self, options: dict) -> dict:
        """The full set of knobs (defaults overridden by ``options``), range-checked; ValueError on a bad one."""
        unknown = sorted(set(options) - {o.name for o in self.encode_options})
        if unknown:
            flags = ", ".join("--" + key.replace("_", "-") for key in unknown)
            takers = [f.name for f in declarations() if set(unknown) <= {o.name for o in f.encode_options}]
            fix = f"; it applies to --model {' or '.join(takers)}" if takers else ""
            raise ValueError(f"{flags} is not an option of {self.name}{fix}")
        merged = {o.name: o.default for o in self.encode_options} | dict(options)
        for o in self.encode_options:
            o.check(merged[o.name])
        return merged


def configured(family: Family, config, options: dict):
    """``config`` with the family's config options among ``options`` (those given) set; UsageError
    naming the option when the result is not a valid config."""
    chosen = {o.name: options[o.name] for o in family.encode_options if o.config and o.name in options}
    if not chosen:
        return config
    config = replace(config, **chosen)
    try:
        config.validate()
    except ValueError as exc:
        flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in chosen.items())
        raise UsageError(f"--model {family.name} {flags}: {exc}") from None
    return config


def frames_objective() -> type["Objective"]:
    """The generic objective of frame-wise families (L2 or fusion on whole frames)."""
    from ..train.objectives import FrameObjective

    return FrameObjective


def family_names() -> list[str]:
    return sorted(FAMILY_FOLDERS)


def check_family_name(name: str, for_decoding: bool = False) -> None:
    if name not in FAMILY_FOLDERS:
        error = ArchitectureError if for_decoding else UsageError
        raise error(f"unknown model {name!r}; available: {', '.join(family_names())}")


def declaration(name: str, for_decoding: bool = False) -> Family:
    """A family's declaration (no torch is imported)."""
    check_family_name(name, for_decoding)
    folder = importlib.import_module(f"{__name__}.{FAMILY_FOLDERS[name]}")
    return next(f for f in folder.DECLARATIONS if f.name == name)


def declarations() -> list[Family]:
    return [declaration(name) for name in family_names()]


def families_with(capability: str) -> list[str]:
    return [f.name for f in declarations() if capability in f.capabilities]


_CLASSES: dict[str, type["Backbone"]] = {}


def register_backbone(cls: type["Backbone"]) -> type["Backbone"]:
    """Class decorator in a family's model.py; refuses a second class under one name, or an undeclared one.

    The class takes its capabilities and render options from the declaration: one source for both.
    """
    if cls.name in _CLASSES:
        raise KeyError(f"family {cls.name!r} is registered twice")
    if cls.name not in FAMILY_FOLDERS:
        raise KeyError(f"family {cls.name!r} needs a line in FAMILY_FOLDERS")
    family = declaration(cls.name)
    cls.declaration = family
    cls.capabilities = family.capabilities
    cls.render_option_names = frozenset(o.name for o in family.render_options)
    _CLASSES[cls.name] = cls
    return cls


def backbone_class(name: str, for_decoding: bool = False) -> type["Backbone"]:
    """A family's model class (imports its model.py, hence torch)."""
    check_family_name(name, for_decoding)
    if name not in _CLASSES:
        importlib.import_module(f"{__name__}.{FAMILY_FOLDERS[name]}.model")
    return _CLASSES[name]


def load_all() -> None:
    """Import every family's model (for coverage tools)."""
    for name in FAMILY_FOLDERS:
        backbone_class(name)
