"""Look inside a glTF/GLB before trimesh reads it: refuse what it would read wrongly, and
dequantize what it would misread.

Why: trimesh's glTF reader ignores an accessor's ``normalized`` flag. Files written with
``KHR_mesh_quantization`` (``gltf-transform optimize`` and other web pipelines store positions,
normals and texture coordinates as normalized 8/16-bit integers) then load with texture
coordinates in the tens of thousands and positions scaled by 32767: the bounding-box
normalisation hides the scale, the texture is sampled at the wrong place, and the render looks
plausible but is wrong. Other extensions it does not decode fail obscurely (``list index out of
range`` for meshopt) or, worse, silently: a Draco file without the DracoPy decoder loads as
placeholder zeros, a KTX2/Basis texture is dropped and the asset is drawn in its base colour.

It also ignores sparse accessors (their substitutions are never applied).

So, before trimesh: a file that needs an extension nothing here decodes fails its row with one
line naming the extension and how to convert the file; a file with normalized integer or
sparse accessors is rewritten in memory, each such accessor replaced by dense data (decoded to
float32 by the glTF 2.0 rules where normalized; a new buffer, as a data URI), and that
rewritten document is what trimesh reads. Files without either are passed through untouched
(no cost beyond reading the JSON header).
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np

from gencritic.errors import ItemError
from gencritic.mesh.colors import srgb_from_linear

GLB_MAGIC = b"glTF"
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942

# componentType -> (numpy dtype, divisor for normalized values; glTF 2.0 §3.11)
_COMPONENTS: dict[int, tuple[str, float]] = {
    5120: ("<i1", 127.0), 5121: ("<u1", 255.0), 5122: ("<i2", 32767.0), 5123: ("<u2", 65535.0),
    5125: ("<u4", 0.0), 5126: ("<f4", 0.0),
}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}

CONVERT_HINT = "convert it first, e.g. `npx @gltf-transform/cli copy {name} plain.glb`"
# Extensions that change how geometry or textures must be decoded, and what to do about each.
UNDECODED: dict[str, str] = {
    "EXT_meshopt_compression": "its geometry is meshopt-compressed, which gencritic cannot decode: " + CONVERT_HINT,
    "KHR_meshopt_compression": "its geometry is meshopt-compressed, which gencritic cannot decode: " + CONVERT_HINT,
    "EXT_mesh_gpu_instancing": ("it places copies of a mesh by GPU instancing, which gencritic does not expand (only "
                                "one copy would be drawn): import it into Blender and export it again"),
    "KHR_texture_basisu": ("its textures are KTX2/Basis Universal, which gencritic cannot decode (the asset would be "
                           "drawn untextured): re-export it with PNG or JPEG textures"),
}


def read_document(path: Path, with_binary: bool = False) -> tuple[dict[str, Any], bytes | None]:
    """(glTF JSON, GLB binary chunk or None). Only the JSON chunk is read unless ``with_binary``:
    most files need no rewrite, and trimesh reads the whole file anyway."""
    with path.open("rb") as f:
        head = f.read(20)
        if head[:4] != GLB_MAGIC:
            return json.loads(head + f.read()), None
        if len(head) < 20:
            raise ItemError(f"cannot read mesh {path.name}: truncated GLB header")
        length, chunk_type = struct.unpack_from("<II", head, 12)
        text = f.read(length)
        if chunk_type != _CHUNK_JSON or len(text) != length:
            raise ItemError(f"cannot read mesh {path.name}: the GLB's first chunk is not its JSON")
        doc = json.loads(text)
        binary = None
        if with_binary:
            f.seek(20 + length + (-length % 4))
            chunk = f.read(8)
            if len(chunk) == 8:
                bin_length, bin_type = struct.unpack("<II", chunk)
                if bin_type == _CHUNK_BIN:
                    binary = f.read(bin_length)
        return doc, binary


def _uses_draco(doc: dict[str, Any]) -> bool:
    return "KHR_draco_mesh_compression" in (doc.get("extensionsUsed") or [])


def _texture_transformed(doc: dict[str, Any]) -> bool:
    """Whether any texture reference carries a non-identity KHR_texture_transform."""
    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            tt = (node.get("extensions") or {}).get("KHR_texture_transform")
            if isinstance(tt, dict) and (any(float(v) != 0.0 for v in tt.get("offset", [0, 0]))
                                         or float(tt.get("rotation", 0.0)) != 0.0
                                         or any(float(v) != 1.0 for v in tt.get("scale", [1, 1]))):
                return True
            return any(walk(v) for v in node.values())
        if isinstance(node, list):
            return any(walk(v) for v in node)
        return False
    return walk(doc.get("materials") or [])


def check_supported(doc: dict[str, Any], name: str) -> None:
    """Raise :class:`ItemError` for a document whose content would be drawn wrongly here."""
    used = set(doc.get("extensionsUsed") or []) | set(doc.get("extensionsRequired") or [])
    for ext, why in UNDECODED.items():
        if ext in used:
            raise ItemError(f"mesh {name} uses {ext}: {why.format(name=name)}")
    if "KHR_texture_transform" in used and _texture_transformed(doc):
        raise ItemError(f"mesh {name} uses KHR_texture_transform (offset/scale/rotation of texture coordinates), which "
                        f"gencritic does not apply and would map its textures wrongly: bake the transform into the "
                        f"texture coordinates (e.g. Blender's glTF exporter) and export again")
    if _uses_draco(doc):
        try:
            import DracoPy  # noqa: F401  (trimesh decodes Draco through it)
        except ImportError:
            raise ItemError(f"mesh {name} is Draco-compressed and the Draco decoder is not installed: "
                            f"pip install 'gencritic[render]' (DracoPy)") from None


def _drawn_accessors(doc: dict[str, Any]) -> tuple[set[int], set[int], set[int]]:
    """(accessors read as positions/normals/tangents/texture coordinates, those read as
    ``COLOR_0`` (the only colour set trimesh reads), every accessor a primitive reads: those plus
    other attributes and indices). Indices outside the accessor list are left out."""
    geometric: set[int] = set()
    colours: set[int] = set()
    drawn: set[int] = set()
    for mesh in doc.get("meshes") or []:
        for prim in mesh.get("primitives") or []:
            for semantic, index in (prim.get("attributes") or {}).items():
                drawn.add(int(index))
                if semantic in ("POSITION", "NORMAL", "TANGENT") or semantic.startswith("TEXCOORD_"):
                    geometric.add(int(index))
                elif semantic == "COLOR_0":
                    colours.add(int(index))
            if "indices" in prim:
                drawn.add(int(prim["indices"]))
    count = len(doc.get("accessors") or [])
    return ({i for i in geometric if 0 <= i < count}, {i for i in colours if 0 <= i < count},
            {i for i in drawn if 0 <= i < count})


def _is_normalized_int(acc: dict[str, Any]) -> bool:
    return bool(acc.get("normalized")) and int(acc.get("componentType", 0)) in (5120, 5121, 5122, 5123)


def _accessors_to_rewrite(doc: dict[str, Any]) -> list[int]:
    """Accessors trimesh would misread: normalized integers read as geometry (it ignores the
    flag; colours it reads right as integer colours) and sparse accessors of any kind (it
    ignores the substitutions)."""
    geometric, _, drawn = _drawn_accessors(doc)
    accessors = doc.get("accessors") or []
    return sorted(i for i in drawn if "sparse" in accessors[i] or (i in geometric and _is_normalized_int(accessors[i])))


def needs_rewrite(doc: dict[str, Any]) -> bool:
    return bool(_accessors_to_rewrite(doc))


def colours_need_encoding(doc: dict[str, Any]) -> bool:
    """Whether some ``COLOR_0`` is stored finer than a byte (float, as Blender writes it, or 16-bit).

    Why: trimesh keeps vertex colours as bytes of the *linear* value the file stores, and dark
    colours then move by up to 3 levels once encoded to sRGB for display (as base-colour factors
    did). Such files have every ``COLOR_0`` encoded to sRGB bytes before trimesh reads them."""
    accessors = doc.get("accessors") or []
    return any(int(accessors[i].get("componentType", 0)) != 5121 for i in _drawn_accessors(doc)[1])


def _srgb_bytes(values: np.ndarray, component: int) -> np.ndarray:
    """glTF colour components (float, or normalized 8/16-bit) -> RGBA bytes, RGB sRGB-encoded."""
    rgba = values.astype(np.float64)
    if component != 5126:
        rgba = rgba / _COMPONENTS[component][1]
    rgba = np.clip(rgba, 0.0, 1.0)
    if rgba.shape[1] == 3:
        rgba = np.concatenate([rgba, np.ones((len(rgba), 1))], axis=1)
    rgba[:, :3] = srgb_from_linear(rgba[:, :3])
    return np.round(rgba * 255.0).astype(np.uint8)


def _buffer_bytes(doc: dict[str, Any], index: int, binary: bytes | None, folder: Path, name: str) -> bytes:
    buffer = (doc.get("buffers") or [])[index]
    uri = buffer.get("uri")
    if uri is None:
        if binary is None:
            raise ItemError(f"cannot read mesh {name}: buffer {index} has no URI and the file has no binary chunk")
        return binary
    if uri.startswith("data:"):
        return base64.b64decode(uri.split(",", 1)[1])
    target = folder / unquote(uri)
    if not target.is_file():
        raise ItemError(f"mesh {name} refers to buffer file {uri}, which is missing beside it")
    return target.read_bytes()


class _Buffers:
    """The document's buffers, read on first use."""

    def __init__(self, doc: dict[str, Any], binary: bytes | None, folder: Path, name: str) -> None:
        self.doc, self.binary, self.folder, self.name = doc, binary, folder, name
        self._data: dict[int, bytes] = {}

    def view(self, index: int) -> tuple[bytes, int, int]:
        """(buffer bytes, byte offset, byte stride or 0) of buffer view ``index``."""
        view = self.doc["bufferViews"][index]
        buffer = int(view["buffer"])
        if buffer not in self._data:
            self._data[buffer] = _buffer_bytes(self.doc, buffer, self.binary, self.folder, self.name)
        return self._data[buffer], int(view.get("byteOffset", 0)), int(view.get("byteStride", 0))


