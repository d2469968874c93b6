"""The node hierarchy of a glTF document: local and world matrices, and which nodes a scene draws.

Why our own (trimesh has one): skins need the world matrices of joint nodes, which may lie
outside the drawn scene, and the primitives drawn here rather than by trimesh (lines) need the
same world transforms trimesh gives the rest. Both follow glTF 2.0 §3.5.3: a node's ``matrix``
(column-major), else translation · rotation (unit quaternion x, y, z, w) · scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def local_matrix(node: dict[str, Any]) -> np.ndarray:
    """The node's 4x4 local transform."""
    if "matrix" in node:
        return np.asarray(node["matrix"], dtype=np.float64).reshape(4, 4).T
    x, y, z, w = (float(v) for v in node.get("rotation", (0.0, 0.0, 0.0, 1.0)))
    rotation = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    out = np.eye(4)
    out[:3, :3] = rotation * np.asarray(node.get("scale", (1.0, 1.0, 1.0)), dtype=np.float64)
    out[:3, 3] = np.asarray(node.get("translation", (0.0, 0.0, 0.0)), dtype=np.float64)
    return out


def parents(doc: dict[str, Any]) -> dict[int, int]:
    """child node -> parent node."""
    out: dict[int, int] = {}
    for index, node in enumerate(doc.get("nodes") or []):
        for child in node.get("children") or []:
            out[int(child)] = index
    return out


def world_matrices(doc: dict[str, Any]) -> list[np.ndarray]:
    """Every node's world matrix (parents' transforms applied), whether or not a scene draws it."""
    nodes = doc.get("nodes") or []
    parent = parents(doc)
    done: dict[int, np.ndarray] = {}

    def world(index: int, depth: int = 0) -> np.ndarray:
        if index not in done:
            if depth > len(nodes):
                raise ValueError("the node hierarchy has a cycle")
            up = parent.get(index)
            local = local_matrix(nodes[index])
            done[index] = local if up is None else world(up, depth + 1) @ local
        return done[index]

    return [world(i) for i in range(len(nodes))]


def scene_roots(doc: dict[str, Any]) -> list[int]:
    """The root nodes of the scene drawn (``scene``, else the first), or every parentless node."""
    scenes = doc.get("scenes") or []
    if scenes:
        index = int(doc.get("scene", 0))
        return [int(n) for n in (scenes[index] if 0 <= index < len(scenes) else scenes[0]).get("nodes") or []]
    parent = parents(doc)
    return [i for i in range(len(doc.get("nodes") or [])) if i not in parent]


def drawn_nodes(doc: dict[str, Any]) -> list[int]:
    """The nodes the drawn scene reaches, in depth-first order."""
    nodes = doc.get("nodes") or []
    out: list[int] = []
    seen: set[int] = set()
    stack = list(reversed(scene_roots(doc)))
    while stack:
        index = stack.pop()
        if index in seen or not 0 <= index < len(nodes):
            continue
        seen.add(index)
        out.append(index)
        stack.extend(reversed([int(c) for c in nodes[index].get("children") or []]))
    return out


def add_root(doc: dict[str, Any], node: dict[str, Any]) -> int:
    """Append ``node`` as a root of the drawn scene; its index."""
    doc.setdefault("nodes", []).append(node)
    index = len(doc["nodes"]) - 1
    scenes = doc.get("scenes") or []
    if scenes:
        scene = int(doc.get("scene", 0))
        scenes[scene if 0 <= scene < len(scenes) else 0].setdefault("nodes", []).append(index)
    return index
