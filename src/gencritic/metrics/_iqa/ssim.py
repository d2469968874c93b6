"""SSIM, MS-SSIM and PSNR on batched float tensors in [0, 1], with optional soft masks.

Settings (Wang et al. 2004, and what scikit-image / torchmetrics use for "Gaussian SSIM"):
11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, data range 1.0, population (not sample)
covariance, statistics computed only where the window fits entirely inside the image
("valid" region, equal to scikit-image's cropped result), each RGB channel scored separately
and averaged. MS-SSIM (Wang et al. 2003) uses 5 scales with weights
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2 average pooling between scales, and clamps each
per-scale term at 0 before exponentiation (torchmetrics' default ``normalize="relu"``), which keeps
the product real. A mask (H, W) in [0, 1] weights the SSIM map / squared error, so only the
object is compared; masks are cropped to the valid region the same way as the map.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

WIN_SIZE = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03
MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def gaussian_window(size: int = WIN_SIZE, sigma: float = SIGMA, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian taps (the 2-D window is their outer product)."""
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of (N, C, H, W), channel by channel."""
    c = x.shape[1]
    kh = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    kw = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    return F.conv2d(F.conv2d(x, kh, groups=c), kw, groups=c)


def ssim_maps(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel SSIM and contrast-structure maps over the valid region, (N, C, H-10, W-10)."""
    if x.shape != y.shape:
        raise ValueError(f"SSIM needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) < WIN_SIZE:
        raise ValueError(f"SSIM needs images of at least {WIN_SIZE}x{WIN_SIZE} pixels, got {tuple(x.shape[-2:])}")
    g = gaussian_window(dtype=x.dtype).to(x.device)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    sxx = _filter_valid(x * x, g) - mu_x**2
    syy = _filter_valid(y * y, g) - mu_y**2
    sxy = _filter_valid(x * y, g) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return lum * cs, cs


def _crop_mask(mask: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Crop an (N, 1, H, W) mask to the centred valid region of size ``shape``."""
    dh = (mask.shape[-2] - shape[0]) // 2
    dw = (mask.shape[-1] - shape[1]) // 2
    return mask[..., dh:dh + shape[0], dw:dw + shape[1]]


def _weighted_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over (C, H, W) per batch element, weighted by a (N, 1, H, W) mask when given."""
    if mask is None:
        return values.mean(dim=(1, 2, 3))
    m = _crop_mask(mask, (values.shape[-2], values.shape[-1])).to(values.dtype)
    w = m.expand_as(values)
    return (values * w).sum(dim=(1, 2, 3)) / w.sum(dim=(1, 2, 3)).clamp_min(1e-12)


def ssim(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image of (N, C, H, W) batches; ``mask`` (N, 1, H, W) weights the map."""
    smap, _ = ssim_maps(x, y, data_range)
    return _weighted_mean(smap, mask)


def ms_ssim(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None,
            data_range: float = 1.0, weights: tuple[float, ...] = MS_WEIGHTS) -> torch.Tensor:
    """Multi-scale SSIM per image; the mask is average-pooled along with the images."""
    levels = len(weights)
    need = (WIN_SIZE - 1) * 2 ** (levels - 1) + 1
    if min(x.shape[-2:]) < need:
        raise ValueError(f"{levels}-scale MS-SSIM needs images of at least {need}x{need} pixels, "
                         f"got {tuple(x.shape[-2:])} (use ssim for small images)")
    w = torch.tensor(weights, dtype=x.dtype, device=x.device)
    terms = []
    for level in range(levels):
        smap, cs = ssim_maps(x, y, data_range)
        last = level == levels - 1
        terms.append(_weighted_mean(smap if last else cs, mask))
        if not last:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
            mask = None if mask is None else F.avg_pool2d(mask, 2)
    stacked = torch.stack(terms, dim=-1).clamp_min(0.0)
    return torch.prod(stacked**w, dim=-1)


def psnr(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None, data_range: float = 1.0) -> torch.Tensor:
    """10*log10(range^2 / MSE) per image; identical images give +inf (as torchmetrics/scikit-image)."""
    err = (x - y) ** 2
    if mask is None:
        mse = err.mean(dim=(1, 2, 3))
    else:
        wts = mask.to(err.dtype).expand_as(err)
        mse = (err * wts).sum(dim=(1, 2, 3)) / wts.sum(dim=(1, 2, 3)).clamp_min(1e-12)
    return 10.0 * torch.log10(torch.as_tensor(data_range**2, dtype=err.dtype) / mse)


__all__ = ["MS_WEIGHTS", "gaussian_window", "math", "ms_ssim", "psnr", "ssim", "ssim_maps"]
