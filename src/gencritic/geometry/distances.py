"""Distances between two sampled surfaces: Chamfer in both published forms, F-score, normal consistency.

All from one nearest-neighbour query in each direction (generated -> reference, reference ->
generated), so every number of a pair comes from the same correspondences.

Names, as the papers use them (see ``docs/3d_evaluation.md`` for who reports which):

* ``chamfer_l1`` — Occupancy Networks' *Chamfer-L1* (Mescheder et al. 2019): the mean of the two
  directed mean **Euclidean** distances, ``(mean_g d(g, R) + mean_r d(r, G)) / 2``; SyncDreamer's
  ``eval_mesh.py`` (GSO) computes this form.
* ``chamfer_l2sq`` — the **squared**-distance form as Fan et al. (2017, PSG) define it and
  PyTorch3D's ``chamfer_distance`` returns by default: the *sum* of the two directed mean squared
  distances, ``mean_g d(g, R)^2 + mean_r d(r, G)^2``. Occupancy Networks' *Chamfer-L2* is half of it.
* ``fscore`` at τ — Tatarchenko et al. (2019): precision = share of generated samples within τ of
  the reference, recall = share of reference samples within τ of the generated, F = 2PR/(P+R)
  (0 when both are 0); "within" is strict (``d < τ``), as in their code.
* ``normal_consistency`` — Occupancy Networks: mean absolute cosine between each sample's face
  normal and its nearest neighbour's, averaged over both directions (absolute: orientation-free).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gencritic.geometry.sampling import SurfaceSamples
from gencritic.geometry.transform import Similarity

DEFAULT_FSCORE_TAU = 0.1  # in the normalised frame (longest side 1); InstantMesh's 0.2 in its [-1, 1]^3


@dataclass(frozen=True)
class Correspondences:
    """Nearest neighbours both ways; distances in the reference's frame."""

    gen_dist: np.ndarray  # (Ng,) distance of each generated sample to the nearest reference sample
    gen_nearest: np.ndarray  # (Ng,) index of that reference sample
    ref_dist: np.ndarray  # (Nr,) distance of each reference sample to the nearest generated sample
    ref_nearest: np.ndarray  # (Nr,) index of that generated sample


def correspond(gen: SurfaceSamples, ref: SurfaceSamples, transform: Similarity | None = None,
               workers: int = -1) -> Correspondences:
    """Query each set in the other's KD-tree, the generated one moved by ``transform``.

    Both trees are reused: the reference's points are taken back into the generated frame
    (``transform``'s inverse), queried there, and the distances scaled — a similarity keeps
    which point is nearest, so no tree is built for the moved points."""
    t = transform or Similarity.identity()
    gen_dist, gen_nearest = ref.tree.query(t.apply(gen.points), workers=workers)
    ref_dist, ref_nearest = gen.tree.query(t.apply_inverse(ref.points), workers=workers)
    if t.scale != 1.0:
        ref_dist = ref_dist * t.scale
    return Correspondences(gen_dist, gen_nearest, ref_dist, ref_nearest)


def chamfer_l1(c: Correspondences) -> float:
    return 0.5 * (float(np.mean(c.gen_dist)) + float(np.mean(c.ref_dist)))


def chamfer_l2sq(c: Correspondences) -> float:
    return float(np.mean(c.gen_dist**2)) + float(np.mean(c.ref_dist**2))


def fscore(c: Correspondences, tau: float) -> tuple[float, float, float]:
    """(F-score, precision, recall) at threshold ``tau``."""
    precision = float(np.mean(c.gen_dist < tau))
    recall = float(np.mean(c.ref_dist < tau))
    f = 0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)
    return f, precision, recall


def normal_consistency(gen_normals: np.ndarray, ref_normals: np.ndarray, c: Correspondences) -> float:
    """``gen_normals`` already in the reference's frame (rotated by the alignment)."""
    g = np.abs(np.einsum("ij,ij->i", gen_normals, ref_normals[c.gen_nearest]))
    r = np.abs(np.einsum("ij,ij->i", ref_normals, gen_normals[c.ref_nearest]))
    return 0.5 * (float(np.mean(g)) + float(np.mean(r)))


def surface_metrics(gen: SurfaceSamples, ref: SurfaceSamples, tau: float = DEFAULT_FSCORE_TAU,
                    transform: Similarity | None = None, workers: int = -1) -> dict[str, float]:
    """Every sample-based number of a pair, from one pair of queries."""
    if not tau > 0:
        raise ValueError(f"F-score threshold must be positive, got {tau}")
    t = transform or Similarity.identity()
    c = correspond(gen, ref, t, workers)
    f, precision, recall = fscore(c, tau)
    return {
        "chamfer_l1": chamfer_l1(c),
        "chamfer_l2sq": chamfer_l2sq(c),
        "dist_gen_to_ref": float(np.mean(c.gen_dist)),
        "dist_ref_to_gen": float(np.mean(c.ref_dist)),
        "fscore": f,
        "precision": precision,
        "recall": recall,
        "normal_consistency": normal_consistency(t.rotate(gen.normals), ref.normals, c),
    }
