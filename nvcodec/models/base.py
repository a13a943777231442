"""What every model is: an nn.Module rebuilt from (registry name, JSON config) alone.

A family declares its capabilities instead of letting callers guess:

* ``framewise``: renders whole frames from a time value (NeRV family);
* ``pixelwise``: renders any (x, y, t) coordinates;
* ``any_scale`` / ``any_time``: can render other resolutions / times than it was fitted on.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ArchitectureError, UsageError
from .capabilities import ANY_SCALE, ANY_TIME, FRAMEWISE, LAYERS, PIXELWISE  # noqa: F401  (re-exported)
from .resampling import DETAIL_GAIN, is_upscale, resize

MAX_PARAMS = 1 << 27  # a config asking for more is refused before anything is allocated


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """Fields every model needs: the geometry it was fitted to."""

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
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
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
    capabilities: ClassVar[frozenset[str]] = frozenset()  # from the family's declaration (nvcodec/families)
    # the declaration itself (nvcodec.families.Family, set when the class registers): training finds the
    # family's objective and options here, so that nvcodec.train never imports nvcodec.families
    declaration: ClassVar[Any] = None
    # frames made since the model was built, where a family makes frames from others it decodes first
    # (mcgrid's references); None for the others, which make just the frames asked for
    frames_rendered: int | None = None

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config

    # --- sizing -------------------------------------------------------------------------
    @classmethod
    def config_for_budget(cls, height: int, width: int, num_frames: int, params: int) -> BackboneConfig:
        """The largest config of this family's recipe with at most ``params`` parameters."""
        raise NotImplementedError

    @classmethod
    def largest_within(
        cls, recipe: "typing.Callable[[int], BackboneConfig]", params: int, low: int = 4, high: int = 1024
    ) -> BackboneConfig:
        """``recipe(c)`` for the largest width c in [low, high) whose parameter count is <= ``params``.

        The shared sizing search of ``config_for_budget``; ``recipe(low)`` when even that is too big.
        """
        best = recipe(low)
        for c in range(low, high):
            candidate = recipe(c)
            if cls.count_params(candidate) > params:
                break
            best = candidate
        return best

    @classmethod
    def count_params(cls, config: BackboneConfig) -> int:
        """Parameter count without allocating weights (built on the meta device)."""
        with torch.device("meta"):
            model = cls(config)
        return sum(t.numel() for t in model.state_dict().values())

    # --- coded tensors ------------------------------------------------------------------
    def coded_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors the file carries, in manifest order (state_dict order).

        Override to leave out encoder-only parts (e.g. HNeRV's frame encoder).
        """
        return dict(self.state_dict())

    @classmethod
    def network_params(cls, config: BackboneConfig) -> int:
        """Parameters coded as network weights (all but context-coded latents): what sizing budgets."""
        return cls.count_params(config)

    def context_coded(self) -> tuple[str, ...]:
        """Coded tensors under the CONTEXT entropy model (latents whose rate the objective prices itself)."""
        return ()

    def context_codec(self):
        """The coder of ``context_coded`` tensors (bitstream.tensors.ContextCodec), or None."""
        return None

    def latent_bits(self, exact: bool = False) -> float:
        """Estimated bits of the context-coded tensors (``exact``: computed afresh, not a running estimate)."""
        return 0.0

    def macs_per_pixel(self) -> float | None:
        """The decoder's multiply-adds per output pixel, where the family states it (``nvc info``)."""
        return None

    def macs_split(self) -> dict[str, float]:
        """``macs_per_pixel`` in parts (e.g. motion, residual, synthesis), where the family splits it."""
        return {}

    def motion_tensors(self) -> tuple[str, ...]:
        """Coded tensors that hold motion (``nvc info`` counts their bytes apart)."""
        return ()

    def tensor_bits(self, name: str, bits: float) -> float:
        """Bit depth for tensor ``name`` when weights get ``bits`` (e.g. embeddings: bits - 2)."""
        return bits

    # --- rendering ----------------------------------------------------------------------
    def frame_times(self, indices: torch.Tensor) -> torch.Tensor:
        """Frame index -> normalized time in [0, 1] (frame 0 -> 0, last frame -> 1)."""
        return indices.to(torch.float32) / max(self.config.num_frames - 1, 1)

    render_option_names: ClassVar[frozenset[str]] = frozenset()  # what set_render_options accepts

    def set_render_options(self, **options) -> None:
        """Decode-time switches (api.RenderRequest.render_options), e.g. CoordFlow's segmentation.

        A model that supports some overrides this and ``render_option_names``; the base has none.
        """
        if options:
            flags = ", ".join("--" + name.replace("_", "-") for name in sorted(options))
            raise UsageError(f"{flags}: the {self.name} family has no such rendering option")

    def render_frames(self, t: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Frames at normalized times ``t`` [B] -> RGB [B, 3, H, W] in [0, 1].

        ``size`` (height, width) other than the coded size is only for ``any_scale`` backbones.
        """
        raise NotImplementedError


class PixelBackbone(Backbone):
    """A model that maps coordinates (x, y, t) in [0, 1] to RGB; frames are grids of pixels.

    Pixel centres: x = (column + 0.5) / W, y = (row + 0.5) / H at any output size W x H, so a
    frame rendered at twice the size samples between the coded pixels. t as in ``frame_times``.
    """

    capabilities = frozenset({PIXELWISE, ANY_SCALE, ANY_TIME})
    tile_pixels = 1 << 16  # pixels rendered at once: bounds decoder memory at any output size

    def render_pixels(self, coords: torch.Tensor) -> torch.Tensor:
        """coords [N, 3] as (x, y, t) in [0, 1] -> RGB [N, 3] in [0, 1]."""
        raise NotImplementedError

    def pixel_coords(self, flat: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
        """Flat indices into a [T, H, W] grid -> coords [N, 3] of those pixels' centres."""
        t, rest = flat // (height * width), flat % (height * width)
        y, x = rest // width, rest % width
        return torch.stack([(x + 0.5) / width, (y + 0.5) / height, self.frame_times(t)], dim=-1).float()

    def render_frames(self, t: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Frames at times ``t``: the coded grid, or another size built from it (models/resampling.py)."""
        coded = (self.config.height, self.config.width)
        if size is None or tuple(size) == coded:
            return self.render_grid(t, coded)
        return torch.cat([self._resampled(time[None], coded, tuple(size)) for time in t])  # a frame at a time: memory

    def _resampled(self, t: torch.Tensor, coded: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
        frames = resize(self.render_grid(t, coded), size)
        if is_upscale(coded, size):  # the model's own detail above the coded grid's band
            direct = self.render_grid(t, size)
            frames += DETAIL_GAIN * (direct - resize(resize(direct, coded), size))
        return frames

    def render_grid(self, t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The model evaluated at the pixel centres of a ``size`` = (height, width) grid (spec 8.5.1)."""
        height, width = size
        ys = (torch.arange(height, device=t.device, dtype=torch.float32) + 0.5) / height
        xs = (torch.arange(width, device=t.device, dtype=torch.float32) + 0.5) / width
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)  # [H*W, 2] as (x, y)
        frames = []
        for time in t.to(torch.float32):
            coords = torch.cat([grid, time.expand(grid.shape[0], 1)], dim=1)
            pixels = torch.cat([self.render_pixels(c) for c in coords.split(self.tile_pixels)])
            frames.append(pixels.float().T.reshape(3, height, width))
        return torch.stack(frames)