def _read(buffers: _Buffers, view_index: int, offset: int, component: int, width: int, count: int) -> np.ndarray:
    """(count, width) components of type ``component`` from a buffer view (its stride honoured)."""
    dtype = np.dtype(_COMPONENTS[component][0])
    data, start, stride = buffers.view(view_index)
    start += offset
    item = dtype.itemsize * width
    stride = stride or item
    if count and start + stride * (count - 1) + item > len(data):
        raise ItemError("an accessor reads past the end of its buffer (corrupt file)")
    rows = np.ndarray((count,), dtype=np.dtype((np.void, item)), buffer=data, offset=start, strides=(stride,))
    return np.frombuffer(rows.tobytes(), dtype=dtype).reshape(count, width)


def _dense_values(acc: dict[str, Any], buffers: _Buffers) -> np.ndarray:
    """The accessor's components as glTF defines them: its buffer view (or zeros when it has
    none), with the sparse substitutions applied."""
    component, width, count = int(acc["componentType"]), _WIDTH[acc["type"]], int(acc["count"])
    if "bufferView" in acc:
        values = _read(buffers, int(acc["bufferView"]), int(acc.get("byteOffset", 0)), component, width, count).copy()
    else:
        values = np.zeros((count, width), dtype=_COMPONENTS[component][0])
    sparse = acc.get("sparse")
    if sparse:
        n = int(sparse["count"])
        idx_spec, val_spec = sparse["indices"], sparse["values"]
        where = _read(buffers, int(idx_spec["bufferView"]), int(idx_spec.get("byteOffset", 0)),
                      int(idx_spec["componentType"]), 1, n)[:, 0].astype(np.int64)
        if n and (where.min() < 0 or where.max() >= count):
            raise ItemError("a sparse accessor substitutes elements outside the accessor (corrupt file)")
        values[where] = _read(buffers, int(val_spec["bufferView"]), int(val_spec.get("byteOffset", 0)),
                              component, width, n)
    return values


