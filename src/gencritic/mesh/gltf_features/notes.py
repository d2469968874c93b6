"""Row warnings for what of a glTF file is drawn approximately (:mod:`gencritic.row_warnings`).

Read from the JSON alone, like the other warnings of :mod:`gencritic.mesh.fidelity`, so a render
served from the cache says the same as a fresh one. Kinds:

* ``alpha-blend``: blended materials are drawn sorted far to near (per primitive, then per
  triangle, for each view), exact unless transparent surfaces intersect or interleave;
* ``lines`` / ``points``: drawn at a fixed pixel width (``point_size``), lit as a surface facing
  the camera; no viewer standardises their size;
* ``skin``: skinned meshes are drawn in the pose their joints' node transforms give (the file's
  rest pose), not any animation's.
"""

from __future__ import annotations

from typing import Any

from gencritic.mesh.gltf_features import modes
from gencritic.mesh.gltf_features.skin import skinned_nodes
from gencritic.row_warnings import warning


def gltf_feature_warnings(doc: dict[str, Any], name: str) -> list[str]:
    """The approximations drawing this document involves, as row warnings."""
    out: list[str] = []
    materials = doc.get("materials") or []
    prims = [p for mesh in doc.get("meshes") or [] for p in mesh.get("primitives") or [] if isinstance(p, dict)]
    blended = sorted({str(materials[p["material"]].get("name") or p["material"]) for p in prims
                      if isinstance(p.get("material"), int) and 0 <= p["material"] < len(materials)
                      and isinstance(materials[p["material"]], dict)
                      and materials[p["material"]].get("alphaMode") == "BLEND"})
    if blended:
        shown = ", ".join(blended[:3]) + (f" and {len(blended) - 3} more" if len(blended) > 3 else "")
        out.append(warning("alpha-blend", f"{name}: material{'s' if len(blended) > 1 else ''} {shown} blended in "
                                          f"sorted order (far to near), approximate where transparent surfaces "
                                          f"intersect"))
    kinds = {int(p.get("mode", modes.TRIANGLES)) for p in prims}
    if kinds & set(modes.LINE_MODES):
        out.append(warning("lines", f"{name}: line primitives drawn point_size pixels wide, lit as facing the camera"))
    if modes.POINTS in kinds:
        out.append(warning("points", f"{name}: point primitives drawn as squares point_size pixels wide, lit as "
                                     f"facing the camera"))
    posed = skinned_nodes(doc)
    if posed:
        animated = " (its animations are not played)" if doc.get("animations") else ""
        out.append(warning("skin", f"{name}: {len(posed)} skinned node{'s' if len(posed) > 1 else ''} drawn in the "
                                   f"rest pose its joints' node transforms give{animated}"))
    return out
