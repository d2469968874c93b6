"""Colour maths on float RGB arrays in [0, 1] (pure, vectorised numpy).

Why this module exists: "too cool", "too dim" and "too grey" must be numbers a pipeline can
act on, computed the same way every time. Conventions (all documented in docs/diagnostics.md):

* images are sRGB-encoded; linearisation uses the IEC 61966-2-1 piecewise curve;
* *luma* (perceived brightness) is Rec. 709 weights on the **encoded** values, in [0, 1];
* chromaticity uses linear sRGB -> CIE XYZ (D65 matrix) -> xy, and the correlated colour
  temperature (CCT) is McCamy's cubic approximation (McCamy 1992), accurate to a few kelvin
  near the Planckian locus from ~2000 K up. Below that (deep-red flames) McCamy's cubic turns
  back on itself, so there the CCT is the temperature of the nearest Planckian-locus point in
  CIE 1960 uv (Kim et al. 2002 locus, 1667-25000 K), and bluer than 25000 K reads 25000 K;
  see :func:`cct`. Far from the locus (pure
  greens, magentas: |Duv| > 0.02) CCT describes the colour poorly; the analyser says so.
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


def duv(xy: np.ndarray) -> np.ndarray:
    """Signed distance from the Planckian locus in CIE 1960 uv (ANSI C78.377 polynomial, Ohno 2013).

    Positive is above the locus (greenish), negative below (pinkish). McCamy's CCT is only a
    meaningful description of a colour when |Duv| is small; we flag |Duv| > 0.02 as unreliable.
    """
    xy = np.asarray(xy, dtype=np.float64)
    x, y = xy[..., 0], xy[..., 1]
    denom = -2.0 * x + 12.0 * y + 3.0
    u, v = 4.0 * x / denom, 6.0 * y / denom
    lfp = np.hypot(u - 0.292, v - 0.24)
    a = np.arccos(np.clip((u - 0.292) / np.where(lfp > 0, lfp, 1.0), -1.0, 1.0))
    lbb = (-0.00616793 * a**6 + 0.0893944 * a**5 - 0.5179722 * a**4 + 1.5317403 * a**3
           - 2.4243787 * a**2 + 1.925865 * a - 0.471106)
    return lfp - lbb


CCT_RELIABLE_DUV = 0.02
MCCAMY_MIN_K = 2000.0  # below this McCamy's cubic bends back (deep reds read *hotter* than orange)
MCCAMY_POLE_Y = 0.1858  # McCamy's n = (x - 0.3320) / (0.1858 - y) has its pole here (deep blues)
LOCUS_MAX_K = 25000.0
_LOCUS_T = np.geomspace(1667.0, LOCUS_MAX_K, 4000)


def planckian_locus_xy(t: np.ndarray) -> np.ndarray:
    """Planckian locus xy for 1667-25000 K (Kim et al. 2002 cubic-spline approximation)."""
    t = np.asarray(t, dtype=np.float64)
    x = np.where(t <= 4000.0,
                 -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910,
                 -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390)
    y = np.where(t <= 2222.0, -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683,
                 np.where(t <= 4000.0, -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867,
                          3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483))
    return np.stack([x, y], axis=-1)


def _uv(xy: np.ndarray) -> np.ndarray:
    x, y = xy[..., 0], xy[..., 1]
    denom = -2.0 * x + 12.0 * y + 3.0
    return np.stack([4.0 * x / denom, 6.0 * y / denom], axis=-1)


_LOCUS_UV = _uv(planckian_locus_xy(_LOCUS_T))


def locus_cct(xy: np.ndarray) -> np.ndarray:
    """CCT as the temperature of the nearest point of the Planckian locus in CIE 1960 uv
    (the definition of CCT), on a 4000-step log grid (0.07 % spacing), clamped to 1667-25000 K."""
    uv = _uv(np.asarray(xy, dtype=np.float64))
    d = ((uv[..., None, :] - _LOCUS_UV) ** 2).sum(-1)
    return _LOCUS_T[np.argmin(d, axis=-1)]


def cct(xy: np.ndarray) -> tuple[float, str]:
    """(kelvin, method): McCamy's cubic where it holds (2000-25000 K), else the nearest-locus CCT.

    McCamy is what papers and the issue ask for and is exact to a few kelvin from 2000 K up,
    but its cubic is not monotone (local maximum at n = -1.28, ~1620 K): below that it turns
    back up, so a deep-red flame would read hotter than an orange
    one and a "raise flame temperature" rule would never fire. There the nearest-locus
    definition takes over, capped at 2000 K so the two branches cannot overlap (near the
    locus they agree to ~1 % at the switch; off the locus they may differ by more).

    At the blue end McCamy's ``n`` has a pole at y = 0.1858: bluer than that it changes sign
    and a deep blue would read as a deep red (2000 K), bluish-white just above it as millions
    of kelvin. Colours past 25000 K (the locus table's end) read 25000 K (method
    ``blue-limit``); colours below the pole (deep blues, violets, magentas) take the
    nearest-locus CCT, which for blues is that same 25000 K end and for magentas is flagged
    by a large |Duv|.
    """
    xy = np.asarray(xy, dtype=np.float64)
    denom = MCCAMY_POLE_Y - float(xy[..., 1])
    if denom >= 0:  # at or below the pole: McCamy's n flips sign here
        return float(locus_cct(xy)), "planckian-locus"
    n = (float(xy[..., 0]) - 0.3320) / denom
    value = float(mccamy_cct(xy))
    if value > LOCUS_MAX_K and n > 0:
        return LOCUS_MAX_K, "blue-limit"
    # the cubic rises monotonically only for n > -1.28 (its local maximum); deep reds land beyond it
    if n > -1.2 and value >= MCCAMY_MIN_K:
        return value, "mccamy"
    # capped at the switch so the two branches never overlap: the reading stays monotone
    return min(float(locus_cct(xy)), MCCAMY_MIN_K), "planckian-locus"


def mean_cct(rgb: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, tuple[float, float], str]:
    """CCT of the *average light* of a region: mean linear RGB over the mask -> xy -> :func:`cct`.

    Averaging in linear light (not per-pixel CCTs) is what a light meter would see, so a few
    dark pixels cannot drag the reading about, and bright emissive pixels dominate as they should.
    Returns (kelvin, xy, method).
    """
    lin = srgb_to_linear(rgb)
    sel = lin.reshape(-1, 3) if mask is None else lin[np.asarray(mask, dtype=bool)]
    if sel.size == 0:
        return float("nan"), (float("nan"), float("nan")), "none"
    xy = xy_chromaticity(sel.mean(axis=0))
    kelvin, method = cct(xy)
    return kelvin, (float(xy[0]), float(xy[1])), method


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
