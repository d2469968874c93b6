"""Temporal quality of a frame sequence: flicker, consecutive-frame SSIM, flow warping error,
and the brightness/size profile over time (does the effect peak and then dissipate?).

Pure numpy functions on a luma stack ``(T, H, W)`` in [0, 1] (OpenCV only for optical flow).
Definitions (also in docs/diagnostics.md):

* **flicker index** = ``100 * RMS(Δ²m) / 4`` where ``m_t`` is the mean luma of frame t and Δ² the
  second temporal difference: the high-frequency part of the frame-to-frame luminance change.
  A linear fade scores 0; ``m_t = c ± a`` alternating between frames scores ``100·a`` (percent
  of full-scale luma), which is what the number means. Global: local flicker under motion is
  not separable from the motion itself without flow, which the warping error covers.
* **temporal LPIPS** (optional, when LPIPS weights are available): LPIPS between frames t, t+1.
* **temporal SSIM**: SSIM (Wang et al. 2004; Gaussian window σ=1.5, K1=0.01, K2=0.03, data
  range 1, population covariances, 5-pixel border cropped as scikit-image does) between
  frames t and t+1.
* **warping error**: Farneback optical flow from t to t+1 (OpenCV), frame t+1 warped back
  onto t, mean absolute luma difference over pixels whose source lies inside the frame. The
  same difference without warping is reported beside it: warping error well below it means
  the motion is coherent.
* **profile** of a curve (brightness, coverage): peak, time to peak (fraction of the sequence
  and seconds when fps is known), dissipation ``(last - base) / (peak - base)`` with base the
  pre-peak minimum, and the exponential decay rate after the peak (log-linear least squares).
* **regional** versions of all of the above except LPIPS: the same definitions with every mean
  taken over a fixed pixel region (the union over frames of a mask, e.g. the effect's
  foreground) instead of the whole frame. Why: a small or dim emitter moves the whole-frame
  mean by a fraction of its own change, so a 60 % strobe of a small fire reads as ~1 % of
  full scale on the whole frame; over the region it occupies it reads as what it is.
* **VBench temporal flickering** (Huang et al., CVPR 2024): ``(255 - mean_t MAE(f_t, f_t+1)) / 255``
  on the 8-bit RGB frames at full resolution, every frame, higher is better (1 = static). A
  different quantity from the flicker index: it counts *all* frame-to-frame change (motion
  included; VBench applies it to static-scene prompts), on the whole frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

REC709 = np.array([0.2126, 0.7152, 0.0722])


def luma_stack(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 or float -> (T, H, W) float64 luma in [0, 1]."""
    arr = np.asarray(frames)
    scale = 255.0 if arr.dtype == np.uint8 else 1.0
    return (arr.astype(np.float64) / scale) @ REC709


def flicker_curve(mean_luma: np.ndarray) -> np.ndarray:
    """|Δ²m| / 4 × 100 for frames 1..T-2 (the per-frame contribution to the flicker index)."""
    m = np.asarray(mean_luma, dtype=np.float64)
    if m.size < 3:
        return np.zeros(0)
    return 100.0 * np.abs(np.diff(m, n=2)) / 4.0


def flicker_index(mean_luma: np.ndarray) -> float:
    """100 · RMS(Δ²m) / 4; NaN for fewer than 3 frames."""
    c = flicker_curve(mean_luma)
    return float(np.sqrt(np.mean(c**2))) if c.size else float("nan")


def ssim_map(a: np.ndarray, b: np.ndarray, sigma: float = 1.5, data_range: float = 1.0) -> np.ndarray:
    """Per-pixel Gaussian-window SSIM of two 2-D images (uncropped; see :func:`ssim`)."""
    from scipy import ndimage  # here, not at the top: the registry imports this module to list metrics

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, sigma=sigma, truncate=3.5, mode="reflect")

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def _ssim_inner(shape: tuple[int, ...], sigma: float = 1.5) -> np.ndarray:
    """The pixels SSIM is averaged over: all but the filter's half-width at each border
    (scikit-image's crop), or all of them when the image is too small to crop."""
    pad = (2 * int(3.5 * sigma + 0.5) + 1 - 1) // 2
    inner = np.zeros(shape, dtype=bool)
    if min(shape) > 2 * pad:
        inner[pad:-pad, pad:-pad] = True
    else:
        inner[:] = True
    return inner


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5, data_range: float = 1.0) -> float:
    """Gaussian-window SSIM of two 2-D images (see module docstring for the conventions)."""
    s = ssim_map(a, b, sigma, data_range)
    return float(s[_ssim_inner(s.shape, sigma)].mean())


