"""Bring a generated asset into its reference's pose: ``none`` or ``search``.

``none`` (the default) trusts both frames: after the same normalisation (bounding-box centre at
the origin, longest side 1) the generated asset is compared where it stands — right for
protocols that fix the pose (a method trained on canonical Objaverse/GSO frames).

``search`` estimates a similarity transform (rotation, translation, uniform scale) taking the
generated samples onto the reference's:

1. Coarse: both sample sets are centred on their centroids and the generated one scaled to the
   reference's RMS radius; each of the 24 axis-aligned rotations (the cube's rotation group)
   starts a few ICP steps on 1,024-point subsets (:data:`LEVELS`).
2. Fine: the distinct best poses (within :data:`KEEP_WITHIN` of the best score, at most
   :data:`KEEP_AT_MOST`) are refined on 4,096-point subsets, then on the full samples, by
   iterative closest points with correspondences taken *both ways* (each generated point to its
   nearest reference point and each reference point to its nearest generated one) and Umeyama's
   closed-form similarity solved over all of them each step. The lowest final symmetric mean
   distance wins (ties: lowest rotation index, so the identity first).

Why a scale: each asset is normalised by its own bounding box, which depends on its pose — a
copy rotated by 30° has a larger box and so a smaller normalised size. Why both ways: one-way
ICP with a free scale can shrink the generated points onto part of the reference; reference
points pulling on the generated set prevent that. Why several starts: the nearest axis-aligned
rotation can be up to ~63° off, outside ICP's basin for some shapes, and near-symmetric shapes
give near-tied coarse scores. A shape with a symmetry has several equally good poses: one of them
is returned, and a rotated copy then compares two different sample sets of one surface.

No tree is rebuilt per step: a similarity keeps nearest neighbours, so the reference's points are
taken into the generated frame and queried in the generated points' tree (at the last level the
samples' own trees, :mod:`.sampling`; small trees over the subsets before).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from gencritic.geometry.sampling import SurfaceSamples
from gencritic.geometry.transform import Similarity

ALIGN_MODES = ("none", "search")


@dataclass(frozen=True)
class SearchLevel:
    """One resolution of the search: samples per side in the trees (0: all, with their own trees),
    query samples per side, ICP steps, the relative improvement that ends ICP early."""

    tree_points: int
    queries: int
    iterations: int
    tolerance: float


# every distinct candidate is refined at each level; the last level uses the full samples, where a
# copy's points find their exact counterparts and ICP ends on the exact transform
LEVELS = (SearchLevel(1024, 1024, 12, 1e-3), SearchLevel(4096, 4096, 40, 1e-4), SearchLevel(0, 8192, 60, 1e-12))
# candidates scoring within this factor of a level's best go on to the next level: a shape with
# a symmetry has several equally good poses, and only the full samples tell the exact one apart
KEEP_WITHIN = 1.5
KEEP_AT_MOST = 4  # bounds the time on shapes with many (or continuous) symmetries
SAME_POSE_DEGREES = 2.0

def axis_rotations() -> np.ndarray:
    """The 24 proper rotations that map coordinate axes to coordinate axes, identity first."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            for row, (col, sign) in enumerate(zip(perm, signs, strict=True)):
                m[row, col] = sign
            if np.linalg.det(m) > 0:
                out.append(m)
    return np.stack(out)


AXIS_ROTATIONS = axis_rotations()


@dataclass(frozen=True)
class Alignment:
    """The transform applied to the generated asset and how it was found."""

    mode: str
    transform: Similarity
    rotation_index: int | None = None  # the coarse axis rotation ICP started from (search)
    iterations: int = 0
    residual: float = float("nan")  # symmetric mean nearest distance on the ICP subsets at the end

    def describe(self) -> dict[str, object]:
        return {"align": self.mode, "align_matrix": self.transform.matrix().round(12).tolist(),
                "align_scale": self.transform.scale, "align_axis_rotation": self.rotation_index,
                "align_icp_iterations": self.iterations}


def _subset(points: np.ndarray, n: int) -> np.ndarray:
    """An even subset: points are stored in Morton order, so a stride spreads over the surface."""
    if n <= 0 or len(points) <= n:
        return points
    return points[np.linspace(0, len(points) - 1, n).round().astype(np.int64)]