def rewrite_accessors(doc: dict[str, Any], binary: bytes | None, folder: Path, name: str,
                      encode_colours: bool = False) -> dict[str, Any]:
    """A copy of ``doc`` in which every accessor trimesh would misread is a plain dense one in a
    new buffer (a data URI): sparse substitutions applied, and normalized integers read as
    geometry decoded to float32 (``max(c / (2^(b-1) - 1), -1)`` signed, ``c / (2^b - 1)``
    unsigned, glTF 2.0 §3.11). With ``encode_colours``, every ``COLOR_0`` becomes sRGB-encoded
    RGBA bytes (see :func:`colours_need_encoding`). Other accessors, buffers, images and the
    scene graph are unchanged."""
    out = json.loads(json.dumps(doc))
    geometric, colour_sets, _ = _drawn_accessors(out)
    colours = colour_sets if encode_colours else set()
    buffers = _Buffers(out, binary, folder, name)
    blob = bytearray()
    new_buffer = len(out.get("buffers") or [])
    out.setdefault("bufferViews", [])
    for index in sorted(set(_accessors_to_rewrite(out)) | colours):
        acc = out["accessors"][index]
        values = _dense_values(acc, buffers)
        decode = index in geometric and _is_normalized_int(acc)
        if index in colours:
            values = _srgb_bytes(values, int(acc["componentType"]))
            acc.update(componentType=5121, normalized=True, type="VEC4")
            acc.pop("min", None)
            acc.pop("max", None)
        elif decode:
            divisor = _COMPONENTS[int(acc["componentType"])][1]
            values = np.maximum(values.astype(np.float64) / divisor, -1.0).astype("<f4")
            for bound in ("min", "max"):
                if bound in acc:
                    acc[bound] = [max(float(v) / divisor, -1.0) for v in acc[bound]]
            acc.update(componentType=5126, normalized=False)
        while len(blob) % 4:
            blob.append(0)
        out["bufferViews"].append({"buffer": new_buffer, "byteOffset": len(blob), "byteLength": values.nbytes})
        blob.extend(np.ascontiguousarray(values).tobytes())
        acc.update(bufferView=len(out["bufferViews"]) - 1, byteOffset=0)
        acc.pop("sparse", None)
    if blob:
        out.setdefault("buffers", []).append(
            {"byteLength": len(blob), "uri": "data:application/octet-stream;base64," + base64.b64encode(bytes(blob)).decode()})
    return out


