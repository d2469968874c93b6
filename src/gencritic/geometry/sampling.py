"""Seeded, area-weighted points on a surface, and the KD-tree that answers distances to them.

The draw is trimesh's :func:`trimesh.sample.sample_surface` step for step (``default_rng(seed)``,
faces picked by ``searchsorted`` on the cumulative area, two uniforms per point folded into the
triangle, the same float operations), so for the same triangles and seed the points are the
same bits a paper's script gets from ``mesh.sample(n, seed=seed)``. What differs is the work:
only the picked faces' edges are formed (trimesh forms every face's), the points are stored in
Morton (Z-curve) order so nearest-neighbour queries walk the tree with warm caches (~1.6x faster
queries measured on 100k points), and samples with their tree are kept per content so a
reference compared with several generated assets is sampled and indexed once.

Normals are the unit normals of the sampled faces (what Occupancy Networks' normal consistency
uses: ``mesh.face_normals[face_index]``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from gencritic.errors import ItemError
from gencritic.geometry.surface import Surface

DEFAULT_SAMPLES = 100_000
DEFAULT_SEED = 0


def face_cross(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Per-face cross product as trimesh forms it, ``(v1 - v0) x (v2 - v1)`` (same bits, so the
    cumulative areas, and hence the picked faces, are trimesh's)."""
    tri = vertices[faces]
    edges = tri[:, 1:, :] - tri[:, :2, :]
    return np.cross(edges[:, 0], edges[:, 1])


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    return np.sqrt((face_cross(vertices, faces) ** 2).sum(axis=1)) / 2.0


def sample_points(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int,
                  cross: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points on the triangles, area-weighted: (points (count, 3), face index (count,)).

    Equal to ``trimesh.sample.sample_surface(Trimesh(vertices, faces, process=False), count,
    seed=seed)`` (tested bit for bit). ``cross``: :func:`face_cross`, when the caller has it."""
    if count <= 0:
        raise ValueError(f"sample count must be positive, got {count}")
    if cross is None:
        cross = face_cross(vertices, faces)
    weight_cum = np.cumsum(np.sqrt((cross**2).sum(axis=1)) / 2.0)
    if not weight_cum[-1] > 0:
        raise ItemError("every triangle has zero area: there is no surface to sample")
    random = np.random.default_rng(seed).random
    picks = random(count) * weight_cum[-1]
    # the same face per pick as searchsorted on the picks as drawn, looked up in increasing order
    # (cache-friendly on large meshes: ~2.5x faster here)
    order = np.argsort(picks)
    face_index = np.empty(count, dtype=np.intp)
    face_index[order] = np.searchsorted(weight_cum, picks[order])
    picked = faces[face_index]
    origins = vertices[picked[:, 0]]
    vectors = vertices[picked[:, 1:]] - np.tile(origins, (1, 2)).reshape((-1, 2, 3))
    lengths = random((count, 2, 1))
    fold = lengths.sum(axis=1).reshape(-1) > 1.0
    lengths[fold] -= 1.0
    lengths = np.abs(lengths)
    return (vectors * lengths).sum(axis=1) + origins, face_index


def _spread_bits(x: np.ndarray) -> np.ndarray:
    """Put two zero bits after each of the low 10 bits of ``x`` (the usual 3D Morton spread)."""
    x = (x | (x << np.uint64(16))) & np.uint64(0x030000FF)
    x = (x | (x << np.uint64(8))) & np.uint64(0x0300F00F)
    x = (x | (x << np.uint64(4))) & np.uint64(0x030C30C3)
    return (x | (x << np.uint64(2))) & np.uint64(0x09249249)


def morton_order(points: np.ndarray) -> np.ndarray:
    """A permutation putting points in Z-curve order over their bounding box (1024 cells per axis).

    Neighbouring queries then visit neighbouring tree nodes one after another. Only the order of
    work changes: every distance is computed exactly as before."""
    lo = points.min(axis=0)
    extent = float((points.max(axis=0) - lo).max()) or 1.0
    cells = np.clip(((points - lo) * (1023.0 / extent)).astype(np.int64), 0, 1023).astype(np.uint64)
    code = _spread_bits(cells[:, 0]) | (_spread_bits(cells[:, 1]) << np.uint64(1)) | (
        _spread_bits(cells[:, 2]) << np.uint64(2))
    return np.argsort(code)


@dataclass(frozen=True)
class SurfaceSamples:
    """Points on a surface with their face normals, in Morton order, and a KD-tree over them."""

    points: np.ndarray  # (N, 3) float64
    normals: np.ndarray  # (N, 3) unit normals of the faces the points lie on
    face_index: np.ndarray  # (N,) face of each point
    draw_index: np.ndarray  # (N,) position of each point in the seeded draw (trimesh's order)
    seed: int
    tree: cKDTree = field(repr=False)

    @property
    def count(self) -> int:
        return int(self.points.shape[0])

    def centroid(self) -> np.ndarray:
        return np.asarray(self.points.mean(axis=0))


def unit_normals(cross: np.ndarray) -> np.ndarray:
    """Unit vectors along per-face cross products (right-hand rule); zero for zero-area faces,
    which are never sampled."""
    length = np.sqrt((cross**2).sum(axis=1))
    safe = np.where(length > 0, length, 1.0)
    return np.where(length[:, None] > 0, cross / safe[:, None], 0.0)


def build_samples(surface: Surface, count: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> SurfaceSamples:
    """Sample ``surface`` and index the points (no caching: see :func:`surface_samples`)."""
    cross = face_cross(surface.vertices, surface.faces)
    points, face_index = sample_points(surface.vertices, surface.faces, count, seed, cross)
    order = morton_order(points)
    points = np.ascontiguousarray(points[order])
    face_index = face_index[order]
    normals = unit_normals(cross)[face_index]
    return SurfaceSamples(points, normals, face_index, order, seed, build_tree(points))


def build_tree(points: np.ndarray) -> cKDTree:
    """A KD-tree over Morton-ordered points: built by sliding midpoint (``balanced_tree=False``:
    half the build time of median splits), 32 points per leaf (as fast or faster to query than
    16 on 100k surface samples; measured within noise on a shared 2-core CPU)."""
    return cKDTree(points, leafsize=32, balanced_tree=False)


def surface_samples(surface: Surface, count: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> SurfaceSamples:
    """Samples of ``surface`` with their tree, kept per (content, frame, count, seed)."""
    if not surface.sha256:
        return build_samples(surface, count, seed)
    key = (surface.sha256, surface.frame, count, seed)
    with _lock:
        hit = _kept.get(key)
        if hit is not None:
            _kept.move_to_end(key)
            return hit
    samples = build_samples(surface, count, seed)
    with _lock:
        _kept[key] = samples
        while len(_kept) > SAMPLES_KEPT:
            _kept.popitem(last=False)
    return samples


SAMPLES_KEPT = 32  # 100k samples with their tree: ~12 MB
_kept: OrderedDict[tuple[str, str, int, int], SurfaceSamples] = OrderedDict()
_lock = threading.Lock()
