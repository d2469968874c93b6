"""``EXT_meshopt_compression`` / ``KHR_meshopt_compression``: buffer views decoded before trimesh.

Why decode here: trimesh has no meshopt handler and failed with ``list index out of range``;
gltfpack writes meshopt by default with ``-c`` (``EXT_``) and ``-cz`` (``KHR_``, codec v1 and the
colour filter). The decoder is the ``meshopt`` package (meshoptimizer 1.3's own decoder, compiled,
in the ``render`` extra): each compressed view is decoded with its mode and filter and replaced by
a plain view of the decoded bytes; fallback buffers (no data, only there for loaders that cannot
decode) are emptied. Without the package the row fails with the install line and a conversion.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gencritic.errors import ItemError
from gencritic.mesh.gltf_features.edit import GltfEdit

EXTENSIONS = ("EXT_meshopt_compression", "KHR_meshopt_compression")
CONVERT = "or convert it first, e.g. `npx @gltf-transform/cli copy {name} plain.glb`"


def uses_meshopt(doc: dict[str, Any]) -> str | None:
    """The meshopt extension the document declares, or None."""
    used = set(doc.get("extensionsUsed") or []) | set(doc.get("extensionsRequired") or [])
    return next((ext for ext in EXTENSIONS if ext in used), None)


def decode_meshopt(edit: GltfEdit) -> None:
    """Replace every meshopt-compressed buffer view of ``edit.doc`` by its decoded bytes."""
    ext = uses_meshopt(edit.doc)
    if ext is None:
        return
    try:
        import meshopt
    except ImportError:
        raise ItemError(f"mesh {edit.name} uses {ext}: its geometry is meshopt-compressed and the decoder is not "
                        f"installed: pip install 'gencritic[render]' (meshopt), "
                        f"{CONVERT.format(name=edit.name)}") from None
    views = edit.doc.get("bufferViews") or []
    for index in range(len(views)):
        view = views[index]
        spec = next((s for e, s in (view.get("extensions") or {}).items() if e in EXTENSIONS), None)
        if not isinstance(spec, dict):
            continue
        start, length = int(spec.get("byteOffset", 0)), int(spec["byteLength"])
        source = edit.buffers.raw(int(spec["buffer"]))[start:start + length]
        count, size = int(spec["count"]), int(spec["byteStride"])
        try:
            rows = meshopt.decode_gltf_buffer(source, count, size, spec["mode"], spec.get("filter", "NONE"))
        except Exception as exc:  # the decoder raises on corrupt or unsupported data
            raise ItemError(f"mesh {edit.name}: its meshopt-compressed buffer view {index} cannot be decoded "
                            f"({' '.join(str(exc).split())[:160]})") from None
        data = np.ascontiguousarray(rows).tobytes()
        if len(data) != count * size:
            raise ItemError(f"mesh {edit.name}: meshopt buffer view {index} decoded to {len(data)} bytes, expected "
                            f"{count * size} (corrupt file)")
        new = edit.add_bytes(data)
        decoded = edit.doc["bufferViews"].pop()  # the view add_bytes made, moved into this one's place
        assert new == len(edit.doc["bufferViews"])
        plain = {"buffer": decoded["buffer"], "byteOffset": decoded["byteOffset"], "byteLength": len(data)}
        for key in ("byteStride", "target", "name"):
            if key in view:
                plain[key] = view[key]
        views[index] = plain
    for buffer in edit.doc.get("buffers") or []:
        fallback = any(isinstance(s, dict) and s.get("fallback") for e, s in (buffer.get("extensions") or {}).items()
                       if e in EXTENSIONS)
        if fallback and "uri" not in buffer:  # no bytes behind it; nothing reads it any more
            buffer.clear()
            buffer.update(byteLength=0, uri="data:application/octet-stream;base64,")
    for key in ("extensionsUsed", "extensionsRequired"):
        if key in edit.doc:
            edit.doc[key] = [e for e in edit.doc[key] if e not in EXTENSIONS]
    edit.changed = True
