"""Masks that the analysers measure on: foreground, emissive (fire) and grey (smoke).

Rules, chosen to be explainable rather than clever (thresholds come from the profile's
``segmentation`` block; defaults in :data:`DEFAULT_SEGMENTATION`):

* **foreground**: the alpha channel (alpha > 0.5) when the file had one; otherwise pixels
  whose colour differs from the background by more than ``bg_threshold`` (max channel
  difference), the background being the median colour of the 2 % image border;
* **emissive**: foreground pixels that are bright *and* saturated (V >= ``emissive_v``,
  S >= ``emissive_s``) or near-white hot (luma >= ``hot_luma``): what a flame looks like;
* **smoke**: foreground pixels that are not emissive and nearly grey (S < ``smoke_s``).

The fire/smoke split is then ``smoke / (smoke + emissive)`` in pixel area.

For a frame sequence, a region is the union of its per-frame masks (:func:`sequence_regions`):
one fixed set of pixels, so a mean over it changes only when those pixels change, not when
the mask flickers with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gencritic.diagnose.color import luma, rgb_to_hsv

DEFAULT_SEGMENTATION: dict[str, float] = {
    "bg_threshold": 0.10,
    "emissive_v": 0.55,
    "emissive_s": 0.35,
    "hot_luma": 0.92,
    "smoke_s": 0.25,
}


@dataclass(frozen=True)
class Masks:
    foreground: np.ndarray  # bool HxW
    emissive: np.ndarray
    smoke: np.ndarray
    background_rgb: tuple[float, float, float]
    source: str  # "alpha" or "background-difference"


def border_colour(rgb: np.ndarray, frac: float = 0.02) -> np.ndarray:
    """Median colour of the image border (at least one pixel wide)."""
    h, w = rgb.shape[:2]
    b = max(1, round(min(h, w) * frac))
    ring = np.concatenate([rgb[:b].reshape(-1, 3), rgb[-b:].reshape(-1, 3),
                           rgb[:, :b].reshape(-1, 3), rgb[:, -b:].reshape(-1, 3)])
    return np.median(ring, axis=0)


def foreground_mask(rgb: np.ndarray, alpha: np.ndarray | None, bg_threshold: float) -> tuple[np.ndarray, np.ndarray, str]:
    """Foreground from alpha, else from the difference to the border colour (opened once to drop noise)."""
    bg = border_colour(rgb)
    if alpha is not None:
        return np.asarray(alpha) > 0.5, bg, "alpha"
    diff = np.abs(rgb - bg).max(axis=-1) > bg_threshold
    from scipy import ndimage  # here: listing profiles imports this module

    return ndimage.binary_opening(diff, structure=np.ones((3, 3), bool)), bg, "background-difference"


def segment(rgb: np.ndarray, alpha: np.ndarray | None = None, settings: dict[str, Any] | None = None) -> Masks:
    """Compute all masks for a float RGB image in [0, 1]."""
    cfg = {**DEFAULT_SEGMENTATION, **(settings or {})}
    fg, bg, source = foreground_mask(rgb, alpha, float(cfg["bg_threshold"]))
    _, s, v = rgb_to_hsv(rgb)
    y = luma(rgb)
    emissive = fg & (((v >= cfg["emissive_v"]) & (s >= cfg["emissive_s"])) | (y >= cfg["hot_luma"]))
    smoke = fg & ~emissive & (s < cfg["smoke_s"])
    return Masks(fg, emissive, smoke, (float(bg[0]), float(bg[1]), float(bg[2])), source)


def coverage_curve(frames: np.ndarray, alphas: np.ndarray | None, settings: dict[str, Any] | None = None) -> np.ndarray:
    """Foreground fraction of every frame of a (T, H, W, 3) uint8 sequence: the effect's "size" over time."""
    cfg = {**DEFAULT_SEGMENTATION, **(settings or {})}
    out = np.empty(len(frames))
    for i, frame in enumerate(frames):
        fg, _, _ = foreground_mask(np.asarray(frame, dtype=np.float64) / 255.0,
                                   None if alphas is None else alphas[i], float(cfg["bg_threshold"]))
        out[i] = fg.mean()
    return out


def sequence_regions(frames: np.ndarray, alphas: np.ndarray | None, settings: dict[str, Any] | None,
                     regions: tuple[str, ...] | list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(coverage curve, {region: union over frames of its mask}) of a (T, H, W, 3) uint8 sequence.

    The union is the set of pixels the effect ever occupies: temporal measures averaged over it
    see a small or dim emitter's own change instead of that change diluted by the whole frame.
    ``regions`` are names among foreground / emissive / smoke (HSV is only computed when a
    region other than the foreground is asked for)."""
    cfg = {**DEFAULT_SEGMENTATION, **(settings or {})}
    unknown = sorted(set(regions) - {"foreground", "emissive", "smoke"})
    if unknown:
        raise ValueError(f"unknown sequence region(s) {', '.join(unknown)}; use foreground, emissive or smoke")
    full = any(r != "foreground" for r in regions)
    h, w = np.asarray(frames).shape[1:3]
    unions = {r: np.zeros((h, w), dtype=bool) for r in regions}
    coverage = np.empty(len(frames))
    for i, frame in enumerate(frames):
        rgb = np.asarray(frame, dtype=np.float64) / 255.0
        alpha = None if alphas is None else alphas[i]
        if full:
            masks = segment(rgb, alpha, cfg)
            fg = masks.foreground
            for r in regions:
                unions[r] |= np.asarray(getattr(masks, r))
        else:
            fg, _, _ = foreground_mask(rgb, alpha, float(cfg["bg_threshold"]))
            if "foreground" in unions:
                unions["foreground"] |= fg
        coverage[i] = fg.mean()
    return coverage, unions
