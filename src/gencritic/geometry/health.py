"""Mesh health: is this asset usable as it is (in a game engine, a slicer, a physics engine)?

Weight-free facts about one asset, each a column of ``gencritic meshcheck``'s ``results.csv``:

* counts: ``faces``, ``vertices`` (distinct positions), ``render_vertices`` (as loaded: split at
  UV seams and hard normals, what a GPU draws), ``primitives``, ``points`` (point primitives);
* topology on the welded mesh (:mod:`.topology`): ``watertight``, ``boundary_edges``,
  ``non_manifold_edges``, ``inconsistent_winding_edges``, ``components`` (faces joined by edges);
* ``degenerate_faces`` — a vertex used twice after welding, or area below 1e-12 in the
  normalised frame (longest side 1: a sliver thinner than ~1e-6 of the asset);
  ``duplicate_faces`` — faces over the same three vertices as an earlier one;
* ``self_intersections`` — intersecting face pairs (:mod:`.intersections`), and
  ``self_intersecting_faces``, the faces in any of them;
* materials as declared by the file (:mod:`.materials`): ``materials``, ``pbr_channels``,
  ``material_extensions``, ``textures``, ``texture_resolution`` (the largest, ``WxH``),
  ``texture_max_side``, and ``missing_files``: textures or material libraries it names that are
  not beside it (the asset is still checked: they change colours, not the shape);
* UV layout of textured primitives (:mod:`.uv`): ``uv_coverage``, ``uv_overlap``,
  ``uv_outside`` (face-weighted means over textured primitives); empty without a texture.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from gencritic.geometry.intersections import intersecting_pairs
from gencritic.geometry.materials import material_info
from gencritic.geometry.sampling import face_areas
from gencritic.geometry.surface import load_mesh, missing_colour_files, surface_from_mesh
from gencritic.geometry.topology import edge_use, face_components, index_degenerate, weld
from gencritic.geometry.uv import uv_use

DEGENERATE_AREA = 1e-12  # in the normalised frame (longest bounding-box side 1)

HEALTH_COLUMNS = ("faces", "vertices", "render_vertices", "primitives", "points", "watertight", "boundary_edges",
                  "non_manifold_edges", "inconsistent_winding_edges", "components", "degenerate_faces",
                  "duplicate_faces", "self_intersections", "self_intersecting_faces", "materials", "pbr_channels",
                  "material_extensions", "textures", "texture_resolution", "texture_max_side", "missing_files", "uv_coverage",
                  "uv_overlap", "uv_outside")


def mesh_health(path: Path) -> dict[str, Any]:
    """Every health column of the asset at ``path``; raises ItemError when it cannot be read."""
    mesh = load_mesh(path)
    row: dict[str, Any] = {"primitives": len(mesh.primitives), "points": mesh.num_points,
                           "render_vertices": sum(p.count for p in mesh.primitives if p.mode == "triangles")}
    if mesh.num_faces:
        surface = surface_from_mesh(mesh)
        row.update(_topology(surface.vertices, surface.faces))
    else:  # a point cloud: no surface to judge
        row.update({"faces": 0, "vertices": 0, "watertight": False})
    row.update(_materials(path))
    row.update(_uv_columns(mesh))
    return row


def _topology(vertices: np.ndarray, faces: np.ndarray) -> dict[str, Any]:
    welded_v, welded_f = weld(vertices, faces)
    degenerate = index_degenerate(welded_f) | (face_areas(welded_v, welded_f) < DEGENERATE_AREA)
    proper = welded_f[~degenerate]
    key = np.sort(proper, axis=1)
    _, first = np.unique(key, axis=0, return_index=True)
    unique_faces = proper[np.sort(first)]
    use = edge_use(welded_f)
    pairs = intersecting_pairs(welded_v, unique_faces)
    return {"faces": len(faces), "vertices": len(welded_v), "watertight": use.watertight,
            "boundary_edges": use.boundary, "non_manifold_edges": use.non_manifold,
            "inconsistent_winding_edges": use.inconsistent_winding, "components": face_components(welded_f),
            "degenerate_faces": int(np.count_nonzero(degenerate)), "duplicate_faces": len(proper) - len(unique_faces),
            "self_intersections": len(pairs), "self_intersecting_faces": len(np.unique(pairs))}


def _materials(path: Path) -> dict[str, Any]:
    info = material_info(path)
    largest = info.largest()
    return {"materials": info.materials, "pbr_channels": ";".join(sorted(info.channels)),
            "material_extensions": ";".join(sorted(info.extensions)), "textures": len(info.textures),
            "texture_resolution": f"{largest[0]}x{largest[1]}" if largest else "",
            "texture_max_side": max(largest) if largest else math.nan,
            "missing_files": ";".join(missing_colour_files(path))}


def _uv_columns(mesh: Any) -> dict[str, Any]:
    textured = [p for p in mesh.primitives if p.mode == "triangles" and p.texture is not None and p.uvs is not None
                and min(p.texture.shape[:2]) > 2]  # trimesh's 2x2 placeholder is no texture
    if not textured:
        return {"uv_coverage": math.nan, "uv_overlap": math.nan, "uv_outside": math.nan}
    weights = np.array([p.num_faces for p in textured], dtype=np.float64)
    uses = [uv_use(p.uvs, p.indices.reshape(-1, 3), min(1024, max(p.texture.shape[:2]))) for p in textured]
    mean = lambda values: float(np.average(values, weights=weights))  # noqa: E731
    return {"uv_coverage": mean([u.coverage for u in uses]), "uv_overlap": mean([u.overlap for u in uses]),
            "uv_outside": mean([u.outside for u in uses])}
