"""Turn trimesh geometry into :class:`~gencritic.mesh.data.Primitive` records, and check a
loaded asset can be drawn at all.

Scene-graph transforms (glTF nodes, instancing) are applied here, so a primitive's positions
are in the file's world frame. The file's up axis is NOT changed here: that is an explicit
render setting (``up``), see :mod:`gencritic.mesh.normalize`.

Normals: those stored in the file are used; a file without normals is shaded flat (the
renderer takes face normals from screen-space derivatives, so no vertex is duplicated). We do
not invent smooth normals, which would round off hard edges a generator made.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gencritic.errors import ItemError
from gencritic.mesh.colors import display_rgba, material_color_and_texture, rgba_float
from gencritic.mesh.data import MeshData, Primitive


def triangles_primitive(mesh: Any, transform: np.ndarray, linear_colours: bool = False,
                         float_factors: Sequence[tuple[str | None, np.ndarray]] = (),
                         linear_vertex_colours: bool | None = None) -> Primitive | None:
    """``linear_colours``: the file's material factors and vertex colours are linear (glTF by its
    specification, Blender's MTL files by Blender's convention) and are encoded to sRGB, the
    space textures are in and the renderer shades in. ``linear_vertex_colours`` overrides it for
    vertex colours (False when :mod:`gltf_prepare` has already encoded them)."""
    vertex_linear = linear_colours if linear_vertex_colours is None else linear_vertex_colours
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    if faces.size == 0 or vertices.size == 0:
        return None
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ItemError("mesh has face indices outside its vertex list (corrupt file)")
    visual: Any = getattr(mesh, "visual", None)
    kind = getattr(visual, "kind", None)
    n = len(vertices)
    colors = np.ones((n, 4), np.float32)
    uvs = None
    texture = None
    if kind == "texture":
        factor, texture = material_color_and_texture(visual, float_factors)
        colors = np.broadcast_to(display_rgba(factor, linear_colours), (n, 4)).copy()
        vcol = getattr(visual, "vertex_attributes", {}).get("color") if hasattr(visual, "vertex_attributes") else None
        if vcol is not None and len(vcol) == n:
            colors *= display_rgba(rgba_float(vcol, n), vertex_linear)
        uv = getattr(visual, "uv", None)
        if texture is not None and uv is not None and len(uv) == n:
            uv = np.asarray(uv, dtype=np.float32)
            # trimesh stores OBJ-style uv (v=0 at the image bottom); flip to row-major image space
            uvs = np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=1)
        else:
            texture = None
    elif kind == "vertex":
        colors = display_rgba(rgba_float(visual.vertex_colors, n), vertex_linear)
    has_file_normals = "vertex_normals" in getattr(getattr(mesh, "_cache", None), "cache", {})
    normals = np.asarray(mesh.vertex_normals, dtype=np.float64) if has_file_normals else None

    if kind == "face":  # per-face colours: one vertex per face corner
        corners = faces.reshape(-1)
        vertices = vertices[corners]
        colors = np.repeat(display_rgba(rgba_float(visual.face_colors, len(faces)), linear_colours), 3, axis=0)
        normals = None if normals is None else normals[corners]
        faces = np.arange(len(corners), dtype=np.int64).reshape(-1, 3)
    else:  # drop vertices no face uses, so they cannot move the bounding box
        used = np.unique(faces)
        if len(used) < len(vertices):
            remap = np.full(len(vertices), -1, dtype=np.int64)
            remap[used] = np.arange(len(used))
            vertices, colors = vertices[used], colors[used]
            normals = None if normals is None else normals[used]
            uvs = None if uvs is None else uvs[used]
            faces = remap[faces]

    world = vertices @ transform[:3, :3].T + transform[:3, 3]
    linear = transform[:3, :3]
    if normals is not None and abs(np.linalg.det(linear)) > 1e-12:
        normals = normals @ np.linalg.inv(linear)  # inverse-transpose, applied to row vectors
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        if not np.isfinite(normals).all() or (length < 1e-12).any():
            normals = None  # the file's normals are unusable: shade flat from the geometry instead
        else:
            normals = normals / length
    else:
        normals = None
    return Primitive("triangles", world.astype(np.float32), np.ascontiguousarray(colors, np.float32),
                     np.ascontiguousarray(faces.reshape(-1), dtype=np.uint32),
                     normals=None if normals is None else normals.astype(np.float32),
                     orientation=closed_orientation(world, faces),
                     uvs=None if uvs is None else np.ascontiguousarray(uvs, np.float32), texture=texture)


def closed_orientation(positions: np.ndarray, faces: np.ndarray) -> int:
    """+1 / -1 when every connected part is a closed, consistently wound surface and all parts
    are wound the same way seen from outside (+1: counter-clockwise, i.e. positive volume);
    0 otherwise (open, non-manifold, inconsistent, or parts disagreeing).

    Closed and consistent: every directed edge occurs once and its reverse occurs once. The
    sign comes from each part's signed volume, so a mirrored node transform (already baked into
    ``positions``) is accounted for. Meshes split at UV seams are not closed by index: they
    simply keep back faces, which is always correct.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    n = int(positions.shape[0])
    a = f.reshape(-1)
    b = f[:, [1, 2, 0]].reshape(-1)
    forward = a * n + b
    backward = b * n + a
    fwd_sorted = np.sort(forward)
    if np.any(fwd_sorted[1:] == fwd_sorted[:-1]):
        return 0  # an edge used twice in one direction: inconsistent or non-manifold
    idx = np.searchsorted(fwd_sorted, backward)
    idx[idx == len(fwd_sorted)] = 0
    if not np.array_equal(fwd_sorted[idx], backward):
        return 0  # a boundary edge: open surface
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    tri = positions.astype(np.float64)[f]
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6.0
    per_part = np.bincount(labels[f[:, 0]], weights=volume, minlength=count)
    used = np.unique(labels[f[:, 0]])
    signs = np.sign(per_part[used])
    if np.all(signs > 0):
        return 1
    if np.all(signs < 0):
        return -1
    return 0


def points_primitive(points: np.ndarray, colors: Any, transform: np.ndarray | None = None,
                      linear: bool = False) -> Primitive | None:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if pts.size == 0:
        return None
    if transform is not None:
        pts = pts @ transform[:3, :3].T + transform[:3, 3]
    n = len(pts)
    if colors is None or len(colors) != n:
        col = np.ones((n, 4), np.float32)
    else:
        col = display_rgba(rgba_float(colors, n), linear)
    return Primitive("points", pts.astype(np.float32), col)


def validate_mesh(data: MeshData, path: Path) -> None:
    if not data.primitives:
        raise ItemError(f"mesh {path.name} has no faces or points to draw (empty asset)")
    for prim in data.primitives:
        if not np.isfinite(prim.positions).all():
            raise ItemError(f"mesh {path.name} has NaN or infinite vertex coordinates (corrupt or degenerate)")
    lo, hi = data.bounds()
    extent = float((hi - lo).max())
    if not extent > 0.0:
        raise ItemError(f"mesh {path.name} is degenerate: all vertices at one point (zero-size bounding box)")
    if data.num_faces and not data.num_points and all(p.mode == "triangles" for p in data.primitives):
        areas = [np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1).sum()
                 for t in (p.positions.astype(np.float64)[p.indices.reshape(-1, 3)]
                           for p in data.primitives if p.indices is not None)]
        if float(sum(areas)) <= 1e-12 * extent * extent:
            raise ItemError(f"mesh {path.name} is degenerate: every triangle has zero area")
