"""Analysers: one interpretable number per property of an image, plus the details behind it.

Each analyser is a pure function ``(ImageContext, options) -> Measurement``. The context
holds the float image and its masks, computed once per image and shared. Which analysers
run, on which region and with which targets is the profile's business, not theirs.

A region with nothing in it (no flame pixels in a "fire" image) is not a zero: the
measurement says it is unmeasurable and why, and the diagnosis scores it as a failure.
One exception, for colour: a fire too dim or too dull to pass the emissive thresholds still
has a colour, and "too cool, raise the flame temperature" is the advice it needs. So the
colour analysers (temperature, hue) measure the foreground's non-smoke pixels when the
emissive region is empty, and say so in ``details`` (``fallback_from: emissive``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gencritic.diagnose import shape
from gencritic.diagnose.color import (
    CCT_RELIABLE_DUV,
    circular_hue_stats,
    duv,
    luma,
    mean_cct,
    rgb_to_hsv,
    srgb_to_linear,
    to_float,
)
from gencritic.diagnose.segmentation import Masks, segment

REGIONS = ("image", "foreground", "emissive", "smoke")


@dataclass
class ImageContext:
    """An image as analysers see it: float RGB in [0, 1], luma, HSV and masks (lazily shared)."""

    rgb: np.ndarray
    masks: Masks
    luma: np.ndarray
    hsv: tuple[np.ndarray, np.ndarray, np.ndarray]
    _shape: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, rgb: np.ndarray, alpha: np.ndarray | None = None,
              segmentation: dict[str, Any] | None = None) -> ImageContext:
        arr = to_float(rgb)
        return cls(arr, segment(arr, alpha, segmentation), luma(arr), rgb_to_hsv(arr))

    def region(self, name: str) -> np.ndarray:
        if name == "image":
            return np.ones(self.luma.shape, dtype=bool)
        if name in ("foreground", "emissive", "smoke"):
            return np.asarray(getattr(self.masks, name))
        raise ValueError(f"unknown region {name!r}; use one of {', '.join(REGIONS)}")

    def shape_of(self, region: str) -> dict[str, Any]:
        if region not in self._shape:
            self._shape[region] = shape.describe(self.region(region))
        return self._shape[region]


@dataclass
class Measurement:
    value: float | None
    unit: str
    details: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None  # why value is None


Analyser = Callable[[ImageContext, dict[str, Any]], Measurement]
ANALYSERS: dict[str, Analyser] = {}
DEFAULT_REGION: dict[str, str] = {}
DESCRIPTIONS: dict[str, str] = {}


def analyser(name: str, region: str, description: str) -> Callable[[Analyser], Analyser]:
    def deco(fn: Analyser) -> Analyser:
        ANALYSERS[name] = fn
        DEFAULT_REGION[name] = region
        DESCRIPTIONS[name] = description
        return fn
    return deco


def _region(ctx: ImageContext, opts: dict[str, Any], name: str) -> tuple[str, np.ndarray]:
    region = str(opts.get("region", DEFAULT_REGION[name]))
    return region, ctx.region(region)


def _empty(region: str, unit: str) -> Measurement:
    return Measurement(None, unit, {"region": region}, reason=f"the {region} region is empty in this image")


EMISSIVE_FALLBACK_NOTE = ("no emissive pixels (nothing bright and saturated enough to read as flame): measured "
                          "the colour of the foreground's non-smoke pixels instead")


def _colour_region(ctx: ImageContext, opts: dict[str, Any], name: str) -> tuple[str, np.ndarray, dict[str, Any]]:
    """(region, mask, details) for a colour analyser. An empty emissive region falls back to the
    foreground without its grey smoke pixels (their colour is the smoke's, not the fire's), and
    the details say so; the caller still reports an empty mask as unmeasurable."""
    region, m = _region(ctx, opts, name)
    if region != "emissive" or m.any():
        return region, m, {"region": region}
    glow = ctx.masks.foreground & ~ctx.masks.smoke
    return "foreground", glow, {"region": "foreground", "fallback_from": "emissive", "excluded": "smoke",
                                "note": EMISSIVE_FALLBACK_NOTE}


def _empty_colour(region: str, unit: str, details: dict[str, Any]) -> Measurement:
    if details.get("fallback_from") == "emissive":
        return Measurement(None, unit, details, reason="the emissive region is empty and the foreground has no "
                                                       "pixels besides grey smoke, so there is no colour to measure")
    return _empty(region, unit)


@analyser("brightness", "image", "mean Rec.709 luma of the region, 0 (black) to 1 (white)")
def brightness(ctx: ImageContext, opts: dict[str, Any]) -> Measurement:
    region, m = _region(ctx, opts, "brightness")
    if not m.any():
        return _empty(region, "luma")
    y = ctx.luma[m]
    return Measurement(float(y.mean()), "luma", {"region": region, "median": float(np.median(y)),
                                                  "p95": float(np.percentile(y, 95))})


@analyser("exposure", "image", "log2 of mean linear luminance over 18% grey, in EV (0 = mid-grey exposure)")
def exposure(ctx: ImageContext, opts: dict[str, Any]) -> Measurement:
    region, m = _region(ctx, opts, "exposure")
    if not m.any():
        return _empty(region, "EV")
    lin = srgb_to_linear(ctx.rgb[m]) @ np.array([0.2126, 0.7152, 0.0722])
    mean = float(lin.mean())
    return Measurement(float(np.log2(max(mean, 1e-6) / 0.18)), "EV", {"region": region, "mean_linear": mean})


@analyser("highlight_clipping", "image", "fraction of region pixels at or above luma 0.98 (blown highlights)")
def highlight_clipping(ctx: ImageContext, opts: dict[str, Any]) -> Measurement:
    region, m = _region(ctx, opts, "highlight_clipping")
    if not m.any():
        return _empty(region, "fraction")
    return Measurement(float((ctx.luma[m] >= 0.98).mean()), "fraction", {"region": region})


@analyser("shadow_clipping", "image", "fraction of region pixels at or below luma 0.02 (crushed shadows)")
def shadow_clipping(ctx: ImageContext, opts: dict[str, Any]) -> Measurement:
    region, m = _region(ctx, opts, "shadow_clipping")
    if not m.any():
        return _empty(region, "fraction")
    return Measurement(float((ctx.luma[m] <= 0.02).mean()), "fraction", {"region": region})


@analyser("contrast", "image", "RMS contrast: standard deviation of luma over the region")
def contrast(ctx: ImageContext, opts: dict[str, Any]) -> Measurement:
    region, m = _region(ctx, opts, "contrast")
    if not m.any():
        return _empty(region, "luma std")
    y = ctx.luma[m]
    return Measurement(float(y.std()), "luma std", {"region": region,
                                                     "p1_p99_range": float(np.percentile(y, 99) - np.percentile(y, 1))})


@analyser("color_temperature", "emissive", "correlated colour temperature (McCamy) of the region's mean light, kelvin; lower is warmer/redder")
def color_temperature(ctx: ImageContext, opts: dict[str, Any]) -> Measurement:
    region, m, details = _colour_region(ctx, opts, "color_temperature")
    if not m.any():
        return _empty_colour(region, "K", details)
    kelvin, xy, method = mean_cct(ctx.rgb, m)
    d = float(duv(np.array(xy)))
    return Measurement(kelvin, "K", {**details, "xy": [xy[0], xy[1]], "method": method, "duv": d,
                                     "near_locus": abs(d) <= CCT_RELIABLE_DUV})


@analyser("saturation", "foreground", "mean HSV saturation of the region, 0 (grey) to 1 (pure colour)")
def saturation(ctx: ImageContext, opts: dict[str, Any]) -> Measurement:
    region, m = _region(ctx, opts, "saturation")
    if not m.any():
        return _empty(region, "fraction")
    return Measurement(float(ctx.hsv[1][m].mean()), "fraction", {"region": region})


HUE_BINS = {"red": (340.0, 20.0), "orange": (20.0, 45.0), "yellow": (45.0, 70.0), "green": (70.0, 170.0),
            "blue": (170.0, 280.0), "magenta": (280.0, 340.0)}


@analyser("emissive_hue", "emissive", "circular mean hue of the region in degrees (0 red, 30 orange, 60 yellow)")
def emissive_hue(ctx: ImageContext, opts: dict[str, Any]) -> Measurement:
    region, m, details = _colour_region(ctx, opts, "emissive_hue")
    if not m.any():
        return _empty_colour(region, "deg", details)
    h, s, v = ctx.hsv[0][m], ctx.hsv[1][m], ctx.hsv[2][m]
    mean, spread = circular_hue_stats(h, weights=s * v + 1e-9)
    hist = {}
    for name, (lo, hi) in HUE_BINS.items():
        inside = (h >= lo) | (h < hi) if lo > hi else (h >= lo) & (h < hi)
        hist[name] = float(inside.mean())
    return Measurement(mean, "deg", {**details, "spread_deg": spread, "histogram": hist})


@analyser("coverage", "foreground", "fraction of the image the region covers (alpha or background difference)")
def coverage(ctx: ImageContext, opts: dict[str, Any]) -> Measurement:
    region, _ = _region(ctx, opts, "coverage")
    d = ctx.shape_of(region)
    return Measurement(d["coverage"], "fraction", {"region": region, "bbox": d["bbox"], "centring": d["centring"],
                                                   "mask_source": ctx.masks.source})


@analyser("centring", "foreground", "distance of the region's centroid from the image centre / half-diagonal (0 = centred)")
def centring(ctx: ImageContext, opts: dict[str, Any]) -> Measurement:
    region, m = _region(ctx, opts, "centring")
    if not m.any():
        return _empty(region, "fraction")
    return Measurement(ctx.shape_of(region)["centring"], "fraction", {"region": region})


@analyser("emissive_fraction", "image", "fraction of the image that is emissive (bright saturated or white-hot)")
def emissive_fraction(ctx: ImageContext, opts: dict[str, Any]) -> Measurement:
    return Measurement(float(ctx.masks.emissive.mean()), "fraction", {"region": "image"})


@analyser("smoke_ratio", "foreground", "smoke area / (smoke + fire) area: the fire/smoke split, 0 all fire, 1 all smoke")
def smoke_ratio(ctx: ImageContext, opts: dict[str, Any]) -> Measurement:
    fire, smoke = int(ctx.masks.emissive.sum()), int(ctx.masks.smoke.sum())
    details = {"fire_fraction": fire / ctx.luma.size, "smoke_fraction": smoke / ctx.luma.size}
    if fire + smoke == 0:
        return Measurement(None, "fraction", details, reason="neither fire nor smoke pixels were found")
    return Measurement(smoke / (fire + smoke), "fraction", details)


def _shape_measure(key: str, unit: str) -> Analyser:
    def fn(ctx: ImageContext, opts: dict[str, Any]) -> Measurement:
        region, m = _region(ctx, opts, key)
        if not m.any():
            return _empty(region, unit)
        d = ctx.shape_of(region)
        value = d[key]
        if value is None or not np.isfinite(value):
            return Measurement(None, unit, {"region": region}, reason=f"the {region} region is too small to measure {key}")
        return Measurement(float(value), unit, {"region": region, "bbox": d["bbox"]})
    return fn


analyser("aspect", "foreground", "silhouette bbox height / width (> 1 vertical plume, < 1 flat spread)")(
    _shape_measure("aspect", "ratio"))
analyser("solidity", "foreground", "silhouette area / convex hull area (1 compact, low wispy or broken up)")(
    _shape_measure("solidity", "fraction"))
analyser("mushroom_index", "foreground", "widest row in the top 40% / median width of the bottom half (> 1.5 mushroom cap)")(
    _shape_measure("mushroom_index", "ratio"))


def measure(ctx: ImageContext, name: str, options: dict[str, Any] | None = None) -> Measurement:
    """Run one analyser by name (names are checked when the profile loads)."""
    return ANALYSERS[name](ctx, options or {})
