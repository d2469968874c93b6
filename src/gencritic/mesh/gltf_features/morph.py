"""Morph targets: each mesh drawn with its default weights applied (glTF 2.0 §3.7.2.2).

Why: trimesh ignores ``targets``, so MorphPrimitivesTest and SimpleMorph were drawn unmorphed.
A node's ``weights`` override its mesh's; a mesh used by nodes with different weights gets one
baked copy per set of weights. Positions, normals, texture coordinates and colours are moved
(``base + sum(w_i * target_i)``); animations are not played (the file's default weights are drawn).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from gencritic.mesh.gltf_features.edit import GltfEdit

_MORPHED = ("POSITION", "NORMAL", "TEXCOORD_", "COLOR_")


def _weights(node: dict[str, Any], mesh: dict[str, Any]) -> tuple[float, ...]:
    weights = node.get("weights", mesh.get("weights")) or []
    return tuple(float(w) for w in weights)


def has_morph_weights(doc: dict[str, Any]) -> bool:
    """Whether some drawn mesh has morph targets and a non-zero default weight."""
    meshes = doc.get("meshes") or []
    for node in doc.get("nodes") or []:
        if isinstance(node.get("mesh"), int) and 0 <= node["mesh"] < len(meshes):
            mesh = meshes[node["mesh"]]
            if any(p.get("targets") for p in mesh.get("primitives") or []) and any(_weights(node, mesh)):
                return True
    return False


def _bake(edit: GltfEdit, mesh: dict[str, Any], weights: tuple[float, ...]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(mesh))
    out.pop("weights", None)
    for prim in out.get("primitives") or []:
        targets = prim.pop("targets", None) or []
        attributes = prim.get("attributes") or {}
        for semantic, accessor in list(attributes.items()):
            if not semantic.startswith(_MORPHED):
                continue
            moves = [(w, t[semantic]) for w, t in zip(weights, targets, strict=False) if w and semantic in t]
            if not moves:
                continue
            values = edit.values(accessor)
            for weight, target in moves:
                values = values + weight * edit.values(target)
            if semantic == "NORMAL":
                length = np.linalg.norm(values, axis=1, keepdims=True)
                values = np.divide(values, length, out=np.zeros_like(values), where=length > 0)
            attributes[semantic] = edit.add_accessor(values)
    return out


def bake_morph_targets(edit: GltfEdit) -> None:
    """Give every node whose mesh has morph targets a mesh with its default weights applied."""
    doc = edit.doc
    meshes = doc.get("meshes") or []
    baked: dict[tuple[int, tuple[float, ...]], int] = {}
    for node in doc.get("nodes") or []:
        index = node.get("mesh")
        if not isinstance(index, int) or not 0 <= index < len(meshes):
            continue
        mesh = meshes[index]
        if not any(p.get("targets") for p in mesh.get("primitives") or []):
            continue
        weights = _weights(node, mesh)
        node.pop("weights", None)
        if not any(weights):
            continue
        key = (index, weights)
        if key not in baked:
            meshes.append(_bake(edit, mesh, weights))
            baked[key] = len(meshes) - 1
        node["mesh"] = baked[key]
        edit.changed = True
