"""A copy of a glTF document being rewritten: read any accessor as glTF defines it, add new data.

Why one helper: every feature here (meshopt decoding, morph targets, skins, texture transforms,
primitive modes) ends the same way, with arrays computed in numpy that trimesh must read as if
the file had stored them. New arrays go into one new buffer (a data URI, as
:func:`gencritic.mesh.gltf_prepare.rewrite_accessors` writes its own), so buffer 0 and the GLB's
binary chunk stay exactly as they were; the rest of the document is edited in place on a copy.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from gencritic.mesh.gltf_accessors import COMPONENTS, WIDTH, Buffers, dense_values

_TYPES = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4", 16: "MAT4"}
_DTYPES = {5126: "<f4", 5125: "<u4", 5123: "<u2", 5121: "<u1"}


class _LiveBuffers(Buffers):
    """The document's buffers, the new one included while it is still growing."""

    def __init__(self, edit: GltfEdit, doc: dict[str, Any], binary: bytes | None, folder: Path, name: str) -> None:
        super().__init__(doc, binary, folder, name)
        self._edit = edit

    def view(self, index: int) -> tuple[bytes, int, int]:
        view = self.doc["bufferViews"][index]
        if self._edit.new_buffer is not None and int(view["buffer"]) == self._edit.new_buffer:
            return bytes(self._edit.blob), int(view.get("byteOffset", 0)), int(view.get("byteStride", 0))
        return super().view(index)

    def raw(self, buffer: int) -> bytes:
        """All bytes of buffer ``buffer`` (as the document says where they are)."""
        if self._edit.new_buffer is not None and buffer == self._edit.new_buffer:
            return bytes(self._edit.blob)
        if buffer not in self._data:
            from gencritic.mesh.gltf_accessors import buffer_bytes

            self._data[buffer] = buffer_bytes(self.doc, buffer, self.binary, self.folder, self.name)
        return self._data[buffer]


class GltfEdit:
    """A deep copy of ``doc`` with readers for its accessors and writers for new arrays."""

    def __init__(self, doc: dict[str, Any], binary: bytes | None, folder: Path, name: str) -> None:
        self.doc: dict[str, Any] = json.loads(json.dumps(doc))
        self.binary = binary
        self.name = name
        self.blob = bytearray()
        self.new_buffer: int | None = None
        self.changed = False
        self.buffers = _LiveBuffers(self, self.doc, binary, folder, name)

    # -- reading ------------------------------------------------------------------------------
    def values(self, accessor: int) -> np.ndarray:
        """(count, width) float64 values of an accessor by the glTF rules: sparse substitutions
        applied, normalized integers decoded (``max(c / (2^(b-1) - 1), -1)``, ``c / (2^b - 1)``)."""
        acc = self.doc["accessors"][int(accessor)]
        raw = dense_values(acc, self.buffers)
        values = raw.astype(np.float64)
        component = int(acc["componentType"])
        if acc.get("normalized") and component in (5120, 5121, 5122, 5123):
            values = np.maximum(values / COMPONENTS[component][1], -1.0)
        return values

    def integers(self, accessor: int) -> np.ndarray:
        """(count,) int64 values of an index-like accessor (indices, joints)."""
        acc = self.doc["accessors"][int(accessor)]
        return dense_values(acc, self.buffers).astype(np.int64).reshape(int(acc["count"]), -1)

    def width(self, accessor: int) -> int:
        return WIDTH[self.doc["accessors"][int(accessor)]["type"]]

    # -- writing ------------------------------------------------------------------------------
    def add_bytes(self, data: bytes) -> int:
        """A new buffer view holding ``data`` (4-byte aligned) in the new buffer; its index."""
        if self.new_buffer is None:
            self.doc.setdefault("buffers", []).append({"byteLength": 0})
            self.new_buffer = len(self.doc["buffers"]) - 1
        while len(self.blob) % 4:
            self.blob.append(0)
        self.doc.setdefault("bufferViews", []).append(
            {"buffer": self.new_buffer, "byteOffset": len(self.blob), "byteLength": len(data)})
        self.blob.extend(data)
        self.changed = True
        return len(self.doc["bufferViews"]) - 1

    def add_accessor(self, values: np.ndarray, component: int = 5126) -> int:
        """A new dense accessor holding ``values`` ((count, width) or (count,)) as ``component``
        (float32 by default; 5125 for uint32 indices); its index. Positions get their min/max."""
        arr = np.asarray(values)
        arr = arr.reshape(len(arr), -1)
        data = np.ascontiguousarray(arr.astype(_DTYPES[component]))
        view = self.add_bytes(data.tobytes())
        accessor: dict[str, Any] = {"bufferView": view, "byteOffset": 0, "componentType": component,
                                    "count": int(arr.shape[0]), "type": _TYPES[arr.shape[1]]}
        if component == 5126 and arr.shape[1] == 3 and len(arr):
            accessor["min"] = [float(v) for v in data.min(axis=0)]
            accessor["max"] = [float(v) for v in data.max(axis=0)]
        self.doc.setdefault("accessors", []).append(accessor)
        return len(self.doc["accessors"]) - 1

    def finish(self) -> dict[str, Any]:
        """The edited document, its new buffer written as a data URI."""
        if self.new_buffer is not None:
            self.doc["buffers"][self.new_buffer] = {
                "byteLength": len(self.blob),
                "uri": "data:application/octet-stream;base64," + base64.b64encode(bytes(self.blob)).decode()}
        return self.doc


def mesh_primitives(doc: dict[str, Any]) -> list[tuple[int, int, dict[str, Any]]]:
    """(mesh index, primitive index, primitive) of every primitive."""
    return [(m, p, prim) for m, mesh in enumerate(doc.get("meshes") or [])
            for p, prim in enumerate(mesh.get("primitives") or [])]
