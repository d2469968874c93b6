"""Independent references for the geometry tests: written from the definitions, sharing no code
with gencritic.geometry (scipy's cKDTree, trimesh's sampler, brute force, winding numbers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from gencritic.mesh import load_asset, normalization_transform


def normalised_triangles(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (normalised like rendering: bbox centre at 0, longest side 1) and faces of every
    triangle primitive in scene order — through gencritic's existing loader."""
    mesh = load_asset(path)
    model = normalization_transform(mesh.all_positions())
    prims = [p for p in mesh.primitives if p.mode == "triangles"]
    vertices, faces, offset = [], [], 0
    for p in prims:
        vertices.append(p.positions.astype(np.float64) @ model[:3, :3].T + model[:3, 3])
        faces.append(p.indices.reshape(-1, 3).astype(np.int64) + offset)
        offset += p.count
    return np.concatenate(vertices), np.concatenate(faces)


def trimesh_samples(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points and unit face normals as a paper's script gets them from trimesh."""
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    points, index = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return points, mesh.face_normals[index]


def reference_metrics(gen: tuple[np.ndarray, np.ndarray], ref: tuple[np.ndarray, np.ndarray], tau: float,
                      brute: bool = False) -> dict[str, float]:
    """Chamfer (both forms), F-score, normal consistency from nearest neighbours (cKDTree, or a
    full distance matrix when ``brute``)."""
    (pg, ng), (pr, nr) = gen, ref
    if brute:
        d = np.sqrt(((pg[:, None, :] - pr[None, :, :]) ** 2).sum(axis=2))
        ig, ir = d.argmin(axis=1), d.argmin(axis=0)
        dg, dr = d[np.arange(len(pg)), ig], d[ir, np.arange(len(pr))]
    else:
        dg, ig = cKDTree(pr).query(pg)
        dr, ir = cKDTree(pg).query(pr)
    precision, recall = float(np.mean(dg < tau)), float(np.mean(dr < tau))
    return {
        "chamfer_l1": (dg.mean() + dr.mean()) / 2,
        "chamfer_l2sq": (dg**2).mean() + (dr**2).mean(),
        "dist_gen_to_ref": dg.mean(),
        "dist_ref_to_gen": dr.mean(),
        "precision": precision,
        "recall": recall,
        "fscore": 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall),
        "normal_consistency": (np.abs((ng * nr[ig]).sum(1)).mean() + np.abs((nr * ng[ir]).sum(1)).mean()) / 2,
    }


