"""NIQE (Mittal, Soundararajan, Bovik, IEEE SPL 2013), as in the authors' MATLAB ``computequality.m``.

The image (gray, 0-255) is cropped to a multiple of 96, split into 96x96 patches at scale 1 and
48x48 at scale 1/2 (MATLAB imresize); each patch gives 18 NSS features per scale (AGGD of MSCN
coefficients and of their 4 neighbour products, with circular shifts inside the patch). The
score is the Mahalanobis-like distance between the multivariate Gaussian fitted to the
patches and the pristine model: ``sqrt(d' pinv((cov_p + cov_d) / 2) d)``. Lower is better.

The pristine model (``mu_pris_param``, ``cov_pris_param``) is the published LIVE
``modelparameters.mat``, bundled as ``data/niqe_pris_params.npz`` from BasicSR (Apache-2.0).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.special import gamma as gamma_fn

from gencritic.metrics._iqa import nss

PATCH = 96
BUNDLED = "niqe_pris_params.npz"


@dataclass(frozen=True)
class NiqeModel:
    mu: np.ndarray  # (36,)
    cov: np.ndarray  # (36, 36)
    source: str


def load_niqe_model(path: str | Path | None = None) -> NiqeModel:
    """The bundled pristine model, or another npz/mat with mu_pris_param / cov_pris_param."""
    if path is None:
        ref = resources.files("gencritic.metrics._iqa").joinpath("data", BUNDLED)
        with resources.as_file(ref) as p:
            data = dict(np.load(p))
        source = f"bundled:{BUNDLED}"
    else:
        p = Path(path)
        if p.suffix == ".mat":
            from scipy.io import loadmat

            data = loadmat(p)
        else:
            data = dict(np.load(p))
        source = str(p)
    mu = np.asarray(data["mu_pris_param"], dtype=np.float64).reshape(-1)
    cov = np.asarray(data["cov_pris_param"], dtype=np.float64)
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise ValueError(f"NIQE model {source}: expected mu (36,) and cov (36, 36), got {mu.shape} and {cov.shape}")
    return NiqeModel(mu, cov, source)


def _blocks(img: np.ndarray, size: int) -> np.ndarray:
    """(H, W) -> (nb, size, size) non-overlapping blocks in MATLAB blkproc (column-major) order."""
    h, w = img.shape[0] // size, img.shape[1] // size
    b = img[:h * size, :w * size].reshape(h, size, w, size).transpose(2, 0, 1, 3)
    return b.reshape(h * w, size, size)


def _aggd_betas(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MATLAB NIQE ``estimateaggdparam``: shape and the left/right scale parameters (beta)."""
    alpha, left, right = nss.aggd_fit(x)
    k = np.sqrt(gamma_fn(1.0 / alpha) / gamma_fn(3.0 / alpha))
    return alpha, left * k, right * k


def patch_features(structdis: np.ndarray, size: int) -> np.ndarray:
    """18 features per block of an MSCN map: (nb, 18)."""
    blocks = _blocks(structdis, size)
    n = len(blocks)
    alpha, bl, br = _aggd_betas(blocks.reshape(n, -1))
    feats = [alpha, (bl + br) / 2.0]
    for prod in nss.pair_products(blocks, axes=(1, 2)):
        a, lf, rt = _aggd_betas(prod.reshape(n, -1))
        feats += [a, (rt - lf) * (gamma_fn(2.0 / a) / gamma_fn(1.0 / a)), lf, rt]
    return np.stack(feats, axis=1)


def niqe_features(gray: np.ndarray) -> np.ndarray:
    """(patches, 36) NSS features of a gray 0-255 image (two scales)."""
    if min(gray.shape) < PATCH:
        raise ValueError(f"NIQE needs images of at least {PATCH}x{PATCH} pixels, got {gray.shape[1]}x{gray.shape[0]}")
    h, w = (gray.shape[0] // PATCH) * PATCH, (gray.shape[1] // PATCH) * PATCH
    img = gray[:h, :w].astype(np.float64)
    window = nss.gaussian_window()
    per_scale = []
    for scale in (1, 2):
        structdis, _ = nss.mscn(img, window, mode="nearest")
        per_scale.append(patch_features(structdis, PATCH // scale))
        img = nss.imresize(img, 0.5)
    return np.concatenate(per_scale, axis=1)


def niqe_distance(features: np.ndarray, model: NiqeModel) -> float:
    """Distance of the patches' Gaussian from the pristine one.

    As MATLAB: the mean ignores NaNs per feature (``nanmean``), the covariance uses only
    patches without NaN (``nancov``); NaNs come from patches with no negative or no positive
    coefficient (flat areas).
    """
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) == 0:
        raise ValueError("NIQE: every patch gave undefined features (flat image?)")
    mu = np.nanmean(features, axis=0)
    cov = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros((36, 36))
    d = model.mu - mu
    return float(np.sqrt(d @ np.linalg.pinv((model.cov + cov) / 2.0) @ d))


def niqe(rgb: np.ndarray, model: NiqeModel) -> float:
    """NIQE of an (H, W, 3) uint8 image."""
    return niqe_distance(niqe_features(nss.rgb_to_gray(rgb)), model)
