"""``KHR_texture_basisu``: KTX2 / Basis Universal base-colour textures transcoded to PNG.

Why: trimesh (Pillow) cannot open KTX2, so the texture was dropped and the asset would have been
drawn in its plain base colour. ``opengl_basisu`` (Basis Universal's own transcoder, compiled, in
the ``render`` extra) transcodes ETC1S and UASTC payloads to RGBA8; the first mip level becomes a
PNG image the texture then points at. Only base-colour textures are transcoded, the only ones
the renderer draws, and only those without a PNG/JPEG ``source`` beside the extension (a fallback
is used as it is). Without the package the row fails with the install line and a conversion.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from gencritic.errors import ItemError
from gencritic.mesh.gltf_features.edit import GltfEdit

EXTENSION = "KHR_texture_basisu"
CONVERT = ("pip install 'gencritic[render]' (opengl_basisu), or re-export it with PNG or JPEG textures, e.g. "
           "`ktx extract --transcode rgba8 TEXTURE.ktx2 TEXTURE.png` (KTX-Software) for each and point its images "
           "at them")


def _base_colour_textures(doc: dict[str, Any]) -> list[int]:
    out: list[int] = []
    for material in doc.get("materials") or []:
        info = ((material or {}).get("pbrMetallicRoughness") or {}).get("baseColorTexture") or {}
        if "index" in info and int(info["index"]) not in out:
            out.append(int(info["index"]))
    return out


def _image_bytes(edit: GltfEdit, image: dict[str, Any]) -> bytes:
    if "bufferView" in image:
        view = edit.doc["bufferViews"][int(image["bufferView"])]
        data = edit.buffers.raw(int(view["buffer"]))
        start = int(view.get("byteOffset", 0))
        return data[start:start + int(view["byteLength"])]
    uri = str(image.get("uri", ""))
    if uri.startswith("data:"):
        import base64

        return base64.b64decode(uri.split(",", 1)[1])
    from urllib.parse import unquote

    path = edit.buffers.folder / unquote(uri)
    if not path.is_file():
        raise ItemError(f"mesh {edit.name} needs image {unquote(uri)}, not found beside it in {edit.buffers.folder}: "
                        f"copy it there")
    return path.read_bytes()


def _is_ktx2(image: Any) -> bool:
    return isinstance(image, dict) and (image.get("mimeType") == "image/ktx2"
                                        or str(image.get("uri", "")).lower().endswith(".ktx2"))


def _ktx2_source(doc: dict[str, Any], texture: dict[str, Any]) -> int | None:
    """The KTX2 image a texture draws: its extension's source when it has no other, or its plain
    ``source`` when that is a KTX2 file (written so by some exporters, without the extension)."""
    images = doc.get("images") or []
    spec = (texture.get("extensions") or {}).get(EXTENSION)
    if "source" not in texture:
        return int(spec["source"]) if isinstance(spec, dict) and "source" in spec else None
    source = int(texture["source"])
    return source if 0 <= source < len(images) and _is_ktx2(images[source]) else None


def transcode_basisu(edit: GltfEdit) -> None:
    """Point every base-colour texture whose source is KTX2 at a PNG transcoded from it."""
    textures = edit.doc.get("textures") or []
    wanted = [i for i in _base_colour_textures(edit.doc)
              if 0 <= i < len(textures) and _ktx2_source(edit.doc, textures[i]) is not None]
    if not wanted:
        return
    try:
        import opengl_basisu
    except ImportError:
        raise ItemError(f"mesh {edit.name} uses {EXTENSION}: its textures are KTX2/Basis Universal and the "
                        f"transcoder is not installed: {CONVERT}") from None
    from PIL import Image

    done: dict[int, int] = {}
    for index in wanted:
        texture = textures[index]
        source = _ktx2_source(edit.doc, texture)
        assert source is not None
        if source not in done:
            image = edit.doc["images"][source]
            try:
                ktx = opengl_basisu.open(_image_bytes(edit, image))
                level = ktx.transcode("rgba8")
                rgba = np.asarray(level.data, dtype=np.uint8).reshape(level.height, level.width, 4)
            except ItemError:
                raise
            except Exception as exc:  # the transcoder raises on corrupt or unsupported files
                raise ItemError(f"mesh {edit.name}: its KTX2 texture {image.get('uri') or image.get('name') or source} "
                                f"cannot be transcoded ({' '.join(str(exc).split())[:160]})") from None
            if getattr(ktx, "y_flipped", False):  # stored bottom row first: glTF wants the top row first
                rgba = rgba[::-1]
            png = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(png, format="PNG", compress_level=1)
            view = edit.add_bytes(png.getvalue())
            edit.doc["images"].append({"bufferView": view, "mimeType": "image/png",
                                       "name": str(image.get("uri") or image.get("name") or f"image {source}")})
            done[source] = len(edit.doc["images"]) - 1
        texture["source"] = done[source]
        (texture.get("extensions") or {}).pop(EXTENSION, None)
    edit.changed = True


def needs_transcoding(doc: dict[str, Any]) -> bool:
    """Whether a base-colour texture's image is KTX2 (and no PNG/JPEG fallback is given)."""
    textures = doc.get("textures") or []
    return any(0 <= i < len(textures) and _ktx2_source(doc, textures[i]) is not None
               for i in _base_colour_textures(doc))
