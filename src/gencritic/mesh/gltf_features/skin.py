"""Skins: each skinned node's mesh drawn in the pose its joints' node transforms give.

glTF 2.0 §3.7.3: a skinned vertex is ``sum_k w_k * world(joint_k) * inverseBind_k * v`` and the
skinned node's own transform is ignored. trimesh ignores skins and drew every skinned mesh at its
node's transform in its bind shape: RecursiveSkeletons' 84 skinned nodes, which share meshes, came
out as copies on top of each other. Here every skinned node gets its own copy of its mesh with
positions and normals skinned by the joints' world matrices (the file's node transforms: its rest
pose; animations are not played), placed under a new root node with no transform, and the
original node keeps no mesh. The pose drawn is named in the row's warnings (``skin``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from gencritic.mesh.gltf_features.edit import GltfEdit
from gencritic.mesh.gltf_features.nodes import add_root, drawn_nodes, world_matrices


def skinned_nodes(doc: dict[str, Any]) -> list[int]:
    """The drawn nodes that have both a mesh and a skin."""
    nodes = doc.get("nodes") or []
    return [i for i in drawn_nodes(doc) if isinstance(nodes[i].get("skin"), int) and isinstance(nodes[i].get("mesh"), int)]


def _joint_matrices(edit: GltfEdit, skin: dict[str, Any], world: list[np.ndarray]) -> np.ndarray:
    joints = [int(j) for j in skin.get("joints") or []]
    if "inverseBindMatrices" in skin:
        inverse = edit.values(skin["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
    else:
        inverse = np.tile(np.eye(4), (len(joints), 1, 1))
    return np.stack([world[j] for j in joints]) @ inverse[:len(joints)]


def _skin_matrices(edit: GltfEdit, attributes: dict[str, Any], joints: np.ndarray, fallback: np.ndarray,
                   count: int) -> np.ndarray:
    """(count, 4, 4) per-vertex blend of joint matrices; vertices without weight keep ``fallback``."""
    blend = np.zeros((count, 4, 4))
    total = np.zeros(count)
    k = 0
    while f"JOINTS_{k}" in attributes and f"WEIGHTS_{k}" in attributes:
        index = edit.integers(attributes[f"JOINTS_{k}"])
        weight = edit.values(attributes[f"WEIGHTS_{k}"])
        if len(index) != count or len(weight) != count:
            raise ValueError("JOINTS/WEIGHTS count differs from POSITION's")
        if index.size and (index.min() < 0 or index.max() >= len(joints)):
            raise ValueError("a JOINTS index is outside the skin's joint list")
        for c in range(index.shape[1]):
            blend += weight[:, c, None, None] * joints[index[:, c]]
            total += weight[:, c]
        k += 1
    unweighted = total <= 0
    blend[~unweighted] /= total[~unweighted, None, None]  # weights should sum to 1; writers round
    blend[unweighted] = fallback
    return blend


def _skinned_mesh(edit: GltfEdit, mesh: dict[str, Any], joints: np.ndarray, fallback: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(mesh))
    for prim in out.get("primitives") or []:
        attributes = prim.get("attributes") or {}
        if "POSITION" not in attributes:
            continue
        positions = edit.values(attributes["POSITION"])
        blend = _skin_matrices(edit, attributes, joints, fallback, len(positions))
        moved = np.einsum("nij,nj->ni", blend[:, :3, :3], positions) + blend[:, :3, 3]
        attributes["POSITION"] = edit.add_accessor(moved)
        if "NORMAL" in attributes:
            normals = edit.values(attributes["NORMAL"])
            linear = blend[:, :3, :3]
            det = np.linalg.det(linear)
            ok = np.abs(det) > 1e-12
            turned = np.zeros_like(normals)
            turned[ok] = np.einsum("nji,nj->ni", np.linalg.inv(linear[ok]), normals[ok])  # inverse-transpose
            length = np.linalg.norm(turned, axis=1, keepdims=True)
            turned = np.divide(turned, length, out=np.zeros_like(turned), where=length > 0)
            attributes["NORMAL"] = edit.add_accessor(turned)
        for key in [k for k in attributes if k.startswith(("JOINTS_", "WEIGHTS_"))]:
            del attributes[key]
    return out


def pose_skins(edit: GltfEdit) -> int:
    """Skin every skinned node's mesh into world space under a new root; how many were posed."""
    doc = edit.doc
    nodes, meshes, skins = doc.get("nodes") or [], doc.get("meshes") or [], doc.get("skins") or []
    targets = skinned_nodes(doc)
    if not targets:
        return 0
    world = world_matrices(doc)
    for index in targets:
        node = nodes[index]
        skin = skins[int(node["skin"])]
        joints = _joint_matrices(edit, skin, world)
        meshes.append(_skinned_mesh(edit, meshes[int(node["mesh"])], joints, world[index]))
        add_root(doc, {"mesh": len(meshes) - 1, "name": f"{node.get('name', index)} (skinned)"})
        del node["mesh"]
        node.pop("skin", None)
    edit.changed = True
    return len(targets)
