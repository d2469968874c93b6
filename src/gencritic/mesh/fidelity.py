"""What of an asset's appearance the renderer leaves out, said before it is drawn.

The rasteriser draws base colour (texture x factor x vertex colour) under the rig's light.
Some of what a file asks for is not drawn: emissive materials glow in a viewer and are drawn by
their base colour here; glTF material extensions such as transmission or clearcoat are ignored;
a ``.blend`` material whose colour comes from procedural nodes reaches the GLB as a plain colour;
an asset allowed to be drawn without its missing textures (``allow_untextured``) is drawn plain.
Each is a row warning (:mod:`gencritic.row_warnings`), so the number's reader sees it.

Why a check of its own, from the files, before the render cache is asked: a cached render holds
pixels, not how they were made, and entries written before warnings existed hold none. So
:func:`asset_warnings` reads the asset's side files, material library and glTF JSON (cheap next to
a render: the OBJ scan is shared with hashing) each time the asset is rendered or served from
the cache, and a row says the same whether its views were drawn now or earlier. What must not be
drawn degraded without being asked (missing textures and material libraries) fails here, so an
old cache entry of a grey render is never served for it either.

Metallic/roughness, normal and occlusion maps are not warned about: the renderer never models
them (docs/rendering.md), so every PBR asset would carry the same warning and the column would
stop telling assets apart.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

from gencritic.errors import ItemError
from gencritic.mesh.kit import is_kit, read_kit
from gencritic.mesh.sidefiles import (
    check_side_files,
    mtl_material_blocks,
    obj_material_libraries,
    obj_used_materials,
)
from gencritic.row_warnings import kind_of, warning

# glTF material extensions that change what a viewer sees and that the rasteriser ignores
GLTF_MATERIAL_EXTENSIONS_NOT_DRAWN: dict[str, str] = {
    "KHR_materials_transmission": "light passing through the surface",
    "KHR_materials_volume": "a see-through volume",
    "KHR_materials_diffuse_transmission": "light passing through thin surfaces",
    "KHR_materials_clearcoat": "a clear coat",
    "KHR_materials_sheen": "cloth sheen",
    "KHR_materials_iridescence": "iridescence",
    "KHR_materials_specular": "a specular colour",
    "KHR_materials_anisotropy": "anisotropic highlights",
    "KHR_materials_dispersion": "dispersion",
}
# kinds of the notes Blender's conversion writes (mesh/blend_worker.py); others count as this one
BLEND_NOTE_KIND = "blend-export"


def asset_warnings(path: Path, allow_untextured: bool = False) -> list[str]:
    """The row warnings of the asset at ``path``; :class:`ItemError` for what may not be drawn
    degraded (missing textures or material libraries, unless ``allow_untextured``)."""
    path = Path(path)
    if is_kit(path):  # every warning's text starts with the file it is about, so a part's say which part
        found: list[str] = []
        for part in read_kit(path):
            try:
                found += asset_warnings(part, allow_untextured)
            except ItemError as exc:
                raise ItemError(f"kit {path.name}, part {part.name}: {exc}") from None
        return found
    suffix = path.suffix.lower()
    if not path.is_file():
        return []  # the loader says what is wrong with it
    if suffix == ".blend":
        return _blend_warnings(path)
    out = check_side_files(path, allow_untextured)
    try:
        if suffix in (".glb", ".gltf"):
            from gencritic.mesh.gltf_accessors import read_document
            from gencritic.mesh.gltf_features.notes import gltf_feature_warnings

            doc = read_document(path)[0]
            out += gltf_material_warnings(doc, path.name) + gltf_feature_warnings(doc, path.name)
        elif suffix == ".obj":
            out += _obj_emissive_warnings(path)
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, ItemError):
        pass  # malformed: the loader fails the row with the reason
    return out


def _used_materials(doc: dict[str, Any]) -> list[int]:
    used: dict[int, None] = {}
    for mesh in doc.get("meshes") or []:
        for prim in mesh.get("primitives") or []:
            if isinstance(prim.get("material"), int):
                used[prim["material"]] = None
    return list(used)


def gltf_material_warnings(doc: dict[str, Any], name: str) -> list[str]:
    """Warnings for what the drawn materials of a glTF document ask for and the renderer leaves out."""
    out: list[str] = []
    materials = doc.get("materials") or []
    for index in _used_materials(doc):
        if not 0 <= index < len(materials) or not isinstance(materials[index], dict):
            continue
        material = materials[index]
        label = f"material {material.get('name') or index}"
        glow = [v for v in material.get("emissiveFactor") or [] if isinstance(v, (int, float))]
        if "emissiveTexture" in material or any(v > 0 for v in glow):
            what = "an emissive texture" if "emissiveTexture" in material else f"emissiveFactor {glow}"
            out.append(warning("emissive", f"{name}: {label} glows ({what}), which is not drawn: its base colour is "
                                           f"drawn under the rig's light"))
        for ext in material.get("extensions") or {}:
            if ext in GLTF_MATERIAL_EXTENSIONS_NOT_DRAWN:
                out.append(warning("material", f"{name}: {label} uses {ext} "
                                               f"({GLTF_MATERIAL_EXTENSIONS_NOT_DRAWN[ext]}), which is not drawn"))
    return out


_KE = re.compile(r"^\s*Ke\s+([-+0-9.eE]+)(?:\s+([-+0-9.eE]+)\s+([-+0-9.eE]+))?", re.MULTILINE)
_MAP_KE = re.compile(r"^\s*map_Ke\s+\S", re.MULTILINE)


def _obj_emissive_warnings(path: Path) -> list[str]:
    """An OBJ material its faces use with a non-black ``Ke`` or a ``map_Ke``: glowing, drawn by Kd."""
    used = set(obj_used_materials(path))
    out: list[str] = []
    for lib in obj_material_libraries(path):
        mtl = path.parent / lib
        if not mtl.is_file():
            continue
        for material, block in mtl_material_blocks(mtl).items():
            if material not in used:
                continue
            ke = _KE.search(block)
            glow = [float(v) for v in ke.groups() if v is not None] if ke else []
            if _MAP_KE.search(block) or any(v > 0 for v in glow):
                what = "map_Ke" if _MAP_KE.search(block) else f"Ke {' '.join(f'{v:g}' for v in glow)}"
                out.append(warning("emissive", f"{path.name}: material {material} ({mtl.name}) glows ({what}), "
                                               f"which is not drawn: its diffuse colour is drawn under the rig's light"))
    return out


def _blend_warnings(path: Path) -> list[str]:
    """The conversion's notes (what Blender's glTF export could not carry), and what the GLB it
    wrote asks for that is not drawn."""
    from gencritic.mesh.blend import converted_blend
    from gencritic.mesh.gltf_accessors import read_document

    converted = converted_blend(path)  # cached; ItemError when it cannot be converted
    out = []
    for note in converted.notes:
        kind = kind_of(note)
        body = note.partition(":")[2].strip() if kind != "other" else note
        out.append(warning(kind if kind != "other" else BLEND_NOTE_KIND, f"{path.name} (converted by Blender): {body}"))
    with contextlib.suppress(OSError, ValueError, ItemError):  # the loader fails the row with the reason
        out += gltf_material_warnings(read_document(converted.glb)[0], f"{path.name} (converted by Blender)")
    return out
