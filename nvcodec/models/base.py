"""What every backbone is: an nn.Module rebuilt from (registry name, JSON config) alone.

A backbone declares its capabilities instead of letting callers guess:

* ``framewise``: renders whole frames from a time value (NeRV family);
* ``pixelwise``: renders any (x, y, t) coordinates;
* ``any_scale`` / ``any_time``: can render other resolutions / times than it was fitted on.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import ClassVar

import torch
from torch import nn

from ..errors import ArchitectureError

FRAMEWISE = "framewise"
PIXELWISE = "pixelwise"
ANY_SCALE = "any_scale"
ANY_TIME = "any_time"

MAX_PARAMS = 1 << 27  # a config asking for more is refused before anything is allocated


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """Fields every backbone needs: the geometry it was fitted to."""

    height: int
    width: int
    num_frames: int

    def validate(self) -> None:
        """Range checks beyond types; subclasses extend. Raise ValueError with the reason."""
        if not (1 <= self.height <= 16384 and 1 <= self.width <= 16384 and 1 <= self.num_frames <= 1 << 20):
            raise ValueError("geometry out of range")

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, obj: dict) -> "BackboneConfig":
        """Build from untrusted JSON: exact keys, exact types, then ``validate()``."""
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        if set(obj) != names:
            missing, extra = sorted(names - set(obj)), sorted(set(obj) - names)
            raise ArchitectureError(f"{cls.__name__}: config keys differ (missing {missing}, unexpected {extra})")
        values = {name: _coerce(obj[name], hints[name], f"{cls.__name__}.{name}") for name in names}
        config = cls(**values)
        try:
            config.validate()
        except ValueError as exc:
            raise ArchitectureError(f"{cls.__name__}: {exc}") from None
        return config


def _coerce(value, hint, where: str):
    """Accept only the JSON types a field's annotation allows (bool is not an int here)."""
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str) and len(value) <= 64:
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if typing.get_origin(hint) is tuple and isinstance(value, list) and len(value) <= 64:
        item = typing.get_args(hint)[0]
        return tuple(_coerce(v, item, where) for v in value)
    raise ArchitectureError(f"{where}: value {value!r} has the wrong type (expected {hint})")


class Backbone(nn.Module):
    """Base class. Subclasses set the class variables and implement the render methods."""

    name: ClassVar[str]
    arch_version: ClassVar[int] = 1
    config_cls: ClassVar[type[BackboneConfig]]
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config

    # --- sizing -------------------------------------------------------------------------
    @classmethod
    def config_for_budget(cls, height: int, width: int, num_frames: int, params: int) -> BackboneConfig:
        """The largest config of this backbone's recipe with at most ``params`` parameters."""
        raise NotImplementedError

    @classmethod
    def count_params(cls, config: BackboneConfig) -> int:
        """Parameter count without allocating weights (built on the meta device)."""
        with torch.device("meta"):
            model = cls(config)
        return sum(t.numel() for t in model.state_dict().values())

    # --- coded tensors ------------------------------------------------------------------
    def coded_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors the file carries, in manifest order (state_dict order)."""
        return dict(self.state_dict())

    # --- rendering ----------------------------------------------------------------------
    def frame_times(self, indices: torch.Tensor) -> torch.Tensor:
        """Frame index -> normalized time in [0, 1] (frame 0 -> 0, last frame -> 1)."""
        return indices.to(torch.float32) / max(self.config.num_frames - 1, 1)

    def render_frames(self, t: torch.Tensor) -> torch.Tensor:
        """Frames at normalized times ``t`` [B] -> RGB [B, 3, H, W] in [0, 1]."""
        raise NotImplementedError
