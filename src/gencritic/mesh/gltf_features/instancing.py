"""``EXT_mesh_gpu_instancing``: every instance of a node's mesh drawn, as a child node each.

Why: trimesh ignores the extension and drew one copy. An instance's transform (its TRANSLATION,
ROTATION, SCALE attributes) applies in the node's space, below the node's own transform, so each
becomes a child node with that TRS holding the mesh, and the node keeps no mesh.
"""

from __future__ import annotations

import numpy as np

from gencritic.mesh.gltf_features.edit import GltfEdit

EXTENSION = "EXT_mesh_gpu_instancing"


def expand_instances(edit: GltfEdit) -> None:
    nodes = edit.doc.get("nodes") or []
    for node in list(nodes):
        spec = (node.get("extensions") or {}).pop(EXTENSION, None)
        if not isinstance(spec, dict) or not isinstance(node.get("mesh"), int):
            continue
        attributes = spec.get("attributes") or {}
        columns = {k: edit.values(attributes[k]) for k in ("TRANSLATION", "ROTATION", "SCALE") if k in attributes}
        count = min((len(v) for v in columns.values()), default=0)
        mesh = node.pop("mesh")
        for i in range(count):
            child: dict[str, object] = {"mesh": mesh}
            if "TRANSLATION" in columns:
                child["translation"] = [float(v) for v in columns["TRANSLATION"][i, :3]]
            if "ROTATION" in columns:
                q = columns["ROTATION"][i, :4]
                child["rotation"] = [float(v) for v in q / (np.linalg.norm(q) or 1.0)]
            if "SCALE" in columns:
                child["scale"] = [float(v) for v in columns["SCALE"][i, :3]]
            nodes.append(child)
            node.setdefault("children", []).append(len(nodes) - 1)
        edit.changed = True
    for key in ("extensionsUsed", "extensionsRequired"):
        if key in edit.doc:
            edit.doc[key] = [e for e in edit.doc[key] if e != EXTENSION]
