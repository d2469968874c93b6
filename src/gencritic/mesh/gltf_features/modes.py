"""Primitive modes other than plain triangles (glTF 2.0 §3.7.2.1).

trimesh reads triangles, strips and points; it skipped fans, line loops and line strips without a
word, and read ``LINES`` as one polyline through every vertex (indices and pairs ignored), which
the loader then dropped. So before trimesh: strips and fans become indexed triangles (the
specification's vertex order, so winding is kept), and every line primitive (lines, loop, strip)
is taken out of the document and drawn here as segments as wide as points are (``point_size``),
coloured by ``COLOR_0`` x the material's base colour factor (textures on lines are not drawn)
and lit as a surface facing the camera would be, so white lines show on the white background.
Points stay with trimesh, which draws them as points, lit the same way. Lines and points are named
in the row's warnings: they are drawn at a fixed pixel size, which no viewer standardises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gencritic.mesh.gltf_features.edit import GltfEdit, mesh_primitives
from gencritic.mesh.gltf_features.nodes import drawn_nodes, world_matrices

POINTS, LINES, LINE_LOOP, LINE_STRIP, TRIANGLES, TRIANGLE_STRIP, TRIANGLE_FAN = range(7)
LINE_MODES = (LINES, LINE_LOOP, LINE_STRIP)


def _sequence(edit: GltfEdit, prim: dict[str, Any]) -> np.ndarray:
    """The primitive's vertex sequence: its indices, or 0..count-1 without them."""
    if "indices" in prim:
        return edit.integers(prim["indices"]).reshape(-1)
    count = int(edit.doc["accessors"][int(prim["attributes"]["POSITION"])]["count"])
    return np.arange(count, dtype=np.int64)


def strip_triangles(seq: np.ndarray) -> np.ndarray:
    """(n-2, 3): triangle i of a strip is (v_i, v_{i+1+i%2}, v_{i+2-i%2})."""
    i = np.arange(max(len(seq) - 2, 0))
    return np.stack([seq[i], seq[i + 1 + i % 2], seq[i + 2 - i % 2]], axis=1)


def fan_triangles(seq: np.ndarray) -> np.ndarray:
    """(n-2, 3): triangle i of a fan is (v_{i+1}, v_{i+2}, v_0)."""
    i = np.arange(max(len(seq) - 2, 0))
    return np.stack([seq[i + 1], seq[i + 2], np.full(len(i), seq[0] if len(seq) else 0)], axis=1)


def line_segments(seq: np.ndarray, mode: int) -> np.ndarray:
    """(m, 2) vertex pairs of a lines / line loop / line strip primitive."""
    if mode == LINES:
        return seq[: len(seq) // 2 * 2].reshape(-1, 2)
    pairs = np.stack([seq[:-1], seq[1:]], axis=1) if len(seq) > 1 else np.zeros((0, 2), np.int64)
    if mode == LINE_LOOP and len(seq) > 2:
        pairs = np.concatenate([pairs, [[seq[-1], seq[0]]]])
    return pairs


def triangulate_strips_and_fans(edit: GltfEdit) -> None:
    """Strips and fans become indexed triangle lists."""
    for _, _, prim in mesh_primitives(edit.doc):
        mode = int(prim.get("mode", TRIANGLES))
        if mode in (TRIANGLE_STRIP, TRIANGLE_FAN) and "POSITION" in (prim.get("attributes") or {}):
            seq = _sequence(edit, prim)
            faces = strip_triangles(seq) if mode == TRIANGLE_STRIP else fan_triangles(seq)
            prim["indices"] = edit.add_accessor(faces.reshape(-1), component=5125)
            prim["mode"] = TRIANGLES
            edit.changed = True


@dataclass
class LineSet:
    """Segments to draw, in the file's world frame."""

    positions: np.ndarray  # float64 (n, 3)
    colors: np.ndarray  # float32 (n, 4) sRGB
    segments: np.ndarray  # int64 (m, 2)
    unlit: bool = False  # its material is KHR_materials_unlit: drawn in its colour, not lit as facing the camera


def _material(doc: dict[str, Any], prim: dict[str, Any]) -> dict[str, Any]:
    materials = doc.get("materials") or []
    index = prim.get("material")
    material = materials[index] if isinstance(index, int) and 0 <= index < len(materials) else {}
    return material if isinstance(material, dict) else {}


def _factor(material: dict[str, Any]) -> np.ndarray:
    return np.asarray((material.get("pbrMetallicRoughness") or {}).get("baseColorFactor", [1, 1, 1, 1]), np.float64)


def take_lines(edit: GltfEdit) -> list[LineSet]:
    """Remove line primitives from the document; the segments of those the scene draws."""
    from gencritic.mesh.colors import srgb_from_linear

    doc = edit.doc
    meshes = doc.get("meshes") or []
    lines: dict[int, list[dict[str, Any]]] = {}
    for m, mesh in enumerate(meshes):
        prims = mesh.get("primitives") or []
        keep = [p for p in prims if int(p.get("mode", TRIANGLES)) not in LINE_MODES]
        if len(keep) != len(prims):
            lines[m] = [p for p in prims if int(p.get("mode", TRIANGLES)) in LINE_MODES]
            mesh["primitives"] = keep
            edit.changed = True
    if not lines:
        return []
    nodes = doc.get("nodes") or []
    world = world_matrices(doc)
    out: list[LineSet] = []
    for index in drawn_nodes(doc):
        mesh_index = nodes[index].get("mesh")
        for prim in lines.get(mesh_index, []) if isinstance(mesh_index, int) else []:
            attributes = prim.get("attributes") or {}
            if "POSITION" not in attributes:
                continue
            positions = edit.values(attributes["POSITION"])
            moved = positions @ world[index][:3, :3].T + world[index][:3, 3]
            rgba = np.ones((len(positions), 4))
            if "COLOR_0" in attributes:
                colour = edit.values(attributes["COLOR_0"])
                rgba[:, : colour.shape[1]] = colour
            material = _material(doc, prim)
            rgba = rgba * _factor(material)
            rgba[:, :3] = srgb_from_linear(np.clip(rgba[:, :3], 0.0, 1.0))
            segments = line_segments(_sequence(edit, prim), int(prim.get("mode", TRIANGLES)))
            if len(segments) and (segments.min() < 0 or segments.max() >= len(positions)):
                raise ValueError("a line index is outside its vertex list")
            out.append(LineSet(moved, rgba.astype(np.float32), segments,
                               "KHR_materials_unlit" in (material.get("extensions") or {})))
    for m in lines:  # a mesh left with no primitive is dropped from its nodes: nothing of it is drawn
        if not meshes[m]["primitives"]:
            for node in nodes:
                if node.get("mesh") == m:
                    del node["mesh"]
    return out
