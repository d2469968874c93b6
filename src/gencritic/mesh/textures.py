"""Texture checks: a texture a material names must end up on the drawn asset.

trimesh drops a texture it cannot decode without a word and the asset is drawn in its base
colour; a plausible picture with a wrong score. These checks name the texture the asset lost.
(Textures that are missing altogether are found before loading: :mod:`gencritic.mesh.sidefiles`.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gencritic.errors import ItemError
from gencritic.mesh.sidefiles import (
    map_file_candidates,
    mtl_map_file,
    mtl_textured_materials,
    obj_material_libraries,
    ply_texture_name,
)


def obj_textured_materials(path: Path, present_only: bool = False) -> dict[str, str]:
    """Material name -> the file name its ``map_Kd`` gives, over the OBJ's material libraries
    (``present_only``: only textures whose file is there)."""
    out: dict[str, str] = {}
    for lib in obj_material_libraries(path):
        mtl = path.parent / lib
        if mtl.is_file():
            for name, spec in mtl_textured_materials(mtl).items():
                if not present_only or mtl_map_file(mtl.parent, spec) is not None:
                    out.setdefault(name, map_file_candidates(spec)[0])
    return out


def check_obj_textures(scene: Any, path: Path) -> None:
    """Fail when a material whose MTL names a ``map_Kd`` image came out of trimesh without it
    (undecodable image): one untextured part among textured ones is as wrong as all of them.
    (Absent images were dealt with before loading: failed, or accepted with ``allow_untextured``.)"""
    textured = obj_textured_materials(path, present_only=True)
    if not textured:
        return
    for geom in scene.geometry.values():
        material = getattr(getattr(geom, "visual", None), "material", None)
        name = getattr(material, "name", None)
        if name in textured and getattr(material, "image", None) is None:
            raise ItemError(f"mesh {path.name}: the texture {textured[name]} of material {name} could not be read "
                            f"as an image (corrupt, or a format Pillow cannot open): convert it to PNG")


def texture_name(path: Path, material: str | None) -> str:
    """The file a material's base colour texture comes from, as the asset names it (an OBJ's
    ``map_Kd``, a glTF image's uri or name, or its index when embedded without a name)."""
    try:
        if path.suffix.lower() == ".obj" and material in obj_textured_materials(path):
            return obj_textured_materials(path)[str(material)]
        if path.suffix.lower() in (".gltf", ".glb"):
            from gencritic.mesh.gltf_accessors import read_document

            doc, _ = read_document(path)
            for mat in doc.get("materials") or []:
                info = (mat.get("pbrMetallicRoughness") or {}).get("baseColorTexture")
                if mat.get("name") == material and info and "index" in info:
                    source = int(doc["textures"][int(info["index"])]["source"])
                    image = doc["images"][source]
                    return str(image.get("uri") or image.get("name") or f"embedded image {source}")
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, ItemError):
        pass  # malformed: named as well as it can be below
    return declared_texture(path) or "(unnamed)"


def declared_texture(path: Path) -> str | None:
    """The first diffuse/base-colour texture the file's materials name (an OBJ's ``map_Kd``, a
    glTF material's ``baseColorTexture``), or None."""
    try:
        if path.suffix.lower() == ".obj":
            return next(iter(obj_textured_materials(path).values()), None)
        if path.suffix.lower() == ".ply":
            return ply_texture_name(path)
        if path.suffix.lower() in (".gltf", ".glb"):
            from gencritic.mesh.gltf_prepare import base_colour_images, read_document

            doc, _ = read_document(path)
            for source in base_colour_images(doc)[:1]:
                image = doc["images"][source]
                return str(image.get("uri") or image.get("name") or f"image {source}")
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, ItemError):
        pass  # malformed: the loader has already said what it could
    return None
