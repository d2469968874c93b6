"""Self-intersections: pairs of triangles of one mesh whose interiors cross.

What counts (stated, because tools differ on touching cases): two triangles intersect when
their intersection is more than what they share by index —

* no shared vertex: an edge of one properly crosses the interior of the other (a line through
  the plane, strictly inside); surfaces that only touch are not counted — an edge meeting the
  other's edge at a point, to within 1e-9 of the pair's longest edge (cubed, for the volumes
  the tests compare), is touching;
* one shared vertex: the same test; the shared vertex's own edges cannot count (their shared
  end lies in the other triangle's plane), so only a crossing away from the vertex does;
* a shared edge: only when the two are coplanar and overlap (folded onto each other);
* coplanar pairs (every corner of one within 1e-9 x the pair's longest edge of the other's
  plane): their 2D interiors overlap (no edge of either separates them).

Duplicate faces (the same three vertices) are reported by :mod:`.health` as such, not here.

How it is fast: only pairs whose bounding boxes overlap are tested, found through a uniform
grid (see :func:`_candidate_pairs`; a KD-tree's fixed-radius search over box centres was tried
and was slower: its radius must cover the larger boxes, so it returns many more pairs); most are then settled by
which side of each other's plane their corners lie (a pair that does not straddle both planes
cannot cross), and only the rest get edge-through-triangle tests. Every test is the sign of a
determinant, vectorised over all candidates.
Pairs are counted on the welded mesh (equal coordinates are one vertex; see :mod:`.topology`).
"""

from __future__ import annotations

import numpy as np

_MAX_ENTRIES_PER_FACE = 16  # (face, cell) entries allowed per face before the cells are made larger
_PAIR_CHUNK = 2_000_000
COPLANAR_TOLERANCE = 1e-9  # distance to the other's plane, relative to the pair's longest edge


