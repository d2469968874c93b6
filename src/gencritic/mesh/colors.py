"""Colours as the renderer draws them: float RGBA in sRGB, from whatever a file stores.

glTF stores material factors and vertex colours as linear values (so does Blender's MTL
``Kd``); textures are sRGB; trimesh hands factors over as bytes of the linear value. Everything
becomes float RGBA with sRGB-encoded colour channels here, so the renderer shades in one space.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np


def rgba_float(color: Any, n: int) -> np.ndarray:
    """uint8 or float colours (N,3|4) or one colour -> float32 (n, 4) in [0, 1]."""
    arr = np.asarray(color)
    if arr.dtype.kind in "ui":
        arr = arr.astype(np.float32) / 255.0
    arr = arr.astype(np.float32)
    if arr.ndim == 1:
        arr = np.broadcast_to(arr, (n, arr.shape[0]))
    if arr.shape[1] == 3:
        arr = np.concatenate([arr, np.ones((arr.shape[0], 1), np.float32)], axis=1)
    return np.ascontiguousarray(np.clip(arr[:, :4], 0.0, 1.0), dtype=np.float32)


class TextureUnreadable(Exception):
    """A material's texture image that Pillow opened lazily but cannot decode (truncated, corrupt);
    the loader turns it into an :class:`ItemError` naming the asset and the texture."""

    def __init__(self, material: str | None, reason: str) -> None:
        super().__init__(reason)
        self.material = material
        self.reason = reason


def texture_rgba(image: Any, material: str | None = None) -> np.ndarray | None:
    if image is None:
        return None
    from PIL import Image

    if not isinstance(image, Image.Image):
        return None
    try:
        return np.ascontiguousarray(np.asarray(image.convert("RGBA"), dtype=np.uint8))
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError) as exc:
        raise TextureUnreadable(material, " ".join(str(exc).split())[:200] or type(exc).__name__) from None


def _exact_factor(material: Any, quantized: np.ndarray,
                  float_factors: Sequence[tuple[str | None, np.ndarray]]) -> np.ndarray | None:
    """The file's float ``baseColorFactor`` behind trimesh's uint8 one: the materials of that name
    whose factor rounds to it; None when there is none, or several that disagree."""
    name = getattr(material, "name", None)
    found = {tuple(f) for n, f in float_factors
             if n == name and np.all(np.abs(f * 255.0 - quantized.astype(np.float64)) <= 0.5 + 1e-6)}
    return np.asarray(found.pop(), np.float32) if len(found) == 1 else None


def material_color_and_texture(visual: Any, float_factors: Sequence[tuple[str | None, np.ndarray]] = ()
                                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGBA factor in [0,1], texture or None) of a TextureVisuals material.

    glTF PBR: baseColorTexture x baseColorFactor (the spec), the factor at the file's float
    precision (``float_factors``, see :func:`gltf_prepare.base_colour_factors`). OBJ/MTL
    (SimpleMaterial): the map_Kd image alone when present, otherwise Kd; trimesh and pyrender read
    OBJ the same way.
    """
    material = getattr(visual, "material", None)
    if material is None:
        return np.ones(4, np.float32), None
    if hasattr(material, "baseColorTexture"):
        factor = material.baseColorFactor
        fac = np.ones(4, np.float32) if factor is None else rgba_float(factor, 1)[0]
        if factor is not None and np.asarray(factor).dtype == np.uint8:
            exact = _exact_factor(material, np.asarray(factor), float_factors)
            fac = fac if exact is None else exact
        return fac, texture_rgba(material.baseColorTexture, getattr(material, "name", None))
    texture = texture_rgba(getattr(material, "image", None), getattr(material, "name", None))
    if texture is not None:
        return np.ones(4, np.float32), texture
    diffuse = getattr(material, "diffuse", None)
    return (np.ones(4, np.float32) if diffuse is None else rgba_float(diffuse, 1)[0]), None


def srgb_from_linear(values: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (IEC 61966-2-1) of linear values in [0, 1]."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.power(v, 1 / 2.4) - 0.055)


def display_rgba(rgba: np.ndarray, linear: bool) -> np.ndarray:
    """RGBA with its colour channels in sRGB (the renderer's space); alpha is never encoded."""
    if not linear:
        return rgba
    out = np.array(rgba, dtype=np.float32, copy=True)
    out[..., :3] = srgb_from_linear(out[..., :3])
    return out
