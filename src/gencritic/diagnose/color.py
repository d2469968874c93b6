"""Colour maths on float RGB arrays in [0, 1] (pure, vectorised numpy).

Why this module exists: "too cool", "too dim" and "too grey" must be numbers a pipeline can
act on, computed the same way every time. Conventions (all documented in docs/diagnostics.md):

* images are sRGB-encoded; linearisation uses the IEC 61966-2-1 piecewise curve;
* *luma* (perceived brightness) is Rec. 709 weights on the **encoded** values, in [0, 1];
* chromaticity uses linear sRGB -> CIE XYZ (D65 matrix) -> xy, and the correlated colour
  temperature (CCT) is McCamy's cubic approximation (McCamy 1992), accurate to a few kelvin
  near the Planckian locus between ~2000 K and ~12500 K. Far from the locus (pure greens,
  magentas) CCT is not meaningful; we still return McCamy's number and the xy it came from.
"""

from __future__ import annotations

import numpy as np

# sRGB (D65) linear RGB -> XYZ, IEC 61966-2-1.
SRGB_TO_XYZ = np.array([
    [0.4124564, 0.3575761, 0.1804375],
    [0.2126729, 0.7151522, 0.0721750],
    [0.0193339, 0.1191920, 0.9503041],
])
REC709_LUMA = np.array([0.2126, 0.7152, 0.0722])


def to_float(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> float64 in [0, 1]; float input is passed through as float64."""
    arr = np.asarray(rgb)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    return arr.astype(np.float64)


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer function (values in [0, 1])."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luma of encoded sRGB values: the brightness a viewer judges (HxW in [0, 1])."""
    return np.asarray(rgb, dtype=np.float64) @ REC709_LUMA


def rgb_to_hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised HSV: hue in degrees [0, 360), saturation and value in [0, 1]."""
    rgb = np.asarray(rgb, dtype=np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    c = v - rgb.min(axis=-1)
    s = np.where(v > 0, c / np.where(v > 0, v, 1.0), 0.0)
    safe_c = np.where(c > 0, c, 1.0)
    h = np.where(v == r, ((g - b) / safe_c) % 6.0,
                 np.where(v == g, (b - r) / safe_c + 2.0, (r - g) / safe_c + 4.0))
    h = np.where(c > 0, h * 60.0, 0.0) % 360.0
    return h, s, v


def xy_chromaticity(linear_rgb: np.ndarray) -> np.ndarray:
    """Linear sRGB (..., 3) -> CIE 1931 xy (..., 2). Black maps to the D65 white point."""
    xyz = np.asarray(linear_rgb, dtype=np.float64) @ SRGB_TO_XYZ.T
    total = xyz.sum(axis=-1, keepdims=True)
    d65 = np.array([0.31271, 0.32902])
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, xyz[..., :2] / safe, d65)


def mccamy_cct(xy: np.ndarray) -> np.ndarray:
    """McCamy's CCT (kelvin) from xy: n = (x - 0.3320) / (0.1858 - y); 449n³ + 3525n² + 6823.3n + 5520.33."""
    xy = np.asarray(xy, dtype=np.float64)
    n = (xy[..., 0] - 0.3320) / (0.1858 - xy[..., 1])
    return 449.0 * n**3 + 3525.0 * n**2 + 6823.3 * n + 5520.33


def mean_cct(rgb: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, tuple[float, float]]:
    """CCT of the *average light* of a region: mean linear RGB over the mask -> xy -> McCamy.

    Averaging in linear light (not per-pixel CCTs) is what a light meter would see, so a few
    dark pixels cannot drag the reading about, and bright emissive pixels dominate as they should.
    """
    lin = srgb_to_linear(rgb)
    sel = lin.reshape(-1, 3) if mask is None else lin[np.asarray(mask, dtype=bool)]
    if sel.size == 0:
        return float("nan"), (float("nan"), float("nan"))
    xy = xy_chromaticity(sel.mean(axis=0))
    return float(mccamy_cct(xy)), (float(xy[0]), float(xy[1]))


def circular_hue_stats(hue_deg: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """Circular mean hue (degrees) and circular standard deviation (degrees) of a hue sample."""
    h = np.deg2rad(np.asarray(hue_deg, dtype=np.float64).ravel())
    if h.size == 0:
        return float("nan"), float("nan")
    w = np.ones_like(h) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    c, s = (w * np.cos(h)).sum() / w.sum(), (w * np.sin(h)).sum() / w.sum()
    r = min(max(float(np.hypot(c, s)), 1e-12), 1.0)
    mean = float(np.rad2deg(np.arctan2(s, c)) % 360.0)
    return mean, float(np.rad2deg(np.sqrt(-2.0 * np.log(r))))