@dataclass(frozen=True)
class _Level:
    """Both sides' points, trees over them and query subsets for one resolution of the search."""

    gen_points: np.ndarray
    gen_tree: cKDTree
    ref_points: np.ndarray
    ref_tree: cKDTree
    gen_queries: np.ndarray
    ref_queries: np.ndarray

    @staticmethod
    def of(gen: SurfaceSamples, ref: SurfaceSamples, tree_points: int, queries: int) -> _Level:
        if tree_points <= 0:  # the full samples and their own trees
            gp, gt, rp, rt = gen.points, gen.tree, ref.points, ref.tree
        else:
            gp, rp = _subset(gen.points, tree_points), _subset(ref.points, tree_points)
            gt, rt = cKDTree(gp), cKDTree(rp)
        return _Level(gp, gt, rp, rt, _subset(gen.points, queries), _subset(ref.points, queries))

    def match(self, t: Similarity) -> tuple[float, np.ndarray, np.ndarray]:
        """Mean nearest distance both ways (reference frame) and the matched pairs (gen frame, ref frame)."""
        d_g, i_g = self.ref_tree.query(t.apply(self.gen_queries))
        d_r, i_r = self.gen_tree.query(t.apply_inverse(self.ref_queries))
        score = 0.5 * (float(d_g.mean()) + float(d_r.mean()) * t.scale)
        src = np.concatenate([self.gen_queries, self.gen_points[i_r]])
        dst = np.concatenate([self.ref_points[i_g], self.ref_queries])
        return score, src, dst


def umeyama(src: np.ndarray, dst: np.ndarray) -> Similarity:
    """Least-squares similarity taking ``src`` onto ``dst`` (Umeyama 1991), reflections excluded."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    fix = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[2, 2] = -1.0
    rotation = u @ fix @ vt
    var_s = float((xs**2).sum() / len(src))
    scale = float(np.trace(np.diag(d) @ fix) / var_s) if var_s > 0 else 1.0
    return Similarity(rotation, mu_d - scale * rotation @ mu_s, scale)


def icp(level: _Level, start: Similarity, iterations: int, tolerance: float) -> tuple[Similarity, float, int]:
    """Bidirectional similarity ICP from ``start``: (transform, final symmetric distance, steps)."""
    t = start
    score, src, dst = level.match(t)
    steps = 0
    for _ in range(iterations):
        candidate = umeyama(src, dst)
        new_score, new_src, new_dst = level.match(candidate)
        if new_score > score:  # a step that makes it worse ends the descent
            break
        steps += 1
        improved = score - new_score
        t, score, src, dst = candidate, new_score, new_src, new_dst
        if score == 0.0 or improved <= tolerance * score:
            break
    return t, score, steps


def _same_pose(a: Similarity, b: Similarity) -> bool:
    cos = (np.trace(a.rotation.T @ b.rotation) - 1.0) / 2.0
    angle = float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
    return (angle < SAME_POSE_DEGREES and float(np.linalg.norm(a.translation - b.translation)) < 0.01
            and abs(a.scale / b.scale - 1.0) < 0.01)


def _distinct(candidates: list[tuple[float, int, Similarity, int]]) -> list[tuple[float, int, Similarity, int]]:
    """Best first; a candidate in the pose of a better one is dropped; only those within
    :data:`KEEP_WITHIN` of the best go on, at most :data:`KEEP_AT_MOST`."""
    ordered = sorted(candidates, key=lambda c: (c[0], c[1]))
    kept: list[tuple[float, int, Similarity, int]] = []
    for cand in ordered:
        if cand[0] > KEEP_WITHIN * ordered[0][0]:
            break
        if not any(_same_pose(cand[2], k[2]) for k in kept):
            kept.append(cand)
        if len(kept) == KEEP_AT_MOST:
            break
    return kept


def search_alignment(gen: SurfaceSamples, ref: SurfaceSamples) -> Alignment:
    """The 24 axis-aligned rotations (centred, RMS-scaled), refined by ICP level by level."""
    c_g, c_r = gen.centroid(), ref.centroid()
    rms_g = float(np.sqrt(((gen.points - c_g) ** 2).sum(axis=1).mean()))
    rms_r = float(np.sqrt(((ref.points - c_r) ** 2).sum(axis=1).mean()))
    scale = rms_r / rms_g if rms_g > 0 else 1.0
    # (score, axis rotation index, transform, ICP steps so far)
    candidates = [(0.0, i, Similarity(r, c_r - scale * r @ c_g, scale), 0) for i, r in enumerate(AXIS_ROTATIONS)]
    for spec in LEVELS:
        level = _Level.of(gen, ref, spec.tree_points, spec.queries)
        refined = []
        for _, index, t, steps in candidates:
            new_t, score, more = icp(level, t, spec.iterations, spec.tolerance)
            refined.append((score, index, new_t, steps + more))
        candidates = _distinct(refined)
    score, index, transform, steps = candidates[0]
    return Alignment("search", transform, index, steps, score)


def align(gen: SurfaceSamples, ref: SurfaceSamples, mode: str) -> Alignment:
    if mode == "none":
        return Alignment("none", Similarity.identity())
    if mode == "search":
        return search_alignment(gen, ref)
    raise ValueError(f"alignment {mode!r}: use one of {', '.join(ALIGN_MODES)}")
