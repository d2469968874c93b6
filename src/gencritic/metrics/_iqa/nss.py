"""Natural-scene-statistics building blocks shared by NIQE and BRISQUE (Mittal et al.).

Everything follows the authors' MATLAB releases, because published NIQE/BRISQUE numbers come
from them: MATLAB ``rgb2gray`` on 8-bit input (rounded), 7x7 Gaussian window with sigma 7/6,
MSCN coefficients ``(I - mu) / (sigma + 1)`` on the 0-255 scale, moment-matching (A)GGD fits by
lookup over the shape grid 0.2:0.001:10, and MATLAB ``imresize(I, 0.5)`` (bicubic, a = -0.5,
antialiased, symmetric edges) between scales. All functions are vectorised over pixels and
blocks (no per-pixel Python loops).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gamma as gamma_fn

RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)  # MATLAB rgb2gray
SHAPE_GRID = np.arange(0.2, 10.0005, 0.001)  # MATLAB 0.2:0.001:10 (9801 values)
# AGGD: r(a) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)); GGD: its reciprocal.
_R_AGGD = gamma_fn(2.0 / SHAPE_GRID) ** 2 / (gamma_fn(1.0 / SHAPE_GRID) * gamma_fn(3.0 / SHAPE_GRID))
_R_GGD = 1.0 / _R_AGGD
assert np.all(np.diff(_R_AGGD) > 0)  # monotone: a nearest-value lookup is a binary search


def nearest_on_grid(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the entry of the increasing ``table`` nearest to each value (first on ties),
    i.e. MATLAB's ``[~, i] = min((table - v).^2)`` without materialising a (values x 9801) matrix."""
    hi = np.clip(np.searchsorted(table, values), 1, len(table) - 1)
    lo = hi - 1
    pick_hi = np.abs(table[hi] - values) < np.abs(table[lo] - values)
    idx = np.where(pick_hi, hi, lo)
    return np.where(np.isnan(values), 0, idx)
SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))  # MATLAB circshift offsets: horizontal, vertical, two diagonals


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) float64 on 0..255, rounded like MATLAB's uint8 rgb2gray."""
    arr = rgb.astype(np.float64)
    gray = arr[..., 0] * RGB2GRAY[0] + arr[..., 1] * RGB2GRAY[1] + arr[..., 2] * RGB2GRAY[2]
    return np.floor(gray + 0.5)


def gaussian_window(size: int = 7, sigma: float = 7.0 / 6.0) -> np.ndarray:
    """MATLAB fspecial('gaussian', size, sigma), normalised to sum 1."""
    r = (size - 1) / 2.0
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    w = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    return np.asarray(w / w.sum(), dtype=np.float64)


def mscn(img: np.ndarray, window: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted contrast-normalised coefficients and the local std.

    ``mode="nearest"`` is MATLAB imfilter 'replicate' (NIQE); ``mode="constant"`` is filter2 'same'
    with zero padding (BRISQUE).

    Mathematically ``(I - mu) / (sigma + 1)`` with ``mu = sum w I``, ``sigma^2 = sum w I^2 - mu^2``.
    Computed that way a flat window leaves round-off residue (|x| ~ 1e-14) instead of 0, with a
    sign that depends on the grey level and the summation order; the AGGD fits count zeros on
    neither side but residue on one, so it decided the left/right statistics of flat areas (a
    third of TID2013's I19: NIQE 0.49 from MATLAB's run, which has zeros there). Here the moments
    are taken about the centre pixel, ``mu - I = sum w (I_q - I)`` and ``sigma^2 = sum w (I_q - I)^2
    - (mu - I)^2``, and the differences of taps that share a weight (the window's symmetries) are
    added before being weighted. In a flat window every difference is an exact 0, so the
    coefficient and the std are exact zeros for every grey level; so is a window whose equal-weight
    differences cancel (a linear ramp; any integer image, where those sums are exact). Elsewhere
    this equals the textbook formula to float rounding.
    """
    n = window.shape[0]
    if window.shape != (n, n) or n % 2 == 0:
        raise ValueError(f"mscn needs an odd square window, got {window.shape}")
    r = n // 2
    h, w = img.shape
    padded = np.pad(img, r, mode="edge" if mode == "nearest" else "constant")
    dev = np.zeros_like(img)  # sum w (I_q - I_p) = mu - I_p
    sq = np.zeros_like(img)  # sum w (I_q - I_p)^2
    diff_sum, sq_sum, d = np.empty_like(img), np.empty_like(img), np.empty_like(img)
    for weight in np.unique(window):
        taps = [(i, j) for i, j in zip(*np.nonzero(window == weight), strict=True) if (i, j) != (r, r)]
        if not taps:  # the centre alone: its difference is 0
            continue
        diff_sum.fill(0.0)
        sq_sum.fill(0.0)
        for i, j in taps:
            np.subtract(padded[i:i + h, j:j + w], img, out=d)
            diff_sum += d
            sq_sum += np.multiply(d, d, out=d)
        dev += np.multiply(diff_sum, weight, out=diff_sum)
        sq += np.multiply(sq_sum, weight, out=sq_sum)
    sigma = np.sqrt(np.abs(sq - dev * dev))
    return -dev / (sigma + 1.0), sigma


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


def imresize_matrix(in_len: int, scale: float) -> np.ndarray:
    """(out, in) matrix of MATLAB imresize's bicubic weights along one axis (antialiased if shrinking)."""
    out_len = math.ceil(in_len * scale)
    width = 4.0 / scale if scale < 1 else 4.0
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based source indices
    dist = u[:, None] - idx
    w = scale * _cubic(scale * dist) if scale < 1 else _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    src = mirror[((idx - 1) % (2 * in_len)).astype(np.int64)]
    mat = np.zeros((out_len, in_len))
    np.add.at(mat, (np.repeat(np.arange(out_len), taps), src.ravel()), w.ravel())
    return mat


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(img, scale)`` (bicubic) for a 2-D float image, as two matrix products."""
    rows = imresize_matrix(img.shape[0], scale)
    cols = imresize_matrix(img.shape[1], scale)
    return np.asarray(rows @ img @ cols.T)


def aggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric GGD fit per row of ``x`` (blocks, samples): (shape alpha, left std, right std).

    Zeros belong to neither side, as in MATLAB's ``vec(vec<0)`` / ``vec(vec>0)``.
    """
    neg, pos = x < 0, x > 0
    left = np.sqrt((x * x * neg).sum(1) / neg.sum(1))
    right = np.sqrt((x * x * pos).sum(1) / pos.sum(1))
    gam_hat = left / right
    r_hat = np.abs(x).mean(1) ** 2 / (x * x).mean(1)
    r_norm = r_hat * (gam_hat**3 + 1) * (gam_hat + 1) / (gam_hat**2 + 1) ** 2
    alpha = SHAPE_GRID[nearest_on_grid(_R_AGGD, r_norm)]
    return alpha, left, right


def ggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric GGD fit per row: (shape, std), MATLAB ``estimateggdparam``."""
    sigma_sq = (x * x).mean(1)
    rho = sigma_sq / np.abs(x).mean(1) ** 2
    # _R_GGD decreases along the grid: search the reversed table and map the index back
    shape = SHAPE_GRID[len(SHAPE_GRID) - 1 - nearest_on_grid(_R_GGD[::-1], rho)]
    return shape, np.sqrt(sigma_sq)


def pair_products(block: np.ndarray, axes: tuple[int, int]) -> list[np.ndarray]:
    """Products of MSCN coefficients with their 4 circularly shifted neighbours (circshift)."""
    return [block * np.roll(block, shift, axis=axes) for shift in SHIFTS]
