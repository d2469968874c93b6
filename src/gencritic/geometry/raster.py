"""Which cell centres of a regular 2D grid each triangle covers, counted exactly once across shared edges.

Used twice: by volume IoU (the cells are the yz-positions of +x rays) and by UV coverage (the
cells are texels). Both need the same guarantee: a centre on an edge or vertex shared by
several triangles belongs to exactly the triangles that an infinitesimal shift of the centre
would land in — otherwise a ray through a shared edge crosses the surface twice (or never) and
flips the parity of a whole row, and a texel on a UV seam is counted as overlap.

How: each edge function is computed from the edge's endpoints in one canonical (lexicographic)
order and negated when traversed the other way, so two triangles sharing an edge see exactly
opposite values; a zero is then decided by the edge's direction, as if the centre were moved by
(-η, 1)·ε with η ≪ 1 (towards +second coordinate, then -first). This is the "top-left" fill rule of
rasterisers, made exact by the canonical order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

CHUNK = 4_000_000  # (triangle, cell) candidates examined at once: bounds memory on large triangles


@dataclass(frozen=True)
class Coverage:
    """A chunk of (triangle, cell) pairs with the centre inside the triangle, and its barycentric weights."""

    triangle: np.ndarray  # (K,) triangle index
    j: np.ndarray  # (K,) cell index along the first coordinate
    k: np.ndarray  # (K,) cell index along the second coordinate
    weights: np.ndarray  # (K, 3) barycentric weights of the centre (sum to 1)


def edge_function(u: np.ndarray, w: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Orientation of ``p`` against the line u -> w, exactly antisymmetric in (u, w)."""
    swap = (u[:, 0] > w[:, 0]) | ((u[:, 0] == w[:, 0]) & (u[:, 1] > w[:, 1]))
    a = np.where(swap[:, None], w, u)
    b = np.where(swap[:, None], u, w)
    value = (b[:, 0] - a[:, 0]) * (p[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (p[:, 0] - a[:, 0])
    return np.where(swap, -value, value)


def covered_cells(tri: np.ndarray, origin: np.ndarray, step: float, shape: tuple[int, int]) -> Iterator[Coverage]:
    """Chunks of the cells (centres ``origin + (index + 0.5) * step``) inside each 2D triangle
    (``tri``: (T, 3, 2)). Zero-area triangles cover nothing."""
    n0, n1 = shape
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    j_lo = np.maximum(np.ceil((lo[:, 0] - origin[0]) / step - 0.5), 0).astype(np.int64)
    j_hi = np.minimum(np.floor((hi[:, 0] - origin[0]) / step - 0.5), n0 - 1).astype(np.int64)
    k_lo = np.maximum(np.ceil((lo[:, 1] - origin[1]) / step - 0.5), 0).astype(np.int64)
    k_hi = np.minimum(np.floor((hi[:, 1] - origin[1]) / step - 0.5), n1 - 1).astype(np.int64)
    nj = np.maximum(j_hi - j_lo + 1, 0)
    nk = np.maximum(k_hi - k_lo + 1, 0)
    per = nj * nk
    ends = np.cumsum(per)
    start = 0
    while start < len(tri):
        base = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + CHUNK, side="right")))
        counts = per[start:stop]
        sel = np.arange(start, stop)
        start = stop
        total = int(counts.sum())
        if total == 0:
            continue
        t = np.repeat(sel, counts)
        local = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        j = j_lo[t] + local // nk[t]
        k = k_lo[t] + local % nk[t]
        p = np.stack([origin[0] + (j + 0.5) * step, origin[1] + (k + 0.5) * step], axis=1)
        v = tri[t]
        e = [edge_function(v[:, 1], v[:, 2], p), edge_function(v[:, 2], v[:, 0], p), edge_function(v[:, 0], v[:, 1], p)]
        sign = np.sign(edge_function(v[:, 0], v[:, 1], v[:, 2]))
        inside = sign != 0
        for value, (a, b) in zip(e, ((1, 2), (2, 0), (0, 1)), strict=True):
            d = (v[:, b] - v[:, a]) * sign[:, None]  # the edge's direction, counter-clockwise traversal
            tie = (d[:, 0] > 0) | ((d[:, 0] == 0) & (d[:, 1] > 0))
            s = value * sign
            inside &= (s > 0) | ((s == 0) & tie)
        if not inside.any():
            continue
        w = np.stack([x[inside] for x in e], axis=1)
        yield Coverage(t[inside], j[inside], k[inside], w / w.sum(axis=1, keepdims=True))