def _region_mean(values: np.ndarray, inner: np.ndarray, mask: np.ndarray | None) -> float:
    """Mean of a per-pixel map over ``mask`` within ``inner``; over the mask alone when the two
    do not meet (a region lying wholly in the cropped border still gets a number)."""
    if mask is None:
        return float(values[inner].mean())
    sel = inner & mask
    return float(values[sel].mean()) if sel.any() else float(values[mask].mean())


def _masks(regions: Mapping[str, np.ndarray | None] | None) -> dict[str, np.ndarray | None]:
    return {"image": None} if regions is None else {k: None if m is None else np.asarray(m, bool)
                                                      for k, m in regions.items()}


def consecutive_ssim_by_region(luma: np.ndarray, regions: Mapping[str, np.ndarray | None] | None = None
                               ) -> dict[str, np.ndarray]:
    """SSIM between frames t and t+1 (length T-1), averaged over each region's pixels (None = whole
    frame). One SSIM map per pair serves every region."""
    masks = _masks(regions)
    out: dict[str, list[float]] = {k: [] for k in masks}
    inner = _ssim_inner(luma.shape[1:])
    for t in range(len(luma) - 1):
        s = ssim_map(luma[t], luma[t + 1])
        for name, mask in masks.items():
            out[name].append(_region_mean(s, inner, mask))
    return {k: np.array(v) for k, v in out.items()}


