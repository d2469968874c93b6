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

So, before trimesh: what the file means beyond plain triangles (meshopt, KTX2 textures,
instancing, primitive modes, morph targets, skins, texture transforms, alpha and unlit materials)
is applied by :mod:`gencritic.mesh.gltf_features`, whose decoders refuse with one line naming the
install or the conversion when they are missing; a file with normalized integer or sparse
accessors is rewritten in memory, each such accessor replaced by dense data (decoded to float32 by
the glTF 2.0 rules where normalized; a new buffer, as a data URI), and that rewritten document is
what trimesh reads. Files without any of it are passed through untouched (no cost beyond reading
the JSON header).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gencritic.errors import ItemError
from gencritic.mesh.colors import srgb_from_linear
from gencritic.mesh.gltf_accessors import (
    COMPONENTS,
    Buffers,
    dense_values,
    read_document,
    to_glb,
)

CONVERT_HINT = "convert it first, e.g. `npx @gltf-transform/cli copy {name} plain.glb`"
# Extensions that change how geometry or textures must be decoded and that nothing here decodes
# (meshopt, KTX2/Basis, instancing and texture transforms are applied by mesh/gltf_features).
UNDECODED: dict[str, str] = {}




def _uses_draco(doc: dict[str, Any]) -> bool:
    return "KHR_draco_mesh_compression" in (doc.get("extensionsUsed") or [])


def check_supported(doc: dict[str, Any], name: str) -> None:
    """Raise :class:`ItemError` for a document whose content would be drawn wrongly here."""
    used = set(doc.get("extensionsUsed") or []) | set(doc.get("extensionsRequired") or [])
    for ext, why in UNDECODED.items():
        if ext in used:
            raise ItemError(f"mesh {name} uses {ext}: {why.format(name=name)}")
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
        rgba = rgba / COMPONENTS[component][1]
    rgba = np.clip(rgba, 0.0, 1.0)
    if rgba.shape[1] == 3:
        rgba = np.concatenate([rgba, np.ones((len(rgba), 1))], axis=1)
    rgba[:, :3] = srgb_from_linear(rgba[:, :3])
    return np.round(rgba * 255.0).astype(np.uint8)




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
    buffers = Buffers(out, binary, folder, name)
    blob = bytearray()
    new_buffer = len(out.get("buffers") or [])
    out.setdefault("bufferViews", [])
    for index in sorted(set(_accessors_to_rewrite(out)) | colours):
        acc = out["accessors"][index]
        values = dense_values(acc, buffers)
        decode = index in geometric and _is_normalized_int(acc)
        if index in colours:
            values = _srgb_bytes(values, int(acc["componentType"]))
            acc.update(componentType=5121, normalized=True, type="VEC4")
            acc.pop("min", None)
            acc.pop("max", None)
        elif decode:
            divisor = COMPONENTS[int(acc["componentType"])][1]
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
    lines: list[Any] = field(default_factory=list)  # gltf_features.modes.LineSet: drawn beside trimesh's


def prepare_gltf(path: Path) -> PreparedGltf:
    """Check a .glb/.gltf; rewrite it for trimesh when it has accessors, colours or texture
    coordinates trimesh would misread. Raises :class:`ItemError` for what cannot be drawn right."""
    try:
        doc, _ = read_document(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ItemError(f"cannot read mesh {path.name}: its glTF JSON is not valid ({exc})") from None
    if not isinstance(doc, dict):
        raise ItemError(f"cannot read mesh {path.name}: its glTF JSON is not an object")
    from gencritic.mesh.gltf_features import apply_features, needs_features

    binary: bytes | None = None
    features = needs_features(doc)
    lines: list[Any] = []
    if features:  # meshopt, KTX2, instancing, modes, morphs, skins, texture transforms, alpha/unlit
        _, binary = read_document(path, with_binary=True)
        applied = apply_features(doc, binary, path)
        doc, lines = applied.document, applied.lines
    check_supported(doc, path.name)
    try:
        original = doc
        doc, remapped = remap_base_colour_uvs(doc, path.name)
        encode = colours_need_encoding(doc)
        if not (features or remapped or encode or needs_rewrite(doc)):
            return PreparedGltf(None, original, False)
        if binary is None:
            _, binary = read_document(path, with_binary=True)
        rewritten = rewrite_accessors(doc, binary, path.parent, path.name, encode_colours=encode)
        return PreparedGltf(to_glb(rewritten, binary), original, encode, lines)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ItemError(f"cannot read mesh {path.name}: malformed accessor or buffer view ({exc})") from None
