"""What of a glTF material the renderer draws beyond its colour: alpha mode and cut-off, unlit.

glTF materials are ``OPAQUE`` (alpha ignored), ``MASK`` (fragments whose alpha is below
``alphaCutoff``, default 0.5, are cut away) or ``BLEND`` (alpha-blended), and
``KHR_materials_unlit`` ones show their base colour without lighting. Foliage, hair and decals
were drawn as solid cards before. A base-colour texture's sampler may clamp (``CLAMP_TO_EDGE``) or
mirror (``MIRRORED_REPEAT``) its coordinates instead of repeating them.

How the flags reach the renderer through trimesh, which keeps neither the extension nor which
primitive a geometry came from: primitives whose material needs a flag are given meshes of their
own (a mesh with several primitives is split, its other primitives hung on child nodes without a
transform), and each such mesh carries the material's index in its ``extras``, which trimesh
copies into the geometry's ``metadata``. The loader then reads the material from the document.
"""

from __future__ import annotations

import json
from typing import Any

from gencritic.mesh.gltf_features.edit import GltfEdit

TAG = "gencritic_material"
UNLIT = "KHR_materials_unlit"
REPEAT, CLAMP_TO_EDGE, MIRRORED_REPEAT = 10497, 33071, 33648


def base_colour_wrap(doc: dict[str, Any], material: Any) -> tuple[int, int]:
    """(wrapS, wrapT) of the sampler of the material's base-colour texture (REPEAT by default)."""
    info = ((material or {}).get("pbrMetallicRoughness") or {}).get("baseColorTexture") \
        if isinstance(material, dict) else None
    try:
        texture = (doc.get("textures") or [])[int(info["index"])] if isinstance(info, dict) else None
        sampler = (doc.get("samplers") or [])[int(texture["sampler"])] if texture and "sampler" in texture else {}
    except (IndexError, KeyError, TypeError, ValueError):
        return REPEAT, REPEAT
    return int(sampler.get("wrapS", REPEAT)), int(sampler.get("wrapT", REPEAT))


def _special(doc: dict[str, Any], material: Any) -> bool:
    return isinstance(material, dict) and (material.get("alphaMode") in ("MASK", "BLEND")
                                           or UNLIT in (material.get("extensions") or {})
                                           or base_colour_wrap(doc, material) != (REPEAT, REPEAT))


def _tag(doc: dict[str, Any], prim: dict[str, Any]) -> int | None:
    materials = doc.get("materials") or []
    index = prim.get("material")
    ok = isinstance(index, int) and 0 <= index < len(materials) and _special(doc, materials[index])
    return index if ok else None


def needs_tags(doc: dict[str, Any]) -> bool:
    """Whether a primitive uses a material that is masked, blended, unlit or clamps its texture."""
    return any(_tag(doc, p) is not None for mesh in doc.get("meshes") or [] for p in mesh.get("primitives") or [])


def tag_primitives(edit: GltfEdit) -> None:
    """Give every primitive whose material needs a flag a tagged mesh of its own."""
    doc = edit.doc
    meshes = doc.get("meshes") or []
    split: dict[int, list[int]] = {}  # mesh -> the meshes of its 2nd, 3rd... primitives
    for index in range(len(meshes)):
        mesh = meshes[index]
        prims = mesh.get("primitives") or []
        tags = [_tag(doc, p) for p in prims]
        if not any(t is not None for t in tags):
            continue
        extras = mesh.get("extras") if isinstance(mesh.get("extras"), dict) else {}
        rest = []
        for prim, tag in list(zip(prims, tags, strict=True))[1:]:
            copy = {k: json.loads(json.dumps(v)) for k, v in mesh.items() if k not in ("primitives", "extras")}
            meshes.append({**copy, "primitives": [prim], "extras": {**extras, TAG: tag}})
            rest.append(len(meshes) - 1)
        mesh["primitives"] = prims[:1]
        mesh["extras"] = {**extras, TAG: tags[0]}
        if rest:
            split[index] = rest
    nodes = doc.get("nodes") or []
    for node in list(nodes):
        for extra in split.get(node.get("mesh"), []) if isinstance(node.get("mesh"), int) else []:
            nodes.append({"mesh": extra})
            node.setdefault("children", []).append(len(nodes) - 1)
    edit.changed = True


def material_flags(metadata: Any, doc: dict[str, Any]) -> tuple[str, float, bool, bool, tuple[int, int]] | None:
    """(alpha mode, alpha cut-off, unlit, double-sided, (wrapS, wrapT)) of a tagged geometry's
    material, or None."""
    index = metadata.get(TAG) if isinstance(metadata, dict) else None
    materials = doc.get("materials") or []
    if not isinstance(index, int) or not 0 <= index < len(materials) or not isinstance(materials[index], dict):
        return None
    material = materials[index]
    mode = material.get("alphaMode", "OPAQUE")
    return (mode if mode in ("OPAQUE", "MASK", "BLEND") else "OPAQUE", float(material.get("alphaCutoff", 0.5)),
            UNLIT in (material.get("extensions") or {}), bool(material.get("doubleSided", False)),
            base_colour_wrap(doc, material))
