"""Welding and edge use: the facts watertightness, manifoldness and components are read from.

Why weld: loaders split vertices at UV seams and hard normals (an OBJ's ``v/vt/vn`` corners,
a glTF primitive per material), so a closed surface looks open by index. Vertices are merged
when their coordinates are *equal* (after ``+ 0.0``, so -0 equals 0) — no tolerance: a gap
of any size is a real gap to a slicer, a physics engine or the parity test of volume IoU, and
a tolerance would have to be a made-up number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def weld(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique vertices, faces re-indexed into them); first occurrence order is not kept (sorted)."""
    v = np.ascontiguousarray(np.asarray(vertices, dtype=np.float64) + 0.0)
    rows = v.view(np.dtype((np.void, v.dtype.itemsize * 3))).reshape(-1)
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return v[first], inverse.reshape(-1)[np.asarray(faces, dtype=np.int64)]


def index_degenerate(faces: np.ndarray) -> np.ndarray:
    """Faces naming one vertex twice (after welding): no area, no proper edges."""
    return (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])


@dataclass(frozen=True)
class EdgeUse:
    """How many faces use each undirected edge of a welded mesh (index-degenerate faces left out)."""

    edges: np.ndarray  # (E, 2) vertex pairs, low index first
    counts: np.ndarray  # (E,) faces using each edge
    forward: np.ndarray  # (E,) of those, how many traverse it low -> high

    @property
    def boundary(self) -> int:
        """Edges of one face: holes and open borders."""
        return int(np.count_nonzero(self.counts == 1))

    @property
    def non_manifold(self) -> int:
        """Edges shared by more than two faces."""
        return int(np.count_nonzero(self.counts > 2))

    @property
    def watertight(self) -> bool:
        """Every edge shared by exactly two faces (trimesh's ``is_watertight`` definition)."""
        return bool(len(self.counts)) and bool(np.all(self.counts == 2))

    @property
    def inconsistent_winding(self) -> int:
        """Two-face edges both faces traverse in the same direction (a flipped neighbour)."""
        two = self.counts == 2
        return int(np.count_nonzero(two & (self.forward != 1)))


def edge_use(faces: np.ndarray) -> EdgeUse:
    """Edge statistics of welded ``faces`` (int, (F, 3))."""
    f = np.asarray(faces, dtype=np.int64)
    f = f[~index_degenerate(f)]
    if len(f) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return EdgeUse(np.zeros((0, 2), dtype=np.int64), empty, empty)
    a = f.reshape(-1)
    b = f[:, [1, 2, 0]].reshape(-1)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    n = int(f.max()) + 1
    key = lo * n + hi
    unique, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    forward = np.bincount(inverse, weights=(a < b).astype(np.float64), minlength=len(unique)).astype(np.int64)
    return EdgeUse(np.stack([unique // n, unique % n], axis=1), counts, forward)


def face_components(faces: np.ndarray) -> int:
    """Connected components of faces joined through shared edges (trimesh's ``split`` notion).

    Index-degenerate faces join through their one proper edge."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = np.asarray(faces, dtype=np.int64)
    if len(f) == 0:
        return 0
    a = f.reshape(-1)
    b = f[:, [1, 2, 0]].reshape(-1)
    owner = np.repeat(np.arange(len(f)), 3)
    proper = a != b
    a, b, owner = a[proper], b[proper], owner[proper]
    n = int(f.max()) + 1
    key = np.minimum(a, b) * n + np.maximum(a, b)
    order = np.argsort(key, kind="stable")
    key, owner = key[order], owner[order]
    same = key[1:] == key[:-1]  # consecutive uses of one edge: join their faces
    rows, cols = owner[:-1][same], owner[1:][same]
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(len(f), len(f)))
    count, _ = connected_components(graph, directed=False)
    return int(count)