def _orient3d(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Six times the signed volume of (a, b, c, d); > 0 when d is below abc seen counter-clockwise."""
    ad, bd, cd = a - d, b - d, c - d
    return np.einsum("ij,ij->i", ad, np.cross(bd, cd))


def _candidate_pairs(tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i < j, of faces whose bounding boxes overlap, each pair once.

    A uniform grid (cell size: the median box extent, doubled while large faces would fill too
    many cells) holds each face in every cell its box touches; two faces are paired only in the
    cell holding the low corner of their boxes' overlap, so no pair is found twice and boxes
    that do not overlap are never paired."""
    n = len(tri)
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    origin = lo.min(axis=0)
    extent = float((hi.max(axis=0) - origin).max())
    if n < 2 or not extent > 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    size = max(float(np.median((hi - lo).max(axis=1))), extent / 2048.0)
    while True:
        c_lo = np.floor((lo - origin) / size).astype(np.int64)
        c_hi = np.floor((hi - origin) / size).astype(np.int64)
        span = c_hi - c_lo + 1
        per = span.prod(axis=1)
        if per.sum() <= _MAX_ENTRIES_PER_FACE * n + 100_000:
            break
        size *= 2.0
    dims = c_hi.max(axis=0) + 1
    # (face, cell) entries, cells numbered x + dims_x * (y + dims_y * z)
    face = np.repeat(np.arange(n), per)
    local = np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per)
    sx, sy = span[face, 0], span[face, 1]
    cell = (c_lo[face, 0] + local % sx) + dims[0] * (
        (c_lo[face, 1] + (local // sx) % sy) + dims[1] * (c_lo[face, 2] + local // (sx * sy)))
    order = np.argsort(cell, kind="stable")
    cell, face = cell[order], face[order]
    # within each cell, every entry pairs with the entries after it; worked through in chunks of
    # entries whose pairs fit in _PAIR_CHUNK (a dense cell can hold many)
    after = np.searchsorted(cell, cell, side="right") - np.arange(len(cell)) - 1
    cum = np.cumsum(after)
    out_i, out_j = [], []
    first = 0
    while first < len(cell):
        base = cum[first - 1] if first else 0
        last = max(first + 1, int(np.searchsorted(cum, base + _PAIR_CHUNK, side="right")))
        counts = after[first:last]
        total = int(counts.sum())
        owner = np.repeat(np.arange(first, last), counts)
        first = last
        if total == 0:
            continue
        partner = owner + 1 + (np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts))
        i, j = face[owner], face[partner]
        corner = np.maximum(lo[i], lo[j])
        cc = np.floor((corner - origin) / size).astype(np.int64)
        keep = np.all(corner <= np.minimum(hi[i], hi[j]), axis=1) & (
            cc[:, 0] + dims[0] * (cc[:, 1] + dims[1] * cc[:, 2]) == cell[owner])
        i, j = i[keep], j[keep]
        out_i.append(np.minimum(i, j))
        out_j.append(np.maximum(i, j))
    if not out_i:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(out_i), np.concatenate(out_j)


def _coplanar_overlap(a: np.ndarray, b: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Coplanar triangles a, b ((P, 3, 3)) whose interiors overlap, in the plane that drops the
    dominant axis of ``normal``: by separating axes, exact for two convex shapes — the interiors
    are disjoint iff all corners of one lie on the closed outer side of some edge of the other."""
    axis = np.argmax(np.abs(normal), axis=1)
    keep = np.array([[1, 2], [0, 2], [0, 1]])[axis]
    rows = np.arange(len(a))

    def coords(t: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return ([np.ascontiguousarray(t[rows, k, keep[:, 0]]) for k in range(3)],
                [np.ascontiguousarray(t[rows, k, keep[:, 1]]) for k in range(3)])

    def separated_by_edges_of(px: list[np.ndarray], py: list[np.ndarray], qx: list[np.ndarray],
                              qy: list[np.ndarray]) -> np.ndarray:
        turn = np.sign((px[1] - px[0]) * (py[2] - py[0]) - (py[1] - py[0]) * (px[2] - px[0]))
        out = np.zeros(len(turn), dtype=bool)
        for k in range(3):
            ex, ey = px[(k + 1) % 3] - px[k], py[(k + 1) % 3] - py[k]
            outside = np.ones(len(turn), dtype=bool)
            for m in range(3):
                outside &= turn * (ex * (qy[m] - py[k]) - ey * (qx[m] - px[k])) <= 0
            out |= outside
        return out

    ax, ay = coords(a)
    bx, by = coords(b)
    return ~(separated_by_edges_of(ax, ay, bx, by) | separated_by_edges_of(bx, by, ax, ay))


def _edges_cross(a: np.ndarray, b: np.ndarray, side_b: list[np.ndarray], tolerance: np.ndarray) -> np.ndarray:
    """Some edge of b properly crosses the interior of a. ``side_b``: b's corners against a's plane
    (zero within tolerance); ``tolerance``: below it an orientation is zero — a crossing that
    grazes a's boundary (edges meeting edges at a point) is touching, not crossing."""
    hit = np.zeros(len(a), dtype=bool)
    for k in range(3):
        p, q = b[:, k], b[:, (k + 1) % 3]
        through = side_b[k] * side_b[(k + 1) % 3] < 0
        o = [_orient3d(p, q, a[:, m], a[:, (m + 1) % 3]) for m in range(3)]
        positive = (o[0] > tolerance) & (o[1] > tolerance) & (o[2] > tolerance)
        negative = (o[0] < -tolerance) & (o[1] < -tolerance) & (o[2] < -tolerance)
        hit |= through & (positive | negative)
    return hit


def intersecting_pairs(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(K, 2) face index pairs (i < j) that self-intersect; ``faces`` welded, no degenerate faces."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    tri = v[f]
    i, j = _candidate_pairs(tri)
    if len(i) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    # per face: plane (normal n, offset n.v0), |n| and longest edge, for the side tests
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    offset = np.einsum("ij,ij->i", normal, tri[:, 0])
    norm = np.sqrt(np.einsum("ij,ij->i", normal, normal))
    longest = np.sqrt(((tri - np.roll(tri, 1, axis=1)) ** 2).sum(axis=2).max(axis=1))
    out = []
    for start in range(0, len(i), _PAIR_CHUNK):
        ii, jj = i[start:start + _PAIR_CHUNK], j[start:start + _PAIR_CHUNK]
        fi, fj = f[ii], f[jj]
        shared = (fi[:, :, None] == fj[:, None, :]).sum(axis=(1, 2))
        pair_longest = np.maximum(longest[ii], longest[jj])
        reach = pair_longest * COPLANAR_TOLERANCE
        # signed distances x |n| of each triangle's corners to the other's plane; within tolerance: 0
        side_b = np.einsum("pj,pkj->pk", normal[ii], tri[jj]) - offset[ii][:, None]
        side_a = np.einsum("pj,pkj->pk", normal[jj], tri[ii]) - offset[jj][:, None]
        side_b[np.abs(side_b) <= (reach * norm[ii])[:, None]] = 0.0
        side_a[np.abs(side_a) <= (reach * norm[jj])[:, None]] = 0.0
        coplanar = ~side_b.any(axis=1) & (shared < 3)
        straddle = (((side_b > 0).any(axis=1) & (side_b < 0).any(axis=1))
                    & ((side_a > 0).any(axis=1) & (side_a < 0).any(axis=1)) & (shared < 2))
        hit = np.zeros(len(ii), dtype=bool)
        fold = coplanar & (shared == 2)
        if fold.any():  # coplanar across a shared edge: overlapping when folded onto one side
            hit[fold] = _folded(tri[ii[fold]], tri[jj[fold]], fi[fold], fj[fold])
        flat = coplanar & (shared < 2)
        if flat.any():
            hit[flat] = _coplanar_overlap(tri[ii[flat]], tri[jj[flat]], normal[ii[flat]])
        if straddle.any():
            a, b = tri[ii[straddle]], tri[jj[straddle]]
            sb, sa = side_b[straddle], side_a[straddle]
            tolerance = COPLANAR_TOLERANCE * pair_longest[straddle] ** 3
            hit[straddle] = _edges_cross(a, b, [sb[:, k] for k in range(3)], tolerance) | _edges_cross(
                b, a, [sa[:, k] for k in range(3)], tolerance)
        out.append(np.stack([ii[hit], jj[hit]], axis=1))
    return np.concatenate(out)


def _folded(a: np.ndarray, b: np.ndarray, fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """Coplanar triangles sharing an edge overlap when their third corners lie on the same side of it."""
    third_a = np.argmax(~(fa[:, :, None] == fb[:, None, :]).any(axis=2), axis=1)
    third_b = np.argmax(~(fb[:, :, None] == fa[:, None, :]).any(axis=2), axis=1)
    rows = np.arange(len(a))
    pa, pb = a[rows, third_a], b[rows, third_b]
    u, w = a[rows, (third_a + 1) % 3], a[rows, (third_a + 2) % 3]  # the shared edge
    side_a = np.cross(w - u, pa - u)
    side_b = np.cross(w - u, pb - u)
    return np.einsum("ij,ij->i", side_a, side_b) > 0
