"""Backbone registry: one name -> one class. The only map from names to models.

Adding a backbone is one file plus one import line in ``nvcodec/models/__init__.py``::

    @register_backbone
    class MyNet(Backbone):
        name = "mynet"
        ...

Names are what the .nvc file stores (ARCH.family); they never change once released.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ArchitectureError, UsageError

if TYPE_CHECKING:
    from .base import Backbone

_BACKBONES: dict[str, type["Backbone"]] = {}


def register_backbone(cls: type["Backbone"]) -> type["Backbone"]:
    """Class decorator; refuses a second class under the same name."""
    if cls.name in _BACKBONES:
        raise KeyError(f"backbone {cls.name!r} is registered twice")
    _BACKBONES[cls.name] = cls
    return cls


def available_models() -> list[str]:
    from . import _load_all  # noqa: F401  (imports every backbone module once)

    return sorted(_BACKBONES)


def backbone_class(name: str, for_decoding: bool = False) -> type["Backbone"]:
    available_models()
    try:
        return _BACKBONES[name]
    except KeyError:
        error = ArchitectureError if for_decoding else UsageError
        raise error(f"unknown model {name!r}; available: {', '.join(sorted(_BACKBONES))}") from None
