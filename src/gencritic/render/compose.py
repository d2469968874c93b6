"""Pure pixel functions on rendered views: compositing on a background and blank-view checks.

Kept apart from the GL code so they can be tested on hand-made arrays.
"""

from __future__ import annotations

import numpy as np

from gencritic.io.images import RGB


def composite(premultiplied: np.ndarray, background: RGB) -> tuple[np.ndarray, np.ndarray]:
    """Premultiplied RGBA uint8 (H, W, 4) -> (RGB uint8 on ``background``, alpha float32 in [0, 1]).

    out = rgb + round(bg · (255 − a) / 255): where nothing was drawn (a = 0, rgb = 0) the pixel is
    exactly the background colour, and a fully covered pixel is exactly the rendered colour.
    """
    rgba = premultiplied.astype(np.int32)
    a = rgba[..., 3:4]
    bg = np.asarray(background, dtype=np.int32).reshape(1, 1, 3)
    under = (bg * (255 - a) + 127) // 255
    rgb = np.clip(rgba[..., :3] + under, 0, 255).astype(np.uint8)
    return rgb, (rgba[..., 3].astype(np.float32) / 255.0)


def unpremultiply(premultiplied: np.ndarray) -> np.ndarray:
    """Premultiplied RGBA uint8 -> straight RGBA uint8 (what PNG viewers expect)."""
    rgba = premultiplied.astype(np.int32)
    a = rgba[..., 3:4]
    straight = np.where(a > 0, (rgba[..., :3] * 255 + a // 2) // np.maximum(a, 1), 0)
    return np.concatenate([np.clip(straight, 0, 255), a], axis=-1).astype(np.uint8)


def view_problem(rgb: np.ndarray, alpha: np.ndarray) -> str | None:
    """Why a view must not be scored, or None when it shows something.

    Blank (no pixel of the object drawn: it is outside the frustum, behind the camera or the
    render failed) and uniform (every pixel one colour, e.g. a white object on white) views carry
    no information about the asset; scoring them would score the background.
    """
    covered = int(np.count_nonzero(alpha > 0))
    if covered == 0:
        return "blank view: no part of the object is inside this camera's frame"
    flat = rgb.reshape(-1, rgb.shape[-1])
    if bool((flat == flat[0]).all()):
        return f"uniform view: every pixel is {tuple(int(c) for c in flat[0])} ({covered} object pixels, no detail)"
    return None
