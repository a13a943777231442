"""The public Python API: encode(), encode_file(), decode(), inspect() and their settings.

The pipelines themselves are ``nvcodec.encoder`` (plan -> fit -> code -> write -> verify) and
``nvcodec.decoder`` (read -> build -> plan render -> render -> write); this module is the stable
place to import them from. Names load on first use, so ``from nvcodec.api import decode``
never loads the encoder's training code.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "RenderRequest": "decoder",
    "decode": "decoder",
    "decode_to_file": "decoder",
    "inspect": "decoder",
    "plan_render": "decoder",
    "read_nvc": "decoder",
    "resolve_device": "devices",
    "EncodeReport": "encoder",
    "EncodeSettings": "encoder",
    "encode": "encoder",
    "library_versions": "versions",
    "plan_model": "encoder",
    "FileOptions": "settings",
    "FileReport": "segmented",
    "encode_file": "segmented",
    "NvcReader": "bitstream.container",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"nvcodec.{_HOMES[name]}"), name)
