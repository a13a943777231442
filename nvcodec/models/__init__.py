"""Backbones: INRs that map time (frame-wise) or (x, y, t) (pixel-wise) to RGB."""

from .registry import available_models, backbone_class, register_backbone

__all__ = ["available_models", "backbone_class", "register_backbone"]
