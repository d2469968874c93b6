"""Set metrics for exploration loops: FID/KID on any embeddings, diversity, novelty, clustering.

Pure numpy/scipy on feature matrices ``(N, D)``; the caller chooses the features (CLIP image
embeddings from :mod:`gencritic.models`, DINOv2, or anything else) and must use the *same*
extractor and preprocessing for both sets. Clean resizing: images reach CLIP through the
backbone's own PIL-based preprocessing (bicubic, antialiased resize, then centre crop), never
through a non-antialiased tensor resize, which is the aliasing pitfall clean-fid (Parmar et
al. 2022) documented for Inception FID; numbers from different resizers are not comparable.

* **FID** (Fréchet distance between Gaussians fitted to the two sets):
  ``|μa-μb|² + Tr(Σa + Σb - 2 (Σa Σb)^½)`` with ``scipy.linalg.sqrtm``; the tiny imaginary
  part sqrtm returns for near-singular products is dropped (and checked to be tiny).
  Unbiased only for large N: compare sets of equal size.
* **KID** (Binkowski et al. 2018): unbiased MMD² with the cubic polynomial kernel
  ``(x·y/D + 1)³``, averaged over seeded random subsets; usable with a few dozen samples.
* **diversity**: mean pairwise cosine distance ``1 - cos`` within a set;
* **novelty**: mean cosine distance of a new sample to its k nearest neighbours in an archive;
* **clusters**: seeded k-means++ (Lloyd iterations), so a loop can keep the best of each
  approach type instead of refining one.

Registered as a set metric (:class:`~gencritic.metrics.base.SetMetric`, one value over the whole
run's views, in ``summary.json``): ``clip_diversity``, the diversity of the run's CLIP image
embeddings. FID/KID-style metrics against a reference set join it there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gencritic.metrics.base import ClipModelOptions, MetricInfo, SetMetric
from gencritic.metrics.registry import register
from gencritic.models.defaults import DEFAULT_CLIP_MODEL

if TYPE_CHECKING:
    from gencritic.views import RunContext, ViewBatch


def _as2d(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"{name} must be an (N, D) feature matrix with N >= 2, got shape {arr.shape}")
    return arr


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = _as2d(features, "features")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    from scipy import linalg  # here, not at import: the registry imports every family

    diff = np.asarray(mu_a) - np.asarray(mu_b)
    with np.errstate(all="ignore"):
        covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # singular product: regularise as the reference FID code does
        eps = 1e-6 * np.eye(cov_a.shape[0])
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    if np.iscomplexobj(covmean):
        imag = np.abs(covmean.imag).max()
        scale = max(1.0, float(np.abs(covmean.real).max()))
        if imag > 1e-3 * scale:
            raise ValueError(f"sqrtm of the covariance product has a large imaginary part ({imag:.3g})")
        covmean = covmean.real
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets.

    When a set has no more samples than dimensions (a few hundred rendered views against
    Inception's 2048 features) both covariances are singular: ``sqrtm`` of their product is then
    both slow (minutes for 2048², on a busy CPU) and inaccurate. The same trace is exact from the
    samples: with centred rows ``Xa``, ``Xb`` and ``c = (Na-1)(Nb-1)``, the non-zero eigenvalues of
    ``Σa Σb = Xaᵀ Xa Xbᵀ Xb / c`` are those of ``M Mᵀ / c`` with ``M = Xa Xbᵀ``, so
    ``Tr (Σa Σb)^½`` is the sum of the singular values of ``M`` over ``√c`` (dgm-eval's "efficient
    FD" uses the same identity). The value is the formula clean-fid and torchmetrics compute."""
    a, b = _as2d(features_a, "features_a"), _as2d(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the two feature sets differ in dimension: {a.shape[1]} and {b.shape[1]}")
    if min(a.shape[0], b.shape[0]) <= a.shape[1]:
        xa, xb = a - a.mean(axis=0), b - b.mean(axis=0)
        ca, cb = a.shape[0] - 1, b.shape[0] - 1
        diff = a.mean(axis=0) - b.mean(axis=0)
        tr_covmean = float(np.linalg.svd(xa @ xb.T, compute_uv=False).sum()) / float(np.sqrt(ca * cb))
        return float(diff @ diff + (xa * xa).sum() / ca + (xb * xb).sum() / cb - 2.0 * tr_covmean)
    mu_a, cov_a = gaussian_stats(a)
    mu_b, cov_b = gaussian_stats(b)
    return frechet_distance(mu_a, cov_a, mu_b, cov_b)


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with the KID polynomial kernel (diagonals excluded)."""
    m, n = x.shape[0], y.shape[0]
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def kid(features_a: np.ndarray, features_b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """(mean, std) of unbiased MMD² over seeded subsets of size min(subset_size, Na, Nb)."""
    a, b = _as2d(features_a, "features_a"), _as2d(features_b, "features_b")
    size = min(subset_size, a.shape[0], b.shape[0])
    rng = np.random.default_rng(seed)
    vals = np.array([mmd2_unbiased(a[rng.choice(a.shape[0], size, replace=False)],
                                   b[rng.choice(b.shape[0], size, replace=False)]) for _ in range(subsets)])
    return float(vals.mean()), float(vals.std())


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1.0 - _unit(a) @ _unit(b).T


def diversity(features: np.ndarray) -> float:
    """Mean pairwise cosine distance over distinct pairs (0 when all samples point the same way)."""
    f = _as2d(features, "features")
    d = cosine_distances(f, f)
    n = f.shape[0]
    return float((d.sum() - np.trace(d)) / (n * (n - 1)))


def novelty(candidates: np.ndarray, archive: np.ndarray, k: int = 3) -> np.ndarray:
    """Per candidate: mean cosine distance to its k nearest archive members (k capped at the archive size)."""
    c = np.atleast_2d(np.asarray(candidates, dtype=np.float64))
    arc = np.atleast_2d(np.asarray(archive, dtype=np.float64))
    if arc.shape[0] == 0:
        return np.full(c.shape[0], np.nan)
    d = np.sort(cosine_distances(c, arc), axis=1)
    return d[:, : min(k, arc.shape[0])].mean(axis=1)


def kmeans(features: np.ndarray, k: int, seed: int = 0, iterations: int = 100, restarts: int = 4
           ) -> tuple[np.ndarray, np.ndarray, float]:
    """Seeded k-means++ with Lloyd iterations; best of ``restarts`` by inertia.
    Returns (labels, centres, inertia); labels are renumbered by first appearance, so they are stable."""
    x = _as2d(features, "features")
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    rng = np.random.default_rng(seed)
    best: tuple[np.ndarray, np.ndarray, float] | None = None
    for _ in range(restarts):
        centres = [x[rng.integers(n)]]
        for _ in range(1, k):
            d2 = ((x[:, None, :] - np.array(centres)[None]) ** 2).sum(-1).min(axis=1)
            probs = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
            centres.append(x[rng.choice(n, p=probs)])
        c = np.array(centres)
        labels = np.zeros(n, dtype=int)
        for it in range(iterations):
            d2 = ((x[:, None, :] - c[None]) ** 2).sum(-1)
            new = d2.argmin(axis=1)
            if it > 0 and np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                if (labels == j).any():
                    c[j] = x[labels == j].mean(axis=0)
        inertia = float(((x - c[labels]) ** 2).sum())
        if best is None or inertia < best[2] - 1e-12:
            best = (labels, c, inertia)
    assert best is not None
    labels, c, inertia = best
    order = list(dict.fromkeys(labels.tolist()))
    remap = {old: new for new, old in enumerate(order)}
    return np.array([remap[v] for v in labels]), c[order], inertia


def best_per_cluster(labels: np.ndarray, scores: np.ndarray) -> dict[int, int]:
    """{cluster: index of its highest-scoring member} (ties: the lowest index)."""
    out: dict[int, int] = {}
    for i, (lab, s) in enumerate(zip(np.asarray(labels).tolist(), np.asarray(scores, dtype=float).tolist(), strict=True)):
        if lab not in out or s > float(scores[out[lab]]):
            out[lab] = i
    return out


@register
class ClipDiversity(SetMetric):
    """:func:`diversity` of the CLIP image embeddings of every view of the run."""

    options_schema = ClipModelOptions
    info = MetricInfo(
        name="clip_diversity",
        family="sets",
        inputs=("image", "set"),
        columns=("clip_diversity",),
        range=(0.0, 2.0),
        higher_is_better=True,
        default_model=DEFAULT_CLIP_MODEL,
        description=("Mean pairwise cosine distance (1 - cos) between the CLIP image embeddings of every view the "
                     "run scores: how varied the set is (0 when all views look alike to CLIP). One value per run, "
                     "in summary.json under set_metrics."),
        reference="Mean pairwise embedding distance as a set-diversity measure (e.g. Friedman & Dieng, The Vendi "
                  "Score, 2023, which generalises it)",
        kind="set",
    )

    def setup(self, ctx: RunContext) -> None:
        self.backbone = self.clip_backbone(ctx)

    def features(self, batch: ViewBatch) -> np.ndarray:
        return np.asarray(batch.image_embeddings(self.backbone).numpy(), dtype=np.float64)

    def compute_set(self, features: np.ndarray) -> dict[str, float]:
        return {"clip_diversity": diversity(features)}