def winding_numbers(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Generalised winding number of each point (Van Oosterom & Strackee solid angles / 4π)."""
    out = np.zeros(len(points))
    tri = vertices[faces]
    for start in range(0, len(points), 512):
        p = points[start:start + 512]
        a, b, c = (tri[None, :, k, :] - p[:, None, :] for k in range(3))
        la, lb, lc = (np.linalg.norm(x, axis=2) for x in (a, b, c))
        det = np.einsum("pfi,pfi->pf", a, np.cross(b, c))
        den = (la * lb * lc + np.einsum("pfi,pfi->pf", a, b) * lc + np.einsum("pfi,pfi->pf", b, c) * la
               + np.einsum("pfi,pfi->pf", c, a) * lb)
        out[start:start + 512] = 2 * np.arctan2(det, den).sum(axis=1) / (4 * np.pi)
    return out


def grid_centres(points: list[np.ndarray], resolution: int) -> np.ndarray:
    """The cell centres docs/3d_evaluation.md describes for volume IoU, as an (nx, ny, nz, 3) array."""
    allp = np.concatenate(points)
    lo, hi = allp.min(0), allp.max(0)
    step = (hi - lo).max() / resolution
    shape = [int(max(1, min(resolution, np.ceil((hi[a] - lo[a]) / step - 1e-9)))) for a in range(3)]
    origin = (lo + hi) / 2 - np.array(shape) * step / 2
    axes = [origin[a] + (np.arange(shape[a]) + 0.5) * step for a in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def _plane_interval(t: np.ndarray, d: np.ndarray, origin: np.ndarray, direction: np.ndarray) -> tuple[float, float] | None:
    """Where triangle ``t`` meets the other's plane (signed distances ``d``), as an interval on the line."""
    pts = [t[k] for k in range(3) if d[k] == 0]
    for k in range(3):
        m = (k + 1) % 3
        if d[k] * d[m] < 0:
            pts.append(t[k] + (t[m] - t[k]) * (d[k] / (d[k] - d[m])))
    if not pts:
        return None
    s = [float(np.dot(p - origin, direction)) for p in pts]
    return min(s), max(s)


def _clip_area(subject: np.ndarray, clip: np.ndarray) -> float:
    """Area of a 2D convex polygon clipped by a triangle (Sutherland–Hodgman)."""
    if (clip[1, 0] - clip[0, 0]) * (clip[2, 1] - clip[0, 1]) - (clip[1, 1] - clip[0, 1]) * (clip[2, 0] - clip[0, 0]) < 0:
        clip = clip[::-1]
    poly = list(subject)
    for k in range(3):
        a, b = clip[k], clip[(k + 1) % 3]
        inside = lambda p, a=a, b=b: (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) > 0  # noqa: E731
        new = []
        for i, p in enumerate(poly):
            q = poly[(i + 1) % len(poly)]
            if inside(p):
                new.append(p)
            if inside(p) != inside(q):
                e, f = b - a, q - p
                denom = e[0] * f[1] - e[1] * f[0]
                if denom != 0:
                    t = (e[0] * (p[1] - a[1]) - e[1] * (p[0] - a[0])) / -denom
                    new.append(p + t * f)
        poly = new
        if not poly:
            return 0.0
    xy = np.array(poly)
    return 0.5 * abs(float(np.dot(xy[:, 0], np.roll(xy[:, 1], -1)) - np.dot(xy[:, 1], np.roll(xy[:, 0], -1))))


def triangles_intersect(a: np.ndarray, b: np.ndarray, shared: int) -> bool:
    """Reference rule: non-coplanar pairs cross when the overlap of their intervals on the planes'
    common line is longer than touching (not for a shared edge); coplanar ones when their 2D
    overlap has area."""
    na, nb = np.cross(a[1] - a[0], a[2] - a[0]), np.cross(b[1] - b[0], b[2] - b[0])
    scale = max(np.linalg.norm(a[k] - a[m]) for k in range(3) for m in range(3))
    scale = max(scale, max(np.linalg.norm(b[k] - b[m]) for k in range(3) for m in range(3)))
    db = np.array([np.dot(na, b[k] - a[0]) for k in range(3)]) / np.linalg.norm(na)
    da = np.array([np.dot(nb, a[k] - b[0]) for k in range(3)]) / np.linalg.norm(nb)
    db[np.abs(db) <= 1e-9 * scale] = 0
    da[np.abs(da) <= 1e-9 * scale] = 0
    if not db.any():  # coplanar
        axis = int(np.argmax(np.abs(na)))
        keep = [i for i in range(3) if i != axis]
        return _clip_area(a[:, keep], b[:, keep]) > 1e-12 * scale * scale
    if shared >= 2:
        return False
    direction = np.cross(na, nb)
    direction /= np.linalg.norm(direction)
    ia = _plane_interval(a, da, a[0], direction)
    ib = _plane_interval(b, db, a[0], direction)
    if ia is None or ib is None:
        return False
    return min(ia[1], ib[1]) - max(ia[0], ib[0]) > 1e-9 * scale


def brute_force_intersections(vertices: np.ndarray, faces: np.ndarray) -> set[tuple[int, int]]:
    tri = vertices[faces]
    lo, hi = tri.min(1), tri.max(1)
    out = set()
    for i in range(len(faces)):
        overlap = np.all((lo[i] <= hi[i + 1:]) & (lo[i + 1:] <= hi[i]), axis=1)
        for j in np.flatnonzero(overlap) + i + 1:
            shared = len(set(faces[i]) & set(faces[j]))
            if shared < 3 and triangles_intersect(tri[i], tri[j], shared):
                out.add((i, int(j)))
    return out
