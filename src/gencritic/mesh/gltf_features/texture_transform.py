"""``KHR_texture_transform`` on base-colour textures: applied to the texture coordinates.

Why: the renderer samples one texture per primitive with one set of coordinates, so the
transform (offset, rotation, scale, and a ``texCoord`` that overrides the texture info's) is
applied once, here, to that set: ``uv' = T(offset) R(rotation) S(scale) uv`` with glTF's matrix
(rows ``[[c, s], [-s, c]]``, as three.js's loader applies it; checked against Khronos'
TextureTransformTest, whose arrow then points at its green marker and not at the red one that
marks a rotation the wrong way). The result becomes the
primitive's ``TEXCOORD_0`` and the material's reference a plain one. This is also what makes
gltfpack's default output and Khronos' glTF-Quantized models drawable: they store quantized
coordinates and de-quantize them with this transform. Transforms on other textures (normal,
occlusion maps) are left alone: those textures are not drawn.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gencritic.mesh.gltf_features.edit import GltfEdit, mesh_primitives

EXTENSION = "KHR_texture_transform"


def uv_matrix(transform: dict[str, Any]) -> np.ndarray:
    """The 3x3 matrix the extension defines: translation · rotation · scale."""
    ox, oy = (float(v) for v in transform.get("offset", (0.0, 0.0)))
    sx, sy = (float(v) for v in transform.get("scale", (1.0, 1.0)))
    r = float(transform.get("rotation", 0.0))
    c, s = math.cos(r), math.sin(r)
    translation = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]], dtype=np.float64)
    rotation = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]], dtype=np.float64)
    scale = np.array([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], dtype=np.float64)
    return translation @ rotation @ scale


def _info(material: Any) -> dict[str, Any] | None:
    if not isinstance(material, dict):
        return None
    info = (material.get("pbrMetallicRoughness") or {}).get("baseColorTexture")
    return info if isinstance(info, dict) else None


def has_base_colour_transform(doc: dict[str, Any]) -> bool:
    return any(EXTENSION in ((_info(m) or {}).get("extensions") or {}) for m in doc.get("materials") or [])


def apply_texture_transforms(edit: GltfEdit) -> None:
    """Bake every base-colour texture transform into the coordinates of the primitives using it."""
    materials = edit.doc.get("materials") or []
    plans: dict[int, tuple[int, np.ndarray]] = {}  # material -> (texCoord set, matrix)
    for index, material in enumerate(materials):
        info = _info(material)
        transform = ((info or {}).get("extensions") or {}).get(EXTENSION)
        if info is None or not isinstance(transform, dict):
            continue
        plans[index] = (int(transform.get("texCoord", info.get("texCoord", 0))), uv_matrix(transform))
    if not plans:
        return
    done: dict[tuple[int, bytes], int] = {}
    for _, _, prim in mesh_primitives(edit.doc):
        material = prim.get("material")
        if not isinstance(material, int) or material not in plans:
            continue
        uv_set, matrix = plans[material]
        attributes = prim.get("attributes") or {}
        source = attributes.get(f"TEXCOORD_{uv_set}")
        if source is None:
            continue  # no coordinates: the texture cannot be applied, which the loader reports
        key = (int(source), matrix.tobytes())
        if key not in done:
            uv = edit.values(source)[:, :2]
            done[key] = edit.add_accessor(uv @ matrix[:2, :2].T + matrix[:2, 2])
        attributes["TEXCOORD_0"] = done[key]
    for index in plans:
        info = _info(materials[index])
        assert info is not None
        del info["extensions"][EXTENSION]
        info["texCoord"] = 0
    edit.changed = True
