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
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

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


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5, data_range: float = 1.0) -> float:
    """Gaussian-window SSIM of two 2-D images (see module docstring for the conventions)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, sigma=sigma, truncate=3.5, mode="reflect")

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    pad = (2 * int(3.5 * sigma + 0.5) + 1 - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean()) if min(s.shape) > 2 * pad else float(s.mean())


def consecutive_ssim(luma: np.ndarray) -> np.ndarray:
    """SSIM between frames t and t+1, length T-1."""
    return np.array([ssim(luma[t], luma[t + 1]) for t in range(len(luma) - 1)])


def warping_errors(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(warped, unwarped) mean absolute luma error for each consecutive pair (length T-1)."""
    import cv2

    t_count, h, w = luma.shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    u8 = np.clip(luma * 255.0 + 0.5, 0, 255).astype(np.uint8)
    warped_err, plain_err = [], []
    for t in range(t_count - 1):
        flow = cv2.calcOpticalFlowFarneback(u8[t], u8[t + 1], None, 0.5, 3, 15, 3, 5, 1.2, 0)  # type: ignore[call-overload]
        map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
        nxt = luma[t + 1].astype(np.float32)
        warped = cv2.remap(nxt, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        valid = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        diff = np.abs(warped.astype(np.float64) - luma[t])
        warped_err.append(float(diff[valid].mean()) if valid.any() else float("nan"))
        plain_err.append(float(np.abs(luma[t + 1] - luma[t]).mean()))
    return np.array(warped_err), np.array(plain_err)


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


def analyse_sequence(frames: np.ndarray, fps: float | None = None, extra_curves: dict[str, np.ndarray] | None = None,
                     flow: bool = True, lpips_net: Any = None) -> dict[str, Any]:
    """All temporal measures of a (T, H, W, 3) sequence: summary numbers and per-frame curves.

    ``extra_curves`` (e.g. foreground coverage per frame) are profiled like brightness.
    ``flow=False`` (or OpenCV missing) leaves the warping error out, with the reason.
    """
    luma = luma_stack(frames)
    n = luma.shape[0]
    mean = luma.mean(axis=(1, 2))
    curves: dict[str, np.ndarray] = {"brightness": mean}
    summary: dict[str, Any] = {"frames": n, "fps": fps}
    unavailable: dict[str, str] = {}
    flick = flicker_curve(mean)
    curves["flicker"] = np.concatenate([[np.nan], flick, [np.nan]]) if flick.size else np.full(n, np.nan)
    summary["flicker_index"] = flicker_index(mean)
    if n >= 2:
        s = consecutive_ssim(luma)
        curves["ssim_to_next"] = np.concatenate([s, [np.nan]])
        summary["temporal_ssim"] = float(s.mean())
        summary["temporal_ssim_min"] = float(s.min())
        if flow:
            try:
                warped, plain = warping_errors(luma)
            except ImportError:
                unavailable["warping_error"] = "needs OpenCV: pip install 'gencritic[metrics]'"
            else:
                curves["warp_error"] = np.concatenate([warped, [np.nan]])
                curves["unwarped_error"] = np.concatenate([plain, [np.nan]])
                summary["warping_error"] = float(np.nanmean(warped))
                summary["unwarped_error"] = float(plain.mean())
        else:
            unavailable["warping_error"] = "optical flow disabled"
        if lpips_net is not None:
            lp = consecutive_lpips(frames, lpips_net)
            curves["lpips_to_next"] = np.concatenate([lp, [np.nan]])
            summary["temporal_lpips"] = float(lp.mean())
            summary["temporal_lpips_max"] = float(lp.max())
    else:
        unavailable["temporal_ssim"] = unavailable["warping_error"] = "needs at least two frames"
    for name, curve in {"brightness": mean, **(extra_curves or {})}.items():
        if name != "brightness":
            curves[name] = np.asarray(curve, dtype=np.float64)
        summary[f"{name}_profile"] = curve_profile(curve, fps)
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

    def setup(self, ctx: Any) -> None:  # no model
        return None

    def sequence_value(self, luma: np.ndarray) -> float:
        raise NotImplementedError

    def compute(self, batch: Any) -> MetricResult:
        n = len(batch.views)
        values = np.full(n, np.nan)
        errors: list[str | None] = [None] * n
        groups: dict[str, list[int]] = {}
        for i, view in enumerate(batch.views):
            groups.setdefault(view.item.item_id, []).append(i)
        for idx in groups.values():
            idx = sorted(idx, key=lambda i: batch.views[i].index)
            if len(idx) < 3:
                for i in idx:
                    errors[i] = "needs a frame sequence of at least 3 frames (a folder of frames)"
                continue
            frames = [np.asarray(batch.views[i].image, dtype=np.uint8) for i in idx]
            if len({f.shape for f in frames}) > 1:
                for i in idx:
                    errors[i] = "frames differ in size"
                continue
            try:
                value = self.sequence_value(luma_stack(np.stack(frames)))
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