def consecutive_ssim(luma: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """SSIM between frames t and t+1, length T-1 (over ``mask``'s pixels when given)."""
    return consecutive_ssim_by_region(luma, {"r": mask})["r"]


def warping_errors_by_region(luma: np.ndarray, regions: Mapping[str, np.ndarray | None] | None = None
                             ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(warped, unwarped) mean absolute luma error per consecutive pair (length T-1), averaged over
    each region's pixels (None = whole frame). The optical flow is computed once per pair."""
    import cv2

    masks = _masks(regions)
    t_count, h, w = luma.shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    u8 = np.clip(luma * 255.0 + 0.5, 0, 255).astype(np.uint8)
    warped_err: dict[str, list[float]] = {k: [] for k in masks}
    plain_err: dict[str, list[float]] = {k: [] for k in masks}
    everywhere = np.ones((h, w), dtype=bool)
    for t in range(t_count - 1):
        flow = cv2.calcOpticalFlowFarneback(u8[t], u8[t + 1], None, 0.5, 3, 15, 3, 5, 1.2, 0)  # type: ignore[call-overload]
        map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
        nxt = luma[t + 1].astype(np.float32)
        warped = cv2.remap(nxt, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        valid = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        diff = np.abs(warped.astype(np.float64) - luma[t])
        plain = np.abs(luma[t + 1] - luma[t])
        for name, mask in masks.items():
            m = everywhere if mask is None else mask
            sel = valid & m
            warped_err[name].append(float(diff[sel].mean()) if sel.any() else float("nan"))
            plain_err[name].append(float(plain[m].mean()) if m.any() else float("nan"))
    return {k: (np.array(warped_err[k]), np.array(plain_err[k])) for k in masks}


def warping_errors(luma: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(warped, unwarped) mean absolute luma error for each consecutive pair (length T-1)."""
    return warping_errors_by_region(luma, {"r": mask})["r"]


def region_mean_luma(luma: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Mean luma of every frame of a (T, H, W) stack over a fixed region (whole frame when None)."""
    if mask is None:
        return np.asarray(luma.mean(axis=(1, 2)))
    m = np.asarray(mask, dtype=bool)
    return np.asarray(luma[:, m].mean(axis=1)) if m.any() else np.full(len(luma), np.nan)


def mean_abs_frame_difference(frames: np.ndarray) -> np.ndarray:
    """Mean |f_t+1 - f_t| over all pixels and channels of consecutive 8-bit frames (length T-1),
    in 0-255 units: VBench's ``calculate_mae``. Float frames are taken as [0, 1] and scaled by 255."""
    arr = np.asarray(frames)
    scale = 1.0 if arr.dtype == np.uint8 else 255.0

    def frame(t: int) -> np.ndarray:  # one frame at a time: a float copy of a long video would not fit
        return arr[t].astype(np.float64) * scale

    return np.array([float(np.abs(frame(t + 1) - frame(t)).mean()) for t in range(len(arr) - 1)])


def vbench_temporal_flickering(frames: np.ndarray) -> float:
    """VBench's temporal flickering score: ``(255 - mean_t MAE(f_t, f_t+1)) / 255``, 1 = static.

    Frames (T, H, W, C) as 8-bit values at their own resolution, every frame, all channels (VBench
    reads the video with OpenCV and neither resizes nor subsamples; channel order does not change
    a mean absolute difference). NaN for fewer than 2 frames."""
    mae = mean_abs_frame_difference(frames)
    return float((255.0 - mae.mean()) / 255.0) if mae.size else float("nan")


def consecutive_lpips(frames: np.ndarray, net: Any, batch: int = 8) -> np.ndarray:
    """LPIPS between frames t and t+1 (length T-1) with a loaded ``gencritic.models.lpips_nets`` net.

    Frames (T, H, W, 3) uint8 are mapped to [-1, 1] as LPIPS expects; the net is the caller's
    (loaded through the model pool), so this stays a pure function of frames and weights."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    device = next(net.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, x.shape[0] - 1, batch):
            stop = min(start + batch, x.shape[0] - 1)
            a, b = x[start:stop].to(device), x[start + 1:stop + 1].to(device)
            out.append(net(a, b).flatten().double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def curve_profile(curve: np.ndarray, fps: float | None = None) -> dict[str, Any]:
    """Peak, time to peak, dissipation and decay rate of a per-frame curve."""
    c = np.asarray(curve, dtype=np.float64)
    n = c.size
    if n == 0:
        return {}
    peak_idx = int(np.argmax(c))
    peak = float(c[peak_idx])
    base = float(c[: peak_idx + 1].min())
    span = peak - base
    dissipation = float((c[-1] - base) / span) if span > 0 else float("nan")
    tail = c[peak_idx:] - base
    t = np.arange(tail.size, dtype=np.float64)
    ok = tail > 1e-9 * max(span, 1e-12)
    decay = float("nan")
    if ok.sum() >= 3:
        slope = np.polyfit(t[ok], np.log(tail[ok]), 1)[0]
        decay = float(-slope)
    out: dict[str, Any] = {
        "peak": peak, "peak_frame": peak_idx, "time_to_peak": peak_idx / (n - 1) if n > 1 else 0.0,
        "dissipation": dissipation, "decay_rate_per_frame": decay,
    }
    if fps:
        out["time_to_peak_s"] = peak_idx / fps
        out["decay_rate_per_s"] = decay * fps if np.isfinite(decay) else float("nan")
    return out


def _pad_pairs(values: np.ndarray) -> np.ndarray:
    """A per-pair curve (length T-1) as a per-frame one: the pair (t, t+1) is reported at frame t."""
    return np.concatenate([values, [np.nan]])


def _region_measures(luma: np.ndarray, mask: np.ndarray | None, fps: float | None,
                     ssim_pairs: np.ndarray | None, warp_pairs: tuple[np.ndarray, np.ndarray] | None
                     ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(summary, per-frame curves) of one region from its precomputed pair measures."""
    n = len(luma)
    mean = region_mean_luma(luma, mask)
    flick = flicker_curve(mean)
    curves: dict[str, np.ndarray] = {
        "brightness": mean,
        "flicker": np.concatenate([[np.nan], flick, [np.nan]]) if flick.size else np.full(n, np.nan)}
    summary: dict[str, Any] = {"flicker_index": flicker_index(mean)}
    if ssim_pairs is not None:
        curves["ssim_to_next"] = _pad_pairs(ssim_pairs)
        summary["temporal_ssim"] = float(ssim_pairs.mean())
        summary["temporal_ssim_min"] = float(ssim_pairs.min())
    if warp_pairs is not None:
        warped, plain = warp_pairs
        curves["warp_error"] = _pad_pairs(warped)
        curves["unwarped_error"] = _pad_pairs(plain)
        summary["warping_error"] = float(np.nanmean(warped)) if np.isfinite(warped).any() else float("nan")
        summary["unwarped_error"] = float(plain.mean())
    summary["brightness_profile"] = curve_profile(mean, fps)
    return summary, curves


def analyse_sequence(frames: np.ndarray, fps: float | None = None, extra_curves: dict[str, np.ndarray] | None = None,
                     flow: bool = True, lpips_net: Any = None,
                     regions: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """All temporal measures of a (T, H, W, 3) sequence: summary numbers and per-frame curves.

    ``extra_curves`` (e.g. foreground coverage per frame) are profiled like brightness.
    ``flow=False`` (or OpenCV missing) leaves the warping error out, with the reason.
    ``regions`` maps a name to a fixed (H, W) bool mask; each gets the flicker index, SSIM,
    warping error and brightness profile over its pixels under ``summary["regions"][name]``
    (with ``fraction``, its share of the frame) and curves named ``{name}_brightness`` etc.
    An empty region gets ``reason`` instead of numbers. The top-level numbers are whole-frame.
    """
    luma = luma_stack(frames)
    n = luma.shape[0]
    masks: dict[str, np.ndarray | None] = {"image": None}
    masks.update({k: np.asarray(v, dtype=bool) for k, v in (regions or {}).items() if k != "image"})
    live = {k: m for k, m in masks.items() if m is None or m.any()}
    unavailable: dict[str, str] = {}
    ssims: dict[str, np.ndarray] = {}
    warps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if n >= 2:
        ssims = consecutive_ssim_by_region(luma, live)
        if flow:
            try:
                warps = warping_errors_by_region(luma, live)
            except ImportError:
                unavailable["warping_error"] = "needs OpenCV: pip install 'gencritic[metrics]'"
        else:
            unavailable["warping_error"] = "optical flow disabled"
    else:
        unavailable["temporal_ssim"] = unavailable["warping_error"] = "needs at least two frames"

    whole, curves = _region_measures(luma, None, fps, ssims.get("image"), warps.get("image"))
    summary: dict[str, Any] = {"frames": n, "fps": fps}
    summary.update({k: v for k, v in whole.items() if k != "brightness_profile"})
    by_region: dict[str, dict[str, Any]] = {}
    for name, mask in masks.items():
        if mask is None:  # the whole frame, done above
            continue
        if name not in live:
            by_region[name] = {"fraction": 0.0, "reason": f"the {name} region is empty in every frame"}
            continue
        part, part_curves = _region_measures(luma, mask, fps, ssims.get(name), warps.get(name))
        curves.update({f"{name}_{k}": v for k, v in part_curves.items()})
        by_region[name] = {"fraction": float(mask.mean()), **part}
    if n >= 2:
        summary["temporal_flickering"] = vbench_temporal_flickering(frames)
        if lpips_net is not None:
            lp = consecutive_lpips(frames, lpips_net)
            curves["lpips_to_next"] = np.concatenate([lp, [np.nan]])
            summary["temporal_lpips"] = float(lp.mean())
            summary["temporal_lpips_max"] = float(lp.max())
    summary["brightness_profile"] = whole["brightness_profile"]
    for name, curve in (extra_curves or {}).items():
        curves[name] = np.asarray(curve, dtype=np.float64)
        summary[f"{name}_profile"] = curve_profile(curve, fps)
    if regions:
        summary["regions"] = by_region
    return {"summary": summary, "curves": curves, "unavailable": unavailable}


# ---------------------------------------------------------------------------------------------
# Registry entries: `gencritic score FOLDER --metrics flicker,temporal_ssim,warping_error` scores
# every sub-folder of frames (an item of kind "views", its images in name order) as a sequence.
# Each view of the item carries the sequence's value, so the item's mean over views is that value.

from gencritic.metrics.base import Metric, MetricInfo, MetricResult  # noqa: E402
from gencritic.metrics.registry import register  # noqa: E402

_SEQ_REF = "gencritic temporal definitions (docs/diagnostics.md); SSIM: Wang et al., IEEE TIP 2004"


class _SequenceMetric(Metric):
    column: str = ""
    min_frames: int = 3

    def setup(self, ctx: Any) -> None:  # no model
        return None

    def sequence_value(self, luma: np.ndarray) -> float:
        raise NotImplementedError

    def frames_value(self, frames: np.ndarray) -> float:
        """The value from the (T, H, W, 3) uint8 frames; luma-based metrics go through luma."""
        return self.sequence_value(luma_stack(frames))

    def compute(self, batch: Any) -> MetricResult:
        n = len(batch.views)
        values = np.full(n, np.nan)
        errors: list[str | None] = [None] * n
        groups: dict[str, list[int]] = {}
        for i, view in enumerate(batch.views):
            groups.setdefault(view.item.item_id, []).append(i)
        for idx in groups.values():
            idx = sorted(idx, key=lambda i: batch.views[i].index)
            if len(idx) < self.min_frames:
                for i in idx:
                    errors[i] = f"needs a frame sequence of at least {self.min_frames} frames (a folder of frames)"
                continue
            frames = [np.asarray(batch.views[i].image, dtype=np.uint8) for i in idx]
            if len({f.shape for f in frames}) > 1:
                for i in idx:
                    errors[i] = "frames differ in size"
                continue
            try:
                value = self.frames_value(np.stack(frames))
            except ImportError as exc:
                for i in idx:
                    errors[i] = f"needs OpenCV: pip install 'gencritic[metrics]' ({exc})"
                continue
            values[idx] = value
        return MetricResult(values={self.column: values}, errors=errors)


@register
class FlickerMetric(_SequenceMetric):
    column = "flicker_index"
    info = MetricInfo(
        name="flicker", family="temporal", inputs=("frames",), columns=("flicker_index",), range=(0.0, 100.0),
        higher_is_better=False, default_model=None, needs_pixels=True,
        description="100·RMS(second temporal difference of mean frame luma)/4: alternate-frame brightness "
                    "oscillation in % of full scale (0 = smooth).",
        reference=_SEQ_REF,
    )

    def sequence_value(self, luma: np.ndarray) -> float:
        return flicker_index(luma.mean(axis=(1, 2)))


@register
class TemporalSsimMetric(_SequenceMetric):
    column = "temporal_ssim"
    info = MetricInfo(
        name="temporal_ssim", family="temporal", inputs=("frames",), columns=("temporal_ssim",), range=(-1.0, 1.0),
        higher_is_better=True, default_model=None, needs_pixels=True,
        description="Mean SSIM (Gaussian σ=1.5) between consecutive frames of a sequence.",
        reference=_SEQ_REF,
    )

    def sequence_value(self, luma: np.ndarray) -> float:
        return float(consecutive_ssim(luma).mean())


@register
class WarpingErrorMetric(_SequenceMetric):
    column = "warping_error"
    info = MetricInfo(
        name="warping_error", family="temporal", inputs=("frames",), columns=("warping_error",), range=(0.0, 1.0),
        higher_is_better=False, default_model=None, needs_pixels=True,
        description="Mean |luma| error after warping frame t+1 onto t with Farneback optical flow (OpenCV).",
        reference=_SEQ_REF,
    )

    def sequence_value(self, luma: np.ndarray) -> float:
        return float(np.nanmean(warping_errors(luma)[0]))


@register
class VBenchTemporalFlickeringMetric(_SequenceMetric):
    column = "temporal_flickering"
    min_frames = 2
    info = MetricInfo(
        name="temporal_flickering", family="temporal", inputs=("frames",), columns=("temporal_flickering",),
        range=(0.0, 1.0), higher_is_better=True, default_model=None, needs_pixels=True,
        description="VBench temporal flickering: (255 - mean absolute difference of consecutive 8-bit RGB "
                    "frames) / 255, whole frame, 1 = static. Counts motion too; for VBench comparisons.",
        reference="Huang et al., VBench, CVPR 2024 (Vchitect/VBench vbench/temporal_flickering.py)",
    )

    def frames_value(self, frames: np.ndarray) -> float:
        return vbench_temporal_flickering(frames)
