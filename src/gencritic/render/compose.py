"""Pure pixel functions on rendered views: compositing on a background and blank-view checks.

Kept apart from the GL code so they can be tested on hand-made arrays.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from gencritic.io.images import RGB


def _under_table(background: RGB) -> np.ndarray:
    """(256, 3) uint8: round(bg · (255 − a) / 255) for every alpha a (one lookup per pixel)."""
    a = np.arange(256, dtype=np.int32)[:, None]
    bg = np.asarray(background, dtype=np.int32)[None, :]
    return ((bg * (255 - a) + 127) // 255).astype(np.uint8)


def _packed_under_table(background: RGB) -> np.ndarray:
    """The same table with R, G, B packed into one little-endian uint32 per alpha value."""
    t = _under_table(background).astype(np.uint32)
    return t[:, 0] | (t[:, 1] << 8) | (t[:, 2] << 16)


def composite(premultiplied: np.ndarray, background: RGB) -> tuple[np.ndarray, np.ndarray]:
    """Premultiplied RGBA uint8 (H, W, 4) -> (RGB uint8 on ``background``, alpha float32 in [0, 1]).

    out = rgb + round(bg · (255 − a) / 255): where nothing was drawn (a = 0, rgb = 0) the pixel is
    exactly the background colour, and a fully covered pixel is exactly the rendered colour.

    Speed (this runs for every view of every asset): when alpha is binary (no MSAA, the
    default) no channel can exceed 255, so the three channel additions are done as one uint32
    addition per pixel with a packed lookup table; otherwise a uint16 path with clipping.
    """
    a = premultiplied[..., 3]
    alpha = a.astype(np.float32) * np.float32(1.0 / 255.0)
    binary = np.count_nonzero(a) == np.count_nonzero(a == 255)
    if binary and premultiplied.flags.c_contiguous and premultiplied.dtype == np.uint8:
        packed = premultiplied.view(np.uint32)[..., 0] & np.uint32(0x00FFFFFF)
        packed += np.take(_packed_under_table(background), a)
        # dropping the 4th byte: Pillow's C unpacker is ~4x faster than numpy's strided copy
        height, width = a.shape
        rgb = np.array(Image.frombytes("RGB", (width, height), packed, "raw", "RGBX"))
        return rgb, alpha
    out = premultiplied[..., :3].astype(np.uint16)
    out += np.take(_under_table(background), a, axis=0)
    np.minimum(out, 255, out=out)
    return out.astype(np.uint8), alpha


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """Straight RGBA uint8 (what PNG holds) -> premultiplied, rounded: what the pipeline composites."""
    x = rgba.astype(np.uint32)
    out = (x[..., :3] * x[..., 3:4] + 127) // 255
    return np.concatenate([out, x[..., 3:4]], axis=-1).astype(np.uint8)


def unpremultiply(premultiplied: np.ndarray) -> np.ndarray:
    """Premultiplied RGBA uint8 -> straight RGBA uint8 (what PNG viewers expect)."""
    rgba = premultiplied.astype(np.int32)
    a = rgba[..., 3:4]
    straight = np.where(a > 0, (rgba[..., :3] * 255 + a // 2) // np.maximum(a, 1), 0)
    return np.concatenate([np.clip(straight, 0, 255), a], axis=-1).astype(np.uint8)


def _blank() -> str:
    return "blank view: no part of the object is inside this camera's frame"


def _uniform(colour: tuple[int, ...], covered: int) -> str:
    return f"uniform view: every pixel is {colour} ({covered} object pixels, no detail)"


def composite_view(premultiplied: np.ndarray, background: RGB) -> tuple[Image.Image | None, np.ndarray, str | None]:
    """One rendered view -> (RGB image on ``background`` or None, alpha float32, why not scored).

    The same results as :func:`composite` then :func:`view_problem` then ``Image.fromarray``,
    in fewer passes over the pixels (this runs for every view of every asset): with binary alpha
    the image comes straight from the packed pixels, and "uniform" is one min/max over them.
    """
    a = premultiplied[..., 3]
    alpha = a.astype(np.float32) * np.float32(1.0 / 255.0)
    covered = int(np.count_nonzero(a))
    if covered == 0:
        return None, alpha, _blank()
    if (covered == np.count_nonzero(a == 255) and premultiplied.flags.c_contiguous
            and premultiplied.dtype == np.uint8):
        packed = premultiplied.view(np.uint32)[..., 0] & np.uint32(0x00FFFFFF)
        packed += np.take(_packed_under_table(background), a)
        if packed.min() == packed.max():
            first = int(packed.flat[0])
            return None, alpha, _uniform((first & 255, (first >> 8) & 255, (first >> 16) & 255), covered)
        height, width = a.shape
        return Image.frombytes("RGB", (width, height), packed, "raw", "RGBX"), alpha, None
    rgb, _ = composite(premultiplied, background)
    problem = view_problem(rgb, alpha)
    return (None if problem else Image.fromarray(rgb, "RGB")), alpha, problem


def view_problem(rgb: np.ndarray, alpha: np.ndarray) -> str | None:
    """Why a view must not be scored, or None when it shows something.

    Blank (no pixel of the object drawn: it is outside the frustum, behind the camera or the
    render failed) and uniform (every pixel one colour, e.g. a white object on white) views carry
    no information about the asset; scoring them would score the background.
    """
    covered = int(np.count_nonzero(alpha))
    if covered == 0:
        return _blank()
    flat = np.ascontiguousarray(rgb).reshape(-1)
    channels = rgb.shape[-1]
    if np.array_equal(flat[channels:], flat[:-channels]):  # every pixel equals its neighbour
        return _uniform(tuple(int(c) for c in flat[:channels]), covered)
    return None
