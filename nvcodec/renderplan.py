"""What to render from a file, checked against what its family can do: no torch, so a bad
request is refused at once (``nvc decode`` plans before it loads the model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from .bitstream import format as nvc_format
from .errors import UsageError
from .families import declaration, declarations, families_with
from .io import FrameRange
from .models.capabilities import ANY_SCALE, ANY_TIME


@dataclass(frozen=True)
class RenderRequest:
    """What to render from a file: a frame range, and optionally another size or frame rate."""

    frames: FrameRange | None = None
    size: tuple[int, int] | None = None  # (width, height)
    scale: float | None = None
    fps: Fraction | None = None
    # Backbone.set_render_options keywords (e.g. CoordFlow's segmentation, remove_layer, stabilize)
    render_options: dict = field(default_factory=dict)


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) of ``--scale``: each side rounded, at least 1."""
    return max(1, round(width * scale)), max(1, round(height * scale))


def plan_render(nvc: nvc_format.NvcFile, request: RenderRequest) -> tuple[list[float], tuple[int, int], Fraction]:
    """Normalized times, output (height, width) and frame rate; refuse what the file's family cannot do."""
    family = declaration(nvc.arch.family, for_decoding=True)
    h = nvc.header
    total = h.num_frames
    start, stop = request.frames if request.frames is not None else (0, total)
    if start >= total:
        raise UsageError(f"--frames {start}:{stop}: the file has {total} frames (0..{total - 1})")
    stop = min(stop, total)
    height, width = h.height, h.width
    for option, value in request.render_options.items():
        declared = family.option(option, "render")
        if declared is None:
            able = [f.name for f in declarations() if f.option(option, "render") is not None]
            raise UsageError(
                f"--{option.replace('_', '-')}: {family.name} cannot do it; encode with "
                f"{', '.join(able) or 'none in this build'}"
            )
        try:
            declared.check(value)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if request.size is not None or request.scale is not None:
        if ANY_SCALE not in family.capabilities:
            raise UsageError(
                f"--scale/--size: {family.name} renders only its coded size ({h.width}x{h.height}); encode with a "
                f"pixel-wise model ({', '.join(families_with(ANY_SCALE)) or 'none in this build'}) to resample"
            )
        if request.size is not None:
            width, height = request.size
        else:
            if not request.scale > 0:
                raise UsageError("--scale must be positive")
            width, height = scaled_size(h.width, h.height, request.scale)
    fps_in = Fraction(h.fps_num, h.fps_den)
    last = max(total - 1, 1)
    if request.fps is None:
        return [i / last for i in range(start, stop)], (height, width), fps_in
    if ANY_TIME not in family.capabilities:
        raise UsageError(
            f"--fps: {family.name} cannot render between its frames; use one of {', '.join(families_with(ANY_TIME))}"
        )
    if not request.fps > 0:
        raise UsageError("--fps must be positive")
    step = fps_in / request.fps  # input frames per output frame
    count = int((stop - 1 - start) / step) + 1
    return [float((start + k * step) / last) for k in range(count)], (height, width), Fraction(request.fps)
