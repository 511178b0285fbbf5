"""A learnable synthetic VI-ReID dataset written in the real datasets' layouts (see ``layouts``)."""

from .appearance import Identity, sample_identity
from .layouts import ensure_synthetic, generate, generate_atomic, read_marker
from .render import Camera, render, sample_camera
from .style import Style

__all__ = [
    "Camera",
    "Identity",
    "ensure_synthetic",
    "generate",
    "generate_atomic",
    "read_marker",
    "Style",
    "render",
    "sample_camera",
    "sample_identity",
]
