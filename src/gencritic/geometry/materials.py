"""What a file's materials declare: texture maps (PBR channels) and the size of each texture image.

Read from the file, not from the loaded mesh: the renderer keeps only the base colour, and a
loader's placeholder (trimesh gives an OBJ with UVs but no material a 2x2 image) is not a
texture the asset has. glTF: each material's ``pbrMetallicRoughness`` and core texture slots
plus its ``KHR_materials_*`` extensions; OBJ: the MTL statements of its material libraries;
PLY: Meshlab's ``comment TextureFile``. A .blend is read through its GLB conversion.
"""

from __future__ import annotations

import base64
import io
import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

GLTF_SLOTS = {"baseColorTexture": "base_color", "metallicRoughnessTexture": "metallic_roughness",
              "normalTexture": "normal", "occlusionTexture": "occlusion", "emissiveTexture": "emissive"}
MTL_SLOTS = {"map_kd": "base_color", "map_ks": "specular", "map_ns": "glossiness", "map_bump": "normal",
             "bump": "normal", "norm": "normal", "map_pr": "roughness", "map_pm": "metallic", "map_ke": "emissive",
             "map_d": "opacity", "disp": "displacement", "map_ka": "ambient"}
_MTL_LINE = re.compile(r"^\s*(map_\w+|bump|norm|disp)\s+(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_MTL_OPTION_ARGS = {"-blendu": 1, "-blendv": 1, "-bm": 1, "-boost": 1, "-cc": 1, "-clamp": 1, "-imfchan": 1,
                    "-mm": 2, "-o": 3, "-s": 3, "-t": 3, "-texres": 1, "-type": 1}


@dataclass
class MaterialInfo:
    materials: int = 0
    channels: set[str] = field(default_factory=set)  # texture slots in use (base_color, normal, ...)
    extensions: set[str] = field(default_factory=set)  # glTF material extensions (KHR_materials_*)
    textures: dict[str, tuple[int, int] | None] = field(default_factory=dict)  # image -> (width, height)

    def largest(self) -> tuple[int, int] | None:
        sizes = [s for s in self.textures.values() if s is not None]
        return max(sizes, key=lambda s: (s[0] * s[1], s)) if sizes else None


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from an image's header (Pillow reads no pixels for this)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return int(im.size[0]), int(im.size[1])
    except Exception:
        return None


def _gltf_image_bytes(doc: dict[str, Any], binary: bytes | None, folder: Path, image: dict[str, Any]) -> bytes | None:
    uri = image.get("uri")
    if uri is not None:
        if uri.startswith("data:"):
            return base64.b64decode(uri.split(",", 1)[1])
        target = folder / unquote(uri)
        return target.read_bytes() if target.is_file() else None
    if "bufferView" not in image:
        return None
    view = doc["bufferViews"][int(image["bufferView"])]
    buffer = doc["buffers"][int(view["buffer"])]
    if buffer.get("uri") is None:
        data = binary
    elif buffer["uri"].startswith("data:"):
        data = base64.b64decode(buffer["uri"].split(",", 1)[1])
    else:
        target = folder / unquote(buffer["uri"])
        data = target.read_bytes() if target.is_file() else None
    if data is None:
        return None
    start = int(view.get("byteOffset", 0))
    return data[start:start + int(view["byteLength"])]


def _read_gltf(path: Path) -> tuple[dict[str, Any], bytes | None]:
    raw = path.read_bytes()
    if raw[:4] != b"glTF":
        return json.loads(raw), None
    length = struct.unpack_from("<I", raw, 12)[0]
    doc = json.loads(raw[20:20 + length])
    rest = 20 + length + (-length % 4)
    binary = None
    if len(raw) >= rest + 8:
        bin_length, bin_type = struct.unpack_from("<II", raw, rest)
        if bin_type == 0x004E4942:
            binary = raw[rest + 8:rest + 8 + bin_length]
    return doc, binary


def gltf_materials(path: Path) -> MaterialInfo:
    doc, binary = _read_gltf(path)
    info = MaterialInfo(materials=len(doc.get("materials") or []))
    textures = doc.get("textures") or []
    images = doc.get("images") or []
    used: set[int] = set()
    for material in doc.get("materials") or []:
        slots = dict(material.get("pbrMetallicRoughness") or {})
        slots.update({k: v for k, v in material.items() if k in GLTF_SLOTS})
        for slot, ref in slots.items():
            if slot in GLTF_SLOTS and isinstance(ref, dict) and "index" in ref:
                info.channels.add(GLTF_SLOTS[slot])
                source = (textures[int(ref["index"])] if int(ref["index"]) < len(textures) else {}).get("source")
                if source is not None:
                    used.add(int(source))
        info.extensions.update(k for k in (material.get("extensions") or {}) if k.startswith("KHR_materials_"))
    for index in sorted(used):
        if index < len(images):
            image = images[index]
            data = _gltf_image_bytes(doc, binary, path.parent, image)
            name = str(image.get("uri") or image.get("name") or f"image {index}")
            info.textures[name] = None if data is None else _image_size(data)
    return info


def _mtl_file(folder: Path, spec: str) -> Path | None:
    tokens = spec.split()
    i = 0
    while i < len(tokens) and tokens[i].lower() in _MTL_OPTION_ARGS:
        i += 1 + _MTL_OPTION_ARGS[tokens[i].lower()]
    for name in dict.fromkeys([" ".join(tokens[i:]), tokens[-1] if tokens else ""]):
        if name and (folder / name.replace("\\", "/")).is_file():
            return folder / name.replace("\\", "/")
    return None


def obj_materials(path: Path) -> MaterialInfo:
    from gencritic.mesh.sidefiles import obj_material_libraries

    info = MaterialInfo()
    for lib in obj_material_libraries(path):
        mtl = path.parent / lib
        if not mtl.is_file():
            continue
        text = mtl.read_text(errors="replace")
        info.materials += len(re.findall(r"^\s*newmtl\s", text, re.MULTILINE))
        for key, spec in _MTL_LINE.findall(text):
            channel = MTL_SLOTS.get(key.lower())
            if channel is None:
                continue
            info.channels.add(channel)
            found = _mtl_file(mtl.parent, spec)
            name = found.name if found else spec.split()[-1]
            info.textures[name] = _image_size(found.read_bytes()) if found else None
    return info


def ply_materials(path: Path) -> MaterialInfo:
    from gencritic.mesh.sidefiles import ply_texture_name

    info = MaterialInfo()
    name = ply_texture_name(path)
    if name:
        info.channels.add("base_color")
        target = path.parent / name
        info.textures[name] = _image_size(target.read_bytes()) if target.is_file() else None
    return info


def material_info(path: Path) -> MaterialInfo:
    """Declared materials of the asset at ``path`` (formats without materials: an empty record)."""
    suffix = path.suffix.lower()
    if suffix in (".glb", ".gltf"):
        return gltf_materials(path)
    if suffix == ".blend":
        from gencritic.mesh.blend import converted_blend

        return gltf_materials(converted_blend(path).glb)
    if suffix == ".obj":
        return obj_materials(path)
    if suffix == ".ply":
        return ply_materials(path)
    return MaterialInfo()
