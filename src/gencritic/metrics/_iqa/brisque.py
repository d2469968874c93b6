"""BRISQUE (Mittal, Moorthy, Bovik, IEEE TIP 2012), as in the authors' MATLAB ``brisquescore.m``.

Features (36): at two scales (the second by MATLAB imresize 0.5), the MSCN map (``filter2``
'same', i.e. zero padding, C = 1 on the 0-255 gray image) gives a symmetric GGD fit
(shape, variance) and its four circularly shifted neighbour products give AGGD fits (shape,
mean, left variance, right variance). The features are scaled to [-1, 1] with the model's
``svm-scale`` range file and fed to its epsilon-SVR with an RBF kernel.

The SVR is data, not code: this module reads libsvm's text model format (``allmodel``) and
svm-scale range format (``allrange``) from the LIVE release; nothing is bundled (see
docs/metrics_image.md for why and where to get them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import gamma as gamma_fn

from gencritic.metrics._iqa import nss


@dataclass(frozen=True)
class SvrModel:
    """An RBF epsilon-SVR: f(x) = sum_i coef_i exp(-gamma |x - sv_i|^2) - rho."""

    support_vectors: np.ndarray  # (n_sv, d)
    coef: np.ndarray  # (n_sv,)
    gamma: float
    rho: float
    source: str

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, d) scaled features -> (N,) predictions."""
        d2 = ((x[:, None, :] - self.support_vectors[None, :, :]) ** 2).sum(-1)
        return np.asarray(np.exp(-self.gamma * d2) @ self.coef - self.rho)


@dataclass(frozen=True)
class FeatureScaling:
    """libsvm svm-scale: x -> lower + (upper - lower) (x - min) / (max - min), per feature."""

    lower: float
    upper: float
    mins: np.ndarray
    maxs: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        span = np.where(self.maxs > self.mins, self.maxs - self.mins, 1.0)
        out = self.lower + (self.upper - self.lower) * (x - self.mins) / span
        return np.where(self.maxs > self.mins, out, x)


def parse_libsvm_model(text: str, n_features: int, source: str = "<text>") -> SvrModel:
    """Parse libsvm's text model format (regression, RBF kernel only)."""
    header: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines) and lines[i].strip() != "SV":
        key, _, value = lines[i].strip().partition(" ")
        header[key] = value.strip()
        i += 1
    if i == len(lines):
        raise ValueError(f"{source}: not a libsvm model (no 'SV' line)")
    if header.get("svm_type") not in ("epsilon_svr", "nu_svr") or header.get("kernel_type") != "rbf":
        raise ValueError(f"{source}: expected an RBF epsilon/nu-SVR model, got svm_type={header.get('svm_type')} "
                         f"kernel_type={header.get('kernel_type')}")
    rows = [ln.split() for ln in lines[i + 1:] if ln.strip()]
    coef = np.array([float(r[0]) for r in rows])
    sv = np.zeros((len(rows), n_features))
    for j, r in enumerate(rows):
        for item in r[1:]:
            k, _, v = item.partition(":")
            idx = int(k) - 1
            if not 0 <= idx < n_features:
                raise ValueError(f"{source}: support vector feature index {k} outside 1..{n_features}")
            sv[j, idx] = float(v)
    return SvrModel(sv, coef, float(header["gamma"]), float(header["rho"]), source)


def parse_range_file(text: str, n_features: int) -> FeatureScaling:
    """Parse an svm-scale range file (``x`` / ``lower upper`` / ``index min max`` lines)."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != ["x"]:
        raise ValueError("not an svm-scale range file (first line must be 'x')")
    lower, upper = float(lines[1][0]), float(lines[1][1])
    mins = np.zeros(n_features)
    maxs = np.zeros(n_features)
    for parts in lines[2:]:
        idx = int(parts[0]) - 1
        mins[idx], maxs[idx] = float(parts[1]), float(parts[2])
    return FeatureScaling(lower, upper, mins, maxs)


def load_brisque_model(model: Path, range_file: Path) -> tuple[SvrModel, FeatureScaling]:
    svr = parse_libsvm_model(model.read_text(), 36, str(model))
    return svr, parse_range_file(range_file.read_text(), 36)


def brisque_features(gray: np.ndarray) -> np.ndarray:
    """36 BRISQUE features of a gray 0-255 image."""
    if min(gray.shape) < 16:
        raise ValueError(f"BRISQUE needs images of at least 16x16 pixels, got {gray.shape[1]}x{gray.shape[0]}")
    img = gray.astype(np.float64)
    window = nss.gaussian_window()
    feats: list[float] = []
    for _ in range(2):
        structdis, _ = nss.mscn(img, window, mode="constant")
        shape, std = nss.ggd_fit(structdis.reshape(1, -1))
        feats += [float(shape[0]), float(std[0] ** 2)]
        for prod in nss.pair_products(structdis, axes=(0, 1)):
            a, left, right = (float(v[0]) for v in nss.aggd_fit(prod.reshape(1, -1)))
            const = np.sqrt(gamma_fn(1.0 / a)) / np.sqrt(gamma_fn(3.0 / a))
            mean = (right - left) * (gamma_fn(2.0 / a) / gamma_fn(1.0 / a)) * const
            feats += [a, float(mean), left**2, right**2]
        img = nss.imresize(img, 0.5)
    return np.array(feats)


def brisque(rgb: np.ndarray, svr: SvrModel, scaling: FeatureScaling) -> float:
    """BRISQUE of an (H, W, 3) uint8 image (about 0 = pristine .. 100 = very distorted)."""
    x = scaling.apply(brisque_features(nss.rgb_to_gray(rgb))[None, :])
    return float(svr.predict(x)[0])