def _base_colour_info(material: Any) -> dict[str, Any] | None:
    info = (material.get("pbrMetallicRoughness") or {}).get("baseColorTexture") if isinstance(material, dict) else None
    return info if isinstance(info, dict) else None


def _base_colour_texcoord(material: dict[str, Any]) -> int:
    info = _base_colour_info(material)
    return int(info.get("texCoord", 0)) if info else 0


def base_colour_images(doc: dict[str, Any]) -> list[int]:
    """Indices of the images materials use as their base colour (what the renderer draws)."""
    images: list[int] = []
    for material in doc.get("materials") or []:
        info = _base_colour_info(material)
        if info and "index" in info:
            source = (doc.get("textures") or [])[int(info["index"])].get("source")
            if source is not None and int(source) not in images:
                images.append(int(source))
    return images


def remap_base_colour_uvs(doc: dict[str, Any], name: str) -> tuple[dict[str, Any], bool]:
    """(doc, changed): primitives whose material samples its base colour with ``TEXCOORD_n``,
    n > 0, get that set as ``TEXCOORD_0``, the only one trimesh reads. Why: it ignores
    ``texCoord`` and would map the texture with the wrong coordinates (the renderer draws the base
    colour alone, so the other set is not needed)."""
    materials = doc.get("materials") or []
    if not any(_base_colour_texcoord(m) for m in materials):
        return doc, False
    out = json.loads(json.dumps(doc))
    for mesh in out.get("meshes") or []:
        for prim in mesh.get("primitives") or []:
            if "material" not in prim:
                continue
            k = _base_colour_texcoord(out["materials"][int(prim["material"])])
            if k:
                attributes = prim.get("attributes") or {}
                if f"TEXCOORD_{k}" not in attributes:
                    raise ItemError(f"mesh {name}: a material samples its base colour with TEXCOORD_{k}, which a "
                                    f"primitive using it lacks (malformed file)")
                attributes["TEXCOORD_0"] = attributes[f"TEXCOORD_{k}"]
    for material in out["materials"]:
        info = _base_colour_info(material)
        if info:
            info["texCoord"] = 0
    return out, True


