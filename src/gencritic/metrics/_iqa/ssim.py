"""SSIM, MS-SSIM and PSNR on batched images in [0, 1], with optional soft masks.

Settings (Wang et al. 2004, and what scikit-image / torchmetrics use for "Gaussian SSIM"):
11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, data range 1.0, population (not sample)
covariance, statistics computed only where the window fits entirely inside the image
("valid" region, equal to scikit-image's cropped result), each RGB channel scored separately
and averaged. MS-SSIM (Wang et al. 2003) uses 5 scales with weights
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2 average pooling between scales, and clamps each
per-scale term at 0 before exponentiation (torchmetrics' default ``normalize="relu"``), which keeps
the product real. A mask (N, 1, H, W) in [0, 1] weights the SSIM map / squared error, so only the
object is compared; masks are cropped to the valid region the same way as the map.

Inputs are (N, C, H, W) torch tensors. On CPU the maths runs in NumPy/SciPy float64 (separable
1-D correlations), which on this build is 5-10x faster than torch's float64 CPU kernels; on a GPU
it runs in torch. The formulas below are written once with operators both libraries share.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

WIN_SIZE = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03
MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

Array = Any  # np.ndarray on CPU, torch.Tensor on an accelerator


def gaussian_window(size: int = WIN_SIZE, sigma: float = SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian taps (the 2-D window is their outer product)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2 * sigma**2))
    return np.asarray(g / g.sum())


def _filter_valid(x: Array) -> Array:
    """Separable 'valid' Gaussian filtering of (N, C, H, W), channel by channel."""
    g = gaussian_window()
    r = (WIN_SIZE - 1) // 2
    if isinstance(x, np.ndarray):
        from scipy.ndimage import correlate1d

        out = correlate1d(correlate1d(x, g, axis=-2, mode="nearest"), g, axis=-1, mode="nearest")
        return out[..., r:out.shape[-2] - r, r:out.shape[-1] - r]  # border mode irrelevant: cropped
    c = x.shape[1]
    t = torch.as_tensor(g, dtype=x.dtype, device=x.device)
    return F.conv2d(F.conv2d(x, t.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c),
                    t.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)


def _sum(v: Array, axes: tuple[int, ...]) -> Array:
    return v.sum(axis=axes) if isinstance(v, np.ndarray) else v.sum(dim=axes)


def _pool2(v: Array) -> Array:
    """2x2 average pooling, dropping an odd last row/column (as torch's avg_pool2d)."""
    if not isinstance(v, np.ndarray):
        return F.avg_pool2d(v, 2)
    h, w = v.shape[-2] // 2, v.shape[-1] // 2
    return v[..., :2 * h, :2 * w].reshape(*v.shape[:-2], h, 2, w, 2).mean(axis=(-3, -1))


def _to_backend(*ts: torch.Tensor | None) -> list[Array]:
    # contiguous: images arrive as HWC arrays permuted to CHW, and the separable filters run along
    # rows and columns ~1.25x faster on a C-ordered copy (512² RGB: 145 -> 116 ms per SSIM, same values)
    return [None if t is None else (np.ascontiguousarray(t.detach().double().numpy()) if t.device.type == "cpu"
                                    else t) for t in ts]


def _to_tensor(v: Array) -> torch.Tensor:
    return torch.from_numpy(np.asarray(v, dtype=np.float64)) if isinstance(v, np.ndarray) else v


def ssim_maps(x: Array, y: Array, data_range: float = 1.0) -> tuple[Array, Array]:
    """Per-pixel SSIM and contrast-structure maps over the valid region, (N, C, H-10, W-10)."""
    if x.shape != y.shape:
        raise ValueError(f"SSIM needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) < WIN_SIZE:
        raise ValueError(f"SSIM needs images of at least {WIN_SIZE}x{WIN_SIZE} pixels, got {tuple(x.shape[-2:])}")
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x), _filter_valid(y)
    sxx = _filter_valid(x * x) - mu_x**2
    syy = _filter_valid(y * y) - mu_y**2
    sxy = _filter_valid(x * y) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return lum * cs, cs


def _weighted_mean(values: Array, mask: Array | None) -> Array:
    """Mean over (C, H, W) per batch element, weighted by a (N, 1, H, W) mask when given."""
    if mask is None:
        return values.mean(axis=(1, 2, 3)) if isinstance(values, np.ndarray) else values.mean(dim=(1, 2, 3))
    dh = (mask.shape[-2] - values.shape[-2]) // 2
    dw = (mask.shape[-1] - values.shape[-1]) // 2
    m = mask[..., dh:dh + values.shape[-2], dw:dw + values.shape[-1]]
    w = m + 0 * values  # broadcast to (N, C, h, w)
    denom = _sum(w, (1, 2, 3))
    return _sum(values * w, (1, 2, 3)) / (np.maximum(denom, 1e-12) if isinstance(denom, np.ndarray)
                                         else denom.clamp_min(1e-12))


def ssim(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image of (N, C, H, W) batches; ``mask`` (N, 1, H, W) weights the map."""
    a, b, m = _to_backend(x, y, mask)
    smap, _ = ssim_maps(a, b, data_range)
    return _to_tensor(_weighted_mean(smap, m))


def ms_ssim(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None,
            data_range: float = 1.0, weights: tuple[float, ...] = MS_WEIGHTS) -> torch.Tensor:
    """Multi-scale SSIM per image; the mask is average-pooled along with the images."""
    levels = len(weights)
    need = WIN_SIZE * 2 ** (levels - 1)  # 2x2 pooling floors: the last scale must still hold one window
    if min(x.shape[-2:]) < need:
        raise ValueError(f"{levels}-scale MS-SSIM needs images of at least {need}x{need} pixels, "
                         f"got {tuple(x.shape[-2:])} (use ssim for small images)")
    a, b, m = _to_backend(x, y, mask)
    terms = []
    for level in range(levels):
        smap, cs = ssim_maps(a, b, data_range)
        last = level == levels - 1
        terms.append(_to_tensor(_weighted_mean(smap if last else cs, m)))
        if not last:
            a, b = _pool2(a), _pool2(b)
            m = None if m is None else _pool2(m)
    stacked = torch.stack(terms, dim=-1).clamp_min(0.0)
    w = torch.tensor(weights, dtype=stacked.dtype, device=stacked.device)
    return torch.prod(stacked**w, dim=-1)


def psnr(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None, data_range: float = 1.0) -> torch.Tensor:
    """10*log10(range^2 / MSE) per image; identical images give +inf (as torchmetrics/scikit-image)."""
    err = (x.double() - y.double()) ** 2
    if mask is None:
        mse = err.mean(dim=(1, 2, 3))
    else:
        wts = mask.double().expand_as(err)
        mse = (err * wts).sum(dim=(1, 2, 3)) / wts.sum(dim=(1, 2, 3)).clamp_min(1e-12)
    return 10.0 * torch.log10(torch.as_tensor(data_range**2, dtype=err.dtype) / mse)


__all__ = ["MS_WEIGHTS", "gaussian_window", "ms_ssim", "psnr", "ssim", "ssim_maps"]