def to_glb(doc: dict[str, Any], binary: bytes | None) -> bytes:
    """A GLB of ``doc`` with ``binary`` as its binary chunk (what buffer 0 without a URI reads)."""
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<II", len(text), _CHUNK_JSON) + text
    if binary is not None:
        body = binary + b"\0" * (-len(binary) % 4)
        chunks += struct.pack("<II", len(body), _CHUNK_BIN) + body
    return GLB_MAGIC + struct.pack("<II", 2, 12 + len(chunks)) + chunks


def base_colour_factors(doc: dict[str, Any]) -> list[tuple[str | None, np.ndarray]]:
    """Each material's (name, float RGBA ``baseColorFactor``), in material order.

    Why: trimesh stores the factor as uint8 of the *linear* value, which loses the dark colours
    once encoded to sRGB for display (linear 0.0212, sRGB 40, comes back as 5/255, sRGB 38; near
    black a factor can move by 3 levels). The loader matches trimesh's materials to these."""
    out: list[tuple[str | None, np.ndarray]] = []
    for material in doc.get("materials") or []:
        if not isinstance(material, dict):
            continue
        pbr = material.get("pbrMetallicRoughness")
        factor = pbr.get("baseColorFactor") if isinstance(pbr, dict) else None
        try:
            rgba = np.clip(np.asarray(factor if factor is not None else [1.0, 1.0, 1.0, 1.0], np.float64), 0, 1)
        except (TypeError, ValueError):
            continue
        if rgba.shape == (4,):
            name = material.get("name")
            out.append((name if isinstance(name, str) else None, rgba))
    return out


@dataclass(frozen=True)
class PreparedGltf:
    """What the loader hands trimesh and needs to know after it."""

    data: bytes | None  # a rewritten GLB, or None: read the file as it is
    document: dict[str, Any]  # the file's glTF JSON (its float base-colour factors)
    vertex_colours_srgb: bool  # COLOR_0 was encoded to sRGB here; otherwise it is linear


def prepare_gltf(path: Path) -> PreparedGltf:
    """Check a .glb/.gltf; rewrite it for trimesh when it has accessors, colours or texture
    coordinates trimesh would misread. Raises :class:`ItemError` for what cannot be drawn right."""
    try:
        doc, _ = read_document(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ItemError(f"cannot read mesh {path.name}: its glTF JSON is not valid ({exc})") from None
    if not isinstance(doc, dict):
        raise ItemError(f"cannot read mesh {path.name}: its glTF JSON is not an object")
    check_supported(doc, path.name)
    try:
        original = doc
        doc, remapped = remap_base_colour_uvs(doc, path.name)
        encode = colours_need_encoding(doc)
        if not (remapped or encode or needs_rewrite(doc)):
            return PreparedGltf(None, original, False)
        _, binary = read_document(path, with_binary=True)
        rewritten = rewrite_accessors(doc, binary, path.parent, path.name, encode_colours=encode)
        return PreparedGltf(to_glb(rewritten, binary), original, encode)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ItemError(f"cannot read mesh {path.name}: malformed accessor or buffer view ({exc})") from None
